"""Training pairs made from natural images, as Liu et al. 2017, Section 3.2, describe.

- each image is converted to gray;
- five blurred versions are made by cascaded Gaussian filtering, each version the
  previous one filtered again with a 7×7 Gaussian of standard deviation 2;
- 16×16 patch pairs are sampled at random positions: the clear patch from the original,
  the blurred patch at the same place from one of the blurred versions; clear patches
  whose variance (on the 0..255 scale) is not above 25 are rejected (flat patches carry
  no focus information);
- each pair is shown in both orders: (clear, blurred) has label 1 ("the first is in
  focus"), (blurred, clear) label 0.

Everything here is pure and seeded: the same images and seed give the same pairs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from focusfuse.color import to_gray
from focusfuse.io import SUPPORTED_SUFFIXES, read_image

__all__ = ["PatchPairSampler", "blur_cascade", "list_images", "make_pairs"]

PATCH = 16
BLUR_LEVELS = 5
BLUR_SIGMA = 2.0
BLUR_KSIZE = 7
MIN_VARIANCE = 25.0  # on the 0..255 scale
#: images yielding fewer than one textured patch in this many draws count as flat
MAX_REJECTIONS_PER_PAIR = 1000


def blur_cascade(gray: np.ndarray, *, levels: int = BLUR_LEVELS, sigma: float = BLUR_SIGMA,
                 ksize: int = BLUR_KSIZE, kernel: str = "gaussian") -> np.ndarray:
    """Stack (levels + 1, H, W): the image, then each blur applied to the previous one.

    ``kernel="gaussian"`` is the paper's 7×7 Gaussian; ``"disk"`` a uniform disk of
    diameter ``ksize`` (a defocus-like kernel, for the ablation of non-Gaussian blur).
    """
    if gray.ndim != 2:
        raise ValueError(f"gray must be (H, W); got shape {gray.shape}")
    if kernel == "gaussian":
        g = cv2.getGaussianKernel(ksize, sigma)
        k2 = (g @ g.T).astype(np.float32)
    elif kernel == "disk":
        r = (ksize - 1) / 2
        yy, xx = np.mgrid[-r:r + 1, -r:r + 1]
        k2 = (xx**2 + yy**2 <= r * r + 0.5).astype(np.float32)
        k2 /= k2.sum()
    else:
        raise ValueError(f"kernel must be 'gaussian' or 'disk'; got {kernel!r}")
    out = [gray.astype(np.float32)]
    for _ in range(levels):
        out.append(cv2.filter2D(out[-1], -1, k2, borderType=cv2.BORDER_REFLECT))
    return np.stack(out)


def list_images(folder: str | Path, *, suffixes: tuple[str, ...] | None = None) -> list[Path]:
    """Image files in ``folder`` (sorted), optionally only those with the given suffixes."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"image folder {folder} does not exist; give a folder of natural images")
    allowed = tuple(s.lower() for s in (suffixes or SUPPORTED_SUFFIXES))
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in allowed)
    if not files:
        raise ValueError(f"image folder {folder} holds no {'/'.join(allowed)} files")
    return files


@dataclass
class PatchPairSampler:
    """Draws labelled patch pairs from the blur cascades of a set of images.

    ``stacks`` holds one (levels + 1, H, W) float32 array in [0, 1] per image. Draw
    with :meth:`sample`; the generator passed in carries all the randomness.
    """

    stacks: list[np.ndarray]

    @classmethod
    def from_files(cls, files: list[Path], *, levels: int = BLUR_LEVELS,
                   kernel: str = "gaussian") -> PatchPairSampler:
        stacks = [blur_cascade(to_gray(read_image(f)).astype(np.float32), levels=levels,
                               kernel=kernel) for f in files]
        return cls(stacks)

    @property
    def levels(self) -> int:
        return self.stacks[0].shape[0] - 1

    def sample(self, n: int, rng: np.random.Generator, *,
               level: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``n`` pairs: arrays a, b of shape (n, 16, 16) float32 and labels (n,) int64.

        Label 1: ``a`` is the clear patch. Half the pairs, at random, come in each order.
        The blurred patch comes from a uniformly chosen blur level, or from ``level`` only
        (1 is the lightest blur, the hardest pairs to tell apart).
        """
        if level is not None and not 1 <= level <= self.levels:
            raise ValueError(f"level must be in 1..{self.levels}; got {level}")
        a = np.empty((n, PATCH, PATCH), np.float32)
        b = np.empty_like(a)
        got, rejected = 0, 0
        while got < n:
            if rejected >= 100_000 and got * MAX_REJECTIONS_PER_PAIR < rejected:
                raise ValueError(
                    f"found only {got} of {n} textured patches in {rejected + got} draws: the "
                    f"images are almost flat (patch variance on the 0..255 scale must exceed "
                    f"{MIN_VARIANCE:g}); use photographs with detail")
            m = 2 * (n - got) + 8
            img = rng.integers(len(self.stacks), size=m)
            lvl = (rng.integers(1, self.levels + 1, size=m) if level is None
                   else np.full(m, level))
            fy = rng.random(m)
            fx = rng.random(m)
            for i, lv, y0, x0 in zip(img, lvl, fy, fx):
                st = self.stacks[i]
                y = int(y0 * (st.shape[1] - PATCH + 1))
                x = int(x0 * (st.shape[2] - PATCH + 1))
                clear = st[0, y:y + PATCH, x:x + PATCH]
                if (clear * 255.0).var() <= MIN_VARIANCE:
                    rejected += 1
                    continue
                a[got] = clear
                b[got] = st[lv, y:y + PATCH, x:x + PATCH]
                got += 1
                if got == n:
                    break
        labels = rng.integers(0, 2, size=n)
        swap = labels == 0
        a[swap], b[swap] = b[swap].copy(), a[swap].copy()
        return a, b, labels.astype(np.int64)


def make_pairs(files: list[Path], n: int, *, seed: int, levels: int = BLUR_LEVELS,
               kernel: str = "gaussian", level: int | None = None,
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A fixed set of ``n`` labelled pairs from ``files`` (for validation), seeded.

    ``level`` restricts the blurred patches to one blur level (see :meth:`PatchPairSampler.sample`).
    """
    sampler = PatchPairSampler.from_files(files, levels=levels, kernel=kernel)
    return sampler.sample(n, np.random.default_rng(seed), level=level)
