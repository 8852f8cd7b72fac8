"""Input checks and the MATLAB conventions that the fusion metrics share.

The reference values of the field (Liu et al., TPAMI 2012; the survey of Liu, Wang,
Cheng, Li, Chen, Information Fusion 64, 2020) were computed in MATLAB on gray images
of 0..255 doubles. The helpers here reproduce the conventions that decide their last
digits:

- gray conversion: MATLAB ``rgb2gray`` weights; ``rgb2gray`` of a uint8 image returns
  uint8, i.e. the weighted sum rounded half away from zero, which is what the survey's
  script feeds to every metric (``double(rgb2gray(imread(...)))``);
- ``normalize1``: min-max stretch to 0..255, rounded half away from zero (MATLAB
  ``round``), used by QMI, QNCIE, QCB and QCV;
- ``filter2(h, x, 'same')`` / ``'valid'``: correlation with zero padding;
- ``blkproc``: non-overlapping blocks, the last partial blocks padded with zeros.
"""

from __future__ import annotations

import cv2
import numpy as np

from focusfuse.color import RGB2GRAY, to_gray  # MATLAB rgb2gray weights, one definition

__all__ = [
    "RGB2GRAY",
    "as_gray255",
    "check_triplet",
    "matlab_round",
    "normalize1",
    "correlate_same",
    "correlate_sep",
    "block_reduce_sum",
]


#: Smallest image side the metrics accept: the largest window of the reference code
#: (QY's 7x7 SSIM needs at least 11 pixels in the original code, QP's 11x11 Gaussian).
MIN_SIDE = 11

# float inputs whose values times 255 lie this close to integers are taken as 8-bit
# images stored as floats (float32 k/255 * 255 is k to within about 2e-5).
_EIGHT_BIT_TOL = 1e-3

# float values this far outside [0, 1] mean a wrong scale (e.g. 0..255 passed as float);
# a fused image that overshoots [0, 1] a little is accepted as it is.
_FLOAT_SLACK = 0.5


def matlab_round(x: np.ndarray) -> np.ndarray:
    """MATLAB ``round``: half away from zero (NumPy's ``round`` goes half to even)."""
    return np.sign(x) * np.floor(np.abs(x) + 0.5)


def _scale_to_255(image: np.ndarray, name: str) -> tuple[np.ndarray, bool]:
    """Values as float64 on the 0..255 scale, and whether they are whole 8-bit levels."""
    if image.dtype == np.bool_ or not np.issubdtype(image.dtype, np.number):
        raise TypeError(
            f"{name} must be a numeric image array (uint8, uint16 or float); "
            f"got dtype {image.dtype}; convert it with np.asarray(..., dtype=np.float32)"
        )
    if np.issubdtype(image.dtype, np.complexfloating):
        raise TypeError(f"{name} must be real-valued; got dtype {image.dtype}; take its real part")
    if image.dtype == np.uint8:
        return image.astype(np.float64), True
    if image.dtype == np.uint16:
        return image.astype(np.float64) * (255.0 / 65535.0), False
    if np.issubdtype(image.dtype, np.integer):
        raise TypeError(
            f"{name} must be uint8, uint16 or float in [0, 1]; got dtype {image.dtype}; "
            "convert it to one of these first"
        )
    values = image.astype(np.float64)
    if not np.all(np.isfinite(values)):
        raise ValueError(f"{name} must contain only finite values; got NaN or inf; fix or mask them first")
    lo, hi = float(values.min()), float(values.max())
    if lo < -_FLOAT_SLACK or hi > 1.0 + _FLOAT_SLACK:
        raise ValueError(
            f"{name} is a float image, so its values must be in [0, 1]; got {lo:g}..{hi:g}; "
            "divide 0..255 values by 255 (or pass them as uint8)"
        )
    values *= 255.0
    levels = np.rint(values)
    if np.max(np.abs(values - levels), initial=0.0) < _EIGHT_BIT_TOL:
        return levels, True
    return values, False


def as_gray255(image, name: str = "image") -> np.ndarray:
    """Gray float64 image on the 0..255 scale, following the reference conventions.

    ``image`` is (H, W), (H, W, 1) or (H, W, 3) RGB. uint8 is taken as 0..255, uint16 as
    0..65535, float as [0, 1] (what :func:`focusfuse.io.read_image` returns). A float
    image whose values are whole multiples of 1/255 (an 8-bit file read as float) is
    snapped to those integer levels, so that it gives the same histograms as the uint8
    file. A colour image of 8-bit levels is converted like MATLAB ``rgb2gray`` on uint8
    (rounded to integer gray levels); any other colour image keeps the unrounded
    weighted sum, like ``rgb2gray`` on doubles.
    """
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] != 3):
        raise ValueError(
            f"{name} must be a gray (H, W) or RGB (H, W, 3) image; got shape {image.shape}; "
            "drop the alpha channel or convert the image to RGB or gray first"
        )
    values, eight_bit = _scale_to_255(image, name)
    if values.ndim == 3:
        values = to_gray(values, weighting="matlab")
        if eight_bit:
            values = matlab_round(values)
    return values


def check_triplet(a, b, fused) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Validate the two sources and the fused image; return them as gray 0..255 float64."""
    ga = as_gray255(a, "a")
    gb = as_gray255(b, "b")
    gf = as_gray255(fused, "fused")
    if not (ga.shape == gb.shape == gf.shape):
        raise ValueError(
            "a, b and fused must have the same height and width; got "
            f"{ga.shape}, {gb.shape} and {gf.shape}; align or crop them first"
        )
    if min(ga.shape) < MIN_SIDE:
        raise ValueError(
            f"images must be at least {MIN_SIDE}x{MIN_SIDE} pixels for the metrics' windows; "
            f"got {ga.shape}; use larger images"
        )
    return ga, gb, gf


def normalize1(x: np.ndarray) -> np.ndarray:
    """The reference code's ``normalize1``: stretch to 0..255 and round to integers.

    A constant image cannot be stretched; it is returned as it is (the reference code
    does this only for an all-zero image and divides by zero otherwise).
    """
    hi = float(x.max())
    lo = float(x.min())
    if hi == lo:
        return x.copy()
    return matlab_round((x - lo) / (hi - lo) * 255.0)


def correlate_sep(x: np.ndarray, kernel_1d: np.ndarray, *, valid: bool = False) -> np.ndarray:
    """``filter2(outer(k, k), x, 'same' or 'valid')`` for a separable kernel, zero padded."""
    k = np.asarray(kernel_1d, dtype=np.float64)
    n = k.size
    x = np.ascontiguousarray(x, dtype=np.float64)
    if valid:
        # Anchor the kernel at its first tap: output (i, j) is the window starting there.
        out = cv2.sepFilter2D(x, -1, k, k, anchor=(0, 0), borderType=cv2.BORDER_CONSTANT)
        return out[: x.shape[0] - n + 1, : x.shape[1] - n + 1]
    if n % 2 == 0:
        raise ValueError(f"'same' filtering needs an odd kernel; got length {n}")
    return cv2.sepFilter2D(x, -1, k, k, borderType=cv2.BORDER_CONSTANT)


def correlate_same(x: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """``filter2(kernel, x, 'same')`` for a small odd-sized kernel, zero padded."""
    x = np.ascontiguousarray(x, dtype=np.float64)
    return cv2.filter2D(x, -1, np.asarray(kernel, dtype=np.float64), borderType=cv2.BORDER_CONSTANT)


def block_reduce_sum(x: np.ndarray, size: int) -> np.ndarray:
    """Sum over non-overlapping size x size blocks, partial blocks padded with zeros (``blkproc``)."""
    h, w = x.shape
    nh = -(-h // size)
    nw = -(-w // size)
    padded = np.zeros((nh * size, nw * size), dtype=x.dtype)
    padded[:h, :w] = x
    return padded.reshape(nh, size, nw, size).sum(axis=(1, 3))
