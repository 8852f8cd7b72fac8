"""Yang's SSIM-based fusion metric QY.

C. Yang, J.-Q. Zhang, X.-R. Wang, X. Liu, "A novel similarity based quality metric for
image fusion", Information Fusion 9(2), 2008. With SSIM maps computed in local windows,

    QY(w) = lambda(w) SSIM(A, F | w) + (1 - lambda(w)) SSIM(B, F | w)   if SSIM(A, B | w) >= 0.75
    QY(w) = max(SSIM(A, F | w), SSIM(B, F | w))                          otherwise,

lambda = s_A / (s_A + s_B) with s the local variance, and QY is the mean of QY(w).

Conventions of the survey's ``metricYang.m``: raw gray 0..255 doubles; SSIM with a 7 x 7
Gaussian window (sigma 1.5, normalised to sum 1), 'valid' windows only, and constants
C1 = C2 = 2e-16; where s_A + s_B = 0 both count as 0.5 (lambda = 0.5).

Flat windows: the rule of the reference in exact arithmetic. In a 7 x 7 window where an
image X is constant, its local variance s_X and its covariance s_XY with any image are
exactly 0 (the weights sum to 1). The reference formulas then give:

- X and Y both constant: structure term (2 s_XY + C2) / (s_X + s_Y + C2) = C2 / C2 = 1,
  so SSIM(X, Y) is the luminance term (2 m_X m_Y + C1) / (m_X^2 + m_Y^2 + C1) (1 for equal
  levels, 1 for two black windows);
- X constant, Y not: structure term C2 / (s_Y + C2), below 2e-13 for 8-bit levels (one
  gray level of change in a 7 x 7 Gaussian window already gives s_Y >= 1.3e-3), so
  SSIM ~ 0;
- lambda = s_A / (s_A + s_B): 0.5 where both sources are constant (Yu Liu's guard of the
  survey's ``metricYang.m``, ``buffer == 0``, fires), 0 where only A is, 1 where only B is.

This module computes exactly that: in windows where an image is constant its variance
and covariances are set to 0 (no other window is touched); everything else is the
reference's formula. ``tests/test_metrics.py`` checks it against an independent
evaluation of the reference formulas in exact integer arithmetic, on images with large
constant areas of several levels, to 1e-12; on Lytro triplets, also with 60-pixel
edge-replicated borders, the two agree to 5e-13.

Computed literally in floating point, as the reference code does, the same windows give
ratios of round-off: E[x^2] - E[x]^2 of a constant 0..255 window is a residue of about
1e-12 of either sign, four orders above C = 2e-16, the guard rarely fires, and lambda
and the structure terms become ratios of residues, unbounded. Which windows go wrong
depends on the summation order of the filtering: the reference gives QY > 1 on lytro-04
and lytro-14 under Octave while the published MATLAB values are ordinary, the literal
formula with this module's filtering gives QY up to 3.2 on lytro-06 and lytro-19, and
on images with many constant windows the literal value can also be wrong while looking
ordinary (0.78 instead of 0.82 in the test's image). No rule can reproduce that
round-off; the exact-arithmetic rule matches the survey's published values within
1.3e-4 on the 120 Lytro triplets (the residue: MATLAB's own round-off in the flat
windows of those images).
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
