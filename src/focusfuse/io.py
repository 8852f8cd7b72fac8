"""Image input and output.

Arrays are float32 in [0, 1], shaped (H, W) for gray or (H, W, C) for colour
(C = 3, or 4 with alpha), whatever the file's bit depth. :func:`read_image`
remembers the depth it read in :attr:`Image.bit_depth` so that a 16-bit input can
be written back as 16 bit.

PNG and JPEG go through OpenCV, which keeps 16-bit colour PNG as 16 bit (Pillow and
imageio's default path silently reduce it to 8 bit); TIFF goes through tifffile. A file is
read as what its first bytes say it is (a PNG named ``.jpg`` keeps its alpha channel).

Hostile or damaged files (docs/robustness.md): the size in the file's header is checked
against a pixel limit before anything is decoded (:data:`~focusfuse.checks.MAX_PIXELS`),
running out of memory while decoding is an :class:`ImageReadError`, and what the decoders
print about a damaged file (OpenCV, libpng, libjpeg, tifffile) becomes the error's message
or an :class:`ImageReadWarning` instead of stray lines on stderr. Writing goes through a
file without a name (``O_TMPFILE``) where the file system has them, so that no kill, even
SIGKILL, leaves a temporary file in the output folder; elsewhere through a hidden
temporary name that is removed on any error and, after a kill, by the next write into that
folder.
"""

from __future__ import annotations

import errno
import io as _io
import logging
import os
import re
import secrets
import sys
import tempfile
import threading
import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from focusfuse.checks import (IMAGE_SUFFIXES, MAX_PIXELS, check_max_pixels, check_output_path,
                              codes_to_float, outside_stacklevel, value_range_problem)

__all__ = ["Image", "ImageReadError", "ImageReadWarning", "output_bit_depth", "quantize",
           "read_image", "remove_stale_temporaries", "write_image", "SUPPORTED_SUFFIXES"]


def _new_file_mode() -> int:
    umask = os.umask(0o022)  # reading the umask means setting it: done once, at import
    os.umask(umask)
    return 0o666 & ~umask


#: the mode a new file gets from this process's umask (files written through a temporary
#: name get it too, not the temporary's 0600)
NEW_FILE_MODE = _new_file_mode()

SUPPORTED_SUFFIXES = IMAGE_SUFFIXES
_TIFF = (".tif", ".tiff")


class ImageReadError(ValueError):
    """A file could not be read as an image.

    ``option`` names the keyword of :func:`read_image` that would change the outcome
    (``"max_pixels"`` for an image over the pixel limit), else None.
    """

    def __init__(self, message: str, option: str | None = None):
        self.option = option
        super().__init__(message)


class ImageReadWarning(UserWarning):
    """A file was read, but its decoder reported damage, or its values were clipped."""


@dataclass(frozen=True)
class Image:
    """An image read from disk: float32 pixels in [0, 1] and the bit depth of the file."""

    pixels: np.ndarray
    bit_depth: int
    path: Path | None = None


# ------------------------------------------------------------------------------ reading
def _to_float(raw: np.ndarray, source: str, reorder: bool = False) -> tuple[np.ndarray, int]:
    """Float32 pixels in [0, 1] (and the bit depth) of decoded codes; ``reorder``: OpenCV's
    BGR(A) channels to RGB(A) on the way. One float array is made and divided in place
    (the same arithmetic as ``raw.astype(np.float32) / top``)."""
    view = raw
    if reorder and raw.ndim == 3:
        view = raw[..., ::-1] if raw.shape[2] == 3 else raw[..., [2, 1, 0, 3]]
    if raw.dtype in (np.uint8, np.uint16):
        return codes_to_float(view), 8 if raw.dtype == np.uint8 else 16
    if raw.dtype in (np.float16, np.float32, np.float64):
        x = view.astype(np.float32)
        problem = value_range_problem(float(np.min(x)), float(np.max(x)))
        if problem and problem[0] == "error":
            raise ImageReadError(f"{source} {problem[1]}")
        if problem:
            warnings.warn(f"{source} {problem[1]}; they are clipped to [0, 1]",
                          ImageReadWarning, stacklevel=outside_stacklevel())
        np.clip(x, 0.0, 1.0, out=x)  # and rounding's strays within 1e-6, silently
        return x, 32
    raise ImageReadError(
        f"{source}: pixel type {raw.dtype} is not supported; save it as 8- or 16-bit PNG or TIFF"
    )


def _check_pixel_count(width: int, height: int, max_pixels: int, source: str) -> None:
    """An image of ``width`` × ``height`` pixels (as its file's header says) is within
    ``max_pixels``; an :class:`ImageReadError` naming ``source`` and the option otherwise."""
    if width * height > max_pixels:
        raise ImageReadError(
            f"{source}: the file says {width}×{height} pixels ({width * height / 1e6:,.0f} "
            f"million), more than the limit of {max_pixels / 1e6:,.0f} million; a damaged or "
            "hostile file? If the image is real, raise max_pixels", option="max_pixels")


def _sniff(head: bytes) -> str | None:
    """The file type from the first bytes: "png", "jpeg", "tiff" or None."""
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return "tiff"
    return None


def _png_size(data: np.ndarray) -> tuple[int, int] | None:
    """(width, height) from a PNG's IHDR chunk, or None when it has none where it must be."""
    if data.size < 24 or bytes(data[12:16]) != b"IHDR":
        return None
    return int.from_bytes(bytes(data[16:20]), "big"), int.from_bytes(bytes(data[20:24]), "big")


#: the JPEG start-of-frame markers (baseline, progressive, lossless, arithmetic ...): every
#: 0xC0..0xCF but DHT (C4), JPG (C8) and DAC (CC)
_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


def _jpeg_size(data: np.ndarray) -> tuple[int, int] | None:
    """(width, height) from a JPEG's first start-of-frame segment, found by walking the
    markers as libjpeg does (bytes before a marker skipped); None when there is none."""
    buf = data.tobytes()
    i, n = 2, len(buf)
    while i < n:
        j = buf.find(b"\xff", i)
        if j < 0:
            return None
        while j < n and buf[j] == 0xFF:  # fill bytes
            j += 1
        if j >= n:
            return None
        marker, i = buf[j], j + 1
        if marker == 0x00 or 0xD0 <= marker <= 0xD7 or marker == 0x01:
            continue  # stuffed byte, restart markers, TEM: no length
        if marker in (0xD9, 0xDA):  # end of image, start of scan before any frame
            return None
        if i + 2 > n:
            return None
        length = int.from_bytes(buf[i:i + 2], "big")
        if marker in _SOF:
            if i + 7 > n:
                return None
            height = int.from_bytes(buf[i + 3:i + 5], "big")
            width = int.from_bytes(buf[i + 5:i + 7], "big")
            return width, height
        i += max(length, 2)
    return None


_OPENCV_LOG = re.compile(r"^\[\s*[A-Z]+:\S+\]\s+global\s+\S+\s+\S+\s+")
_CAPTURE_LOCK = threading.Lock()


class _Collect(logging.Handler):
    def __init__(self, lines: list[str]):
        super().__init__(logging.WARNING)
        self.lines = lines

    def emit(self, record):
        self.lines.append(record.getMessage())


@contextmanager
def _decoder_messages():
    """Collect what the decoders print while one file is decoded: OpenCV's log, libpng
    and libjpeg write to the process's stderr (file descriptor 2) and tifffile logs to
    its logger. Both are pointed elsewhere for the decode only (under a lock, and put
    back however it ends); yields the list of lines, filled when the block ends."""
    lines: list[str] = []
    with _CAPTURE_LOCK:
        logger = logging.getLogger("tifffile")
        handler = _Collect(lines)
        logger.addHandler(handler)
        propagate, logger.propagate = logger.propagate, False
        try:
            saved = os.dup(2)
        except OSError:  # no stderr at all: nothing can leak
            saved = None
        capture = None
        if saved is not None:
            try:
                capture = tempfile.TemporaryFile()
            except OSError:  # no temporary folder: let them print
                os.close(saved)
                saved = None
        try:
            if capture is not None:
                try:
                    sys.stderr.flush()
                except (AttributeError, OSError, ValueError):
                    pass
                os.dup2(capture.fileno(), 2)
            yield lines
        finally:
            if capture is not None:
                os.dup2(saved, 2)
                os.close(saved)
                capture.seek(0)
                text = capture.read(1 << 16).decode("utf-8", "replace")
                capture.close()
                lines[:0] = [_OPENCV_LOG.sub("", ln).strip() for ln in text.splitlines()
                             if ln.strip()]
            logger.removeHandler(handler)
            logger.propagate = propagate


def _first(lines: list[str]) -> str:
    return f" ({lines[0][:200]})" if lines else ""


#: OpenCV's own limit on the pixels of an image it decodes (OPENCV_IO_MAX_IMAGE_PIXELS)
_OPENCV_MAX_PIXELS = 1 << 30


def _decode_cv(data: np.ndarray, kind: str, path: Path, size) -> tuple[np.ndarray, list[str]]:
    """The decoded codes and what the decoder said (the caller warns once the image is
    read: a damaged file that then runs out of memory gets the error only)."""
    # JPEG has no alpha: decoding without IMREAD_UNCHANGED applies its EXIF orientation
    # (phone photos taken upright); PNG keeps alpha and 16 bits with IMREAD_UNCHANGED
    flags = (cv2.IMREAD_ANYDEPTH | cv2.IMREAD_ANYCOLOR if kind == "jpeg"
             else cv2.IMREAD_UNCHANGED)
    with _decoder_messages() as lines:
        try:
            raw = cv2.imdecode(data, flags)
        except cv2.error as exc:
            raw, lines_err = None, str(exc).strip().splitlines()
            lines.extend(ln for ln in lines_err[-1:] if ln)
    if raw is None:
        if size and size[0] * size[1] > _OPENCV_MAX_PIXELS:
            raise ImageReadError(f"{path}: {size[0]}×{size[1]} pixels is more than OpenCV "
                                 "decodes (2**30; its OPENCV_IO_MAX_IMAGE_PIXELS setting)")
        raise ImageReadError(f"{path}: not a readable {kind.upper()} image, damaged or cut "
                             f"short{_first(lines)}")
    return raw, lines


def _read_tiff(path: Path, max_pixels: int) -> tuple[np.ndarray, list[str]]:
    """The one frame of a TIFF file, channel-last, and what tifffile said about it."""
    import tifffile

    with _decoder_messages() as lines:
        try:
            with tifffile.TiffFile(path) as tif:
                pages = tif.pages
                count = len(pages)
                page = pages.first if hasattr(pages, "first") else pages[0]
                # reduced-resolution pages (previews) beside the image are not frames
                frames = 1 + sum(1 for k in range(1, min(count, 16))
                                 if not getattr(pages[k], "is_reduced", False))
                if count > 16:
                    frames = count
                if frames > 1:
                    raise ImageReadError(
                        f"{path}: a multi-page TIFF ({count} pages); split it into one file "
                        "per frame (focusfuse reads one image per file; a reader for stacks "
                        "is planned)")
                depth = int(getattr(page, "imagedepth", 1) or 1)
                _check_pixel_count(int(page.imagewidth), int(page.imagelength) * depth,
                                   max_pixels, str(path))
                axes = page.axes
                if set(axes) - set("YXS"):
                    raise ImageReadError(
                        f"{path}: a TIFF of axes {axes} (shape {page.shape}), not one 2-D "
                        "image; split it into one file per frame")
                raw = page.asarray()
        except ImageReadError:
            raise
        except MemoryError:
            raise ImageReadError(_no_memory(path)) from None
        except Exception as exc:  # tifffile raises many types for corrupt files
            raise ImageReadError(f"{path}: not a readable TIFF image ({exc})") from None
    raw = np.asarray(raw)
    if raw.ndim == 3 and axes.startswith("S"):
        raw = np.moveaxis(raw, 0, -1)  # planar (C, H, W) to channel-last
    return raw, lines


def _no_memory(path: Path, size: tuple[int, int] | None = None) -> str:
    what = f" ({size[0]}×{size[1]} pixels)" if size else ""
    return (f"{path}: not enough memory to decode this image{what}; free memory, or make the "
            "image smaller")


def read_image(path: str | os.PathLike, *, with_depth: bool = False,
               max_pixels: int = MAX_PIXELS) -> np.ndarray | Image:
    """Read an 8- or 16-bit gray or colour PNG, JPEG or TIFF file (or a float TIFF).

    Returns float32 pixels in [0, 1], (H, W) or (H, W, C) in RGB(A) order; with
    ``with_depth=True`` an :class:`Image` that also carries the file's bit depth.
    Raises :class:`ImageReadError` (a ValueError) naming the file and the fix when it
    is missing, is not a readable image, is a multi-page TIFF, or claims more than
    ``max_pixels`` pixels (height × width, default :data:`~focusfuse.checks.MAX_PIXELS`,
    2**28) in its header. A float TIFF slightly outside [0, 1] is clipped with an
    :class:`ImageReadWarning`; far outside, or with NaN, it is refused.
    """
    max_pixels = check_max_pixels(max_pixels)
    path = Path(path)
    if path.is_dir():
        raise ImageReadError(f"{path} is a folder; give an image file")
    if not path.is_file():
        raise ImageReadError(f"{path}: no such file; check the path")
    try:
        with open(path, "rb") as fh:
            head = fh.read(16)
    except OSError as exc:
        raise ImageReadError(f"{path}: cannot be read ({exc.strerror})") from None
    kind = _sniff(head)
    if kind is None:
        raise ImageReadError(f"{path}: not a readable image; focusfuse reads PNG, JPEG and "
                             "TIFF files" + (" (the file is empty)" if not head else ""))
    if kind == "tiff":
        raw, said = _read_tiff(path, max_pixels)
    else:
        try:
            data = np.fromfile(path, dtype=np.uint8)
        except MemoryError:
            raise ImageReadError(_no_memory(path)) from None
        size = _png_size(data) if kind == "png" else _jpeg_size(data)
        if size is not None:
            _check_pixel_count(*size, max_pixels, str(path))
        try:
            raw, said = _decode_cv(data, kind, path, size)
        except MemoryError:
            raise ImageReadError(_no_memory(path, size)) from None
        del data
    if raw.ndim not in (2, 3) or (raw.ndim == 3 and raw.shape[2] not in (1, 3, 4)):
        raise ImageReadError(f"{path}: shape {raw.shape} is not a gray or colour image")
    if min(raw.shape[:2]) < 1:
        raise ImageReadError(f"{path}: the image is empty (shape {raw.shape})")
    if raw.ndim == 3 and raw.shape[2] == 1:
        raw = raw[:, :, 0]
    try:
        pixels, depth = _to_float(raw, str(path), reorder=kind != "tiff")
    except MemoryError:
        raise ImageReadError(_no_memory(path, (raw.shape[1], raw.shape[0]))) from None
    if said:
        warnings.warn(f"{path}: read, but the decoder reported damage: {said[0][:200]}",
                      ImageReadWarning, stacklevel=outside_stacklevel())
    if with_depth:
        return Image(pixels, depth, path)
    return pixels


# ------------------------------------------------------------------------------ writing
def output_bit_depth(path: str | os.PathLike, input_depths, asked: int | None = None) -> int:
    """The bit depth to write ``path`` with: ``asked`` if given, else 16 when an input had
    more than 8 bits and the file type holds 16 (PNG, TIFF), else 8."""
    if asked is not None:
        return asked
    jpeg = Path(path).suffix.lower() in (".jpg", ".jpeg")
    return 16 if not jpeg and any(d > 8 for d in input_depths) else 8


def quantize(image: np.ndarray, bit_depth: int = 8) -> np.ndarray:
    """Float [0, 1] to uint8 (or uint16) codes, rounded to the nearest level, as written."""
    if bit_depth not in (8, 16):
        raise ValueError(f"bit_depth must be 8 or 16; got {bit_depth}")
    top = 255 if bit_depth == 8 else 65535
    image = np.asarray(image)
    flat = image.reshape(image.shape[0] if image.ndim else 1, -1)  # (rows, the rest)
    out = np.empty(flat.shape, np.uint8 if bit_depth == 8 else np.uint16)
    # in float64 (exact for float32 input), a band of rows at a time: no image-sized temporary
    rows = max(1, (1 << 18) // max(1, flat.shape[1]))
    for y in range(0, flat.shape[0], rows):
        x = np.clip(flat[y:y + rows], 0.0, 1.0, dtype=np.float64)
        x *= top
        x += 0.5
        out[y:y + rows] = np.floor(x, out=x)
    return out.reshape(image.shape)


#: hidden temporary files of :func:`write_image`: ``.focusfuse-PID-TOKEN.tmp`` (and the
#: ``.focusfuse-XXXXXXXX.ext`` names of focusfuse 0.1)
_TEMPORARY = re.compile(r"^\.focusfuse-(?:(\d+)-[0-9a-f]{8}\.tmp|[A-Za-z0-9_]{8}\.\w+)$")
#: a temporary older than this is stale even when its process id is alive again (reused)
_STALE_SECONDS = 3600.0


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: alive, another user's
        return True
    return True


def remove_stale_temporaries(folder: str | os.PathLike) -> list[Path]:
    """Remove the hidden temporary files that killed runs of :func:`write_image` left in
    ``folder``: those of processes no longer running, and any older than an hour. Called
    by every write; returns what it removed."""
    removed = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    now = time.time()
    for entry in entries:
        match = _TEMPORARY.match(entry.name)
        if not match:
            continue
        try:
            if not entry.is_file(follow_symlinks=False):
                continue
            age = now - entry.stat(follow_symlinks=False).st_mtime
            pid = match.group(1)
            if age > _STALE_SECONDS or (pid is not None and int(pid) != os.getpid()
                                        and not _pid_alive(int(pid))):
                os.unlink(entry.path)
                removed.append(Path(entry.path))
        except OSError:
            continue
    return removed


def _write_all(fd: int, data: bytes | memoryview) -> None:
    view = memoryview(data).cast("B")
    while view:
        view = view[os.write(fd, view):]


def _temporary_name(folder: Path) -> Path:
    return folder / f".focusfuse-{os.getpid()}-{secrets.token_hex(4)}.tmp"


#: whether to write through unnamed files (O_TMPFILE, Linux); where the folder's file
#: system refuses them, the write falls back to a hidden name all the same
_UNNAMED = hasattr(os, "O_TMPFILE") and os.path.isdir("/proc/self/fd")


def _link_unnamed(fd: int, path: Path) -> None:
    """Give the unnamed file ``fd`` the name ``path`` (linkat through /proc/self/fd, which
    needs no privilege; a dir_fd makes os.link call linkat with AT_SYMLINK_FOLLOW)."""
    source = f"/proc/self/fd/{fd}"
    folder = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        try:
            os.link(source, path.name, src_dir_fd=folder, dst_dir_fd=folder,
                    follow_symlinks=True)  # a new file: in one step, no other name
            return
        except FileExistsError:
            pass
        tmp = _temporary_name(path.parent)  # replacing a file: a hidden name for microseconds
        os.link(source, tmp.name, src_dir_fd=folder, dst_dir_fd=folder, follow_symlinks=True)
        try:
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
    finally:
        os.close(folder)


def _publish(data, path: Path, *, mode: int | None = None) -> None:
    """Write ``data`` to ``path`` in one step: readers see the old file or the whole new
    one, never a part, and a kill at any moment leaves no temporary file (O_TMPFILE) or
    at most a hidden one that the next write in that folder removes. ``mode``: the file's
    permission bits (default: a new file's, from the umask). Also used by
    :func:`focusfuse.metadata.write_metadata`."""
    folder = path.parent
    remove_stale_temporaries(folder)
    fd = None
    if _UNNAMED:
        try:
            fd = os.open(folder, os.O_TMPFILE | os.O_WRONLY, 0o666)
        except OSError:  # the file system has no unnamed files (NFS, some FUSE): a name
            fd = None
    if fd is not None:
        try:
            if mode is not None:
                os.fchmod(fd, mode)
            _write_all(fd, data)
            _link_unnamed(fd, path)
            return
        except OSError as exc:
            if exc.errno not in (errno.ENOENT, errno.EXDEV, errno.EPERM, errno.EOPNOTSUPP,
                                 errno.EINVAL, errno.ENOTDIR):
                raise
            # linking an unnamed file is refused here: write it under a name instead
        finally:
            os.close(fd)
    tmp = _temporary_name(folder)
    fd = os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666)  # the umask applies
    try:
        try:
            if mode is not None:
                os.fchmod(fd, mode)
            _write_all(fd, data)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _encode(raw: np.ndarray, suffix: str, path: Path):
    if suffix in _TIFF:
        import tifffile

        buf = _io.BytesIO()
        tifffile.imwrite(buf, raw, photometric="rgb" if raw.ndim == 3 else "minisblack")
        return buf.getbuffer()
    if raw.ndim == 3:
        code = cv2.COLOR_RGBA2BGRA if raw.shape[2] == 4 else cv2.COLOR_RGB2BGR
        raw = cv2.cvtColor(raw, code)
    ok, buf = cv2.imencode(suffix, raw, [cv2.IMWRITE_JPEG_QUALITY, 95] if suffix != ".png" else [])
    if not ok:
        raise ValueError(f"output {path}: could not encode the image as {suffix}")
    return buf


def write_image(path: str | os.PathLike, image: np.ndarray, *, bit_depth: int = 8) -> Path:
    """Write float pixels in [0, 1] as an 8- or 16-bit PNG, TIFF or JPEG (8 bit only).

    Values are clipped to [0, 1] and rounded to the nearest level; NaN or infinity is a
    ValueError. The file appears in one step, complete (docs/robustness.md): a write
    that is interrupted, by an error, Ctrl-C, SIGTERM or even SIGKILL, leaves the old file
    as it was and no temporary file behind.
    """
    if bit_depth is None:
        raise ValueError("bit_depth must be 8 or 16; got None")
    path = check_output_path(path, bit_depth=bit_depth)
    suffix = path.suffix.lower()
    image = np.asarray(image)
    if not np.issubdtype(image.dtype, np.floating):
        raise TypeError(
            f"image must be float in [0, 1]; got dtype {image.dtype}; "
            "divide by 255 (8 bit) or 65535 (16 bit) first"
        )
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (3, 4)):
        raise ValueError(
            f"image must be (H, W) gray or (H, W, 3 or 4) colour; got shape {image.shape}"
        )
    if image.size and not (np.isfinite(np.min(image)) and np.isfinite(np.max(image))):
        raise ValueError(f"image contains NaN or infinity; fill or drop those pixels before "
                         f"writing {path.name}")
    data = _encode(quantize(image, bit_depth), suffix, path)
    try:
        _publish(data, path)
    except OSError as exc:
        error = OSError(f"output {path}: could not be written ({exc.strerror or exc})")
        error.errno = exc.errno
        raise error from None
    return path
