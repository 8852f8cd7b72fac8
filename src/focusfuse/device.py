"""Choosing where and in what precision the network runs."""

from __future__ import annotations

import functools
from pathlib import Path

__all__ = ["CompileError", "cpu_has_fast_bf16"]


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
