"""CNN fusion: Liu et al. 2017, "Multi-focus image fusion with a deep convolutional neural
network", Information Fusion 36, Section 3.3 and Fig. 4.

For two sources A and B: score map (the network, dense, stride 2) → focus map (mean of the
overlapping 16×16 windows) → binary map (> 0.5) → small-region removal (area 0.01·H·W) →
guided filter (r = 8, ε = 0.1, guided by the gray image fused through the binary map) →
F = D·A + (1 − D)·B. Colour sources are scored in gray (MATLAB rgb2gray weights) and fused
per channel with the same D. More than two sources get one decision over all of them
(:mod:`focusfuse.fusion.stack`); ``cnn-dtcwt`` fuses them in series, the result of the
first two with the third, and so on.

``cnn-dtcwt`` keeps the decision and lets it weigh the DTCWT sub-bands of the sources at
every level instead of the pixels (:func:`focusfuse.fusion.multiscale.fuse_dtcwt` with a
``decision``).
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from focusfuse.color import to_gray
from focusfuse.decision import binary_map, focus_map, guided_filter, remove_small_regions
from focusfuse.fusion.options import CNNDTCWTOptions, CNNOptions
from focusfuse.fusion.result import DecisionMaps, FusionResult
from focusfuse.models import FocusNet
from focusfuse.score import score_map

__all__ = ["blend", "decide", "fuse_cnn", "fuse_cnn_dtcwt", "fuse_pair_cnn", "model_for",
           "pair_maps"]


def blend(a: np.ndarray, b: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """D·A + (1 − D)·B = B + D·(A − B), D broadcast over channels.

    float32 when the sources and D are float32 (the type images are read in), else float64.
    """
    dtype = np.result_type(a.dtype, b.dtype, weight.dtype, np.float32)
    d = weight.astype(dtype, copy=False)
    d = d if a.ndim == 2 else d[..., None]
    out = np.subtract(a, b, dtype=dtype)
    out *= d
    out += b
    return out


def decide(scores: np.ndarray, gray_a: np.ndarray, gray_b: np.ndarray, *, min_region: float = 0.01,
           guided_radius: int = 8, guided_eps: float = 0.1) -> DecisionMaps:
    """All maps after the network, from a score map and the gray sources."""
    focus = focus_map(scores, gray_a.shape)
    binary = binary_map(focus)
    refined = remove_small_regions(binary, min_area_fraction=min_region)
    src = refined.astype(np.float32)
    guide = blend(gray_a, gray_b, src)
    decision = guided_filter(guide, src.astype(guide.dtype, copy=False), radius=guided_radius,
                             eps=guided_eps)
    return DecisionMaps(decision=decision, score=scores, focus=focus, binary=binary, refined=refined)


def pair_maps(a: np.ndarray, b: np.ndarray, model: FocusNet, *, min_region: float = 0.01,
              guided_radius: int = 8, guided_eps: float = 0.1, precision: str = "auto",
              device: str = "auto", compile: bool = False) -> DecisionMaps:
    """The decision maps of two sources: scored in gray by ``model``, then :func:`decide`."""
    ga = to_gray(a)
    gb = to_gray(b)
    scores = score_map(model, ga, gb, precision=precision, device=device, compile=compile)
    return decide(scores, ga, gb, min_region=min_region, guided_radius=guided_radius,
                  guided_eps=guided_eps)


def fuse_pair_cnn(a: np.ndarray, b: np.ndarray, model: FocusNet, **options
                  ) -> tuple[np.ndarray, DecisionMaps]:
    """Fuse two sources; returns the fused image (float32 for float32 sources) and the maps.
    ``options``: those of :func:`pair_maps`."""
    maps = pair_maps(a, b, model, **options)
    return blend(a, b, maps.decision), maps


def model_for(options: CNNOptions) -> FocusNet:
    """The network of ``options``: its ``model``, or the ``weights`` loaded once per file
    version and kept for later calls (a repeated ``fuse(..., weights=...)`` neither reloads
    the file nor recomputes the network's spectral form)."""
    if options.model is not None:
        return options.model
    from focusfuse.models import SHIPPED, default_weights_path

    weights = options.weights
    if weights is None or (isinstance(weights, str) and weights in SHIPPED):
        weights = weights or "paper"
        path = default_weights_path(weights)
    else:
        path = Path(weights)
    try:
        stamp = path.stat().st_mtime_ns
    except OSError:
        stamp = None  # load_weights says what is wrong
    return _load_cached(str(path.resolve()) if stamp is not None else str(path), stamp,
                        str(weights))


@functools.lru_cache(maxsize=4)
def _load_cached(path: str, stamp: int | None, weights: str) -> FocusNet:
    """``load_weights(weights)``, once per resolved ``path`` and modification time."""
    from focusfuse.models import load_weights

    return load_weights(weights)


def _in_series(images: list[np.ndarray], options: CNNOptions, method: str, combine) -> FusionResult:
    """Fuse the images pairwise in series; ``combine(fused, next, maps)`` makes each step's
    image (a new array) from the step's decision maps."""
    net = model_for(options)
    fused = images[0]
    steps = []
    for nxt in images[1:]:
        maps = pair_maps(fused, nxt, net, min_region=options.min_region,
                         guided_radius=options.guided_radius, guided_eps=options.guided_eps,
                         precision=options.precision, device=options.device,
                         compile=options.compile)
        fused = combine(fused, nxt, maps)
        steps.append(maps)
    fused = np.asarray(fused, np.float32)
    return FusionResult(np.clip(fused, 0.0, 1.0, out=fused), method, steps)


def fuse_cnn(images: list[np.ndarray], options: CNNOptions) -> FusionResult:
    """The ``cnn`` method on checked sources (:func:`focusfuse.fuse` checks them): the
    paper's pair method for two, one decision over all frames for more
    (:mod:`focusfuse.fusion.stack`)."""
    if len(images) > 2:
        from focusfuse.fusion.stack import ArrayFrames, fuse_stack

        return fuse_stack(ArrayFrames(images), "cnn", options)
    return _in_series(images, options, "cnn",
                      lambda fused, nxt, maps: blend(fused, nxt, maps.decision))


def fuse_cnn_dtcwt(images: list[np.ndarray], options: CNNDTCWTOptions) -> FusionResult:
    """The ``cnn-dtcwt`` method: each step's decision map weighs the DTCWT sub-bands."""
    from focusfuse.checks import check_levels
    from focusfuse.fusion.multiscale import dtcwt_blend

    check_levels(options.levels, images[0].shape[:2])  # before the network runs

    def combine(fused, nxt, maps):
        return dtcwt_blend(fused.astype(np.float32), nxt, np.clip(maps.decision, 0.0, 1.0),
                           levels=options.levels)

    return _in_series(images, options, "cnn-dtcwt", combine)
