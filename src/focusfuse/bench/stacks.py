"""``focusfuse bench --stacks``: stack methods scored against the truth of synthetic stacks.

A stack set is what :func:`focusfuse.bench.truth.make_truth_stacks` (``focusfuse make-truth
--frames N``) writes: a folder per stack, ``NAME/`` with its frames, and beside it
``NAME-truth.png`` and, optionally, ``NAME-oracle.png`` (the per-pixel oracle). Every
method runs as ``focusfuse stack`` runs it (:func:`focusfuse.stacking.stack`: frames read
from the files, aligned unless ``align=False``, one decision over all frames), is timed
(wall seconds of that call, reading and aligning included; the first stack of each method
is run once untimed first, to load its network), rounded to 8 bit and scored with
:func:`~focusfuse.bench.truth.truth_scores` (PSNR and SSIM on the central 80%, after
registration to the truth when the set's ``truth.json`` says its frames move). The
oracle is a row of its own. The eight no-reference metrics are not computed: they are
defined for two sources.

Written in ``out``: ``stacks_per_stack.csv`` (method, stack, PSNR, SSIM, seconds, frames
kept), ``stacks_averages.csv`` and ``stacks.md`` (means per method, median seconds), and
each fused image, ``fused/SLUG/NAME.png``.
"""

from __future__ import annotations

import csv
import os
import statistics
import time
import warnings
from pathlib import Path
from typing import Sequence

import numpy as np

from focusfuse.fusion.registry import STACK_METHODS

__all__ = ["find_stacks", "run_stack_bench"]


def find_stacks(folder: str | os.PathLike) -> list[tuple[str, Path, Path, Path | None]]:
    """The stacks of a set: ``(name, frames folder, truth file, oracle file or None)``, in
    natural order; a stack folder without ``NAME-truth.png`` beside it is left out with a
    warning. A ValueError when there is none."""
    from focusfuse.stacking import natural_key

    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"stack set {folder} is not a folder; give a folder written by "
                         "focusfuse make-truth --frames N")
    found, missing = [], []
    for sub in sorted((p for p in folder.iterdir() if p.is_dir()), key=lambda p: natural_key(p.name)):
        truth = folder / f"{sub.name}-truth.png"
        oracle = folder / f"{sub.name}-oracle.png"
        if truth.is_file():
            found.append((sub.name, sub, truth, oracle if oracle.is_file() else None))
        else:
            missing.append(sub.name)
    if missing:
        warnings.warn(f"{len(missing)} stack folder(s) without NAME-truth.png left out: "
                      f"{', '.join(missing[:5])}", stacklevel=2)
    if not found:
        raise ValueError(f"{folder} holds no stack folder with a NAME-truth.png beside it; make "
                         "a set with focusfuse make-truth --frames 8")
    return found


def _options(spec, device: str) -> dict:
    if spec.uses_network:
        out = {"precision": spec.precision, "device": device}
        if spec.weights is not None:
            out["weights"] = str(spec.weights)
        return out
    return {"weights": str(spec.weights)} if spec.weights is not None else {}


def run_stack_bench(folder: str | os.PathLike, specs: Sequence, out: str | os.PathLike, *,
                    align: bool = True, register: bool | None = None, limit: int | None = None,
                    progress: bool = True, device: str = "auto") -> dict:
    """Run every method spec (:func:`~focusfuse.bench.runner.parse_methods`) on every stack
    of ``folder``; see the module's notes. ``register``: None follows the set's
    ``truth.json``. Returns ``{"rows": per-stack rows, "means": {label: {...}}, "paths", "stacks": count}``."""
    from focusfuse.bench.runner import Progress
    from focusfuse.bench.truth import folder_registers, truth_scores
    from focusfuse.io import quantize, read_image, write_image
    from focusfuse.stacking import stack, stack_frames

    bad = [s.label for s in specs if s.method not in STACK_METHODS]
    if bad:
        raise ValueError(f"{', '.join(bad)}: not a stack method; choose from "
                         f"{', '.join(STACK_METHODS)}")
    stacks = find_stacks(folder)[:limit]
    moving = folder_registers(folder) if register is None else bool(register)
    out = Path(out)
    bar = Progress(len(stacks) * (len(specs) + 1), enabled=progress)
    for spec in specs:
        (out / "fused" / spec.slug).mkdir(parents=True, exist_ok=True)
    rows = []
    for name, frames_dir, truth_path, oracle_path in stacks:
        truth = read_image(truth_path)
        if oracle_path is not None:
            rows.append({"method": "oracle", "stack": name, "frames": "",
                         **truth_scores(read_image(oracle_path), truth), "seconds": ""})
        bar.update(f"oracle {name}")
    for spec in specs:
        warmed = False
        for name, frames_dir, truth_path, _ in stacks:
            paths = stack_frames([frames_dir])
            options = _options(spec, device)
            if not warmed:
                stack(paths, method=spec.method, align=align, progress=None, **options)
                warmed = True
            t0 = time.perf_counter()
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                result, info = stack(paths, method=spec.method, align=align, **options)
            seconds = time.perf_counter() - t0
            fused8 = quantize(result.fused, 8).astype(np.float32) / np.float32(255.0)
            write_image(out / "fused" / spec.slug / f"{name}.png", fused8)
            scores = truth_scores(fused8, read_image(truth_path), register_first=moving)
            rows.append({"method": spec.label, "stack": name, "frames": len(info["paths"]),
                         "PSNR": scores["PSNR"], "SSIM": scores["SSIM"],
                         "seconds": round(seconds, 3),
                         "warnings": "; ".join(str(w.message) for w in caught)})
            bar.update(f"{spec.label} {name}")
    means = {}
    for label in dict.fromkeys(r["method"] for r in rows):
        mine = [r for r in rows if r["method"] == label]
        secs = [r["seconds"] for r in mine if r["seconds"] != ""]
        means[label] = {"stacks": len(mine),
                        "PSNR": float(np.mean([r["PSNR"] for r in mine])),
                        "SSIM": float(np.mean([r["SSIM"] for r in mine])),
                        "seconds": statistics.median(secs) if secs else None}
    paths = _write(out, rows, means, Path(folder), moving)
    return {"rows": rows, "means": means, "paths": paths, "stacks": len(stacks)}


def _write(out: Path, rows: list[dict], means: dict, folder: Path, moving: bool) -> dict:
    from focusfuse.bench.machine import machine_info

    out.mkdir(parents=True, exist_ok=True)
    per = out / "stacks_per_stack.csv"
    with open(per, "w", newline="") as fh:
        w = csv.DictWriter(fh, ["method", "stack", "frames", "PSNR", "SSIM", "seconds",
                                "warnings"], extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    avg = out / "stacks_averages.csv"
    with open(avg, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["method", "stacks", "PSNR", "SSIM", "median_seconds"])
        for label, m in means.items():
            w.writerow([label, m["stacks"], f"{m['PSNR']:.4f}", f"{m['SSIM']:.4f}",
                        "" if m["seconds"] is None else f"{m['seconds']:.3f}"])
    info = machine_info()
    lines = [f"Stacks of `{folder}`, scored against their truth (PSNR, SSIM on the central "
             f"80%{', after registration' if moving else ''}). Machine: {info['cpu']}, "
             f"{info['usable_cpus']} cores, torch {info['torch']}.", "",
             "| method | stacks | PSNR (dB) | SSIM | s / stack (median) |", "|---|---:|---:|---:|---:|"]
    best = max((m["PSNR"] for k, m in means.items() if k != "oracle"), default=None)
    for label, m in means.items():
        psnr = f"{m['PSNR']:.2f}"
        if label != "oracle" and m["PSNR"] == best:
            psnr = f"**{psnr}**"
        secs = "–" if m["seconds"] is None else f"{m['seconds']:.2f}"
        lines.append(f"| {label} | {m['stacks']} | {psnr} | {m['SSIM']:.4f} | {secs} |")
    md = out / "stacks.md"
    md.write_text("\n".join(lines) + "\n")
    return {"per_stack": per, "averages": avg, "markdown": md}
