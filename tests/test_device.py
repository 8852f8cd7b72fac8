"""Where and how the network runs: the C library keeps freed memory for reuse."""

import os
import platform
import subprocess
import sys

import pytest

GLIBC = sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"

# a fresh interpreter each time, as the setting belongs to the process: the page faults of
# score maps of one pair after a first one (which also computes the kernel's spectrum),
# then the resident memory before and after the memory is given back
SCORES = """
import resource, sys
import numpy as np
import focusfuse as ff
from focusfuse.device import keep_freed_memory
from focusfuse.score import score_map

def rss():
    return int(open("/proc/self/statm").read().split()[1]) * 4096 // 2**20

if sys.argv[1] == "off-before":
    keep_freed_memory(False)
model = ff.load_weights()
rng = np.random.default_rng(0)
a, b = rng.random((2, 300, 300), dtype=np.float32)
score_map(model, a, b)
faults = []
for _ in range(3):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    score_map(model, a, b)
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
del model
held = rss()
keep_freed_memory(False)
print(min(faults), held, rss())
"""


def _run(case: str, keep: str | None = None) -> tuple[int, int, int]:
    env = dict(os.environ)
    env.pop("FOCUSFUSE_KEEP_MEMORY", None)
    if keep is not None:
        env["FOCUSFUSE_KEEP_MEMORY"] = keep
    out = subprocess.run([sys.executable, "-c", SCORES, case], env=env, capture_output=True,
                         text=True, check=True).stdout.split()
    return tuple(int(n) for n in out)


# the network's intermediates for a 300×300 pair are about 200 MB: 50,000 pages of 4 KB

@pytest.mark.skipif(not GLIBC, reason="only glibc's malloc is tuned")
def test_later_score_maps_reuse_the_freed_memory_and_it_can_be_given_back():
    faults, held, after = _run("default")
    assert faults < 2000
    assert after < held - 500  # the kernel's spectrum (613 MB) and the intermediates


@pytest.mark.skipif(not GLIBC, reason="only glibc's malloc is tuned")
@pytest.mark.parametrize("case,keep", [("default", "0"), ("default", "off"), ("off-before", None)])
def test_keeping_freed_memory_can_be_turned_off(case, keep):
    faults, _, _ = _run(case, keep)
    assert faults > 10_000  # every score map faults its intermediates in afresh
