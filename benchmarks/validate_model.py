"""Validation accuracy of a focus classifier on held-out blurred patch pairs.

    python benchmarks/validate_model.py [--weights FILE] [--data DIR] [--pairs 20000]

Makes the same held-out pairs as ``focusfuse train --holdout-suffix .png --seed 0``
(the 68 PNG images of ../shared/data/bsds500, seed 2 = training seed + 2) and prints the
machine, then the accuracy and cross-entropy of the given weights (default: the shipped model)
in fp32.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from focusfuse.bench.machine import machine_info
from focusfuse.data.synthesis import list_images, make_pairs
from focusfuse.models import load_weights
from focusfuse.train import evaluate_pairs

SHARED = Path(__file__).resolve().parents[1].parent / "shared"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", default=None)
    ap.add_argument("--data", default=str(SHARED / "data" / "bsds500"))
    ap.add_argument("--suffix", default=".png", help="the held-out images' suffix")
    ap.add_argument("--pairs", type=int, default=20000)
    ap.add_argument("--seed", type=int, default=2)
    ap.add_argument("--blur-levels", type=int, default=5)
    ap.add_argument("--blur-kernel", default="gaussian")
    args = ap.parse_args(argv)
    info = machine_info()
    print(f"machine: {info['cpu']}, {info['usable_cpus']} CPUs, torch {info['torch']}, "
          f"bf16 native: {info['cpu_bf16']}, GPU: {info['gpu']}")
    files = list_images(args.data, suffixes=(args.suffix,))
    a, b, y = make_pairs(files, args.pairs, seed=args.seed, levels=args.blur_levels,
                         kernel=args.blur_kernel)
    model = load_weights(args.weights)
    loss, acc = evaluate_pairs(model, a, b, y, bf16=False)
    print(f"{len(files)} held-out images, {args.pairs} pairs: accuracy {100 * acc:.3f}% "
          f"({round((1 - acc) * args.pairs)} wrong), cross-entropy {loss:.5f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
