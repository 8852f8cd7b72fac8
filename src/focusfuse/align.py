"""Aligning the frames of a focus stack: focus breathing, hand-held shifts and turns.

Each frame is registered to its neighbour in focus order with OpenCV's ECC (G. D.
Evangelidis, E. Z. Psarakis, "Parametric image alignment using enhanced correlation
coefficient maximization", IEEE TPAMI 30(10), 2008; ``cv2.findTransformECC``), and the
transforms are chained to a reference frame (the middle one by default): neighbours
differ least in defocus, so each link is the easiest registration of the stack, as in
focus-stack (of the two middle frames of an even stack, the one whose content digest is
smaller, so that a reversed stack has the same reference). The model is affine (scale for breathing, shift, small rotation; shear is
allowed but stays near zero on real stacks), estimated on gray images reduced to at most
``coarse`` then ``fine`` pixels on their long side and smoothed (so that the defocus
difference between neighbours matters less), then scaled to full size. After warping,
each frame's colour channels get gains that match the reference's means over the pixels
both cover (exposure and white-balance drift).

A frame whose map moves no pixel by more than :data:`SNAP_PIXELS` is not resampled.
A link whose ECC does not converge, whose correlation is below ``min_correlation``, or
whose transform is implausible for a focus stack (scale outside 0.8–1.25, rotation over
5°, shift over a fifth of the image) fails: that frame is left out and the next one is
registered to the last frame that aligned.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import cv2
import numpy as np

from focusfuse.color import to_gray

__all__ = ["SNAP_PIXELS", "Alignment", "align_frames", "coverage", "estimate_link",
           "is_identity", "middle_frame", "warp"]

#: a frame whose estimated map moves no pixel by more than this is left as it is (the
#: frames of a tripod: resampling would only soften them)
SNAP_PIXELS = 0.1
#: the long side of the copies the gains are measured on (means over the pixels a frame
#: and the reference both cover: a small copy holds them to a few parts in 10⁵)
GAIN_SIDE = 320
#: gains this close to 1 (a fifth of a percent: a twentieth of a gray level at mid-gray in
#: 8 bits) are left at 1
SNAP_GAIN = 0.002


@dataclass
class Alignment:
    """Per frame (in the order given): ``transforms[k]``, the 2×3 affine map from the
    reference frame's pixel coordinates to frame k's (None if frame k failed), and
    ``gains[k]`` (one per channel); ``reference`` is the reference frame's index;
    ``failed`` the indices left out, with ``reasons``."""

    reference: int
    shape: tuple[int, int]
    transforms: list[np.ndarray | None]
    gains: list[np.ndarray | None] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    reasons: dict[int, str] = field(default_factory=dict)
    correlations: dict[int, float] = field(default_factory=dict)


def _reduced(image: np.ndarray, side: int) -> tuple[np.ndarray, float]:
    """``image`` reduced (area averaging) to at most ``side`` pixels on its long side, as
    float32, and the scale."""
    h, w = image.shape[:2]
    scale = min(1.0, side / max(h, w))
    if scale < 1.0:
        image = cv2.resize(image, (max(1, round(w * scale)), max(1, round(h * scale))),
                           interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(image, np.float32), scale


def _compose(first: np.ndarray, then: np.ndarray) -> np.ndarray:
    """The map x → then(first(x)) of two 2×3 affine maps."""
    f = np.vstack([first, [0, 0, 1]])
    t = np.vstack([then, [0, 0, 1]])
    return (t @ f)[:2]


def _plausible(m: np.ndarray, shape: tuple[int, int]) -> str | None:
    a = m[:, :2]
    scale = math.sqrt(abs(np.linalg.det(a)))
    angle = math.degrees(math.atan2(a[1, 0] - a[0, 1], a[0, 0] + a[1, 1]))
    h, w = shape
    centre = np.array([w / 2, h / 2])
    shift = np.abs(a @ centre + m[:, 2] - centre)
    if not 0.8 <= scale <= 1.25:
        return f"scale {scale:.3f} is not a focus stack's (0.8 to 1.25)"
    if abs(angle) > 5:
        return f"rotation {angle:.1f}° is over 5°"
    if shift[0] > w / 5 or shift[1] > h / 5:
        return f"shift of {shift[0]:.0f}×{shift[1]:.0f} px is over a fifth of the image"
    return None


def estimate_link(template: np.ndarray, moving: np.ndarray, *, coarse: int = 480,
                  fine: int = 1200, min_correlation: float = 0.6) -> tuple[np.ndarray, float]:
    """The affine map from ``template``'s pixel coordinates to ``moving``'s (gray (H, W)
    images of one size), and its ECC correlation. Raises ValueError when it fails."""
    shape = template.shape
    m = np.eye(2, 3, dtype=np.float32)
    corr = 0.0
    for side, iterations in ((coarse, 100), (fine, 30)):
        t_small, s = _reduced(template, side)
        m_small, _ = _reduced(moving, side)
        level = _level(m, s).astype(np.float32)  # the full-size map at this level
        criteria = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, iterations, 1e-5)
        try:
            corr, level = cv2.findTransformECC(t_small, m_small, level, cv2.MOTION_AFFINE,
                                               criteria, None, 5)
        except cv2.error as exc:
            raise ValueError(f"ECC did not converge ({str(exc).strip().splitlines()[-1]})") from None
        m = _unlevel(level, s)
        if s == 1.0:
            break
    if not np.isfinite(m).all():
        raise ValueError("ECC gave a non-finite transform")
    if corr < min_correlation:
        raise ValueError(f"correlation {corr:.2f} is below {min_correlation}")
    reason = _plausible(m, shape)
    if reason:
        raise ValueError(reason)
    return m, float(corr)


def _level(m: np.ndarray, s: float) -> np.ndarray:
    """A full-size map as a map between images scaled by ``s`` (pixel centres kept:
    x_s = s (x + 0.5) − 0.5 on both sides)."""
    a, t = m[:, :2], m[:, 2]
    t_s = s * t + (s - 1) * 0.5 * np.ones(2) - a @ ((s - 1) * 0.5 * np.ones(2))
    return np.hstack([a, t_s[:, None]])


def _unlevel(m: np.ndarray, s: float) -> np.ndarray:
    """The inverse of :func:`_level`."""
    a, t = m[:, :2].astype(np.float64), m[:, 2].astype(np.float64)
    t_full = (t - (s - 1) * 0.5 * np.ones(2) + a @ ((s - 1) * 0.5 * np.ones(2))) / s
    return np.hstack([a, t_full[:, None]])


def warp(frame: np.ndarray, m: np.ndarray, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """``frame`` resampled onto the reference's (H, W) grid through the map ``m`` (reference
    coordinates → frame coordinates), Lanczos (8×8) with its overshoot clipped to [0, 1],
    edges replicated; and the bool mask of the pixels the frame really covers.

    (Lanczos rather than bicubic: chosen on held-out hand-held synthetic stacks,
    docs/stacks.md.)"""
    h, w = shape
    flags = cv2.INTER_LANCZOS4 | cv2.WARP_INVERSE_MAP
    out = cv2.warpAffine(frame, m.astype(np.float64), (w, h), flags=flags,
                         borderMode=cv2.BORDER_REPLICATE)
    np.clip(out, 0.0, 1.0, out=out)
    return out.reshape(frame.shape[:2] + frame.shape[2:]), coverage(m, frame.shape[:2], shape)


def coverage(m: np.ndarray, frame_shape: tuple[int, int], shape: tuple[int, int]) -> np.ndarray:
    """The bool (H, W) mask of the reference grid's pixels that a frame of ``frame_shape``
    covers through the map ``m`` (reference coordinates → frame coordinates)."""
    h, w = shape
    ones = np.ones(frame_shape, np.uint8)
    return cv2.warpAffine(ones, m.astype(np.float64), (w, h),
                          flags=cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0).astype(bool)


def _gains(frame: np.ndarray, reference: np.ndarray, covered: np.ndarray) -> np.ndarray:
    f = frame.reshape(frame.shape[0], frame.shape[1], -1)[covered]
    r = reference.reshape(reference.shape[0], reference.shape[1], -1)[covered]
    fm, rm = f.mean(axis=0, dtype=np.float64), r.mean(axis=0, dtype=np.float64)
    return np.where(fm > 1e-6, rm / np.maximum(fm, 1e-6), 1.0)


def middle_frame(n: int, key: Callable[[int], bytes] | None = None) -> int:
    """The middle frame of ``n``; of the two middle ones of an even stack, the one with the
    smaller ``key`` (a digest of its content), so that the reference is the same frame
    whichever way round the stack is given (else the first of the two)."""
    lower, upper = (n - 1) // 2, n // 2
    if lower == upper or key is None:
        return lower
    return min((lower, upper), key=lambda k: (key(k), k))


def align_frames(read: Callable[[int], np.ndarray], n: int, *, reference: int | None = None,
                 reference_key: Callable[[int], bytes] | None = None,
                 coarse: int = 480, fine: int = 1200, min_correlation: float = 0.6,
                 gain: bool = True, progress: Callable[[str, int, int], None] | None = None
                 ) -> Alignment:
    """Estimate the :class:`Alignment` of ``n`` frames, ``read(k)`` giving frame k (float
    in [0, 1], (H, W) or (H, W, C)), in focus order. ``reference``: the frame the others
    are mapped onto (default: the middle one, :func:`middle_frame` with ``reference_key``).
    The frames after the reference and those before it are linked on two threads when
    OpenCV may use more than one (``read`` and ``progress`` are called from both, never at
    once)."""
    if n < 1:
        raise ValueError("nothing to align")
    ref = middle_frame(n, reference_key) if reference is None else reference
    if not 0 <= ref < n:
        raise ValueError(f"reference must be a frame index from 0 to {n - 1}; got {reference}")
    # read() and progress() are called from both walks, one at a time: the decoders' messages
    # are caught on the process's stderr while a frame decodes (focusfuse.io), which must
    # not catch a progress line
    lock, stop = threading.Lock(), threading.Event()

    def load(k):
        with lock:
            frame = read(k)
        gray = np.ascontiguousarray(to_gray(frame), np.float32)
        if not gain:
            return gray, None
        small, _ = _reduced(frame, GAIN_SIDE)  # channels last, one for gray
        return gray, small if small.ndim == 3 else small[..., None]

    ref_gray, ref_small = load(ref)
    shape = ref_gray.shape
    transforms: list[np.ndarray | None] = [None] * n
    transforms[ref] = np.eye(2, 3)
    result = Alignment(ref, shape, transforms)
    gains: list[np.ndarray | None] = [None] * n
    gains[ref] = np.ones(ref_small.shape[2] if gain else 1)
    done = 1

    def walk(direction):
        try:
            links(direction)
        except BaseException:  # an error or Ctrl-C: the other walk stops at its next frame
            stop.set()
            raise

    def links(direction):
        """Link each frame to the last one that aligned, outwards from the reference (the
        two directions share nothing but the reference, so they run side by side)."""
        nonlocal done
        last, template = ref, ref_gray
        k = ref + direction
        while 0 <= k < n and not stop.is_set():
            moving, small = load(k)  # a bad frame is an error, not a failed link
            try:
                link, corr = estimate_link(template, moving, coarse=coarse, fine=fine,
                                           min_correlation=min_correlation)
                transforms[k] = _compose(transforms[last], link)
                result.correlations[k] = corr
                if gain:
                    gains[k] = _small_gains(small, ref_small, transforms[k], shape)
                last, template = k, moving
            except ValueError as exc:
                result.failed.append(k)
                result.reasons[k] = str(exc)
            with lock:
                done += 1
                if progress:
                    progress("align", done, n)
            k += direction

    # two walks side by side when OpenCV may use two threads or more (a focusfuse batch
    # worker given one thread aligns in one)
    if 0 < ref < n - 1 and cv2.getNumThreads() > 1:
        with ThreadPoolExecutor(1) as pool:  # OpenCV and the decoders release the GIL
            below = pool.submit(walk, -1)
            try:
                walk(1)
                below.result()
            except BaseException:  # Ctrl-C while waiting for the other walk stops it too
                stop.set()
                raise
    else:
        walk(1)
        walk(-1)
    result.failed.sort()  # in frame order, whichever walk finished first
    result.reasons = {k: result.reasons[k] for k in result.failed}
    result.correlations = dict(sorted(result.correlations.items()))
    for k, m in enumerate(transforms):  # a tripod's frames: no resampling for nothing
        if m is not None and k != ref and _displacement(m, shape) < SNAP_PIXELS:
            transforms[k] = np.eye(2, 3)
    if gain:  # differences the eye cannot see are not worth a change of every pixel
        gains = [None if g is None else np.where(np.abs(g - 1) < SNAP_GAIN, 1.0, g) for g in gains]
    result.gains = gains if gain else [None if t is None else np.ones(1) for t in transforms]
    return result


def _displacement(m: np.ndarray, shape: tuple[int, int]) -> float:
    """How far, in pixels, the map ``m`` moves the farthest corner of an (H, W) image."""
    h, w = shape
    corners = np.array([[0, 0], [w - 1, 0], [0, h - 1], [w - 1, h - 1]], np.float64)
    moved = corners @ m[:, :2].T + m[:, 2]
    return float(np.abs(moved - corners).max())


def is_identity(m: np.ndarray | None) -> bool:
    return m is not None and np.array_equal(m, np.eye(2, 3))


def _small_gains(small: np.ndarray, ref_small: np.ndarray, m: np.ndarray,
                 shape: tuple[int, int]) -> np.ndarray:
    """Per-channel gains of a frame against the reference, on their reduced copies, over the
    pixels both cover (the full-size map ``m`` brought to the reduced grid)."""
    s = ref_small.shape[1] / shape[1]
    warped, covered = warp(small, _level(m, s), ref_small.shape[:2])
    warped = warped.reshape(ref_small.shape)
    return _gains(warped, ref_small, covered)
