"""Quality of focusfuse's fusion methods on the 20 Lytro pairs, against published results and enfuse.

For each pair of ``../shared/data/lytro/pairs`` this fuses with ``dwt``, ``dtcwt`` and
``laplacian`` (the defaults of ``focusfuse.fusion.multiscale``: 5 levels), ``cnn`` and
``cnn-dtcwt`` (``focusfuse.fuse`` with ``--weights``, fp32, on the CPU), the 4-level variants
(``dwt (4 levels)``, ``laplacian (4 levels)``), the MST-toolbox settings of the DWT and DTCWT
(``dwt (toolbox)``: Haar, 4 levels; ``dtcwt (toolbox)``: legall + qshift_06, 4 levels), and enfuse
in its focus-stacking mode (``enfuse --exposure-weight=0 --saturation-weight=0
--contrast-weight=1 --hard-mask``, on the 8-bit JPEG files). Every fused image is rounded to
8 bit, as the published PNG files are, cached as PNG under ``--out`` (a re-run only fuses
what is missing; ``--refresh`` redoes all), and scored with ``focusfuse.metrics.evaluate``
(the eight metrics of the Liu et al. 2020 survey, which reproduce its ``metrics.csv``).

Writes a Markdown table of the means next to the survey's published rows (``averages.csv``:
``dwt``, ``dtcwt``, ``cnn``) with, for each method, how many of the eight metrics are at least
as good as its reference (QCV: lower is better), and a JSON file with every pair's scores,
the fusion times and the machine.

Usage: python benchmarks/compare_multiscale.py [--weights PATH] [--out DIR] [--pairs N]
       [--methods dwt,dtcwt,...] [--refresh] [--md PATH] [--json PATH]
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import focusfuse
from focusfuse.bench.machine import machine_info
from focusfuse.fusion.multiscale import fuse_dtcwt, fuse_dwt, fuse_laplacian
from focusfuse.io import read_image, write_image
from focusfuse.metrics import LOWER_IS_BETTER, METRICS, evaluate

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
PAIRS = SHARED / "lytro" / "pairs"
REFERENCE = SHARED / "reference" / "liu2020-survey" / "lytro"
AUTHORS_WEIGHTS = SHARED / "weights" / "liu2016-cnnmodel.mat"

ENFUSE_FLAGS = ["--exposure-weight=0", "--saturation-weight=0", "--contrast-weight=1",
                "--hard-mask"]

#: method -> (reference row it is compared with, reference kind)
REFERENCE_OF = {
    "dwt": "dwt (published)",
    "dwt (toolbox)": "dwt (published)",
    "dwt (4 levels)": "dwt (published)",
    "dtcwt": "dtcwt (published)",
    "dtcwt (toolbox)": "dtcwt (published)",
    "laplacian": "enfuse --hard-mask",
    "laplacian (4 levels)": "enfuse --hard-mask",
    "cnn": "cnn (published)",
    "cnn-dtcwt": "cnn",
}
ALL_METHODS = ("dwt", "dwt (4 levels)", "dwt (toolbox)", "dtcwt", "dtcwt (toolbox)",
               "laplacian", "laplacian (4 levels)", "cnn", "cnn-dtcwt", "enfuse --hard-mask")
NEEDS_WEIGHTS = ("cnn", "cnn-dtcwt")


def _to8(image: np.ndarray) -> np.ndarray:
    return (np.clip(image, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def _write8(path: Path, image8: np.ndarray) -> None:
    write_image(path, image8.astype(np.float64) / 255.0)  # write_image takes floats in [0, 1]


def _slug(method: str) -> str:
    return (method.replace(" (", "-").replace(")", "").replace(" --", "-").replace(" ", "-"))


def _enfuse(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """enfuse on the decoded 8-bit sources, written as plain PNG files (enfuse refuses to
    write PNG output when it copies the JPEG files' colour profile)."""
    with tempfile.TemporaryDirectory() as tmp:
        paths = [Path(tmp) / "a.png", Path(tmp) / "b.png"]
        for path, image in zip(paths, (a, b)):
            _write8(path, _to8(image))
        out = Path(tmp) / "fused.png"
        subprocess.run(["enfuse", *ENFUSE_FLAGS, "-o", str(out), *map(str, paths)],
                       check=True, capture_output=True)
        return read_image(out)[..., :3]  # enfuse adds an alpha channel (opaque here)


def _fuse(method: str, a: np.ndarray, b: np.ndarray, weights: Path | None) -> np.ndarray:
    if method == "enfuse --hard-mask":
        return _enfuse(a, b)
    if method == "dwt (toolbox)":
        return fuse_dwt([a, b], wavelet="db1", levels=4)
    if method == "dtcwt (toolbox)":
        return fuse_dtcwt([a, b], biort="legall", qshift="qshift_06", levels=4)
    if method == "dwt (4 levels)":
        return fuse_dwt([a, b], levels=4)
    if method == "laplacian (4 levels)":
        return fuse_laplacian([a, b], levels=4)
    if method in NEEDS_WEIGHTS:
        return focusfuse.fuse([a, b], method=method, weights=weights, precision="fp32",
                              device="cpu").fused
    # the defaults of the methods (focusfuse.fusion.options)
    return {"dwt": fuse_dwt, "dtcwt": fuse_dtcwt, "laplacian": fuse_laplacian}[method]([a, b])


def _machine() -> dict:
    info = machine_info()
    if shutil.which("enfuse"):
        out = subprocess.run(["enfuse", "--version"], capture_output=True, text=True)
        info["enfuse"] = (out.stdout or out.stderr).splitlines()[0] if (out.stdout or out.stderr) else "?"
    return info


def _at_least_as_good(row: dict[str, float], ref: dict[str, float]) -> list[str]:
    return [m for m in METRICS
            if (row[m] <= ref[m] if m in LOWER_IS_BETTER else row[m] >= ref[m])]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", type=Path, default=AUTHORS_WEIGHTS,
                        help="CNN weights for cnn and cnn-dtcwt (default: the authors' .mat in "
                             "../shared; a focusfuse safetensors file works too)")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "compare_multiscale",
                        help="cache of fused 8-bit PNG files and scores "
                             "(default runs/compare_multiscale)")
    parser.add_argument("--pairs", type=int, default=20, help="number of pairs (default 20)")
    parser.add_argument("--methods", default=",".join(ALL_METHODS),
                        help="comma-separated subset of: " + ", ".join(ALL_METHODS))
    parser.add_argument("--refresh", action="store_true", help="fuse again even when cached")
    parser.add_argument("--md", type=Path, help="write the Markdown table here")
    parser.add_argument("--json", type=Path, help="write per-pair scores as JSON here")
    args = parser.parse_args(argv)

    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = [m for m in methods if m not in ALL_METHODS]
    if unknown:
        parser.error(f"--methods: unknown {unknown}; choose from {', '.join(ALL_METHODS)}")
    if not PAIRS.is_dir():
        print(f"skipped: {PAIRS} is absent (the ../shared data folder)", file=sys.stderr)
        return 0
    if "enfuse --hard-mask" in methods and shutil.which("enfuse") is None:
        print("enfuse is not on PATH (apt-get install enfuse); leaving it out", file=sys.stderr)
        methods.remove("enfuse --hard-mask")
    if any(m in NEEDS_WEIGHTS for m in methods) and not args.weights.is_file():
        print(f"--weights {args.weights} is absent; leaving out the CNN methods",
              file=sys.stderr)
        methods = [m for m in methods if m not in NEEDS_WEIGHTS]

    # the published times were measured with freed memory kept for reuse (turned on then by
    # the first CNN fusion), as the `focusfuse` command does; library users opt in (docs/speed.md)
    focusfuse.keep_freed_memory()
    args.out.mkdir(parents=True, exist_ok=True)
    cache_file = args.out / "cache.json"  # times and scores of the cached images, by hash
    cache = json.loads(cache_file.read_text()) if cache_file.is_file() else {}
    scores: dict[str, list[dict[str, float]]] = {m: [] for m in methods}
    seconds: dict[str, list[float]] = {m: [] for m in methods}
    for k in range(1, args.pairs + 1):
        pair = f"lytro-{k:02d}"
        a, b = read_image(PAIRS / f"{pair}-A.jpg"), read_image(PAIRS / f"{pair}-B.jpg")
        for method in methods:
            png = args.out / _slug(method) / f"{pair}.png"
            key = f"{method}/{pair}"
            if args.refresh or not png.is_file() or key not in cache:
                start = time.perf_counter()
                fused = _to8(_fuse(method, a, b, args.weights))
                elapsed = time.perf_counter() - start
                png.parent.mkdir(parents=True, exist_ok=True)
                _write8(png, fused)
                cache[key] = {"seconds": elapsed}
            data = png.read_bytes()
            digest = hashlib.sha1(data).hexdigest()
            if cache[key].get("sha1") != digest:
                fused = read_image(png)
                cache[key].update(sha1=digest, scores=evaluate(a, b, _to8(fused)))
            scores[method].append(cache[key]["scores"])
            seconds[method].append(cache[key]["seconds"])
        cache_file.write_text(json.dumps(cache, indent=1))
        print(f"{pair} done", file=sys.stderr, flush=True)

    table = {m: {n: float(np.mean([s[n] for s in scores[m]])) for n in METRICS}
             for m in methods}
    published = {}
    with open(REFERENCE / "averages.csv", newline="") as f:
        for row in csv.DictReader(f):
            if row["method"] in ("dwt", "dtcwt", "cnn"):
                published[f"{row['method']} (published)"] = {n: float(row[n]) for n in METRICS}
    if args.pairs != 20:
        published = {}  # the survey's averages are over all 20 pairs
    rows = {**table, **published}

    lines = [f"Mean over {args.pairs} Lytro pairs, fused images rounded to 8 bit (QCV: lower "
             f"is better, the rest higher). \"≥ ref\": metrics at least as good as the "
             f"reference row named.", "",
             "| method | " + " | ".join(METRICS) + " | ≥ ref | s / pair |",
             "|---|" + "---:|" * len(METRICS) + "---|---:|"]
    for name, row in rows.items():
        ref = REFERENCE_OF.get(name)
        count = (f"{len(_at_least_as_good(row, rows[ref]))}/{len(METRICS)} vs {ref}"
                 if ref in rows else "")
        secs = f"{np.median(seconds[name]):.2f}" if name in seconds else ""
        lines.append(f"| {name} | " + " | ".join(
            f"{row[n]:.2f}" if n == "QCV" else f"{row[n]:.4f}" for n in METRICS)
            + f" | {count} | {secs} |")
    lines += ["", "s / pair: median fusion time per 520×520 colour pair when the image was "
              "made (CPU; enfuse includes reading and writing its files)."]
    text = "\n".join(lines)
    print(text)
    if args.md:
        args.md.write_text(text + "\n")
    if args.json:
        args.json.write_text(json.dumps({
            "machine": _machine(), "weights": str(args.weights), "enfuse_flags": ENFUSE_FLAGS,
            "means": rows, "seconds_per_pair": seconds,
            "per_pair": {m: [{"pair": f"lytro-{k:02d}", **s} for k, s in
                             enumerate(scores[m], 1)] for m in methods}}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
