"""Synthetic focus stacks with a known truth: the all-in-focus image and the depth per pixel.

A sharp natural image is given a depth map, then seen through a thin lens whose focus
plane moves through the scene, one frame per position. What each frame holds:

- **Depth** (``depth``, in units of the focus range: 0 is the first frame's focus
  plane, 1 the last's; larger is farther): the sharp image is cut into segments
  (Felzenszwalb and Huttenlocher, IJCV 59(2), 2004; scikit-image) so that depth edges
  sit on image edges; each segment takes one of a few depth levels plus a gentle
  planar slope.
- **Circle of confusion**: frame ``k`` focuses at ``d_k = k / (N - 1)``; a point at depth
  ``d`` is blurred by a uniform disk of radius ``r = blur_range · |d - d_k|`` pixels, at
  most ``max_blur`` (the thin-lens blur grows linearly with the defocus, Pentland 1987).
  Disks, not Gaussians: a defocused lens spreads light over its aperture's image.
- **Occlusion**: depth is cut into thin layers (neighbouring layers' radii differ by at
  most ``radius_step``); each layer's premultiplied colour and its coverage are blurred
  with that layer's disk and composited "over" from far to near (Porter and Duff 1984),
  then divided by the total coverage. A blurred foreground so spills over the
  background beside it, as with a real lens, and the truth is not exactly any frame there.
- **Variants**: ``"clean"``; ``"noisy"``: an exposure gain per frame (±``gain_jitter``)
  and Poisson-Gaussian sensor noise (``full_well`` photo-electrons at white, Gaussian read
  noise of ``read_noise``); ``"handheld"``: the motion alone, focus breathing (a scale
  changing linearly across the stack, up to ±``breathing``), a random shift (up to
  ``max_shift`` px) and rotation (up to ``max_rotation`` degrees) per frame about the
  image centre, applied to each rendered frame with ``cv2.warpAffine``;
  ``"handheld-noisy"``: that motion, then the gain and noise of ``"noisy"``. A scene's
  four variants share its depth, and the two hand-held ones their motion.

``depth_index`` is the true frame index per pixel: the frame whose focus plane is nearest
the pixel's depth. Everything is seeded: the same image, options and seed give the same
stack, bit for bit.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

__all__ = ["FrameTransform", "MOVING", "SENSOR", "SyntheticStack", "VARIANTS", "disk_kernel",
           "load_sharp_images", "make_stack", "write_stack"]

VARIANTS = ("clean", "noisy", "handheld", "handheld-noisy")
#: the variants with motion, and those with the exposure gain and sensor noise
MOVING = ("handheld", "handheld-noisy")
SENSOR = ("noisy", "handheld-noisy")


@dataclass(frozen=True)
class FrameTransform:
    """How one frame's geometry differs from the truth's (identity unless hand-held).

    ``matrix`` is the 2×3 map from truth pixel coordinates to frame pixel coordinates, as
    ``cv2.warpAffine(truth_geometry_image, matrix, (W, H))`` applies it: a rotation by
    ``angle`` degrees (counter-clockwise, as ``cv2.getRotationMatrix2D``) and a scale
    ``scale`` about the image centre, then a shift ``shift = (dx, dy)`` pixels.
    """

    scale: float = 1.0
    angle: float = 0.0
    shift: tuple[float, float] = (0.0, 0.0)
    matrix: np.ndarray = field(default_factory=lambda: np.eye(2, 3))

    @property
    def is_identity(self) -> bool:
        return self.scale == 1.0 and self.angle == 0.0 and self.shift == (0.0, 0.0)

    def as_dict(self) -> dict:
        """The transform as JSON values (a stack's or truth set's record of it)."""
        return {"scale": self.scale, "angle": self.angle, "shift": list(self.shift),
                "matrix": np.asarray(self.matrix).tolist()}


@dataclass
class SyntheticStack:
    """A rendered stack and its truth. Images are float32 in [0, 1], ``truth``'s shape."""

    frames: list[np.ndarray]
    truth: np.ndarray
    depth: np.ndarray            # (H, W) float32, 0 = first frame's focus plane, 1 = last's
    depth_index: np.ndarray      # (H, W) int64, the frame focused nearest each pixel's depth
    focus_depths: np.ndarray     # (N,) the focus plane of each frame
    transforms: list[FrameTransform]
    gains: np.ndarray            # (N,) exposure gain of each frame (1 unless SENSOR variant)
    segments: np.ndarray | None  # (H, W) int segment labels the depth was built on
    variant: str
    seed: int
    blur_range: float
    max_blur: float

    def blur_radius(self, k: int) -> np.ndarray:
        """The disk radius (px) with which frame ``k`` sees each pixel of the truth."""
        return np.minimum(self.blur_range * np.abs(self.depth - self.focus_depths[k]),
                          self.max_blur).astype(np.float32)


def disk_kernel(radius: float) -> np.ndarray:
    """A normalised uniform disk of the given radius (px), its edge anti-aliased.

    Radius 0 (and anything below about 0.3 px) is the identity.
    """
    if radius < 0:
        raise ValueError(f"radius must be >= 0; got {radius}")
    half = int(math.floor(radius + 0.5 - 1e-9))  # the last offset with weight > 0
    yy, xx = np.mgrid[-half:half + 1, -half:half + 1]
    k = np.clip(radius + 0.5 - np.hypot(xx, yy), 0.0, 1.0).astype(np.float32)
    return k / k.sum()


def _check_sharp(sharp) -> np.ndarray:
    sharp = np.asarray(sharp)
    if sharp.ndim not in (2, 3) or (sharp.ndim == 3 and sharp.shape[2] not in (1, 3)):
        raise ValueError(f"sharp must be (H, W) gray or (H, W, 3) colour; got shape {sharp.shape}")
    if not np.issubdtype(sharp.dtype, np.floating):
        raise TypeError(f"sharp must be float in [0, 1]; got dtype {sharp.dtype}; "
                        "read it with focusfuse.read_image or divide by 255")
    if min(sharp.shape[:2]) < 16:
        raise ValueError(f"sharp must be at least 16×16 pixels; got {sharp.shape[:2]}")
    if sharp.ndim == 3 and sharp.shape[2] == 1:
        sharp = sharp[:, :, 0]
    return np.clip(sharp, 0.0, 1.0).astype(np.float32)


def _segments(sharp: np.ndarray, scale: float) -> np.ndarray:
    """Felzenszwalb-Huttenlocher graph segments: their borders follow the image's edges.

    (Tried on BSDS500 against SLIC superpixels, with and without merging neighbours of
    similar colour: SLIC cuts flat and textured areas on its grid, this does not.)
    """
    from skimage.segmentation import felzenszwalb

    h, w = sharp.shape[:2]
    return felzenszwalb(sharp, scale=scale, sigma=0.8, min_size=max(16, h * w // 400),
                        channel_axis=-1 if sharp.ndim == 3 else None)


def _depth_map(labels: np.ndarray, rng: np.random.Generator, *, levels: int,
               slope: float) -> np.ndarray:
    """Each segment: one of ``levels`` depths (one drawn in each of ``levels`` equal parts of
    [0, 1]) plus a planar slope through the segment's centroid."""
    h, w = labels.shape
    n = int(labels.max()) + 1
    base = (np.arange(levels) + rng.uniform(0.0, 1.0, levels)) / levels
    level = rng.integers(0, levels, n)
    angle = rng.uniform(0.0, 2 * np.pi, n)
    amount = rng.uniform(0.0, slope, n)  # the depth change across the image's larger side
    gx, gy = amount * np.cos(angle), amount * np.sin(angle)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    size = float(max(h, w))
    counts = np.bincount(labels.ravel(), minlength=n).astype(np.float64)
    cx = np.bincount(labels.ravel(), xx.ravel(), minlength=n) / np.maximum(counts, 1)
    cy = np.bincount(labels.ravel(), yy.ravel(), minlength=n) / np.maximum(counts, 1)
    depth = (base[level][labels] + (gx[labels] * (xx - cx[labels])
                                     + gy[labels] * (yy - cy[labels])) / size)
    return np.clip(depth, 0.0, 1.0).astype(np.float32)


def _render(sharp: np.ndarray, depth: np.ndarray, focus_depths: np.ndarray, *,
            blur_range: float, max_blur: float, radius_step: float) -> list[np.ndarray]:
    """Layered thin-lens rendering, back to front, one frame per focus depth."""
    h, w = depth.shape
    colour = sharp if sharp.ndim == 3 else sharp[:, :, None]
    c = colour.shape[2]
    n_bins = max(1, int(math.ceil(blur_range / radius_step)))
    bins = np.minimum((depth * n_bins).astype(np.int64), n_bins - 1)
    present = np.unique(bins)[::-1]  # far (large depth) to near
    layers = []
    for b in present:
        mask = bins == b
        rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
        box = (rows[0], rows[-1] + 1, cols[0], cols[-1] + 1)
        layers.append(((b + 0.5) / n_bins, mask, box))
    frames = []
    kernels: dict[float, np.ndarray] = {}
    for d_k in focus_depths:
        acc = np.zeros((h, w, c + 1), np.float32)  # premultiplied colour, then coverage
        for centre, mask, (y0, y1, x0, x1) in layers:
            r = round(min(blur_range * abs(centre - d_k), max_blur), 3)
            k = kernels.get(r)
            if k is None:
                k = kernels[r] = disk_kernel(r)
            m = k.shape[0] // 2 + 1
            y0, y1, x0, x1 = max(y0 - m, 0), min(y1 + m, h), max(x0 - m, 0), min(x1 + m, w)
            alpha = mask[y0:y1, x0:x1].astype(np.float32)
            layer = np.concatenate([colour[y0:y1, x0:x1] * alpha[:, :, None], alpha[:, :, None]],
                                   axis=2)
            if k.shape[0] > 1:
                layer = cv2.filter2D(layer, -1, k, borderType=cv2.BORDER_REFLECT_101)
                if layer.ndim == 2:  # OpenCV drops a single channel's axis
                    layer = layer[:, :, None]
            region = acc[y0:y1, x0:x1]
            region *= 1.0 - layer[:, :, -1:]  # "over": the nearer layer covers what is behind
            region += layer
        cover = acc[:, :, -1:]
        frame = acc[:, :, :c] / np.maximum(cover, 1e-6)
        frames.append(np.clip(frame if sharp.ndim == 3 else frame[:, :, 0], 0.0, 1.0))
    return frames


def _handheld_transforms(n: int, shape: tuple[int, int], rng: np.random.Generator, *,
                         breathing: float, max_shift: float,
                         max_rotation: float) -> list[FrameTransform]:
    h, w = shape
    centre = ((w - 1) / 2.0, (h - 1) / 2.0)
    direction = rng.choice([-1.0, 1.0])  # magnification grows or shrinks with focus distance
    out = []
    for k in range(n):
        scale = 1.0 + direction * breathing * (2.0 * k / max(n - 1, 1) - 1.0)
        angle = float(rng.uniform(-max_rotation, max_rotation))
        dx, dy = (float(v) for v in rng.uniform(-max_shift, max_shift, 2))
        m = cv2.getRotationMatrix2D(centre, angle, scale)
        m[:, 2] += (dx, dy)
        out.append(FrameTransform(float(scale), angle, (dx, dy), m))
    return out


def _sensor(frame: np.ndarray, gain: float, rng: np.random.Generator, *, full_well: float,
            read_noise: float) -> np.ndarray:
    """Exposure gain, then Poisson-Gaussian noise, clipped to [0, 1].

    The noise is the heteroscedastic normal model of Foi et al., IEEE TIP 17(10), 2008:
    variance ``x / full_well + read_noise²`` at signal ``x`` (shot noise of ``full_well``
    photo-electrons at white, plus read noise); at thousands of electrons it matches
    Poisson's and is eight times faster to draw here.
    """
    signal = np.clip(frame * np.float32(gain), 0.0, 1.0)
    sigma = np.sqrt(signal / np.float32(full_well) + np.float32(read_noise) ** 2)
    noisy = signal + sigma * rng.standard_normal(frame.shape, dtype=np.float32)
    return np.clip(noisy, 0.0, 1.0)


def make_stack(sharp: np.ndarray, *, frames: int = 8, seed: int = 0, variant: str = "clean",
               depth: np.ndarray | None = None, levels: int = 5,
               segment_scale: float = 300.0, slope: float = 0.3,
               blur_range: float = 12.0, max_blur: float = 8.0, radius_step: float = 0.25,
               gain_jitter: float = 0.03, full_well: float = 4000.0, read_noise: float = 0.003,
               breathing: float = 0.02, max_shift: float = 3.0,
               max_rotation: float = 0.3) -> SyntheticStack:
    """Render a focus stack of ``frames`` frames from the all-in-focus image ``sharp``.

    ``sharp`` is float in [0, 1], (H, W) or (H, W, 3); it is the stack's ``truth``.
    The image is cut into segments (Felzenszwalb's graph method at ``segment_scale``;
    larger gives fewer, bigger segments), each given one of ``levels`` depths and a planar
    slope of up to ``slope`` depth units across the image's larger side; frame ``k`` blurs depth
    ``d`` by a disk of radius ``min(blur_range · |d − k/(frames−1)|, max_blur)`` px (with
    8 frames the defaults give 1.7 px between neighbouring focus planes). A ``depth`` map
    (H, W) in [0, 1] given is used instead of the segments (``segments`` is then None).
    ``variant`` is
    ``"clean"``, ``"noisy"``, ``"handheld"`` or ``"handheld-noisy"`` (see the module's
    text); the noise and
    motion options are used only by the variants that have them.
    """
    sharp = _check_sharp(sharp)
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {', '.join(VARIANTS)}; got {variant!r}")
    if not isinstance(frames, (int, np.integer)) or isinstance(frames, bool) or frames < 2:
        raise ValueError(f"frames must be an integer >= 2; got {frames!r}")
    if levels < 1 or segment_scale <= 0:
        raise ValueError(f"levels must be >= 1 and segment_scale > 0; got {levels} and "
                         f"{segment_scale}")
    if blur_range <= 0 or max_blur < 0 or radius_step <= 0:
        raise ValueError("blur_range and radius_step must be > 0 and max_blur >= 0; "
                         f"got {blur_range}, {radius_step} and {max_blur}")
    rng = np.random.default_rng(seed)
    if depth is None:
        labels = _segments(sharp, segment_scale)
        depth = _depth_map(labels, rng, levels=levels, slope=slope)
    else:
        labels = None
        depth = np.asarray(depth, dtype=np.float32)
        if depth.shape != sharp.shape[:2]:
            raise ValueError(f"depth must have sharp's height and width {sharp.shape[:2]}; "
                             f"got shape {depth.shape}")
        if not (np.isfinite(depth).all() and depth.min() >= 0 and depth.max() <= 1):
            raise ValueError("depth must be finite and in [0, 1] (0: the first frame's focus "
                             f"plane, 1: the last's); got values in [{depth.min()}, {depth.max()}]")
    focus_depths = np.linspace(0.0, 1.0, frames)
    depth_index = np.abs(depth[None] - focus_depths[:, None, None].astype(np.float32)).argmin(0)
    rendered = _render(sharp, depth, focus_depths, blur_range=blur_range, max_blur=max_blur,
                       radius_step=radius_step)

    h, w = depth.shape
    transforms = [FrameTransform() for _ in range(frames)]
    gains = np.ones(frames)
    if variant != "clean":  # drawn for every variant but clean, so that a scene's hand-held
        drawn = 1.0 + rng.uniform(-gain_jitter, gain_jitter, frames)  # variants move alike
        if variant in SENSOR:
            gains = drawn
    if variant in MOVING:
        transforms = _handheld_transforms(frames, (h, w), rng, breathing=breathing,
                                          max_shift=max_shift, max_rotation=max_rotation)
        rendered = [np.clip(cv2.warpAffine(f, t.matrix, (w, h), flags=cv2.INTER_LANCZOS4,
                                           borderMode=cv2.BORDER_REFLECT_101), 0.0, 1.0)
                    for f, t in zip(rendered, transforms)]
    if variant in SENSOR:
        rendered = [_sensor(f, g, rng, full_well=full_well, read_noise=read_noise)
                    for f, g in zip(rendered, gains)]
    return SyntheticStack(
        frames=[f.astype(np.float32, copy=False) for f in rendered], truth=sharp, depth=depth,
        depth_index=depth_index.astype(np.int64), focus_depths=focus_depths,
        transforms=transforms, gains=gains, segments=labels, variant=variant, seed=seed,
        blur_range=blur_range, max_blur=max_blur)


def load_sharp_images(folder: str | Path, limit: int | None = None, *,
                      seed: int | None = None, suffix: str | None = None) -> dict[str, np.ndarray]:
    """Read the images of ``folder`` (e.g. ../shared/data/bsds500) as float32 in [0, 1].

    Returns ``{file stem: image}`` in name order: all files (or those ending in ``suffix``,
    e.g. ".png", BSDS500's 68 held-out test images), the first ``limit``, or with ``seed``
    a seeded choice of ``limit`` files.
    """
    from focusfuse.data.synthesis import list_images
    from focusfuse.io import read_image

    files = list_images(folder, suffixes=(suffix,) if suffix else None)
    if limit is not None:
        if limit < 1:
            raise ValueError(f"limit must be >= 1 or None; got {limit}")
        if seed is None:
            files = files[:limit]
        else:
            pick = np.random.default_rng(seed).choice(len(files), min(limit, len(files)),
                                                      replace=False)
            files = [files[i] for i in sorted(pick)]
    return {p.stem: read_image(p) for p in files}


def write_stack(stack: SyntheticStack, folder: str | Path, *, bit_depth: int = 8) -> list[Path]:
    """Write a stack as PNG files in ``folder`` (made if needed); return the frames' paths.

    ``frame_00.png`` … (``bit_depth`` 8 or 16), ``truth.png`` (same depth),
    ``depth_index.png`` (8 bit, the raw frame index as the gray value), ``depth.png``
    (16 bit, depth 0..1 spread over 0..65535) and ``stack.json`` (variant, seed, focus
    depths, gains, per-frame transforms).
    """
    from focusfuse.io import write_image

    if bit_depth not in (8, 16):
        raise ValueError(f"bit_depth must be 8 or 16; got {bit_depth}")
    if len(stack.frames) > 256:
        raise ValueError(f"depth_index.png holds at most 256 frames; got {len(stack.frames)}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    width = max(2, len(str(len(stack.frames) - 1)))
    paths = []
    for k, frame in enumerate(stack.frames):
        paths.append(write_image(folder / f"frame_{k:0{width}d}.png", frame, bit_depth=bit_depth))
    write_image(folder / "truth.png", stack.truth, bit_depth=bit_depth)
    write_image(folder / "depth_index.png", stack.depth_index.astype(np.float32) / 255.0,
                bit_depth=8)
    write_image(folder / "depth.png", stack.depth, bit_depth=16)
    meta = {
        "variant": stack.variant, "seed": stack.seed, "frames": len(stack.frames),
        "blur_range": stack.blur_range, "max_blur": stack.max_blur,
        "focus_depths": stack.focus_depths.tolist(), "gains": stack.gains.tolist(),
        "transforms": [t.as_dict() for t in stack.transforms],
    }
    (folder / "stack.json").write_text(json.dumps(meta, indent=1) + "\n")
    return paths
