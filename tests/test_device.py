"""Where and how the network runs: the C library keeps freed memory for reuse."""

import os
import platform
import subprocess
import sys

import pytest

GLIBC = sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"

# a fresh interpreter each time, as the setting is made once per process: the page faults
# of score maps of one pair after a first one (which also computes the kernel's spectrum)
SCORES = """
import resource
import numpy as np
import focusfuse as ff
from focusfuse.device import keep_freed_memory
from focusfuse.score import score_map

model = ff.load_weights()
rng = np.random.default_rng(0)
a, b = rng.random((2, 300, 300), dtype=np.float32)
score_map(model, a, b)
print(keep_freed_memory())
for _ in range(3):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    score_map(model, a, b)
    print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _run(keep: str | None) -> tuple[bool, list[int]]:
    env = dict(os.environ)
    env.pop("FOCUSFUSE_KEEP_MEMORY", None)
    if keep is not None:
        env["FOCUSFUSE_KEEP_MEMORY"] = keep
    out = subprocess.run([sys.executable, "-c", SCORES], env=env, capture_output=True, text=True,
                         check=True).stdout.split()
    return out[0] == "True", [int(n) for n in out[1:]]


@pytest.mark.skipif(not GLIBC, reason="only glibc's malloc is tuned")
def test_later_score_maps_reuse_the_freed_memory():
    on, faults = _run(None)
    assert on
    # the network's intermediates for a 300×300 pair are about 200 MB: 50,000 pages of 4 KB
    assert min(faults) < 2000, faults


@pytest.mark.skipif(not GLIBC, reason="only glibc's malloc is tuned")
def test_keeping_freed_memory_can_be_turned_off():
    on, faults = _run("0")
    assert not on
    assert min(faults) > 10_000, faults  # every score map faults its intermediates in afresh
