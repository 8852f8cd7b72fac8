"""Fusing a stack of N frames with one decision over all of them, in bounded memory.

Photographers and microscopists shoot 5 to 200 frames while the focus moves. Fusing them
two at a time "in series" makes the result depend on the order and costs a whole pair per
frame; here every frame is looked at the same way and the state kept between frames is a
fixed number of full-size planes, whatever N:

- ``cnn`` (Liu et al. 2017, the consistency steps made for N labels): each frame gets a
  focus score per 16×16 window, the focus map is their mean over the windows covering a
  pixel, the label map takes the frame of largest focus at each pixel, small regions of
  any label take the label of their surroundings (:func:`~focusfuse.decision.
  remove_small_label_regions`; the paper's area, ``min_region``, is for the one boundary
  between two sources, so with N frames a region is held to ``min_region / (N − 1)`` of
  the image, which held-out synthetic stacks favour, docs/stacks.md), and the frames are
  blended with the guided-filtered label
  masks, W_k = GF(guide, [label = k]), guided by the gray image fused through the labels
  (the weights sum to 1 as the filter is linear and the masks sum to 1; for two frames
  this is the paper's D and 1 − D).
  The score of one frame: for the layouts without the 256-unit layer (the authors'
  released model, the fast model) the network's last layer is linear in the two branches'
  features, so its antisymmetric half scores one frame on its own
  (:meth:`~focusfuse.models.FocusNet.dense_frame_score`): one branch pass per frame. The
  paper layout's 256-unit layer mixes the two branches through a ReLU, so there is no
  per-frame score in it; each frame is scored as the first image of a pair against the
  stack's mean image (the same reference for every frame, made in a first pass): the
  score is then P(this frame is sharper than the mean), which is largest for the frame in
  focus. The layer is linear up to its ReLU, so the mean's share of it is computed once
  and kept (:class:`~focusfuse.score.ReferenceScorer`, up to
  :data:`~focusfuse.score.REFERENCE_BYTES`; a larger image scores whole pairs): each frame
  then costs one branch pass and its own share, a little over half a pair.
- ``dwt``, ``dtcwt``, ``laplacian``: the rule of Li et al. 1995 as for pairs, streamed:
  a first pass keeps, per band, the frame of largest windowed activity and the sum of the
  lowpass bands; the majority check runs on that label map (:func:`~focusfuse.decision.
  mode_filter`); a second pass takes each frame's coefficients where it won.

Frames are visited in a canonical order, sorted by a digest of their pixels, so that ties
and floating-point sums do not depend on the order they were given in: the fused image
of a permuted stack is bit-identical. The depth map gives each pixel the index (in the
order given) of a frame: with ``cnn`` the frame whose score window centred on the pixel
is highest (:func:`~focusfuse.decision.window_map`; the focus map that makes the labels
averages the 64 windows that cover a pixel, which moves a depth edge by up to a window),
with the multiscale methods none.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np

from focusfuse.color import to_gray
from focusfuse.fusion.result import FusionResult

__all__ = ["ArrayFrames", "Frames", "canonical_order", "fuse_stack"]


class Frames:
    """A stack read one frame at a time: ``len(frames)``, ``frames[k]`` (float32 in [0, 1],
    (H, W) or (H, W, C), the same shape for all), ``frames.valid(k)`` (bool (H, W), False
    where frame k has no data, or None when it covers everything) and ``frames.digest(k)``
    (bytes identifying the frame's content)."""

    def __len__(self) -> int:
        raise NotImplementedError

    def __getitem__(self, k: int) -> np.ndarray:
        raise NotImplementedError

    def valid(self, k: int) -> np.ndarray | None:
        return None

    def digest(self, k: int) -> bytes:
        return _digest(self[k])


def _digest(frame: np.ndarray) -> bytes:
    return hashlib.sha1(np.ascontiguousarray(frame).view(np.uint8)).digest()


class ArrayFrames(Frames):
    """Frames already in memory (the checked sources of :func:`focusfuse.fuse`)."""

    def __init__(self, images: Sequence[np.ndarray]):
        self.images = list(images)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, k: int) -> np.ndarray:
        return self.images[k]


def canonical_order(frames: Frames) -> list[int]:
    """The frame indices sorted by content digest (then by index, for identical frames)."""
    return sorted(range(len(frames)), key=lambda k: (frames.digest(k), k))


def fuse_stack(frames: Frames, method: str, options, *, progress=None) -> FusionResult:
    """Fuse ``frames`` (two or more) with ``method`` and its built ``options``; see the
    module's notes. ``progress(stage, done, total)`` is called after each frame of each
    pass. Returns a :class:`FusionResult` with the fused image and ``depth_map``."""
    if len(frames) < 2:
        raise ValueError(f"a stack needs at least two frames; got {len(frames)}")
    order = canonical_order(frames)
    report = progress or (lambda stage, done, total: None)
    if method == "cnn":
        fused, labels = _cnn_stack(frames, order, options, report)
    elif method in ("dwt", "dtcwt", "laplacian"):
        fused, labels = _multiscale_stack(frames, order, method, options, report)
    elif method == "learned-pyramid":
        from focusfuse.fusion.learned import fuse_frames

        fused, labels = fuse_frames(frames, order, options, report), None
    else:
        from focusfuse.fusion.registry import STACK_METHODS

        raise ValueError(f"method {method!r} does not fuse stacks; use one of "
                         f"{', '.join(STACK_METHODS)}")
    depth = None
    if labels is not None:
        depth = np.asarray(order, np.int16)[labels]
    return FusionResult(fused, method, [], depth_map=depth, n_frames=len(frames))


# ------------------------------------------------------------------------------------ cnn
def _cnn_stack(frames: Frames, order: list[int], options, report):
    from focusfuse.decision import (LabelState, focus_map, guided_filter,
                                    remove_small_label_regions, window_map)
    from focusfuse.fusion.cnn import model_for
    from focusfuse.score import ReferenceScorer, frame_score_map, score_map

    model = model_for(options)
    net = {"precision": options.precision, "device": options.device, "compile": options.compile}
    n = len(order)
    shape = frames[order[0]].shape[:2]

    if model.fc1 is not None:  # the paper layout: each frame against the stack's mean
        total = np.zeros(shape, np.float64)
        for i, k in enumerate(order):
            total += to_gray(frames[k])
            report("mean", i + 1, n)
        reference = (total / n).astype(np.float32)
        del total
        # the mean's share of the 256-unit layer computed once, not once per frame
        scorer = ReferenceScorer(model, reference, **net,
                                 progress=lambda done, total: report("reference", done, total))
        if scorer.fits:
            scores = scorer
        else:
            def scores(gray):
                return score_map(model, gray, reference, **net)
    else:
        def scores(gray):
            return frame_score_map(model, gray, **net)

    # the labels: the frame of largest focus (the paper's focus map, label_map's rule); the
    # depth map: the frame whose centred window scores highest
    focus, depth = LabelState(), LabelState(np.float32)
    for i, k in enumerate(order):
        s, valid = scores(to_gray(frames[k])), frames.valid(k)
        depth.add(window_map(s, shape), valid)
        focus.add(focus_map(s, shape), valid)
        report("score", i + 1, n)
    labels, depth_labels = focus.labels, depth.labels
    del focus, depth
    scores = scorer = None  # the kept reference share (0.4 GB at 3 MP) is not needed below
    # the paper's area is for the one boundary between two sources; N frames have N − 1
    # boundaries between neighbouring focus planes, and each gets the paper's share
    labels = remove_small_label_regions(labels, min_area_fraction=options.min_region / (n - 1))

    present = np.flatnonzero(np.bincount(labels.ravel(), minlength=n)).tolist()
    guide = None
    for j, i in enumerate(present):
        gray = to_gray(frames[order[i]])
        if guide is None:
            guide = np.empty(shape, gray.dtype)
        np.copyto(guide, gray, where=labels == i)
        report("guide", j + 1, len(present))

    fused = None
    for j, i in enumerate(present):
        frame = frames[order[i]]
        mask = (labels == i).astype(guide.dtype)
        weight = guided_filter(guide, mask, radius=options.guided_radius, eps=options.guided_eps)
        term = frame * (weight if frame.ndim == 2 else weight[..., None])
        if fused is None:
            fused = term.astype(np.float32)
        else:
            fused += term
        report("blend", j + 1, len(present))
    np.clip(fused, 0.0, 1.0, out=fused)
    return fused, depth_labels


# ----------------------------------------------------------------------------- multiscale
def _multiscale_stack(frames: Frames, order: list[int], method: str, options, report):
    from focusfuse.fusion import multiscale as ms

    n = len(order)
    first = frames[order[0]]
    decompose, reconstruct = ms.stack_transform(method, options, first.shape[:2])

    from focusfuse.decision import LabelState, mode_filter

    # pass 1: per band, the frame of largest windowed activity; the lowpass summed
    states, low_sum = None, None
    for i, k in enumerate(order):
        low, bands = decompose(frames[k])
        acts = [ms.activity(b, options.consistency) for b in bands]
        if states is None:
            states = [LabelState(a.dtype.type) for a in acts]
            low_sum = low.astype(np.float64)
        else:
            low_sum += low
        for state, a in zip(states, acts):
            state.add(a)
        report("analyse", i + 1, n)
    labels = [mode_filter(state.labels, options.consistency) for state in states]
    del states

    # pass 2: each frame's coefficients where it won
    fused_bands = None
    for i, k in enumerate(order):
        _, bands = decompose(frames[k])
        if fused_bands is None:
            fused_bands = [np.zeros_like(b) for b in bands]
        for out, b, lab in zip(fused_bands, bands, labels):
            take = lab == i
            out[take] = b[take]
        report("select", i + 1, n)
    fused = reconstruct(low_sum / n, fused_bands)
    return ms.finish(fused, first), None
