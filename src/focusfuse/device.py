"""Choosing where and in what precision the network runs."""

from __future__ import annotations

import ctypes
import functools
import os
import platform
import sys
from pathlib import Path

__all__ = ["CompileError", "cpu_has_fast_bf16", "keep_freed_memory"]

#: glibc's mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4
#: free memory at the top of the heap that the process keeps rather than gives back: the
#: largest value mallopt takes (2 GiB), more than a 12-megapixel pair's working set
KEEP_BYTES = 2**31 - 1


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


@functools.cache
def keep_freed_memory() -> bool:
    """Have the C library keep the memory PyTorch frees, for the next tensors to reuse.

    glibc serves every block of 128 KB or more with its own ``mmap`` and gives it back to
    the system on ``free``; the network's intermediates (hundreds of MB each, allocated
    afresh for every tile and every call) then cost a page fault per 4 KB page on each use,
    zeroed by the kernel: a third of a 520×520 pair's time here. With ``mmap`` off for
    ``malloc`` and a high trim threshold, freed blocks stay in the heap and are reused
    without faults. The process's peak memory is unchanged; what it holds between calls
    stays at that peak (at most 2 GiB free is kept) until it ends, as PyTorch's own CUDA
    allocator does.

    NumPy's own request for transparent huge pages on large arrays (which OpenCV's outputs
    share) is turned off with it: memory that is reused does not need them, and their first
    touch is slow on this project's machine (the guided filter of a 12-megapixel pair took
    1.0 s with them, 0.45 s without).

    Done once per process, on the first score map; only with glibc (elsewhere nothing is
    changed); ``FOCUSFUSE_KEEP_MEMORY=0`` turns it off. Returns whether it is on.
    """
    if os.environ.get("FOCUSFUSE_KEEP_MEMORY", "1") == "0":
        return False
    if not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc":
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    if not (mallopt(_M_MMAP_MAX, 0) and mallopt(_M_TRIM_THRESHOLD, KEEP_BYTES)):
        return False
    import numpy as np

    multiarray = getattr(getattr(np, "_core", None), "multiarray", None) or np.core.multiarray
    getattr(multiarray, "_set_madvise_hugepage", lambda enabled: None)(False)
    return True
