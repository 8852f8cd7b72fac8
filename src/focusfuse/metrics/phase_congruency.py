"""Phase-congruency-based fusion metric QP of Zhao, Laganière and Liu.

J. Zhao, R. Laganière, Z. Liu, "Performance assessment of combinative pixel-level image
fusion based on an absolute feature measurement", Int. J. Innovative Computing,
Information and Control 3(6A), 2007. Phase congruency PC and its maximum and minimum
moments M and m (P. Kovesi, "Phase congruency detects corners and edges", DICTA 2003)
are computed for A, B and F. For each feature map X in (PC, M, m) the local correlation
coefficient with F's map,

    c(X, F) = (s_XF + C) / (sqrt(|s_X s_F|) + C),   C = 1e-4,

with local statistics from an 11 x 11 Gaussian window (sigma 1.5), is taken over the
pixels where the source's phase congruency exceeds 0.1 (for X = A, B, and the
pointwise maximum of A and B); the pixelwise maximum of the three maps (0 where a map's
mask is off), summed and divided by the number of pixels of the "maximum" mask, is Q_X,
and QP = Q_PC * Q_M * Q_m. The maximum keeps negative values: where all three masks
are on and all three correlations are negative, it is negative, as ``max(buffer, [], 3)``
in ``correlation_coeffcient`` of ``metricZhao.m`` (zhengliu6699/imageFusionMetrics; the
README of the survey's copy, yuliu316316/MFIF evaluation/objective_metrics, lists it
among the files it did not correct). So Q_X, and QP, can be negative for a fused image
whose features contradict the sources'.

Phase congruency follows Z. Liu's ``myphasecong3.m`` (Kovesi's ``phasecong3`` of 2005
with his defaults): 4 scales, 6 orientations, shortest wavelength 3, scale factor 2.1,
sigma_f / f0 = 0.55, angular spread ratio 1.2, noise threshold k = 2 with the 1/1.7
rescaling, frequency-spread sigmoid cut-off 0.5 and gain 10, low-pass filter of radius
0.45 and order 15; convolutions by FFT (periodic borders); the noise threshold of each
orientation uses that orientation's filters. Raw gray 0..255 doubles; the local
statistics use ``filter2`` 'same' (zero padding).
"""

from __future__ import annotations

import functools
import hashlib
import threading
from collections import OrderedDict

import numpy as np
from scipy import fft as sfft

from ._common import check_triplet, correlate_sep

__all__ = ["qp", "phase_congruency"]

_NSCALE = 4
_NORIENT = 6
_MIN_WAVELENGTH = 3.0
_MULT = 2.1
_SIGMA_ON_F = 0.55
_DTHETA_ON_SIGMA = 1.2
_K = 2.0
_CUT_OFF = 0.5
_G = 10.0
_EPS = 1e-4

_FEATURE_THRESHOLD = 0.1
_C = 1e-4


def _centred_range(n: int) -> np.ndarray:
    if n % 2:
        return np.arange(-(n - 1) / 2, (n - 1) / 2 + 1) / (n - 1)
    return np.arange(-n / 2, n / 2) / n


@functools.lru_cache(maxsize=4)
def _filter_bank(shape: tuple[int, int]):
    """Log-Gabor filters and per-orientation noise constants for the image shape.

    Returns (filters, em_n, sum_an2, sum_aiaj): filters has shape
    (norient, nscale, rows, cols); the others have one value per orientation.
    """
    rows, cols = shape
    x, y = np.meshgrid(_centred_range(cols), _centred_range(rows))
    radius = np.sqrt(x * x + y * y)
    radius[rows // 2, cols // 2] = 1.0
    theta = np.arctan2(-y, x)
    radius = np.fft.ifftshift(radius)
    theta = np.fft.ifftshift(theta)
    sintheta, costheta = np.sin(theta), np.cos(theta)

    # Kovesi's low-pass filter (radius 0.45, order 15), built on its own grid.
    lx = (np.arange(1, cols + 1) - (cols // 2 + 1)) / cols
    ly = (np.arange(1, rows + 1) - (rows // 2 + 1)) / rows
    lxx, lyy = np.meshgrid(lx, ly)
    lp = np.fft.fftshift(1.0 / (1.0 + (np.sqrt(lxx * lxx + lyy * lyy) / 0.45) ** (2 * 15)))

    log_gabor = []
    for s in range(_NSCALE):
        fo = 1.0 / (_MIN_WAVELENGTH * _MULT**s)
        lg = np.exp(-(np.log(radius / fo) ** 2) / (2.0 * np.log(_SIGMA_ON_F) ** 2)) * lp
        lg[0, 0] = 0.0
        log_gabor.append(lg)

    theta_sigma = np.pi / _NORIENT / _DTHETA_ON_SIGMA
    filters = np.empty((_NORIENT, _NSCALE, rows, cols))
    em_n = np.empty(_NORIENT)
    sum_an2 = np.empty(_NORIENT)
    sum_aiaj = np.empty(_NORIENT)
    # Index map k -> -k (mod size), to take the Hermitian part of a spectrum.
    neg_r = (-np.arange(rows)) % rows
    neg_c = (-np.arange(cols)) % cols
    for o in range(_NORIENT):
        angl = o * np.pi / _NORIENT
        ds = sintheta * np.cos(angl) - costheta * np.sin(angl)
        dc = costheta * np.cos(angl) + sintheta * np.sin(angl)
        dtheta = np.abs(np.arctan2(ds, dc))
        spread = np.exp(-(dtheta**2) / (2.0 * theta_sigma**2))
        herm = []
        for s in range(_NSCALE):
            f = log_gabor[s] * spread
            filters[o, s] = f
            # real(ifft2(f)) * sqrt(N) is the inverse transform of f's Hermitian part
            # h = (f(k) + f(-k)) / 2; by Parseval, sum_x of products of two such real
            # filters is sum_k of the products of their Hermitian parts.
            herm.append(0.5 * (f + f[neg_r][:, neg_c]))
        em_n[o] = np.sum(filters[o, 0] ** 2)
        sum_an2[o] = sum(np.sum(h * h) for h in herm)
        sum_aiaj[o] = sum(
            np.sum(herm[i] * herm[j]) for i in range(_NSCALE - 1) for j in range(i + 1, _NSCALE)
        )
    filters.setflags(write=False)
    return filters, em_n, sum_an2, sum_aiaj


def phase_congruency(
    image: np.ndarray, *, precision: str = "single"
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Phase congruency and its maximum and minimum moments (Kovesi's PC_2 measure).

    ``image`` is a 2-D float array. Returns (pc, M, m) as float64 arrays the shape of
    ``image``, with the parameters of ``myphasecong3.m`` listed in the module notes.
    ``precision="single"`` (the default) runs the 24 filter convolutions in complex64,
    about twice as fast as ``"double"``; the maps then differ by about 2e-6 and QP by
    about 1e-8.
    """
    if precision not in ("single", "double"):
        raise ValueError(f"precision must be 'single' or 'double'; got {precision!r}")
    x = np.asarray(image, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"image must be a 2-D gray array; got shape {x.shape}; convert it to gray first")
    real = np.float32 if precision == "single" else np.float64
    cplx = np.complex64 if precision == "single" else np.complex128
    rows, cols = x.shape
    filters, em_n, sum_an2, sum_aiaj = _filter_bank((rows, cols))
    filters = filters.astype(real, copy=False)
    spectrum = sfft.fft2(x).astype(cplx, copy=False)

    total_energy = np.zeros(x.shape, real)
    total_sum_an = np.zeros(x.shape, real)
    covx2 = np.zeros(x.shape, real)
    covy2 = np.zeros(x.shape, real)
    covxy = np.zeros(x.shape, real)
    half = x.size // 2

    for o in range(_NORIENT):
        angl = o * np.pi / _NORIENT
        # Even (real part) and odd (imaginary part) responses at the 4 scales.
        eo = sfft.ifft2(spectrum[None] * filters[o], axes=(-2, -1), overwrite_x=True)
        amp = np.abs(eo)
        sum_an = amp.sum(axis=0)
        max_an = amp.max(axis=0)
        sum_eo = eo.sum(axis=0)
        x_energy = np.abs(sum_eo) + _EPS
        mean_e = sum_eo.real / x_energy
        mean_o = sum_eo.imag / x_energy
        # Energy = sum_s [E mean_e + O mean_o - |E mean_o - O mean_e|]; the first two
        # terms sum to sum_E mean_e + sum_O mean_o.
        dev = eo.real * mean_o
        dev -= eo.imag * mean_e
        np.abs(dev, out=dev)
        energy = sum_eo.real * mean_e + sum_eo.imag * mean_o - dev.sum(axis=0)

        # Noise compensation from the median squared response at the smallest scale
        # (MATLAB's median of an even count averages the two middle values).
        if x.size % 2:
            median_e2n = float(np.partition(amp[0].ravel(), half)[half]) ** 2
        else:
            mid = np.partition(amp[0].ravel(), [half - 1, half])
            median_e2n = 0.5 * (float(mid[half - 1]) ** 2 + float(mid[half]) ** 2)
        noise_power = (-median_e2n / np.log(0.5)) / em_n[o]
        est_noise_energy2 = 2.0 * noise_power * sum_an2[o] + 4.0 * noise_power * sum_aiaj[o]
        tau = np.sqrt(est_noise_energy2 / 2.0)
        est_noise_energy = tau * np.sqrt(np.pi / 2.0)
        est_noise_sigma = np.sqrt((2.0 - np.pi / 2.0) * tau * tau)
        threshold = (est_noise_energy + _K * est_noise_sigma) / 1.7
        energy -= real(threshold)
        np.maximum(energy, 0, out=energy)

        width = sum_an / (max_an + _EPS) / _NSCALE
        weighted = energy / (1 + np.exp((_CUT_OFF - width) * _G))
        total_sum_an += sum_an
        total_energy += weighted

        with np.errstate(divide="ignore", invalid="ignore"):
            pc_sq = weighted / sum_an
        pc_sq *= pc_sq
        c, s = np.cos(angl), np.sin(angl)
        covx2 += pc_sq * real(c * c)
        covy2 += pc_sq * real(s * s)
        covxy += pc_sq * real(c * s)

    pc = total_energy.astype(np.float64) / (total_sum_an.astype(np.float64) + _EPS)
    covx2 = covx2.astype(np.float64) / (_NORIENT / 2.0)
    covy2 = covy2.astype(np.float64) / (_NORIENT / 2.0)
    covxy = covxy.astype(np.float64) / _NORIENT
    denom = np.sqrt(covxy * covxy + (covx2 - covy2) ** 2) + _EPS
    big = (covy2 + covx2 + denom) / 2.0
    small = (covy2 + covx2 - denom) / 2.0
    return pc, big, small


def _gauss_1d(size: int, sigma: float) -> np.ndarray:
    x = np.arange(size) - (size - 1) / 2.0
    g = np.exp(-(x * x) / (2.0 * sigma * sigma))
    return g / g.sum()


_WINDOW = _gauss_1d(11, 1.5)


def _correlation(f1, f2, f_max, ff, mask1, mask2, mask3) -> float:
    """The reference's ``correlation_coeffcient``: one feature's Q_X."""
    filt = lambda z: correlate_sep(z, _WINDOW)  # noqa: E731
    mu_f = filt(ff)
    var_f = filt(ff * ff) - mu_f * mu_f
    best = None
    for feat, mask in ((f1, mask1), (f2, mask2), (f_max, mask3)):
        g = feat * mask
        mu = filt(g)
        var = filt(g * g) - mu * mu
        cov = filt(g * ff) - mu * mu_f
        res = np.zeros_like(ff)
        res[mask] = (cov[mask] + _C) / (np.sqrt(np.abs(var[mask] * var_f[mask])) + _C)
        # max(res1, res2, res3) as the reference takes it: negative correlations are kept
        # (no floor at 0; each map is 0 only off its own mask).
        best = res if best is None else np.maximum(best, res)
    return float(best.sum() / mask3.sum())


#: images whose phase congruency is kept, by content: the two sources of a pair and the
#: fused images scored against them, so that a caller scoring several methods' outputs
#: for one pair in a row (as tests/test_metrics_reference.py does) computes each source's
#: maps, two thirds of QP's work, once; at most :data:`_KEEP_BYTES` of maps (24 bytes a
#: pixel: six 520×520 images take 39 MB, and the maps of an image of 7 megapixels or
#: more are not kept). ``focusfuse bench`` scores a method over all pairs before the
#: next method, so it gains nothing from this.
_KEEP = 6
_KEEP_BYTES = 160 * 2**20
_kept: OrderedDict = OrderedDict()
_kept_lock = threading.Lock()


def _kept_phase_congruency(gray: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`phase_congruency` of ``gray``, from the last :data:`_KEEP` images' if its
    pixels are one of theirs (read-only arrays)."""
    gray = np.ascontiguousarray(gray, np.float64)
    if 3 * gray.nbytes > _KEEP_BYTES:  # its three float64 maps could not be kept
        return phase_congruency(gray)
    key = (gray.shape, hashlib.sha1(gray).digest())
    with _kept_lock:
        maps = _kept.get(key)
        if maps is not None:
            _kept.move_to_end(key)
            return maps
    maps = phase_congruency(gray)
    for m in maps:
        m.setflags(write=False)
    size = lambda entry: sum(m.nbytes for m in entry)  # noqa: E731
    if size(maps) <= _KEEP_BYTES:
        with _kept_lock:
            _kept[key] = maps
            while len(_kept) > _KEEP or sum(size(e) for e in _kept.values()) > _KEEP_BYTES:
                _kept.popitem(last=False)
    return maps


def _qp_gray(ga: np.ndarray, gb: np.ndarray, gf: np.ndarray) -> float:
    pc1, big1, small1 = _kept_phase_congruency(ga)
    pc2, big2, small2 = _kept_phase_congruency(gb)
    pcf, bigf, smallf = _kept_phase_congruency(gf)
    take1 = pc1 > pc2
    mask1 = pc1 > _FEATURE_THRESHOLD
    mask2 = pc2 > _FEATURE_THRESHOLD
    pc_max = np.where(take1, pc1, pc2)
    mask3 = pc_max > _FEATURE_THRESHOLD
    if not mask3.any():
        return float("nan")
    q = 1.0
    for f1, f2, ff in ((pc1, pc2, pcf), (big1, big2, bigf), (small1, small2, smallf)):
        q *= _correlation(f1, f2, np.where(take1, f1, f2), ff, mask1, mask2, mask3)
    return q


def qp(a, b, fused) -> float:
    """Phase-congruency-based fusion metric Q_P of Zhao et al. (2007); higher is better, at most 1.

    ``a`` and ``b`` are the sources, ``fused`` the fused image: (H, W) or (H, W, 3),
    uint8, uint16 or float in [0, 1]. Nearly symmetric in ``a`` and ``b``: where
    their phase congruency ties, the reference takes B's moments as the maximum.
    Returns NaN when no pixel of either source has phase congruency above 0.1. It is
    negative when the fused image's features anti-correlate with the sources' (see the
    module notes).
    """
    return _qp_gray(*check_triplet(a, b, fused))
