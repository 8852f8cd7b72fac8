"""``learned-pyramid``: frames' Laplacian pyramids weighed by a trained network.

The fusion rule of :mod:`focusfuse.models.bandnet` (read its notes): every coefficient of
every level of the fused pyramid is the softmax-weighted sum of the frames' coefficients,
the logits given by BandNet from the local energies of each frame's gray band and of their
mean and maximum over the frames. The network was trained against the all-in-focus truth
of synthetic pairs and stacks (:mod:`focusfuse.train.bands`; the shipped weights' command
and log are in docs/learned.md), so it may blend where the truth is a mixture of the
sources, as at a depth edge where a blurred foreground spills over a sharp background,
which a one-source-per-pixel decision cannot.

Two images and a stack are one code path, streamed over the frames in a canonical order
(sorted by a digest of their pixels, :func:`focusfuse.fusion.stack.canonical_order`), so the
result of a permuted stack is bit-identical and the state kept is a fixed number of
pyramids, whatever N: pass 1 sums and takes the maximum of the energies over the frames
(4 planes per level), pass 2 keeps a running softmax (the largest logit, the sum of the
exponentials and the weighted sum of the coefficients: 2 + C planes per level).
The pyramid is OpenCV's (:func:`focusfuse.transforms.laplacian_forward`, reflect-101),
the network runs in float32 on the CPU with PyTorch. Colour frames are weighed with the
gray image's weights in every channel. There is no depth map.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from focusfuse.color import to_gray
from focusfuse.fusion.result import FusionResult

__all__ = ["fuse_frames", "learned_method", "load_model", "weights_path"]


def weights_path(weights: str | Path | None = None) -> Path:
    """The file of ``weights`` (None: the shipped BandNet)."""
    from importlib import resources

    from focusfuse.fusion.options import BANDNET_WEIGHTS

    if weights is not None:
        return Path(weights)
    return Path(str(resources.files("focusfuse") / "weights" / BANDNET_WEIGHTS))


def load_model(weights: str | Path | None = None):
    """The BandNet of ``weights`` (a file; None: the shipped one), loaded once per file
    version."""
    path = weights_path(weights)
    try:
        stamp = path.stat().st_mtime_ns
    except OSError:
        stamp = None
    return _load_cached(str(path.resolve()) if stamp is not None else str(path), stamp)


@functools.lru_cache(maxsize=4)
def _load_cached(path: str, stamp: int | None):
    from focusfuse.models.bandnet import load_bandnet

    return load_bandnet(path)


def learned_method(images: list[np.ndarray], options) -> FusionResult:
    """The ``learned-pyramid`` method on checked sources (two or more)."""
    from focusfuse.fusion.stack import ArrayFrames, canonical_order

    frames = ArrayFrames(images)
    return FusionResult(fuse_frames(frames, canonical_order(frames), options), "learned-pyramid",
                        [], n_frames=len(images))


def fuse_frames(frames, order: list[int], options, report=None) -> np.ndarray:
    """Fuse ``frames`` (a :class:`~focusfuse.fusion.stack.Frames`) visited in ``order``;
    ``report(stage, done, total)`` after each frame of each pass. Returns float32 in
    [0, 1], the frames' shape."""
    import torch

    from focusfuse.fusion import multiscale as ms
    from focusfuse.models.bandnet import energies_np
    from focusfuse.transforms.laplacian import laplacian_forward, laplacian_inverse

    model = load_model(options.weights)
    report = report or (lambda stage, done, total: None)
    n = len(order)
    first = frames[order[0]]
    shape = first.shape[:2]
    if min(shape) < 2:
        raise ValueError(f"learned-pyramid needs images at least 2 pixels on each side; got "
                         f"{shape[0]}x{shape[1]}")
    # as many of the network's levels as the size allows (each halves it)
    levels = min(model.levels, int(np.floor(np.log2(min(shape)))))

    def own_energies(frame):
        gray = np.asarray(to_gray(frame), np.float32)
        return [energies_np(b, top=k == levels)
                for k, b in enumerate(laplacian_forward(gray, levels))]

    # pass 1: the context, the mean and the maximum of the energies over the frames
    total = peak = None
    for i, k in enumerate(order):
        e = own_energies(frames[k])
        if total is None:
            total, peak = [x.astype(np.float64) for x in e], e
        else:
            for j, x in enumerate(e):
                total[j] += x
                np.maximum(peak[j], x, out=peak[j])
        report("context", i + 1, n)
    context = [np.concatenate([(t / n).astype(np.float32), p]) for t, p in zip(total, peak)]
    del total, peak

    # pass 2: a running softmax over the frames' logits, per coefficient
    top_logit, norm, acc = {}, {}, {}
    for i, k in enumerate(order):
        frame = frames[k]
        e = own_energies(frame)
        x = np.asarray(frame, np.float64)
        bands = laplacian_forward(x if x.ndim == 3 else x[..., None], levels)
        for j, band in enumerate(bands):
            features = torch.from_numpy(np.concatenate([e[j], context[j]]))[None]
            logit = model.logits(features, model.slot(j, levels))[0, 0].numpy().astype(np.float64)
            if j not in acc:
                top_logit[j], norm[j], acc[j] = logit, np.ones_like(logit), band
                continue
            new_top = np.maximum(top_logit[j], logit)
            keep = np.exp(top_logit[j] - new_top)
            this = np.exp(logit - new_top)
            norm[j] = norm[j] * keep + this
            acc[j] = acc[j] * keep[..., None] + band * this[..., None]
            top_logit[j] = new_top
        report("blend", i + 1, n)
    fused = laplacian_inverse([acc[j] / norm[j][..., None] for j in range(len(acc))])
    return ms.finish(fused, first)
