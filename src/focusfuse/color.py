"""Gray conversion shared by scoring and training."""

from __future__ import annotations

import cv2
import numpy as np

__all__ = ["RGB2GRAY", "to_gray"]

#: MATLAB ``rgb2gray`` weights (ITU-R BT.601 luma as MATLAB computes it), which the
#: authors' code applies before scoring.
RGB2GRAY = np.array([0.298936021293775, 0.587043074451121, 0.114020904255103])


def to_gray(image: np.ndarray) -> np.ndarray:
    """(H, W) stays as it is; (H, W, 3 or 4) becomes the weighted sum of R, G, B (alpha ignored).

    The result keeps the input's float type (float32 in, float32 out).
    """
    image = np.asarray(image)
    if image.ndim == 2:
        return image
    if image.ndim == 3 and image.shape[2] in (3, 4):
        if image.dtype == np.float32:  # OpenCV's weighted channel sum: 10× NumPy's matmul
            rgb = np.ascontiguousarray(image[..., :3])
            return cv2.transform(rgb, RGB2GRAY[None, :].astype(np.float32)).reshape(image.shape[:2])
        dtype = image.dtype if np.issubdtype(image.dtype, np.floating) else np.float64
        return (image[..., :3].astype(np.float64) @ RGB2GRAY).astype(dtype)
    raise ValueError(
        f"image must be (H, W) gray or (H, W, 3) colour; got shape {image.shape}"
    )
