"""Quality of the multiscale fusion methods on the 20 Lytro pairs, against published results.

For each pair of ``../shared/data/lytro/pairs`` this fuses with our ``fuse_dwt``,
``fuse_dtcwt`` and ``fuse_laplacian`` (default settings: those of Yu Liu's MST toolbox),
rounds to 8 bit as the published PNG files are, and scores the result with
``focusfuse.metrics.evaluate`` (the eight metrics of the Liu et al. 2020 survey). As a check
of the metric code, the published ``dwt`` and ``dtcwt`` images are scored the same way; the
survey's own averages (``averages.csv``) are listed beside them. Optionally (``--enfuse``)
enfuse's Laplacian-pyramid blending with a hard contrast mask is scored too.

Usage: python benchmarks/compare_multiscale.py [--pairs N] [--enfuse] [--json PATH] [--md PATH]
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from focusfuse.fusion.multiscale import fuse_dtcwt, fuse_dwt, fuse_laplacian
from focusfuse.io import read_image
from focusfuse.metrics import METRICS, evaluate

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
PAIRS = SHARED / "lytro" / "pairs"
REFERENCE = SHARED / "reference" / "liu2020-survey" / "lytro"
LOWER_IS_BETTER = {"QCV"}

OURS = {"dwt (ours)": fuse_dwt, "dtcwt (ours)": fuse_dtcwt, "laplacian (ours)": fuse_laplacian}


def _to8(image: np.ndarray) -> np.ndarray:
    return (np.clip(image, 0, 1) * 255 + 0.5).astype(np.uint8)


def _enfuse(a_path: Path, b_path: Path) -> np.ndarray:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out.png"
        subprocess.run(
            ["enfuse", "--exposure-weight=0", "--saturation-weight=0", "--contrast-weight=1",
             "--hard-mask", "-o", str(out), str(a_path), str(b_path)],
            check=True, capture_output=True,
        )
        return read_image(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=20, help="number of pairs (default 20)")
    parser.add_argument("--enfuse", action="store_true", help="also score enfuse (needs it on PATH)")
    parser.add_argument("--json", type=Path, help="write per-pair scores as JSON here")
    parser.add_argument("--md", type=Path, help="write the Markdown table here")
    args = parser.parse_args(argv)
    if not PAIRS.is_dir():
        print(f"skipped: {PAIRS} is absent (the ../shared data folder)", file=sys.stderr)
        return 0
    if args.enfuse and shutil.which("enfuse") is None:
        parser.error("--enfuse: enfuse is not on PATH; install it (apt-get install enfuse)")

    scores: dict[str, list[dict[str, float]]] = {}
    timings: dict[str, float] = {}
    for k in range(1, args.pairs + 1):
        a_path, b_path = PAIRS / f"lytro-{k:02d}-A.jpg", PAIRS / f"lytro-{k:02d}-B.jpg"
        a, b = read_image(a_path), read_image(b_path)
        results = {}
        for name, fuse in OURS.items():
            start = time.perf_counter()
            results[name] = _to8(fuse([a, b]))
            timings[name] = timings.get(name, 0.0) + time.perf_counter() - start
        if args.enfuse:
            results["enfuse --hard-mask"] = _to8(_enfuse(a_path, b_path))
        for method in ("dwt", "dtcwt"):
            published = REFERENCE / method / f"lytro-{k:02d}.png"
            if published.is_file():
                results[f"{method} (published image)"] = read_image(published)
        for name, fused in results.items():
            scores.setdefault(name, []).append(evaluate(a, b, fused))
        print(f"pair {k:02d} done", file=sys.stderr)

    table = {name: {m: float(np.mean([s[m] for s in rows])) for m in METRICS}
             for name, rows in scores.items()}
    with open(REFERENCE / "averages.csv", newline="") as f:
        for row in csv.DictReader(f):
            if row["method"] in ("dwt", "dtcwt"):
                table[f"{row['method']} (survey averages.csv)"] = {m: float(row[m]) for m in METRICS}

    lines = [f"Mean over {args.pairs} Lytro pairs (QCV: lower is better; the rest higher).", "",
             "| method | " + " | ".join(METRICS) + " |",
             "|---|" + "---|" * len(METRICS)]
    for name, row in table.items():
        lines.append(f"| {name} | " + " | ".join(f"{row[m]:.4f}" for m in METRICS) + " |")
    for ours, ref in (("dwt (ours)", "dwt (survey averages.csv)"),
                      ("dtcwt (ours)", "dtcwt (survey averages.csv)")):
        if ours in table and ref in table:
            wins = [m for m in METRICS if (table[ours][m] <= table[ref][m] if m in LOWER_IS_BETTER
                                           else table[ours][m] >= table[ref][m])]
            lines.append("")
            lines.append(f"{ours} at least as good as {ref} on {len(wins)} of {len(METRICS)}: "
                         f"{', '.join(wins) or 'none'}")
    lines.append("")
    lines.append("Fusion time per pair (s): " + ", ".join(
        f"{k} {v / args.pairs:.2f}" for k, v in timings.items()))
    text = "\n".join(lines)
    print(text)
    if args.md:
        args.md.write_text(text + "\n")
    if args.json:
        args.json.write_text(json.dumps({"means": table, "per_pair": scores}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
