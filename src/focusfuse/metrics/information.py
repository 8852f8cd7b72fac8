"""Information-theory metrics: normalized mutual information QMI and NCIE QNCIE.

QMI follows M. Hossny, S. Nahavandi, D. Creighton, "Comments on 'Information measure
for performance of image fusion'", Electronics Letters 44(18), 2008:

    QMI = 2 * [MI(A, F) / (H(A) + H(F)) + MI(B, F) / (H(B) + H(F))].

QNCIE follows Q. Wang, Y. Shen, J. Q. Zhang, J. Jin, "Nonlinear correlation measure for
multivariable data set", Physica D 200, 2005, and Q. Wang, Y. Shen, J. Jin, "Performance
evaluation of image fusion techniques" (Image Fusion: Algorithms and Applications, 2008):
the nonlinear correlation coefficient NCC(X, Y) = MI(X, Y) / log2(b) of b = 256 gray
levels fills the 3x3 correlation matrix R of (A, B, F), and with its eigenvalues
lambda_i, QNCIE = 1 + sum_i (lambda_i / 3) log_b(lambda_i / 3).

Conventions of the reference code (Z. Liu's ``metricMI.m``, ``metricWang.m``): every
image is first min-max stretched to 0..255 and rounded (``normalize1``); histograms have
one bin per integer level (256 bins, joint 256 x 256); entropies in bits.
"""

from __future__ import annotations

import numpy as np

from ._common import check_triplet, normalize1

__all__ = ["qmi", "qncie"]

_LEVELS = 256


def _levels(x: np.ndarray) -> np.ndarray:
    """Gray levels 0..255 as integer indices (after ``normalize1``)."""
    return np.clip(normalize1(x), 0, _LEVELS - 1).astype(np.intp)


def _entropy(p: np.ndarray) -> float:
    p = p[p > 0]
    return float(-np.sum(p * np.log2(p)))


def _mutual_information(x: np.ndarray, y: np.ndarray) -> tuple[float, float, float]:
    """MI(X, Y), H(X), H(Y) in bits from the 256 x 256 joint histogram of level images."""
    joint = np.bincount((x * _LEVELS + y).ravel(), minlength=_LEVELS * _LEVELS)
    joint = joint.reshape(_LEVELS, _LEVELS) / x.size
    hx = _entropy(joint.sum(axis=1))
    hy = _entropy(joint.sum(axis=0))
    hxy = _entropy(joint.ravel())
    return hx + hy - hxy, hx, hy


def _qmi_gray(ga: np.ndarray, gb: np.ndarray, gf: np.ndarray) -> float:
    la, lb, lf = _levels(ga), _levels(gb), _levels(gf)
    mi_af, h_a, h_f = _mutual_information(la, lf)
    mi_bf, h_b, _ = _mutual_information(lb, lf)
    return 2.0 * (mi_af / (h_a + h_f) + mi_bf / (h_b + h_f))


def _qncie_gray(ga: np.ndarray, gb: np.ndarray, gf: np.ndarray) -> float:
    la, lb, lf = _levels(ga), _levels(gb), _levels(gf)
    scale = np.log2(_LEVELS)
    ncc_ab = _mutual_information(la, lb)[0] / scale
    ncc_af = _mutual_information(la, lf)[0] / scale
    ncc_bf = _mutual_information(lb, lf)[0] / scale
    r = np.array([[1.0, ncc_ab, ncc_af], [ncc_ab, 1.0, ncc_bf], [ncc_af, ncc_bf, 1.0]])
    lam = np.linalg.eigvalsh(r) / 3.0
    lam = lam[lam > 0]
    hr = -np.sum(lam * np.log2(lam)) / scale
    return float(1.0 - hr)


def qmi(a, b, fused) -> float:
    """Normalized mutual information Q_MI of Hossny et al. (2008); higher is better, 0..2.

    ``a`` and ``b`` are the sources, ``fused`` the fused image: (H, W) or (H, W, 3),
    uint8, uint16 or float in [0, 1]. Symmetric in ``a`` and ``b``.
    """
    return _qmi_gray(*check_triplet(a, b, fused))


def qncie(a, b, fused) -> float:
    """Nonlinear correlation information entropy Q_NCIE of Wang et al.; higher is better, 0..1.

    Same inputs as :func:`qmi`. Symmetric in ``a`` and ``b``.
    """
    return _qncie_gray(*check_triplet(a, b, fused))
