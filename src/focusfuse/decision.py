"""From focus map to decision map: threshold, small-region removal, guided filter. Pure NumPy.

Liu et al. 2017, Section 3.3:
- binary map: 1 where the focus map is above 0.5;
- consistency verification: regions smaller than ``area = ceil(0.01 · H · W)`` pixels
  (8-connected) are removed from the binary map, then from its complement (MATLAB
  ``bwareaopen``, which keeps regions of at least ``area`` pixels);
- the binary map is refined by the guided filter of He et al. (TPAMI 2013) with r = 8 and
  ε = 0.1, guided by the gray image fused through the binary map. Box means are normalised
  by the number of pixels each window really holds at the image borders.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

__all__ = ["binary_map", "box_mean", "guided_filter", "remove_small_regions"]


def binary_map(focus: np.ndarray, *, threshold: float = 0.5) -> np.ndarray:
    """``focus > threshold`` as a bool array."""
    return np.asarray(focus) > threshold


def _drop_small(mask: np.ndarray, min_area: int) -> np.ndarray:
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    keep = stats[:, cv2.CC_STAT_AREA] >= min_area
    keep[0] = False  # background label
    return keep[labels]


def remove_small_regions(binary: np.ndarray, *, min_area_fraction: float = 0.01) -> np.ndarray:
    """Remove regions of fewer than ``ceil(min_area_fraction · H · W)`` pixels from the map,
    then from its complement. ``min_area_fraction=0`` returns the map unchanged."""
    if not 0.0 <= min_area_fraction < 1.0:
        raise ValueError(
            f"min_area_fraction must be in [0, 1); got {min_area_fraction} (0 turns the step off)"
        )
    binary = np.asarray(binary, dtype=bool)
    if min_area_fraction == 0.0:
        return binary.copy()
    area = math.ceil(min_area_fraction * binary.shape[0] * binary.shape[1])
    kept = _drop_small(binary, area)
    return ~_drop_small(~kept, area)


def box_mean(x: np.ndarray, r: int) -> np.ndarray:
    """Mean over the (2r+1)² window around each pixel, counting only pixels inside the image."""
    k = (2 * r + 1, 2 * r + 1)
    s = cv2.boxFilter(x, cv2.CV_64F, k, normalize=False, borderType=cv2.BORDER_CONSTANT)
    n = cv2.boxFilter(np.ones(x.shape[:2]), cv2.CV_64F, k, normalize=False,
                      borderType=cv2.BORDER_CONSTANT)
    return s / n


def guided_filter(guide: np.ndarray, src: np.ndarray, *, radius: int = 8, eps: float = 0.1) -> np.ndarray:
    """He et al.'s guided filter of ``src`` by the gray ``guide`` (both (H, W)), float64 out."""
    if isinstance(radius, bool) or not isinstance(radius, int) or radius < 0:
        raise ValueError(f"radius must be an integer >= 0; got {radius!r}")
    if not eps > 0:
        raise ValueError(f"eps must be > 0 (it keeps flat windows defined); got {eps!r}")
    if guide.shape != src.shape or guide.ndim != 2:
        raise ValueError(f"guide and src must be (H, W) of one shape; got {guide.shape} and {src.shape}")
    I = guide.astype(np.float64)
    p = src.astype(np.float64)
    mean_I = box_mean(I, radius)
    mean_p = box_mean(p, radius)
    cov_Ip = box_mean(I * p, radius) - mean_I * mean_p
    var_I = box_mean(I * I, radius) - mean_I * mean_I
    a = cov_Ip / (var_I + eps)
    b = mean_p - a * mean_I
    return box_mean(a, radius) * I + box_mean(b, radius)
