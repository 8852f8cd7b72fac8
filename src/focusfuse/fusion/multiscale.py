"""Multiscale-transform fusion: DWT, DTCWT and Laplacian pyramid, as pure NumPy functions.

The rules follow H. Li, B. S. Manjunath, S. K. Mitra, "Multisensor image fusion using the
wavelet transform", Graphical Models and Image Processing 57(3), 1995: the lowpass band is
averaged; each highpass coefficient comes from the source with the largest activity, the
activity being the maximum absolute value in a window around it, and the resulting choice
map is then made consistent by a majority filter over the same window ("window-based
verification"). Three or more images take the coefficient of maximum activity among all
and average the lowpass bands.

Defaults (:mod:`focusfuse.fusion.options`), chosen by the error to a known all-in-focus
image on synthetic pairs that are not the Lytro test set (docs/multiscale.md gives the
candidates and the measured figures):

- ``levels=5``: the averaged lowpass band keeps half of what the defocus blur removed below
  its upper edge, about 2**-(levels+1) cycles per pixel; the survey's MST toolbox used 4;
- DWT ``wavelet="bior4.4"``, the CDF 9/7 wavelet (Cohen, Daubechies, Feauveau, Comm. Pure
  Appl. Math. 45, 1992; the lossy wavelet of JPEG 2000): symmetric, smooth, 4 vanishing
  moments, with half-sample symmetric extension (MATLAB's ``'sym'``);
- DTCWT ``biort="legall"``, ``qshift="qshift_06"``: Kingsbury's short filters, as in Yu
  Liu's MST toolbox (Y. Liu, S. Liu, Z. Wang, Information Fusion 24, 2015);
- ``consistency=3``: the 3 x 3 window of Li et al. 1995 and of the MST toolbox.

The toolbox's settings, which made the published ``dwt`` / ``dtcwt`` rows of the Liu et al.
2020 survey: 4 levels for all three; DWT ``db1`` (Haar) with periodic extension, which on
sizes divisible by 2**levels our symmetric extension equals (``fuse_dwt(images,
wavelet="db1", levels=4)``; the published ``dwt`` images are not reproduced by it);
``fuse_dtcwt(images, levels=4)`` reproduces the published ``dtcwt`` row to within 0.0007
on every metric; ``fuse_laplacian(images, levels=4)`` is its ``lp_fuse``.

Our choices where the toolbox differs or is silent: colour images are fused channel by
channel, but the choice maps are decided on the gray image (ITU-R BT.601 weights applied to
the coefficients, which the linearity of the transforms makes the coefficients of the gray
image) and applied to every channel, so that the channels of one pixel never come from
different sources (the toolbox decides per channel). Borders: symmetric extension (DWT),
symmetric padding to what the transform needs, cropped back (DTCWT), reflect-101
(Laplacian, OpenCV).

With ``decision`` (a weight map D in [0, 1] for the first of two images, as the CNN method
produces), every band is fused as D_j * A + (1 - D_j) * B instead of by the activity rule, D_j
being D brought to the band's grid (DTCWT: by area averaging, cv2.INTER_AREA; DWT: by the
wavelet's own lowpass, so that it lines up with the symmetric-extension bands): the learned
focus measure decides, the transform blends at each scale ("cnn-dtcwt").
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import cv2
import numpy as np
import pywt
from scipy.ndimage import maximum_filter, uniform_filter

from focusfuse.checks import check_images, check_levels
from focusfuse.color import to_gray
from focusfuse.fusion.options import DTCWTOptions, DWTOptions, MultiscaleOptions
from focusfuse.fusion.result import FusionResult
from focusfuse.transforms.dtcwt import Pyramid, dtcwt_forward, dtcwt_inverse
from focusfuse.transforms.laplacian import laplacian_forward, laplacian_inverse

__all__ = ["dtcwt_blend", "dtcwt_method", "dwt_method", "fuse_dtcwt", "fuse_dwt",
           "fuse_laplacian", "laplacian_method"]

#: PyWavelets boundary mode of the DWT: half-sample symmetric extension (MATLAB's default
#: 'sym'), so that no filter reaches across the image to the opposite edge
_DWT_BOUNDARY = "symmetric"


# --------------------------------------------------------------------------- inputs
def _options(method: str, given: dict):
    """The built options of ``method``, checked as :func:`focusfuse.fuse` checks them."""
    from focusfuse.fusion.registry import get_method

    return get_method(method).make_options(given)


def _stack(images: list[np.ndarray]) -> np.ndarray:
    """Checked sources stacked as float64 (N, H, W, C)."""
    stack = np.stack(images).astype(np.float64)
    return stack if stack.ndim == 4 else stack[..., None]


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
    choice = _choose(np.abs(to_gray(coefs, weighting="bt601")), window)
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
def _dwt(images: list[np.ndarray], opts: DWTOptions, decision=None) -> np.ndarray:
    stack = _stack(images)
    n, height, width, _ = stack.shape
    levels = check_levels(opts.levels, (height, width))
    wavelet, window = opts.wavelet, opts.consistency
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


def fuse_dwt(images: Sequence[np.ndarray], *, decision: np.ndarray | None = None,
             **options) -> np.ndarray:
    """Fuse images with the 2-D discrete wavelet transform (Li et al. 1995).

    ``images``: two or more float arrays in [0, 1], all (H, W) or all (H, W, C).
    ``options``: those of :class:`~focusfuse.fusion.options.DWTOptions`: ``wavelet``, a
    PyWavelets discrete wavelet name (default ``"bior4.4"``, the CDF 9/7 wavelet; ``"db1"``
    with ``levels=4`` is the MST toolbox's Haar transform); ``levels`` (default 5);
    ``consistency``, the odd window size of the activity maximum and of the majority filter
    (3; 1 = plain maximum-absolute selection). ``decision``: optional (H, W) weight map in
    [0, 1] for the first of two images; when given, bands are blended by it and
    ``consistency`` is unused.

    Returns the fused float32 image, the inputs' shape, clipped to [0, 1].
    """
    return _dwt(check_images(images), _options("dwt", options), decision)


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


def _dtcwt(images: list[np.ndarray], opts: DTCWTOptions, decision=None) -> np.ndarray:
    stack = _stack(images)
    biort, qshift = opts.biort, opts.qshift
    n, height, width, channels = stack.shape
    levels = check_levels(opts.levels, (height, width))
    window = opts.consistency
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


def fuse_dtcwt(images: Sequence[np.ndarray], *, decision: np.ndarray | None = None,
               **options) -> np.ndarray:
    """Fuse images with the dual-tree complex wavelet transform.

    As :func:`fuse_dwt`, on the six complex sub-bands of each level, choosing by the
    magnitude of the complex coefficients. ``options``: those of
    :class:`~focusfuse.fusion.options.DTCWTOptions`: ``levels`` (default 5; ``levels=4``
    with the default filters is the MST toolbox's setting, which reproduces the survey's
    ``dtcwt``), ``consistency``, and the filters ``biort`` / ``qshift`` (defaults
    ``"legall"`` / ``"qshift_06"``, those of the MST toolbox; see
    :mod:`focusfuse.transforms.dtcwt`).

    Returns the fused float32 image, the inputs' shape, clipped to [0, 1].
    """
    return _dtcwt(check_images(images), _options("dtcwt", options), decision)


def dtcwt_blend(a: np.ndarray, b: np.ndarray, decision: np.ndarray, *, levels: int = 5
                ) -> np.ndarray:
    """Checked sources ``a``, ``b`` fused by blending every DTCWT band with the weight map
    ``decision`` of ``a`` (the default filters): the fusion step of ``cnn-dtcwt``."""
    return _dtcwt([a, b], DTCWTOptions(levels=levels), decision)


def _laplacian(images: list[np.ndarray], opts: MultiscaleOptions) -> np.ndarray:
    stack = _stack(images)
    n, height, width, _ = stack.shape
    levels = check_levels(opts.levels, (height, width))
    window = opts.consistency
    pyramids = [laplacian_forward(stack[i], levels) for i in range(n)]
    fused = [_select(np.stack([p[k] for p in pyramids]), window) for k in range(levels)]
    fused.append(np.mean([p[-1] for p in pyramids], axis=0))
    return _finish(laplacian_inverse(fused), images[0])


def fuse_laplacian(images: Sequence[np.ndarray], **options) -> np.ndarray:
    """Fuse images with the Laplacian pyramid (Burt and Adelson 1983; the rule of the MST
    toolbox's ``lp_fuse``): top level averaged, each detail level chosen by the windowed
    maximum absolute value with the majority check. ``options``: those of
    :class:`~focusfuse.fusion.options.MultiscaleOptions`: ``levels`` (default 5; the
    toolbox used 4) and ``consistency`` (3; 1 = plain maximum).

    Returns the fused float32 image, the inputs' shape, clipped to [0, 1].
    """
    return _laplacian(check_images(images), _options("laplacian", options))


# ------------------------------------------------------------------ registered methods
# two sources in memory; three or more as a stack, one frame at a time
# (:mod:`focusfuse.fusion.stack`: the same rule, and the result does not depend on the order)
def _method(name: str, pair):
    def run(images: list[np.ndarray], options) -> FusionResult:
        if len(images) > 2:
            from focusfuse.fusion.stack import ArrayFrames, fuse_stack

            return fuse_stack(ArrayFrames(images), name, options)
        return FusionResult(pair(images, options), name, [])
    run.__name__ = f"{name}_method"
    run.__doc__ = f"The ``{name}`` method on checked sources."
    return run


dwt_method = _method("dwt", _dwt)
dtcwt_method = _method("dtcwt", _dtcwt)
laplacian_method = _method("laplacian", _laplacian)


# ----------------------------------------------------------------------- stacks, streamed
def activity(band: np.ndarray, window: int) -> np.ndarray:
    """The windowed activity of one band (h, w, C) of one frame: the maximum over the window
    of the gray coefficients' magnitude (the first half of :func:`_choose`)."""
    a = np.abs(to_gray(band, weighting="bt601"))
    return a if window == 1 else maximum_filter(a, size=window, mode="mirror")


def finish(fused: np.ndarray, like: np.ndarray) -> np.ndarray:
    """The fused array clipped to [0, 1] as float32, in the shape of the frame ``like``."""
    return _finish(fused, like)


def stack_transform(method: str, options, shape: tuple[int, int]):
    """(decompose, reconstruct) of ``method`` for frames of (H, W) ``shape``: ``decompose
    (frame)`` gives the lowpass band and a flat list of the highpass bands, each (h, w, C);
    ``reconstruct(low, bands)`` the image (H, W, C)."""
    height, width = shape
    levels = check_levels(options.levels, shape)

    def channels(frame):
        x = np.asarray(frame, np.float64)
        return x if x.ndim == 3 else x[..., None]

    if method == "laplacian":
        def decompose(frame):
            pyramid = laplacian_forward(channels(frame), levels)
            return pyramid[-1], list(pyramid[:-1])

        def reconstruct(low, bands):
            return laplacian_inverse(list(bands) + [low])
        return decompose, reconstruct

    if method == "dwt":
        wavelet = options.wavelet

        def decompose(frame):
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", "Level value of", UserWarning)
                coefs = pywt.wavedec2(channels(frame), wavelet, mode=_DWT_BOUNDARY,
                                      level=levels, axes=(0, 1))
            return coefs[0], [band for detail in coefs[1:] for band in detail]

        def reconstruct(low, bands):
            nested = [low] + [tuple(bands[3 * j:3 * j + 3]) for j in range(len(bands) // 3)]
            return pywt.waverec2(nested, wavelet, mode=_DWT_BOUNDARY, axes=(0, 1))[:height, :width]
        return decompose, reconstruct

    if method == "dtcwt":
        biort, qshift = options.biort, options.qshift
        geometry = {}

        def decompose(frame):
            x = channels(frame)
            pyramids = [dtcwt_forward(x[:, :, c], levels, biort=biort, qshift=qshift)
                        for c in range(x.shape[2])]
            geometry["ref"] = pyramids[0]
            low = np.stack([p.lowpass for p in pyramids], axis=-1)
            bands = [np.stack([p.highpasses[j][..., o] for p in pyramids], axis=-1)
                     for j in range(levels) for o in range(6)]
            return low, bands

        def reconstruct(low, bands):
            ref = geometry["ref"]
            out = []
            for c in range(low.shape[-1]):
                highs = tuple(np.stack([bands[6 * j + o][..., c] for o in range(6)], axis=-1)
                              for j in range(levels))
                out.append(dtcwt_inverse(Pyramid(low[..., c], highs, ref.shape, ref.pad),
                                         biort=biort, qshift=qshift))
            return np.stack(out, axis=-1)
        return decompose, reconstruct
    raise ValueError(f"no streamed transform for method {method!r}")
