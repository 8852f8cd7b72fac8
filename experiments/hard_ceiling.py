"""How well can a one-source-per-pixel decision do against the truth? (issue 18)

``experiments/hard_or_soft.py`` showed that only a hard decision (every fused pixel a pixel
of one source) reaches the Lytro metrics' values, and that none we can place is above
``laplacian`` against the truth. This script measures the room a hard decision has at all,
on the held-out truth pairs, scored as ``focusfuse bench`` scores them (PSNR and SSIM on
the central 80%, :func:`focusfuse.bench.truth.truth_scores`):

- ``oracle``: the truth set's oracle (each pixel from the source with the smaller blur
  radius), which the issue calls the ceiling of a choose-one decision;
- ``truth-placedW``: each pixel from the source closer to the *truth* in W×W windows
  (W = 1: per pixel, the best any hard decision can do on these images, since it picks
  the smaller error everywhere);
- ``blind-placedW`` (noisy folders): the same choice made on the *clean* rendering of the
  scene (its sibling folder ``clean/``, same depth and blur) and applied to the noisy
  sources: the truth's placement without the luck of the noise, which no decision can know;
- beside them the methods: ``laplacian``, ``learned-pyramid``, the paper's hard map
  (``cnn-hard``) and ``closest3`` (the source closer to ``learned-pyramid`` in 3×3).

::

    focusfuse make-truth ../shared/data/bsds500 --out /tmp/truth-bsds --variants clean,noisy
    .venv/bin/python experiments/hard_ceiling.py /tmp/truth-bsds

Published in docs/learned.md, "How much room a hard decision has".
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from hard_or_soft import candidates, closer_to, pick  # beside this script

import focusfuse as ff
from focusfuse.bench.truth import truth_scores
from focusfuse.io import quantize

WINDOWS = (1, 3, 5, 9)
#: the methods of hard_or_soft.candidates shown, under the names printed
METHODS = {"laplacian": "laplacian", "learned": "learned-pyramid", "cnn-hard": "cnn-hard",
           "closest3": "closest3"}


def table(folder: Path, clean: Path | None) -> dict[str, tuple[float, float]]:
    rows: dict[str, list] = {}
    names = sorted(p.name[:-6] for p in folder.glob("*-A.png"))
    if not names:
        raise SystemExit(f"{folder}: no NAME-A.png pairs (make them with focusfuse make-truth)")
    for name in names:
        a, b, truth, oracle = (ff.read_image(folder / f"{name}-{s}.png")
                               for s in ("A", "B", "truth", "oracle"))
        made = candidates(a, b, True)
        out = {shown: made[name] for name, shown in METHODS.items()}
        out["oracle"] = oracle
        for w in WINDOWS:
            out[f"truth-placed{w}"] = pick(closer_to(a, b, truth, w), a, b)
        if clean is not None:
            ca, cb, ct = (ff.read_image(clean / f"{name}-{s}.png") for s in ("A", "B", "truth"))
            for w in WINDOWS:
                out[f"blind-placed{w}"] = pick(closer_to(ca, cb, ct, w), a, b)
        for method, fused in out.items():
            s = truth_scores(quantize(fused, 8) / 255, truth)
            rows.setdefault(method, []).append([s["PSNR"], s["SSIM"]])
    means = {m: tuple(np.mean(v, 0)) for m, v in rows.items()}
    lap = means["laplacian"][0]
    print(f"| {folder} ({len(names)} pairs) | PSNR dB | SSIM | PSNR − laplacian |\n|---|---|---|---|")
    for method, (psnr, ssim) in means.items():
        print(f"| {method} | {psnr:.2f} | {ssim:.4f} | {psnr - lap:+.2f} |")
    print(flush=True)
    return means


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("root", type=Path, help="a focusfuse make-truth folder with clean/ (and noisy/)")
    parser.add_argument("--variants", nargs="+", default=["clean", "noisy"])
    args = parser.parse_args()
    for v in args.variants:
        clean = args.root / "clean" if v != "clean" and (args.root / "clean").is_dir() else None
        table(args.root / v, clean)


if __name__ == "__main__":
    main()
