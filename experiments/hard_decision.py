"""A hard decision trained against the truth (issue 18's Lytro lead; an experiment, not a method).

``experiments/hard_or_soft.py`` found that only a one-source-per-pixel decision reaches the
Lytro metrics' values, and that such a decision beats ``laplacian`` against the truth only
when it is placed nearly as well as the truth itself would place it (``truth-placed5``: the
source closer to the truth in 5×5 windows). This trains a small network for exactly that
choice and scores its hard decision both ways.

- **Data.** Two-source scenes rendered from BSDS500's training JPEGs by the generator
  ``focusfuse train --arch bandnet`` uses (:func:`focusfuse.train.bands._render` with two
  frames: clean and noisy, pairs with two focus planes and pairs with spread depths); the
  test PNGs are never read.
- **Network.** Five 3×3 convolutions, 16 wide (``--width``), dilated 1, 2, 4, 8, 16 (a 63-pixel field),
  on (A, B, A − B) in gray; the logit of taking A is ``g(A, B) − g(B, A)``, so swapping the
  sources negates it. With ``--learned`` it also sees ``learned-pyramid``'s gray result L of
  the pair, as L − A and L − B (L is order-free, so the logit still is).
- **Loss.** With ``e_A``, ``e_B`` the means of each source's squared error to the truth in
  ``--window`` × ``--window`` windows (5; 1: per pixel)
  and ``p`` the sigmoid of the logit: ``mean(p·e_A + (1 − p)·e_B)``, the expected error of
  a hard choice drawn with probability ``p``. Each pixel weighs by what choosing wrongly
  there costs. Adam, learning rate 2e-3, 128-px crops, batch 8. The loss is taken 8 px in
  from the crop's edges, so most of its pixels see the crop's zero padding within the
  63-pixel field (at inference only the image's border does): a simplification that may
  cost it (``--margin 31`` with larger ``--crop`` leaves the padding out).
- **Fusion.** Every pixel is from A where the logit is positive, else from B. There is no
  smoothing; ``--min-region F`` applies the paper's consistency step
  (:func:`focusfuse.decision.remove_small_regions`, which uses 0.01) with F of the image
  as the smallest region kept (default 0, none).

::

    focusfuse make-truth ../shared/data/bsds500 --out /tmp/truth-bsds --variants clean,noisy
    .venv/bin/python experiments/hard_decision.py --save runs/hardnet.safetensors
    .venv/bin/python experiments/hard_decision.py --load runs/hardnet.safetensors \
        --eval /tmp/truth-bsds/clean /tmp/truth-bsds/noisy --lytro
    .venv/bin/python experiments/hard_decision.py --learned --window 1 --save runs/hardnet-L1.safetensors \
        --eval /tmp/truth-bsds/clean /tmp/truth-bsds/noisy --lytro

The training scenes are drawn (with replacement) from all of BSDS500's training JPEGs, so
pairs made by ``focusfuse make-truth --suffix .jpg`` share images with them (with other
blurs); only the held-out PNGs are a clean test.

Published in docs/learned.md, "A trained hard decision".
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))


class HardNet(nn.Module):
    def __init__(self, width: int = 16, dilations=(1, 2, 4, 8, 16), learned: bool = False):
        super().__init__()
        self.learned = learned
        layers, c = [], 5 if learned else 3
        for d in dilations:
            layers.append(nn.Conv2d(c, width, 3, padding=d, dilation=d))
            c = width
        self.body = nn.ModuleList(layers)
        self.out = nn.Conv2d(width, 1, 1)

    def _g(self, a: torch.Tensor, b: torch.Tensor, guide: torch.Tensor | None) -> torch.Tensor:
        x = torch.cat([a, b, a - b] + ([guide - a, guide - b] if self.learned else []), 1)
        for conv in self.body:
            x = F.relu(conv(x))
        return self.out(x)

    def forward(self, a: torch.Tensor, b: torch.Tensor,
                guide: torch.Tensor | None = None) -> torch.Tensor:
        """(N, 1, H, W) gray sources (and, with ``learned``, ``learned-pyramid``'s gray
        result of the two) → (N, 1, H, W) logit of taking A."""
        return self._g(a, b, guide) - self._g(b, a, guide)


def _box(x: torch.Tensor, window: int) -> torch.Tensor:
    return x if window == 1 else F.avg_pool2d(x, window, 1, window // 2, count_include_pad=False)


def _guide(frames: np.ndarray) -> np.ndarray:
    """``learned-pyramid``'s gray result of a (2, H, W) gray pair."""
    import focusfuse as ff

    return np.asarray(ff.fuse([frames[0], frames[1]], method="learned-pyramid").fused, np.float32)


def scenes(count: int, seed: int, crop: int, learned: bool = False) -> list[dict]:
    from focusfuse.train.bands import _render

    files = sorted(p for p in (REPO.parent / "shared" / "data" / "bsds500").rglob("*.jpg"))
    if not files:
        raise SystemExit("needs the BSDS500 training JPEGs in ../shared/data/bsds500")
    data = _render(files, count, 2, seed, crop)
    if learned:
        for s in data:
            s["guide"] = _guide(s["frames"])
    return data


def train(model: HardNet, data: list[dict], steps: int, crop: int, seed: int, lr: float,
          margin: int = 8, window: int = 5) -> list:
    rng = np.random.default_rng(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    log, running = [], []
    for step in range(1, steps + 1):
        xs, ts, gs = [], [], []
        for _ in range(8):
            s = data[rng.integers(len(data))]
            _, h, w = s["frames"].shape
            y, x = rng.integers(0, h - crop + 1), rng.integers(0, w - crop + 1)
            xs.append(s["frames"][:, y:y + crop, x:x + crop])
            ts.append(s["truth"][y:y + crop, x:x + crop])
            if model.learned:
                gs.append(s["guide"][y:y + crop, x:x + crop])
        frames = torch.from_numpy(np.stack(xs)).float()  # (8, 2, h, w)
        truth = torch.from_numpy(np.stack(ts)).float()[:, None]
        guide = torch.from_numpy(np.stack(gs)).float()[:, None] if model.learned else None
        a, b = frames[:, :1], frames[:, 1:]
        p = torch.sigmoid(model(a, b, guide))
        ea, eb = _box((a - truth) ** 2, window), _box((b - truth) ** 2, window)
        loss = (p * ea + (1 - p) * eb)[..., margin:-margin, margin:-margin].mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        running.append(loss.item())
        if step % 100 == 0:
            log.append((step, float(np.mean(running))))
            print(f"step {step}: loss {np.mean(running):.3e}", file=sys.stderr, flush=True)
            running = []
    return log


@torch.inference_mode()
def fuse(model: HardNet, a: np.ndarray, b: np.ndarray, min_region: float = 0.0) -> np.ndarray:
    from focusfuse.color import to_gray
    from focusfuse.decision import remove_small_regions

    gray = np.stack([to_gray(a), to_gray(b)]).astype(np.float32)
    ga, gb = (torch.from_numpy(np.ascontiguousarray(g))[None, None] for g in gray)
    guide = torch.from_numpy(_guide(gray))[None, None] if model.learned else None
    take_a = remove_small_regions((model(ga, gb, guide)[0, 0] > 0).numpy(),
                                  min_area_fraction=min_region)
    return np.where(take_a[..., None] if a.ndim == 3 else take_a, a, b)


def evaluate(model: HardNet, folder: Path, min_region: float = 0.0) -> None:
    """PSNR and SSIM on the whole image (``metrics.psnr``/``ssim``), and on the central
    80% of the 8-bit output as ``focusfuse bench`` scores (``bench.truth.truth_scores``)."""
    import focusfuse as ff
    from focusfuse import metrics as M
    from focusfuse.bench.truth import truth_scores
    from focusfuse.io import quantize

    rows: dict[str, list] = {}
    for name in sorted(p.name[:-6] for p in folder.glob("*-A.png")):
        a, b, t = (ff.read_image(folder / f"{name}-{s}.png") for s in ("A", "B", "truth"))
        for method, fused in (("hard-net", fuse(model, a, b, min_region)),
                              ("laplacian", ff.fuse([a, b], method="laplacian").fused),
                              ("learned-pyramid", ff.fuse([a, b], method="learned-pyramid").fused)):
            centre = truth_scores(quantize(fused, 8) / 255, t)
            rows.setdefault(method, []).append([M.psnr(fused, t), M.ssim(fused, t),
                                                centre["PSNR"], centre["SSIM"]])
    print(f"| {folder} ({len(rows['laplacian'])} pairs) | PSNR dB | SSIM | central 80%: PSNR dB "
          "| SSIM |\n|---|---|---|---|---|")
    for method, v in rows.items():
        m = np.mean(v, 0)
        print(f"| {method} | {m[0]:.2f} | {m[1]:.4f} | {m[2]:.2f} | {m[3]:.4f} |")
    print()


def lytro(model: HardNet, min_region: float = 0.0) -> None:
    from _lytro import lytro_pairs

    from focusfuse import metrics as M
    from focusfuse.io import quantize

    values = []
    for a, b in lytro_pairs():
        a8, b8, f8 = (quantize(x, 8) for x in (a, b, fuse(model, a, b, min_region)))
        values.append(list(M.evaluate(a8, b8, f8).values()))
    print("| Lytro | " + " | ".join(M.METRICS) + " |\n" + "|---" * (len(M.METRICS) + 1) + "|")
    print("| hard-net | " + " | ".join(f"{v:.4f}" for v in np.mean(values, 0)) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--scenes", type=int, default=160)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--crop", type=int, default=128)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--width", type=int, default=16, help="channels of each convolution")
    parser.add_argument("--margin", type=int, default=8,
                        help="pixels left out of the loss at each crop edge (31: none sees the padding)")
    parser.add_argument("--learned", action="store_true",
                        help="give the network learned-pyramid's result of the pair as well")
    parser.add_argument("--window", type=int, default=5,
                        help="side of the windows whose mean squared error the loss weighs (odd)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--eval", type=Path, nargs="*", default=[],
                        help="focusfuse make-truth folders with VARIANT/ subfolders or pairs")
    parser.add_argument("--lytro", action="store_true")
    parser.add_argument("--min-region", type=float, default=0.0,
                        help="fusing: regions of one choice under this fraction of the image "
                             "flipped (0: none; the paper's step uses 0.01)")
    parser.add_argument("--save", type=Path, default=None, help="write the weights (safetensors)")
    parser.add_argument("--load", type=Path, default=None,
                        help="weights written by --save: evaluate them, no training (their "
                             "width and inputs are read from them)")
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    if args.load:  # the width and the inputs are read from the weights
        from safetensors.torch import load_file

        state = load_file(str(args.load))
        first = state["body.0.weight"]
        model = HardNet(first.shape[0], learned=first.shape[1] == 5)
        model.load_state_dict(state)
    else:
        model = HardNet(args.width, learned=args.learned)
        t0 = time.perf_counter()
        data = scenes(args.scenes, args.seed, args.crop, args.learned)
        print(f"rendered {len(data)} scenes in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
        t0 = time.perf_counter()
        train(model, data, args.steps, args.crop, args.seed, args.lr, args.margin, args.window)
        print(f"trained {args.steps} steps in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    model.eval()
    if args.save:
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(args.save))
    for folder in args.eval:
        subs = [d for d in sorted(folder.iterdir()) if d.is_dir()] or [folder]
        for d in subs:
            evaluate(model, d, args.min_region)
    if args.lytro:
        lytro(model, args.min_region)


if __name__ == "__main__":
    main()
