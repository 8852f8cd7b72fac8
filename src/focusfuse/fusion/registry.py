"""The table of fusion methods: name → function and options.

A method is a function ``fn(images, options) -> FusionResult`` (or the fused array), given
the checked sources (a list of float arrays of one shape, :func:`focusfuse.checks.check_images`)
and a built options object (:mod:`focusfuse.fusion.options`). It is registered with one line
below; its module is imported the first time the method runs, so that listing the methods
(``focusfuse fuse --help``) loads neither PyTorch nor SciPy. See docs/architecture.md.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, fields

from focusfuse.checks import OptionError, UnknownOptionError
from focusfuse.fusion.options import (
    CNNDTCWTOptions,
    CNNOptions,
    DTCWTOptions,
    DWTOptions,
    LearnedPyramidOptions,
    MultiscaleOptions,
    NoOptions,
)

__all__ = ["METHODS", "STACK_METHODS", "Method", "get_method", "option_owners", "register"]


@dataclass(frozen=True)
class Method:
    """One fusion method: its ``name``, the function that runs it (``"module:function"``),
    its options (a frozen dataclass) and a one-line summary with its source."""

    name: str
    target: str
    options: type
    summary: str

    @property
    def uses_network(self) -> bool:
        """Whether the method runs the focus classifier (takes ``weights`` / ``model``)."""
        return any(f.name == "model" for f in fields(self.options))

    def function(self):
        module, _, attr = self.target.partition(":")
        return getattr(importlib.import_module(module), attr)

    def run(self, images, options) -> "FusionResult":
        """Check ``images`` and fuse them with built ``options`` (:meth:`make_options`)."""
        from focusfuse.checks import check_images
        from focusfuse.fusion.result import FusionResult

        images = check_images(images)
        result = self.function()(images, options)
        if not isinstance(result, FusionResult):
            result = FusionResult(result, self.name, [])
        return result

    def make_options(self, given: dict):
        """The options object for keyword options ``given`` (None: the default); a foreign
        keyword is an :class:`~focusfuse.checks.UnknownOptionError` naming the methods that
        take it."""
        known = {f.name for f in fields(self.options)}
        for name in given:
            if name not in known:
                raise UnknownOptionError(name, self.name, option_owners(name))
        # None stands for the option's default (as it did before the options were declared)
        return self.options(**{k: v for k, v in given.items() if v is not None})


#: every method :func:`focusfuse.fuse` knows, by name, in registration order
METHODS: dict[str, Method] = {}


def register(name: str, target: str, summary: str, options: type = NoOptions) -> Method:
    """Add a method to :data:`METHODS` (a name may be registered once): ``target`` is its
    function as ``"module:function"``, ``options`` the dataclass of its options (none by
    default)."""
    if name in METHODS:
        raise ValueError(f"method {name!r} is registered already")
    METHODS[name] = Method(name, target, options, summary)
    return METHODS[name]


def get_method(name: str) -> Method:
    """The registered method ``name`` (an :class:`~focusfuse.checks.OptionError` listing the
    methods if there is none)."""
    if not isinstance(name, str) or name not in METHODS:
        raise OptionError(f"unknown method {name!r}; choose one of {', '.join(METHODS)}", "method")
    return METHODS[name]


def option_owners(option: str) -> list[str]:
    """The methods that take the keyword option ``option``."""
    return [m.name for m in METHODS.values() if option in {f.name for f in fields(m.options)}]


register("cnn", "focusfuse.fusion.cnn:fuse_cnn",
         "the CNN's decision map, refined and blended (Liu et al. 2017)", CNNOptions)
register("cnn-dtcwt", "focusfuse.fusion.cnn:fuse_cnn_dtcwt",
         "the CNN's decision map weighs the DTCWT sub-bands at every level", CNNDTCWTOptions)
register("dtcwt", "focusfuse.fusion.multiscale:dtcwt_method",
         "dual-tree complex wavelet transform, Li et al. 1995 rule (Kingsbury filters)",
         DTCWTOptions)
register("dwt", "focusfuse.fusion.multiscale:dwt_method",
         "2-D discrete wavelet transform, Li et al. 1995 rule (CDF 9/7 wavelet)", DWTOptions)
register("laplacian", "focusfuse.fusion.multiscale:laplacian_method",
         "Laplacian pyramid, Li et al. 1995 rule (Burt and Adelson 1983)", MultiscaleOptions)
register("learned-pyramid", "focusfuse.fusion.learned:learned_method",
         "Laplacian pyramid weighed per coefficient by a small network trained against the "
         "all-in-focus truth (focusfuse's own)", LearnedPyramidOptions)

#: the methods that fuse three or more frames with one decision over all of them
#: (:func:`focusfuse.fusion.stack.fuse_stack`; ``cnn-dtcwt`` fuses them in series)
STACK_METHODS = ("cnn", "dtcwt", "dwt", "laplacian", "learned-pyramid")
