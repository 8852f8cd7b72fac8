"""The Laplacian pyramid (P. J. Burt, E. H. Adelson, "The Laplacian pyramid as a compact
image code", IEEE Trans. Communications 31(4), 1983).

Numbers taken from the paper: the 5-tap generating kernel w = [1, 4, 6, 4, 1] / 16 (a = 0.375),
applied separably, then decimation by 2; expansion by 2 with the same kernel times 4. OpenCV's
``pyrDown`` / ``pyrUp`` implement exactly these (border: reflect-101); odd sizes halve to
``(n + 1) // 2`` and expand back to the stored size.

Level k of the pyramid is L_k = G_k - expand(G_{k+1}); the last entry is the Gaussian top
G_levels. The pyramid is lossless by construction: collapse adds the levels back.
"""

from __future__ import annotations

import cv2
import numpy as np

__all__ = ["laplacian_forward", "laplacian_inverse"]


def laplacian_forward(image: np.ndarray, levels: int = 4) -> list[np.ndarray]:
    """Laplacian pyramid of an (H, W) or (H, W, C) image, C <= 4.

    Returns ``levels`` detail images, finest first, then the Gaussian top: ``levels + 1``
    float64 arrays (channel axis kept for colour input).
    """
    x = np.asarray(image)
    if x.ndim not in (2, 3) or (x.ndim == 3 and not 1 <= x.shape[2] <= 4):
        raise ValueError(
            f"image must be (H, W) or (H, W, C) with C <= 4; got shape {x.shape}; "
            f"split other arrays into channels first"
        )
    if isinstance(levels, bool) or not isinstance(levels, (int, np.integer)) or levels < 1:
        raise ValueError(f"levels must be an integer >= 1; got {levels!r}; use e.g. levels=4")
    squeeze = x.ndim == 3 and x.shape[2] == 1
    g = x.astype(np.float64)[..., 0] if squeeze else x.astype(np.float64)
    pyramid = []
    for _ in range(int(levels)):
        down = cv2.pyrDown(g)
        up = cv2.pyrUp(down, dstsize=(g.shape[1], g.shape[0]))
        pyramid.append(_restore(g - up.reshape(g.shape), squeeze))
        g = down.reshape(down.shape[:2] + g.shape[2:])
    pyramid.append(_restore(g, squeeze))
    return pyramid


def laplacian_inverse(pyramid: list[np.ndarray]) -> np.ndarray:
    """Collapse a pyramid from :func:`laplacian_forward` back to the image (float64)."""
    if len(pyramid) < 2:
        raise ValueError(
            f"pyramid must hold at least one detail level and the top; got {len(pyramid)} "
            f"arrays; pass what laplacian_forward returned"
        )
    squeeze = pyramid[0].ndim == 3 and pyramid[0].shape[2] == 1
    g = _drop(np.asarray(pyramid[-1], dtype=np.float64), squeeze)
    for detail in pyramid[-2::-1]:
        d = _drop(np.asarray(detail, dtype=np.float64), squeeze)
        up = cv2.pyrUp(g, dstsize=(d.shape[1], d.shape[0]))
        g = up.reshape(d.shape) + d
    return _restore(g, squeeze)


def _restore(a: np.ndarray, squeeze: bool) -> np.ndarray:
    return a[..., None] if squeeze else a


def _drop(a: np.ndarray, squeeze: bool) -> np.ndarray:
    return a[..., 0] if squeeze else a
