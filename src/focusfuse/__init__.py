"""focusfuse: multi-focus image fusion.

The CNN method of Liu et al. 2017 (Information Fusion 36), wavelet and complex-wavelet
fusion, and the field's objective metrics.

The names below are imported on first use (PEP 562), so that ``import focusfuse`` and the
command line's ``--help`` load neither PyTorch nor SciPy. Importing focusfuse or fusing
changes no setting of the process; :func:`keep_freed_memory` is the one a program may opt
into (see :mod:`focusfuse.device`).
"""

from __future__ import annotations

import importlib

__all__ = [
    "METHODS",
    "DecisionMaps",
    "FusionResult",
    "batch",
    "create_model",
    "fuse",
    "keep_freed_memory",
    "load_weights",
    "read_image",
    "stack",
    "write_image",
]
__version__ = "0.1.0"

_HOME = {
    "METHODS": "focusfuse.fusion",
    "DecisionMaps": "focusfuse.fusion",
    "FusionResult": "focusfuse.fusion",
    "fuse": "focusfuse.fusion",
    "read_image": "focusfuse.io",
    "write_image": "focusfuse.io",
    "create_model": "focusfuse.models",
    "load_weights": "focusfuse.models",
    "keep_freed_memory": "focusfuse.device",
    "stack": "focusfuse.stacking",
    "batch": "focusfuse.batching",
}


def lazy_attributes(module: str, namespace: dict, home: dict[str, str]):
    """A module's ``__getattr__`` (PEP 562) that imports each name of ``home`` from the
    module ``home[name]`` on first use and keeps it in ``namespace`` (the module's
    globals), so that later uses do not come here again."""

    def __getattr__(name: str):
        if name in home:
            value = getattr(importlib.import_module(home[name]), name)
            namespace[name] = value
            return value
        raise AttributeError(f"module {module!r} has no attribute {name!r}")

    return __getattr__


__getattr__ = lazy_attributes(__name__, globals(), _HOME)


def __dir__():
    return sorted(list(globals()) + __all__)
