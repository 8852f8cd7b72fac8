"""Focus stacks from files: find the frames, align them, fuse them with one decision, keep
16 bits and the reference frame's metadata. The ``focusfuse stack`` command is this
module's :func:`stack` with flags.

Frames are read one at a time, as often as the fusion needs them (two to four passes), and
resampled onto the reference frame's grid as they are read; between frames only a fixed
number of full-size planes is kept, so memory does not grow with the number of frames.
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

from focusfuse.checks import IMAGE_SUFFIXES, ImageError
from focusfuse.fusion.stack import Frames, fuse_stack

__all__ = ["FileFrames", "StackFrames", "align_stack", "list_frames", "run_stack", "stack",
           "stack_to_file"]


def _natural_key(text: str):
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
                           key=lambda p: _natural_key(p.name))
            images = [p for p in files if p.suffix.lower() in IMAGE_SUFFIXES]
            others = [p.name for p in files if p.suffix.lower() not in IMAGE_SUFFIXES]
            if others:
                warnings.warn(f"{path}: left out {len(others)} file(s) that are not images "
                              f"({', '.join(others[:3])}{' ...' if len(others) > 3 else ''})",
                              stacklevel=2)
            if not images:
                raise ValueError(f"{path}: no image files (PNG, JPEG, TIFF) in this folder")
            out += images
        elif any(ch in str(item) for ch in "*?["):
            found = sorted((Path(p) for p in glob.glob(str(item)) if Path(p).is_file()),
                           key=lambda p: _natural_key(p.name))
            if not found:
                raise ValueError(f"{item}: no file matches this pattern")
            out += found
        elif not path.is_file():
            raise ValueError(f"{path}: no such file; check the path")
        else:
            out.append(path)
    return out


#: the memory a stack's frames may keep decoded (and aligned) frames in, between passes
CACHE_BYTES = 256 * 2**20


class StackFrames(Frames):
    """Frames loaded one at a time, ``load(index)`` giving a frame's pixels, resampled onto
    the reference's grid by an :class:`~focusfuse.align.Alignment` (if any) and
    gain-matched; ``digest_of(index)`` identifies a frame's content, so that the canonical
    order does not depend on the alignment. ``keep``: the indices used (the frames that
    aligned). Up to ``cache_bytes`` of loaded frames are kept for the next passes."""

    def __init__(self, load: Callable[[int], np.ndarray], digest_of: Callable[[int], bytes],
                 n: int, alignment=None, keep: Sequence[int] | None = None,
                 cache_bytes: int = CACHE_BYTES):
        self.load, self.digest_of, self.alignment = load, digest_of, alignment
        self.keep = list(range(n)) if keep is None else list(keep)
        self._last: tuple[int, tuple] | None = None  # the frame read last (one frame kept)
        self._kept: dict[int, tuple] = {}
        self._budget, self._used = cache_bytes, 0

    def __len__(self) -> int:
        return len(self.keep)

    def _get(self, k: int):
        if k in self._kept:
            return self._kept[k]
        if self._last is None or self._last[0] != k:
            self._last = None  # free the previous frame first
            loaded = self._aligned(k)
            size = loaded[0].nbytes + (0 if loaded[1] is None else loaded[1].nbytes)
            if self._used + size <= self._budget:
                self._kept[k] = loaded
                self._used += size
                return loaded
            self._last = (k, loaded)
        return self._last[1]

    def _aligned(self, k: int):
        from focusfuse.align import is_identity, warp

        index = self.keep[k]
        pixels = self.load(index)
        covered = None
        if self.alignment is not None:
            m = self.alignment.transforms[index]
            if not is_identity(m):
                pixels, covered = warp(pixels, m, self.alignment.shape)
            gains = self.alignment.gains[index]
            if gains is not None and not np.all(gains == 1):
                pixels = pixels * (gains.astype(np.float32) if pixels.ndim == 3
                                   else np.float32(gains[0]))
                np.clip(pixels, 0.0, 1.0, out=pixels)
        return pixels.astype(np.float32, copy=False), covered

    def __getitem__(self, k: int) -> np.ndarray:
        return self._get(k)[0]

    def valid(self, k: int) -> np.ndarray | None:
        return self._get(k)[1]

    def digest(self, k: int) -> bytes:
        return self.digest_of(self.keep[k])


class FileFrames(StackFrames):
    """The frames of ``paths``, read through ``read`` (a :class:`_Reader`)."""

    def __init__(self, paths: Sequence[Path], read, alignment=None,
                 keep: Sequence[int] | None = None, cache_bytes: int = CACHE_BYTES):
        self.all_paths = list(paths)
        super().__init__(lambda i: read(self.all_paths[i]).pixels,
                         lambda i: read.digest(self.all_paths[i]), len(self.all_paths),
                         alignment, keep, cache_bytes)
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
    and the crop box. ``result.depth_map`` indexes the frames as given.
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
    alignment = align_frames(lambda k: read(paths[k]).pixels, len(paths), reference=reference,
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
    return FileFrames(paths, read, alignment, keep), alignment


def run_stack(frames, method: str, options, *, align: bool = True, reference: int | None = None,
              crop: bool = False, strict: bool = False, read_options: dict | None = None,
              progress=None):
    """:func:`stack` with the method's options already built."""
    info: dict = {"alignment": None, "crop": None, "bit_depth": 32, "paths": None}
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
            source, alignment = align_stack(paths, reference=reference, strict=strict,
                                            read_options=read, progress=progress)
        else:
            source, alignment = FileFrames(paths, read), None
        info["paths"] = [paths[k] for k in source.keep]
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

    paths = list_frames([frames] if isinstance(frames, (str, os.PathLike)) else frames)
    if len(paths) < 2:
        raise ValueError(f"a stack needs at least two frames; got {len(paths)}"
                         + (f" ({paths[0]})" if paths else ""))
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
    ref = paths[info["alignment"].reference if info["alignment"] else 0]
    copy_metadata(ref, output)
    if depth_map is not None:
        result.save_depth(depth_map, raw=depth_raw)
    return {"output": output, "bit_depth": bits, "frames": len(paths),
            "kept": len(info["paths"]), "depth_map": depth_map, "reference": ref}
