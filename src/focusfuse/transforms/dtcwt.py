"""The 2-D dual-tree complex wavelet transform (DTCWT), in NumPy.

Follows N. G. Kingsbury, "Complex wavelets for shift invariant analysis and filtering of
signals", Applied and Computational Harmonic Analysis 10(3), 2001, and the four-tree
formulation of I. W. Selesnick, R. G. Baraniuk, N. G. Kingsbury, "The dual-tree complex
wavelet transform", IEEE Signal Processing Magazine 22(6), 2005:

- two real trees per axis, a and b, so four real separable 2-D wavelet transforms
  (row tree x column tree: aa, ab, ba, bb);
- level 1 uses a biorthogonal filter pair, with tree b taking the odd samples where tree a
  takes the even ones (a one-sample offset);
- levels 2 and up use orthonormal quarter-sample-shift (Q-shift) filters, tree b's lowpass
  being the time reverse of tree a's, which keeps tree b half a sample from tree a at every
  level, so that tree b's wavelets are close to Hilbert transforms of tree a's;
- the three detail sub-bands of the four trees (LH, HL, HH) are combined, per sub-band, into
  two complex sub-bands, (aa - bb) + i(ab + ba) and (aa + bb) + i(ba - ab), each divided by
  sqrt(2) (Selesnick et al., eq. 24-25): six complex, oriented sub-bands per level.

Filter coefficients (facts from Kingsbury's published designs; the values are those listed
in MATLAB's Wavelet Toolbox ``qbiorthfilt`` and ``qorthwavf``):

- level 1 ``biort``: ``"legall"`` (LeGall 5/3), ``"near_sym_a"`` (5/7), ``"near_sym_b"``
  (13/19), ``"antonini"`` (9/7);
- levels >= 2 ``qshift``: ``"qshift_06"`` (10 taps, 6 non-zero; the filters of Kingsbury,
  ICIP 2000), ``"qshift_a"`` (10), ``"qshift_b"`` (14), ``"qshift_c"`` (16), ``"qshift_d"`` (18).

The defaults, ``legall`` + ``qshift_06``, are those of Yu Liu's MST fusion toolbox
(``dtcwt_fuse.m``: ``dtwavexfm2(I, N, 'legall', 'qshift_06')``; Y. Liu, S. Liu, Z. Wang,
Information Fusion 24, 2015), which made the published ``dtcwt`` results of the Liu et al.
2020 survey. All filters are scaled here so that every lowpass filter sums to sqrt(2)
(Kingsbury's level-1 filters sum to 1; the scale only changes the size of the coefficients).

Conventions of this implementation (ours): the boundary is handled by padding the image
symmetrically (half-sample symmetric, edge pixel repeated) by at least ``margin`` pixels per
side up to a multiple of 2**levels, then transforming periodically, which gives perfect
reconstruction for any size; :class:`Pyramid` records the padding so that
:func:`dtcwt_inverse` crops back. Level ``j`` (1 = finest) has complex highpasses of shape
(Hp / 2**j, Wp / 2**j, 6) for a padded size (Hp, Wp); the real lowpass interleaves the four
trees' lowpass images (row tree a on even rows, b on odd rows; likewise columns) into one
(2 Hp / 2**L, 2 Wp / 2**L) image, as Kingsbury's toolbox does. The six sub-bands are ordered
``[LH+, HH+, HL+, LH-, HH-, HL-]``, where LH is lowpass down the columns and highpass along
the rows (near-vertical edges: waves about 15 degrees either side of the x axis, index 0
and 3), HL the transpose (near-horizontal edges, index 2 and 5) and HH the diagonals
(index 1 and 4).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy.ndimage import correlate1d

from focusfuse.checks import check_int

__all__ = ["BIORT_FILTERS", "QSHIFT_FILTERS", "Pyramid", "dtcwt_forward", "dtcwt_inverse"]

_SQRT2 = np.sqrt(2.0)

# Level-1 analysis filters (lowpass, highpass) as published, each summing to 1 (lowpass) or
# 0 (highpass). The synthesis filters follow from them (MATLAB qbiorthfilt):
# g0[m] = (-1)**(m + 1) * h1[m], g1[n] = (-1)**n * h0[n].
_BIORT_PUBLISHED = {
    "legall": (
        [-0.125, 0.25, 0.75, 0.25, -0.125],
        [-0.25, 0.5, -0.25],
    ),
    "near_sym_a": (
        [-0.05, 0.25, 0.6, 0.25, -0.05],
        [0.010714285714286, -0.053571428571429, -0.260714285714286, 0.607142857142857,
         -0.260714285714286, -0.053571428571429, 0.010714285714286],
    ),
    "near_sym_b": (
        [-0.0017578125, 0.0, 0.022265625, -0.046875, -0.0482421875, 0.296875, 0.55546875,
         0.296875, -0.0482421875, -0.046875, 0.022265625, 0.0, -0.0017578125],
        [-0.000070626395089, 0.0, 0.001341901506696, -0.001883370535714, -0.007156808035714,
         0.023856026785714, 0.055643136160714, -0.051688058035714, -0.299757603236607,
         0.559430803571429, -0.299757603236607, -0.051688058035714, 0.055643136160714,
         0.023856026785714, -0.007156808035714, -0.001883370535714, 0.001341901506696, 0.0,
         -0.000070626395089],
    ),
    "antonini": (
        [0.026748757410810, -0.016864118442875, -0.078223266528991, 0.266864118442873,
         0.602949018236359, 0.266864118442877, -0.078223266528988, -0.016864118442875,
         0.026748757410810],
        [0.045635881557125, -0.028771763114249, -0.295635881557128, 0.557543526228502,
         -0.295635881557123, -0.028771763114253, 0.045635881557126],
    ),
}

# Tree-a lowpass Q-shift filters as published (orthonormal, sum sqrt(2)). Used here as
# correlation kernels, y[n] = sum_k h[k] x[2n + k - c]; tree b uses the reversed filter.
_QSHIFT_PUBLISHED = {
    "qshift_06": [0.035163836571495, 0.0, -0.088329424451073, 0.233890320607236,
                  0.760272369066126, 0.587518297723560, 0.0, -0.114301837144249, 0.0, 0.0],
    "qshift_a": [0.051130405283832, -0.013975370246889, -0.109836051665971, 0.263839561058938,
                 0.766628467793037, 0.563655710127052, 0.000873622695217, -0.100231219507476,
                 -0.001689681272528, -0.006181881892116],
    "qshift_b": [0.003253142763653, -0.003883211999158, 0.034660346844853, -0.038872801268828,
                 -0.117203887699115, 0.275295384668882, 0.756145643892522, 0.568810420712123,
                 0.011866092033797, -0.106711804686665, 0.023825384794920, 0.017025223881554,
                 -0.005439475937274, -0.004556895628475],
    "qshift_c": [-0.004761611938456, -0.000446022789262, -0.000071441973280, 0.034914612306842,
                 -0.037273895799898, -0.115911457427441, 0.276368643133032, 0.756393765199037,
                 0.567134484100133, 0.014637405964473, -0.112558884257522, 0.022289263266923,
                 0.018498682724156, -0.007202677878258, -0.000227652205898, 0.002430349945149],
    "qshift_d": [-0.002284127440271, 0.001209894163073, -0.011834794515431, 0.001283456999344,
                 0.044365221606617, -0.053276108803047, -0.113305886362143, 0.280902863222186,
                 0.752816038087856, 0.565808067396459, 0.024550152433667, -0.120188544710795,
                 0.018156493945546, 0.031526377122085, -0.006628794612430, -0.002576174306601,
                 0.001277558653807, 0.002411869456666],
}


class _Biort(NamedTuple):
    h0: np.ndarray  # analysis lowpass, centred on even samples
    h1: np.ndarray  # analysis highpass, centred on odd samples
    g0: np.ndarray  # dual (synthesis) lowpass
    g1: np.ndarray  # dual (synthesis) highpass


class _Qshift(NamedTuple):
    h0a: np.ndarray
    h1a: np.ndarray
    h0b: np.ndarray
    h1b: np.ndarray


def _make_biort(name: str) -> _Biort:
    lo, hi = (np.asarray(f, dtype=np.float64) for f in _BIORT_PUBLISHED[name])
    g0 = np.array([(-1.0) ** (m + 1) * v for m, v in enumerate(hi)])
    g1 = np.array([(-1.0) ** n * v for n, v in enumerate(lo)])
    return _Biort(lo * _SQRT2, hi * _SQRT2, g0 * _SQRT2, g1 * _SQRT2)


def _quadrature_mirror(h0: np.ndarray) -> np.ndarray:
    """Orthonormal highpass partner of an even-length lowpass: h1[k] = (-1)**k h0[L-1-k]."""
    signs = (-1.0) ** np.arange(h0.size)
    return signs * h0[::-1]


def _make_qshift(name: str) -> _Qshift:
    h0a = np.asarray(_QSHIFT_PUBLISHED[name], dtype=np.float64)
    h0b = h0a[::-1].copy()
    return _Qshift(h0a, _quadrature_mirror(h0a), h0b, _quadrature_mirror(h0b))


BIORT_FILTERS = tuple(_BIORT_PUBLISHED)
QSHIFT_FILTERS = tuple(_QSHIFT_PUBLISHED)
_BIORT = {name: _make_biort(name) for name in BIORT_FILTERS}
_QSHIFT = {name: _make_qshift(name) for name in QSHIFT_FILTERS}


class Pyramid(NamedTuple):
    """DTCWT coefficients of one 2-D image.

    ``lowpass``: real (2 Hp / 2**L, 2 Wp / 2**L) array; ``highpasses``: tuple of complex
    (Hp / 2**j, Wp / 2**j, 6) arrays, finest (j = 1) first; ``shape``: the image's (H, W);
    ``pad``: ((top, bottom), (left, right)) symmetric padding that made (Hp, Wp).
    A fusion rule edits the arrays (or builds new ones) and keeps ``shape`` and ``pad``.
    """

    lowpass: np.ndarray
    highpasses: tuple
    shape: tuple
    pad: tuple


# --------------------------------------------------------------------------- 1-D steps
# Analysis along an axis: y[n] = sum_k h[k] x[(2n + phase + k - c) mod N]. Synthesis is the
# exact transpose of the dual analysis, so periodic boundaries make the transform lossless.


def _correlate(x: np.ndarray, h: np.ndarray, centre: int, axis: int) -> np.ndarray:
    """Periodic correlation out[i] = sum_k h[k] x[(i + k - centre) mod N] along ``axis``."""
    out = correlate1d(x, h, axis=axis, mode="wrap")  # centre at len(h) // 2
    shift = h.size // 2 - centre
    return np.roll(out, -shift, axis=axis) if shift else out


def _take(x: np.ndarray, phase: int, axis: int) -> np.ndarray:
    index = [slice(None)] * x.ndim
    index[axis] = slice(phase, None, 2)
    return x[tuple(index)]


def _put(y: np.ndarray, phase: int, axis: int) -> np.ndarray:
    shape = list(y.shape)
    shape[axis] *= 2
    x = np.zeros(shape, dtype=y.dtype)
    index = [slice(None)] * y.ndim
    index[axis] = slice(phase, None, 2)
    x[tuple(index)] = y
    return x


def _analyse(x, h0, c0, h1, c1, phase, axis):
    return (_take(_correlate(x, h0, c0, axis), phase, axis),
            _take(_correlate(x, h1, c1, axis), phase, axis))


def _synthesise(lo, g0, c0, hi, g1, c1, phase, axis):
    # transpose of y = take(correlate(x, g, c)): x = correlate(put(y), reversed g, L-1-c)
    return (_correlate(_put(lo, phase, axis), g0[::-1], g0.size - 1 - c0, axis)
            + _correlate(_put(hi, phase, axis), g1[::-1], g1.size - 1 - c1, axis))


def _biort_centres(f: _Biort) -> tuple[int, int, int, int]:
    # lowpass centred on sample 2n, highpass on 2n + 1 (odd-length symmetric filters)
    return ((f.h0.size - 1) // 2, (f.h1.size - 1) // 2 - 1,
            (f.g0.size - 1) // 2, (f.g1.size - 1) // 2 - 1)


def _level1_forward(x, f: _Biort, axis):
    """Level-1 analysis along ``axis``: {tree: (lowpass, highpass)}, tree b = odd samples."""
    c0, c1, _, _ = _biort_centres(f)
    lo = _correlate(x, f.h0, c0, axis)
    hi = _correlate(x, f.h1, c1, axis)
    return {"a": (_take(lo, 0, axis), _take(hi, 0, axis)),
            "b": (_take(lo, 1, axis), _take(hi, 1, axis))}


def _level1_inverse(parts, f: _Biort, axis):
    _, _, d0, d1 = _biort_centres(f)
    total = 0.0
    for tree, phase in (("a", 0), ("b", 1)):
        lo, hi = parts[tree]
        total = total + _synthesise(lo, f.g0, d0, hi, f.g1, d1, phase, axis)
    return total / 2.0


def _qshift_filters(q: _Qshift, tree: str):
    return (q.h0a, q.h1a) if tree == "a" else (q.h0b, q.h1b)


def _qshift_forward(x, q: _Qshift, tree: str, axis):
    h0, h1 = _qshift_filters(q, tree)
    c = h0.size // 2
    return _analyse(x, h0, c, h1, c, 0, axis)


def _qshift_inverse(lo, hi, q: _Qshift, tree: str, axis):
    h0, h1 = _qshift_filters(q, tree)
    c = h0.size // 2
    return _synthesise(lo, h0, c, hi, h1, c, 0, axis)


# --------------------------------------------------------------------------- 2-D
_TREES = ("aa", "ab", "ba", "bb")  # row tree (axis 0) then column tree (axis 1)


def _to_complex(bands: dict) -> np.ndarray:
    """Four trees' (LH, HL, HH) -> complex (h, w, 6): [LH+, HH+, HL+, LH-, HH-, HL-]."""
    plus, minus = [], []
    for k in ("lh", "hh", "hl"):
        aa, ab, ba, bb = (bands[t][k] for t in _TREES)
        plus.append(((aa - bb) + 1j * (ab + ba)) / _SQRT2)
        minus.append(((aa + bb) + 1j * (ba - ab)) / _SQRT2)
    return np.stack(plus + minus, axis=-1)


def _from_complex(z: np.ndarray) -> dict:
    bands = {t: {} for t in _TREES}
    for i, k in enumerate(("lh", "hh", "hl")):
        p, m = z[..., i], z[..., i + 3]
        # invert the orthogonal sum/difference of _to_complex
        bands["aa"][k] = (p.real + m.real) / _SQRT2
        bands["bb"][k] = (m.real - p.real) / _SQRT2
        bands["ab"][k] = (p.imag - m.imag) / _SQRT2
        bands["ba"][k] = (p.imag + m.imag) / _SQRT2
    return bands


def _split2d(parts_rows: dict, column_step) -> dict:
    """Apply ``column_step`` to each row-tree output; collect LL/LH/HL/HH per tree pair."""
    out = {}
    for rt, (lo_r, hi_r) in parts_rows.items():
        lo_cols = column_step(lo_r)
        hi_cols = column_step(hi_r)
        for ct in ("a", "b"):
            ll, lh = lo_cols[ct]
            hl, hh = hi_cols[ct]
            out[rt + ct] = {"ll": ll, "lh": lh, "hl": hl, "hh": hh}
    return out


def _padding(size: int, levels: int, margin: int) -> tuple[int, int]:
    step = 2**levels
    total = -(-(size + 2 * margin) // step) * step - size
    before = total // 2
    return before, total - before


def _check_name(value, allowed, name):
    if not isinstance(value, str) or value not in allowed:
        raise ValueError(
            f"{name} must be one of {', '.join(repr(a) for a in allowed)}; got {value!r}; "
            f"pick one of those filter names"
        )


def dtcwt_forward(
    image: np.ndarray,
    levels: int = 4,
    *,
    biort: str = "legall",
    qshift: str = "qshift_06",
    margin: int = 8,
) -> Pyramid:
    """Forward 2-D DTCWT of a gray image.

    ``image``: real (H, W) array, any size. ``levels``: number of levels (>= 1).
    ``biort`` / ``qshift``: filter names (see the module docstring). ``margin``: minimum
    symmetric padding per side, in pixels, that keeps the periodic wrap-around away from the
    image (0 pads only up to a multiple of 2**levels).

    Returns a :class:`Pyramid` (lowpass, highpasses finest first, shape, pad), in float64.
    """
    x = np.asarray(image)
    if x.ndim != 2:
        raise ValueError(
            f"image must be a 2-D (H, W) array; got shape {x.shape}; transform colour "
            f"images one channel at a time"
        )
    if not np.issubdtype(x.dtype, np.number) or np.iscomplexobj(x):
        raise TypeError(f"image must be a real numeric array; got dtype {x.dtype}")
    if min(x.shape) < 1:
        raise ValueError(f"image must not be empty; got shape {x.shape}")
    levels = check_int("levels", levels, minimum=1, hint="use e.g. levels=4")
    _check_name(biort, BIORT_FILTERS, "biort")
    _check_name(qshift, QSHIFT_FILTERS, "qshift")
    if isinstance(margin, bool) or not isinstance(margin, (int, np.integer)) or margin < 0:
        raise ValueError(f"margin must be an integer >= 0; got {margin!r}")

    pad = (_padding(x.shape[0], levels, margin), _padding(x.shape[1], levels, margin))
    x = np.pad(x.astype(np.float64), pad, mode="symmetric")
    f, q = _BIORT[biort], _QSHIFT[qshift]

    trees = _split2d(_level1_forward(x, f, 0), lambda y: _level1_forward(y, f, 1))
    highpasses = [_to_complex(trees)]
    for _ in range(1, levels):
        new = {}
        for rt in ("a", "b"):
            for ct in ("a", "b"):
                ll = trees[rt + ct]["ll"]
                lo_r, hi_r = _qshift_forward(ll, q, rt, 0)
                ll2, lh = _qshift_forward(lo_r, q, ct, 1)
                hl, hh = _qshift_forward(hi_r, q, ct, 1)
                new[rt + ct] = {"ll": ll2, "lh": lh, "hl": hl, "hh": hh}
        trees = new
        highpasses.append(_to_complex(trees))

    h, w = trees["aa"]["ll"].shape
    lowpass = np.empty((2 * h, 2 * w))
    for rt, r0 in (("a", 0), ("b", 1)):
        for ct, c0 in (("a", 0), ("b", 1)):
            lowpass[r0::2, c0::2] = trees[rt + ct]["ll"]
    return Pyramid(lowpass, tuple(highpasses), tuple(image.shape), pad)


def dtcwt_inverse(pyramid: Pyramid, *, biort: str = "legall", qshift: str = "qshift_06") -> np.ndarray:
    """Inverse 2-D DTCWT: the (H, W) float64 image of a :class:`Pyramid`.

    Use the same ``biort`` and ``qshift`` as the forward transform. Each of the four trees
    is inverted and the four results averaged (the least-squares inverse when coefficients
    were edited).
    """
    if not isinstance(pyramid, Pyramid):
        raise TypeError(
            f"pyramid must be a Pyramid from dtcwt_forward; got {type(pyramid).__name__}; "
            f"rebuild it with pyramid._replace(...) to edit coefficients"
        )
    _check_name(biort, BIORT_FILTERS, "biort")
    _check_name(qshift, QSHIFT_FILTERS, "qshift")
    lowpass = np.asarray(pyramid.lowpass, dtype=np.float64)
    highpasses = list(pyramid.highpasses)
    if not highpasses:
        raise ValueError("pyramid.highpasses must hold at least one level; got none")
    h, w = highpasses[-1].shape[:2]
    if lowpass.shape != (2 * h, 2 * w):
        raise ValueError(
            f"pyramid.lowpass must have shape {(2 * h, 2 * w)} to match the coarsest "
            f"highpass {highpasses[-1].shape}; got {lowpass.shape}"
        )
    f, q = _BIORT[biort], _QSHIFT[qshift]

    ll = {rt + ct: lowpass[r0::2, c0::2]
          for rt, r0 in (("a", 0), ("b", 1)) for ct, c0 in (("a", 0), ("b", 1))}
    for z in highpasses[:0:-1]:  # coarsest to level 2
        bands = _from_complex(np.asarray(z))
        for rt in ("a", "b"):
            for ct in ("a", "b"):
                t = rt + ct
                if ll[t].shape != bands[t]["lh"].shape:
                    raise ValueError(
                        f"pyramid levels do not fit: lowpass {ll[t].shape} against highpass "
                        f"{bands[t]['lh'].shape}; pass the highpasses dtcwt_forward returned"
                    )
                lo_r = _qshift_inverse(ll[t], bands[t]["lh"], q, ct, 1)
                hi_r = _qshift_inverse(bands[t]["hl"], bands[t]["hh"], q, ct, 1)
                ll[t] = _qshift_inverse(lo_r, hi_r, q, rt, 0)

    bands = _from_complex(np.asarray(highpasses[0]))
    rows = {}
    for rt in ("a", "b"):
        lo_parts = {ct: (ll[rt + ct], bands[rt + ct]["lh"]) for ct in ("a", "b")}
        hi_parts = {ct: (bands[rt + ct]["hl"], bands[rt + ct]["hh"]) for ct in ("a", "b")}
        rows[rt] = (_level1_inverse(lo_parts, f, 1), _level1_inverse(hi_parts, f, 1))
    x = _level1_inverse(rows, f, 0)

    (top, bottom), (left, right) = pyramid.pad
    return x[top:x.shape[0] - bottom, left:x.shape[1] - right]
