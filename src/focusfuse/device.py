"""Where and in what precision the network runs, and the one process-wide setting focusfuse
knows of (keeping freed memory for reuse), which the library never makes by itself.

Standard library only at import (PyTorch is imported when a device is resolved).
"""

from __future__ import annotations

import ctypes
import functools
import os
import platform
import sys
from pathlib import Path

__all__ = ["DEVICES", "PRECISIONS", "CompileError", "cpu_has_fast_bf16", "keep_freed_memory",
           "keep_freed_memory_from_env", "resolve_device", "resolve_precision"]

#: the network precisions: bfloat16 where the hardware has it, else float32; or either
PRECISIONS = ("auto", "bf16", "fp32")
#: where the network runs ("cuda:N" names one GPU of several)
DEVICES = ("auto", "cpu", "cuda")

#: glibc's mallopt parameters (malloc.h) and their defaults
_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4
_DEFAULT_TRIM_THRESHOLD, _DEFAULT_MMAP_MAX = 128 * 1024, 65536
#: free memory at the top of the heap above which glibc gives memory back (the largest value
#: mallopt takes; freed blocks inside the heap are kept whatever their size)
KEEP_BYTES = 2**31 - 1
#: whether the memory is kept now (only :func:`keep_freed_memory` changes it)
_kept = False
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


def resolve_device(device: str) -> str:
    """``"auto"`` becomes ``"cuda"`` when a CUDA GPU is there, else ``"cpu"``."""
    import torch

    from focusfuse.checks import check_device

    check_device("device", device)
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} asked for but no CUDA GPU is available; use 'cpu'")
    return device


def resolve_precision(precision: str, device: str) -> str:
    """``"auto"`` becomes bf16 on CUDA and on CPUs with native bfloat16, else fp32."""
    from focusfuse.checks import check_choice

    check_choice("precision", precision, PRECISIONS)
    if precision != "auto":
        return precision
    if device.startswith("cuda"):
        return "bf16"
    return "bf16" if cpu_has_fast_bf16() else "fp32"


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
    the system on ``free``; the network's intermediates (hundreds of MB, allocated afresh
    for every tile) then cost a page fault per 4 KB page on each use. With ``mmap`` off for
    ``malloc`` and a high trim threshold, freed blocks stay in the heap and are reused
    without faults; NumPy's request for transparent huge pages on large arrays is turned
    off with it (reused memory does not need them). docs/speed.md has the measured gains
    (about a third of a 520×520 pair's time on this project's CPU) and costs.

    This is a setting of the whole process, so the library never makes it by itself: the
    ``focusfuse`` command turns it on for its own process (unless ``FOCUSFUSE_KEEP_MEMORY``
    is 0, false, no or off), and a program using the library opts in with this call. While
    it is on, the process holds the memory of its largest fusion until it ends (the peak
    is not lower; heap fragmentation can raise it). It applies to allocations of the main
    thread. ``keep_freed_memory(False)`` restores glibc's and NumPy's defaults and gives the
    free memory back (``malloc_trim``). Only with glibc; elsewhere nothing changes. Returns
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


def keep_freed_memory_from_env() -> bool:
    """What the ``focusfuse`` command does at its start: :func:`keep_freed_memory` unless
    ``FOCUSFUSE_KEEP_MEMORY`` is 0, false, no or off. Returns whether the memory is kept."""
    off = os.environ.get("FOCUSFUSE_KEEP_MEMORY", "1").strip().lower() in ("0", "false", "no", "off")
    return keep_freed_memory(not off)
