"""Single-image measures (EN, SF, SD, AG) and full-reference PSNR and SSIM.

These are the common no-reference statistics of a fused image, on its gray version
(MATLAB ``rgb2gray`` weights, 0..255, see :func:`focusfuse.metrics._common.as_gray255`):

- EN, Shannon entropy (bits) of the 256-bin gray-level histogram, levels being the
  values rounded to integers (J. W. Roberts et al., J. Appl. Remote Sens. 2, 2008);
- SF, spatial frequency sqrt(RF^2 + CF^2), RF^2 and CF^2 the sums of squared
  horizontal and vertical neighbour differences divided by H * W (A. M. Eskicioglu,
  P. S. Fisher, IEEE Trans. Commun. 43(12), 1995);
- SD, standard deviation about the mean (population, divided by H * W);
- AG, average gradient: the mean over (H-1) x (W-1) pixels of
  sqrt((dx^2 + dy^2) / 2) with forward differences dx, dy.

When an all-in-focus ground truth is available, :func:`psnr` and :func:`ssim` compare
the fused image with it (scikit-image, data range 255; SSIM with the Gaussian window of
Wang et al., IEEE TIP 13(4), 2004: sigma 1.5, population covariance).
"""

from __future__ import annotations

import numpy as np

from ._common import MIN_SIDE, as_gray255, matlab_round

__all__ = ["en", "sf", "sd", "ag", "psnr", "ssim"]


def _gray(image, name: str) -> np.ndarray:
    g = as_gray255(image, name)
    if min(g.shape) < 2:
        raise ValueError(f"{name} must be at least 2x2 pixels; got {g.shape}; use a larger image")
    return g


def _en_gray(g: np.ndarray) -> float:
    levels = np.clip(matlab_round(g), 0, 255).astype(np.intp)
    p = np.bincount(levels.ravel(), minlength=256) / levels.size
    p = p[p > 0]
    return float(-np.sum(p * np.log2(p)))


def _sf_gray(g: np.ndarray) -> float:
    n = g.size
    rf2 = np.sum(np.diff(g, axis=1) ** 2) / n
    cf2 = np.sum(np.diff(g, axis=0) ** 2) / n
    return float(np.sqrt(rf2 + cf2))


def _sd_gray(g: np.ndarray) -> float:
    return float(np.std(g))


def _ag_gray(g: np.ndarray) -> float:
    dx = g[:-1, 1:] - g[:-1, :-1]
    dy = g[1:, :-1] - g[:-1, :-1]
    return float(np.mean(np.sqrt((dx * dx + dy * dy) / 2.0)))


def en(image) -> float:
    """Entropy EN in bits of the 256-level gray histogram; higher means more information."""
    return _en_gray(_gray(image, "image"))


def sf(image) -> float:
    """Spatial frequency SF = sqrt(RF^2 + CF^2) of the gray image (0..255 scale)."""
    return _sf_gray(_gray(image, "image"))


def sd(image) -> float:
    """Standard deviation SD of the gray image (0..255 scale, population)."""
    return _sd_gray(_gray(image, "image"))


def ag(image) -> float:
    """Average gradient AG of the gray image (0..255 scale, forward differences)."""
    return _ag_gray(_gray(image, "image"))


def _pair(fused, reference) -> tuple[np.ndarray, np.ndarray]:
    gf = as_gray255(fused, "fused")
    gr = as_gray255(reference, "reference")
    if gf.shape != gr.shape:
        raise ValueError(
            f"fused and reference must have the same height and width; got {gf.shape} and "
            f"{gr.shape}; align or crop them first"
        )
    return gf, gr


def _psnr_gray(gf: np.ndarray, gr: np.ndarray) -> float:
    from skimage.metrics import peak_signal_noise_ratio

    if np.array_equal(gf, gr):
        return float("inf")
    return float(peak_signal_noise_ratio(gr, gf, data_range=255.0))


def _ssim_gray(gf: np.ndarray, gr: np.ndarray) -> float:
    from skimage.metrics import structural_similarity

    if min(gf.shape) < MIN_SIDE:
        raise ValueError(
            f"fused and reference must be at least {MIN_SIDE}x{MIN_SIDE} pixels for SSIM; "
            f"got {gf.shape}; use larger images"
        )
    return float(
        structural_similarity(
            gr,
            gf,
            data_range=255.0,
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
        )
    )


def psnr(fused, reference) -> float:
    """Peak signal-to-noise ratio (dB) of the fused image against an all-in-focus reference.

    Both on the gray 0..255 scale with data range 255; infinite when they are equal.
    """
    return _psnr_gray(*_pair(fused, reference))


def ssim(fused, reference) -> float:
    """Structural similarity (Wang et al. 2004) of the fused image and an all-in-focus reference.

    Gray 0..255 scale, data range 255, Gaussian window sigma 1.5 (scikit-image's
    ``structural_similarity`` with the paper's settings); 1 when they are equal.
    """
    return _ssim_gray(*_pair(fused, reference))
