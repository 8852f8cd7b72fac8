"""Stacks: one decision over N frames, order-free, bounded memory, depth map, alignment.

Data made here: a photograph from scikit-image cut into depth zones, each frame sharp in
one zone and blurred (more with distance) elsewhere; the zone index is the true depth.
The CNN tests use the shipped fast model (it always ships) and, once, the paper model.
"""

from __future__ import annotations

import weakref

import cv2
import numpy as np
import pytest

import focusfuse as ff
from focusfuse.decision import label_map, mode_filter, remove_small_label_regions
from focusfuse.fusion.stack import ArrayFrames, Frames, canonical_order, fuse_stack

FAST = {"weights": "fast", "device": "cpu", "precision": "fp32"}
STACK_METHODS = [("cnn", FAST), ("laplacian", {}), ("dtcwt", {}), ("dwt", {})]


def _zones(shape, n):
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w]
    return (xx * n // w).astype(np.int16)


@pytest.fixture(scope="module")
def scene():
    """(frames, sharp, zones): 4 frames of a 160×200 colour crop, frame k sharp in zone k."""
    from skimage import data

    sharp = data.astronaut()[40:200, 150:350].astype(np.float32) / 255
    n = 4
    zones = _zones(sharp.shape[:2], n)
    frames = []
    for k in range(n):
        f = sharp.copy()
        for z in range(n):
            if z != k:
                blurred = cv2.GaussianBlur(sharp, (0, 0), 1.2 * abs(k - z) + 0.8)
                f[zones == z] = blurred[zones == z]
        frames.append(f)
    return frames, sharp, zones


def _psnr(a, b, border=8):
    d = (a - b)[border:-border, border:-border]
    return 10 * np.log10(1 / np.mean(d.astype(np.float64) ** 2))


# smoke and invariants ---------------------------------------------------------------------

@pytest.mark.parametrize("method,options", STACK_METHODS)
def test_a_stack_fuses_close_to_the_sharp_image(scene, method, options):
    frames, sharp, _ = scene
    fused = ff.fuse(frames, method=method, **options).fused
    assert fused.shape == sharp.shape and fused.dtype == np.float32
    best_frame = max(_psnr(f, sharp) for f in frames)
    assert _psnr(fused, sharp) > best_frame + 6


@pytest.mark.parametrize("method,options", STACK_METHODS)
def test_the_result_does_not_depend_on_the_frames_order(scene, method, options):
    frames, _, _ = scene
    forward = ff.fuse(frames, method=method, **options)
    rng = np.random.default_rng(0)
    perm = rng.permutation(len(frames))
    for order in (perm, np.arange(len(frames))[::-1]):
        other = ff.fuse([frames[k] for k in order], method=method, **options)
        np.testing.assert_array_equal(other.fused, forward.fused)
        if forward.depth_map is not None:  # the depth map indexes the frames as given
            np.testing.assert_array_equal(order[other.depth_map], forward.depth_map)


def test_the_depth_map_finds_the_sharp_frame(scene):
    frames, _, zones = scene
    depth = ff.fuse(frames, **FAST).depth_map
    assert depth.dtype == np.int16 and depth.shape == zones.shape
    assert (depth == zones).mean() > 0.95
    near = np.zeros(zones.shape, bool)  # 6 px either side of the three zone edges
    for x in (50, 100, 150):
        near[:, x - 6:x + 6] = True
    assert (depth == zones)[near].mean() > 0.8  # the centred windows keep the edges in place


def test_the_paper_layout_scores_each_frame_against_the_mean(scene):
    frames, sharp, zones = scene
    small = [f[:96, :120] for f in frames]
    result = ff.fuse(small, precision="fp32", device="cpu")  # the shipped paper model
    assert _psnr(result.fused, sharp[:96, :120]) > max(_psnr(f, sharp[:96, :120]) for f in small) + 4
    assert (result.depth_map == zones[:96, :120]).mean() > 0.9
    np.testing.assert_array_equal(ff.fuse(small[::-1], precision="fp32", device="cpu").fused,
                                  result.fused)


def test_two_frames_keep_the_papers_pair_method(scene):
    # two frames: the pair method with its maps, unchanged (no depth map)
    frames, _, _ = scene
    result = ff.fuse(frames[:2], **FAST)
    assert len(result.steps) == 1 and result.depth_map is None
    assert result.decision_map.shape == frames[0].shape[:2]


def test_frame_scores_are_the_antisymmetric_half_of_the_pair_score():
    # log-odds(A, B) − log-odds(B, A) = 2 (s(A) − s(B)) for the layouts without fc1
    import torch

    model = ff.load_weights("fast")
    rng = np.random.default_rng(1)
    a, b = (torch.from_numpy(rng.random((1, 1, 40, 40), dtype=np.float32)) for _ in range(2))
    with torch.no_grad():
        fa, fb = model.features(a), model.features(b)
        ab = model.dense_margin(torch.cat([fa, fb]))
        ba = model.dense_margin(torch.cat([fb, fa]))
        sa, sb = model.dense_frame_score(fa), model.dense_frame_score(fb)
    torch.testing.assert_close(ab - ba, 2 * (sa - sb), atol=1e-4, rtol=1e-4)


def test_the_paper_layout_has_no_frame_score():
    with pytest.raises(ValueError, match="not linear"):
        ff.load_weights().frame_weights()


class _Counting(Frames):
    """Frames made on request that count how many of them are alive at once."""

    def __init__(self, frames):
        self.frames, self.alive, self.most = frames, [], 0

    def __len__(self):
        return len(self.frames)

    def __getitem__(self, k):
        frame = self.frames[k].copy()
        self.alive = [r for r in self.alive if r() is not None] + [weakref.ref(frame)]
        self.most = max(self.most, len(self.alive))
        return frame


@pytest.mark.parametrize("method,options", STACK_METHODS)
def test_frames_are_held_one_at_a_time(scene, method, options):
    frames, _, _ = scene
    source = _Counting(frames * 2)  # 8 frames
    opts = ff.METHODS[method].make_options(options)
    fuse_stack(source, method, opts)
    assert source.most <= 2  # the frame in hand and, briefly, the next one


def test_canonical_order_is_by_content():
    a, b = np.zeros((4, 4), np.float32), np.ones((4, 4), np.float32)
    assert [[a, b][k] is a for k in canonical_order(ArrayFrames([a, b]))] == \
        [[b, a][k] is a for k in canonical_order(ArrayFrames([b, a]))]


# the N-label decision stages -----------------------------------------------------------------

def test_label_map_takes_the_largest_focus_and_skips_frames_without_data():
    f = [np.array([[1.0, 5.0]]), np.array([[3.0, 2.0]]), np.array([[9.0, 9.0]])]
    labels, best = label_map(f, valid=[None, None, np.array([[False, True]])])
    np.testing.assert_array_equal(labels, [[1, 2]])
    np.testing.assert_array_equal(best, [[3.0, 9.0]])


def test_small_regions_of_any_label_take_their_surroundings():
    labels = np.zeros((100, 100), np.int16)
    labels[:, 50:] = 1
    labels[10:13, 10:13] = 2  # inside 0
    labels[60:62, 70:90] = 0  # inside 1
    out = remove_small_label_regions(labels, min_area_fraction=0.01)
    assert (out[10:13, 10:13] == 0).all() and (out[60:62, 70:90] == 1).all()
    assert (out[:, :50] == 0).all() and (out[:, 50:] == 1).all()
    # renumbering the labels renumbers the result the same way
    perm = np.array([2, 0, 1], np.int16)
    np.testing.assert_array_equal(remove_small_label_regions(perm[labels]), perm[out])


def test_mode_filter_is_the_majority_check_of_two_labels():
    from scipy.ndimage import uniform_filter

    lab = np.random.default_rng(0).integers(0, 2, (30, 41)).astype(np.int16)
    votes = np.stack([uniform_filter((lab == k).astype(np.float64), size=3, mode="mirror")
                      for k in range(2)])
    votes += 0.5 / 9 * (lab[None] == np.arange(2)[:, None, None])
    np.testing.assert_array_equal(mode_filter(lab, 3), np.argmax(votes, axis=0))


# alignment -----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def moving_stack():
    """A 6-frame hand-held synthetic stack (breathing, shifts, turns) of a 240×320 crop."""
    from skimage import data

    from focusfuse.data.stacks import make_stack

    sharp = data.astronaut()[:240, 100:420].astype(np.float32) / 255
    return make_stack(sharp, frames=6, seed=3, variant="handheld", max_shift=4.0)


def test_alignment_recovers_the_motion_on_both_sides_of_the_reference(moving_stack):
    import threading
    import time

    from focusfuse.align import align_frames

    frames = moving_stack.frames
    reads, threads, busy, overlaps = [], set(), [], []

    def read(k):
        busy.append(k)
        reads.append(k)
        threads.add(threading.get_ident())
        time.sleep(0.01)
        busy.remove(k)
        return frames[k]

    def progress(stage, done, total):  # a decoder's messages are caught on stderr meanwhile
        overlaps.extend(busy)

    ref = 2
    before = cv2.getNumThreads()
    cv2.setNumThreads(2)  # OpenCV may use two threads: the two walks side by side
    try:
        al = align_frames(read, len(frames), reference=ref, progress=progress)
    finally:
        cv2.setNumThreads(before)
    assert sorted(reads) == list(range(len(frames)))  # every frame read once
    assert not overlaps  # never a progress line while a frame is read
    assert len(threads) == 2  # the frames above and below the reference on two threads
    assert not al.failed
    cv2.setNumThreads(1)  # as a batch worker given one thread: one walk after the other
    try:
        threads.clear()
        one = align_frames(read, len(frames), reference=ref)
    finally:
        cv2.setNumThreads(before)
    assert len(threads) == 1
    for m1, m2 in zip(one.transforms, al.transforms):
        np.testing.assert_array_equal(m1, m2)  # the same transforms either way
    h, w = al.shape
    yy, xx = np.mgrid[0:h:8, 0:w:8]
    points = np.stack([xx.ravel(), yy.ravel(), np.ones(xx.size)], 1)
    truth = [np.vstack([t.matrix, [0, 0, 1]]) for t in moving_stack.transforms]
    for k, m in enumerate(al.transforms):
        expected = (truth[k] @ np.linalg.inv(truth[ref]))[:2]  # reference → frame k
        moved = np.linalg.norm(points @ expected.T - points[:, :2], axis=1)
        error = np.linalg.norm(points @ m.T - points @ expected.T, axis=1)
        assert k == ref or moved.mean() > 2  # each frame moved by pixels ...
        assert np.sqrt(np.mean(error ** 2)) < 0.6, k  # ... and is found to a fraction of one


def test_a_bad_frame_below_the_reference_stops_the_alignment(moving_stack):
    from focusfuse.align import align_frames

    frames = moving_stack.frames

    def read(k):
        if k == 0:
            raise ValueError("frame 0 is unreadable")
        return frames[k]

    with pytest.raises(ValueError, match="frame 0 is unreadable"):
        align_frames(read, len(frames), reference=3)


@pytest.fixture
def two_cv_threads():
    """OpenCV allowed two threads (the alignment's two walks side by side), then as before."""
    before = cv2.getNumThreads()
    cv2.setNumThreads(2)
    yield
    cv2.setNumThreads(before)


def test_an_error_in_one_walk_stops_the_other(moving_stack, two_cv_threads):
    import time

    from focusfuse.align import align_frames

    frames, above = moving_stack.frames, []

    def read(k):
        if k == 1:
            raise ValueError("frame 1 is unreadable")
        if k > 2:
            above.append(k)
            time.sleep(0.05)
        return frames[k % len(frames)]

    with pytest.raises(ValueError, match="frame 1 is unreadable"):
        align_frames(read, 12, reference=2)
    assert len(above) < 9  # not every frame above the reference was read
    cv2.setNumThreads(1)  # one walk after the other: the same error
    with pytest.raises(ValueError, match="frame 1 is unreadable"):
        align_frames(read, 12, reference=2)


# errors ------------------------------------------------------------------------------------

def test_cnn_dtcwt_does_not_fuse_stacks(scene):
    with pytest.raises(ValueError, match="does not fuse stacks"):
        fuse_stack(ArrayFrames(scene[0]), "cnn-dtcwt", ff.METHODS["cnn-dtcwt"].make_options({}))
