"""Every check of what a caller gives focusfuse, in one place.

The library (:func:`focusfuse.fuse`, the method functions, :func:`focusfuse.write_image`),
the command line and the benchmark runner all call these; none has checks of its own. A
failed check raises a ``ValueError`` (wrong value or shape) or ``TypeError`` (wrong type)
whose message names the parameter, what was expected, what was received and the fix. The
exceptions carry what the command line needs to say the same in its own terms: which
source images a message is about (:class:`ImageError`, so that it can name the files) and
which option (:class:`OptionError`, so that it can name the flag).

Only the standard library and NumPy are imported here: the command line's ``--help`` uses
the option checks without loading PyTorch, SciPy or OpenCV.
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

__all__ = ["FLOAT_SLACK", "IMAGE_CHANNELS", "MAX_PIXELS", "ImageError", "OptionError",
           "UnknownOptionError", "check_choice", "check_device", "check_fraction",
           "check_images", "check_int", "check_levels", "check_max_pixels", "check_odd_window",
           "check_output_channels", "check_output_folder", "check_output_path",
           "check_positive", "check_steps_folder", "codes_to_float", "outside_stacklevel",
           "value_range_problem"]

#: the channel counts every method accepts in (H, W, C) images: gray kept as a channel,
#: colour, and colour with alpha (alpha is not scored and is blended like the others)
IMAGE_CHANNELS = (1, 3, 4)
#: the image files focusfuse reads and writes
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff")
#: the most pixels (height × width) of one frame that :func:`focusfuse.read_image` decodes
#: unless told otherwise: 2**28, about 268 million (16384 × 16384; 3 GiB as float32 colour).
#: Checked against the file's header before decoding, so a small file that claims a huge
#: image (a decompression bomb) is refused at once (docs/robustness.md)
MAX_PIXELS = 2**30 // 4
#: how far a float image's values may stray outside [0, 1] (a filter's ringing) and still be
#: taken as an image in [0, 1]: clipped, with a warning. Further out they are the wrong
#: scale (0..255 passed as float) and refused. The metrics use the same bound
FLOAT_SLACK = 0.5


class ImageError(ValueError):
    """A problem with some of the source images; ``indices`` says which.

    ``str(error)`` names them ``images[i]``; :meth:`named` gives the same message with
    other names (the command line passes the file names).
    """

    def __init__(self, template: str, *indices: int):
        self.template, self.indices = template, indices
        super().__init__(self.named([f"images[{i}]" for i in range(max(indices, default=0) + 1)]))

    def named(self, names: Sequence[str]) -> str:
        return self.template.format(*(names[i] for i in self.indices))


class OptionError(ValueError):
    """A bad value of the option ``option`` (a keyword of :func:`focusfuse.fuse`)."""

    def __init__(self, message: str, option: str):
        self.option = option
        super().__init__(message)


class UnknownOptionError(TypeError):
    """``option`` is not an option of ``method``; ``owners`` are the methods that take it."""

    def __init__(self, option: str, method: str, owners: Sequence[str]):
        self.option, self.method, self.owners = option, method, tuple(owners)
        where = (f"it is an option of {', '.join(self.owners)}" if self.owners
                 else "no method takes it; check the spelling")
        super().__init__(f"method {method!r} takes no option {option!r}; {where}")


def outside_stacklevel() -> int:
    """The ``stacklevel`` of the first caller outside focusfuse, for a warning issued by the
    function that calls this: the warning then names the user's line, however deep inside
    focusfuse it was raised."""
    frame, level = sys._getframe(1), 1  # 1: the function that warns
    while frame is not None and frame.f_globals.get("__name__", "").startswith("focusfuse."):
        frame, level = frame.f_back, level + 1
    return level


# ------------------------------------------------------------------------------ images
def _kind(shape) -> str:
    return "gray" if len(shape) == 2 or shape[2] == 1 else "colour"


def check_images(images: Sequence[np.ndarray]) -> list[np.ndarray]:
    """The sources of a fusion: two or more float arrays in [0, 1] of one shape.

    Each is (H, W) gray or (H, W, C) with C in :data:`IMAGE_CHANNELS`; anything that
    ``np.asarray`` turns into such an array is accepted (nested lists too). uint8 and
    uint16 arrays are taken as 8- and 16-bit codes (x / 255, x / 65535, as float32), as
    :func:`focusfuse.metrics.evaluate` takes them. NaN or infinity
    is an error; values outside [0, 1] a warning (naming the line that called focusfuse),
    and the fused image is clipped. Returns the arrays.
    """
    if isinstance(images, np.ndarray) or not isinstance(images, Sequence) or isinstance(images, str):
        raise TypeError(f"images must be a list of arrays, one per source; got "
                        f"{type(images).__name__}; pass [image_a, image_b]")
    images = [np.asarray(im) for im in images]
    if len(images) < 2:
        raise ValueError(f"fusion needs at least two images; got {len(images)}")
    for i, im in enumerate(images):
        if im.dtype in (np.uint8, np.uint16):  # 8- and 16-bit codes, as the metrics take them
            images[i] = im = codes_to_float(im)
        if im.dtype == bool or not np.issubdtype(im.dtype, np.floating):
            raise TypeError(
                f"images[{i}] has dtype {im.dtype}; pass float arrays in [0, 1], or uint8 or "
                "uint16 codes (focusfuse.read_image returns float32)")
        if im.ndim not in (2, 3) or (im.ndim == 3 and im.shape[2] not in IMAGE_CHANNELS):
            raise ImageError("{} must be (H, W) gray or (H, W, C) with C = 1, 3 or 4 (gray, "
                             f"colour, colour and alpha); got shape {im.shape}", i)
        if min(im.shape[:2]) < 1:
            raise ImageError(f"{{}} must not be empty; got shape {im.shape}", i)
    first = images[0].shape
    for i, im in enumerate(images[1:], 1):
        if im.shape == first:
            continue
        if _kind(im.shape) != _kind(first):
            raise ImageError(f"{{}} is {_kind(first)} {first} but {{}} is {_kind(im.shape)} "
                             f"{im.shape}; convert them all to gray or all to colour first", 0, i)
        if im.shape[:2] != first[:2]:
            raise ImageError(f"images must have the same size; got {{}} {first[1]}×{first[0]} "
                             f"and {{}} {im.shape[1]}×{im.shape[0]}; align or crop them first", 0, i)
        if 4 in (first[2:] + im.shape[2:]):
            raise ImageError(f"images must have the same channels; got {{}} {first} and {{}} "
                             f"{im.shape}; drop the alpha channel or add one to all", 0, i)
        raise ImageError(f"images must have the same channels; got {{}} {first} and {{}} "
                         f"{im.shape}; give gray images all as (H, W) or all as (H, W, 1)", 0, i)
    for i, im in enumerate(images):
        problem = value_range_problem(float(np.min(im)), float(np.max(im)))
        if problem and problem[0] == "error":
            raise ImageError("{} " + problem[1], i)
        if problem:
            warnings.warn(f"images[{i}] {problem[1]}; the fused image is clipped to [0, 1]",
                          stacklevel=outside_stacklevel())
    return images


def value_range_problem(lo: float, hi: float) -> tuple[str, str] | None:
    """What is wrong with float pixels whose least and greatest values are ``lo`` and ``hi``:
    None (within [0, 1]), ``("warn", text)`` (a little outside: clipped) or
    ``("error", text)`` (NaN or infinity, or the wrong scale). ``text`` follows the name of
    the image. The one rule of :func:`check_images` (fuse), :func:`focusfuse.read_image`
    (float TIFF) and the metrics' :data:`FLOAT_SLACK`."""
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return "error", "contains NaN or infinity; fill or drop those pixels"
    if lo < -FLOAT_SLACK or hi > 1 + FLOAT_SLACK:
        return "error", (f"has values from {lo:.4g} to {hi:.4g}, far outside [0, 1]; scale "
                         "them to [0, 1] first (0..255 values: divide by 255)")
    if lo < -1e-6 or hi > 1 + 1e-6:
        return "warn", f"has values outside [0, 1] (min {lo:.3g}, max {hi:.3g})"
    return None


def codes_to_float(codes: np.ndarray) -> np.ndarray:
    """Float32 pixels in [0, 1] of 8- or 16-bit codes (code / 255 or / 65535): the one
    conversion of codes, so that every path gives the same floats."""
    x = codes.astype(np.float32)
    np.divide(x, np.float32(255 if codes.dtype == np.uint8 else 65535), out=x)
    return x


def check_max_pixels(value) -> int:
    """The pixel limit of one frame (:data:`MAX_PIXELS`), an integer >= 1."""
    return check_int("max_pixels", value, minimum=1,
                     hint=f"the default is {MAX_PIXELS} (2**28)")


def check_levels(levels, shape: tuple[int, int]) -> int:
    """Decomposition levels of a multiscale transform for (H, W) images, as an int."""
    levels = check_int("levels", levels, minimum=1, hint="use e.g. levels=4")
    most = int(np.floor(np.log2(min(shape)))) if min(shape) > 1 else 0
    if 2**levels > min(shape):
        raise OptionError(
            f"levels={levels} is too many for images of size {shape[0]}x{shape[1]} (each "
            f"level halves the size); use levels <= {max(most, 1)}"
            + ("" if most >= 1 else " on images at least 2 pixels on each side"), "levels")
    return levels


# ----------------------------------------------------------------------------- options
def check_int(name: str, value, *, minimum: int = 0, hint: str = "") -> int:
    """An integer option (not a bool) of at least ``minimum``, as an int."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise OptionError(f"{name} must be an integer >= {minimum}; got {value!r}"
                          + (f"; {hint}" if hint else ""), name)
    return int(value)


def check_positive(name: str, value, *, hint: str = "") -> float:
    """A real option above zero, as a float."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) or not value > 0:
        raise OptionError(f"{name} must be > 0; got {value!r}" + (f"; {hint}" if hint else ""), name)
    return float(value)


def check_fraction(name: str, value, *, hint: str = "") -> float:
    """A real option in [0, 1), as a float."""
    if (isinstance(value, bool) or not isinstance(value, (int, float, np.number))
            or not 0.0 <= value < 1.0):
        raise OptionError(f"{name} must be in [0, 1)" + (f" ({hint})" if hint else "")
                          + f"; got {value!r}", name)
    return float(value)


def check_choice(name: str, value, choices: Sequence[str]) -> str:
    """One of ``choices``."""
    if not isinstance(value, str) or value not in choices:
        raise OptionError(f"{name} must be one of {', '.join(map(repr, choices))}; got {value!r}",
                          name)
    return value


def check_odd_window(name: str, value, *, hint: str = "") -> int:
    """An odd window size >= 1, as an int."""
    if (isinstance(value, bool) or not isinstance(value, (int, np.integer))
            or value < 1 or value % 2 == 0):
        raise OptionError(f"{name} must be an odd window size >= 1 (1 turns the check off); "
                          f"got {value!r}" + (f"; {hint}" if hint else ""), name)
    return int(value)


def check_device(name: str, value) -> str:
    """"auto", "cpu", "cuda" (:data:`focusfuse.device.DEVICES`) or "cuda:N" (whether a GPU
    is there is found out when used)."""
    from focusfuse.device import DEVICES

    if not isinstance(value, str) or not (
            value in DEVICES or (value.startswith("cuda:") and value[5:].isdigit())):
        raise OptionError(f"{name} must be 'auto', 'cpu', 'cuda' or 'cuda:N'; got {value!r}", name)
    return value


# ------------------------------------------------------------------------------ output
def check_output_path(path, *, bit_depth: int | None = None, inputs: Sequence = (),
                      overwrite: bool = True, suffixes: Sequence[str] = IMAGE_SUFFIXES) -> Path:
    """A file that can be written: a type of ``suffixes`` (images by default), an existing
    folder, not one of ``inputs``, not an existing file unless ``overwrite``, and for an
    image a ``bit_depth`` (8, 16 or None: not decided yet) that the type can hold. Returns
    the path."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in suffixes:
        kind = "image type" if suffixes is IMAGE_SUFFIXES else "file type"
        raise OptionError(f"output {path}: unknown {kind} {suffix!r}; use one of "
                          f"{', '.join(suffixes)}", "output")
    if bit_depth not in (None, 8, 16):
        raise OptionError(f"bit_depth must be 8 or 16; got {bit_depth!r}", "bit_depth")
    if bit_depth == 16 and suffix in (".jpg", ".jpeg"):
        raise OptionError(f"output {path}: JPEG cannot hold 16 bits; write .png or .tif, "
                          "or write 8 bits", "bit_depth")
    if not path.parent.is_dir():
        raise OptionError(f"output folder {path.parent} does not exist; create it first", "output")
    if not _writable(path.parent):
        raise OptionError(f"output folder {path.parent} is not writable; choose another folder "
                          "or change its permissions", "output")
    for src in map(Path, inputs):
        if path.resolve() == src.resolve() or (path.exists() and src.exists()
                                               and path.samefile(src)):
            raise OptionError(f"output {path} is also an input; choose another output file",
                              "output")
    if path.exists() and not overwrite:
        raise OptionError(f"output {path} exists; choose another name or allow replacing it",
                          "overwrite")
    return path


def check_output_channels(path, channels: int) -> None:
    """An image of ``channels`` channels (1 gray, 3 colour, 4 with alpha) fits the file type
    of ``path`` (JPEG has no alpha)."""
    if channels == 4 and Path(path).suffix.lower() in (".jpg", ".jpeg"):
        raise OptionError(f"output {path}: JPEG cannot hold the alpha channel; write .png or "
                          ".tif, or drop the alpha channel of the sources", "output")


def check_steps_folder(folder, *, keep: Sequence = (), overwrite: bool = False) -> Path:
    """A folder for intermediate maps: new, or empty, or (with ``overwrite``) one that holds
    none of the files in ``keep`` (the inputs and the output): never over the user's files."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise OptionError(f"steps folder {folder} is a file; give a folder (it is created if "
                          "needed)", "save_steps")
    if not folder.exists():
        _check_can_create(folder, "steps folder", "save_steps")
        return folder
    if not _writable(folder):
        raise OptionError(f"steps folder {folder} is not writable; choose another folder",
                          "save_steps")
    inside = [p for p in map(Path, keep) if p.exists() and p.resolve().parent == folder.resolve()]
    if inside:
        raise OptionError(f"steps folder {folder} holds {inside[0].name}, which this command "
                          "reads or writes; choose another folder for the intermediate maps",
                          "save_steps")
    if any(folder.iterdir()) and not overwrite:
        raise OptionError(f"steps folder {folder} is not empty; choose a new folder or allow "
                          "replacing its maps", "overwrite")
    return folder


def check_output_folder(folder, option: str = "out") -> Path:
    """A folder to write into, made later by the caller: an existing, writable folder, or
    a path whose nearest existing parent is a writable folder (nothing is created here)."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise OptionError(f"{option} {folder} is a file; give a folder (it is created if "
                          "needed)", option)
    if folder.is_dir():
        if not _writable(folder):
            raise OptionError(f"{option} {folder} is not writable; choose another folder",
                              option)
        return folder
    _check_can_create(folder, option, option)
    return folder


def _writable(folder: Path) -> bool:
    """Whether this process may make files in ``folder`` (os.access: the permissions, a
    read-only file system, an immutable folder; root passes the permission bits)."""
    return os.access(folder, os.W_OK | os.X_OK)


def _check_can_create(folder: Path, what: str, option: str) -> None:
    parent = folder.absolute().parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise OptionError(f"{what} {folder} cannot be made: {parent} is a file", option)
    if not _writable(parent):
        raise OptionError(f"{what} {folder} cannot be made: {parent} is not writable; choose "
                          "another folder", option)
