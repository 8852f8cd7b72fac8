"""How much bfloat16 changes the CNN's decisions: final binary maps, bf16 against fp32.

    python benchmarks/precision_agreement.py [--weights paper|fast|FILE]

Fuses the 20 Lytro pairs (../shared/data/lytro/pairs) with the same model in fp32 and in
bf16 and prints the machine, then, per pair and overall, the share of pixels whose final
binary decision (after small-region removal) differs, and the largest difference of the fused
images.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

import focusfuse as ff
from _lytro import lytro_pairs
from focusfuse.bench.machine import machine_info


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", default=None, help="model (default: the shipped paper model)")
    args = ap.parse_args(argv)
    info = machine_info()  # bf16 results depend on the CPU's kernels
    print(f"machine: {info['cpu']}, {info['usable_cpus']} CPUs, torch {info['torch']}, "
          f"bf16 native: {info['cpu_bf16']}, GPU: {info['gpu']}")
    pairs = lytro_pairs()
    model = ff.load_weights(args.weights)
    shares = []
    for i, pair in enumerate(pairs, 1):
        r32 = ff.fuse(pair, model=model, precision="fp32")
        r16 = ff.fuse(pair, model=model, precision="bf16")
        share = float((r32.refined_map != r16.refined_map).mean())
        shares.append(share)
        diff = np.abs(r32.fused - r16.fused).max() * 255
        print(f"lytro-{i:02d}  decisions differ on {100 * share:.3f}% of pixels, "
              f"fused images by at most {diff:.1f} gray levels", flush=True)
    print(f"mean {100 * np.mean(shares):.3f}%, worst {100 * max(shares):.3f}% of pixels differ")
    return 0


if __name__ == "__main__":
    sys.exit(main())
