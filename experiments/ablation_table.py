"""Training ablations side by side: held-out accuracy under several blurs, Lytro metrics.

    python experiments/ablation_table.py NAME=WEIGHTS [NAME=WEIGHTS ...] [--pairs 20000]

For each model: accuracy on held-out pairs (the 68 PNG images of ../shared/data/bsds500,
seed 2) made with the paper's five Gaussian levels, with three levels, and with five levels
of a uniform disk kernel (defocus-like), in fp32; then, on the 20 Lytro pairs, the mean of the
eight metrics of the fused images (bf16, rounded to 8 bit) and the agreement of the final
binary maps with the authors' released model. Prints the machine and a Markdown table.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

import focusfuse as ff
from focusfuse.bench.machine import machine_info
from focusfuse.data.synthesis import list_images, make_pairs
from focusfuse.metrics import METRICS, evaluate
from focusfuse.train import evaluate_pairs

# the Lytro pairs and the authors' model come from the helper the quality benchmarks share
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from _lytro import SHARED, authors_results, lytro_pairs  # noqa: E402

BLURS = {"gauss×5": (5, "gaussian"), "gauss×3": (3, "gaussian"), "disk×5": (5, "disk")}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="+", help="NAME=WEIGHTS (a file or a shipped name)")
    ap.add_argument("--pairs", type=int, default=20000)
    args = ap.parse_args(argv)
    if not SHARED.is_dir():
        print(f"needs the shared data at {SHARED}", file=sys.stderr)
        return 2
    models = {}
    for item in args.models:
        name, _, weights = item.partition("=")
        models[name] = ff.load_weights(weights or name)
    files = list_images(SHARED / "bsds500", suffixes=(".png",))
    val = {k: make_pairs(files, args.pairs, seed=2, levels=lv, kernel=kern)
           for k, (lv, kern) in BLURS.items()}
    pairs = lytro_pairs()
    theirs = [r.refined_map for r in authors_results(pairs)]
    info = machine_info()  # the fused images are bf16 where the CPU has it
    print(f"machine: {info['cpu']}, {info['usable_cpus']} CPUs, torch {info['torch']}, "
          f"bf16 native: {info['cpu_bf16']}, GPU: {info['gpu']}\n")
    head = ["model", *(f"acc {k}" for k in BLURS), *METRICS, "Lytro agreement"]
    print("| " + " | ".join(head) + " |\n|" + "---|" * len(head), flush=True)
    for name, model in models.items():
        accs = [evaluate_pairs(model, *val[k], bf16=False)[1] for k in BLURS]
        scores, agree = [], []
        for p, ref in zip(pairs, theirs):
            r = ff.fuse(p, model=model)
            fused8 = ff.io.quantize(r.fused, 8)
            scores.append(evaluate(*p, fused8))
            agree.append(float((r.refined_map == ref).mean()))
        means = [np.mean([s[m] for s in scores]) for m in METRICS]
        cells = [f"{100 * a:.2f}%" for a in accs] + [f"{v:.4f}" for v in means[:-1]]
        cells += [f"{means[-1]:.2f}", f"{100 * np.mean(agree):.2f}%"]
        print(f"| {name} | " + " | ".join(cells) + " |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
