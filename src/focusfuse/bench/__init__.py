"""Benchmarks over a dataset: quality and speed of fusion methods beside published results.

``run_bench(pairs_dir, specs, out, reference=...)`` finds the pairs, runs every method on
every pair (timed, scored, cached so that an interrupted run resumes), scores the published
images, records the machine, and returns a :class:`BenchRun`; ``write_report`` writes
CSV, Markdown, HTML and figures. ``focusfuse bench`` is the command line of both. Pairs
with an all-in-focus truth (``NAME-truth.ext``; a set of them is made by
``focusfuse.bench.truth.make_truth_set``, ``focusfuse make-truth``) are also scored
against it (PSNR, SSIM), and their per-pixel oracle (``NAME-oracle.ext``) is a row.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from focusfuse import lazy_attributes

if TYPE_CHECKING:
    from focusfuse.bench.report import BenchRun
    from focusfuse.bench.runner import MethodSpec

#: the syntax of a method spec (:func:`~focusfuse.bench.runner.parse_methods`)
SPEC_HELP = ("METHOD[@WEIGHTS][:PRECISION], comma-separated. METHOD: {methods}. WEIGHTS (CNN "
             "methods): a NAME given with --weights NAME=FILE, a shipped model (paper, "
             "fast) or a file (.safetensors or the authors' .mat); none: the shipped paper "
             "model; learned-pyramid takes a NAME or a BandNet file. PRECISION (CNN methods "
             "only): auto, bf16 or fp32; none: --precision. "
             "E.g. cnn,cnn@authors:fp32,cnn@fast,dwt")

#: the names below live in runner.py and report.py, imported on first use (the command
#: line's --help reads SPEC_HELP without loading NumPy's and OpenCV's users)
_HOME = {name: "focusfuse.bench.runner" for name in (
    "MethodRun", "MethodSpec", "Pair", "Progress", "find_pairs", "parse_methods",
    "read_published", "run_methods", "score_oracle", "score_reference")}
_HOME.update({name: "focusfuse.bench.report" for name in (
    "BenchRun", "deviations", "summarize", "truth_correlations", "write_report")})
_HOME.update({name: "focusfuse.bench.truth" for name in (
    "make_truth_pair", "make_truth_set", "make_truth_stacks", "register", "truth_scores")})
_HOME.update({name: "focusfuse.bench.stacks" for name in ("find_stacks", "run_stack_bench")})


__getattr__ = lazy_attributes(__name__, globals(), _HOME)

__all__ = sorted(["SPEC_HELP", "run_bench", *_HOME])


def run_bench(pairs_dir: str | os.PathLike, specs: Sequence[MethodSpec], out: str | os.PathLike, *,
              reference: str | os.PathLike | None = None, device: str = "auto",
              refresh: bool = False, progress: bool = True, limit: int | None = None,
              fuse_fn=None, register: bool | None = None, align: bool = False) -> BenchRun:
    """Run ``specs`` on every pair of ``pairs_dir`` (the first ``limit`` pairs if given),
    score the published images of ``reference`` if given, and record the machine.

    ``out`` is created if needed and holds the cache; a second call with the same arguments
    reads every finished pair from it (``refresh=True`` redoes them). Pairs with a truth are
    scored against it too, and their oracle images are a row of their own. ``register``:
    warp each image into its truth's geometry before PSNR and SSIM (OpenCV ECC, affine);
    None: when the folder's ``truth.json`` says its sources move (the hand-held variants).
    ``align``: align each pair's sources first, as ``focusfuse stack`` does
    (:func:`focusfuse.stacking.stack`; the time includes it), for every method alike.
    """
    from focusfuse.bench.machine import machine_info
    from focusfuse.bench.report import BenchRun
    from focusfuse.bench.runner import (Progress, find_pairs, read_published, run_methods,
                                        score_oracle, score_reference)
    from focusfuse.bench.truth import folder_registers
    from focusfuse.checks import check_device

    check_device("device", device)
    pairs = find_pairs(pairs_dir)
    if limit is not None:
        if limit < 1:
            raise ValueError(f"limit must be at least 1; got {limit}")
        pairs = pairs[:limit]
    if not specs:
        raise ValueError("no methods to run; give e.g. --methods cnn,dtcwt")
    if reference is not None and not Path(reference).is_dir():
        raise ValueError(f"reference folder {reference} does not exist; check --reference")
    if register is None:
        register = folder_registers(pairs_dir)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"output {out} is a file; give a folder for --out")
    out.mkdir(parents=True, exist_ok=True)
    n_ref = 0
    if reference is not None:
        from focusfuse.bench.runner import reference_methods

        n_ref = sum(len(v) for v in reference_methods(Path(reference), pairs).values())
    n_oracle = sum(p.oracle is not None and p.truth is not None for p in pairs)
    bar = Progress(len(pairs) * len(specs) + n_ref + n_oracle, enabled=progress)
    runs = run_methods(pairs, specs, out, device=device, refresh=refresh, progress=bar,
                       fuse_fn=fuse_fn, register=register, align=align)
    oracle = score_oracle(pairs, out, refresh=refresh, progress=bar, register=register)
    ref, published = {}, {}
    if reference is not None:
        ref = score_reference(pairs, reference, out, progress=bar, register=register)
        published = read_published(reference, pairs)
    machine = machine_info()
    if hasattr(os, "getloadavg"):  # other work on the machine slows the timings
        machine["load_average_1_5_15_min"] = [round(v, 2) for v in os.getloadavg()]
    machine["precision"] = {r.spec.label: r.precision for r in runs}
    machine["device"] = {r.spec.label: r.device for r in runs}
    machine["aligned"] = bool(align)
    return BenchRun(pairs=pairs, runs=runs, reference=ref, published=published,
                    machine=machine, pairs_dir=str(pairs_dir),
                    reference_dir=str(reference) if reference is not None else None,
                    oracle=oracle, registered=bool(register))
