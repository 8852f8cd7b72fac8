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
from focusfuse.metrics.phase_congruency import _correlation as pc_correlation
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


def _gauss(size: int, sigma: float) -> np.ndarray:
    """MATLAB fspecial('gaussian') along one axis, normalised."""
    x = np.arange(size) - (size - 1) / 2.0
    g = np.exp(-x * x / (2 * sigma * sigma))
    return g / g.sum()


def _reference_correlation(x, xf, mask, window) -> np.ndarray:
    """One map of metricZhao.m's ``correlation_coeffcient``: the local correlation of the
    masked feature ``x`` with ``xf`` where ``mask`` is on, 0 elsewhere (filter2 'same',
    zero padding, here scipy.ndimage.correlate)."""
    def filt(z):
        return ndimage.correlate(z, window, mode="constant")

    g = x * mask
    cov = filt(g * xf) - filt(g) * filt(xf)
    var, var_f = filt(g * g) - filt(g) ** 2, filt(xf * xf) - filt(xf) ** 2
    return np.where(mask, (cov + 1e-4) / (np.sqrt(np.abs(var * var_f)) + 1e-4), 0.0)


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


def _exact_qy(a: np.ndarray, b: np.ndarray, f: np.ndarray) -> float:
    """metricYang.m (yuliu316316/MFIF, evaluation/objective_metrics) in exact arithmetic.

    An independent evaluation of the reference formulas: the 7x7 Gaussian window (sigma
    1.5) as integer weights whose sum is the exact normaliser, the window sums of x, x^2
    and xy of the integer gray levels in Python integers, so every local variance and
    covariance is exact (0 in a constant window) before one correctly rounded division;
    then SSIM with C1 = C2 = 2e-16, Yu Liu's guard (both variances 0: lambda = 0.5), the
    0.75 threshold and the mean, as the reference writes them.
    """
    x = np.arange(7) - 3.0
    g = np.exp(-x * x / (2 * 1.5**2))
    w1 = [int(round(v)) for v in g / g.sum() * 2**40]
    total = sum(w1) ** 2

    def window_sum(z):
        h, w = z.shape
        rows = sum(w1[k] * z[k : h - 6 + k, :] for k in range(7))
        return sum(w1[k] * rows[:, k : w - 6 + k] for k in range(7))

    def exact(num, den):
        return np.vectorize(lambda v: v / den, otypes=[np.float64])(num)

    def ssim(p, q):
        sp, sq = window_sum(p), window_sum(q)
        mp, mq = exact(sp, total), exact(sq, total)
        vp = exact(total * window_sum(p * p) - sp * sp, total * total)
        vq = exact(total * window_sum(q * q) - sq * sq, total * total)
        cpq = exact(total * window_sum(p * q) - sp * sq, total * total)
        c = 2e-16
        return ((2 * mp * mq + c) * (2 * cpq + c)) / ((mp * mp + mq * mq + c) * (vp + vq + c)), vp, vq

    a, b, f = (np.asarray(v, dtype=np.int64).astype(object) for v in (a, b, f))
    s_ab, va, vb = ssim(a, b)
    s_af, s_bf = ssim(a, f)[0], ssim(b, f)[0]
    guard = (va + vb == 0) * 0.5
    lam = (va + guard) / (va + vb + 2 * guard)
    similar = s_ab >= 0.75
    q = (lam * s_af + (1 - lam) * s_bf) * similar + np.maximum(s_af, s_bf) * ~similar
    return float(np.mean(q))


def _large_constant_areas(seed: int) -> np.ndarray:
    """A 60x70 8-bit image, mostly constant: levels 255, 37, 128 and 0, one noisy strip."""
    rng = np.random.default_rng(seed)
    x = np.full((60, 70), 255, dtype=np.uint8)
    x[:, :20] = 37
    x[30:, 20:45] = 128
    x[:12, 60:] = 0
    x[:, 48:58] = rng.integers(0, 256, (60, 10))
    return x


def test_qy_constant_windows_follow_the_reference_in_exact_arithmetic(triplet):
    """Every case of a constant 7x7 window, against the reference formulas evaluated exactly.

    A and B constant at the same level and at different levels (lambda = 0.5 by the
    reference's guard), one source constant and the other textured (lambda 0 or 1), the
    fused image constant at another level than a constant source (structure term C/C,
    luminance term < 1), black windows (mean 0); then the triplet fixture inside a wide
    constant frame (the frames differ by one level between the sources and the fused
    image). Computed literally in floating point these windows give ratios of round-off.
    """
    a, b, f = (_large_constant_areas(seed) for seed in (1, 2, 3))
    b[5:25, 25:45] = 200
    f[40:, :10] = 36
    assert fm.qy(a, b, f) == pytest.approx(_exact_qy(a, b, f), abs=1e-12)
    framed = [np.pad(x, 30, constant_values=level) for x, level in zip(triplet, (240, 240, 241))]
    assert fm.qy(*framed) == pytest.approx(_exact_qy(*framed), abs=1e-12)


def test_qy_of_constant_images_is_the_luminance_term():
    """With all three images constant, every window is constant: SSIM(X, Y) is its
    luminance term (2xy + C) / (x^2 + y^2 + C) and lambda is 0.5 (Yang et al.'s rule on
    the exact moments)."""
    def lum(x, y):
        return (2 * x * y + 2e-16) / (x * x + y * y + 2e-16)

    def const(level):
        return np.full((20, 24), level, dtype=np.uint8)

    # A, B similar (SSIM(A, B) >= 0.75): the average of the two
    assert fm.qy(const(100), const(120), const(110)) == pytest.approx(
        0.5 * lum(100, 110) + 0.5 * lum(120, 110), abs=1e-15)
    # A, B dissimilar: the larger of the two
    assert lum(20, 200) < 0.75
    assert fm.qy(const(20), const(200), const(190)) == pytest.approx(lum(200, 190), abs=1e-15)
    assert fm.qy(const(0), const(0), const(0)) == 1.0


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


def _lines(shift: int, low: int, high: int) -> np.ndarray:
    """48x64 image of vertical one-pixel lines every 8 columns, starting at ``shift``."""
    img = np.full((48, 64), low, dtype=np.uint8)
    img[:, (np.arange(64) % 8) == shift] = high
    return img


def test_qp_correlation_keeps_negative_values():
    """Q_X is the mean of max(res1, res2, res3) over the three masked correlation maps,
    negative values kept (metricZhao.m's ``max(buffer, [], 3)``), not floored at 0."""
    rng = np.random.default_rng(7)
    f1 = 1.0 + ndimage.gaussian_filter(rng.random((40, 44)), 2.0) * 10
    f2 = 2.0 + 0.5 * f1 + 0.1 * ndimage.gaussian_filter(rng.random((40, 44)), 2.0)
    f_max = np.maximum(f1, f2)
    ff = -f1  # the fused features invert the sources' everywhere
    on = np.ones(ff.shape, dtype=bool)
    window = np.outer(_gauss(11, 1.5), _gauss(11, 1.5))
    res = np.stack([_reference_correlation(x, ff, on, window) for x in (f1, f2, f_max)])
    assert np.all(res < 0)  # all three negative at every pixel
    assert pc_correlation(f1, f2, f_max, ff, on, on, on) == pytest.approx(res.max(axis=0).mean(), rel=1e-9)


def test_qp_is_negative_when_fused_features_move_between_the_sources():
    """A fused image whose lines lie halfway between the sources' lines inverts their local
    phase-congruency structure: on A's and B's features all three correlations of PC are
    negative, Q_PC < 0 and so QP < 0 (a zero floor gave Q_PC ~ 8e-6 and QP > 0). QP equals
    an independent evaluation of metricZhao.m on the same phase-congruency maps."""
    a, b, f = _lines(0, 60, 200), _lines(0, 90, 170), _lines(4, 60, 200)
    maps = [phase_congruency(x.astype(np.float64)) for x in (a, b, f)]
    take1 = maps[0][0] > maps[1][0]
    mask1, mask2 = maps[0][0] > 0.1, maps[1][0] > 0.1
    mask3 = np.where(take1, maps[0][0], maps[1][0]) > 0.1
    window = np.outer(_gauss(11, 1.5), _gauss(11, 1.5))
    q, negative = 1.0, []
    for k in range(3):  # PC, M, m
        x1, x2, xf = maps[0][k], maps[1][k], maps[2][k]
        res = np.stack([
            _reference_correlation(x, xf, m, window)
            for x, m in ((x1, mask1), (x2, mask2), (np.where(take1, x1, x2), mask3))
        ])
        negative.append(np.all(res < 0, axis=0).sum())
        q *= res.max(axis=0).sum() / mask3.sum()
    assert negative[0] > 0.9 * mask3.sum()  # PC: all three negative on nearly every feature pixel
    assert q < 0
    assert fm.qp(a, b, f) == pytest.approx(q, rel=1e-9)
    assert fm.qp(a, b, a) > 0.99


def test_qp_keeps_the_sources_phase_congruency_by_content(monkeypatch):
    from focusfuse.metrics import phase_congruency as pcm

    a, b = _lines(0, 60, 200), _lines(0, 90, 170)
    fused = [_lines(k, 60, 200) for k in (1, 2, 4)]
    fresh = []
    for f in fused:  # each image computed anew
        pcm._kept.clear()
        fresh.append(fm.qp(a, b, f))
    computed = []
    real = pcm.phase_congruency
    monkeypatch.setattr(pcm, "phase_congruency", lambda x: computed.append(1) or real(x))
    pcm._kept.clear()
    assert [fm.qp(a, b, f) for f in fused] == fresh  # the same values, bit for bit
    assert len(computed) == 2 + len(fused)  # the sources once
    b[0, 0] += 1  # new pixels in the same array: computed again
    fm.qp(a, b, fused[0])
    assert len(computed) == 2 + len(fused) + 1
    assert all(not m.flags.writeable for maps in pcm._kept.values() for m in maps)
    more = [_lines(k, 50 + k, 210) for k in range(5)]  # 2 sources + 5 outputs: one too many
    for f in more:
        fm.qp(a, b, f)
    assert len(pcm._kept) == pcm._KEEP
    computed.clear()
    fm.qp(more[0], a, b)  # more[0], the oldest output, was left out; a and b were kept
    assert len(computed) == 1
    monkeypatch.setattr(pcm, "_KEEP_BYTES", a.size * 24 * 2)  # room for two images' maps
    pcm._kept.clear()
    fm.qp(a, b, fused[0])
    assert len(pcm._kept) == 2  # the oldest left to make room
    computed.clear()
    fm.qp(a, a, a)
    assert len(computed) == 1  # a, the oldest, had gone
    pcm._kept.clear()


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
