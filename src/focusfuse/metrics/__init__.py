"""Objective quality metrics of multi-focus image fusion.

The eight metrics of the survey of Y. Liu, L. Wang, J. Cheng, C. Li, X. Chen
("Multi-focus image fusion: a survey of the state of the art", Information Fusion 64,
2020), after Z. Liu et al. (IEEE TPAMI 34(1), 2012), each ``fn(a, b, fused) -> float``:

======  ==============================================  =====================
name    metric                                          module
======  ==============================================  =====================
QMI     normalized mutual information (Hossny 2008)      information
QNCIE   nonlinear correlation information entropy        information
QG      gradient-based Q^AB/F (Xydeas, Petrović 2000)    gradient
QP      phase congruency (Zhao, Laganière, Liu 2007)     phase_congruency
QE      edge-dependent quality index (Piella 2003)       piella
QY      SSIM-based (Yang et al. 2008)                    yang
QCB     human perception (Chen, Blum 2009)               chen_blum
QCV     human perception (Chen, Varshney 2007), lower    chen_varshney
        is better
======  ==============================================  =====================

They reproduce the survey's published values (the reference MATLAB code's conventions:
gray by MATLAB ``rgb2gray``, 0..255 doubles, its normalisations, windows and borders).
Inputs are NumPy arrays, (H, W) or (H, W, 3), uint8 (0..255), uint16 (0..65535) or
float in [0, 1] (as :func:`focusfuse.io.read_image` returns).

Also the single-image measures :func:`en`, :func:`sf`, :func:`sd`, :func:`ag`, and with
an all-in-focus reference :func:`psnr` and :func:`ssim`.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from ._common import as_gray255, check_triplet
from .basic import (
    _ag_gray,
    _en_gray,
    _psnr_gray,
    _sd_gray,
    _sf_gray,
    _ssim_gray,
    ag,
    en,
    psnr,
    sd,
    sf,
    ssim,
)
from .chen_blum import _qcb_gray, qcb
from .chen_varshney import _qcv_gray, qcv
from .gradient import _qg_gray, qg
from .information import _qmi_gray, _qncie_gray, qmi, qncie
from .phase_congruency import _qp_gray, qp
from .piella import _qe_gray, qe
from .yang import _qy_gray, qy

__all__ = [
    "LOWER_IS_BETTER",
    "METRICS",
    "SINGLE_IMAGE_MEASURES",
    "ag",
    "en",
    "evaluate",
    "psnr",
    "qcb",
    "qcv",
    "qe",
    "qg",
    "qmi",
    "qncie",
    "qp",
    "qy",
    "sd",
    "sf",
    "ssim",
]

#: The eight fusion metrics, in the column order of the survey's tables.
METRICS = ("QMI", "QNCIE", "QG", "QP", "QE", "QY", "QCB", "QCV")

#: Metrics for which a smaller value means a better fusion.
LOWER_IS_BETTER = frozenset({"QCV"})

#: Statistics of the fused image alone that :func:`evaluate` also computes on request.
SINGLE_IMAGE_MEASURES = ("EN", "SF", "SD", "AG")

_REFERENCE_MEASURES = ("PSNR", "SSIM")

_FUSION = {
    "QMI": _qmi_gray,
    "QNCIE": _qncie_gray,
    "QG": _qg_gray,
    "QP": _qp_gray,
    "QE": _qe_gray,
    "QY": _qy_gray,
    "QCB": _qcb_gray,
    "QCV": _qcv_gray,
}
_SINGLE = {"EN": _en_gray, "SF": _sf_gray, "SD": _sd_gray, "AG": _ag_gray}
_WITH_REFERENCE = {"PSNR": _psnr_gray, "SSIM": _ssim_gray}


def evaluate(
    a,
    b,
    fused,
    *,
    metrics: Iterable[str] | None = None,
    reference: np.ndarray | None = None,
) -> dict[str, float]:
    """Compute fusion metrics of ``fused`` made from the sources ``a`` and ``b``.

    ``metrics`` is an iterable of names (case-insensitive) from :data:`METRICS`,
    :data:`SINGLE_IMAGE_MEASURES` and, when ``reference`` (an all-in-focus ground
    truth) is given, "PSNR" and "SSIM"; ``None`` means the eight of :data:`METRICS`.
    Returns ``{name: value}`` in the order asked, names upper case as in
    :data:`METRICS`. The images are converted to gray once and shared by the metrics.
    """
    if metrics is None:
        names = list(METRICS)
    else:
        if isinstance(metrics, str):
            raise TypeError(
                f"metrics must be an iterable of names, not a string; got {metrics!r}; "
                f"write metrics=[{metrics!r}]"
            )
        names = [str(m).upper() for m in metrics]
    known = (*METRICS, *SINGLE_IMAGE_MEASURES, *_REFERENCE_MEASURES)
    unknown = [m for m in names if m not in known]
    if unknown:
        raise ValueError(
            f"metrics must be names from {', '.join(known)}; got unknown {unknown}; "
            "check the spelling"
        )
    needs_reference = [m for m in names if m in _REFERENCE_MEASURES]
    if needs_reference and reference is None:
        raise ValueError(
            f"reference must be an all-in-focus image for {needs_reference}; got None; "
            "pass reference=... or drop these metrics"
        )

    ga, gb, gf = check_triplet(a, b, fused)
    gr = None
    if reference is not None:
        gr = as_gray255(reference, "reference")
        if gr.shape != gf.shape:
            raise ValueError(
                f"reference must have the same height and width as fused; got {gr.shape} "
                f"and {gf.shape}; align or crop it first"
            )

    results: dict[str, float] = {}
    for name in names:
        if name in _FUSION:
            results[name] = float(_FUSION[name](ga, gb, gf))
        elif name in _SINGLE:
            results[name] = float(_SINGLE[name](gf))
        else:
            results[name] = float(_WITH_REFERENCE[name](gf, gr))
    return results
