"""Big images: time and peak memory of `focusfuse fuse` on a 4000×3000 colour pair.

    python benchmarks/bench_large.py [--width 4000 --height 3000] [--weights paper fast]
                                     [--runs 1]

Makes a multi-focus pair from scikit-image's astronaut resized to the size asked (one copy
blurred inside an ellipse, the other outside it), writes it as 8-bit PNG files in a temporary
folder, then runs the whole `focusfuse fuse` command once per model (after one run that is
not counted when --runs is above 1) and reports its wall time and the peak resident memory
of the process (the operating system's maximum RSS), with the agreement of the decision with
the known truth as a check that the result is right.
"""

from __future__ import annotations

import argparse
import os
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


def run_measured(cmd: list[str]) -> tuple[float, float]:
    """Wall time (s) and peak RSS (GB) of one child process."""
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(cmd)} failed: {proc.stderr.read().decode()}")
    return wall, usage.ru_maxrss / 1024**2  # ru_maxrss is in KiB on Linux


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--width", type=int, default=4000)
    ap.add_argument("--height", type=int, default=3000)
    ap.add_argument("--weights", nargs="+", default=["paper", "fast"])
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--extra", nargs=argparse.REMAINDER, default=[],
                    help="further options for `focusfuse fuse` (e.g. --precision fp32)")
    args = ap.parse_args(argv)
    from skimage import data

    sharp = cv2.resize(data.astronaut().astype(np.float32) / 255, (args.width, args.height),
                       interpolation=cv2.INTER_CUBIC).clip(0, 1)
    mask = region_mask(sharp.shape[:2])
    a, b = make_multifocus_pair(sharp, mask, sigma=3.0 * args.width / 512)
    del sharp
    exe = shutil.which("focusfuse") or str(Path(sys.executable).parent / "focusfuse")
    info = machine_info()
    print(f"{args.width}×{args.height} colour pair; machine: {info['cpu']}, {info['usable_cpus']} "
          f"CPUs, torch {info['torch']}, bf16 native: {info['cpu_bf16']}")
    print("| weights | wall time (s) | peak memory (GB) | decision = truth | runs |")
    print("|---|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        src = [ff.write_image(Path(tmp) / f"src{i}.png", im) for i, im in enumerate((a, b))]
        del a, b
        for weights in args.weights:
            out = Path(tmp) / f"fused-{weights}.png"
            steps = Path(tmp) / f"steps-{weights}"
            cmd = [exe, "fuse", *map(str, src), "-o", str(out), "--overwrite", "--weights", weights,
                   *args.extra]
            if args.runs > 1:
                run_measured(cmd)
            results = [run_measured(cmd) for _ in range(args.runs)]
            wall = statistics.median(r[0] for r in results)
            peak = max(r[1] for r in results)
            # the check runs once more with the maps saved (not timed)
            subprocess.run([*cmd, "--save-steps", str(steps)], check=True, capture_output=True)
            refined = ff.read_image(next(steps.glob("*refined*"))) > 0.5
            agree = float((refined == mask).mean())
            print(f"| {weights} | {wall:.1f} | {peak:.2f} | {100 * agree:.2f}% | {args.runs} |",
                  flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
