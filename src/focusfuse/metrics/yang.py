"""Yang's SSIM-based fusion metric QY.

C. Yang, J.-Q. Zhang, X.-R. Wang, X. Liu, "A novel similarity based quality metric for
image fusion", Information Fusion 9(2), 2008. With SSIM maps computed in local windows,

    QY(w) = lambda(w) SSIM(A, F | w) + (1 - lambda(w)) SSIM(B, F | w)   if SSIM(A, B | w) >= 0.75
    QY(w) = max(SSIM(A, F | w), SSIM(B, F | w))                          otherwise,

lambda = s_A / (s_A + s_B) with s the local variance, and QY is the mean of QY(w).

Conventions of the survey's ``metricYang.m``: raw gray 0..255 doubles; SSIM with a 7 x 7
Gaussian window (sigma 1.5, normalised to sum 1), 'valid' windows only, and constants
C1 = C2 = 2e-16; where s_A + s_B = 0 both count as 0.5 (lambda = 0.5).

Flat windows. With C = 2e-16 the structure term (2 s_XY + C) / (s_X + s_Y + C) of a
window where the images are constant is 0/0 regularised by C, so its value hangs on the
round-off of E[x^2] - E[x]^2 (about 1e-12 for 0..255 values, four orders above C): the
reference code gives QY > 1 on lytro-04 and lytro-14 under Octave while the published
MATLAB values are ordinary, and the literal formula with this module's filtering gives
QY up to 3.2 on lytro-06 and lytro-19 instead: which pairs break depends on the
summation order of the convolution (within a flat window, lambda = s_A / (s_A + s_B)
becomes a ratio of round-off residues of either sign, unbounded). We compute the
moments of a window that is constant in an image exactly: its variance, and its
covariance with any other image, are 0, as they are mathematically. Then two constant
windows have structure term C/C = 1 (they agree), and a constant window against a
textured one has structure term ~C/s ~ 0, as in the reference code. Windows that are
not constant have variances of 1e-5 or more (one gray level in a 7 x 7 Gaussian
window), far above the round-off, and are unaffected. On the 120 Lytro triplets of the
survey this matches the published values within 1.3e-4 (the residue: MATLAB's own
round-off in the flat windows, which cannot be reproduced).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from ._common import check_triplet, correlate_sep

__all__ = ["qy"]

_SIZE = 7
_SIGMA = 1.5
_C = 2e-16
_THRESHOLD = 0.75


def _gaussian_1d(size: int, sigma: float) -> np.ndarray:
    x = np.arange(size) - (size - 1) / 2.0
    g = np.exp(-(x * x) / (2.0 * sigma * sigma))
    return g / g.sum()


_WINDOW = _gaussian_1d(_SIZE, _SIGMA)


def _filt(x: np.ndarray) -> np.ndarray:
    return correlate_sep(x, _WINDOW, valid=True)


def _flat(x: np.ndarray) -> np.ndarray:
    """True for the 'valid' windows in which ``x`` is constant."""
    hi = ndimage.maximum_filter(x, size=_SIZE, mode="nearest")
    lo = ndimage.minimum_filter(x, size=_SIZE, mode="nearest")
    half = _SIZE // 2
    sl = (slice(half, x.shape[0] - half), slice(half, x.shape[1] - half))
    return hi[sl] == lo[sl]


class _Stats:
    """Local mean and variance of one image, with exact zeros in constant windows."""

    def __init__(self, x: np.ndarray, exact_flat: bool):
        self.x = x
        self.mu = _filt(x)
        self.var = _filt(x * x) - self.mu * self.mu
        self.flat = _flat(x) if exact_flat else None
        if self.flat is not None:
            self.var[self.flat] = 0.0


def _ssim(p: _Stats, q: _Stats) -> np.ndarray:
    cov = _filt(p.x * q.x) - p.mu * q.mu
    if p.flat is not None:
        cov[p.flat | q.flat] = 0.0
    return ((2.0 * p.mu * q.mu + _C) * (2.0 * cov + _C)) / (
        (p.mu * p.mu + q.mu * q.mu + _C) * (p.var + q.var + _C)
    )


def _qy_gray(ga: np.ndarray, gb: np.ndarray, gf: np.ndarray, *, exact_flat: bool = True) -> float:
    sa, sb, sf = (_Stats(x, exact_flat) for x in (ga, gb, gf))
    ssim_ab = _ssim(sa, sb)
    ssim_af = _ssim(sa, sf)
    ssim_bf = _ssim(sb, sf)
    both_flat = (sa.var + sb.var) == 0
    s_a = np.where(both_flat, 0.5, sa.var)
    s_b = np.where(both_flat, 0.5, sb.var)
    lam = s_a / (s_a + s_b)
    similar = ssim_ab >= _THRESHOLD
    q = np.where(similar, lam * ssim_af + (1.0 - lam) * ssim_bf, np.maximum(ssim_af, ssim_bf))
    return float(np.mean(q))


def qy(a, b, fused) -> float:
    """Yang's SSIM-based fusion metric Q_Y (Information Fusion 2008); higher is better, at most 1.

    ``a`` and ``b`` are the sources, ``fused`` the fused image: (H, W) or (H, W, 3),
    uint8, uint16 or float in [0, 1]. Symmetric in ``a`` and ``b``. Windows in which
    an image is constant get exactly zero variance and covariance (see the module
    notes), so the value does not hang on floating-point round-off.
    """
    return _qy_gray(*check_triplet(a, b, fused))
