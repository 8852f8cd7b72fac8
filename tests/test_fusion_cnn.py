"""Tests of the CNN fusion (focusfuse.fuse with method="cnn" and focusfuse.fusion.cnn).

Tests that run the network on the authors' released weights from ../shared are skipped
without them; those that need a model, not that one, use the shipped model. The boundary
checks and the post-network stages run everywhere.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from scipy import ndimage
from skimage.metrics import peak_signal_noise_ratio

from conftest import texture
from focusfuse import FusionResult, fuse
from focusfuse.color import to_gray
from focusfuse.examples import example_pair, make_multifocus_pair, region_mask
from focusfuse.fusion.cnn import blend, decide
from focusfuse.models import default_weights_path

FP32 = {"precision": "fp32", "device": "cpu"}


@pytest.fixture(scope="module")
def astronaut():
    """A 192×192 colour crop of scikit-image's astronaut (face and helmet: much detail)."""
    from skimage import data

    return data.astronaut()[32:224, 160:352].astype(np.float32) / 255.0


def _psnr8(reference, image) -> float:
    """PSNR of ``image`` rounded to 8 bit as write_image does (floor(x·255 + 0.5))."""
    image8 = np.floor(np.clip(image, 0, 1) * 255 + 0.5) / 255
    return peak_signal_noise_ratio(reference, image8, data_range=1.0)


def _colour(seed: int, shape=(48, 48)) -> np.ndarray:
    return np.stack([texture(shape, seed=seed + k) for k in range(3)], axis=2)


# smoke ---------------------------------------------------------------------------------

@pytest.mark.shared
def test_fuse_runs(any_model):
    a, b = texture(seed=1), texture(seed=2)
    result = fuse([a, b], model=any_model, **FP32)
    assert isinstance(result, FusionResult)
    assert result.method == "cnn"
    assert result.fused.dtype == np.float32
    assert 0.0 <= result.fused.min() and result.fused.max() <= 1.0


@pytest.mark.shared
def test_weights_path_gives_same_result_as_model(mat_model, mat_weights):
    a, b = texture(seed=1), texture(seed=2)
    np.testing.assert_array_equal(fuse([a, b], weights=mat_weights, **FP32).fused,
                                  fuse([a, b], model=mat_model, **FP32).fused)


def test_default_weights_are_the_shipped_paper_model(shipped_model):
    # without weights=, fuse uses the shipped paper model
    a, b = texture(seed=1), texture(seed=2)
    np.testing.assert_array_equal(fuse([a, b], **FP32).fused,
                                  fuse([a, b], model=shipped_model, **FP32).fused)


def test_a_missing_shipped_model_is_a_clear_error(monkeypatch, tmp_path):
    import focusfuse.models as models

    monkeypatch.setattr(models, "default_weights_path", lambda name="paper": tmp_path / "gone")
    with pytest.raises(ValueError, match="shipped model .* is missing; reinstall focusfuse"):
        fuse([texture(seed=1), texture(seed=2)], weights="fast", **FP32)


# shapes --------------------------------------------------------------------------------

@pytest.mark.shared
@pytest.mark.parametrize("shape", [(48, 48), (45, 51), (48, 40, 3)])
def test_map_shapes(any_model, shape):
    rng = np.random.default_rng(0)
    a = rng.random(shape).astype(np.float32)
    b = ndimage.gaussian_filter(a, 1.0).astype(np.float32)
    result = fuse([a, b], model=any_model, **FP32)
    H, W = shape[:2]
    assert result.fused.shape == shape
    assert len(result.steps) == 1
    assert result.score_map.shape == ((H + 1) // 2 - 7, (W + 1) // 2 - 7)
    for m in (result.focus_map, result.binary_map, result.refined_map, result.decision_map):
        assert m.shape == (H, W)
    assert result.binary_map.dtype == bool and result.refined_map.dtype == bool
    names = [name for name, _ in result.steps[0].items()]
    assert names == ["score", "focus", "binary", "refined", "decision"]


@pytest.mark.shared
def test_three_images_make_one_decision_over_all(any_model, astronaut):
    # three sources, each sharp in one vertical third: one decision over all three (a
    # stack, tests/test_stack.py), a depth map that finds the thirds, sharper than any source
    from skimage.metrics import peak_signal_noise_ratio as psnr

    H, W = astronaut.shape[:2]
    blurred = cv2.GaussianBlur(astronaut, (0, 0), 3.0, borderType=cv2.BORDER_REFLECT)
    xx = np.arange(W)[None, :, None]
    thirds = [xx < W / 3, (xx >= W / 3) & (xx < 2 * W / 3), xx >= 2 * W / 3]
    sources = [np.where(t, astronaut, blurred).astype(np.float32) for t in thirds]
    result = fuse(sources, model=any_model, **FP32)
    assert result.steps == [] and result.fused.shape == astronaut.shape
    truth = np.broadcast_to(sum(k * t[..., 0] for k, t in enumerate(thirds)), (H, W))
    assert (result.depth_map == truth).mean() > 0.95
    assert psnr(astronaut, result.fused, data_range=1) > max(
        psnr(astronaut, s, data_range=1) for s in sources) + 8
    best = max(_psnr8(astronaut, s) for s in sources)
    assert _psnr8(astronaut, result.fused) >= best + 8


# errors --------------------------------------------------------------------------------

def test_rejects_single_image():
    with pytest.raises(ValueError, match="at least two"):
        fuse([texture()])


def test_rejects_single_array():
    with pytest.raises(TypeError, match="list of arrays"):
        fuse(np.stack([texture(), texture(seed=1)]))


def test_rejects_different_shapes():
    with pytest.raises(ValueError, match="align or crop"):
        fuse([texture((48, 48)), texture((48, 50))])


def test_rejects_gray_and_colour_mix():
    with pytest.raises(ValueError, match="gray.*colour"):
        fuse([texture(), _colour(3)])


def test_takes_8_and_16_bit_codes_as_the_metrics_do_and_rejects_other_integers():
    a, b = texture(seed=1), texture(seed=2)
    a8, b8 = (np.floor(x * 255 + 0.5).astype(np.uint8) for x in (a, b))
    as_float = fuse([a8 / np.float32(255), b8 / np.float32(255)], method="laplacian").fused
    np.testing.assert_array_equal(fuse([a8, b8], method="laplacian").fused, as_float)
    a16 = a8.astype(np.uint16) * 257  # the same levels in 16 bits
    np.testing.assert_allclose(fuse([a16, b8.astype(np.uint16) * 257], method="laplacian").fused,
                               as_float, atol=1e-6)
    with pytest.raises(TypeError, match="int32"):
        fuse([a8.astype(np.int32)] * 2)


def test_rejects_bad_channel_count():
    x = np.zeros((48, 48, 2), np.float32)
    with pytest.raises(ValueError, match="shape"):
        fuse([x, x])


def test_rejects_unknown_method():
    with pytest.raises(ValueError, match="unknown method 'cnnx'"):
        fuse([texture(), texture(seed=1)], method="cnnx")


def test_rejects_bad_min_region():
    # the check of min_region runs after the network, so use decide() directly
    scores = np.full((17, 17), 0.7)
    g = texture()
    with pytest.raises(ValueError, match="min_area_fraction"):
        decide(scores, g, g, min_region=1.5)


# invariants ----------------------------------------------------------------------------

@pytest.mark.shared
@pytest.mark.parametrize("colour", [False, True])
def test_identical_inputs_return_the_input(any_model, colour):
    a = _colour(5) if colour else texture(seed=5)
    result = fuse([a, a.copy()], model=any_model, **FP32)
    np.testing.assert_allclose(result.fused, a, atol=1 / 255)


def test_decide_on_swapped_scores_is_complementary():
    # The post-network stages are symmetric: scores 1 − s with the sources swapped give the
    # complementary binary and refined maps (no focus value is exactly 0.5 here) and
    # decision maps that sum to 1 (the guided filter is linear in its input and the guide,
    # the gray image composited through the binary map, is the same).
    rng = np.random.default_rng(0)
    s = ndimage.gaussian_filter(rng.random((33, 30)), 2.0)
    s = np.clip((s - s.mean()) * 40 + 0.5, 0, 1)
    ga, gb = texture((80, 74), seed=1).astype(np.float64), texture((80, 74), seed=2).astype(np.float64)
    ab = decide(s, ga, gb, min_region=0.02)
    ba = decide(1.0 - s, gb, ga, min_region=0.02)
    assert 0.2 < ab.refined.mean() < 0.8
    np.testing.assert_array_equal(ab.binary, ~ba.binary)
    np.testing.assert_array_equal(ab.refined, ~ba.refined)
    np.testing.assert_allclose(ab.decision + ba.decision, 1.0, atol=1e-12)


@pytest.mark.shared
def test_swapping_inputs_complements_the_decision(any_model, astronaut):
    # End to end, the network is not exactly antisymmetric: P(b in focus | b, a) is within
    # 0.06 of 1 − P(a in focus | a, b) here for the authors' model; the shipped model has a
    # few uncertain windows where the two differ by up to 0.31, but on average by < 0.01.
    # So the binary maps are complementary except at a few pixels where the focus map is
    # close to 0.5 (12 of 36864 measured), and the decision maps sum to 1 within 0.02
    # (0.0134 measured for the authors' model).
    a, b = make_multifocus_pair(astronaut, region_mask(astronaut.shape[:2], kind="ellipse"))
    ab = fuse([a, b], model=any_model, **FP32).steps[0]
    ba = fuse([b, a], model=any_model, **FP32).steps[0]
    assert np.abs(ab.score + ba.score - 1).mean() < 0.01
    same = ab.binary == ba.binary  # where they are not complementary
    assert same.mean() < 5e-3  # authors: 12 pixels (0.03%), shipped: 64 (0.17%)
    assert np.all(np.abs(ab.focus[same] - 0.5) < 0.05)
    # authors: max 0.0134; shipped: max 0.060, mean 0.0017 (next to its 64 odd pixels)
    gap = np.abs(ab.decision + ba.decision - 1.0)
    assert gap.max() < 0.1 and gap.mean() < 0.005


@pytest.mark.shared
def test_colour_uses_one_decision_for_every_channel(any_model):
    a, b = _colour(10), _colour(20)
    result = fuse([a, b], model=any_model, **FP32)
    d = result.decision_map
    for c in range(3):
        expected = np.clip(d * a[..., c] + (1 - d) * b[..., c], 0, 1)
        np.testing.assert_allclose(result.fused[..., c], expected, atol=1e-6)
    # the decision is that of the gray images (MATLAB rgb2gray weights)
    gray = fuse([to_gray(a), to_gray(b)], model=any_model, **FP32)
    np.testing.assert_array_equal(gray.decision_map, d)


@pytest.mark.shared
def test_min_region_zero_leaves_binary(any_model):
    rng = np.random.default_rng(1)
    a = rng.random((48, 48)).astype(np.float32)
    b = ndimage.gaussian_filter(rng.random((48, 48)), 1.0).astype(np.float32)
    result = fuse([a, b], model=any_model, min_region=0.0, **FP32)
    np.testing.assert_array_equal(result.refined_map, result.binary_map)


@pytest.mark.shared
def test_decision_blends_the_sources(any_model):
    a, b = texture(seed=7), texture(seed=8)
    result = fuse([a, b], model=any_model, **FP32)
    expected = np.clip(blend(a, b, result.decision_map), 0, 1)
    np.testing.assert_allclose(result.fused, expected, atol=1e-6)


@pytest.mark.shared
@pytest.mark.parametrize("kind", ["ellipse", "wave"])
def test_blurred_regions_fuse_back_to_the_sharp_image(any_model, astronaut, kind):
    # A pair made by blurring complementary regions (Gaussian, σ = 3) of a sharp image.
    # Measured with the authors' weights: fused 41.4 dB, sources 25.6–28.9 dB.
    a, b = make_multifocus_pair(astronaut, region_mask(astronaut.shape[:2], kind=kind))
    result = fuse([a, b], model=any_model, **FP32)
    fused = _psnr8(astronaut, result.fused)
    best = max(_psnr8(astronaut, a), _psnr8(astronaut, b))
    assert fused >= 35.0
    assert fused >= best + 8.0


@pytest.mark.shared
@pytest.mark.slow
def test_example_pair_fuses_back_to_the_sharp_image(any_model):
    # the demo's full 512×512 example (about 7 s): measured 42.9 dB against 24.9 / 26.8 dB
    a, b, sharp = example_pair()
    result = fuse([a, b], model=any_model, **FP32)
    fused = _psnr8(sharp, result.fused)
    assert fused >= 35.0
    assert fused >= max(_psnr8(sharp, a), _psnr8(sharp, b)) + 8.0


def test_repeated_fuse_reuses_the_loaded_model(monkeypatch):
    """fuse(weights=...) loads a weights file once, not on every call."""
    import focusfuse.models as models
    from focusfuse.fusion.cnn import _load_cached

    _load_cached.cache_clear()
    calls = []
    real = models.load_weights
    monkeypatch.setattr(models, "load_weights", lambda p=None: calls.append(p) or real(p))
    a = np.random.default_rng(0).random((40, 40)).astype(np.float32)
    for _ in range(3):
        fuse([a, a.copy()], weights="fast", precision="fp32")
    assert len(calls) == 1


def test_blend_keeps_float32_and_matches_the_formula():
    rng = np.random.default_rng(3)
    a, b = rng.random((6, 7, 3), dtype=np.float32), rng.random((6, 7, 3), dtype=np.float32)
    d = rng.random((6, 7), dtype=np.float32)
    got = blend(a, b, d)
    assert got.dtype == np.float32
    want = d[..., None].astype(np.float64) * a + (1 - d[..., None].astype(np.float64)) * b
    np.testing.assert_allclose(got, want, atol=1e-6)
    assert blend(a.astype(np.float64), b, d).dtype == np.float64


def test_fused_result_is_not_an_input(any_model):
    """Identical sources: the fused image equals them but is a new array."""
    x = texture((40, 44), seed=4)
    res = fuse([x, x.copy()], model=any_model)
    assert res.fused is not x and not np.shares_memory(res.fused, x)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_to_gray_uses_the_matlab_weights(dtype):
    from focusfuse.color import RGB2GRAY

    rgb = np.random.default_rng(4).random((9, 11, 3)).astype(dtype)
    got = to_gray(rgb)
    assert got.dtype == dtype and got.shape == (9, 11)
    np.testing.assert_allclose(got, rgb.astype(np.float64) @ RGB2GRAY, atol=1e-6)
    np.testing.assert_array_equal(to_gray(np.dstack([rgb, rgb[..., :1]])), got)  # alpha ignored
