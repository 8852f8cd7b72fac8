"""Process-wide settings: the library makes none; the command and opted-in programs keep
freed memory for reuse.

The setting is glibc's (``mallopt``: no ``mmap`` for ``malloc``, a high trim threshold) and
NumPy's huge-page request. Each case runs in a fresh interpreter, since both belong to the
process. Whether ``malloc`` maps a block of its own is read from glibc's ``mallinfo2``
(its count of mapped blocks) while a 64 MB array is alive: above glibc's largest dynamic
threshold (32 MB), such a block is always mapped with the defaults and never with the
memory kept. That is a property of the C library, not of the host's paging.
"""

import os
import platform
import subprocess
import sys

import pytest

from focusfuse.device import resolve_device, resolve_precision

import numpy as np

GLIBC = sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"
_libc = platform.libc_ver()[1] if GLIBC else "0"
MALLINFO2 = GLIBC and tuple(int(x) for x in _libc.split(".")[:2]) >= (2, 33)
HUGEPAGE_GETTER = hasattr(getattr(getattr(np, "_core", None), "multiarray", None),
                          "_get_madvise_hugepage")
needs_glibc = pytest.mark.skipif(
    not (MALLINFO2 and HUGEPAGE_GETTER),
    reason="needs glibc >= 2.33 (mallinfo2, the probe of glibc's setting) and NumPy >= 2 "
           "(its huge-page getter); only glibc's malloc is tuned")

PROBE = """
import ctypes, sys
import numpy as np

class MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd",
                                               "usmblks", "fsmblks", "uordblks", "fordblks",
                                               "keepcost")]

libc = ctypes.CDLL(None)
libc.mallinfo2.restype = MallInfo2

def state():
    before = libc.mallinfo2().hblks
    block = np.empty(64 << 20, np.uint8)
    mapped = libc.mallinfo2().hblks > before
    del block
    return f"mapped={mapped} hugepage={bool(np._core.multiarray._get_madvise_hugepage())}"

print(state())
"""


def _run(body: str, env_keep: str | None = None) -> list[str]:
    env = dict(os.environ)
    env.pop("FOCUSFUSE_KEEP_MEMORY", None)
    if env_keep is not None:
        env["FOCUSFUSE_KEEP_MEMORY"] = env_keep
    out = subprocess.run([sys.executable, "-c", PROBE + body], env=env, capture_output=True,
                         text=True, check=True).stdout
    return out.split("\n")[:-1]


FUSE = """
import focusfuse, focusfuse.fusion
rng = np.random.default_rng(0)
a, b = rng.random((2, 64, 64), dtype=np.float32)
for method, options in (("cnn", {"weights": "fast", "device": "cpu"}), ("dtcwt", {}),
                        ("laplacian", {})):
    focusfuse.fuse([a, b], method=method, **options)
print(state())
"""


@needs_glibc
def test_importing_and_fusing_change_no_process_setting():
    before, after = _run(FUSE)
    assert before.startswith("mapped=True")
    assert after == before


@needs_glibc
def test_keep_freed_memory_is_one_call_and_can_be_undone():
    default, kept, undone = _run("""
import focusfuse
assert focusfuse.keep_freed_memory() is True
print(state())
assert focusfuse.keep_freed_memory(False) is False
print(state())
""")
    assert default.startswith("mapped=True")
    assert kept == "mapped=False hugepage=False"
    assert undone == default


CLI = """
from focusfuse.cli import main
from focusfuse.io import write_image
import pathlib, tempfile
folder = pathlib.Path(tempfile.mkdtemp())
rng = np.random.default_rng(0)
for name in "ab":
    write_image(folder / f"{name}.png", rng.random((40, 40)))
code = main(["fuse", str(folder / "a.png"), str(folder / "b.png"), "-o", str(folder / "f.png"),
             "--method", "laplacian"])
assert code == 0, code
print(state())
"""


@needs_glibc
@pytest.mark.parametrize("env_keep,kept", [(None, True), ("0", False), ("off", False)])
def test_the_command_keeps_freed_memory_for_its_own_process(env_keep, kept):
    before, _, after = _run(CLI, env_keep)
    assert before.startswith("mapped=True")
    assert after.startswith(f"mapped={not kept}")


def test_resolve_precision():
    assert resolve_precision("fp32", "cuda") == "fp32"
    assert resolve_precision("bf16", "cpu") == "bf16"
    assert resolve_precision("auto", "cuda") == "bf16"
    with pytest.raises(ValueError, match="precision must be"):
        resolve_precision("fp16", "cpu")


def test_auto_precision_on_the_cpu_follows_its_bfloat16(monkeypatch):
    import focusfuse.device as device

    for native, expected in ((True, "bf16"), (False, "fp32")):
        monkeypatch.setattr(device, "cpu_has_fast_bf16", lambda native=native: native)
        assert device.resolve_precision("auto", "cpu") == expected


def test_resolve_device():
    assert resolve_device("cpu") == "cpu"
    with pytest.raises(ValueError, match="device must be"):
        resolve_device("tpu")
