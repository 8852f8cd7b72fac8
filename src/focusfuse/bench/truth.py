"""Ground truth for the pair benchmark: a truth set made from sharp images, and scores against it.

Multi-focus pairs with an all-in-focus truth are rendered by
:func:`focusfuse.data.stacks.make_stack` with two frames (depth edges on image edges, disk
blur composited back to front so that a blurred foreground spills over the background,
noise, exposure, hand-held motion; see that module). Here:

- :func:`make_truth_pair`: one scene as ``A`` (focused at depth 0), ``B`` (at depth 1),
  ``truth`` and ``oracle``. By default (``layout="two-plane"``) each of the generator's
  segments is moved to one of the two focus planes, as in a multi-focus pair, where each
  part of the scene is sharp in one source; ``make_stack``'s own depths, spread over the
  whole range, leave most pixels blurred in both sources of a pair (on BSDS500 the oracle
  is then about 24 dB from the truth, against about 31 dB, and what separates methods is
  drowned in blur no pair method can undo). ``oracle`` is the per-pixel
  oracle: each pixel from the source whose blur radius there is smallest (the
  generator knows it, :meth:`~focusfuse.data.stacks.SyntheticStack.blur_radius`), the
  sources of a hand-held pair first brought back into the truth's geometry with their
  known transforms (Lanczos). It is the ceiling of any decision that takes each pixel from
  one source; a soft decision where the truth is mixed may pass it. (It is chosen by
  blur radius, not by the error: where a small far region is covered by the near region's
  spill in the source that focuses on it, the other source can be closer there.)
- :func:`make_truth_set`: a folder per variant of ``NAME-A.png``, ``NAME-B.png``,
  ``NAME-truth.png`` and ``NAME-oracle.png`` from a folder of sharp images, with every
  setting in ``truth.json``; ``focusfuse make-truth`` is its command line.
- :func:`register`: warp an image into the truth's geometry (OpenCV ECC, affine), for the
  hand-held variants, whose sources are not in the truth's geometry.
- :func:`truth_scores`: PSNR and SSIM (scikit-image) of a fused image against the truth on
  the central part, after registration if asked; what ``focusfuse bench`` adds when a pair
  has a truth.
"""

from __future__ import annotations

import inspect
import json
import math
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

__all__ = ["CENTRE", "DEFAULT_VARIANTS", "LAYOUTS", "SETTINGS_FILE", "TRUTH_METRICS",
           "TruthPair", "folder_registers", "make_truth_pair", "make_truth_set",
           "make_truth_stacks", "oracle_image",
           "read_truth_settings", "register", "scene_seed", "truth_scores", "two_plane_depth"]

#: the scores against the truth, in the order of the tables
TRUTH_METRICS = ("PSNR", "SSIM")
#: the part of the image that is scored: the central 80% of each side (the borders hold
#: the generator's reflected blur and, for hand-held pairs, the registration's border)
CENTRE = 0.8
#: the variants ``focusfuse make-truth`` writes unless told otherwise
DEFAULT_VARIANTS = ("clean", "noisy", "handheld")
#: the generation settings beside the pairs of a truth set
SETTINGS_FILE = "truth.json"


# registration and scores ---------------------------------------------------------------

def _gray(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image[..., :3] if image.ndim == 3 else image, dtype=np.float32)
    return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) if image.ndim == 3 else image


def _correlation(a: np.ndarray, b: np.ndarray) -> float:
    a = a - a.mean()
    b = b - b.mean()
    return float((a * b).sum() / (np.sqrt((a * a).sum() * (b * b).sum()) + 1e-12))


def _central(shape, fraction: float) -> tuple[slice, slice]:
    h, w = shape[:2]
    my, mx = int(round(h * (1 - fraction) / 2)), int(round(w * (1 - fraction) / 2))
    return slice(my, h - my), slice(mx, w - mx)


def _check_fraction(name: str, value: float) -> float:
    if not 0 < value <= 1:
        raise ValueError(f"{name} must be in (0, 1], the scored fraction of each side; got {value}")
    return float(value)


def register(image: np.ndarray, reference: np.ndarray, *, max_side: int = 1024,
             centre: float = CENTRE) -> tuple[np.ndarray, dict]:
    """Warp ``image`` into ``reference``'s geometry (affine, OpenCV ECC); ``(warped, info)``.

    The start is a translation found by template matching when the sizes differ (a tool
    that crops). The ECC estimate runs at most ``max_side`` pixels wide, its shift scaled
    back. When the sizes are equal and the identity correlates at least as well on the
    central part as the estimate, the image is kept as it is (no resampling). ``info``:
    ``method`` ("ecc-affine", "identity", or why ECC failed), ``matrix`` (2×3, reference
    to image coordinates), ``correlation`` (gray, on the central part) and ``shift`` (px,
    of the image centre).
    """
    image, reference = np.asarray(image), np.asarray(reference)
    if image.ndim not in (2, 3) or reference.ndim not in (2, 3):
        raise ValueError(f"image and reference must be (H, W) or (H, W, C); got shapes "
                         f"{image.shape} and {reference.shape}")
    centre = _check_fraction("centre", centre)
    image = np.asarray(image[..., :3] if image.ndim == 3 else image, dtype=np.float32)
    gi, gr = _gray(image), _gray(reference)
    f = min(1.0, max_side / max(gr.shape))
    def small(g):
        return cv2.resize(g, None, fx=f, fy=f, interpolation=cv2.INTER_AREA) if f < 1 else g
    si, sr = small(gi), small(gr)
    warp = np.eye(2, 3, dtype=np.float32)
    if si.shape != sr.shape:
        inner = _central(si.shape, 0.6)
        match = cv2.matchTemplate(sr, si[inner], cv2.TM_CCOEFF_NORMED)
        _, _, _, (mx, my) = cv2.minMaxLoc(match)
        warp[:, 2] = (inner[1].start - mx, inner[0].start - my)
    info: dict = {"method": "ecc-affine"}
    try:
        _, warp = cv2.findTransformECC(sr, si, warp, cv2.MOTION_AFFINE,
                                       (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 200,
                                        1e-6), None, 5)
    except cv2.error:
        info["method"] = "ecc failed: template match only" if si.shape != sr.shape else "none"
    warp = warp.astype(np.float64)
    warp[:, 2] /= f
    h, w = reference.shape[:2]
    warped = cv2.warpAffine(image, warp, (w, h), flags=cv2.INTER_LANCZOS4 | cv2.WARP_INVERSE_MAP,
                            borderMode=cv2.BORDER_REFLECT)
    warped = np.clip(warped, 0.0, 1.0)
    box = _central(reference.shape, centre)
    rho = _correlation(_gray(warped)[box], gr[box])
    if image.shape[:2] == reference.shape[:2]:
        rho_identity = _correlation(gi[box], gr[box])
        if rho_identity >= rho:
            warped, warp, rho, info["method"] = image, np.eye(2, 3), rho_identity, "identity"
    info.update(matrix=np.asarray(warp).tolist(), correlation=rho,
                shift=float(np.hypot(*(warp @ [w / 2, h / 2, 1] - [w / 2, h / 2]))))
    return warped, info


def truth_scores(image: np.ndarray, truth: np.ndarray, *, register_first: bool = False,
                 centre: float = CENTRE) -> dict:
    """PSNR (dB) and SSIM of ``image`` against ``truth`` on the central ``centre`` of each
    side, both float in [0, 1] (``data_range`` 1; colour scored as colour, SSIM with
    ``channel_axis=-1``). ``register_first``: warp ``image`` into ``truth``'s geometry first
    (:func:`register`; its ``info`` is returned as ``registration``). An image equal to the
    truth there has PSNR ``inf``.

    Give the image as it is published (8 bit, e.g. ``quantize(fused, 8) / 255``), and the
    truth as it was written.
    """
    from skimage.metrics import structural_similarity

    image, truth = np.asarray(image), np.asarray(truth)
    image = image[..., :3] if image.ndim == 3 and image.shape[2] == 4 else image
    truth = truth[..., :3] if truth.ndim == 3 and truth.shape[2] == 4 else truth
    centre = _check_fraction("centre", centre)
    info = None
    if register_first:
        image, info = register(image, truth, centre=centre)
    if image.ndim != truth.ndim:  # a gray output of a colour truth, or the reverse
        image = _gray(image) if truth.ndim == 2 else np.repeat(image[:, :, None], 3, axis=2)
    if image.shape != truth.shape:
        raise ValueError(f"image and truth must have the same shape; got {image.shape} and "
                         f"{truth.shape}; crop the image to the truth, or score it with "
                         "register_first=True")
    box = _central(truth.shape, centre)
    a, b = truth[box].astype(np.float64), image[box].astype(np.float64)
    mse = float(np.mean((a - b) ** 2))
    psnr = math.inf if mse == 0 else float(10.0 * np.log10(1.0 / mse))
    ssim = float(structural_similarity(a, b, data_range=1.0,
                                       channel_axis=-1 if a.ndim == 3 else None))
    out = {"PSNR": psnr, "SSIM": ssim}
    if info is not None:
        out["registration"] = info
    return out



# the oracle and the pairs --------------------------------------------------------------

def _to_truth_geometry(frame: np.ndarray, transform) -> np.ndarray:
    """A frame brought back into the truth's geometry with its known transform (Lanczos)."""
    if transform.is_identity:
        return frame
    h, w = frame.shape[:2]
    back = cv2.warpAffine(np.ascontiguousarray(frame, dtype=np.float32),
                          np.asarray(transform.matrix, np.float64), (w, h),
                          flags=cv2.INTER_LANCZOS4 | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_REFLECT_101)
    return np.clip(back, 0.0, 1.0)


def oracle_image(stack, frames: Sequence[np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The per-pixel oracle of a synthetic stack, and which frame each pixel came from.

    Each pixel is taken from the frame whose blur radius there is smallest
    (``stack.blur_radius(k)``; ties go to the lower index). ``frames``: the images to take
    pixels from, in the stack's geometry (default ``stack.frames``; give the frames as
    written, e.g. rounded to 8 bit, so that the oracle chooses among what a method sees).
    Frames of a hand-held stack are first warped back into the truth's geometry with their
    known transforms (Lanczos). Returns ``(oracle, index)``, the truth's shape and (H, W).
    """
    frames = list(stack.frames if frames is None else frames)
    if len(frames) != len(stack.frames):
        raise ValueError(f"frames must hold one image per frame of the stack ({len(stack.frames)}); "
                         f"got {len(frames)}")
    if any(np.shape(f) != stack.truth.shape for f in frames):
        raise ValueError(f"frames must have the truth's shape {stack.truth.shape}; got "
                         f"{[np.shape(f) for f in frames]}")
    radii = np.stack([stack.blur_radius(k) for k in range(len(frames))])
    index = radii.argmin(0)
    oracle = np.zeros(stack.truth.shape, np.float32)
    for k, (frame, t) in enumerate(zip(frames, stack.transforms)):
        mask = index == k
        oracle[mask] = _to_truth_geometry(np.asarray(frame, np.float32), t)[mask]
    return oracle, index


@dataclass
class TruthPair:
    """One scene of a truth set: the two sources, the truth, the oracle (all float32 in
    [0, 1] and rounded to 8 bit as written), and the stack they came from."""

    a: np.ndarray
    b: np.ndarray
    truth: np.ndarray
    oracle: np.ndarray
    oracle_index: np.ndarray  # (H, W): 0 where the oracle takes A, 1 where B
    stack: object  # focusfuse.data.stacks.SyntheticStack


def _as_written(image: np.ndarray) -> np.ndarray:
    from focusfuse.io import quantize

    return quantize(image, 8).astype(np.float32) / np.float32(255.0)


#: how the scene's depth is laid out (``make_truth_pair(..., layout=...)``)
LAYOUTS = ("two-plane", "stack")


def two_plane_depth(depth: np.ndarray, segments: np.ndarray) -> np.ndarray:
    """A pair's depth from a stack's: each segment moved to the near plane (depth 0, A's
    focus) or the far one (1, B's) by its mean depth, keeping its slope folded inward
    (``|d − mean|`` from its plane), so that depth edges stay on the segments' borders and
    every pixel is nearly sharp in one source."""
    labels = np.asarray(segments).ravel()
    n = int(labels.max()) + 1
    counts = np.maximum(np.bincount(labels, minlength=n), 1)
    mean = (np.bincount(labels, np.asarray(depth, np.float64).ravel(), minlength=n) / counts)
    mean = mean[np.asarray(segments)]
    offset = np.abs(depth - mean)
    return np.clip(np.where(mean < 0.5, offset, 1.0 - offset), 0.0, 1.0).astype(np.float32)


def make_truth_pair(sharp: np.ndarray, *, seed: int = 0, variant: str = "clean",
                    layout: str = "two-plane", **stack_options) -> TruthPair:
    """A source pair with its truth and oracle, rendered from the all-in-focus ``sharp``.

    ``make_stack(sharp, frames=2, seed=seed, variant=variant, **stack_options)``: A
    focuses at depth 0, B at depth 1. ``layout``: "stack" keeps ``make_stack``'s depth
    (``levels`` depths spread over the whole range, so most pixels are blurred in both
    sources); "two-plane" (the default) moves each of its segments to the near or the far
    plane (:func:`two_plane_depth`), as in a multi-focus pair, where each part of the scene
    is in focus in one source. The images are rounded to 8 bit (as written) and the oracle
    is made from the rounded sources.
    """
    from focusfuse.data.stacks import make_stack

    if "frames" in stack_options or "depth" in stack_options:
        raise TypeError("make_truth_pair makes pairs (frames=2) with the depth of its layout; "
                        "leave frames and depth out")
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {', '.join(LAYOUTS)}; got {layout!r}")
    depth = None
    if layout == "two-plane":  # the stack's segments and depth (max_blur 0: nothing blurred)
        scene = make_stack(sharp, frames=2, seed=seed, variant="clean",
                           **{**stack_options, "max_blur": 0.0})
        depth = two_plane_depth(scene.depth, scene.segments)
    stack = make_stack(sharp, frames=2, seed=seed, variant=variant, depth=depth, **stack_options)
    a, b = (_as_written(f) for f in stack.frames)
    truth = _as_written(stack.truth)
    oracle, index = oracle_image(stack, [a, b])
    return TruthPair(a, b, truth, _as_written(oracle), index, stack)


def _stack_defaults(overrides: dict) -> dict:
    """make_stack's keyword defaults, with ``overrides``: every setting, for truth.json."""
    from focusfuse.data.stacks import make_stack

    params = inspect.signature(make_stack).parameters
    fixed = ("frames", "seed", "variant", "depth")
    unknown = sorted(k for k in overrides if k not in params or k in fixed)
    if unknown:
        raise TypeError(f"unknown or fixed stack option(s) {', '.join(unknown)}; the options of "
                        "focusfuse.data.stacks.make_stack except frames, seed, variant and "
                        "depth can be given")
    return {name: overrides.get(name, p.default) for name, p in params.items()
            if p.kind is p.KEYWORD_ONLY and name not in fixed}


def scene_seed(seed: int, index: int) -> int:
    """The seed of the ``index``-th scene of a set made with ``seed`` (each variant of a
    scene gets the same, so the variants share its depth and, hand-held, its motion)."""
    return int(np.random.SeedSequence([seed, index]).generate_state(1)[0])


def make_truth_set(sharp_dir: str | os.PathLike, out: str | os.PathLike, *,
                   variants: Sequence[str] = DEFAULT_VARIANTS, count: int = 40, seed: int = 0,
                   suffix: str = ".png", layout: str = "two-plane", overwrite: bool = False,
                   progress=None, **stack_options) -> dict[str, Path]:
    """Write a truth set: ``out/VARIANT/NAME-{A,B,truth,oracle}.png`` and ``truth.json``.

    ``sharp_dir``: the sharp images; those ending in ``suffix`` are used (default ".png":
    the 68 held-out BSDS500 images of the training's ``--holdout-suffix .png`` split,
    never trained on). ``count`` of them are chosen with ``seed`` (all when ``count`` is
    None); scene ``i`` is rendered with :func:`scene_seed` ``(seed, i)`` in every variant.
    ``layout`` and ``stack_options``: as :func:`make_truth_pair` takes them (the options of
    :func:`~focusfuse.data.stacks.make_stack`; its defaults otherwise). A variant folder that exists and holds files is refused unless
    ``overwrite``. ``progress``: a callable given a line per pair. Returns
    ``{variant: folder}``.
    """
    from focusfuse.io import read_image, write_image

    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {', '.join(LAYOUTS)}; got {layout!r}")
    settings = _stack_defaults(stack_options)
    files, folders = _prepare_set(sharp_dir, out, variants, count, seed, suffix, overwrite)
    records = {v: [] for v in variants}
    for i, path in enumerate(files):
        sharp = read_image(path)
        if sharp.ndim == 3 and sharp.shape[2] == 4:
            sharp = sharp[..., :3]
        s = scene_seed(seed, i)
        for v in variants:
            pair = make_truth_pair(sharp, seed=s, variant=v, layout=layout, **settings)
            name = path.stem
            for part, image in (("A", pair.a), ("B", pair.b), ("truth", pair.truth),
                                ("oracle", pair.oracle)):
                write_image(folders[v] / f"{name}-{part}.png", image)
            records[v].append({
                "name": name, "source": path.name, "seed": s, "size": list(sharp.shape[:2]),
                "oracle_from_a": float(np.mean(pair.oracle_index == 0)),
                "gains": np.asarray(pair.stack.gains).tolist(),
                "transforms": [t.as_dict() for t in pair.stack.transforms],
            })
            if progress:
                progress(f"{v} {name} ({i + 1}/{len(files)})")
    _write_settings(folders, records, "pairs", {
        "generator": "focusfuse.bench.truth.make_truth_set", "sharp_dir": str(sharp_dir),
        "suffix": suffix, "count": len(files), "seed": seed, "frames": 2, "layout": layout,
        "stack_options": settings, "bit_depth": 8,
        "oracle": "each pixel from the source with the smaller blur radius there"})
    return folders


def _write_settings(folders: dict, records: dict, kind: str, common: dict) -> None:
    """``truth.json`` in each variant's folder: ``common``, the variant, whether it moves
    (and so is registered), and its ``records`` under ``kind``."""
    from focusfuse import __version__
    from focusfuse.data.stacks import MOVING

    for v, folder in folders.items():
        meta = {"generator": common["generator"], "focusfuse": __version__, "variant": v,
                "register": v in MOVING, **common}
        if v in MOVING:
            moved = "sources" if kind == "pairs" else "frames"
            meta["oracle"] += f", {moved} warped back into the truth's geometry (Lanczos)"
        meta[kind] = records[v]
        (folder / SETTINGS_FILE).write_text(json.dumps(meta, indent=1) + "\n")


def _prepare_set(sharp_dir, out, variants, count, seed, suffix, overwrite):
    """The checks and the folders of a truth set: (the chosen image files, {variant: folder})."""
    from focusfuse.data.stacks import VARIANTS
    from focusfuse.data.synthesis import list_images

    variants = list(variants)
    bad = [v for v in variants if v not in VARIANTS]
    if not variants or bad:
        raise ValueError(f"variants must be some of {', '.join(VARIANTS)}; got "
                         f"{', '.join(map(repr, variants)) or 'none'}")
    if len(set(variants)) != len(variants):
        raise ValueError(f"variants lists one twice ({', '.join(variants)}); list each once")
    files = list_images(sharp_dir, suffixes=(suffix,))
    if count is not None:
        if isinstance(count, bool) or not isinstance(count, (int, np.integer)) or count < 1:
            raise ValueError(f"count must be an integer >= 1; got {count!r}")
        if count > len(files):
            raise ValueError(f"count {count} is more than the {len(files)} {suffix} images in "
                             f"{sharp_dir}; give --count {len(files)} or fewer")
        pick = np.random.default_rng(seed).choice(len(files), count, replace=False)
        files = [files[i] for i in sorted(pick)]
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"output {out} is a file; give a folder for --out")
    folders = {v: out / v for v in variants}
    for v, folder in folders.items():
        if folder.is_dir() and any(folder.iterdir()):
            if not overwrite:
                raise ValueError(f"{folder} exists and is not empty; give another --out, or "
                                 "--overwrite to replace it")
            shutil.rmtree(folder)
        folder.mkdir(parents=True, exist_ok=True)
    return files, folders


def read_truth_settings(folder: str | os.PathLike) -> dict | None:
    """The ``truth.json`` of a truth set's folder, or None when it has none."""
    path = Path(folder) / SETTINGS_FILE
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except ValueError as exc:
        raise ValueError(f"{path} is not valid JSON ({exc}); regenerate the set with "
                         "focusfuse make-truth or remove the file") from None


def folder_registers(folder: str | os.PathLike) -> bool:
    """Whether the pairs of ``folder`` are to be registered to their truth before scoring:
    what its ``truth.json`` says (hand-held variants), False without one."""
    meta = read_truth_settings(folder)
    return bool(meta and meta.get("register", False))


def make_truth_stacks(sharp_dir: str | os.PathLike, out: str | os.PathLike, *,
                      variants: Sequence[str] = DEFAULT_VARIANTS, count: int = 20,
                      frames: int = 8, seed: int = 0, suffix: str = ".png",
                      overwrite: bool = False, progress=None, **stack_options) -> dict[str, Path]:
    """Write a set of focus stacks with their truth: ``out/VARIANT/NAME/frame_XX.png``
    (8 bit), ``out/VARIANT/NAME-truth.png``, ``NAME-oracle.png`` (each pixel from the frame
    whose blur radius there is smallest, from the frames as written) and ``truth.json``.

    :func:`focusfuse.data.stacks.make_stack` with ``frames`` frames and its own depths
    (spread over the focus range); the images, their choice and the scene seeds as
    :func:`make_truth_set` makes them (scene ``i``: :func:`scene_seed` ``(seed, i)``, its
    variants sharing its depth and motion). ``focusfuse make-truth --frames N`` is its
    command line, ``focusfuse bench --stacks`` scores a variant's folder.
    """
    from focusfuse.data.stacks import make_stack
    from focusfuse.io import read_image, write_image

    if isinstance(frames, bool) or not isinstance(frames, (int, np.integer)) or frames < 2:
        raise ValueError(f"frames must be an integer >= 2; got {frames!r}")
    settings = _stack_defaults(stack_options)
    files, folders = _prepare_set(sharp_dir, out, variants, count, seed, suffix, overwrite)
    width = max(2, len(str(frames - 1)))
    records = {v: [] for v in variants}
    for i, path in enumerate(files):
        sharp = read_image(path)
        sharp = sharp[..., :3] if sharp.ndim == 3 and sharp.shape[2] == 4 else sharp
        s = scene_seed(seed, i)
        for v in variants:
            stack = make_stack(sharp, frames=frames, seed=s, variant=v, **settings)
            written = [_as_written(f) for f in stack.frames]
            name = path.stem
            (folders[v] / name).mkdir(exist_ok=True)
            for k, frame in enumerate(written):
                write_image(folders[v] / name / f"frame_{k:0{width}d}.png", frame)
            oracle, _ = oracle_image(stack, written)
            write_image(folders[v] / f"{name}-truth.png", _as_written(stack.truth))
            write_image(folders[v] / f"{name}-oracle.png", _as_written(oracle))
            records[v].append({
                "name": name, "source": path.name, "seed": s, "size": list(sharp.shape[:2]),
                "gains": np.asarray(stack.gains).tolist(),
                "transforms": [t.as_dict() for t in stack.transforms],
            })
            if progress:
                progress(f"{v} {name} ({i + 1}/{len(files)})")
    _write_settings(folders, records, "stacks", {
        "generator": "focusfuse.bench.truth.make_truth_stacks", "sharp_dir": str(sharp_dir),
        "suffix": suffix, "count": len(files), "seed": seed, "frames": frames,
        "layout": "stack", "stack_options": settings, "bit_depth": 8,
        "oracle": "each pixel from the frame with the smallest blur radius there"})
    return folders
