"""Built-in examples: multi-focus pairs made from a sharp image by blurring complementary regions.

The sharp image ships with scikit-image (``skimage.data.astronaut``, public domain), so the
demo needs no downloaded file; the all-in-focus original is the ground truth.
"""

from __future__ import annotations

import cv2
import numpy as np

__all__ = ["example_pair", "make_multifocus_pair", "region_mask"]


def region_mask(shape: tuple[int, int], *, kind: str = "ellipse") -> np.ndarray:
    """A bool (H, W) mask: the "near" region of a synthetic scene.

    ``"ellipse"``: a centred ellipse (an object in front of a background); ``"half"``: the
    left half; ``"wave"``: the part left of a wavy vertical boundary.
    """
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    if kind == "ellipse":
        return ((yy - 0.5 * h) / (0.32 * h)) ** 2 + ((xx - 0.5 * w) / (0.28 * w)) ** 2 <= 1.0
    if kind == "half":
        return xx < w / 2
    if kind == "wave":
        return xx < w * (0.5 + 0.12 * np.sin(2 * np.pi * yy / h * 1.5))
    raise ValueError(f"kind must be 'ellipse', 'half' or 'wave'; got {kind!r}")


def make_multifocus_pair(sharp: np.ndarray, mask: np.ndarray, *, sigma: float = 3.0
                         ) -> tuple[np.ndarray, np.ndarray]:
    """(A, B): A sharp where ``mask`` is true and blurred elsewhere, B the opposite.

    The blurred version is a Gaussian blur of standard deviation ``sigma`` pixels.
    """
    sharp = np.asarray(sharp, dtype=np.float32)
    blurred = cv2.GaussianBlur(sharp, (0, 0), sigma, borderType=cv2.BORDER_REFLECT)
    m = mask if sharp.ndim == 2 else mask[..., None]
    a = np.where(m, sharp, blurred)
    b = np.where(m, blurred, sharp)
    return a.astype(np.float32), b.astype(np.float32)


def example_pair(*, kind: str = "ellipse", sigma: float = 3.0
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(A, B, sharp) made from scikit-image's astronaut photograph (512×512 colour)."""
    from skimage import data

    sharp = data.astronaut().astype(np.float32) / 255.0
    a, b = make_multifocus_pair(sharp, region_mask(sharp.shape[:2], kind=kind), sigma=sigma)
    return a, b, sharp
