"""Can the paper's CNN decision improve on the Laplacian pyramid against the truth?

A development experiment for issue 18 (a method better than the paper at the boundaries).
On synthetic pairs with a truth (``focusfuse.bench.truth.make_truth_pair``, the two-plane
layout) made from BSDS500 *training* images (the JPEG files: the held-out PNG images that
the published benchmark uses are not touched), each pair is fused by:

- ``cnn``: the paper's method (shipped paper model);
- ``laplacian``: the Laplacian pyramid (``focusfuse`` defaults: 5 levels, windowed
  max-abs with the majority check, top level averaged);
- ``band-B``: the CNN's fused image away from its decision's boundaries, the Laplacian's
  within a band there (weight ramping from 0 at B pixels from the boundary to 1 at 2B);
- ``pyr-base``: the Laplacian pyramid with its top level blended by the CNN's decision map
  (resized to that level) instead of averaged;
- ``pyr-confident``: ``pyr-base``, and in every detail level the coefficient of the CNN's
  source wherever its decision is confident (``|2D − 1| > 0.9``).

It prints the PSNR of each against the truth (central 80%) per pair and the means.

    .venv/bin/python experiments/decision_in_pyramid.py --pairs 16 --variants clean,noisy
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]


def _resized(decision: np.ndarray, like: np.ndarray) -> np.ndarray:
    d = cv2.resize(decision.astype(np.float32), (like.shape[1], like.shape[0]),
                   interpolation=cv2.INTER_AREA)
    return d[..., None] if like.ndim == 3 else d


def pyramid_with_decision(a, b, decision, *, confident: float | None, levels: int = 5):
    from focusfuse.fusion.multiscale import _select
    from focusfuse.transforms.laplacian import laplacian_forward, laplacian_inverse

    pa, pb = laplacian_forward(a, levels), laplacian_forward(b, levels)
    fused = []
    for k in range(levels):
        band = _select(np.stack([pa[k], pb[k]]), 3)
        if confident is not None:
            d = _resized(decision, pa[k])
            band = np.where(np.abs(2 * d - 1) > confident, np.where(d > 0.5, pa[k], pb[k]), band)
        fused.append(band)
    d = _resized(decision, pa[-1])
    fused.append(d * pa[-1] + (1 - d) * pb[-1])
    return np.clip(laplacian_inverse(fused), 0.0, 1.0)


def band_hybrid(cnn_fused, lap_fused, binary, band: float):
    binary = binary.astype(np.uint8)
    dist = np.maximum(cv2.distanceTransform(binary, cv2.DIST_L2, 5),
                      cv2.distanceTransform(1 - binary, cv2.DIST_L2, 5))
    w = np.clip((dist - band) / band, 0.0, 1.0)
    w = w[..., None] if cnn_fused.ndim == 3 else w
    return w * cnn_fused + (1 - w) * lap_fused


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=str(REPO.parent / "shared/data/bsds500"))
    parser.add_argument("--pairs", type=int, default=16)
    parser.add_argument("--variants", default="clean,noisy")
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()

    import focusfuse as ff
    from focusfuse.bench.machine import machine_info
    from focusfuse.bench.truth import make_truth_pair, truth_scores
    from focusfuse.io import read_image

    files = sorted(p for p in Path(args.data).iterdir() if p.suffix.lower() == ".jpg")
    if not files:
        raise SystemExit(f"{args.data}: no JPEG (training) images")
    rng = np.random.default_rng(args.seed)
    pick = [files[i] for i in sorted(rng.choice(len(files), args.pairs, replace=False))]
    m = machine_info()
    print(f"machine: {m['cpu']}, {m['usable_cpus']} cores, torch {m['torch']}")
    for variant in args.variants.split(","):
        rows = []
        for i, path in enumerate(pick):
            pair = make_truth_pair(read_image(path), seed=1000 + i, variant=variant)
            moved = variant.startswith("handheld")
            result = ff.fuse([pair.a, pair.b], method="cnn")
            lap = ff.fuse([pair.a, pair.b], method="laplacian").fused
            decision = np.clip(result.decision_map, 0.0, 1.0)
            made = {"cnn": result.fused, "laplacian": lap,
                    "band-8": band_hybrid(result.fused, lap, result.refined_map > 0.5, 8),
                    "band-24": band_hybrid(result.fused, lap, result.refined_map > 0.5, 24),
                    "pyr-base": pyramid_with_decision(pair.a, pair.b, decision, confident=None),
                    "pyr-confident": pyramid_with_decision(pair.a, pair.b, decision,
                                                           confident=0.9),
                    "oracle": pair.oracle}
            row = {k: truth_scores(v, pair.truth, register_first=moved and k != "oracle")["PSNR"]
                   for k, v in made.items()}
            rows.append(row)
            print(variant, path.stem, " ".join(f"{k} {v:.2f}" for k, v in row.items()),
                  flush=True)
        print(f"mean {variant} ({len(rows)} pairs):",
              " ".join(f"{k} {np.mean([r[k] for r in rows]):.3f}" for k in rows[0]), flush=True)


if __name__ == "__main__":
    main()
