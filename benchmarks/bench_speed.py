"""Speed of CNN fusion: one colour pair, in-process and as a whole `focusfuse fuse` process.

    python benchmarks/bench_speed.py [--size 520] [--runs 5] [--json out.json]

In-process times call the public API (``focusfuse.fuse`` with a loaded model) after one
warm-up run, for each architecture and precision; the whole-process time runs the console
script (imports, reading, writing included). The pair is Lytro pair 01 from ../shared when
present and --size is 520, otherwise a synthetic pair made from scikit-image's astronaut.
Prints a Markdown table with the median and spread, and the machine.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

import focusfuse as ff
from focusfuse.bench.machine import machine_info
from focusfuse.examples import make_multifocus_pair, region_mask

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def load_pair(size: int) -> tuple[list[np.ndarray], str]:
    lytro = SHARED / "lytro" / "pairs"
    if size == 520 and lytro.is_dir():
        return [ff.read_image(lytro / f"lytro-01-{s}.jpg") for s in "AB"], "lytro-01 (520×520)"
    from skimage import data

    sharp = cv2.resize(data.astronaut().astype(np.float32) / 255, (size, size),
                       interpolation=cv2.INTER_CUBIC).clip(0, 1)
    a, b = make_multifocus_pair(sharp, region_mask(sharp.shape[:2]), sigma=3.0)
    return [a, b], f"astronaut resized to {size}×{size}"


def timed(fn, runs: int) -> dict:
    fn()  # warm-up
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return {"median": statistics.median(times), "min": min(times), "max": max(times),
            "runs": runs}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=520)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    # the published figures were measured with freed memory kept for reuse, as the
    # `focusfuse` command does for its own process; library users opt in (docs/speed.md)
    kept = ff.keep_freed_memory()
    pair, source = load_pair(args.size)
    rows = []
    models = {"paper (shipped)": ff.load_weights()}
    mat = SHARED / "weights" / "liu2016-cnnmodel.mat"
    if mat.is_file():
        models["released (authors')"] = ff.load_weights(mat)
    models["fast (shipped)"] = ff.load_weights("fast")
    for name, model in models.items():
        for precision in ("bf16", "fp32"):
            r = timed(lambda: ff.fuse(pair, model=model, precision=precision), args.runs)
            rows.append({"what": f"in-process, {name}, {precision}", **r})
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for i, im in enumerate(pair):
            paths.append(ff.write_image(Path(tmp) / f"src{i}.png", im))
        exe = shutil.which("focusfuse") or str(Path(sys.executable).parent / "focusfuse")
        cmd = [exe, "fuse", *map(str, paths), "-o", str(Path(tmp) / "out.png"), "--overwrite"]
        r = timed(lambda: subprocess.run(cmd, check=True, capture_output=True), max(3, args.runs // 2))
        rows.append({"what": "whole `focusfuse fuse` process, shipped model, auto precision", **r})
    info = {**machine_info(), "freed_memory_kept": kept}
    print(f"pair: {source}; machine: {info['cpu']}, {info['usable_cpus']} CPUs, torch "
          f"{info['torch']} ({info['torch_threads']} threads), bf16 native: {info['cpu_bf16']}, "
          f"freed memory kept in-process: {kept}")
    print("| what | median (s) | min (s) | max (s) | runs |\n|---|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['what']} | {r['median']:.2f} | {r['min']:.2f} | {r['max']:.2f} | {r['runs']} |")
    if args.json:
        Path(args.json).write_text(json.dumps({"pair": source, "machine": info, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
