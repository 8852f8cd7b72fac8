"""Image input and output.

Arrays are float32 in [0, 1], shaped (H, W) for gray or (H, W, C) for colour
(C = 3, or 4 with alpha), whatever the file's bit depth. :func:`read_image`
remembers the depth it read in :attr:`Image.bit_depth` so that a 16-bit input can
be written back as 16 bit.

PNG and JPEG go through OpenCV, which keeps 16-bit colour PNG as 16 bit (Pillow and
imageio's default path silently reduce it to 8 bit); TIFF goes through tifffile.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from focusfuse.checks import IMAGE_SUFFIXES, check_output_path

__all__ = ["Image", "ImageReadError", "output_bit_depth", "quantize", "read_image", "write_image",
           "SUPPORTED_SUFFIXES"]


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
    """A file could not be read as an image."""


@dataclass(frozen=True)
class Image:
    """An image read from disk: float32 pixels in [0, 1] and the bit depth of the file."""

    pixels: np.ndarray
    bit_depth: int
    path: Path | None = None


def _to_float(raw: np.ndarray, source: str) -> tuple[np.ndarray, int]:
    if raw.dtype == np.uint8:
        return raw.astype(np.float32) / 255.0, 8
    if raw.dtype == np.uint16:
        return raw.astype(np.float32) / 65535.0, 16
    if raw.dtype in (np.float32, np.float64):
        return np.clip(raw, 0.0, 1.0).astype(np.float32), 32
    raise ImageReadError(
        f"{source}: pixel type {raw.dtype} is not supported; save it as 8- or 16-bit PNG or TIFF"
    )


def read_image(path: str | os.PathLike, *, with_depth: bool = False) -> np.ndarray | Image:
    """Read an 8- or 16-bit gray or colour PNG, JPEG or TIFF file.

    Returns float32 pixels in [0, 1], (H, W) or (H, W, C) in RGB(A) order; with
    ``with_depth=True`` an :class:`Image` that also carries the file's bit depth.
    Raises :class:`ImageReadError` (a ValueError) naming the file and the fix when it
    is missing or is not a readable image.
    """
    path = Path(path)
    if path.is_dir():
        raise ImageReadError(f"{path} is a folder; give an image file")
    if not path.is_file():
        raise ImageReadError(f"{path}: no such file; check the path")
    suffix = path.suffix.lower()
    if suffix in _TIFF:
        import tifffile

        try:
            raw = tifffile.imread(path)
        except Exception as exc:  # tifffile raises many types for corrupt files
            raise ImageReadError(f"{path}: not a readable TIFF image ({exc})") from None
        raw = np.asarray(raw)
        if raw.ndim == 3 and raw.shape[0] in (3, 4) and raw.shape[-1] not in (3, 4):
            raw = np.moveaxis(raw, 0, -1)  # planar (C, H, W) to channel-last
    else:
        data = np.fromfile(path, dtype=np.uint8)
        # JPEG has no alpha: decoding without IMREAD_UNCHANGED applies its EXIF orientation
        # (phone photos taken upright); PNG keeps alpha and 16 bits with IMREAD_UNCHANGED
        flags = (cv2.IMREAD_ANYDEPTH | cv2.IMREAD_ANYCOLOR if suffix in (".jpg", ".jpeg")
                 else cv2.IMREAD_UNCHANGED)
        raw = cv2.imdecode(data, flags) if data.size else None
        if raw is None:
            raise ImageReadError(
                f"{path}: not a readable image; focusfuse reads PNG, JPEG and TIFF files"
            )
        if raw.ndim == 3:
            code = cv2.COLOR_BGRA2RGBA if raw.shape[2] == 4 else cv2.COLOR_BGR2RGB
            raw = cv2.cvtColor(raw, code)
    if raw.ndim not in (2, 3) or (raw.ndim == 3 and raw.shape[2] not in (1, 3, 4)):
        raise ImageReadError(f"{path}: shape {raw.shape} is not a gray or colour image")
    if raw.ndim == 3 and raw.shape[2] == 1:
        raw = raw[:, :, 0]
    pixels, depth = _to_float(raw, str(path))
    if with_depth:
        return Image(pixels, depth, path)
    return pixels


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


def write_image(path: str | os.PathLike, image: np.ndarray, *, bit_depth: int = 8) -> Path:
    """Write float pixels in [0, 1] as an 8- or 16-bit PNG, TIFF or JPEG (8 bit only).

    Values are clipped to [0, 1] and rounded to the nearest level. The file is written
    to a temporary name in the same folder and renamed into place, so an interrupted
    write never leaves a half-written file.
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
    raw = quantize(image, bit_depth)

    fd, tmp = tempfile.mkstemp(suffix=suffix, prefix=".focusfuse-", dir=path.parent)
    os.close(fd)
    try:
        if suffix in _TIFF:
            import tifffile

            tifffile.imwrite(tmp, raw, photometric="rgb" if raw.ndim == 3 else "minisblack")
        else:
            if raw.ndim == 3:
                code = cv2.COLOR_RGBA2BGRA if raw.shape[2] == 4 else cv2.COLOR_RGB2BGR
                raw = cv2.cvtColor(raw, code)
            ok, buf = cv2.imencode(suffix, raw, [cv2.IMWRITE_JPEG_QUALITY, 95] if suffix != ".png" else [])
            if not ok:
                raise ValueError(f"output {path}: could not encode the image as {suffix}")
            buf.tofile(tmp)
        os.chmod(tmp, NEW_FILE_MODE)  # mkstemp makes 0600 files; give the usual mode
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
