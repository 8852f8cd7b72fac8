"""Training curves of `focusfuse train` runs: losses, held-out accuracy, Lytro agreement.

    python experiments/training_report.py RUN_DIR [--agreement-every 2000] [--out FIG.png]

Reads RUN_DIR/log.jsonl (one line per validation) and draws, against the number of training
pairs seen: the training and validation losses, the held-out error rates (all blur levels,
and the lightest blur only when the run logged it) and the learning rate. With
``--agreement-every N`` and a run made with ``--keep-snapshots``, it also fuses the 20 Lytro
pairs (../shared/data/lytro) with the snapshot of every N-th step and with the authors'
released weights, both in fp32, and plots how often the final binary maps agree; those
numbers are cached in RUN_DIR/lytro_agreement.json, so a second call only draws.
Prints the log as a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

#: holds _lytro.py, the Lytro pairs and the authors' model as the quality benchmarks use them
BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def read_log(run: Path) -> list[dict]:
    path = run / "log.jsonl"
    if not path.is_file():
        raise SystemExit(f"{path} does not exist: give the folder of a `focusfuse train` run")
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def lytro_agreement(run: Path, steps: list[int]) -> dict[int, dict]:
    """Mean (and worst) agreement of the final binary maps with the authors', per step."""
    import focusfuse as ff

    cache_path = run / "lytro_agreement.json"
    cache = {int(k): v for k, v in json.loads(cache_path.read_text()).items()} \
        if cache_path.is_file() else {}
    todo = [s for s in steps if s not in cache]
    if todo:
        sys.path.insert(0, str(BENCHMARKS))
        from _lytro import authors_results, lytro_pairs
        from focusfuse.bench.machine import machine_info

        info = machine_info()
        print(f"machine: {info['cpu']}, {info['usable_cpus']} CPUs, torch {info['torch']}, "
              f"bf16 native: {info['cpu_bf16']}, GPU: {info['gpu']}", file=sys.stderr)

        pairs = lytro_pairs()
        refs = [r.refined_map for r in authors_results(pairs)]
        for step in todo:
            snap = run / "snapshots" / f"step-{step:06d}.safetensors"
            if not snap.is_file():
                raise SystemExit(f"{snap} is missing: train with --keep-snapshots")
            model = ff.load_weights(snap)
            agree = [float((ff.fuse(p, model=model, precision="fp32").refined_map == r).mean())
                     for p, r in zip(pairs, refs)]
            cache[step] = {"mean": float(np.mean(agree)), "min": float(np.min(agree))}
            print(f"step {step}: Lytro agreement {100 * cache[step]['mean']:.2f}% "
                  f"(worst pair {100 * cache[step]['min']:.2f}%)", file=sys.stderr, flush=True)
            cache_path.write_text(json.dumps(cache, indent=1))
    return {s: cache[s] for s in steps}


def plot(log: list[dict], agreement: dict[int, dict], out: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pairs = np.array([r["pairs_seen"] for r in log]) / 1e6
    n_panels = 3 if agreement else 2
    fig, axes = plt.subplots(1, n_panels, figsize=(4.2 * n_panels, 3.4), constrained_layout=True)
    ax = axes[0]
    ax.semilogy(pairs, [r["train_loss"] for r in log], label="training loss (mean since last)")
    ax.semilogy(pairs, [r["val_loss"] for r in log], label="validation loss")
    if "hard_val_loss" in log[0]:
        ax.semilogy(pairs, [r["hard_val_loss"] for r in log], label="validation loss, lightest blur")
    for r in log:
        if "lr_dropped_to" in r:
            ax.axvline(r["pairs_seen"] / 1e6, color="gray", lw=0.8, ls=":")
    ax.set_xlabel("training pairs seen (millions)")
    ax.set_ylabel("cross-entropy")
    ax.legend(fontsize=7)
    ax.set_title("loss (dotted: learning rate ÷ 10)", fontsize=9)

    ax = axes[1]
    floor = 0.5 / 20000  # half a pair in 20,000: where 0 errors are drawn
    err = [max(1 - r["val_accuracy"], floor) for r in log]
    ax.semilogy(pairs, np.array(err) * 100, "o-", ms=3, label="held-out pairs, 5 blur levels")
    if "hard_val_accuracy" in log[0]:
        herr = [max(1 - r["hard_val_accuracy"], floor) for r in log]
        ax.semilogy(pairs, np.array(herr) * 100, "s-", ms=3, label="held-out pairs, lightest blur")
    ax.axhline(100 - 99.49, color="k", lw=0.8, ls="--", label="paper: 99.49% accuracy")
    ax.set_xlabel("training pairs seen (millions)")
    ax.set_ylabel("error rate (%)")
    ax.legend(fontsize=7)
    ax.set_title("held-out error (0 errors drawn at 0.0025%)", fontsize=9)

    if agreement:
        ax = axes[2]
        steps = sorted(agreement)
        bs = log[0]["pairs_seen"] / log[0]["step"]
        x = np.array(steps) * bs / 1e6
        ax.plot(x, [100 * agreement[s]["mean"] for s in steps], "o-", ms=3, label="mean of 20 pairs")
        ax.plot(x, [100 * agreement[s]["min"] for s in steps], "s--", ms=3, label="worst pair")
        ax.set_xlabel("training pairs seen (millions)")
        ax.set_ylabel("agreement (%)")
        ax.legend(fontsize=7)
        ax.set_title("Lytro: final binary map = authors' model", fontsize=9)
    fig.suptitle(title, fontsize=10)
    fig.savefig(out, dpi=110)
    plt.close(fig)


def table(log: list[dict], agreement: dict[int, dict]) -> str:
    hard = "hard_val_accuracy" in log[0]
    head = ["step", "pairs seen", "lr", "train loss", "val loss", "val accuracy"]
    head += ["lightest-blur accuracy"] * hard + ["Lytro agreement"] * bool(agreement)
    lines = ["| " + " | ".join(head) + " |", "|" + "---:|" * len(head)]
    for r in log:
        cells = [str(r["step"]), f"{r['pairs_seen']:,}", f"{r['lr']:g}", f"{r['train_loss']:.4f}",
                 f"{r['val_loss']:.5f}", f"{100 * r['val_accuracy']:.3f}%"]
        if hard:
            cells.append(f"{100 * r['hard_val_accuracy']:.3f}%")
        if agreement:
            a = agreement.get(r["step"])
            cells.append(f"{100 * a['mean']:.2f}%" if a else "")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path, help="folder of a `focusfuse train` run")
    ap.add_argument("--agreement-every", type=int, default=0,
                    help="also measure the Lytro agreement of every N-th step's snapshot")
    ap.add_argument("--also", type=int, nargs="*", default=[],
                    help="further steps whose snapshots to measure (e.g. the best one)")
    ap.add_argument("--out", type=Path, default=None, help="figure (PNG) to write")
    ap.add_argument("--title", default=None)
    args = ap.parse_args(argv)
    log = read_log(args.run)
    agreement = {}
    if args.agreement_every or args.also:
        every = args.agreement_every or 10**9
        steps = sorted({r["step"] for r in log if r["step"] % every == 0} | set(args.also))
        agreement = lytro_agreement(args.run, steps)
    print(table(log, agreement))
    if args.out:
        plot(log, agreement, args.out, args.title or args.run.name)
        print(f"figure: {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
