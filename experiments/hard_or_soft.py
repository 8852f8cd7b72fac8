"""Hard or soft at the boundary: the two targets of issue 18 measured on the same outputs.

Issue 18 asks one method for two things: on the synthetic truth, a mean PSNR above
``laplacian`` (a soft, per-band blend); on Lytro, the survey's eight metrics at least as
good as the best of the 18 published methods on 5 of 8 (QMI, QNCIE, QG and QY are led by
SRCF, a one-source-per-pixel method). This script fuses every pair once per candidate and
scores it both ways, from fully hard to fully soft:

- ``cnn``: the paper method (the decision guided-filtered into weights);
- ``cnn-hard``: the paper's own refined binary map with no guided filter (every fused
  pixel is a pixel of A or of B);
- ``cnn-hard+bandW``: that, with ``learned-pyramid``'s result within W pixels of the
  binary map's boundary (soft only in a band at the boundary);
- ``learned``: ``learned-pyramid``;
- ``snapT``: ``learned-pyramid``, with each pixel replaced by the source whose 9×9 mean
  absolute gray difference to it is under T gray levels (the closer source): a real
  source pixel wherever the learned result is within T of one;
- ``closestW``: every pixel from the source closer to ``learned-pyramid`` in a W×W window
  (a hard decision placed by the learned result);
- ``laplacian`` (truth folders only);
- ``truth-placedW`` (truth folders only; a ceiling, not a method): every pixel from the
  source closer to the *truth* in a W×W window, the best that a hard decision smooth at
  that scale can do.

Lytro scores are on 8-bit outputs as ``focusfuse bench`` gives them; the truth folders'
PSNR and SSIM are ``focusfuse.metrics.psnr``/``ssim`` on the whole image (no
registration: use the clean and noisy variants). Settings of the candidates were looked at
on pairs made from BSDS500 training JPEGs, not on the held-out PNGs or on Lytro::

    focusfuse make-truth ../shared/data/bsds500 --out /tmp/truth-jpg --suffix .jpg --count 20 --seed 11
    .venv/bin/python experiments/hard_or_soft.py --lytro --truth /tmp/truth-jpg/clean /tmp/truth-jpg/noisy

Published in docs/learned.md, "Hard or soft: why the Lytro target is not met".
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

import focusfuse as ff
from focusfuse import metrics as M
from focusfuse.color import to_gray

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

BANDS = (4, 8, 16)
SNAPS = (1, 2, 4)
WINDOWS = (3, 5, 9, 15)
TRUTH_WINDOWS = (5, 9)


def _channels(mask: np.ndarray, like: np.ndarray) -> np.ndarray:
    return mask[..., None] if like.ndim == 3 else mask


def pick(take_a: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Each pixel from ``a`` where the (H, W) ``take_a`` is true, else from ``b``."""
    return np.where(_channels(take_a, a), a, b)


def closer_to(a: np.ndarray, b: np.ndarray, target: np.ndarray, w: int) -> np.ndarray:
    """(H, W): where ``a``'s squared error to ``target`` (summed over the colours) is at
    most ``b``'s, in W×W means (W = 1: per pixel)."""
    ea = ((a - target) ** 2).reshape(*a.shape[:2], -1).sum(-1)
    eb = ((b - target) ** 2).reshape(*b.shape[:2], -1).sum(-1)
    if w > 1:
        ea, eb = ndi.uniform_filter(ea, w), ndi.uniform_filter(eb, w)
    return ea <= eb


def candidates(a: np.ndarray, b: np.ndarray, with_laplacian: bool) -> dict[str, np.ndarray]:
    paper = ff.fuse([a, b], method="cnn")
    learned = ff.fuse([a, b], method="learned-pyramid").fused
    refined = paper.refined_map > 0.5
    hard = pick(refined, a, b)
    out = {"cnn": paper.fused, "cnn-hard": hard}
    boundary = ndi.binary_dilation(refined) & ndi.binary_dilation(~refined)
    distance = ndi.distance_transform_edt(~boundary)
    for w in BANDS:
        out[f"cnn-hard+band{w}"] = np.where(_channels(distance <= w, a), learned, hard)
    out["learned"] = learned
    g, ga, gb = to_gray(learned), to_gray(a), to_gray(b)
    da, db = ndi.uniform_filter(np.abs(g - ga), 9), ndi.uniform_filter(np.abs(g - gb), 9)
    for t in SNAPS:
        take_a = (da < t / 255) & (da <= db)
        take_b = (db < t / 255) & ~take_a
        out[f"snap{t}"] = pick(take_a, a, np.where(_channels(take_b, a), b, learned))
    for w in WINDOWS:
        out[f"closest{w}"] = pick(closer_to(ga, gb, g, w), a, b)
    if with_laplacian:
        out["laplacian"] = ff.fuse([a, b], method="laplacian").fused
    return out


def lytro_table() -> None:
    from _lytro import SHARED, lytro_pairs

    eight = lambda x: np.round(np.clip(x, 0, 1) * 255).astype(np.uint8)  # noqa: E731
    rows: dict[str, list] = {}
    for i, (a, b) in enumerate(lytro_pairs(), 1):
        a8, b8 = eight(a), eight(b)
        for name, fused in candidates(a, b, False).items():
            f8 = eight(fused)
            rows.setdefault(name, []).append(list(M.evaluate(a8, b8, f8).values()))
        print(f"lytro-{i:02d}", file=sys.stderr, flush=True)
    with open(SHARED / "reference" / "liu2020-survey" / "lytro" / "averages.csv", newline="") as f:
        published = {r["method"]: {m: float(r[m]) for m in M.METRICS} for r in csv.DictReader(f)}
    best = {m: (min if m in M.LOWER_IS_BETTER else max)(p[m] for p in published.values())
            for m in M.METRICS}
    cnn = published["cnn"]
    print("| Lytro (20 pairs) | " + " | ".join(M.METRICS) + " | best of 18 on | under CNN by > 0.002 on |")
    print("|---" * (len(M.METRICS) + 3) + "|")
    print("| best of the 18 | " + " | ".join(f"{best[m]:.4f}" for m in M.METRICS) + " | | |")
    for name, values in rows.items():
        mean = dict(zip(M.METRICS, np.mean(values, 0)))
        lower = lambda m: m in M.LOWER_IS_BETTER  # noqa: E731
        wins = sum((mean[m] <= best[m]) if lower(m) else (mean[m] >= best[m]) for m in M.METRICS)
        under = sum((mean[m] - cnn[m] > 0.002) if lower(m) else (cnn[m] - mean[m] > 0.002)
                    for m in M.METRICS)
        print(f"| {name} | " + " | ".join(f"{mean[m]:.4f}" for m in M.METRICS) + f" | {wins} | {under} |")


def truth_table(folder: Path) -> None:
    names = sorted(p.name[:-6] for p in folder.glob("*-A.png"))
    if not names:
        raise SystemExit(f"{folder}: no NAME-A.png pairs (make them with focusfuse make-truth)")
    rows: dict[str, list] = {}
    for name in names:
        a, b, truth = (ff.read_image(folder / f"{name}-{s}.png") for s in ("A", "B", "truth"))
        out = candidates(a, b, True)
        for w in TRUTH_WINDOWS:
            out[f"truth-placed{w}"] = pick(closer_to(a, b, truth, w), a, b)
        for method, fused in out.items():
            rows.setdefault(method, []).append([M.psnr(fused, truth), M.ssim(fused, truth)])
    print(f"| {folder} ({len(names)} pairs) | PSNR dB | SSIM |\n|---|---|---|")
    for method, values in rows.items():
        psnr, ssim = np.mean(values, 0)
        print(f"| {method} | {psnr:.2f} | {ssim:.4f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--lytro", action="store_true", help="score the 20 Lytro pairs (../shared)")
    parser.add_argument("--truth", nargs="*", type=Path, default=[],
                        help="folders of focusfuse make-truth pairs")
    args = parser.parse_args()
    if not args.lytro and not args.truth:
        parser.error("give --lytro, --truth FOLDER..., or both")
    for folder in args.truth:
        truth_table(folder)
        print()
    if args.lytro:
        lytro_table()


if __name__ == "__main__":
    main()
