"""Benchmarks over a dataset: quality and speed of fusion methods beside published results.

``run_bench(pairs_dir, specs, out, reference=...)`` finds the pairs, runs every method on
every pair (timed, scored, cached so that an interrupted run resumes), scores the published
images, records the machine, and returns a :class:`BenchRun`; ``write_report`` writes
CSV, Markdown, HTML and figures. ``focusfuse bench`` is the command line of both.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

from focusfuse.bench.report import BenchRun, deviations, summarize, write_report
from focusfuse.bench.runner import (
    SPEC_HELP,
    MethodRun,
    MethodSpec,
    Pair,
    Progress,
    find_pairs,
    parse_methods,
    read_published,
    run_methods,
    score_reference,
)

__all__ = ["SPEC_HELP", "BenchRun", "MethodRun", "MethodSpec", "Pair", "Progress",
           "deviations", "find_pairs", "parse_methods", "read_published", "run_bench",
           "run_methods", "score_reference", "summarize", "write_report"]


def run_bench(pairs_dir: str | os.PathLike, specs: Sequence[MethodSpec], out: str | os.PathLike, *,
              reference: str | os.PathLike | None = None, device: str = "auto",
              refresh: bool = False, progress: bool = True, limit: int | None = None,
              fuse_fn=None) -> BenchRun:
    """Run ``specs`` on every pair of ``pairs_dir`` (the first ``limit`` pairs if given),
    score the published images of ``reference`` if given, and record the machine.

    ``out`` is created if needed and holds the cache; a second call with the same arguments
    reads every finished pair from it (``refresh=True`` redoes them).
    """
    from focusfuse.bench.machine import machine_info

    pairs = find_pairs(pairs_dir)
    if limit is not None:
        if limit < 1:
            raise ValueError(f"limit must be at least 1; got {limit}")
        pairs = pairs[:limit]
    if not specs:
        raise ValueError("no methods to run; give e.g. --methods cnn,dtcwt")
    if reference is not None and not Path(reference).is_dir():
        raise ValueError(f"reference folder {reference} does not exist; check --reference")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"output {out} is a file; give a folder for --out")
    out.mkdir(parents=True, exist_ok=True)
    n_ref = 0
    if reference is not None:
        from focusfuse.bench.runner import reference_methods

        n_ref = sum(len(v) for v in reference_methods(Path(reference), pairs).values())
    bar = Progress(len(pairs) * len(specs) + n_ref, enabled=progress)
    runs = run_methods(pairs, specs, out, device=device, refresh=refresh, progress=bar,
                       fuse_fn=fuse_fn)
    ref, published = {}, {}
    if reference is not None:
        ref = score_reference(pairs, reference, out, progress=bar)
        published = read_published(reference, pairs)
    machine = machine_info()
    if hasattr(os, "getloadavg"):  # other work on the machine slows the timings
        machine["load_average_1_5_15_min"] = [round(v, 2) for v in os.getloadavg()]
    machine["precision"] = {r.spec.label: r.precision for r in runs}
    machine["device"] = {r.spec.label: r.device for r in runs}
    return BenchRun(pairs=pairs, runs=runs, reference=ref, published=published,
                    machine=machine, pairs_dir=str(pairs_dir),
                    reference_dir=str(reference) if reference is not None else None)
