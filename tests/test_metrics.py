"""Tests of focusfuse.metrics: smoke, shapes, errors, invariants.

The agreement with the survey's published values is in test_metrics_reference.py.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import ndimage

import focusfuse.metrics as fm
from focusfuse.metrics._common import as_gray255, matlab_round, normalize1
from focusfuse.metrics.phase_congruency import _filter_bank, phase_congruency

FUNCS = {
    "QMI": fm.qmi,
    "QNCIE": fm.qncie,
    "QG": fm.qg,
    "QP": fm.qp,
    "QE": fm.qe,
    "QY": fm.qy,
    "QCB": fm.qcb,
    "QCV": fm.qcv,
}


def _texture(shape=(64, 72), seed=0) -> np.ndarray:
    """A smooth random texture in [0, 1] with structure at several scales."""
    rng = np.random.default_rng(seed)
    x = sum(ndimage.gaussian_filter(rng.random(shape), s) * s for s in (0.7, 1.5, 3.0))
    return (x - x.min()) / (x.max() - x.min())


def _to8(x: np.ndarray) -> np.ndarray:
    return np.round(np.clip(x, 0, 1) * 255).astype(np.uint8)


@pytest.fixture(scope="module")
def triplet():
    """Multi-focus triplet: A sharp on the left, B sharp on the right, the sharp image as fused."""
    sharp = _texture()
    blurred = ndimage.gaussian_filter(sharp, 2.5)
    half = sharp.shape[1] // 2
    a = sharp.copy()
    a[:, half:] = blurred[:, half:]
    b = sharp.copy()
    b[:, :half] = blurred[:, :half]
    return _to8(a), _to8(b), _to8(sharp)


# --- smoke and shapes -------------------------------------------------------------


def test_public_names():
    assert fm.METRICS == ("QMI", "QNCIE", "QG", "QP", "QE", "QY", "QCB", "QCV")
    assert fm.LOWER_IS_BETTER == frozenset({"QCV"})
    for name in ("evaluate", "en", "sf", "sd", "ag", "psnr", "ssim", *[m.lower() for m in fm.METRICS]):
        assert callable(getattr(fm, name))
        assert name in fm.__all__


@pytest.mark.parametrize("name", list(FUNCS))
def test_each_metric_returns_finite_float(triplet, name):
    value = FUNCS[name](*triplet)
    assert isinstance(value, float)
    assert math.isfinite(value)


def test_evaluate_matches_single_functions(triplet):
    res = fm.evaluate(*triplet)
    assert list(res) == list(fm.METRICS)
    for name, fn in FUNCS.items():
        assert res[name] == pytest.approx(fn(*triplet), abs=1e-12)


def test_evaluate_subset_and_extras(triplet):
    a, b, f = triplet
    res = fm.evaluate(a, b, f, metrics=["qg", "EN", "SF", "SD", "AG", "PSNR", "SSIM"], reference=f)
    assert list(res) == ["QG", "EN", "SF", "SD", "AG", "PSNR", "SSIM"]
    assert res["EN"] == pytest.approx(fm.en(f))
    assert res["SF"] == pytest.approx(fm.sf(f))
    assert res["SD"] == pytest.approx(fm.sd(f))
    assert res["AG"] == pytest.approx(fm.ag(f))
    assert res["PSNR"] == math.inf
    assert res["SSIM"] == pytest.approx(1.0)


@pytest.mark.parametrize("name", list(FUNCS))
def test_colour_gray_and_dtypes_agree(triplet, name):
    """uint8, float in [0, 1] (as read_image returns), (H, W, 1) and uint16 give the same value."""
    a, b, f = triplet
    ref = FUNCS[name](a, b, f)
    as_float = [x.astype(np.float32) / 255.0 for x in (a, b, f)]
    assert FUNCS[name](*as_float) == pytest.approx(ref, abs=1e-12)
    assert FUNCS[name](*[x[:, :, None] for x in (a, b, f)]) == pytest.approx(ref, abs=1e-12)
    as16 = [x.astype(np.uint16) * 257 for x in (a, b, f)]
    assert FUNCS[name](*as16) == pytest.approx(ref, abs=1e-9)


def test_rgb_is_converted_like_matlab_rgb2gray_on_uint8():
    rgb = np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255], [10, 20, 30]]], dtype=np.uint8)
    gray = as_gray255(rgb)
    # round(255 * w) with MATLAB's weights 0.298936021293775, 0.587043074451121, 0.114020904255103
    np.testing.assert_array_equal(gray, [[76.0, 150.0, 29.0, 18.0]])
    # a colour image of 8-bit levels stored as float gives the same integer gray levels
    np.testing.assert_array_equal(as_gray255(rgb.astype(np.float32) / 255), gray)
    # a genuinely continuous float image keeps the unrounded weighted sum
    cont = np.full((1, 1, 3), 0.1234)
    assert as_gray255(cont)[0, 0] == pytest.approx(0.1234 * 255)


def test_matlab_round_and_normalize1():
    np.testing.assert_array_equal(matlab_round(np.array([0.5, 1.5, 2.5, -0.5, 2.4999])), [1, 2, 3, -1, 2])
    x = np.array([[10.0, 20.0], [30.0, 110.0]])
    # (x - 10) / 100 * 255 = 0, 25.5, 51, 255: 25.5 rounds up, as MATLAB's round does
    np.testing.assert_array_equal(normalize1(x), [[0, 26], [51, 255]])
    np.testing.assert_array_equal(normalize1(np.full((2, 2), 7.0)), np.full((2, 2), 7.0))


# --- errors -------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(FUNCS))
def test_shape_mismatch_is_a_clear_error(triplet, name):
    a, b, f = triplet
    with pytest.raises(ValueError, match=r"same height and width.*\(64, 72\).*\(64, 71\).*crop"):
        FUNCS[name](a, b, f[:, :-1])


@pytest.mark.parametrize("name", list(FUNCS))
def test_wrong_channel_count_is_a_clear_error(triplet, name):
    a, b, f = triplet
    rgba = np.dstack([f, f, f, f])
    with pytest.raises(ValueError, match=r"fused must be a gray \(H, W\) or RGB \(H, W, 3\).*\(64, 72, 4\).*alpha"):
        FUNCS[name](a, b, rgba)
    with pytest.raises(ValueError, match=r"a must be a gray"):
        FUNCS[name](a[:, :, None, None], b, f)


def test_bad_types_and_values(triplet):
    a, b, f = triplet
    with pytest.raises(TypeError, match="b must be a numeric image"):
        fm.qmi(a, b > 128, f)
    with pytest.raises(TypeError, match="int32"):
        fm.qmi(a.astype(np.int32), b, f)
    bad = f.astype(np.float64) / 255
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="fused must contain only finite values"):
        fm.qg(a, b, bad)
    with pytest.raises(ValueError, match=r"a is a float image.*\[0, 1\].*got 0\.\.230; divide 0\.\.255"):
        fm.qe(a.astype(np.float64), b, f)
    with pytest.raises(ValueError, match=r"at least 11x11.*\(8, 8\)"):
        fm.qy(a[:8, :8], b[:8, :8], f[:8, :8])


def test_evaluate_rejects_bad_metric_names(triplet):
    with pytest.raises(ValueError, match=r"metrics must be names.*\['QX'\]"):
        fm.evaluate(*triplet, metrics=["QG", "QX"])
    with pytest.raises(TypeError, match=r"metrics=\['QG'\]"):
        fm.evaluate(*triplet, metrics="QG")
    with pytest.raises(ValueError, match="reference must be an all-in-focus image"):
        fm.evaluate(*triplet, metrics=["PSNR"])
    a, b, f = triplet
    with pytest.raises(ValueError, match="reference must have the same height and width"):
        fm.evaluate(a, b, f, metrics=["SSIM"], reference=f[1:])


# --- invariants ----------------------------------------------------------------------


@pytest.mark.parametrize("name", list(FUNCS))
def test_symmetric_in_the_sources(triplet, name):
    a, b, f = triplet
    # QG and QP are symmetric up to the reference code's tie-breaking and 1e-5 guards
    tol = 1e-6 if name in ("QG", "QP") else 1e-12
    assert FUNCS[name](a, b, f) == pytest.approx(FUNCS[name](b, a, f), abs=tol)


def test_identical_images_score_perfectly(triplet):
    x = triplet[2]
    res = fm.evaluate(x, x, x)
    assert res["QMI"] == pytest.approx(2.0)
    # NCC(X, X) = H(X) / 8 bits, so R has off-diagonals c = H / 8: eigenvalues 1 + 2c, 1 - c, 1 - c
    c = fm.en(x) / 8.0
    lam = np.array([1 + 2 * c, 1 - c, 1 - c]) / 3
    assert res["QNCIE"] == pytest.approx(1 + np.sum(lam * np.log2(lam)) / 8)
    assert res["QE"] == pytest.approx(1.0)
    assert res["QY"] == pytest.approx(1.0)
    assert res["QCB"] == pytest.approx(1.0)
    assert res["QCV"] == pytest.approx(0.0, abs=1e-9)
    # QP correlates masked source features (0 below phase congruency 0.1) with the
    # unmasked fused features, so even identical images stay a little below 1.
    assert 0.9 < res["QP"] <= 1.0
    # QG's sigmoids top out below 1: 0.9994 / (1 + e^-7.5) * 0.9879 / (1 + e^-4.4)
    top = 0.9994 / (1 + math.exp(-7.5)) * 0.9879 / (1 + math.exp(-4.4))
    assert res["QG"] == pytest.approx(top, rel=1e-6)


def test_good_fusion_beats_blurred_average(triplet):
    a, b, good = triplet
    average = (a.astype(np.float64) + b.astype(np.float64)) / 2
    worse = _to8(ndimage.gaussian_filter(average, 1.5) / 255)
    good_scores = fm.evaluate(a, b, good)
    bad_scores = fm.evaluate(a, b, worse)
    for name in fm.METRICS:
        if name in fm.LOWER_IS_BETTER:
            assert good_scores[name] < bad_scores[name], name
        else:
            assert good_scores[name] > bad_scores[name], name


def test_qy_flat_windows_are_exact():
    """Constant regions give QY exactly 1 when all three agree, independent of round-off."""
    x = _to8(_texture(seed=3))
    x[10:40, 10:40] = 255  # a saturated, perfectly flat patch
    for scale in (1.0, 0.1):  # round-off in E[x^2] - E[x]^2 differs with the level
        y = _to8(x / 255.0 * scale)
        assert fm.qy(y, y, y) == pytest.approx(1.0, abs=1e-12)


# --- phase congruency ------------------------------------------------------------


def test_phase_congruency_noise_constants_match_direct_computation():
    """The Parseval shortcut equals the reference's sums of real(ifft2(filter)) * sqrt(N)."""
    shape = (24, 31)
    filters, _, sum_an2, sum_aiaj = _filter_bank(shape)
    n = shape[0] * shape[1]
    for o in range(filters.shape[0]):
        spatial = [np.real(np.fft.ifft2(filters[o, s])) * math.sqrt(n) for s in range(filters.shape[1])]
        assert sum_an2[o] == pytest.approx(sum(np.sum(s * s) for s in spatial), rel=1e-10)
        cross = sum(
            np.sum(spatial[i] * spatial[j]) for i in range(len(spatial)) for j in range(i + 1, len(spatial))
        )
        assert sum_aiaj[o] == pytest.approx(cross, rel=1e-10)


def test_phase_congruency_single_and_double_precision_agree():
    img = _texture((40, 52), seed=5) * 255
    single = phase_congruency(img)
    double = phase_congruency(img, precision="double")
    for s, d in zip(single, double):
        np.testing.assert_allclose(s, d, atol=1e-5)
    with pytest.raises(ValueError, match="precision must be 'single' or 'double'"):
        phase_congruency(img, precision="half")


def test_phase_congruency_finds_a_step_edge():
    img = np.zeros((48, 48))
    img[:, 24:] = 200.0
    pc, big, small = phase_congruency(img)
    assert pc.shape == big.shape == small.shape == img.shape
    assert pc[20:28, 22:26].max() > 0.5
    assert pc[20:28, 5:12].max() < 0.1
    assert np.all(big >= small)


# --- single-image measures ------------------------------------------------------------


def test_single_image_measures_on_known_images():
    flat = np.full((16, 16), 100, dtype=np.uint8)
    for fn in (fm.en, fm.sf, fm.sd, fm.ag):
        assert fn(flat) == 0.0
    halves = np.zeros((16, 16), dtype=np.uint8)
    halves[:, 8:] = 255
    assert fm.en(halves) == pytest.approx(1.0)
    assert fm.sd(halves) == pytest.approx(127.5)
    # one vertical step of 255 per row: RF^2 = 16 * 255^2 / 256, CF = 0
    assert fm.sf(halves) == pytest.approx(255 / 4)
    # AG: in each of 15 rows one step of 255 among 15 columns
    assert fm.ag(halves) == pytest.approx(255 / math.sqrt(2) / 15)


def test_psnr_and_ssim_against_skimage(triplet):
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    a, _, f = triplet
    ga, gf = a.astype(np.float64), f.astype(np.float64)
    assert fm.psnr(a, f) == pytest.approx(peak_signal_noise_ratio(gf, ga, data_range=255))
    expected = structural_similarity(
        gf, ga, data_range=255, gaussian_weights=True, sigma=1.5, use_sample_covariance=False
    )
    assert fm.ssim(a, f) == pytest.approx(expected)
    assert fm.psnr(f, f) == math.inf
    assert fm.ssim(f, f) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="fused and reference must have the same height and width"):
        fm.psnr(a, f[:, 1:])
