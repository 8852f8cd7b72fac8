"""How often a model's final binary decision map agrees with the authors' model on Lytro.

    python benchmarks/lytro_agreement.py [--weights FILE] [--precision fp32]

For each of the 20 Lytro pairs (../shared/data/lytro/pairs), fuses with the given weights
(default: the shipped model) and with the authors' released weights
(../shared/data/weights/liu2016-cnnmodel.mat), both in fp32, and prints the machine and the
share of pixels where the refined binary maps (after small-region removal) agree, per pair and
on average.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

import focusfuse as ff
from _lytro import authors_results, lytro_pairs
from focusfuse.bench.machine import machine_info


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", default=None, help="weights to compare (default: shipped model)")
    ap.add_argument("--precision", default="fp32")
    ap.add_argument("--json", default=None, help="also write the numbers to this JSON file")
    args = ap.parse_args(argv)
    info = machine_info()
    print(f"machine: {info['cpu']}, {info['usable_cpus']} CPUs, torch {info['torch']}, "
          f"bf16 native: {info['cpu_bf16']}, GPU: {info['gpu']}")
    pairs = lytro_pairs()
    theirs = authors_results(pairs)
    ours = ff.load_weights(args.weights)
    rows = []
    for i, (pair, r2) in enumerate(zip(pairs, theirs), 1):
        r1 = ff.fuse(pair, model=ours, precision=args.precision)
        agree = float((r1.refined_map == r2.refined_map).mean())
        raw = float((r1.binary_map == r2.binary_map).mean())
        rows.append({"pair": f"lytro-{i:02d}", "refined_agreement": agree, "binary_agreement": raw})
        print(f"lytro-{i:02d}  refined {100 * agree:6.2f}%  binary {100 * raw:6.2f}%", flush=True)
    mean = float(np.mean([r["refined_agreement"] for r in rows]))
    worst = min(rows, key=lambda r: r["refined_agreement"])
    print(f"mean agreement of final binary maps: {100 * mean:.2f}% "
          f"(worst {worst['pair']}: {100 * worst['refined_agreement']:.2f}%)")
    if args.json:
        Path(args.json).write_text(json.dumps({"weights": str(args.weights or "shipped"),
                                               "machine": info, "mean": mean, "pairs": rows},
                                              indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
