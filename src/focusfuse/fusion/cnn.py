"""CNN fusion: Liu et al. 2017, "Multi-focus image fusion with a deep convolutional neural
network", Information Fusion 36, Section 3.3 and Fig. 4.

For two sources A and B: score map (the network, dense, stride 2) → focus map (mean of the
overlapping 16×16 windows) → binary map (> 0.5) → small-region removal (area 0.01·H·W) →
guided filter (r = 8, ε = 0.1, guided by the gray image fused through the binary map) →
F = D·A + (1 − D)·B. Colour sources are scored in gray (MATLAB rgb2gray weights) and fused
per channel with the same D. More than two sources are fused in series: the result of the
first two with the third, and so on.
"""

from __future__ import annotations

import numpy as np

from focusfuse.color import to_gray
from focusfuse.decision import binary_map, guided_filter, remove_small_regions
from focusfuse.fusion.result import DecisionMaps
from focusfuse.models import FocusNet
from focusfuse.score import focus_map, score_map

__all__ = ["blend", "decide", "fuse_pair_cnn"]


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


def fuse_pair_cnn(a: np.ndarray, b: np.ndarray, model: FocusNet, *, min_region: float = 0.01,
                  guided_radius: int = 8, guided_eps: float = 0.1, precision: str = "auto",
                  device: str = "auto", compile: bool = False) -> tuple[np.ndarray, DecisionMaps]:
    """Fuse two sources; returns the fused image (float32 for float32 sources) and the maps."""
    ga = to_gray(a)
    gb = to_gray(b)
    scores = score_map(model, ga, gb, precision=precision, device=device, compile=compile)
    maps = decide(scores, ga, gb, min_region=min_region, guided_radius=guided_radius,
                  guided_eps=guided_eps)
    return blend(a, b, maps.decision), maps
