"""Focus stacks from files: find the frames, align them, fuse them with one decision, keep
16 bits and the reference frame's metadata. The ``focusfuse stack`` command is this
module's :func:`stack` with flags.

Frames are read one at a time and resampled onto the reference frame's grid as they are
read; between frames only a fixed number of full-size planes is kept, so memory does not
grow with the number of frames. Up to :data:`CACHE_BYTES` of frames are kept between the
passes (the alignment's, then the fusion's two to four) as 16-bit codes: a 10-frame 3 MP
stack is read from disk once; a longer one reads the frames that do not fit again.
"""

from __future__ import annotations

import glob
import hashlib
import os
import re
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from focusfuse.checks import IMAGE_SUFFIXES, ImageError, codes_to_float
from focusfuse.fusion.stack import Frames, fuse_stack

__all__ = ["FileFrames", "StackFrames", "align_stack", "list_frames", "natural_key",
           "run_stack", "stack", "stack_frames", "stack_to_file"]


def natural_key(text: str):
    """Sort key of natural name order: ``f2`` before ``f10``, case aside."""
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", text)]


def list_frames(items: Sequence[str | os.PathLike]) -> list[Path]:
    """The frame files named by ``items``: files, folders (their image files) or glob
    patterns, in natural name order (``f2`` before ``f10``) within each item. Files in a
    folder that are not images are left out with a warning; a missing file is an error."""
    out: list[Path] = []
    for item in items:
        path = Path(item)
        if path.is_dir():
            files = sorted((p for p in path.iterdir() if p.is_file() and not p.name.startswith(".")),
                           key=lambda p: natural_key(p.name))
            images = [p for p in files if p.suffix.lower() in IMAGE_SUFFIXES]
            others = [p.name for p in files if p.suffix.lower() not in IMAGE_SUFFIXES]
            if others:
                warnings.warn(f"{path}: left out {len(others)} file(s) that are not images "
                              f"({', '.join(others[:3])}{' ...' if len(others) > 3 else ''})",
                              stacklevel=2)
            if not images:
                raise ValueError(f"{path}: no image files (PNG, JPEG, TIFF) in this folder")
            out += images
        elif path.is_file():  # a file's own name may hold * ? [ too
            out.append(path)
        elif any(ch in str(item) for ch in "*?["):
            found = sorted((Path(p) for p in glob.glob(str(item)) if Path(p).is_file()),
                           key=lambda p: natural_key(p.name))
            if not found:
                raise ValueError(f"{item}: no file matches this pattern")
            out += found
        elif not path.is_file():
            raise ValueError(f"{path}: no such file; check the path")
        else:
            out.append(path)
    return out


def stack_frames(items: Sequence[str | os.PathLike]) -> list[Path]:
    """:func:`list_frames`, and at least two of them."""
    paths = list_frames(items)
    if len(paths) < 2:
        raise ValueError(f"a stack needs at least two frames; got {len(paths)}"
                         + (f" ({paths[0]})" if paths else ""))
    return paths


#: the memory a stack's frames may keep decoded (and aligned) frames in, between passes:
#: ten 3-megapixel colour frames as 16-bit codes (189 MB); a longer stack keeps as many
CACHE_BYTES = 192 * 2**20


class _Kept:
    """A frame kept between passes: 8- and 16-bit frames as 16-bit codes (half the memory
    of float32, and exact: a decoded frame comes back bit for bit), others as float32;
    the mask of the pixels it covers as bits; ``aligned``: resampled onto the reference's
    grid already (else as read)."""

    __slots__ = ("data", "_mask", "aligned")

    def __init__(self, data: np.ndarray, covered, aligned: bool):
        self.data, self.aligned = data, aligned
        self._mask = None if covered is None else (np.packbits(covered), covered.shape)

    @property
    def covered(self) -> np.ndarray | None:
        if self._mask is None:
            return None
        bits, shape = self._mask
        return np.unpackbits(bits, count=shape[0] * shape[1]).view(bool).reshape(shape)

    @property
    def nbytes(self) -> int:
        return self.data.nbytes + (0 if self._mask is None else self._mask[0].nbytes)

    def pixels(self) -> np.ndarray:
        return self.data if self.data.dtype != np.uint16 else codes_to_float(self.data)


class StackFrames(Frames):
    """Frames loaded one at a time, ``load(index)`` giving a frame's pixels, resampled onto
    the reference's grid by an :class:`~focusfuse.align.Alignment` (if any) and
    gain-matched; ``digest_of(index)`` identifies a frame's content, so that the canonical
    order does not depend on the alignment. ``keep``: the indices used (the frames that
    aligned).

    Up to ``cache_bytes`` (default :data:`CACHE_BYTES`) of frames are kept for the next
    passes: as read, from :meth:`decoded` (what the alignment estimates from), then as
    aligned. With ``compact()`` true (8- or 16-bit frames) they are kept as 16-bit codes,
    and a resampled or gain-matched frame is rounded to 16 bits (under 1/130000 of the
    range) whether it is kept or not, so that every pass sees the same values."""

    def __init__(self, load: Callable[[int], np.ndarray], digest_of: Callable[[int], bytes],
                 n: int, alignment=None, keep: Sequence[int] | None = None,
                 cache_bytes: int | None = None, compact: Callable[[], bool] | None = None):
        self.load, self.digest_of, self.alignment = load, digest_of, alignment
        self.keep = list(range(n)) if keep is None else list(keep)
        self.compact = compact or (lambda: False)
        self._last: tuple[int, tuple] | None = None  # the frame read last (one frame kept)
        self._kept: dict[int, _Kept] = {}  # by index in the order given
        self._budget = CACHE_BYTES if cache_bytes is None else cache_bytes
        self._used = 0

    def __len__(self) -> int:
        return len(self.keep)

    def _store(self, index: int, pixels: np.ndarray, covered, aligned: bool,
               codes: np.ndarray | None = None) -> bool:
        """Keep frame ``index`` (replacing what was kept of it) if the budget allows;
        ``codes``: its 16-bit codes, when made already."""
        self.forget(index)
        compact = self.compact()
        size = pixels.size * (2 if compact else 4) + (0 if covered is None else covered.size // 8)
        if self._used + size > self._budget:
            return False
        if compact and codes is None:
            from focusfuse.io import quantize

            codes = quantize(pixels, 16)
        entry = _Kept(codes if compact else pixels, covered, aligned)
        self._kept[index] = entry
        self._used += entry.nbytes
        return True

    def forget(self, index: int) -> None:
        """Drop what is kept of frame ``index`` (a frame left out of the stack)."""
        old = self._kept.pop(index, None)
        if old is not None:
            self._used -= old.nbytes

    def decoded(self, index: int) -> np.ndarray:
        """Frame ``index`` (in the order given) as read, before any alignment; kept for
        the fusion's first pass if the budget allows."""
        entry = self._kept.get(index)
        if entry is not None and not entry.aligned:
            return entry.pixels()
        pixels = self.load(index)
        if entry is None and self._budget:
            self._store(index, pixels, None, aligned=False)
        return pixels

    def _get(self, k: int):
        index = self.keep[k]
        entry = self._kept.get(index)
        if entry is not None and entry.aligned:
            return entry.pixels(), entry.covered
        if self._last is None or self._last[0] != k:
            self._last = None  # free the previous frame first
            pixels, covered, codes = self._aligned(index)
            if self._budget and self._store(index, pixels, covered, True, codes):
                return pixels, covered
            self._last = (k, (pixels, covered))
        return self._last[1]

    def _aligned(self, index: int):
        from focusfuse.align import is_identity, warp

        entry = self._kept.get(index)
        pixels = entry.pixels() if entry is not None else self.load(index)
        covered = None
        changed = False
        if self.alignment is not None:
            m = self.alignment.transforms[index]
            if not is_identity(m):
                pixels, covered = warp(pixels, m, self.alignment.shape)
                changed = True
            gains = self.alignment.gains[index]
            if gains is not None and not np.all(gains == 1):
                pixels = pixels * (gains.astype(np.float32) if pixels.ndim == 3
                                   else np.float32(gains[0]))
                np.clip(pixels, 0.0, 1.0, out=pixels)
                changed = True
        pixels = pixels.astype(np.float32, copy=False)
        codes = None
        if changed and self.compact():  # the values a kept frame has, kept or not
            from focusfuse.io import quantize

            codes = quantize(pixels, 16)
            pixels = codes_to_float(codes)
        return pixels, covered, codes

    def __getitem__(self, k: int) -> np.ndarray:
        return self._get(k)[0]

    def valid(self, k: int) -> np.ndarray | None:
        return self._get(k)[1]

    def digest(self, k: int) -> bytes:
        return self.digest_of(self.keep[k])


class FileFrames(StackFrames):
    """The frames of ``paths``, read through ``read`` (a :class:`_Reader`)."""

    def __init__(self, paths: Sequence[Path], read, alignment=None,
                 keep: Sequence[int] | None = None, cache_bytes: int | None = None):
        self.all_paths = list(paths)
        super().__init__(lambda i: read(self.all_paths[i]).pixels,
                         lambda i: read.digest(self.all_paths[i]), len(self.all_paths),
                         alignment, keep, cache_bytes,
                         compact=lambda: read.first is not None and read.bit_depth <= 16)
        self.read = read

    def path(self, k: int) -> Path:
        return self.all_paths[self.keep[k]]


class _Reader:
    """``read_image`` for the frames of one stack, checking each frame as it is first read
    against the first one read: one size, one kind (gray or colour), one bit depth (the
    messages name both files). The first pass over the frames (alignment, or the first
    pass of the fusion) therefore checks them all before any output is written."""

    def __init__(self, read_options: dict | None):
        self.options = read_options or {}
        self.first = None  # (path, shape, bit depth)
        self._digests: dict[Path, bytes] = {}

    def digest(self, path: Path) -> bytes:
        """A digest of the file's bytes (read once per file)."""
        if path not in self._digests:
            self._digests[path] = hashlib.sha1(path.read_bytes()).digest()
        return self._digests[path]

    def __call__(self, path: Path):
        from focusfuse.checks import check_images
        from focusfuse.io import read_image

        im = read_image(path, with_depth=True, **self.options)
        if self.first is None:
            self.first = (path, im.pixels.shape, im.bit_depth)
            return im
        first, shape, depth = self.first
        if im.pixels.shape != shape:  # the message of fuse()'s check, with the file names
            try:
                check_images([np.zeros(shape, np.float32), np.zeros(im.pixels.shape, np.float32)])
            except ImageError as exc:
                raise ValueError(exc.named([first.name, path.name])) from None
        if im.bit_depth != depth:
            raise ValueError(f"frames mix bit depths: {first.name} has {depth} bits, {path.name} "
                             f"{im.bit_depth}; convert them all to one depth first")
        return im

    @property
    def bit_depth(self) -> int:
        return self.first[2]


def stack(frames, *, method: str = "cnn", align: bool = True, reference: int | None = None,
          crop: bool = False, strict: bool = False, read_options: dict | None = None,
          progress: Callable[[str, int, int], None] | None = None, **options):
    """Fuse a focus stack; returns ``(result, info)``.

    ``frames``: file paths (in focus order) or float arrays. ``align``: register every frame
    to the ``reference`` (default the middle frame) first (:mod:`focusfuse.align`); a frame
    that cannot be aligned is left out with a warning naming it, or is an error with
    ``strict``. ``crop``: cut the result to the region every kept frame covers (else the
    reference's whole grid, each pixel taken only from frames that cover it; the reference
    covers every pixel). ``options``: those of ``method`` (:func:`focusfuse.fuse`), checked
    before any frame is read. ``info`` holds the paths kept, the alignment, the bit depth
    and the crop box, and ``reference``: the file whose metadata a written result carries
    (the alignment's reference; without alignment the middle frame, chosen as the alignment
    chooses it, so that the order given does not matter). ``result.depth_map`` indexes the
    frames as given.
    """
    from focusfuse.fusion.registry import get_method

    opts = get_method(method).make_options(options)
    return run_stack(frames, method, opts, align=align, reference=reference, crop=crop,
                     strict=strict, read_options=read_options, progress=progress)


def align_stack(paths: Sequence[Path], *, reference: int | None = None, strict: bool = False,
                read_options: dict | None = None, progress=None):
    """The frames of ``paths`` aligned to ``reference``: ``(FileFrames, Alignment)``; frames
    that cannot be aligned are left out with a warning (an error with ``strict``)."""
    from focusfuse.align import align_frames

    read = read_options if isinstance(read_options, _Reader) else _Reader(read_options)
    frames = FileFrames(paths, read)  # the frames read here are kept for the fusion
    alignment = align_frames(frames.decoded, len(paths), reference=reference,
                             reference_key=lambda k: read.digest(paths[k]), progress=progress)
    keep = list(range(len(paths)))
    if alignment.failed:
        names = ", ".join(f"{paths[k].name} ({alignment.reasons[k]})" for k in alignment.failed)
        if strict:
            raise ValueError(f"could not align {names}; check those frames, or leave them out "
                             "by not asking for strict alignment")
        warnings.warn(f"could not align {names}; left out of the stack", stacklevel=2)
        keep = [k for k in keep if k not in alignment.failed]
        if len(keep) < 2:
            raise ValueError("fewer than two frames could be aligned; fuse them without "
                             "alignment (--no-align)")
        for k in alignment.failed:
            frames.forget(k)
    frames.alignment, frames.keep = alignment, keep
    return frames, alignment


def run_stack(frames, method: str, options, *, align: bool = True, reference: int | None = None,
              crop: bool = False, strict: bool = False, read_options: dict | None = None,
              progress=None):
    """:func:`stack` with the method's options already built."""
    info: dict = {"alignment": None, "crop": None, "bit_depth": 32, "paths": None,
                  "reference": None}
    if all(isinstance(f, np.ndarray) for f in frames):
        from focusfuse.checks import check_images
        from focusfuse.fusion.stack import _digest

        images = check_images(frames)
        alignment, keep = None, None
        if align:
            from focusfuse.align import align_frames

            alignment = align_frames(lambda k: images[k], len(images), reference=reference,
                                     reference_key=lambda k: _digest(images[k]),
                                     progress=progress)
            if alignment.failed and strict:
                raise ValueError(f"could not align frames {alignment.failed}: "
                                 f"{'; '.join(alignment.reasons.values())}")
            keep = [k for k in range(len(images)) if alignment.transforms[k] is not None]
        # in memory already: nothing to keep between passes
        source = StackFrames(lambda i: images[i], lambda i: _digest(images[i]), len(images),
                             alignment, keep, cache_bytes=0)
    else:
        paths = list_frames(frames)
        read = _Reader(read_options)
        if align:
            preload = _preload(method, options)
            source, alignment = align_stack(paths, reference=reference, strict=strict,
                                            read_options=read, progress=progress)
            if preload is not None:
                preload.join()
        else:
            source, alignment = FileFrames(paths, read), None
        info["paths"] = [paths[k] for k in source.keep]
        if alignment is not None:
            info["reference"] = paths[alignment.reference]
        else:  # the frame whose metadata the result carries: the middle one, order-free
            from focusfuse.align import middle_frame

            info["reference"] = paths[middle_frame(len(paths), lambda k: read.digest(paths[k]))]
    info["alignment"] = alignment
    result = fuse_stack(source, method, options, progress=progress)
    if isinstance(source, FileFrames):
        info["bit_depth"] = source.read.bit_depth
    if result.depth_map is not None:
        result.depth_map = np.asarray(source.keep, np.int16)[result.depth_map]
        result.n_frames = len(frames)
    if crop and alignment is not None:
        from focusfuse.align import coverage

        masks = [coverage(alignment.transforms[i], alignment.shape, alignment.shape)
                 for i in source.keep]
        info["crop"] = y0, y1, x0, x1 = _common_box(masks, alignment.shape)
        result.fused = np.ascontiguousarray(result.fused[y0:y1, x0:x1])
        if result.depth_map is not None:
            result.depth_map = np.ascontiguousarray(result.depth_map[y0:y1, x0:x1])
    return result, info


def _preload(method: str, options):
    """For a method that runs the network: a thread that imports PyTorch and loads the
    network while the frames are read and aligned (OpenCV's work, which leaves Python
    free), so that the 1 to 1.5 s this takes is not added to the stack's time. A failure
    is left for the fusion to report."""
    import threading

    from focusfuse.fusion.registry import get_method

    if method == "learned-pyramid":
        def load():
            from focusfuse.fusion.learned import load_model

            load_model(options.weights)
    elif get_method(method).uses_network:
        def load():
            from focusfuse.fusion.cnn import model_for

            model_for(options)
    else:
        return None

    def run():
        try:
            load()
        except BaseException:  # noqa: BLE001 - the fusion loads it again and says what is wrong
            pass

    thread = threading.Thread(target=run, name="focusfuse-preload", daemon=True)
    thread.start()
    return thread


def _common_box(masks, shape: tuple[int, int]) -> tuple[int, int, int, int]:
    """The largest box (y0, y1, x0, x1), shrunk from the sides, inside which every one of
    ``masks`` (bool (H, W), None for a frame that covers everything) is true."""
    common = np.ones(shape, bool)
    for mask in masks:
        if mask is not None:
            common &= mask
    y0, y1, x0, x1 = 0, common.shape[0], 0, common.shape[1]
    while y1 - y0 > 1 and x1 - x0 > 1:
        box = common[y0:y1, x0:x1]
        bad = {"top": (~box[0]).sum(), "bottom": (~box[-1]).sum(),
               "left": (~box[:, 0]).sum(), "right": (~box[:, -1]).sum()}
        side, worst = max(bad.items(), key=lambda kv: kv[1])
        if worst == 0:
            break
        if side == "top":
            y0 += 1
        elif side == "bottom":
            y1 -= 1
        elif side == "left":
            x0 += 1
        else:
            x1 -= 1
    return y0, y1, x0, x1


#: the stack methods that make a depth map (one frame per pixel)
DEPTH_METHODS = ("cnn",)


def check_depth_method(method: str, flag: str = "depth_map") -> None:
    """An OptionError (``flag``) when ``method`` makes no depth map."""
    from focusfuse import checks

    if method not in DEPTH_METHODS:
        raise checks.OptionError(f"{flag} needs method cnn: {method} fuses band by band, with no "
                                 "one frame per pixel to map", flag)


def stack_to_file(frames, output, *, method: str = "cnn", options=None, align: bool = True,
                  reference: int | None = None, crop: bool = False, strict: bool = False,
                  read_options: dict | None = None, bit_depth: int | None = None,
                  depth_map=None, depth_raw: bool = False, overwrite: bool = False,
                  progress=None) -> dict:
    """What ``focusfuse stack`` does, and ``focusfuse batch`` for each stack: fuse the
    stack of ``frames`` (files, folders or globs) and write ``output`` (bit depth as
    :func:`focusfuse.io.output_bit_depth` chooses; the reference frame's EXIF and ICC
    profile), and ``depth_map`` (a PNG or TIFF) if given. Every output is checked before
    any frame is read, and each file appears complete or not at all. ``options``: the
    method's, built (``Method.make_options``), or None for its defaults.

    Returns ``{"output", "bit_depth", "frames", "kept", "depth_map", "reference"}``.
    """
    from focusfuse import checks
    from focusfuse.fusion.registry import get_method
    from focusfuse.io import output_bit_depth, write_image
    from focusfuse.metadata import copy_metadata

    if depth_map is not None:
        check_depth_method(method)
    paths = stack_frames([frames] if isinstance(frames, (str, os.PathLike)) else frames)
    output = checks.check_output_path(output, bit_depth=bit_depth, inputs=paths,
                                      overwrite=overwrite)
    if depth_map is not None:
        depth_map = checks.check_output_path(depth_map, inputs=[*paths, output],
                                             overwrite=overwrite)
        if depth_map.suffix.lower() in (".jpg", ".jpeg"):
            raise checks.OptionError(f"depth_map {depth_map}: a depth map must be lossless; "
                                     "write .png or .tif", "depth_map")
    if options is None:
        options = get_method(method).make_options({})
    result, info = run_stack(paths, method, options, align=align, reference=reference,
                             crop=crop, strict=strict, read_options=read_options,
                             progress=progress)
    bits = output_bit_depth(output, [info["bit_depth"]], bit_depth)
    write_image(output, result.fused, bit_depth=bits)
    ref = info["reference"]
    copy_metadata(ref, output)
    if depth_map is not None:
        result.save_depth(depth_map, raw=depth_raw)
    return {"output": output, "bit_depth": bits, "frames": len(paths),
            "kept": len(info["paths"]), "depth_map": depth_map, "reference": ref}
