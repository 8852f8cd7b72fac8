"""Focus stacks from files: find the frames, align them, fuse them with one decision, keep
16 bits and the reference frame's metadata. The ``focusfuse stack`` command is this
module's :func:`stack` with flags.

Frames are read one at a time, as often as the fusion needs them (two to four passes), and
resampled onto the reference frame's grid as they are read; between frames only a fixed
number of full-size planes is kept, so memory does not grow with the number of frames.
"""

from __future__ import annotations

import glob
import os
import re
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from focusfuse.checks import IMAGE_SUFFIXES, ImageError
from focusfuse.fusion.stack import ArrayFrames, Frames, fuse_stack

__all__ = ["FileFrames", "align_stack", "list_frames", "run_stack", "stack"]


def _natural_key(text: str):
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", text)]


def list_frames(items: Sequence[str | os.PathLike]) -> list[Path]:
    """The frame files named by ``items``: files, folders (their image files) or glob
    patterns, in natural name order (``f2`` before ``f10``) within each item. Files in a
    folder that are not images are left out with a warning."""
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
        else:
            out.append(path)
    return out


#: the memory FileFrames may keep decoded (and aligned) frames in, between passes
CACHE_BYTES = 256 * 2**20


class FileFrames(Frames):
    """Frames read from files, one at a time, resampled onto the reference's grid by an
    :class:`~focusfuse.align.Alignment` (if any) and gain-matched.

    ``read(path)`` gives an :class:`focusfuse.io.Image`. The frames' digest is that of the
    file's bytes, so the canonical order does not depend on the alignment.
    """

    def __init__(self, paths: Sequence[Path], read: Callable, alignment=None,
                 keep: Sequence[int] | None = None, cache_bytes: int = CACHE_BYTES):
        self.all_paths = list(paths)
        self.keep = list(range(len(self.all_paths))) if keep is None else list(keep)
        self.read, self.alignment = read, alignment
        self._digests: dict[int, bytes] = {}
        self._last: tuple[int, tuple] | None = None  # the frame read last (one frame kept)
        # frames kept after their first read, up to a fixed budget (so memory does not grow
        # with the number of frames): the fusion reads each frame two to four times
        self._kept: dict[int, tuple] = {}
        self._budget = cache_bytes

    def __len__(self) -> int:
        return len(self.keep)

    def path(self, k: int) -> Path:
        return self.all_paths[self.keep[k]]

    def _load(self, k: int):
        if k in self._kept:
            return self._kept[k]
        if self._last is None or self._last[0] != k:
            self._last = None  # free the previous frame first
            loaded = self._read(k)
            size = loaded[0].nbytes + (0 if loaded[1] is None else loaded[1].nbytes)
            used = sum(v[0].nbytes + (0 if v[1] is None else v[1].nbytes)
                       for v in self._kept.values())
            if used + size <= self._budget:
                self._kept[k] = loaded
                return loaded
            self._last = (k, loaded)
        return self._last[1]

    def _read(self, k: int):
        from focusfuse.align import is_identity, warp

        index = self.keep[k]
        pixels = self.read(self.all_paths[index]).pixels
        m = None if self.alignment is None else self.alignment.transforms[index]
        if m is None or is_identity(m):
            gains = None if self.alignment is None or not self.alignment.gains else \
                self.alignment.gains[index]
            if gains is not None and not np.all(gains == 1):
                pixels = np.clip(pixels * (gains.astype(np.float32) if pixels.ndim == 3
                                           else np.float32(gains[0])), 0.0, 1.0)
            return pixels, None
        warped, covered = warp(pixels, m, self.alignment.shape)
        gains = self.alignment.gains[index] if self.alignment.gains else None
        if gains is not None:
            warped = warped * (gains.astype(np.float32) if warped.ndim == 3 else np.float32(gains[0]))
            np.clip(warped, 0.0, 1.0, out=warped)
        return warped.astype(np.float32, copy=False), covered

    def __getitem__(self, k: int) -> np.ndarray:
        return self._load(k)[0]

    def valid(self, k: int) -> np.ndarray | None:
        return self._load(k)[1]

    def digest(self, k: int) -> bytes:
        import hashlib

        if k not in self._digests:
            self._digests[k] = hashlib.sha1(self.path(k).read_bytes()).digest()
        return self._digests[k]


class _Reader:
    """``read_image`` for the frames of one stack, checking each frame as it is first read
    against the first one read: one size, one kind (gray or colour), one bit depth (the
    messages name both files). The first pass over the frames (alignment, or the first
    pass of the fusion) therefore checks them all before any output is written."""

    def __init__(self, read_options: dict | None):
        self.options = read_options or {}
        self.first = None  # (path, shape, bit depth)

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
    import hashlib

    alignment = align_frames(lambda k: read(paths[k]).pixels, len(paths), reference=reference,
                             reference_key=lambda k: hashlib.sha1(paths[k].read_bytes()).digest(),
                             progress=progress)
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
    if len(frames) < 2:
        raise ValueError(f"a stack needs at least two frames; got {len(frames)}")
    info: dict = {"alignment": None, "crop": None, "bit_depth": 32}
    if all(isinstance(f, np.ndarray) for f in frames):
        from focusfuse.checks import check_images

        images = check_images(frames)
        source: Frames = ArrayFrames(images)
        info["paths"] = None
        if align:
            from focusfuse.align import align_frames

            from focusfuse.fusion.stack import _digest

            alignment = align_frames(lambda k: images[k], len(images), reference=reference,
                                     reference_key=lambda k: _digest(images[k]),
                                     progress=progress)
            if alignment.failed and strict:
                raise ValueError(f"could not align frames {alignment.failed}: "
                                 f"{'; '.join(alignment.reasons.values())}")
            source = _AlignedArrays(images, alignment)
            info["alignment"] = alignment
    else:
        paths = [Path(f) for f in frames]
        for path in paths:
            if not path.is_file():
                raise ValueError(f"{path}: no such file; check the path")
        read = _Reader(read_options)
        if align:
            source, info["alignment"] = align_stack(paths, reference=reference, strict=strict,
                                                    read_options=read, progress=progress)
        else:
            source = FileFrames(paths, read)
        info["paths"] = [paths[k] for k in source.keep]
    result = fuse_stack(source, method, options, progress=progress)
    if isinstance(source, FileFrames):
        info["bit_depth"] = read.bit_depth
    keep = getattr(source, "keep", None)
    if keep is not None and result.depth_map is not None:
        result.depth_map = np.asarray(keep, np.int16)[result.depth_map]
        result.n_frames = len(frames)
    if crop and info["alignment"] is not None:
        box = _common_box(source)
        info["crop"] = box
        y0, y1, x0, x1 = box
        result.fused = np.ascontiguousarray(result.fused[y0:y1, x0:x1])
        if result.depth_map is not None:
            result.depth_map = np.ascontiguousarray(result.depth_map[y0:y1, x0:x1])
    return result, info


class _AlignedArrays(ArrayFrames):
    def __init__(self, images, alignment):
        super().__init__(images)
        self.alignment = alignment
        self.keep = [k for k in range(len(images)) if alignment.transforms[k] is not None]

    def __len__(self):
        return len(self.keep)

    def _load(self, k):
        from focusfuse.align import is_identity, warp

        index = self.keep[k]
        m = self.alignment.transforms[index]
        if is_identity(m) and np.all(self.alignment.gains[index] == 1):
            return self.images[index], None
        warped, covered = warp(self.images[index], self.alignment.transforms[index],
                               self.alignment.shape)
        gains = self.alignment.gains[index]
        warped = warped * (gains.astype(np.float32) if warped.ndim == 3 else np.float32(gains[0]))
        return np.clip(warped, 0.0, 1.0).astype(np.float32), covered

    def __getitem__(self, k):
        return self._load(k)[0]

    def valid(self, k):
        return self._load(k)[1]

    def digest(self, k):
        from focusfuse.fusion.stack import _digest

        return _digest(self.images[self.keep[k]])


def _common_box(source) -> tuple[int, int, int, int]:
    """The largest box (y0, y1, x0, x1), shrunk from the sides, inside which every frame of
    ``source`` has data."""
    common = None
    for k in range(len(source)):
        v = source.valid(k)
        if v is None:
            continue
        common = v.copy() if common is None else (common & v)
    if common is None:
        h, w = source[0].shape[:2]
        return 0, h, 0, w
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
