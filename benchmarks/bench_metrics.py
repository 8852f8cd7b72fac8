"""Speed of the eight fusion metrics on one 520 x 520 triplet.

Usage::

    python benchmarks/bench_metrics.py [--runs 7] [--json out.json] [--markdown out.md]

Times ``focusfuse.metrics.evaluate(a, b, fused)`` (all eight metrics, gray conversion
included) and each metric alone, after one warm-up call, and prints the median and the
spread (min..max and interquartile range) with the machine it ran on. QP keeps the phase
congruency of the last images it saw, by content; every timed call starts without it (a
pair's first triplet), and one more row times a second method's output on the same pair
(the sources' maps kept, as when several methods' outputs are scored pair by pair). The triplet is
Lytro pair 01 with the survey's CNN result from ``../shared`` when that folder exists,
otherwise a seeded synthetic 520 x 520 triplet. Target: at most 1 s for all eight.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np

import focusfuse.metrics as fm
from focusfuse.bench.machine import machine_info

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
LYTRO = SHARED / "data" / "lytro" / "pairs"
REFERENCE = SHARED / "data" / "reference" / "liu2020-survey" / "lytro"


def load_triplet() -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:
    """Lytro pair 01 and the CNN result when ../shared exists, else a synthetic triplet."""
    fused_path = REFERENCE / "cnn" / "lytro-01.png"
    if fused_path.is_file():
        from focusfuse.io import read_image

        a = read_image(LYTRO / "lytro-01-A.jpg")
        b = read_image(LYTRO / "lytro-01-B.jpg")
        return a, b, read_image(fused_path), "lytro-01 (cnn), 520x520 RGB from ../shared"
    from scipy import ndimage

    rng = np.random.default_rng(0)
    sharp = ndimage.gaussian_filter(rng.random((520, 520, 3)), (2, 2, 0))
    sharp = (sharp - sharp.min()) / (sharp.max() - sharp.min())
    blurred = ndimage.gaussian_filter(sharp, (3, 3, 0))
    a = sharp.copy()
    a[:, 260:] = blurred[:, 260:]
    b = sharp.copy()
    b[:, :260] = blurred[:, :260]
    to8 = lambda x: np.round(x * 255).astype(np.uint8)  # noqa: E731
    return to8(a), to8(b), to8(sharp), "synthetic seeded 520x520 RGB (../shared absent)"


def _forget() -> None:
    """Drop the phase congruency QP keeps (timing a pair's first triplet)."""
    from focusfuse.metrics import phase_congruency

    phase_congruency._kept.clear()


def time_call(fn, runs: int, before=_forget) -> dict:
    before()
    fn()  # warm-up: caches of filter banks, first-touch allocations
    times = []
    for _ in range(runs):
        before()
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    q = statistics.quantiles(times, n=4) if len(times) >= 2 else [times[0]] * 3
    return {
        "median_s": statistics.median(times),
        "min_s": min(times),
        "max_s": max(times),
        "iqr_s": q[2] - q[0],
        "runs": runs,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=7, help="timed runs after the warm-up (default 7)")
    parser.add_argument("--json", type=Path, default=None, help="write the results as JSON here")
    parser.add_argument("--markdown", type=Path, default=None, help="write a Markdown table here")
    args = parser.parse_args()

    a, b, fused, source = load_triplet()
    info = machine_info()
    results = {"all eight (evaluate)": time_call(lambda: fm.evaluate(a, b, fused), args.runs)}

    def sources_kept():
        _forget()
        fm.qp(a, b, a)

    results["all eight, the sources' QP maps kept"] = time_call(
        lambda: fm.evaluate(a, b, fused), args.runs, before=sources_kept)
    for name in fm.METRICS:
        results[name] = time_call(lambda n=name: fm.evaluate(a, b, fused, metrics=[n]), args.runs)

    print(f"input: {source}")
    print(
        f"machine: {info['cpu']}; {info['usable_cpus']} usable of {info['cpu_count']} CPUs; "
        f"threads env {info['thread_env'] or 'unset'}"
    )
    print(f"python {info['python']}, numpy {info['numpy']}, scipy {info['scipy']}, {info['platform']}")
    if "threadpools" in info:
        print(f"thread pools: {info['threadpools']}")
    lines = [
        "| metric | median (ms) | min (ms) | max (ms) | IQR (ms) | runs |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, r in results.items():
        lines.append(
            f"| {name} | {1e3 * r['median_s']:.1f} | {1e3 * r['min_s']:.1f} | "
            f"{1e3 * r['max_s']:.1f} | {1e3 * r['iqr_s']:.1f} | {r['runs']} |"
        )
    table = "\n".join(lines)
    print(table)
    total = results["all eight (evaluate)"]["median_s"]
    print(f"all eight metrics: median {total:.3f} s (target <= 1 s: {'met' if total <= 1.0 else 'NOT met'})")

    if args.json:
        args.json.write_text(json.dumps({"input": source, "machine": info, "results": results}, indent=2))
    if args.markdown:
        args.markdown.write_text(f"Input: {source}\n\nMachine: {info['cpu']}, numpy {info['numpy']}\n\n{table}\n")


if __name__ == "__main__":
    main()
