"""Built-in examples: multi-focus pairs made from a sharp image by blurring complementary regions.

The sharp image ships with scikit-image (``skimage.data.astronaut``, public domain), so the
demo needs no downloaded file; the all-in-focus original is the ground truth.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

__all__ = ["DemoResult", "example_pair", "make_multifocus_pair", "region_mask", "run_demo"]


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


@dataclass
class DemoResult:
    """What :func:`run_demo` did: the method, the fusion's time, and PSNR (dB) and SSIM of
    each source and of the fused image against the sharp original (as 8-bit images)."""

    method: str
    seconds: float
    quality: dict[str, tuple[float, float]]
    folder: Path


def run_demo(folder: str | os.PathLike, *, method: str = "cnn", **options) -> DemoResult:
    """Fuse :func:`example_pair`, write the sources, the sharp original, ``fused.png``,
    ``decision.png`` and every map (``steps/``) to ``folder``, and measure the result.

    ``options`` go to :func:`focusfuse.fuse`; they and ``folder`` (a folder, or a path that
    can be made one) are checked before any work, and ``folder`` is made only after the
    fusion: a refused demo leaves nothing behind.
    """
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    from focusfuse.checks import check_output_folder
    from focusfuse.fusion import get_method
    from focusfuse.io import quantize, write_image

    spec = get_method(method)
    opts = spec.make_options(options)  # bad options: nothing written
    check_output_folder(folder, "folder")
    a, b, sharp = example_pair()
    spec.function()  # the method's modules (PyTorch for the CNN) load outside the timing
    t0 = time.perf_counter()
    result = spec.run([a, b], opts)
    seconds = time.perf_counter() - t0
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for name, im in (("source-a", a), ("source-b", b), ("sharp", sharp), ("fused", result.fused)):
        write_image(folder / f"{name}.png", im)
    result.save(folder / "steps")
    if result.decision_map is not None:
        write_image(folder / "decision.png", np.clip(result.decision_map, 0, 1))

    def quality(im):
        im8 = quantize(im, 8) / 255
        return (float(peak_signal_noise_ratio(sharp, im8, data_range=1.0)),
                float(structural_similarity(sharp, im8, data_range=1.0, channel_axis=2)))

    return DemoResult(method, seconds, {name: quality(im) for name, im in (
        ("source A", a), ("source B", b), ("fused", result.fused))}, folder)
