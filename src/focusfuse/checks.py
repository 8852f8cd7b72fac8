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

import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

__all__ = ["IMAGE_CHANNELS", "ImageError", "OptionError", "UnknownOptionError",
           "check_choice", "check_device", "check_fraction", "check_images", "check_int",
           "check_levels", "check_odd_window", "check_output_channels", "check_output_path",
           "check_positive", "check_steps_folder", "outside_stacklevel"]

#: the channel counts every method accepts in (H, W, C) images: gray kept as a channel,
#: colour, and colour with alpha (alpha is not scored and is blended like the others)
IMAGE_CHANNELS = (1, 3, 4)
#: the image files focusfuse reads and writes
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff")


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
    ``np.asarray`` turns into such an array is accepted (nested lists too). NaN or infinity
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
        if im.dtype == bool or not np.issubdtype(im.dtype, np.floating):
            raise TypeError(
                f"images[{i}] has dtype {im.dtype}; pass float arrays in [0, 1] "
                "(focusfuse.read_image returns them, or divide by 255 or 65535)")
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
        raise ImageError(f"images must have the same channels; got {{}} {first} and {{}} "
                         f"{im.shape}; drop the alpha channel or add one to all", 0, i)
    for i, im in enumerate(images):
        lo, hi = float(np.min(im)), float(np.max(im))
        if not (np.isfinite(lo) and np.isfinite(hi)):
            raise ImageError("{} contains NaN or infinity; fill or drop those pixels", i)
        if lo < -1e-6 or hi > 1 + 1e-6:
            warnings.warn(f"images[{i}] has values outside [0, 1] (min {lo:.3g}, max {hi:.3g}); "
                          "the fused image is clipped to [0, 1]", stacklevel=outside_stacklevel())
    return images


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
    """"auto", "cpu", "cuda" or "cuda:N" (whether a GPU is there is found out when used)."""
    if not isinstance(value, str) or not (
            value in ("auto", "cpu", "cuda") or (value.startswith("cuda:") and value[5:].isdigit())):
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
        return folder
    inside = [p for p in map(Path, keep) if p.exists() and p.resolve().parent == folder.resolve()]
    if inside:
        raise OptionError(f"steps folder {folder} holds {inside[0].name}, which this command "
                          "reads or writes; choose another folder for the intermediate maps",
                          "save_steps")
    if any(folder.iterdir()) and not overwrite:
        raise OptionError(f"steps folder {folder} is not empty; choose a new folder or allow "
                          "replacing its maps", "overwrite")
    return folder
