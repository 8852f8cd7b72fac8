"""A short seeded run of the image fuzzer (benchmarks/fuzz.py): no mutant may crash read_image.

300 mutants of the fuzzer's seed files (PNG, JPEG, TIFF of every kind focusfuse reads),
one in eight with a rewritten width or height, read in this process: each must be refused
with an ImageReadError of one line or read as float32 in [0, 1], with nothing printed on
stderr and no warning but ours. The long run (10,000 mutants and 500 command-line runs
under a memory cap) is `python benchmarks/fuzz.py`; its last counts are in
docs/robustness.md. The pixel limit is lowered here so that a mutant claiming a large
size is refused without decoding hundreds of MB in the test process.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

FUZZ = Path(__file__).resolve().parents[1] / "benchmarks" / "fuzz.py"


@pytest.fixture(scope="module")
def fuzz():
    spec = importlib.util.spec_from_file_location("focusfuse_fuzz", FUZZ)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def seeds(fuzz, tmp_path_factory):
    return fuzz.make_seeds(tmp_path_factory.mktemp("seeds"))


def test_every_seed_file_reads(fuzz, seeds, tmp_path):
    records = fuzz.fuzz_in_process(seeds, tmp_path, [], seed=0)
    assert records == []
    outcomes = {p.name: fuzz.check_one(p)[0] for p in seeds}
    assert outcomes.pop("twopage.tif") == "refused"  # a multi-page TIFF, by design
    assert set(outcomes.values()) == {"read"}, outcomes


def test_mutants_are_a_function_of_seed_and_index(fuzz, seeds):
    assert fuzz.mutant(seeds, 3, 17) == fuzz.mutant(seeds, 3, 17)
    assert fuzz.mutant(seeds, 3, 17)[0] != fuzz.mutant(seeds, 3, 18)[0]


def test_no_mutant_crashes_read_image(fuzz, seeds, tmp_path):
    records = fuzz.fuzz_in_process(seeds, tmp_path, range(300), seed=2024, max_pixels=2**22)
    summary = fuzz.summary(records)
    crashes = [r for r in records if r["outcome"].startswith("crash")]
    assert not crashes, crashes[:5]
    assert summary["header_mutations"] >= 20  # one in eight rewrites a size
    outcomes = summary["outcomes"]
    assert outcomes.get("refused", 0) > 100 and outcomes.get("read", 0) > 20
