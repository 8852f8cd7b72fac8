"""Chen-Blum human-perception metric QCB.

Y. Chen, R. S. Blum, "A new automated quality assessment algorithm for image fusion",
Image and Vision Computing 27(10), 2009. Each image is filtered in the frequency domain
with the contrast sensitivity function (a difference of Gaussians)

    S(r) = exp(-(r / f0)^2) - a exp(-(r / f1)^2),   f0 = 15.3870, f1 = 1.3456, a = 0.7622,

its local contrast C = (G1 * I) / (G2 * I) - 1 is taken with Gaussians of sigma 1 = 2 and
sigma 2 = 4 (31 x 31 support, unnormalised 1 / (2 pi sigma^2) kernels), masked as
C' = k |C|^p / (h |C|^q + Z) with k = h = 1, p = 3, q = 2, Z = 1e-4; the contrast
preservation Q_XF = min(C'_X, C'_F) / max(C'_X, C'_F) is averaged with the saliency
weights lambda_A = C'_A^2 / (C'_A^2 + C'_B^2) (and lambda_B) and QCB is the mean of
lambda_A Q_AF + lambda_B Q_BF.

Conventions of Z. Liu's ``metricChenBlum.m``: each image is first min-max stretched to
0..255 and rounded (``normalize1``); the frequency grid is MATLAB ``freqspace`` scaled by
(W / 30, H / 30) (so r is in cycles per degree for the paper's viewing set-up); the
contrast Gaussians are applied with ``filter2`` 'same', zero padding. The filtered
images are real up to round-off (S is symmetric); we keep the real part.
"""

from __future__ import annotations

import functools

import numpy as np
from scipy import fft as sfft

from ._common import check_triplet, correlate_sep, normalize1

__all__ = ["qcb", "freqspace"]

_F0, _F1, _A = 15.3870, 1.3456, 0.7622
_K, _H, _P, _Q, _Z = 1.0, 1.0, 3.0, 2.0, 1e-4
_SIGMAS = (2.0, 4.0)
_HALF = 15  # the Gaussians cover -15..15


def freqspace(shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """MATLAB ``freqspace(shape, 'meshgrid')``: normalised frequencies, 0 at index n // 2."""
    rows, cols = shape
    fx = (np.arange(cols) - cols // 2) * (2.0 / cols)
    fy = (np.arange(rows) - rows // 2) * (2.0 / rows)
    return np.meshgrid(fx, fy)


@functools.lru_cache(maxsize=8)
def _csf(shape: tuple[int, int]) -> np.ndarray:
    """The CSF on the rfft2 grid (unshifted), for the image shape."""
    u, v = freqspace(shape)
    u = u * (shape[1] / 30.0)
    v = v * (shape[0] / 30.0)
    r = np.sqrt(u * u + v * v)
    s = np.exp(-((r / _F0) ** 2)) - _A * np.exp(-((r / _F1) ** 2))
    s = np.fft.ifftshift(s)
    s = s[:, : shape[1] // 2 + 1]
    s.setflags(write=False)
    return s


def _gauss_1d(sigma: float) -> np.ndarray:
    """1-D factor of the reference's unnormalised 2-D Gaussian exp(-r^2/2s^2) / (2 pi s^2)."""
    x = np.arange(-_HALF, _HALF + 1, dtype=np.float64)
    return np.exp(-(x * x) / (2.0 * sigma * sigma)) / (np.sqrt(2.0 * np.pi) * sigma)


_G1 = _gauss_1d(_SIGMAS[0])
_G2 = _gauss_1d(_SIGMAS[1])


def _masked_contrast(x: np.ndarray, csf: np.ndarray) -> np.ndarray:
    filtered = sfft.irfft2(sfft.rfft2(x) * csf, s=x.shape)
    with np.errstate(divide="ignore", invalid="ignore"):
        c = np.abs(correlate_sep(filtered, _G1) / correlate_sep(filtered, _G2) - 1.0)
    return _K * c**_P / (_H * c**_Q + _Z)


def _qcb_gray(ga: np.ndarray, gb: np.ndarray, gf: np.ndarray) -> float:
    csf = _csf(ga.shape)
    ca, cb, cf = (_masked_contrast(normalize1(x), csf) for x in (ga, gb, gf))
    with np.errstate(divide="ignore", invalid="ignore"):
        q_af = np.where(ca < cf, ca / cf, cf / ca)
        q_bf = np.where(cb < cf, cb / cf, cf / cb)
        ca2, cb2 = ca * ca, cb * cb
        lam_a = ca2 / (ca2 + cb2)
        lam_b = cb2 / (ca2 + cb2)
        q = lam_a * q_af + lam_b * q_bf
    return float(np.mean(q))


def qcb(a, b, fused) -> float:
    """Chen-Blum perceptual fusion metric Q_CB (Image Vis. Comput. 2009); higher is better, 0..1.

    ``a`` and ``b`` are the sources, ``fused`` the fused image: (H, W) or (H, W, 3),
    uint8, uint16 or float in [0, 1]. Symmetric in ``a`` and ``b``.
    """
    return _qcb_gray(*check_triplet(a, b, fused))
