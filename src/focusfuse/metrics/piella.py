"""Piella's edge-dependent fusion quality index QE.

G. Piella, H. Heijmans, "A new quality metric for image fusion", ICIP 2003. The
universal image quality index Q0 (Wang and Bovik) of each source against the fused
image, computed in 8 x 8 windows, is combined with the saliency weight
lambda = s_A / (s_A + s_B) (s = local variance) into the weighted fusion quality index

    Q_W = sum_w c(w) [lambda(w) Q0(A, F | w) + (1 - lambda(w)) Q0(B, F | w)],
    c(w) = max(s_A(w), s_B(w)) / sum_w' max(s_A(w'), s_B(w')),

and QE = Q_W(A, B, F) * Q_W(A', B', F')^alpha, alpha = 1, where A', B', F' are edge
images (the magnitude of the responses to [1 0 -1] x 3 row and column masks).

Conventions of the survey's ``metricPeilla.m`` (sw = 3): raw gray 0..255 doubles;
Q0 is Wang's SSIM with K = (1e-6, 1e-6) and L = 255 (so C1 = C2 = (255e-6)^2), an
8 x 8 box window and 'valid' windows only; where s_A + s_B = 0 both are set to 0.5;
edge masks applied with ``filter2`` 'same', zero padding.
"""

from __future__ import annotations

import numpy as np

from ._common import check_triplet, correlate_same, correlate_sep

__all__ = ["qe"]

_WINDOW = 8
_C = (1e-6 * 255.0) ** 2  # C1 = C2 = (K L)^2, K = 1e-6, L = 255
_EDGE_X = np.array([[1.0, 0.0, -1.0]] * 3)
_EDGE_Y = _EDGE_X.T.copy()
_ALPHA = 1.0


def _box(x: np.ndarray) -> np.ndarray:
    return correlate_sep(x, np.full(_WINDOW, 1.0 / _WINDOW), valid=True)


def _moments(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mu = _box(x)
    return mu, _box(x * x) - mu * mu


def _ssim_map(mu_x, var_x, mu_y, var_y, cov_xy) -> np.ndarray:
    return ((2.0 * mu_x * mu_y + _C) * (2.0 * cov_xy + _C)) / (
        (mu_x * mu_x + mu_y * mu_y + _C) * (var_x + var_y + _C)
    )


def _qw(a: np.ndarray, b: np.ndarray, f: np.ndarray) -> float:
    mu_a, var_a = _moments(a)
    mu_b, var_b = _moments(b)
    mu_f, var_f = _moments(f)
    cov_af = _box(a * f) - mu_a * mu_f
    cov_bf = _box(b * f) - mu_b * mu_f
    q_af = _ssim_map(mu_f, var_f, mu_a, var_a, cov_af)
    q_bf = _ssim_map(mu_f, var_f, mu_b, var_b, cov_bf)
    # Saliency: where both sources are flat, both variances count as 0.5.
    both_flat = (var_a + var_b) == 0
    s_a = np.where(both_flat, 0.5, var_a)
    s_b = np.where(both_flat, 0.5, var_b)
    lam = s_a / (s_a + s_b)
    c = np.maximum(s_a, s_b)
    return float(np.sum(c * (lam * q_af + (1.0 - lam) * q_bf)) / np.sum(c))


def _qe_gray(ga: np.ndarray, gb: np.ndarray, gf: np.ndarray) -> float:
    q_w = _qw(ga, gb, gf)
    edges = [np.hypot(correlate_same(x, _EDGE_X), correlate_same(x, _EDGE_Y)) for x in (ga, gb, gf)]
    q_w_edges = _qw(*edges)
    return q_w * q_w_edges**_ALPHA


def qe(a, b, fused) -> float:
    """Piella's edge-dependent fusion quality index Q_E (ICIP 2003); higher is better, at most 1.

    ``a`` and ``b`` are the sources, ``fused`` the fused image: (H, W) or (H, W, 3),
    uint8, uint16 or float in [0, 1]. Symmetric in ``a`` and ``b``.
    """
    return _qe_gray(*check_triplet(a, b, fused))
