"""Chen-Varshney human-perception metric QCV (lower is better).

H. Chen, P. K. Varshney, "A human perception inspired quality metric for image fusion
based on regional information", Information Fusion 8(2), 2007. The image is cut into
16 x 16 regions; a region's saliency in a source is lambda = sum(g^alpha) of its Sobel
edge strength g, alpha = 5; the difference images A - F and B - F are filtered in the
frequency domain with the Mannos-Sakrison contrast sensitivity function

    S(r) = 2.6 (0.0192 + 0.144 r) exp(-(0.144 r)^1.1),

and D is the mean square of the filtered difference in each region. Then

    QCV = sum(lambda_A D_A + lambda_B D_B) / sum(lambda_A + lambda_B).

Conventions of Z. Liu's ``metricChen.m``: each image is first min-max stretched to
0..255 and rounded (``normalize1``); Sobel with ``filter2`` 'same', zero padding; the
frequency grid is MATLAB ``freqspace`` scaled by (W / 8, H / 8); regions by ``blkproc``,
so when a side is not a multiple of 16 the last regions are padded with zeros and still
averaged over 16 x 16 pixels. The filtered images are real up to round-off (S is
symmetric); we keep the real part.
"""

from __future__ import annotations

import functools

import numpy as np
from scipy import fft as sfft

from ._common import block_reduce_sum, check_triplet, normalize1
from .chen_blum import freqspace
from .gradient import sobel

__all__ = ["qcv"]

_BLOCK = 16
_ALPHA = 5


@functools.lru_cache(maxsize=8)
def _csf(shape: tuple[int, int]) -> np.ndarray:
    """The Mannos-Sakrison CSF on the rfft2 grid (unshifted), for the image shape."""
    u, v = freqspace(shape)
    u = u * (shape[1] / 8.0)
    v = v * (shape[0] / 8.0)
    r = np.sqrt(u * u + v * v)
    s = 2.6 * (0.0192 + 0.144 * r) * np.exp(-((0.144 * r) ** 1.1))
    s = np.fft.ifftshift(s)[:, : shape[1] // 2 + 1]
    s.setflags(write=False)
    return s


def _qcv_gray(ga: np.ndarray, gb: np.ndarray, gf: np.ndarray) -> float:
    na, nb, nf = (normalize1(x) for x in (ga, gb, gf))
    csf = _csf(ga.shape)
    area = float(_BLOCK * _BLOCK)
    num = 0.0
    den = 0.0
    spectrum_f = sfft.rfft2(nf)
    for src in (na, nb):
        strength = sobel(src)[0]
        saliency = block_reduce_sum(strength**_ALPHA, _BLOCK)
        diff = sfft.irfft2((sfft.rfft2(src) - spectrum_f) * csf, s=src.shape)
        dist = block_reduce_sum(diff * diff, _BLOCK) / area
        num += float(np.sum(saliency * dist))
        den += float(np.sum(saliency))
    return num / den


def qcv(a, b, fused) -> float:
    """Chen-Varshney perceptual fusion metric Q_CV (Inf. Fusion 2007); lower is better, >= 0.

    ``a`` and ``b`` are the sources, ``fused`` the fused image: (H, W) or (H, W, 3),
    uint8, uint16 or float in [0, 1]. Symmetric in ``a`` and ``b``.
    """
    return _qcv_gray(*check_triplet(a, b, fused))
