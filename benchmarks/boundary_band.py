"""Where a method's error is: PSNR within a band around the depth edges and elsewhere.

The pairs of ``focusfuse make-truth`` (the held-out BSDS500 PNG images, a seeded choice,
scene seeds ``scene_seed(seed, i)``, two-plane layout) are rendered again in-process, so
that each pair's per-pixel oracle index is known; the band is the pixels within
``--band`` px of a change of that index (a depth edge, where a blurred foreground spills
over the background), inside the scored central 80%. Each method's 8-bit output is scored
against the truth in the band and outside it (mean over the pairs of the per-pair PSNR).

    .venv/bin/python benchmarks/boundary_band.py --variant clean --count 40
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, default=REPO.parent / "shared/data/bsds500")
    p.add_argument("--variant", default="clean", choices=("clean", "noisy"))
    p.add_argument("--count", type=int, default=40)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--band", type=int, default=8, help="half-width of the band (px)")
    p.add_argument("--methods", default="cnn,laplacian,learned-pyramid")
    args = p.parse_args(argv)
    import focusfuse as ff
    from focusfuse.bench.truth import CENTRE, _central, make_truth_pair, scene_seed
    from focusfuse.data.synthesis import list_images
    from focusfuse.io import quantize, read_image

    files = list_images(args.data, suffixes=(".png",))
    pick = np.random.default_rng(args.seed).choice(len(files), args.count, replace=False)
    files = [files[i] for i in sorted(pick)]  # as make_truth_set chooses them
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    psnr = {(m, part): [] for m in methods + ["oracle"] for part in ("band", "rest")}
    share = []
    kernel = np.ones((2 * args.band + 1,) * 2, np.uint8)
    for i, path in enumerate(files):
        pair = make_truth_pair(read_image(path), seed=scene_seed(args.seed, i),
                               variant=args.variant)
        index = pair.oracle_index.astype(np.uint8)
        edge = cv2.morphologyEx(index, cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8)) > 0
        band = cv2.dilate(edge.astype(np.uint8), kernel) > 0
        centre = np.zeros(index.shape, bool)
        centre[_central(index.shape, CENTRE)] = True
        share.append((band & centre).sum() / centre.sum())
        outputs = {m: quantize(ff.fuse([pair.a, pair.b], method=m).fused, 8) / 255.0
                   for m in methods}
        outputs["oracle"] = pair.oracle
        for m, image in outputs.items():
            err = ((np.asarray(image, np.float64) - pair.truth) ** 2).mean(axis=2)
            for part, mask in (("band", band & centre), ("rest", ~band & centre)):
                mse = err[mask].mean()
                psnr[(m, part)].append(np.inf if mse == 0 else 10 * np.log10(1 / mse))
    print(f"{len(files)} {args.variant} pairs; the band (within {args.band} px of a depth edge) "
          f"is {100 * np.mean(share):.1f}% of the scored pixels; mean PSNR per pair (dB)")
    print("| method | within the band | elsewhere |\n|---|---:|---:|")
    for m in methods + ["oracle"]:
        cells = []
        for part in ("band", "rest"):
            v = np.asarray(psnr[(m, part)])
            cells.append("exact" if np.isinf(v).all() else
                         f"{np.mean(v[np.isfinite(v)]):.2f}"
                         + (f" ({np.isinf(v).sum()} exact)" if np.isinf(v).any() else ""))
        print(f"| {m} | {cells[0]} | {cells[1]} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
