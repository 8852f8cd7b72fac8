"""Timing benchmark of the multiscale fusion methods (DWT, DTCWT, Laplacian pyramid).

Fuses one 520 x 520 colour pair -- ../shared/data/lytro/pairs/lytro-01-A.jpg and -B.jpg when
present, else a seeded synthetic pair of the same size -- with each method's defaults,
after one warm-up run, ``--repeat`` times; prints a Markdown table of the median and the
spread (min, max and the interquartile range) and, with ``--json PATH``, writes the numbers
and the machine's description there.

Usage: python benchmarks/bench_multiscale.py [--repeat 7] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import cv2
import numpy as np
import pywt
from scipy.ndimage import gaussian_filter

from focusfuse.bench.machine import machine_info
from focusfuse.fusion.multiscale import fuse_dtcwt, fuse_dwt, fuse_laplacian

ROOT = Path(__file__).resolve().parents[1]
PAIR = ROOT.parent / "shared" / "data" / "lytro" / "pairs"

METHODS = {
    "dwt": lambda images: fuse_dwt(images),
    "dtcwt": lambda images: fuse_dtcwt(images),
    "dtcwt (cnn decision)": None,  # filled in main(): needs the pair's size
    "laplacian": lambda images: fuse_laplacian(images),
}


def load_pair() -> tuple[list[np.ndarray], str]:
    a_path, b_path = PAIR / "lytro-01-A.jpg", PAIR / "lytro-01-B.jpg"
    if a_path.is_file() and b_path.is_file():
        from focusfuse.io import read_image

        return [read_image(a_path), read_image(b_path)], "lytro-01 (520x520 colour)"
    rng = np.random.default_rng(0)
    sharp = gaussian_filter(rng.random((520, 520, 3)), (1.5, 1.5, 0)).astype(np.float32)
    blurred = gaussian_filter(sharp, (3, 3, 0)).astype(np.float32)
    a, b = sharp.copy(), sharp.copy()
    a[:, 260:], b[:, :260] = blurred[:, 260:], blurred[:, :260]
    return [a, b], "synthetic 520x520 colour pair (seed 0; ../shared absent)"


def machine() -> dict:
    return {**machine_info(), "pywavelets": pywt.__version__, "opencv": cv2.__version__,
            "opencv_threads": cv2.getNumThreads()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7, help="timed runs per method (default 7)")
    parser.add_argument("--json", type=Path, help="also write the results as JSON here")
    args = parser.parse_args(argv)

    images, source = load_pair()
    h, w = images[0].shape[:2]
    decision = np.zeros((h, w), np.float32)
    decision[:, : w // 2] = 1.0
    methods = dict(METHODS)
    methods["dtcwt (cnn decision)"] = lambda imgs: fuse_dtcwt(imgs, decision=decision)

    results = {}
    for name, fuse in methods.items():
        fuse(images)  # warm-up
        times = []
        for _ in range(args.repeat):
            start = time.perf_counter()
            fuse(images)
            times.append(time.perf_counter() - start)
        t = np.array(times)
        results[name] = {
            "median_s": float(np.median(t)), "min_s": float(t.min()), "max_s": float(t.max()),
            "iqr_s": float(np.subtract(*np.percentile(t, [75, 25]))), "runs": t.tolist(),
        }

    lines = [f"Input: {source}; {args.repeat} runs after one warm-up.", "",
             "| method | median (s) | IQR (s) | min (s) | max (s) |", "|---|---|---|---|---|"]
    for name, r in results.items():
        lines.append(f"| {name} | {r['median_s']:.3f} | {r['iqr_s']:.3f} | "
                     f"{r['min_s']:.3f} | {r['max_s']:.3f} |")
    print("\n".join(lines))
    if args.json:
        args.json.write_text(json.dumps(
            {"input": source, "repeat": args.repeat, "machine": machine(), "results": results},
            indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
