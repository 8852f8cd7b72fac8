"""Tests of focusfuse.decision: threshold, small-region removal, guided filter."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import ndimage

from focusfuse.decision import (binary_map, box_mean, focus_map, guided_filter,
                                remove_small_regions, window_map)


def _blobs(shape=(40, 50), seed=0, density=0.45) -> np.ndarray:
    """A random bool map with regions of many sizes (smoothed noise, thresholded)."""
    rng = np.random.default_rng(seed)
    return ndimage.gaussian_filter(rng.random(shape), 1.2) > np.quantile(
        ndimage.gaussian_filter(rng.random(shape), 1.2), 1 - density)


def _reference_remove(binary: np.ndarray, fraction: float) -> np.ndarray:
    """Small-region removal written with scipy.ndimage.label (8-connectivity, a 3×3
    structure of ones): drop True regions of fewer than ceil(f·H·W) pixels, then do the
    same on the complement (MATLAB bwareaopen twice, as the authors' code)."""
    area = math.ceil(fraction * binary.shape[0] * binary.shape[1])

    def drop(mask):
        labels, n = ndimage.label(mask, structure=np.ones((3, 3)))
        sizes = np.bincount(labels.ravel(), minlength=n + 1)
        keep = sizes >= area
        keep[0] = False
        return keep[labels]

    kept = drop(binary)
    return ~drop(~kept)


def _box_mean_loops(x: np.ndarray, r: int) -> np.ndarray:
    """Mean over the (2r+1)² window around each pixel, clipped to the image, by explicit
    loops over pixels (the window's true size at the borders)."""
    H, W = x.shape
    out = np.empty((H, W))
    for i in range(H):
        for j in range(W):
            out[i, j] = x[max(0, i - r):i + r + 1, max(0, j - r):j + r + 1].mean()
    return out


def _box_mean_cumsum(x: np.ndarray, r: int) -> np.ndarray:
    """The same box mean with summed-area tables (He et al.'s boxfilter.m, divided by N)."""
    H, W = x.shape
    S = np.zeros((H + 1, W + 1))
    S[1:, 1:] = x.cumsum(0).cumsum(1)
    y0 = np.clip(np.arange(H) - r, 0, H)
    y1 = np.clip(np.arange(H) + r + 1, 0, H)
    x0 = np.clip(np.arange(W) - r, 0, W)
    x1 = np.clip(np.arange(W) + r + 1, 0, W)
    total = S[y1][:, x1] - S[y0][:, x1] - S[y1][:, x0] + S[y0][:, x0]
    count = (y1 - y0)[:, None] * (x1 - x0)[None, :]
    return total / count


def _reference_guided(I: np.ndarray, p: np.ndarray, r: int, eps: float) -> np.ndarray:
    """He, Sun, Tang, "Guided image filtering", TPAMI 2013, Algorithm 1, gray guide."""
    f = lambda z: _box_mean_cumsum(z, r)  # noqa: E731
    mean_I, mean_p = f(I), f(p)
    var_I = f(I * I) - mean_I**2
    cov_Ip = f(I * p) - mean_I * mean_p
    a = cov_Ip / (var_I + eps)
    b = mean_p - a * mean_I
    return f(a) * I + f(b)


# smoke ---------------------------------------------------------------------------------

def test_pipeline_runs():
    binary = binary_map(np.random.default_rng(0).random((30, 30)))
    refined = remove_small_regions(binary)
    d = guided_filter(np.random.default_rng(1).random((30, 30)), refined.astype(float))
    assert np.isfinite(d).all()


# shapes --------------------------------------------------------------------------------

def test_shapes_and_types():
    focus = np.random.default_rng(0).random((21, 34))
    binary = binary_map(focus)
    assert binary.shape == (21, 34) and binary.dtype == bool
    refined = remove_small_regions(binary)
    assert refined.shape == (21, 34) and refined.dtype == bool
    d = guided_filter(focus, refined.astype(float))
    assert d.shape == (21, 34) and d.dtype == np.float64


# errors --------------------------------------------------------------------------------

@pytest.mark.parametrize("fraction", [-0.1, 1.0, 2.0])
def test_bad_fraction_raises(fraction):
    with pytest.raises(ValueError, match="min_area_fraction"):
        remove_small_regions(np.zeros((8, 8), bool), min_area_fraction=fraction)


def test_guided_filter_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="one shape"):
        guided_filter(np.zeros((8, 8)), np.zeros((8, 9)))
    with pytest.raises(ValueError, match="one shape"):
        guided_filter(np.zeros((8, 8, 3)), np.zeros((8, 8, 3)))


# invariants ----------------------------------------------------------------------------

def test_binary_map_threshold_is_strict():
    np.testing.assert_array_equal(binary_map(np.array([0.49, 0.5, 0.51])), [False, False, True])


def test_zero_fraction_is_a_no_op():
    binary = _blobs(seed=2)
    out = remove_small_regions(binary, min_area_fraction=0.0)
    np.testing.assert_array_equal(out, binary)
    assert out is not binary  # a copy: the caller's map is not aliased


def test_removal_is_idempotent():
    once = remove_small_regions(_blobs(seed=3), min_area_fraction=0.02)
    np.testing.assert_array_equal(remove_small_regions(once, min_area_fraction=0.02), once)


def test_single_pixel_hole_and_island_are_removed():
    binary = np.zeros((20, 20), bool)
    binary[:, :10] = True
    binary[5, 5] = False  # a hole in the True half
    binary[12, 15] = True  # an island in the False half
    out = remove_small_regions(binary, min_area_fraction=0.01)  # area ceil(4) = 4
    expected = np.zeros((20, 20), bool)
    expected[:, :10] = True
    np.testing.assert_array_equal(out, expected)


def test_diagonal_neighbours_are_connected():
    # 8-connectivity: a diagonal line of 5 pixels is one region (kept at area 5), while
    # with 4-connectivity it would be 5 single pixels (removed)
    binary = np.zeros((10, 10), bool)
    binary[np.arange(5), np.arange(5)] = True
    out = remove_small_regions(binary, min_area_fraction=0.05)  # area ceil(5) = 5
    np.testing.assert_array_equal(out, binary)


def test_constant_guide_gives_box_mean_of_src():
    # var_I = 0, so a = 0 and b = mean_p: the output is the box mean of the box mean of src
    src = np.random.default_rng(4).random((23, 19))
    guide = np.full_like(src, 0.37)
    r = 3
    expected = _box_mean_loops(_box_mean_loops(src, r), r)
    np.testing.assert_allclose(guided_filter(guide, src, radius=r, eps=0.1), expected, atol=1e-12)


def test_guided_filter_keeps_constant_src():
    guide = np.random.default_rng(5).random((20, 20))
    np.testing.assert_allclose(guided_filter(guide, np.full((20, 20), 0.8), radius=4), 0.8,
                               atol=1e-12)


# reference values ----------------------------------------------------------------------

@pytest.mark.parametrize("seed,fraction", [(0, 0.01), (1, 0.02), (2, 0.05), (3, 0.003)])
def test_remove_small_regions_matches_scipy_label(seed, fraction):
    binary = _blobs(seed=seed)
    expected = _reference_remove(binary, fraction)
    assert np.count_nonzero(expected != binary) > 10  # the step changes the map
    np.testing.assert_array_equal(remove_small_regions(binary, min_area_fraction=fraction), expected)


@pytest.mark.parametrize("shape,r", [((17, 23), 3), ((30, 12), 8), ((5, 40), 8)])
def test_box_mean_matches_loops(shape, r):
    x = np.random.default_rng(6).random(shape)
    np.testing.assert_allclose(box_mean(x, r), _box_mean_loops(x, r), atol=1e-12)
    np.testing.assert_allclose(_box_mean_cumsum(x, r), _box_mean_loops(x, r), atol=1e-12)


@pytest.mark.parametrize("shape,r,eps", [((40, 33), 8, 0.1), ((25, 31), 2, 1e-3), ((12, 50), 8, 0.01)])
def test_guided_filter_matches_numpy_reference(shape, r, eps):
    rng = np.random.default_rng(7)
    guide = ndimage.gaussian_filter(rng.random(shape), 1.5)
    src = (ndimage.gaussian_filter(rng.random(shape), 2.0) > 0.5).astype(np.float64)
    np.testing.assert_allclose(guided_filter(guide, src, radius=r, eps=eps),
                               _reference_guided(guide, src, r, eps), atol=1e-10)


@pytest.mark.parametrize("shape,r,eps", [((40, 33), 8, 0.1), ((25, 31), 2, 1e-3)])
def test_guided_filter_in_float32_is_close_to_the_reference(shape, r, eps):
    """float32 sources take OpenCV's float32 path: the same filter to float32 round-off."""
    rng = np.random.default_rng(8)
    guide = ndimage.gaussian_filter(rng.random(shape), 1.5)
    src = (ndimage.gaussian_filter(rng.random(shape), 2.0) > 0.5).astype(np.float64)
    got = guided_filter(guide.astype(np.float32), src.astype(np.float32), radius=r, eps=eps)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, _reference_guided(guide, src, r, eps), atol=2e-5)


def test_box_mean_in_float32():
    x = np.random.default_rng(9).random((30, 41))
    got = box_mean(x.astype(np.float32), 3)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, _box_mean_loops(x, 3), atol=1e-6)


def test_guided_filter_uses_float64_for_tiny_eps():
    rng = np.random.default_rng(10)
    guide = ndimage.gaussian_filter(rng.random((30, 30)), 1.5).astype(np.float32)
    src = (rng.random((30, 30)) > 0.5).astype(np.float32)
    got = guided_filter(guide, src, radius=3, eps=1e-7)
    assert got.dtype == np.float64
    np.testing.assert_allclose(got, _reference_guided(guide.astype(np.float64),
                                                      src.astype(np.float64), 3, 1e-7), atol=1e-8)


def test_window_map_takes_the_window_centred_on_each_pixel():
    """Window i covers pixels 2i .. 2i + 15 (centre 2i + 7.5): pixels 8 and 9 of a row are
    nearest the centres of windows 0 and 1; beyond the last centre, the last window."""
    shape = (40, 50)
    scores = np.arange(13 * 18, dtype=np.float64).reshape(13, 18)  # ceil(H/2) − 7, ceil(W/2) − 7
    m = window_map(scores, shape)
    assert m.shape == shape and m.dtype == np.float32
    assert m[8, 8] == scores[0, 0] and m[9, 9] == scores[1, 1] and m[0, 0] == scores[0, 0]
    assert m[39, 49] == scores[-1, -1] and m[20, 30] == scores[6, 11]  # (20 − 7.5) / 2 = 6.25
    with pytest.raises(ValueError, match="does not belong to 40×51 images"):
        window_map(scores, (40, 51))


def test_window_map_keeps_an_edge_that_focus_map_spreads():
    """A step in the scores: the centred windows put it within a pixel of its place, the
    mean over the covering windows blurs it over 16 pixels."""
    shape = (16, 80)
    scores = np.zeros((1, 33))
    scores[:, 16:] = 1.0  # windows 16.. (centres from 39.5) score 1
    edge = np.flatnonzero(window_map(scores, shape)[0] > 0.5)[0]
    assert edge in (39, 40)
    spread = np.flatnonzero((focus_map(scores, shape)[0] > 0.01) & (focus_map(scores, shape)[0] < 0.99))
    assert spread.size >= 12
