"""Multiscale-transform fusion: DWT, DTCWT and Laplacian pyramid, as pure NumPy functions.

The rules follow H. Li, B. S. Manjunath, S. K. Mitra, "Multisensor image fusion using the
wavelet transform", Graphical Models and Image Processing 57(3), 1995: the lowpass band is
averaged; each highpass coefficient comes from the source with the largest activity, the
activity being the maximum absolute value in a window around it, and the resulting choice
map is then made consistent by a majority filter over the same window ("window-based
verification").

Defaults, and why (candidates from the literature, chosen by the error to a known all-in-focus
image on synthetic pairs that are not the Lytro test set -- five scikit-image photographs,
complementary regions blurred with Gaussian sigma 2, 3 and 4 px; mean gray PSNR / SSIM to the
sharp image below -- then checked on the 20 Lytro pairs; see ``docs/multiscale.md``):

- ``levels=5`` for all three transforms. The lowpass band is averaged, so whatever the
  defocus blur removes below the band's upper edge, about 2**-(levels+1) cycles per pixel,
  stays half lost in the fused image. A Gaussian blur of sigma attenuates frequency f by
  exp(-2 pi^2 sigma^2 f^2): for sigma = 4 px that is 26 % at the edge of a 4-level lowpass
  and 7 % at 5 levels. Measured: DTCWT 46.3 -> 48.0 dB, DWT 44.5 -> 46.0 dB, Laplacian
  52.3 -> 52.5 dB from 4 to 5 levels; 6 levels adds at most 0.35 dB (and loses 0.06 dB on
  the Laplacian) while the coarsest band of a 300-pixel image shrinks to 5 coefficients.
- DWT ``wavelet="bior4.4"``: the Cohen-Daubechies-Feauveau 9/7 biorthogonal wavelet
  (Cohen, Daubechies, Feauveau, Comm. Pure Appl. Math. 45, 1992; Antonini et al., IEEE
  Trans. Image Processing 1(2), 1992; the lossy wavelet of JPEG 2000). Its filters are
  symmetric (linear phase: edges are not displaced) and smooth with 4 vanishing moments,
  where the Haar wavelet's discontinuous basis functions turn every choice of coefficient
  into a visible block edge. Measured at 4 levels: Haar 43.9 dB, Daubechies db4 44.2,
  sym4 44.7, CDF 9/7 44.5 (SSIM 0.99432 vs sym4's 0.99428; at 5 levels 46.00 vs 46.18 dB,
  SSIM 0.99607 vs 0.99604): sym4 and CDF 9/7 tie, and the exact symmetry decides.
  Boundary: half-sample symmetric extension (PyWavelets ``"symmetric"``, MATLAB's default
  ``'sym'``), so no filter reaches across the image to the opposite edge as periodic
  extension does.
- DTCWT ``biort="legall"``, ``qshift="qshift_06"``: Kingsbury's short filters (LeGall 5/3
  at level 1; the 10-tap Q-shift filters of Kingsbury, ICIP 2000), as in the MST toolbox.
  Kingsbury's longer ``near_sym_b`` / ``qshift_b`` are more shift invariant (level energy
  moves 1.5 % vs 9.2 % over one-pixel shifts, ``tests/test_transforms_dtcwt.py``), but in
  fusion each coefficient is taken whole from one source and a wrong or mixed choice near a
  focus boundary spreads over the basis function's support: the shorter filters were better
  on the synthetic pairs at both depths (46.33 vs 46.14 dB at 4 levels, 47.99 vs 47.78 at
  5), and also on Lytro.
- ``consistency=3``: the 3 x 3 window of Li et al. 1995 and of the MST toolbox; 5 x 5 was
  worse for every transform (DTCWT 44.8 dB, DWT 43.0 dB at 4 levels).
- Choice maps decided on the gray image and shared by the colour channels (see below):
  per-channel decisions (the toolbox's) gain 0.2-0.3 dB on the gray PSNR but can take a
  pixel's red from one source and its green from the other; deciding the three DWT or six
  DTCWT orientations of a position jointly (Zhang, Blum, Proc. IEEE 87(8), 1999,
  "single-scale grouping") lost 0.4-0.5 dB and is not used.

The fusion rule and the toolbox settings, to reproduce the survey: Yu Liu's MST fusion
toolbox (Y. Liu, S. Liu, Z. Wang, "A general framework for image fusion based on multi-scale
transform and sparse representation", Information Fusion 24, 2015) made the published
``dwt`` / ``dtcwt`` rows of the Liu et al. 2020 survey (``../shared/data/reference/
liu2020-survey``) with:

- 4 decomposition levels for all three (``level = 4`` in its ``MST_main.m``);
- DWT: wavelet ``db1`` (Haar), periodic boundary (``dwt2(..., 'db1', 'mode', 'per')``);
  Haar filters do not overlap, so on sizes divisible by 2**levels our symmetric boundary
  gives the same transform: ``fuse_dwt(images, wavelet="db1", levels=4)``. The published
  ``dwt`` images are not reproduced by it (they are 33-40 dB PSNR from every setting tried);
- DTCWT: Kingsbury's ``legall`` level-1 and ``qshift_06`` Q-shift filters:
  ``fuse_dtcwt(images, levels=4)`` reproduces the published ``dtcwt`` row to within 0.0007
  on every metric (QCV 20.50 vs 20.56);
- Laplacian pyramid: Burt-Adelson kernel [1 4 6 4 1] / 16 (``lp_fuse``, from Rockinger's
  toolbox): ``fuse_laplacian(images, levels=4)``;
- highpass rule ``selc(..., 3)`` of Rockinger's toolbox: the Li et al. rule with a 3 x 3
  window, applied to every sub-band separately (each DWT orientation, each of the six DTCWT
  orientations, each Laplacian level) -- our ``consistency=3``;
- lowpass rule: the average (``(Y1 + Y2) / 2``, ``selb(..., 3)``).

Our choices where the toolbox differs or is silent: colour images are fused channel by
channel, but the choice maps are decided on the gray image (ITU-R BT.601 weights 0.299,
0.587, 0.114 applied to the coefficients, which the linearity of the transforms makes the
coefficients of the gray image) and applied to every channel, so that the channels of one
pixel never come from different sources (the toolbox decides per channel); three or more
images take the coefficient of maximum activity among all and average the lowpass bands;
the majority filter then takes the most frequent choice in the window. Borders: symmetric
extension (DWT), symmetric padding to what the transform needs, cropped back (DTCWT),
reflect-101 (Laplacian, OpenCV).

With ``decision`` (a weight map D in [0, 1] for the first of two images, as the CNN method
produces), every band is fused as D_j * A + (1 - D_j) * B instead of by the activity rule, D_j being D
brought to the band's grid (DTCWT: by area averaging, cv2.INTER_AREA; DWT: by the wavelet's
own lowpass, so that it lines up with the symmetric-extension bands): the learned
focus measure decides, the transform blends at each scale ("cnn-dtcwt").
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import cv2
import numpy as np
import pywt
from scipy.ndimage import maximum_filter, uniform_filter

from focusfuse.fusion import check_consistency
from focusfuse.transforms.dtcwt import (
    BIORT_FILTERS,
    QSHIFT_FILTERS,
    Pyramid,
    dtcwt_forward,
    dtcwt_inverse,
)
from focusfuse.transforms.laplacian import laplacian_forward, laplacian_inverse

__all__ = ["fuse_dtcwt", "fuse_dwt", "fuse_laplacian"]

_GRAY_WEIGHTS = np.array([0.299, 0.587, 0.114])
#: PyWavelets boundary mode of the DWT: half-sample symmetric extension (MATLAB's default
#: 'sym'), so that no filter reaches across the image to the opposite edge
_DWT_BOUNDARY = "symmetric"


# --------------------------------------------------------------------------- checks
def _check_images(images) -> np.ndarray:
    """Validate the sources; return them stacked as float64 (N, H, W, C)."""
    from focusfuse.fusion import check_images

    stack = np.stack(check_images(images, any_channels=True)).astype(np.float64)
    return stack if stack.ndim == 4 else stack[..., None]


def _check_levels(levels, shape) -> int:
    if isinstance(levels, bool) or not isinstance(levels, (int, np.integer)) or levels < 1:
        raise ValueError(f"levels must be an integer >= 1; got {levels!r}; use e.g. levels=4")
    most = int(np.floor(np.log2(min(shape)))) if min(shape) > 1 else 0
    if 2**levels > min(shape):
        raise ValueError(
            f"levels={levels} is too many for images of size {shape[0]}x{shape[1]} (each "
            f"level halves the size); use levels <= {max(most, 1)}"
            + ("" if most >= 1 else " on images at least 2 pixels on each side")
        )
    return int(levels)


def _check_decision(decision, n_images: int, shape) -> np.ndarray | None:
    if decision is None:
        return None
    if n_images != 2:
        raise ValueError(
            f"decision weighs the first of exactly two images; got {n_images} images; "
            f"fuse two images or leave decision=None"
        )
    d = np.asarray(decision)
    if not (np.issubdtype(d.dtype, np.number) or d.dtype == bool) or np.iscomplexobj(d):
        raise TypeError(f"decision must be a real array of weights in [0, 1]; got dtype {d.dtype}")
    if d.shape != tuple(shape):
        raise ValueError(
            f"decision must have the images' (H, W) shape {tuple(shape)}; got {d.shape}; "
            f"compute it at the images' size or resize it"
        )
    d = d.astype(np.float64)
    if not np.all(np.isfinite(d)) or d.min() < 0 or d.max() > 1:
        raise ValueError(
            f"decision must hold weights in [0, 1] (1 = take the first image); got values in "
            f"[{np.nanmin(d):.3g}, {np.nanmax(d):.3g}]; clip or rescale it"
        )
    return d


# --------------------------------------------------------------------------- rules
def _gray(coefs: np.ndarray) -> np.ndarray:
    """Gray-image coefficients from per-channel ones (channel axis last)."""
    c = coefs.shape[-1]
    if c >= 3:
        return coefs[..., :3] @ _GRAY_WEIGHTS
    return coefs[..., 0]


def _choose(activity: np.ndarray, window: int) -> np.ndarray:
    """Li et al. 1995: index (h, w) of the source of maximum windowed activity, then made
    consistent by a majority filter. ``activity``: (N, h, w) absolute values."""
    if window == 1:
        return np.argmax(activity, axis=0)
    local = np.stack([maximum_filter(a, size=window, mode="mirror") for a in activity])
    choice = np.argmax(local, axis=0)
    n = activity.shape[0]
    votes = np.stack([uniform_filter((choice == k).astype(np.float64), size=window,
                                     mode="mirror") for k in range(n)])
    votes += 0.5 / window**2 * (choice[None] == np.arange(n)[:, None, None])  # ties: keep own
    return np.argmax(votes, axis=0)


def _select(coefs: np.ndarray, window: int) -> np.ndarray:
    """Fuse one band (N, h, w, C) (real or complex) by the activity of its gray image."""
    choice = _choose(np.abs(_gray(coefs)), window)
    return np.take_along_axis(coefs, choice[None, :, :, None], axis=0)[0]


def _blend(coefs: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """Fuse one band (2, h, w, ...) as w * A + (1 - w) * B with w resampled to (h, w)."""
    h, w = coefs.shape[1:3]
    if weight.shape != (h, w):
        weight = cv2.resize(weight, (w, h), interpolation=cv2.INTER_AREA)
    weight = weight.reshape((h, w) + (1,) * (coefs.ndim - 3))
    return weight * coefs[0] + (1.0 - weight) * coefs[1]


def _finish(fused: np.ndarray, like: np.ndarray) -> np.ndarray:
    out = np.clip(fused, 0.0, 1.0).astype(np.float32)
    return out.reshape(like.shape)


# --------------------------------------------------------------------------- methods
def fuse_dwt(
    images: Sequence[np.ndarray],
    *,
    wavelet: str = "bior4.4",
    levels: int = 5,
    consistency: int = 3,
    decision: np.ndarray | None = None,
) -> np.ndarray:
    """Fuse images with the 2-D discrete wavelet transform (Li et al. 1995).

    ``images``: two or more float arrays in [0, 1], all (H, W) or all (H, W, C).
    ``wavelet``: a PyWavelets discrete wavelet name (default ``"bior4.4"``, the CDF 9/7
    wavelet; ``"db1"`` with ``levels=4`` is the MST toolbox's Haar transform).
    ``levels``: decomposition levels (default 5; see the module's notes). ``consistency``: odd
    window size of the activity maximum and of the majority filter (3; 1 = plain
    maximum-absolute selection). ``decision``: optional (H, W) weight map in [0, 1] for the
    first of two images; when given, bands are blended by it and ``consistency`` is unused.

    Returns the fused float32 image, the inputs' shape, clipped to [0, 1].
    """
    stack = _check_images(images)
    if not isinstance(wavelet, str) or wavelet not in pywt.wavelist(kind="discrete"):
        raise ValueError(
            f"wavelet must be a PyWavelets discrete wavelet name such as 'db1', 'db4', "
            f"'sym4' or 'bior2.2'; got {wavelet!r}; see pywt.wavelist(kind='discrete')"
        )
    n, height, width, _ = stack.shape
    levels = _check_levels(levels, (height, width))
    window = check_consistency(consistency)
    weight = _check_decision(decision, n, (height, width))

    with warnings.catch_warnings():  # deep levels on small images: all coefficients feel
        # the boundary, which the symmetric extension handles; reconstruction stays exact
        warnings.filterwarnings("ignore", "Level value of", UserWarning)
        coefs = pywt.wavedec2(stack, wavelet, mode=_DWT_BOUNDARY, level=levels, axes=(1, 2))
    if weight is not None:
        weights = _dwt_weights(weight, wavelet, levels)  # finest first
        fused = [_blend(coefs[0], weights[-1])]
        fused += [tuple(_blend(band, w) for band in detail)
                  for detail, w in zip(coefs[1:], weights[::-1])]
    else:
        fused = [coefs[0].mean(axis=0)]
        fused += [tuple(_select(band, window) for band in detail) for detail in coefs[1:]]
    image = pywt.waverec2(fused, wavelet, mode=_DWT_BOUNDARY, axes=(0, 1))
    return _finish(image[:height, :width], images[0])


def _dwt_weights(weight: np.ndarray, wavelet: str, levels: int) -> list[np.ndarray]:
    """The weight map at each level's coefficient grid, finest first: the level's lowpass
    band of the map divided by that of a constant map, so that coefficient and weight
    describe the same place (the bands are a few coefficients larger than size / 2**j
    with symmetric extension)."""
    out, low, ones = [], weight, np.ones_like(weight)
    for _ in range(levels):
        low, _ = pywt.dwt2(low, wavelet, mode=_DWT_BOUNDARY)
        ones, _ = pywt.dwt2(ones, wavelet, mode=_DWT_BOUNDARY)
        out.append(np.clip(low / ones, 0.0, 1.0))
    return out


def fuse_dtcwt(
    images: Sequence[np.ndarray],
    *,
    levels: int = 5,
    biort: str = "legall",
    qshift: str = "qshift_06",
    consistency: int = 3,
    decision: np.ndarray | None = None,
) -> np.ndarray:
    """Fuse images with the dual-tree complex wavelet transform.

    As :func:`fuse_dwt`, on the six complex sub-bands of each level, choosing by the
    magnitude of the complex coefficients. ``biort`` / ``qshift``: filters (defaults
    ``"legall"`` / ``"qshift_06"``, those of the MST toolbox; see
    :mod:`focusfuse.transforms.dtcwt`). ``levels``: default 5; ``levels=4`` with the
    default filters is the MST toolbox's setting, which reproduces the survey's ``dtcwt``.

    Returns the fused float32 image, the inputs' shape, clipped to [0, 1].
    """
    stack = _check_images(images)
    if not isinstance(biort, str) or biort not in BIORT_FILTERS:
        raise ValueError(f"biort must be one of {BIORT_FILTERS}; got {biort!r}")
    if not isinstance(qshift, str) or qshift not in QSHIFT_FILTERS:
        raise ValueError(f"qshift must be one of {QSHIFT_FILTERS}; got {qshift!r}")
    n, height, width, channels = stack.shape
    levels = _check_levels(levels, (height, width))
    window = check_consistency(consistency)
    weight = _check_decision(decision, n, (height, width))

    # pyramids[i][c]: image i, channel c
    pyramids = [[dtcwt_forward(stack[i, :, :, c], levels, biort=biort, qshift=qshift)
                 for c in range(channels)] for i in range(n)]

    def band(get):  # (N, h, w, C) array of one band over images and channels
        return np.stack([np.stack([get(p) for p in per_image], axis=-1)
                         for per_image in pyramids])

    lows = band(lambda p: p.lowpass)
    highs = [band(lambda p, j=j: p.highpasses[j]) for j in range(levels)]
    if weight is not None:
        weight = np.pad(weight, pyramids[0][0].pad, mode="symmetric")
        low = _blend(lows, weight)
        fused_highs = [_blend(h, weight) for h in highs]
    else:
        low = lows.mean(axis=0)
        # highs[j]: (N, h, w, 6, C); each of the six orientations is chosen separately
        fused_highs = [np.stack([_select(h[..., k, :], window) for k in range(6)], axis=-2)
                       for h in highs]
    ref = pyramids[0][0]
    out = np.stack([
        dtcwt_inverse(Pyramid(low[..., c], tuple(h[..., c] for h in fused_highs),
                              ref.shape, ref.pad), biort=biort, qshift=qshift)
        for c in range(channels)], axis=-1)
    return _finish(out, images[0])


def fuse_laplacian(
    images: Sequence[np.ndarray],
    *,
    levels: int = 5,
    consistency: int = 3,
) -> np.ndarray:
    """Fuse images with the Laplacian pyramid (Burt and Adelson 1983; the rule of the MST
    toolbox's ``lp_fuse``): top level averaged, each detail level chosen by the windowed
    maximum absolute value with the majority check (``consistency``, 1 = plain maximum).
    ``levels``: default 5 (the toolbox used 4).

    Returns the fused float32 image, the inputs' shape, clipped to [0, 1].
    """
    stack = _check_images(images)
    n, height, width, _ = stack.shape
    levels = _check_levels(levels, (height, width))
    window = check_consistency(consistency)
    pyramids = [laplacian_forward(stack[i], levels) for i in range(n)]
    fused = [_select(np.stack([p[k] for p in pyramids]), window) for k in range(levels)]
    fused.append(np.mean([p[-1] for p in pyramids], axis=0))
    return _finish(laplacian_inverse(fused), images[0])
