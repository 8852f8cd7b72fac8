"""Gradient-based fusion metric Q^AB/F (QG) of Xydeas and Petrović.

C. S. Xydeas, V. Petrović, "Objective image fusion performance measure", Electronics
Letters 36(4), 2000. Sobel responses give each pixel an edge strength g and an
orientation alpha = atan(s_y / s_x); the relative strength G^AF (the smaller of g_A/g_F
and g_F/g_A) and the orientation agreement A^AF = 1 - |alpha_A - alpha_F| / (pi/2) are
mapped through sigmoids

    Q_g = Gamma_g / (1 + exp(k_g (G - sigma_g))),   Q_a = Gamma_a / (1 + exp(k_a (A - sigma_a)))

with Gamma_g = 0.9994, k_g = -15, sigma_g = 0.5, Gamma_a = 0.9879, k_a = -22,
sigma_a = 0.8 (the values of the paper's Fig. 1, as in the survey's corrected
``metricXydeas.m``), and QG = sum(Q^AF g_A + Q^BF g_B) / sum(g_A + g_B).

Conventions of the reference code: raw gray 0..255 doubles (no normalisation);
``filter2`` with the Sobel kernels and zero padding ('same' size); a zero horizontal
response is replaced by 1e-5 before the arctangent, a zero edge strength by 1e-5 before
the ratios and in the weights.
"""

from __future__ import annotations

import numpy as np

from ._common import check_triplet, correlate_same

__all__ = ["qg"]

SOBEL_X = np.array([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])
SOBEL_Y = SOBEL_X.T.copy()

_TINY = 1e-5
_GAMMA_G, _K_G, _SIGMA_G = 0.9994, -15.0, 0.5
_GAMMA_A, _K_A, _SIGMA_A = 0.9879, -22.0, 0.8


def sobel(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Edge strength and orientation (``atan``, in (-pi/2, pi/2)) of the reference code."""
    sx = correlate_same(x, SOBEL_X)
    sy = correlate_same(x, SOBEL_Y)
    strength = np.hypot(sx, sy)
    angle = np.arctan(sy / np.where(sx == 0, _TINY, sx))
    return strength, angle


def _preservation(g_src, a_src, g_f, g_f_safe, a_f, *, first: bool) -> np.ndarray:
    """Edge preservation Q^XF of one source, with the reference code's guards against 0."""
    g_src_safe = np.where(g_src == 0, _TINY, g_src)
    # The reference code compares with the fused strength as it stands at that point:
    # the raw one for the first source, the one already guarded against 0 for the second.
    stronger = g_src > (g_f if first else g_f_safe)
    numer_f = g_f if first else g_f_safe
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.where(stronger, numer_f / g_src_safe, g_src_safe / g_f_safe)
    agree = 1.0 - np.abs(a_src - a_f) * (2.0 / np.pi)
    q_g = _GAMMA_G / (1.0 + np.exp(_K_G * (rel - _SIGMA_G)))
    q_a = _GAMMA_A / (1.0 + np.exp(_K_A * (agree - _SIGMA_A)))
    return q_g * q_a, g_src_safe


def _qg_gray(ga: np.ndarray, gb: np.ndarray, gf: np.ndarray) -> float:
    g_f, a_f = sobel(gf)
    g_f_safe = np.where(g_f == 0, _TINY, g_f)
    g_a, a_a = sobel(ga)
    g_b, a_b = sobel(gb)
    q_af, w_a = _preservation(g_a, a_a, g_f, g_f_safe, a_f, first=True)
    q_bf, w_b = _preservation(g_b, a_b, g_f, g_f_safe, a_f, first=False)
    return float(np.sum(q_af * w_a + q_bf * w_b) / np.sum(w_a + w_b))


def qg(a, b, fused) -> float:
    """Gradient-based Q^AB/F of Xydeas and Petrović (2000); higher is better, 0..1.

    ``a`` and ``b`` are the sources, ``fused`` the fused image: (H, W) or (H, W, 3),
    uint8, uint16 or float in [0, 1]. Symmetric in ``a`` and ``b`` up to the reference
    code's 1e-5 guards where the fused image has no edge.
    """
    return _qg_gray(*check_triplet(a, b, fused))
