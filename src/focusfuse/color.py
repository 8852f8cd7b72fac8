"""Gray conversion: one function, with named weightings of R, G and B.

- ``"matlab"``: MATLAB ``rgb2gray`` (ITU-R BT.601 luma as MATLAB computes it from the
  inverse of its YIQ matrix), which the authors' code applies before scoring and the
  survey's metric code before every metric;
- ``"bt601"``: the rounded ITU-R BT.601 luma weights 0.299, 0.587, 0.114, with which the
  multiscale methods decide on gray coefficients.
"""

from __future__ import annotations

import cv2
import numpy as np

__all__ = ["GRAY_WEIGHTS", "RGB2GRAY", "to_gray"]

#: the named weightings of :func:`to_gray`
GRAY_WEIGHTS = {
    "matlab": np.array([0.298936021293775, 0.587043074451121, 0.114020904255103]),
    "bt601": np.array([0.299, 0.587, 0.114]),
}
#: MATLAB ``rgb2gray`` weights, the default weighting
RGB2GRAY = GRAY_WEIGHTS["matlab"]


def to_gray(image: np.ndarray, *, weighting: str = "matlab") -> np.ndarray:
    """The gray image of ``image``, channels on the last axis.

    (H, W) stays as it is; (..., C) becomes the weighted sum of the first three channels
    (alpha ignored) for C = 3 or 4, the first channel for C = 1 or 2. Any leading axes are
    kept (the multiscale methods convert (N, h, w, C) stacks of real or complex
    coefficients). Float and complex input keep their type; integers give float64.
    """
    image = np.asarray(image)
    try:
        weights = GRAY_WEIGHTS[weighting]
    except (KeyError, TypeError):
        raise ValueError(f"weighting must be one of {', '.join(GRAY_WEIGHTS)}; "
                         f"got {weighting!r}") from None
    if image.ndim == 2:
        return image
    if image.ndim < 2:
        raise ValueError(f"image must be (H, W) gray or (H, W, C) colour; got shape {image.shape}")
    channels = image.shape[-1]
    if channels in (1, 2):
        return image[..., 0]
    if channels not in (3, 4):
        raise ValueError(f"image must have 1, 3 or 4 channels on its last axis; got shape "
                         f"{image.shape}")
    if image.dtype == np.float32 and image.ndim == 3:  # OpenCV's weighted sum: 10× NumPy's
        rgb = np.ascontiguousarray(image[..., :3])
        return cv2.transform(rgb, weights[None, :].astype(np.float32)).reshape(image.shape[:2])
    if np.iscomplexobj(image) or image.dtype == np.float64:
        return image[..., :3] @ weights
    dtype = image.dtype if np.issubdtype(image.dtype, np.floating) else np.float64
    return (image[..., :3].astype(np.float64) @ weights).astype(dtype)
