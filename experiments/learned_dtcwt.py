"""A learned DTCWT sub-band fusion (issue 18, item 3): BandNet on the dual-tree complex
wavelet bands instead of the Laplacian pyramid's. A development experiment, not a shipped
method.

The seed's proposal: a CNN that learns the fusion of the wavelet sub-bands. Here the
network of ``learned-pyramid`` (:mod:`focusfuse.models.bandnet`: a logit per coefficient
from the local energies of each frame's band and their mean and maximum over the frames;
softmax over the frames) weighs every complex coefficient of the 6 oriented sub-bands of
each of 5 DTCWT levels (focusfuse's ``dtcwt`` filters, ``legall`` + ``qshift_06``) and the
lowpass band. The energies are those of ``|c|²``; the 6 orientations of a level share the
level's one-hot slot.

Training: the same synthetic scenes as ``focusfuse train --arch bandnet`` (training JPEGs of
BSDS500, pairs and stacks, clean and noisy; :func:`focusfuse.train.bands._render`), 4
random 128² crops per scene transformed once. Our DTCWT is NumPy, so the loss is taken on
the coefficients: the squared error of the fused coefficients to the truth's, each level
weighted by ``λ_j``, the image energy that a unit of coefficient error at level j makes
through the inverse (measured with random coefficients), so that the loss approximates
the image's squared error (the level-1 filters are biorthogonal, not orthonormal, so the
levels' weights differ). Evaluation is exact: the fused coefficients inverted, in colour
(every channel with the gray image's weights), scored against the truth as ``focusfuse
bench`` does.

    focusfuse make-truth ../shared/data/bsds500 --out /tmp/truth-bsds --variants clean,noisy,handheld
    .venv/bin/python experiments/learned_dtcwt.py --eval /tmp/truth-bsds --steps 1500
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from focusfuse.models.bandnet import BandNet, box

REPO = Path(__file__).resolve().parents[1]
LEVELS = 5


def transform(gray: np.ndarray):
    from focusfuse.transforms.dtcwt import dtcwt_forward

    return dtcwt_forward(np.asarray(gray, np.float64), LEVELS)


def _energies(mag2: torch.Tensor, top: bool, values: torch.Tensor | None = None) -> torch.Tensor:
    """(M, 1, h, w) squared magnitudes (or, top, the real values) → (M, 2, h, w)."""
    if top:
        v = values - box(values, 2)
        mag2 = v * v
    return torch.log(1e-6 + torch.cat([box(mag2, 1), box(mag2, 4)], dim=1))


def band_weights(model: BandNet, bands: list[torch.Tensor], top: bool, slot: int) -> torch.Tensor:
    """Softmax weights over N frames for one band: ``bands`` N tensors (h, w, 6) complex
    or (h, w) real (top); returns (N, h, w, 6) or (N, h, w)."""
    if top:
        x = torch.stack(bands)[:, None]  # (N, 1, h, w)
        own = _energies(None, True, x)
    else:
        z = torch.stack(bands)  # (N, h, w, 6)
        n, h, w, o = z.shape
        mag2 = (z.real ** 2 + z.imag ** 2).permute(0, 3, 1, 2).reshape(n * o, 1, h, w)
        own = _energies(mag2, False)  # (N*6, 2, h, w)
        own = own.reshape(n, o, 2, h, w)
    mean, peak = own.mean(0), own.amax(0)
    if top:
        logits = model(own, mean[None], peak[None], slot)  # (N, 1, h, w)
        return torch.softmax(logits, 0)[:, 0]
    n, o, _, h, w = own.shape
    logits = model(own.reshape(n * o, 2, h, w), mean.repeat(n, 1, 1, 1),
                   peak.repeat(n, 1, 1, 1), slot).reshape(n, o, h, w)
    return torch.softmax(logits, 0).permute(0, 2, 3, 1)


def level_gains(shape=(128, 128), trials: int = 4, seed: int = 0) -> list[float]:
    """λ_j: image energy per unit of coefficient error at level j (j = 1..L), then the
    lowpass, by inverting random coefficients placed in that level alone."""
    from focusfuse.transforms.dtcwt import Pyramid, dtcwt_inverse

    rng = np.random.default_rng(seed)
    ref = transform(np.zeros(shape))
    gains = []
    for j in range(LEVELS + 1):
        values = []
        for _ in range(trials):
            highs = [np.zeros_like(h) for h in ref.highpasses]
            low = np.zeros_like(ref.lowpass)
            if j < LEVELS:
                e = rng.standard_normal(highs[j].shape) + 1j * rng.standard_normal(highs[j].shape)
                highs[j] = e
            else:
                e = rng.standard_normal(low.shape)
                low = e
            # the whole padded image: the coefficients cover it
            padded = (2 * highs[0].shape[0], 2 * highs[0].shape[1])
            img = dtcwt_inverse(Pyramid(low, tuple(highs), padded, ((0, 0), (0, 0))))
            values.append(float((img ** 2).sum() / (np.abs(e) ** 2).sum()))
        gains.append(float(np.mean(values)))
    return gains


def make_crops(scenes, crop: int, per_scene: int, seed: int):
    rng = np.random.default_rng(seed)
    out = []
    for s in scenes:
        n, h, w = s["frames"].shape
        for _ in range(per_scene):
            y, x = rng.integers(0, h - crop + 1), rng.integers(0, w - crop + 1)
            cut = (slice(y, y + crop), slice(x, x + crop))
            frames = [transform(f[cut]) for f in s["frames"]]
            truth = transform(s["truth"][cut])
            out.append({"n": n, "frames": frames, "truth": truth})
    return out


def _t(a):
    return torch.from_numpy(np.ascontiguousarray(a))


def crop_loss(model: BandNet, item: dict, pick, gains) -> torch.Tensor:
    frames = [item["frames"][i] for i in pick]
    truth = item["truth"]
    total = 0.0
    for j in range(LEVELS + 1):
        top = j == LEVELS
        slot = LEVELS if top else j
        if top:
            bands = [_t(f.lowpass).float() for f in frames]
            target = _t(truth.lowpass).float()
        else:
            bands = [_t(f.highpasses[j]).to(torch.complex64) for f in frames]
            target = _t(truth.highpasses[j]).to(torch.complex64)
        w = band_weights(model, bands, top, slot)
        fused = (w * torch.stack(bands)).sum(0)
        err = fused - target
        sq = (err.real ** 2 + err.imag ** 2) if err.is_complex() else err ** 2
        total = total + gains[j] * sq.sum()
    return total / (item["frames"][0].shape[0] * item["frames"][0].shape[1])


def train(model, crops, steps, batch, lr, seed, max_frames: int):
    torch.manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    rng = np.random.default_rng(seed)
    gains = level_gains()
    print("level gains", [round(g, 3) for g in gains], flush=True)
    pairs = [c for c in crops if c["n"] == 2]
    stacks = [c for c in crops if c["n"] > 2]
    for step in range(1, steps + 1):
        pool = pairs if step % 2 else stacks
        n = 2 if step % 2 else int(rng.integers(2, max_frames + 1))
        loss = 0.0
        for _ in range(batch):
            item = pool[rng.integers(len(pool))]
            pick = np.sort(rng.choice(item["n"], min(n, item["n"]), replace=False))
            loss = loss + crop_loss(model, item, pick, gains) / batch
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 100 == 0 or step == 1:
            v = loss.item()
            print(f"step {step} loss {v:.6f} (≈ PSNR {-10 * np.log10(max(v, 1e-12)):.2f} dB)",
                  flush=True)
    return model


@torch.no_grad()
def fuse(model: BandNet, images: list[np.ndarray]) -> np.ndarray:
    """Fuse colour or gray images with the learned DTCWT weights (gray weights, every
    channel)."""
    from focusfuse.color import to_gray
    from focusfuse.transforms.dtcwt import Pyramid, dtcwt_inverse

    grays = [transform(to_gray(im) if im.ndim == 3 else im) for im in images]
    weights = []
    for j in range(LEVELS + 1):
        top = j == LEVELS
        bands = ([_t(g.lowpass).float() for g in grays] if top else
                 [_t(g.highpasses[j]).to(torch.complex64) for g in grays])
        weights.append(band_weights(model, bands, top, LEVELS if top else j).double().numpy())
    chans = [images[0][..., c] for c in range(images[0].shape[2])] if images[0].ndim == 3 else [None]
    out = []
    for c in range(len(chans)):
        pyrs = [transform(im[..., c] if im.ndim == 3 else im) for im in images]
        highs = tuple(sum(weights[j][i] * p.highpasses[j] for i, p in enumerate(pyrs))
                      for j in range(LEVELS))
        low = sum(weights[LEVELS][i] * p.lowpass for i, p in enumerate(pyrs))
        out.append(dtcwt_inverse(Pyramid(low, highs, pyrs[0].shape, pyrs[0].pad)))
    img = np.stack(out, axis=-1) if images[0].ndim == 3 else out[0]
    return np.clip(img, 0, 1).astype(np.float32)


def evaluate(model, folder: Path) -> dict:
    import focusfuse as ff
    from focusfuse.bench.runner import find_pairs
    from focusfuse.bench.truth import folder_registers, truth_scores
    from focusfuse.io import quantize, read_image

    moving = folder_registers(folder)
    rows = []
    for pair in find_pairs(folder):
        a, b, truth = read_image(pair.a), read_image(pair.b), read_image(pair.truth)
        made = {"learned-dtcwt": fuse(model, [a, b]),
                "dtcwt": ff.fuse([a, b], method="dtcwt").fused,
                "learned-pyramid": ff.fuse([a, b], method="learned-pyramid").fused}
        rows.append({k: truth_scores(quantize(v, 8).astype(np.float32) / 255, truth,
                                     register_first=moving) for k, v in made.items()})
    return {k: {m: round(float(np.mean([r[k][m] for r in rows])), 4) for m in ("PSNR", "SSIM")}
            for k in rows[0]} | {"pairs": len(rows)}


def lytro(model, folder: Path) -> dict:
    from focusfuse.bench.runner import find_pairs
    from focusfuse.io import quantize, read_image
    from focusfuse.metrics import evaluate as metrics

    scores = []
    for pair in find_pairs(folder):
        a, b = read_image(pair.a), read_image(pair.b)
        scores.append(metrics(a, b, quantize(fuse(model, [a, b]), 8).astype(np.float32) / 255))
    return {m: round(float(np.mean([s[m] for s in scores])), 4) for m in scores[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=str(REPO.parent / "shared/data/bsds500"))
    parser.add_argument("--eval", required=True, metavar="TRUTH_DIR")
    parser.add_argument("--variants", default="clean,noisy,handheld")
    parser.add_argument("--scenes", type=int, default=80)
    parser.add_argument("--crops", type=int, default=4, help="crops per scene")
    parser.add_argument("--crop", type=int, default=128)
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--save", default=None, help="write the trained weights (safetensors)")
    parser.add_argument("--lytro", default=None, metavar="DIR")
    args = parser.parse_args()
    from focusfuse.bench.machine import machine_info
    from focusfuse.train.bands import BandTrainConfig, _render, _split

    m = machine_info()
    print(f"machine: {m['cpu']}, {m['usable_cpus']} cores, torch {m['torch']}", flush=True)
    t0 = time.perf_counter()
    train_files, _ = _split(BandTrainConfig(data=args.data, out="unused", seed=args.seed))
    scenes = _render(train_files, args.scenes, 8, args.seed, args.crop)
    crops = make_crops(scenes, args.crop, args.crops, args.seed)
    print(f"{len(crops)} crops in {time.perf_counter() - t0:.0f} s", flush=True)
    model = BandNet()
    t0 = time.perf_counter()
    train(model, crops, args.steps, args.batch, args.lr, args.seed, 8)
    print(f"trained in {time.perf_counter() - t0:.0f} s", flush=True)
    model.eval()
    if args.save:
        from focusfuse.models.bandnet import save_bandnet

        save_bandnet(model, args.save, {"transform": "dtcwt"})
    for variant in args.variants.split(","):
        print(variant, evaluate(model, Path(args.eval) / variant), flush=True)
    if args.lytro:
        print("lytro", lytro(model, Path(args.lytro)), flush=True)


if __name__ == "__main__":
    main()
