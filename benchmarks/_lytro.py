"""The 20 Lytro pairs and the authors' released model, as the benchmark scripts use them.

Imported by the scripts beside it (``python benchmarks/NAME.py`` puts this folder on the
path) and by those in experiments/ (which put this folder on the path themselves);
everything reads ../shared in place.
"""

from __future__ import annotations

from pathlib import Path

import focusfuse as ff

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
PAIRS = SHARED / "lytro" / "pairs"
AUTHORS_WEIGHTS = SHARED / "weights" / "liu2016-cnnmodel.mat"


def lytro_pairs() -> list[list]:
    """The 20 pairs [A, B] (float32, 520×520 colour), lytro-01 first."""
    if not PAIRS.is_dir():
        raise SystemExit(f"needs the Lytro pairs at {PAIRS}")
    return [[ff.read_image(PAIRS / f"lytro-{i:02d}-{s}.jpg") for s in "AB"] for i in range(1, 21)]


def authors_results(pairs: list[list]) -> list:
    """The authors' released weights on each pair, in fp32 (FusionResult per pair)."""
    if not AUTHORS_WEIGHTS.is_file():
        raise SystemExit(f"needs the authors' weights at {AUTHORS_WEIGHTS}")
    authors = ff.load_weights(AUTHORS_WEIGHTS)
    return [ff.fuse(p, model=authors, precision="fp32") for p in pairs]
