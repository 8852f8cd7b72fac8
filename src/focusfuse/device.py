"""Choosing where and in what precision the network runs."""

from __future__ import annotations

import ctypes
import functools
import os
import platform
import sys
from pathlib import Path

__all__ = ["CompileError", "cpu_has_fast_bf16", "keep_freed_memory"]

#: glibc's mallopt parameters (malloc.h) and their defaults
_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4
_DEFAULT_TRIM_THRESHOLD, _DEFAULT_MMAP_MAX = 128 * 1024, 65536
#: free memory at the top of the heap above which glibc gives memory back (the largest value
#: mallopt takes; freed blocks inside the heap are kept whatever their size)
KEEP_BYTES = 2**31 - 1
#: None until decided: by the user (:func:`keep_freed_memory`) or by the first CPU score map
_kept: bool | None = None
_numpy_hugepage: bool | None = None


class CompileError(RuntimeError):
    """``torch.compile`` could not compile the network here (no C compiler, say)."""


@functools.cache
def cpu_has_fast_bf16() -> bool:
    """True when the CPU multiplies bfloat16 natively (AMX-BF16 or AVX-512-BF16)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


def _mallopt():
    if not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc":
        return None
    try:
        fn = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return None
    fn.argtypes, fn.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    return fn


def _numpy_madvise_hugepage(enabled: bool) -> bool | None:
    """Set NumPy's huge-page request for large arrays; returns the previous setting."""
    import numpy as np

    multiarray = getattr(getattr(np, "_core", None), "multiarray", None) or np.core.multiarray
    setter = getattr(multiarray, "_set_madvise_hugepage", None)
    return None if setter is None else bool(setter(enabled))


def keep_freed_memory(enable: bool = True) -> bool:
    """Have the C library keep the memory PyTorch and NumPy free, for the next arrays to reuse.

    glibc serves every block of 128 KB or more with its own ``mmap`` and gives it back to
    the system on ``free``; the network's intermediates (hundreds of MB each, allocated
    afresh for every tile and every call) then cost a page fault per 4 KB page on each use,
    zeroed by the kernel: a third of a 520×520 pair's time here. With ``mmap`` off for
    ``malloc`` and a high trim threshold, freed blocks stay in the heap and are reused
    without faults.

    This is a setting of the whole process, made on the first CPU score map unless the
    caller decided before (``keep_freed_memory(False)``, or ``FOCUSFUSE_KEEP_MEMORY=0``
    in the environment). While it is on, the process holds the memory of its largest
    fusion (and whatever else it frees) until it ends, as PyTorch's CUDA allocator does;
    the peak is not lower. It applies to allocations of the main thread: glibc's arenas of
    other threads still map large blocks afresh. NumPy's request for transparent huge pages
    on large arrays (which OpenCV's outputs share) is turned off with it: reused memory does
    not need them, and their first touch is slow on this project's machine (the decision
    maps of a 12-megapixel pair took 1.0 s with them, 0.45 s without).

    ``keep_freed_memory(False)`` restores glibc's and NumPy's defaults and gives the free
    memory back (``malloc_trim``). Only with glibc; elsewhere nothing changes. Returns
    whether the memory is now kept.
    """
    global _kept, _numpy_hugepage
    mallopt = _mallopt()
    if mallopt is None:
        _kept = False
        return False
    if enable:
        if _kept:
            return True
        if not mallopt(_M_MMAP_MAX, 0):
            _kept = False
            return False
        if not mallopt(_M_TRIM_THRESHOLD, KEEP_BYTES):
            mallopt(_M_MMAP_MAX, _DEFAULT_MMAP_MAX)
            _kept = False
            return False
        _numpy_hugepage = _numpy_madvise_hugepage(False)
        _kept = True
        return True
    if _kept:
        mallopt(_M_MMAP_MAX, _DEFAULT_MMAP_MAX)
        mallopt(_M_TRIM_THRESHOLD, _DEFAULT_TRIM_THRESHOLD)
        if _numpy_hugepage is not None:
            _numpy_madvise_hugepage(_numpy_hugepage)
        ctypes.CDLL(None).malloc_trim(ctypes.c_size_t(0))
    _kept = False
    return False


def keep_freed_memory_by_default() -> None:
    """What the first CPU score map does: :func:`keep_freed_memory` unless the caller or
    ``FOCUSFUSE_KEEP_MEMORY`` (0, false, no or off) decided otherwise."""
    if _kept is not None:
        return
    off = os.environ.get("FOCUSFUSE_KEEP_MEMORY", "1").strip().lower() in ("0", "false", "no", "off")
    keep_freed_memory(not off)
