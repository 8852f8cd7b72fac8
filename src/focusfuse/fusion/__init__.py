"""``fuse(images, *, method=...)``: every fusion method behind one function."""

from __future__ import annotations

import functools
import sys
import warnings
from pathlib import Path
from typing import Sequence

import numpy as np

from focusfuse.fusion.result import DecisionMaps, FusionResult

__all__ = ["METHODS", "DecisionMaps", "FusionResult", "check_images", "check_options", "fuse"]

#: every method ``fuse`` knows; see each module for the paper it follows
METHODS = ("cnn", "cnn-dtcwt", "dtcwt", "dwt", "laplacian")


def _outside_stacklevel() -> int:
    """The ``stacklevel`` of the first caller outside focusfuse, for a warning issued by the
    function that calls this: the warning then names the user's line, however deep inside
    focusfuse it was raised."""
    frame, level = sys._getframe(1), 1  # 1: the function that warns
    while frame is not None and frame.f_globals.get("__name__", "").startswith("focusfuse."):
        frame, level = frame.f_back, level + 1
    return level


def check_images(images: Sequence[np.ndarray], *, any_channels: bool = False) -> list[np.ndarray]:
    """The boundary check shared by all methods: two or more float arrays of one shape.

    Arrays are (H, W) gray or (H, W, 3) colour (a 4th channel, alpha, is left out of the
    scoring and blended like the others); ``any_channels`` allows (H, W, C) with any C from
    1 to 4 (the multiscale methods fuse each channel on its own). NaN or infinity is an
    error, values outside [0, 1] a warning (naming the line that called into focusfuse).
    """
    if isinstance(images, np.ndarray) or not isinstance(images, Sequence):
        raise TypeError(f"images must be a list of arrays, one per source; got "
                        f"{type(images).__name__}; pass [image_a, image_b]")
    images = [np.asarray(im) for im in images]
    if len(images) < 2:
        raise ValueError(f"fusion needs at least two images; got {len(images)}")
    for i, im in enumerate(images):
        if im.dtype == bool or not np.issubdtype(im.dtype, np.floating):
            raise TypeError(
                f"images[{i}] has dtype {im.dtype}; pass float arrays in [0, 1] "
                "(focusfuse.read_image returns them, or divide by 255 or 65535)"
            )
        if im.ndim not in (2, 3) or (im.ndim == 3 and not (
                1 <= im.shape[2] <= 4 if any_channels else im.shape[2] in (3, 4))):
            allowed = "(H, W, C) with C <= 4" if any_channels else "(H, W, 3) colour"
            raise ValueError(f"images[{i}] must be (H, W) gray or {allowed}; got shape {im.shape}")
        if min(im.shape[:2]) < 1:
            raise ValueError(f"images[{i}] must not be empty; got shape {im.shape}")
    first = images[0].shape
    for i, im in enumerate(images[1:], 1):
        if im.shape != first:
            kind = lambda s: "gray" if len(s) == 2 else "colour"  # noqa: E731
            if kind(im.shape) != kind(first):
                raise ValueError(
                    f"images[0] is {kind(first)} {first} but images[{i}] is {kind(im.shape)} "
                    f"{im.shape}; convert them all to gray or all to colour first"
                )
            raise ValueError(
                f"images must have the same shape; got {first} and {im.shape} (images[{i}]); "
                "align or crop them first"
            )
    for i, im in enumerate(images):
        lo, hi = float(np.min(im)), float(np.max(im))
        if not (np.isfinite(lo) and np.isfinite(hi)):
            raise ValueError(f"images[{i}] contains NaN or infinity; fill or drop those pixels")
        if lo < -1e-6 or hi > 1 + 1e-6:
            warnings.warn(f"images[{i}] has values outside [0, 1] (min {lo:.3g}, max {hi:.3g}); "
                          "the fused image is clipped to [0, 1]", stacklevel=_outside_stacklevel())
    return images


def _shared_model(weights: str | Path | None):
    """The model for ``weights``, loaded once per file version and kept for later calls (a
    repeated ``fuse(..., weights=...)`` neither reloads it nor recomputes its spectral form)."""
    from focusfuse.models import SHIPPED, default_weights_path

    if weights is None or (isinstance(weights, str) and weights in SHIPPED):
        path = default_weights_path(weights or "paper")
    else:
        path = Path(weights)
    try:
        stamp = path.stat().st_mtime_ns
    except OSError:
        stamp = None  # load_weights says what is wrong
    return _load_cached(str(path.resolve()) if stamp is not None else str(path), stamp)


@functools.lru_cache(maxsize=4)
def _load_cached(path: str, stamp: int | None):
    from focusfuse.models import load_weights

    return load_weights(path)


def check_options(*, method: str, min_region: float = 0.01, guided_radius: int = 8,
                  guided_eps: float = 0.1, levels: int | None = None, consistency: int = 3) -> None:
    """Check the settings of :func:`fuse` before any work is done (ValueError naming the fix)."""
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    if not 0.0 <= min_region < 1.0:
        raise ValueError(f"min_region must be in [0, 1) (a fraction of the image; 0 turns the "
                         f"step off); got {min_region}")
    if isinstance(guided_radius, bool) or not isinstance(guided_radius, int) or guided_radius < 0:
        raise ValueError(f"guided_radius must be an integer >= 0; got {guided_radius!r}")
    if not guided_eps > 0:
        raise ValueError(f"guided_eps must be > 0; got {guided_eps!r}")
    if levels is not None and (not isinstance(levels, int) or levels < 1):
        raise ValueError(f"levels must be an integer >= 1; got {levels!r}")
    check_consistency(consistency)


def check_consistency(consistency) -> int:
    """The multiscale methods' majority-check window, as an int (ValueError naming the fix).

    It lives here rather than with the transforms so that checking a CNN fusion's options
    does not import them (SciPy's ndimage alone takes 0.3 s to import).
    """
    if (isinstance(consistency, bool) or not isinstance(consistency, (int, np.integer))
            or consistency < 1 or consistency % 2 == 0):
        raise ValueError(
            f"consistency must be an odd window size >= 1 (1 turns the check off); got "
            f"{consistency!r}; use 3 as in Li et al. 1995"
        )
    return int(consistency)


def fuse(images: Sequence[np.ndarray], *, method: str = "cnn", weights: str | Path | None = None,
         model=None, min_region: float = 0.01, guided_radius: int = 8, guided_eps: float = 0.1,
         precision: str = "auto", device: str = "auto", compile: bool = False,
         levels: int | None = None,
         wavelet: str | None = None,
         consistency: int = 3) -> FusionResult:
    """Fuse two or more sources of one scene focused at different depths.

    ``images``: float arrays in [0, 1], all (H, W) or all (H, W, C). Methods:

    - ``"cnn"``: Liu et al. 2017, with the shipped model, or ``weights`` (a focusfuse
      safetensors file or the authors' ``.mat``), or an already loaded ``model``;
      ``min_region`` is the small-region removal area as a fraction of the image (0: off),
      ``guided_radius`` / ``guided_eps`` the guided filter's r and ε; ``precision`` is
      "auto", "bf16" or "fp32", ``device`` "auto", "cpu" or "cuda", and ``compile=True``
      runs the convolutions through ``torch.compile`` (slow first call, faster later ones);
    - ``"dwt"``, ``"dtcwt"``, ``"laplacian"``: multiscale transforms with ``levels`` levels
      (None: 5, see :mod:`focusfuse.fusion.multiscale`), low band averaged, high bands by
      windowed maximum absolute value with a majority check over ``consistency`` ×
      ``consistency``; ``wavelet`` is the DWT's (None: CDF 9/7, "bior4.4");
    - ``"cnn-dtcwt"``: the CNN's decision map weighs the DTCWT sub-bands of the sources at
      every level.

    Returns a :class:`FusionResult` with the fused image (float32) and the maps of each
    step (the CNN methods fuse more than two images in series, one step per added image).
    """
    check_options(method=method, min_region=min_region, guided_radius=guided_radius,
                  guided_eps=guided_eps, levels=levels, consistency=consistency)
    # the multiscale functions' own defaults apply to what the caller leaves as None
    options = {"consistency": consistency}
    if levels is not None:
        options["levels"] = levels
    if method in ("dwt", "dtcwt", "laplacian"):
        from focusfuse.fusion import multiscale

        if method == "dwt":  # each checks the images itself
            if wavelet is not None:
                options["wavelet"] = wavelet
            fused = multiscale.fuse_dwt(images, **options)
        elif method == "dtcwt":
            fused = multiscale.fuse_dtcwt(images, **options)
        else:
            fused = multiscale.fuse_laplacian(images, **options)
        return FusionResult(fused, method, [])

    from focusfuse.fusion.cnn import fuse_pair_cnn

    images = check_images(images)
    net = model if model is not None else _shared_model(weights)
    fused = images[0]
    steps = []
    for nxt in images[1:]:
        pixel_fused, maps = fuse_pair_cnn(fused, nxt, net, min_region=min_region,
                                          guided_radius=guided_radius, guided_eps=guided_eps,
                                          precision=precision, device=device,
                                          compile=compile)
        if method == "cnn":
            fused = pixel_fused
        else:  # "cnn-dtcwt": the decision map weighs every sub-band
            from focusfuse.fusion.multiscale import fuse_dtcwt

            weight = np.clip(maps.decision, 0.0, 1.0)
            fused = fuse_dtcwt([fused.astype(np.float32), nxt], decision=weight,
                               **{k: v for k, v in options.items() if k == "levels"})
        steps.append(maps)
    fused = np.asarray(fused, np.float32)
    if any(fused is im for im in images):
        fused = fused.copy()
    return FusionResult(np.clip(fused, 0.0, 1.0, out=fused), method, steps)
