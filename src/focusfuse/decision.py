"""From score map to decision map: focus map, threshold, small-region removal, guided
filter; and the box means they are made of. Pure NumPy and OpenCV.

Liu et al. 2017, Section 3.3:
- focus map: each pixel gets the mean of the scores of all 16×16 windows (at stride 2)
  that cover it;
- binary map: 1 where the focus map is above 0.5;
- consistency verification: regions smaller than ``area = ceil(0.01 · H · W)`` pixels
  (8-connected) are removed from the binary map, then from its complement (MATLAB
  ``bwareaopen``, which keeps regions of at least ``area`` pixels);
- the binary map is refined by the guided filter of He et al. (TPAMI 2013) with r = 8 and
  ε = 0.1, guided by the gray image fused through the binary map. Box means are normalised
  by the number of pixels each window really holds at the image borders.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from focusfuse.checks import check_fraction, check_int, check_positive

__all__ = ["LabelState", "binary_map", "box_mean", "focus_map", "guided_filter", "inside_counts",
           "remove_small_regions", "rescale_edges", "window_map"]


def focus_map(scores: np.ndarray, shape: tuple[int, int], *, window: int = 16,
              stride: int = 2) -> np.ndarray:
    """Per-pixel mean of the scores of the ``window``×``window`` windows at ``stride`` that
    cover each pixel (the defaults are the network's geometry, Liu et al. 2017,
    :data:`focusfuse.models.PATCH` and :data:`~focusfuse.models.STRIDE`).

    ``scores``: (ceil(H/2) − 7, ceil(W/2) − 7) for the defaults; ``shape``: the (H, W) of
    the source images. Returns float64 (H, W) in [0, 1].

    Window i covers pixels 2i .. 2i + 15, so pixels 2t and 2t + 1 are covered by the same
    windows, t − 7 .. t: the map is an 8×8 (causal) box mean over the score map, each value
    then repeated over a 2×2 block.
    """
    h, w = _check_scores(scores, shape, window, stride)
    H, W = shape
    n = window // stride  # windows per axis over one pixel, away from the borders
    padded = np.zeros((h + n - 1, w + n - 1))
    padded[:h, :w] = scores
    total = cv2.boxFilter(padded, cv2.CV_64F, (n, n), anchor=(n - 1, n - 1), normalize=True,
                          borderType=cv2.BORDER_CONSTANT)
    # the windows over padded position t are scores t − 7 .. t, of which those < h exist
    rescale_edges(total, inside_counts(h + n - 1, h, n - 1, 0),
                  inside_counts(w + n - 1, w, n - 1, 0), n, n)
    return np.repeat(np.repeat(total, stride, axis=0), stride, axis=1)[:H, :W]


def _check_scores(scores: np.ndarray, shape: tuple[int, int], window: int,
                  stride: int) -> tuple[int, int]:
    h, w = scores.shape
    H, W = shape
    n = window // stride
    if h != -(-H // stride) - (n - 1) or w != -(-W // stride) - (n - 1):
        raise ValueError(f"a score map of {h}×{w} does not belong to {H}×{W} images")
    return h, w


def window_map(scores: np.ndarray, shape: tuple[int, int], *, window: int = 16,
               stride: int = 2) -> np.ndarray:
    """The score of the one window centred (to the nearest stride) on each pixel: window i
    covers pixels ``stride·i .. stride·i + window − 1``; pixels beyond the first or last
    window's centre take that window's score. Same geometry and checks as
    :func:`focus_map`, which averages all the windows that cover a pixel; this keeps a depth
    edge where it is (a stack's depth map, docs/stacks.md). Returns float32 (H, W)."""
    h, w = _check_scores(scores, shape, window, stride)
    H, W = shape
    half = (window - 1) / 2
    rows = np.clip(np.rint((np.arange(H) - half) / stride).astype(np.intp), 0, h - 1)
    cols = np.clip(np.rint((np.arange(W) - half) / stride).astype(np.intp), 0, w - 1)
    return np.asarray(scores, np.float32)[rows[:, None], cols[None, :]]


def binary_map(focus: np.ndarray, *, threshold: float = 0.5) -> np.ndarray:
    """``focus > threshold`` as a bool array."""
    return np.asarray(focus) > threshold


def _drop_small(mask: np.ndarray, min_area: int) -> np.ndarray:
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    keep = stats[:, cv2.CC_STAT_AREA] >= min_area
    keep[0] = False  # background label
    return keep[labels]


def remove_small_regions(binary: np.ndarray, *, min_area_fraction: float = 0.01) -> np.ndarray:
    """Remove regions of fewer than ``ceil(min_area_fraction · H · W)`` pixels from the map,
    then from its complement. ``min_area_fraction=0`` returns the map unchanged."""
    check_fraction("min_area_fraction", min_area_fraction, hint="0 turns the step off")
    binary = np.asarray(binary, dtype=bool)
    if min_area_fraction == 0.0:
        return binary.copy()
    area = math.ceil(min_area_fraction * binary.shape[0] * binary.shape[1])
    kept = _drop_small(binary, area)
    return ~_drop_small(~kept, area)


def inside_counts(n_out: int, n_in: int, before: int, after: int) -> np.ndarray:
    """For t = 0 .. n_out − 1, how many of the indices t − before .. t + after lie in
    0 .. n_in − 1 (float64): the true sizes of windows that reach past an array's ends."""
    t = np.arange(n_out)
    return (np.minimum(t + after, n_in - 1) - np.maximum(t - before, 0) + 1).astype(np.float64)


def rescale_edges(mean: np.ndarray, rows: np.ndarray, cols: np.ndarray, full_rows: int,
                  full_cols: int) -> np.ndarray:
    """Means over whole windows (sum / window size, zeros outside the image) made means over
    the pixels inside, in place; ``rows`` and ``cols`` are the 1-D counts of pixels inside
    (:func:`inside_counts`). Only rows and columns whose windows reach past an edge change,
    so no full-size array of counts is made.
    """
    extra = (1,) * (mean.ndim - 2)  # channels, if any
    ry = np.flatnonzero(rows != full_rows)
    if ry.size:
        mean[ry] *= (full_rows / rows[ry]).astype(mean.dtype).reshape(-1, 1, *extra)
    cx = np.flatnonzero(cols != full_cols)
    if cx.size:
        mean[:, cx] *= (full_cols / cols[cx]).astype(mean.dtype).reshape(-1, *extra)
    return mean


def box_mean(x: np.ndarray, r: int) -> np.ndarray:
    """Mean over the (2r+1)² window around each pixel, counting only pixels inside the image.

    float32 in gives float32 out (OpenCV's float box filter); anything else float64.
    """
    depth = cv2.CV_32F if x.dtype == np.float32 else cv2.CV_64F
    k = 2 * r + 1
    s = cv2.boxFilter(x, depth, (k, k), normalize=True, borderType=cv2.BORDER_CONSTANT)
    h, w = x.shape[:2]
    return rescale_edges(s, inside_counts(h, h, r, r), inside_counts(w, w, r, r), k, k)


def guided_filter(guide: np.ndarray, src: np.ndarray, *, radius: int = 8, eps: float = 0.1) -> np.ndarray:
    """He et al.'s guided filter of ``src`` by the gray ``guide`` (both (H, W)).

    Computed in float32 when both are float32 and ε ≥ 1e-4 (for large images: half the
    memory, twice the speed; the variances' round-off is negligible against such an ε),
    otherwise in float64; the result has that type.
    """
    check_int("radius", radius)
    check_positive("eps", eps, hint="it keeps flat windows defined")
    if guide.shape != src.shape or guide.ndim != 2:
        raise ValueError(f"guide and src must be (H, W) of one shape; got {guide.shape} and {src.shape}")
    # float32 only where its round-off (about 1e-7 in the variances) is negligible against ε
    f32 = guide.dtype == np.float32 and src.dtype == np.float32 and eps >= 1e-4
    dtype = np.float32 if f32 else np.float64
    I = guide.astype(dtype, copy=False)
    p = src.astype(dtype, copy=False)
    mean_I = box_mean(I, radius)
    mean_p = box_mean(p, radius)
    a = box_mean(I * p, radius)
    a -= mean_I * mean_p  # cov(I, p)
    var_I = box_mean(I * I, radius)
    var_I -= mean_I * mean_I
    var_I += eps
    a /= var_I
    del var_I
    mean_p -= a * mean_I  # b
    del mean_I
    q = box_mean(a, radius)
    q *= I
    q += box_mean(mean_p, radius)
    return q


# --------------------------------------------------------------------- N labels (stacks)
def label_map(focus_maps, *, valid=None) -> tuple[np.ndarray, np.ndarray]:
    """The frame of largest focus at each pixel, kept as a running state so that the focus
    maps can come one at a time (an iterable of (H, W) arrays, frame 0 first).

    ``valid``: an optional iterable of bool (H, W) masks, one per frame, False where the
    frame has no data (outside an aligned frame); such pixels are never chosen. Ties keep
    the earlier frame. Returns (labels int16, best focus float64).
    """
    state = LabelState()
    masks = iter(valid) if valid is not None else None
    for focus in focus_maps:
        state.add(focus, None if masks is None else next(masks))
    if state.best is None:
        raise ValueError("label_map needs at least one focus map")
    return state.labels, state.best


class LabelState:
    """The running state of :func:`label_map`: ``add(focus, valid)`` for frame 0, 1, ...;
    ``labels`` (int16) is the frame of largest focus so far, ``best`` that focus (in
    ``dtype``). Ties keep the earlier frame; pixels where ``valid`` is False are never
    chosen."""

    def __init__(self, dtype=np.float64):
        self.labels = self.best = None
        self.count = 0
        self.dtype = dtype

    def add(self, focus: np.ndarray, valid: np.ndarray | None = None) -> None:
        focus = np.asarray(focus, dtype=self.dtype)
        if valid is not None:
            focus = np.where(valid, focus, self.dtype(-np.inf))
        if self.best is None:
            self.best = focus.copy()
            self.labels = np.zeros(focus.shape, np.int16)
        else:
            self.labels[focus > self.best] = self.count
            np.maximum(self.best, focus, out=self.best)
        self.count += 1


def remove_small_label_regions(labels: np.ndarray, *,
                               min_area_fraction: float = 0.01) -> np.ndarray:
    """The N-label form of :func:`remove_small_regions`: every 8-connected region of one
    label with fewer than ``ceil(min_area_fraction · H · W)`` pixels is given the label of
    the nearest pixel outside the removed regions (OpenCV's distance transform). Each label
    is treated alike, so the result does not depend on how the labels are numbered.
    ``min_area_fraction=0`` returns a copy."""
    check_fraction("min_area_fraction", min_area_fraction, hint="0 turns the step off")
    labels = np.asarray(labels)
    if min_area_fraction == 0.0:
        return labels.copy()
    area = math.ceil(min_area_fraction * labels.shape[0] * labels.shape[1])
    n = int(labels.max()) + 1
    removed = np.zeros(labels.shape, bool)
    for k in range(n):
        mask = labels == k
        if mask.any():
            removed |= mask & ~_drop_small(mask, area)
    if not removed.any() or removed.all():  # nothing to remove, or nothing to take labels from
        return labels.copy()
    # the label of the nearest kept pixel: distance transform of the removed pixels, labelling
    # each by the nearest zero (kept) pixel
    _, nearest = cv2.distanceTransformWithLabels(removed.view(np.uint8), cv2.DIST_L2, 5,
                                                 labelType=cv2.DIST_LABEL_PIXEL)
    kept = ~removed
    # DIST_LABEL_PIXEL numbers the zero pixels in row-major order from 1, the order of a mask
    label_of = np.empty(np.count_nonzero(kept) + 1, labels.dtype)
    label_of[0] = 0
    label_of[1:] = labels[kept]
    out = labels.copy()
    out[removed] = label_of[nearest[removed]]
    return out


def mode_filter(labels: np.ndarray, window: int) -> np.ndarray:
    """The most frequent label in the ``window`` × ``window`` neighbourhood of each pixel
    (mirrored borders), the pixel's own label counting half a vote more, ties to the
    smaller label: the majority check of the multiscale rule (Li et al. 1995) for any
    number of labels, without a plane per label."""
    if window == 1:
        return labels.copy()
    r = window // 2
    padded = np.pad(labels, r, mode="reflect")
    h, w = labels.shape
    shifts = [padded[dy:dy + h, dx:dx + w] for dy in range(window) for dx in range(window)]
    best_votes = np.full(labels.shape, -1.0)
    best = labels.copy()
    for cand in shifts:
        votes = sum((s == cand).astype(np.float32) for s in shifts)
        votes += 0.5 * (cand == labels)
        take = (votes > best_votes) | ((votes == best_votes) & (cand < best))
        best[take] = cand[take]
        best_votes[take] = votes[take]
    return best
