"""The synthetic focus-stack generator (focusfuse.data.stacks), on scikit-image's images."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from scipy import ndimage
from skimage import data as skdata
from skimage.transform import resize

from focusfuse.data.stacks import (MOVING, SENSOR, VARIANTS, SyntheticStack, disk_kernel,
                                   load_sharp_images, make_stack, write_stack)
from focusfuse.io import read_image, write_image



def _small(image, size):
    return resize(image, size, anti_aliasing=True).astype(np.float32)


@pytest.fixture(scope="module")
def chelsea():
    return _small(skdata.chelsea() / 255.0, (150, 200))  # colour, fur texture


@pytest.fixture(scope="module")
def clean(chelsea):
    return make_stack(chelsea, seed=3)


# smoke and shapes


@pytest.mark.parametrize("variant", VARIANTS)
def test_shapes_and_dtypes(chelsea, variant):
    s = make_stack(chelsea, frames=5, seed=1, variant=variant)
    assert isinstance(s, SyntheticStack) and s.variant == variant
    assert len(s.frames) == 5 and len(s.transforms) == 5 and s.gains.shape == (5,)
    for f in s.frames:
        assert f.shape == chelsea.shape and f.dtype == np.float32
        assert 0.0 <= f.min() and f.max() <= 1.0
    assert s.truth is not None and np.array_equal(s.truth, chelsea)
    assert s.depth.shape == chelsea.shape[:2] and s.depth.dtype == np.float32
    assert 0.0 <= s.depth.min() and s.depth.max() <= 1.0
    assert s.depth_index.dtype == np.int64 and s.depth_index.shape == chelsea.shape[:2]
    assert 0 <= s.depth_index.min() and s.depth_index.max() < 5
    np.testing.assert_allclose(s.focus_depths, np.linspace(0, 1, 5))
    expected = np.abs(s.depth[None] - s.focus_depths[:, None, None]).argmin(0)
    assert np.mean(expected == s.depth_index) > 0.999  # float32 ties aside
    assert all(t.is_identity for t in s.transforms) == (variant not in MOVING)
    assert np.all(s.gains == 1) == (variant not in SENSOR)


def test_gray_image():
    gray = _small(skdata.camera() / 255.0, (96, 96))
    s = make_stack(gray, frames=3, variant="noisy")
    assert all(f.shape == gray.shape and f.dtype == np.float32 for f in s.frames)


def test_disk_kernel():
    assert np.array_equal(disk_kernel(0.0), np.ones((1, 1), np.float32))
    k = disk_kernel(5.0)
    assert k.shape == (11, 11) and abs(k.sum() - 1) < 1e-6
    assert k[5, 5] == k[5, 1] == k.max() and k[0, 0] == 0  # flat inside, zero off the disk
    assert k[5, 0] == pytest.approx(k.max() / 2)  # the edge pixel half covered


# errors


@pytest.mark.parametrize("kwargs, error, words", [
    (dict(variant="blurry"), ValueError, "variant must be one of clean, noisy, handheld"),
    (dict(frames=1), ValueError, "frames must be an integer >= 2"),
    (dict(depth=np.zeros((3, 3))), ValueError, "depth must have sharp's height and width"),
    (dict(depth=np.full((150, 200), 2.0)), ValueError, "depth must be finite and in [0, 1]"),
])
def test_bad_options(chelsea, kwargs, error, words):
    with pytest.raises(error, match=words.replace("[", r"\[").replace("]", r"\]")):
        make_stack(chelsea, **kwargs)


def test_bad_images():
    with pytest.raises(TypeError, match="divide by 255"):
        make_stack(np.zeros((32, 32), np.uint8))
    with pytest.raises(ValueError, match=r"got shape \(32, 32, 2\)"):
        make_stack(np.zeros((32, 32, 2), np.float32))


# invariants


def test_same_seed_same_stack_other_seed_other_stack(chelsea):
    a = make_stack(chelsea, frames=2, seed=7, variant="handheld")
    b = make_stack(chelsea, frames=2, seed=7, variant="handheld")
    c = make_stack(chelsea, frames=2, seed=8, variant="handheld")
    assert all(np.array_equal(x, y) for x, y in zip(a.frames, b.frames))
    assert np.array_equal(a.depth, b.depth)
    assert not np.array_equal(a.frames[0], c.frames[0])


def test_true_frame_is_sharpest(clean):
    """In each textured, single-depth area away from depth edges, the frame ``depth_index``
    names has the most Laplacian energy of all frames."""
    n = len(clean.frames)
    gray = [cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in clean.frames + [clean.truth]]
    energy = [cv2.Laplacian(g, cv2.CV_32F) ** 2 for g in gray]
    step = 1.0 / (n - 1)
    clear = np.abs(clean.depth - clean.focus_depths[clean.depth_index]) < 0.3 * step
    checked = 0
    for label in np.unique(clean.segments):
        for k in range(n):
            # far enough from every other depth that no other layer's blur reaches in
            inside = ndimage.binary_erosion(clean.depth_index == k, iterations=10)
            area = inside & clear & (clean.segments == label)
            if area.sum() < 100 or energy[-1][area].mean() < 1e-3:
                continue  # too small or too flat to tell
            per_frame = [e[area].mean() for e in energy[:n]]
            assert int(np.argmax(per_frame)) == k, (label, k, np.round(per_frame, 5))
            checked += 1
    assert checked >= 3


def test_blurred_foreground_spills_over_background():
    """A near edge out of focus spreads over the far side; a near edge in focus stays crisp
    and the blurred far side does not bleed onto it."""
    sharp = np.full((40, 80), 0.1, np.float32)
    sharp[:, 40:] = 0.9                       # bright near layer on the right
    depth = np.ones((40, 80), np.float32)     # dark far layer on the left ...
    depth[:, 40:] = 0.0                       # ... the near layer at the first focus plane
    s = make_stack(sharp, frames=8, depth=depth)
    far_focused, near_focused = s.frames[7][20], s.frames[0][20]  # the near layer: r = 8 px
    assert far_focused[36:40].min() > 0.2     # the blurred near layer's light on the far side
    assert far_focused[30] == pytest.approx(0.1, abs=1e-3)  # beyond its 8 px disk: none
    assert np.allclose(near_focused[40:], 0.9, atol=1e-5)   # a sharp near edge
    assert np.allclose(near_focused[:40], 0.1, atol=1e-5)   # no near light on the far side


def test_handheld_frames_are_warped_renders(chelsea):
    clean = make_stack(chelsea, frames=5, seed=2)
    hand = make_stack(chelsea, frames=5, seed=2, variant="handheld")  # the motion alone
    h, w = chelsea.shape[:2]
    scales = np.array([t.scale for t in hand.transforms])
    assert np.allclose(np.abs(scales - 1).max(), 0.02)
    assert np.allclose(np.diff(scales), np.diff(scales)[0])  # linear across the stack
    for t in hand.transforms:
        assert abs(t.angle) <= 0.3 and max(map(abs, t.shift)) <= 3.0
    centre = np.array([(w - 1) / 2, (h - 1) / 2, 1.0])
    corner = np.array([0.0, 0.0, 1.0])
    for k in (0, 4):
        t = hand.transforms[k]
        # the centre moves by the shift alone; the corner also by the scale and the rotation
        np.testing.assert_allclose(t.matrix @ centre - centre[:2], t.shift, atol=1e-9)
        assert np.hypot(*(t.matrix @ corner - t.shift)) > 0.9 * 0.02 * np.hypot(w, h) / 2
        # un-warping the frame gives back the clean render (within interpolation)
        back = cv2.warpAffine(hand.frames[k], cv2.invertAffineTransform(t.matrix), (w, h),
                              flags=cv2.INTER_LANCZOS4)
        inner = (slice(10, -10), slice(10, -10))
        residual = np.abs(back[inner] - clean.frames[k][inner]).mean()
        assert residual < 0.005
        assert np.abs(hand.frames[k][inner] - clean.frames[k][inner]).mean() > 2 * residual


def test_handheld_noisy_is_handheld_with_the_sensor(chelsea):
    """The two hand-held variants of a seed move alike; "handheld" has no gain or noise,
    "handheld-noisy" is its frames through the gain and noise of "noisy"."""
    hand = make_stack(chelsea, frames=4, seed=6, variant="handheld")
    both = make_stack(chelsea, frames=4, seed=6, variant="handheld-noisy")
    quiet = make_stack(chelsea, frames=4, seed=6, variant="handheld-noisy", full_well=1e12,
                       read_noise=0.0)
    assert all(np.array_equal(a.matrix, b.matrix) for a, b in zip(hand.transforms, both.transforms))
    assert not any(t.is_identity for t in hand.transforms)
    assert np.all(hand.gains == 1) and np.array_equal(both.gains, quiet.gains)
    inner = (slice(10, -10), slice(10, -10))
    for h, q, b, g in zip(hand.frames, quiet.frames, both.frames, both.gains):
        np.testing.assert_allclose(q[inner], np.clip(h * g, 0, 1)[inner], atol=1e-5)
        assert 0.5 / 255 < np.std(b[inner] - q[inner]) < 4 / 255  # the sensor noise


def test_noise_level_and_gain(chelsea):
    clean = make_stack(chelsea, frames=3, seed=4)
    noisy = make_stack(chelsea, frames=3, seed=4, variant="noisy", gain_jitter=0.0)
    x = clean.frames[1]
    z = (noisy.frames[1] - x) / np.sqrt(x / 4000.0 + 0.003 ** 2)
    unclipped = (x > 0.05) & (x < 0.95)
    assert abs(z[unclipped].std() - 1.0) < 0.03 and abs(z[unclipped].mean()) < 0.03
    gained = make_stack(chelsea, frames=3, seed=4, variant="noisy", full_well=1e12,
                        read_noise=0.0)
    assert np.all(np.abs(gained.gains - 1) <= 0.03) and len(set(gained.gains)) == 3
    for f, c, g in zip(gained.frames, clean.frames, gained.gains):
        np.testing.assert_allclose(f[unclipped], np.clip(c * g, 0, 1)[unclipped], atol=1e-4)


# files


@pytest.mark.parametrize("bit_depth", [8, 16])
def test_write_stack_round_trip(tmp_path, chelsea, bit_depth):
    s = make_stack(chelsea, frames=3, seed=5, variant="noisy")
    paths = write_stack(s, tmp_path, bit_depth=bit_depth)
    assert [p.name for p in paths] == ["frame_00.png", "frame_01.png", "frame_02.png"]
    back = read_image(paths[1], with_depth=True)
    assert back.bit_depth == bit_depth
    assert np.abs(back.pixels - s.frames[1]).max() <= 0.5 / (2 ** bit_depth - 1) + 1e-6
    index = np.rint(read_image(tmp_path / "depth_index.png") * 255).astype(np.int64)
    assert np.array_equal(index, s.depth_index)
    assert (tmp_path / "truth.png").is_file() and (tmp_path / "stack.json").is_file()


def test_load_sharp_images(tmp_path):
    for i in range(4):
        write_image(tmp_path / f"im{i}.png", np.full((8, 8), i / 4, np.float32))
    (tmp_path / "notes.txt").write_text("not an image")
    assert list(load_sharp_images(tmp_path)) == ["im0", "im1", "im2", "im3"]
    assert list(load_sharp_images(tmp_path, 2)) == ["im0", "im1"]
    picked = load_sharp_images(tmp_path, 2, seed=0)
    assert len(picked) == 2 and list(picked) == sorted(picked)
    assert list(picked) == list(load_sharp_images(tmp_path, 2, seed=0))
