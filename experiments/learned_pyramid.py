"""A learned sub-band fusion (issue 18, item 3): a small network that weighs the two
sources' Laplacian-pyramid bands, trained against the truth. A development experiment, not
a shipped method.

Per level k of a 5-level Laplacian pyramid (Burt and Adelson 1983, the 5-tap kernel) of
each gray source, the network sees the local energies of both sources' band (log of the
3×3 and 9×9 box means of the squared coefficients) and the level, and gives a weight
``w`` of source A for every coefficient: ``w = sigmoid(f(A, B) − f(B, A))``, so swapping
the sources swaps the weights exactly. The top (Gaussian) level is weighed the same way
from its local variance. The fused pyramid ``w·A + (1 − w)·B`` is collapsed, per colour
channel with the gray weights, and the loss is the mean squared error against the truth
(gray). Training pairs: ``focusfuse.bench.truth.make_truth_pair`` from BSDS500 *training*
JPEG images (random 160×160 crops, clean and noisy); evaluation: a truth-set folder made by
``focusfuse make-truth`` from the held-out PNG images, against the plain Laplacian pyramid
(focusfuse's ``laplacian``) and the paper's ``cnn``.

    focusfuse make-truth ../shared/data/bsds500 --out /tmp/truth-bsds --variants clean,noisy
    .venv/bin/python experiments/learned_pyramid.py --eval /tmp/truth-bsds --steps 1500
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

REPO = Path(__file__).resolve().parents[1]
LEVELS = 5
_K = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0]) / 16.0


def _blur(x: torch.Tensor) -> torch.Tensor:
    c = x.shape[1]
    k = _K.to(x)
    x = F.conv2d(F.pad(x, (2, 2, 0, 0), mode="reflect"), k.view(1, 1, 1, 5).repeat(c, 1, 1, 1),
                 groups=c)
    return F.conv2d(F.pad(x, (0, 0, 2, 2), mode="reflect"), k.view(1, 1, 5, 1).repeat(c, 1, 1, 1),
                    groups=c)


def pyramid(x: torch.Tensor, levels: int = LEVELS) -> list[torch.Tensor]:
    """Laplacian pyramid of (N, C, H, W): ``levels`` bands, then the top Gaussian level."""
    bands, g = [], x
    for _ in range(levels):
        low = _blur(g)[..., ::2, ::2]
        up = _expand(low, g.shape[-2:])
        bands.append(g - up)
        g = low
    return bands + [g]


def _expand(x: torch.Tensor, size) -> torch.Tensor:
    up = torch.zeros(x.shape[0], x.shape[1], size[0], size[1], dtype=x.dtype)
    up[..., ::2, ::2] = x
    return 4.0 * _blur(up)


def collapse(bands: list[torch.Tensor]) -> torch.Tensor:
    g = bands[-1]
    for band in reversed(bands[:-1]):
        g = band + _expand(g, band.shape[-2:])
    return g


def _box(x: torch.Tensor, r: int) -> torch.Tensor:
    return F.avg_pool2d(F.pad(x, (r, r, r, r), mode="reflect"), 2 * r + 1, 1)


class BandWeights(nn.Module):
    """f(own band, other band, level) → a logit per coefficient; the weight of A is
    sigmoid(f(A, B) − f(B, A))."""

    def __init__(self, width: int = 16):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(4 + LEVELS + 1, width, 3, padding=1), nn.ReLU(),
            nn.Conv2d(width, width, 3, padding=1), nn.ReLU(),
            nn.Conv2d(width, 1, 3, padding=1))

    def features(self, a: torch.Tensor, b: torch.Tensor, level: int) -> torch.Tensor:
        if level == LEVELS:  # the top level: local variance
            a = a - _box(a, 2)
            b = b - _box(b, 2)
        e = [torch.log(1e-6 + _box(t * t, r)) for t in (a, b) for r in (1, 4)]
        onehot = torch.zeros(a.shape[0], LEVELS + 1, a.shape[2], a.shape[3])
        onehot[:, level] = 1.0
        return torch.cat(e + [onehot], dim=1)

    def forward(self, a: torch.Tensor, b: torch.Tensor, level: int) -> torch.Tensor:
        fa = self.net(self.features(a, b, level))
        fb = self.net(self.features(b, a, level))
        return torch.sigmoid(fa - fb)


def fuse(model: BandWeights, a: torch.Tensor, b: torch.Tensor, ga: torch.Tensor,
         gb: torch.Tensor) -> torch.Tensor:
    """Fuse (N, C, H, W) sources with weights from their gray versions (N, 1, H, W)."""
    pa, pb = pyramid(a), pyramid(b)
    qa, qb = pyramid(ga), pyramid(gb)
    fused = [w * x + (1 - w) * y for w, x, y in
             ((model(qa[k], qb[k], k), pa[k], pb[k]) for k in range(LEVELS + 1))]
    return collapse(fused)


def _gray(x: np.ndarray) -> np.ndarray:
    from focusfuse.color import to_gray

    return to_gray(x) if x.ndim == 3 else x


def _tensor(x: np.ndarray) -> torch.Tensor:
    x = x if x.ndim == 3 else x[..., None]
    return torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)))[None].float()


def training_pairs(data: Path, n: int, crop: int, seed: int):
    from focusfuse.bench.truth import make_truth_pair
    from focusfuse.io import read_image

    files = sorted(p for p in data.iterdir() if p.suffix.lower() == ".jpg")
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        sharp = read_image(files[rng.integers(len(files))])
        pair = make_truth_pair(sharp, seed=50_000 + i, variant=("clean", "noisy")[i % 2])
        h, w = pair.truth.shape[:2]
        for _ in range(2):
            y, x = rng.integers(0, h - crop), rng.integers(0, w - crop)
            cut = lambda im: _gray(im[y:y + crop, x:x + crop])  # noqa: E731
            out.append(tuple(_tensor(cut(im)) for im in (pair.a, pair.b, pair.truth)))
    return out


def train(model: BandWeights, pairs, steps: int, batch: int, lr: float, seed: int) -> list:
    torch.manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    rng = np.random.default_rng(seed)
    log = []
    for step in range(1, steps + 1):
        idx = rng.choice(len(pairs), batch, replace=False)
        a = torch.cat([pairs[i][0] for i in idx])
        b = torch.cat([pairs[i][1] for i in idx])
        t = torch.cat([pairs[i][2] for i in idx])
        loss = F.mse_loss(fuse(model, a, b, a, b), t)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 100 == 0 or step == 1:
            value = loss.item()
            log.append((step, value))
            print(f"step {step} loss {value:.6f} (PSNR {-10 * np.log10(value):.2f} dB)",
                  flush=True)
    return log


@torch.no_grad()
def evaluate(model: BandWeights, folder: Path) -> dict:
    import focusfuse as ff
    from focusfuse.bench.runner import find_pairs
    from focusfuse.bench.truth import truth_scores
    from focusfuse.io import read_image

    rows = []
    for pair in find_pairs(folder):
        a, b, truth = read_image(pair.a), read_image(pair.b), read_image(pair.truth)
        ga, gb = _tensor(_gray(a)), _tensor(_gray(b))
        learned = fuse(model, _tensor(a), _tensor(b), ga, gb)[0].numpy().transpose(1, 2, 0)
        learned = np.clip(learned.squeeze(), 0.0, 1.0).astype(np.float32)
        lap = ff.fuse([a, b], method="laplacian").fused
        rows.append({k: truth_scores(v, truth) for k, v in
                     (("learned", learned), ("laplacian", lap))})
    return {k: {m: float(np.mean([r[k][m] for r in rows])) for m in ("PSNR", "SSIM")}
            for k in rows[0]} | {"pairs": len(rows)}


@torch.no_grad()
def lytro(model: BandWeights, folder: Path, published: Path | None) -> dict:
    """The eight metrics on the Lytro pairs (8-bit outputs, as published), beside the
    plain Laplacian pyramid, the paper's cnn and, when given, the survey's averages."""
    import csv

    import focusfuse as ff
    from focusfuse.bench.runner import find_pairs
    from focusfuse.io import quantize, read_image
    from focusfuse.metrics import evaluate

    scores: dict[str, list[dict]] = {"learned": [], "laplacian": [], "cnn": []}
    for pair in find_pairs(folder):
        a, b = read_image(pair.a), read_image(pair.b)
        learned = fuse(model, _tensor(a), _tensor(b), _tensor(_gray(a)), _tensor(_gray(b)))
        learned = np.clip(learned[0].numpy().transpose(1, 2, 0).squeeze(), 0, 1)
        made = {"learned": learned, "laplacian": ff.fuse([a, b], method="laplacian").fused,
                "cnn": ff.fuse([a, b], method="cnn").fused}
        for k, v in made.items():
            scores[k].append(evaluate(a, b, quantize(v, 8).astype(np.float32) / 255))
    means = {k: {m: float(np.mean([r[m] for r in v])) for m in v[0]} for k, v in scores.items()}
    if published is not None and published.is_file():
        with open(published, newline="") as fh:
            for row in csv.DictReader(fh):
                means[f"published {row['method']}"] = {m: float(row[m]) for m in row
                                                       if m != "method"}
    return means


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=str(REPO.parent / "shared/data/bsds500"))
    parser.add_argument("--eval", required=True, metavar="TRUTH_DIR",
                        help="a make-truth folder with variant sub-folders (clean, noisy, ...)")
    parser.add_argument("--variants", default="clean,noisy")
    parser.add_argument("--pairs", type=int, default=120, help="training scenes")
    parser.add_argument("--crop", type=int, default=160)
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--save", default=None, help="write the trained weights (safetensors)")
    parser.add_argument("--lytro", default=None, metavar="DIR",
                        help="also the eight metrics on these pairs (../shared/data/lytro/pairs)")
    parser.add_argument("--published", default=str(
        REPO.parent / "shared/data/reference/liu2020-survey/lytro/averages.csv"))
    args = parser.parse_args()
    from focusfuse.bench.machine import machine_info

    m = machine_info()
    print(f"machine: {m['cpu']}, {m['usable_cpus']} cores, torch {m['torch']}", flush=True)
    t0 = time.perf_counter()
    pairs = training_pairs(Path(args.data), args.pairs, args.crop, args.seed)
    print(f"{len(pairs)} training crops in {time.perf_counter() - t0:.0f} s", flush=True)
    model = BandWeights()
    t0 = time.perf_counter()
    train(model, pairs, args.steps, args.batch, args.lr, args.seed)
    print(f"trained in {time.perf_counter() - t0:.0f} s", flush=True)
    if args.save:
        from safetensors.torch import save_file

        save_file(model.state_dict(), args.save)
    for variant in args.variants.split(","):
        result = evaluate(model, Path(args.eval) / variant)
        print(variant, result, flush=True)
    if args.lytro:
        means = lytro(model, Path(args.lytro), Path(args.published))
        names = list(next(iter(means.values())))
        print("| method | " + " | ".join(names) + " |")
        for k, v in means.items():
            print(f"| {k} | " + " | ".join(f"{v[m]:.4f}" for m in names) + " |", flush=True)


if __name__ == "__main__":
    main()
