"""Run fusion methods over a folder of pairs, timed and scored, with a cache that makes runs resumable.

- :func:`find_pairs`: ``NAME-A.ext`` + ``NAME-B.ext`` (or ``_A``/``_B``) in one folder, with
  the all-in-focus ``NAME-truth.ext`` and the per-pixel ``NAME-oracle.ext`` when there;
- :func:`parse_methods`: method specs ``METHOD[@WEIGHTS][:PRECISION]``;
- :func:`run_methods`: each method on every pair. The model is loaded once per method and
  the method is warmed up once (on its first pair still to do, untimed); then each pair's
  :func:`focusfuse.fuse` call is timed alone (no reading, writing or scoring). The fused
  image, rounded to 8 bit as published results are, is scored with the eight metrics of
  :mod:`focusfuse.metrics`, and when the pair has a truth, with PSNR and SSIM against it
  (:func:`focusfuse.bench.truth.truth_scores`);
- :func:`score_oracle`: the pairs' oracle images, scored the same way;
- :func:`score_reference`: published fused images (a folder per method) scored the same way,
  with the published values of ``metrics.csv`` beside them when the folder has one.

Cache: ``OUT/fused/<method>/<pair>.png`` (and ``<pair>-decision.png`` for CNN methods) with
``<pair>.json`` (time, scores, and the settings it was made with), and
``OUT/reference/<method>/<pair>.json`` and ``OUT/oracle/<pair>.json``. A pair whose JSON exists with the same settings is
not redone, so an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import os
import re
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from focusfuse.checks import ImageError, check_choice
from focusfuse.device import PRECISIONS
from focusfuse.fusion.registry import METHODS
from focusfuse.io import SUPPORTED_SUFFIXES, quantize
from focusfuse.stacking import natural_key

__all__ = ["MethodSpec", "Pair", "Progress", "find_pairs", "parse_methods", "run_methods",
           "score_oracle", "score_reference", "read_published", "CNN_METHODS", "PRECISIONS"]

#: the registered methods that run the focus classifier (take @WEIGHTS and :PRECISION)
CNN_METHODS = tuple(name for name, m in METHODS.items() if m.uses_network)
#: the methods that take a weights file (``METHOD@FILE``) but no precision
WEIGHTED_METHODS = ("learned-pyramid",)
IMAGE_SUFFIXES = SUPPORTED_SUFFIXES  # what focusfuse.io reads
_SOURCE = re.compile(r"^(?P<name>.+)[-_](?P<letter>[A-Za-z])$")
#: the all-in-focus truth and the per-pixel oracle of a pair (focusfuse.bench.truth)
_TRUTH = re.compile(r"^(?P<name>.+)[-_](?P<kind>truth|oracle)$", re.IGNORECASE)


# pairs -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Pair:
    """A source pair: ``name`` (e.g. ``lytro-01``), the paths of A and B, and of the
    all-in-focus truth and the per-pixel oracle (None when the folder has none)."""

    name: str
    a: Path
    b: Path
    truth: Path | None = None
    oracle: Path | None = None


def find_pairs(folder: str | os.PathLike) -> list[Pair]:
    """The pairs of ``folder``: files ``NAME-A.ext`` and ``NAME-B.ext`` (``_A``/``_B`` too),
    with ``NAME-truth.ext`` (the all-in-focus truth) and ``NAME-oracle.ext`` when there.

    Names are sorted naturally (``x-2`` before ``x-10``). A name with only one of A and B is
    left out with a warning; a name with a C (a stack) is benchmarked on A and B only, with a
    warning. When some pairs have a truth and others not, a warning says so (the scores
    against the truth are then the means over fewer pairs).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"pairs folder {folder} does not exist; check --pairs")
    found: dict[str, dict[str, Path]] = {}
    extras: dict[str, dict[str, Path]] = {}  # name -> {"truth": path, "oracle": path}
    for path in folder.iterdir():
        if path.suffix.lower() not in IMAGE_SUFFIXES or not path.is_file():
            continue
        t = _TRUTH.match(path.stem)
        if t:
            extras.setdefault(t["name"], {})[t["kind"].lower()] = path
            continue
        m = _SOURCE.match(path.stem)
        if m:
            found.setdefault(m["name"], {})[m["letter"].upper()] = path
    for name in extras:
        found.setdefault(name, {})
    pairs, incomplete, stacks = [], [], []
    for name in sorted(found, key=natural_key):
        letters = found[name]
        if "A" in letters and "B" in letters:
            more = extras.get(name, {})
            pairs.append(Pair(name, letters["A"], letters["B"], more.get("truth"),
                              more.get("oracle")))
            if len(letters) > 2:
                stacks.append(name)
        else:
            incomplete.append(name)
    if not pairs:
        raise ValueError(f"no image pairs in {folder}: expected files named NAME-A.ext and "
                         f"NAME-B.ext (ext: {', '.join(s[1:] for s in IMAGE_SUFFIXES)})")
    if incomplete:
        warnings.warn(f"left out {len(incomplete)} name(s) without both an A and a B file: "
                      f"{', '.join(incomplete[:5])}{' ...' if len(incomplete) > 5 else ''}",
                      stacklevel=2)
    if stacks:
        warnings.warn(f"{len(stacks)} name(s) have more than two sources ({', '.join(stacks[:5])}); "
                      "only A and B are benchmarked", stacklevel=2)
    no_truth = [p.name for p in pairs if p.truth is None]
    if no_truth and len(no_truth) < len(pairs):
        warnings.warn(f"{len(no_truth)} of {len(pairs)} pairs have no NAME-truth file "
                      f"({', '.join(no_truth[:5])}{' ...' if len(no_truth) > 5 else ''}); PSNR "
                      "and SSIM are the means over the others", stacklevel=2)
    return pairs


# method specs -------------------------------------------------------------------------

@dataclass(frozen=True)
class MethodSpec:
    """One column of a benchmark: a fusion method, its weights and its network precision.

    ``label`` is the spec as written (``"cnn@authors:fp32"``); ``weights`` is None for
    the shipped model; ``precision`` is what was asked ("auto", "bf16", "fp32").
    """

    label: str
    method: str
    weights: Path | None = None
    weights_name: str | None = None
    precision: str = "auto"

    @property
    def uses_network(self) -> bool:
        return self.method in CNN_METHODS

    @property
    def slug(self) -> str:
        return re.sub(r"[^A-Za-z0-9._-]+", "_", self.label.replace("@", "_at_").replace(":", "_"))




def parse_methods(text: str, *, weights: dict[str, str | os.PathLike] | None = None,
                  precision: str = "auto") -> list[MethodSpec]:
    """Method specs from ``"cnn,cnn@authors:fp32,dwt"`` (see :data:`SPEC_HELP`).

    ``weights``: names usable after ``@``, mapped to weight files. ``precision``: the
    network precision of CNN specs that name none.
    """
    from focusfuse.models import SHIPPED, default_weights_path

    check_choice("precision", precision, PRECISIONS)
    named = {k: Path(v) for k, v in (weights or {}).items()}
    for name, path in named.items():
        if not path.is_file():
            raise ValueError(f"weights {name}={path}: no such file; check --weights")
    specs: list[MethodSpec] = []
    items = [t.strip() for t in text.split(",")]
    if not any(items):
        raise ValueError("methods is empty; give e.g. --methods cnn,dtcwt,dwt")
    for item in items:
        if not item:
            continue
        body, prec = item, None
        if ":" in item and item.rsplit(":", 1)[1] in PRECISIONS:
            body, prec = item.rsplit(":", 1)
        method, _, wname = body.partition("@")
        if method not in METHODS:
            raise ValueError(f"unknown method {method!r} in {item!r}; choose from "
                             f"{', '.join(METHODS)} (syntax: METHOD[@WEIGHTS][:PRECISION])")
        if method not in CNN_METHODS and prec:
            raise ValueError(f"{item!r}: {method} runs in float32 or uses no network, so it "
                             f"takes no :PRECISION; leave it out")
        if method not in CNN_METHODS + WEIGHTED_METHODS and wname:
            raise ValueError(f"{item!r}: {method} uses no network, so it takes no @WEIGHTS; "
                             f"write just {method!r}")
        path = None
        if wname:
            if wname in named:
                path = named[wname]
            elif wname in SHIPPED and method in CNN_METHODS:
                path = default_weights_path(wname)
            elif Path(wname).is_file():
                path = Path(wname)
                wname = path.stem
            else:
                raise ValueError(f"weights {wname!r} in {item!r}: not a name given with "
                                 f"--weights NAME=FILE and not a file; add --weights {wname}=FILE")
        spec = MethodSpec(item, method, path, wname or None, prec or precision)
        if any(s.label == spec.label for s in specs):
            raise ValueError(f"method {item!r} is listed twice; list it once")
        specs.append(spec)
    return specs


# progress -----------------------------------------------------------------------------

class Progress:
    """A one-line progress bar on stderr (a line per item when stderr is not a terminal)."""

    def __init__(self, total: int, *, enabled: bool = True, stream=None, width: int = 24):
        self.total, self.done, self.enabled = total, 0, enabled
        self.stream = stream or sys.stderr
        self.width = width
        self.last = time.perf_counter()
        self.worked = 0  # items that were computed, not read from the cache
        self.work_time = 0.0  # wall time of those items (fusing, scoring, writing)
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()

    def update(self, text: str, *, cached: bool = False) -> None:
        now = time.perf_counter()
        self.done += 1
        if not cached:
            self.worked += 1
            self.work_time += now - self.last
        self.last = now
        if not self.enabled:
            return
        frac = self.done / max(self.total, 1)
        bar = "#" * round(frac * self.width) + "-" * (self.width - round(frac * self.width))
        eta = ""
        if self.worked and self.done < self.total:
            left = (self.total - self.done) * self.work_time / self.worked
            eta = f" eta {int(left // 60)}m{int(left % 60):02d}s"
        line = f"bench [{bar}] {self.done}/{self.total} {text}{' (cached)' if cached else ''}{eta}"
        if self.tty:
            self.stream.write("\r" + line[:150].ljust(150))
            if self.done >= self.total:
                self.stream.write("\n")
        else:
            self.stream.write(line + "\n")
        self.stream.flush()


# running ------------------------------------------------------------------------------

def _sha1(path: Path) -> str:
    h = hashlib.sha1()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _write_json(path: Path, data) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1))
    tmp.replace(path)


def _read_json(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _score(a, b, fused8) -> dict[str, float]:
    from focusfuse.metrics import evaluate

    return evaluate(a, b, fused8)


def _truth_key(pair: Pair, register: bool) -> dict:
    """What the scores against the truth depend on, for the cache key (empty without one)."""
    if pair.truth is None:
        return {}
    from focusfuse.bench.truth import CENTRE

    return {"truth": _sha1(pair.truth), "register": bool(register), "centre": CENTRE}


def _truth_score(pair: Pair, image: np.ndarray, register: bool) -> dict | None:
    """PSNR and SSIM of ``image`` (float, as published) against the pair's truth, or None."""
    if pair.truth is None:
        return None
    from focusfuse.bench.truth import truth_scores
    from focusfuse.io import read_image

    try:
        return truth_scores(image, read_image(pair.truth), register_first=register)
    except ValueError as exc:
        raise ValueError(f"pair {pair.name}: {exc} ({pair.truth.name})") from None


@dataclass
class MethodRun:
    """The results of one method spec: one record per pair, and how it ran."""

    spec: MethodSpec
    records: list[dict] = field(default_factory=list)
    precision: str = "numpy"  # resolved: "bf16", "fp32", or "numpy" for the multiscale methods
    device: str = "cpu"
    warmup_seconds: float | None = None


def _resolved(spec: MethodSpec, device: str) -> tuple[str, str]:
    if spec.method in WEIGHTED_METHODS:  # learned-pyramid: its network in float32 on the CPU
        return "fp32", "cpu"
    if not spec.uses_network:
        return "numpy", "cpu"
    from focusfuse.device import resolve_device, resolve_precision

    dev = resolve_device(device)
    return resolve_precision(spec.precision, dev), dev


def _fuse_aligned(images, *, method: str, **options):
    """Fuse ``images`` after aligning them, as ``focusfuse stack`` does (a source that
    cannot be aligned is an error: a pair cannot lose one)."""
    from focusfuse.stacking import stack

    return stack(list(images), method=method, align=True, strict=True, **options)[0]


def run_methods(pairs: Sequence[Pair], specs: Sequence[MethodSpec], out: str | os.PathLike, *,
                device: str = "auto", refresh: bool = False, progress: Progress | None = None,
                fuse_fn: Callable | None = None, register: bool = False,
                align: bool = False) -> list[MethodRun]:
    """Fuse every pair with every method, time and score it, caching each pair under ``out``.

    ``refresh``: redo pairs already in the cache. ``fuse_fn``: the fusion function
    (default :func:`focusfuse.fuse`; tests pass a counting wrapper). ``register``: warp each
    fused image into its truth's geometry before PSNR and SSIM (pairs with a truth only).
    """
    from focusfuse import fuse as _fuse
    from focusfuse.io import read_image, write_image
    from focusfuse.models import default_weights_path, load_weights

    if align:
        from focusfuse.fusion.registry import STACK_METHODS

        if fuse_fn is not None:
            raise ValueError("align uses focusfuse.stacking.stack to fuse; give align or "
                             "fuse_fn, not both")
        bad = [s.label for s in specs if s.method not in STACK_METHODS]
        if bad:
            raise ValueError(f"{', '.join(bad)}: aligned pairs go to focusfuse stack, which "
                             f"takes {', '.join(STACK_METHODS)}; leave {', '.join(bad)} out")
    fuse_fn = fuse_fn or (_fuse_aligned if align else _fuse)
    out = Path(out)
    runs = []
    for spec in specs:
        precision, dev = _resolved(spec, device)
        run = MethodRun(spec, precision=precision, device=dev)
        folder = out / "fused" / spec.slug
        folder.mkdir(parents=True, exist_ok=True)
        settings = {"method": spec.method, "precision": precision, "device": dev,
                    **({"align": True} if align else {})}
        wpath = None
        if spec.uses_network:
            wpath = spec.weights or default_weights_path()
        elif spec.method in WEIGHTED_METHODS:
            from focusfuse.fusion.learned import weights_path

            wpath = weights_path(spec.weights)
        if wpath is not None:
            settings["weights"] = wpath.name
            settings["weights_sha1"] = _sha1(wpath)
        model = None
        warmed = False
        for pair in pairs:
            record_path = folder / f"{pair.name}.json"
            key = {**settings, "sources": [_sha1(pair.a), _sha1(pair.b)],
                   **_truth_key(pair, register)}
            old = None if refresh else _read_json(record_path)
            if old and old.get("settings") == key and (folder / f"{pair.name}.png").is_file():
                run.records.append(old)
                if progress:
                    progress.update(f"{spec.label} {pair.name}", cached=True)
                continue
            a, b = read_image(pair.a), read_image(pair.b)
            if a.ndim == 3 and a.shape[2] == 4 and b.shape[2:] == (4,):
                a, b = a[..., :3], b[..., :3]  # the metrics score colour without alpha
            options = {"method": spec.method}
            if spec.uses_network:
                if model is None:
                    model = load_weights(spec.weights)
                options.update(model=model, precision=spec.precision, device=device)
            elif spec.weights is not None:
                options["weights"] = str(spec.weights)
            try:
                if not warmed:
                    t0 = time.perf_counter()
                    fuse_fn([a, b], **options)
                    run.warmup_seconds = time.perf_counter() - t0
                    warmed = True
                t0 = time.perf_counter()
                result = fuse_fn([a, b], **options)
                seconds = time.perf_counter() - t0
            except ImageError as exc:  # the check of fuse(), told in the pair's file names
                raise ValueError(f"pair {pair.name}: {exc.named([pair.a.name, pair.b.name])}") from None
            except ValueError as exc:  # e.g. a source that cannot be aligned
                raise ValueError(f"pair {pair.name}: {exc}") from None
            fused8 = quantize(result.fused, 8)  # as written, and as published
            published = fused8.astype(np.float32) / np.float32(255.0)
            write_image(folder / f"{pair.name}.png", published)
            if result.decision_map is not None:
                write_image(folder / f"{pair.name}-decision.png",
                            np.clip(result.decision_map, 0.0, 1.0))
            record = {
                "pair": pair.name, "method": spec.label, "seconds": seconds,
                "megapixels": a.shape[0] * a.shape[1] / 1e6, "size": list(a.shape[:2]),
                "precision": precision, "device": dev, "scores": _score(a, b, fused8),
                "truth": _truth_score(pair, published, register),
                "settings": key, "finished": time.strftime("%Y-%m-%d %H:%M:%S"),
            }
            _write_json(record_path, record)
            run.records.append(record)
            if progress:
                progress.update(f"{spec.label} {pair.name}")
        runs.append(run)
    return runs


# published results --------------------------------------------------------------------

def reference_methods(folder: Path, pairs: Sequence[Pair]) -> dict[str, dict[str, Path]]:
    """``{method: {pair name: image}}`` for the method folders of ``folder``."""
    found = {}
    names = {p.name for p in pairs}
    for sub in sorted(p for p in folder.iterdir() if p.is_dir()):
        images = {f.stem: f for f in sorted(sub.iterdir())
                  if f.suffix.lower() in IMAGE_SUFFIXES and f.stem in names}
        if images:
            found[sub.name] = images
    return found


def score_reference(pairs: Sequence[Pair], folder: str | os.PathLike, out: str | os.PathLike, *,
                    progress: Progress | None = None,
                    register: bool = False) -> dict[str, list[dict]]:
    """Score the published fused images in ``folder/<method>/<pair>.<ext>`` like ours
    (against the truth too, for pairs with one).

    Returns ``{method: [record per pair]}``; cached under ``out/reference``.
    """
    from focusfuse.io import read_image

    folder, out = Path(folder), Path(out)
    if not folder.is_dir():
        raise ValueError(f"reference folder {folder} does not exist; check --reference")
    methods = reference_methods(folder, pairs)
    if not methods:
        raise ValueError(f"reference folder {folder} has no method folders with images named "
                         f"after the pairs (e.g. {folder}/cnn/{pairs[0].name}.png)")
    results: dict[str, list[dict]] = {}
    for method, images in methods.items():
        cache = out / "reference" / method
        cache.mkdir(parents=True, exist_ok=True)
        results[method] = []
        for pair in pairs:
            if pair.name not in images:
                continue
            path = images[pair.name]
            key = {"image": _sha1(path), "sources": [_sha1(pair.a), _sha1(pair.b)],
                   **_truth_key(pair, register)}
            old = _read_json(cache / f"{pair.name}.json")
            if old and old.get("settings") == key:
                results[method].append(old)
                if progress:
                    progress.update(f"{method} (published) {pair.name}", cached=True)
                continue
            a, b, fused = read_image(pair.a), read_image(pair.b), read_image(path)
            fused = _drop_alpha(fused)
            record = {"pair": pair.name, "method": method, "image": str(path),
                      "scores": _score(a, b, fused), "truth": _truth_score(pair, fused, register),
                      "settings": key}
            _write_json(cache / f"{pair.name}.json", record)
            results[method].append(record)
            if progress:
                progress.update(f"{method} (published) {pair.name}")
    return results


def score_oracle(pairs: Sequence[Pair], out: str | os.PathLike, *, refresh: bool = False,
                 progress: Progress | None = None, register: bool = False) -> list[dict]:
    """Score the ``NAME-oracle`` image of every pair that has one and a truth, like a
    method's output (the eight metrics, PSNR and SSIM); one record per pair, cached under
    ``out/oracle``. Empty when no pair has both."""
    from focusfuse.io import read_image

    todo = [p for p in pairs if p.oracle is not None and p.truth is not None]
    if not todo:
        return []
    cache = Path(out) / "oracle"
    cache.mkdir(parents=True, exist_ok=True)
    records = []
    for pair in todo:
        key = {"image": _sha1(pair.oracle), "sources": [_sha1(pair.a), _sha1(pair.b)],
               **_truth_key(pair, register)}
        old = None if refresh else _read_json(cache / f"{pair.name}.json")
        if old and old.get("settings") == key:
            records.append(old)
            if progress:
                progress.update(f"oracle {pair.name}", cached=True)
            continue
        a, b, image = (_drop_alpha(read_image(p)) for p in (pair.a, pair.b, pair.oracle))
        record = {"pair": pair.name, "method": "oracle", "image": str(pair.oracle),
                  "scores": _score(a, b, image), "truth": _truth_score(pair, image, register),
                  "settings": key}
        _write_json(cache / f"{pair.name}.json", record)
        records.append(record)
        if progress:
            progress.update(f"oracle {pair.name}")
    return records


def _drop_alpha(image: np.ndarray) -> np.ndarray:
    """An image without its alpha channel (the metrics and the truth score colour only)."""
    return image[..., :3] if image.ndim == 3 and image.shape[2] == 4 else image


def read_published(folder: str | os.PathLike, pairs: Sequence[Pair]) -> dict[str, list[dict]]:
    """The published metric values of ``folder/metrics.csv`` (columns pair, method, metrics)
    for the given pairs: ``{method: [{"pair", "scores"}]}``; empty without the file."""
    from focusfuse.metrics import METRICS

    path = Path(folder) / "metrics.csv"
    if not path.is_file():
        return {}
    names = {p.name for p in pairs}
    out: dict[str, list[dict]] = {}
    with open(path, newline="") as fh:
        for row in csv.DictReader(fh):
            if row.get("pair") in names and all(m in row for m in METRICS):
                out.setdefault(row["method"], []).append(
                    {"pair": row["pair"], "method": row["method"],
                     "scores": {m: float(row[m]) for m in METRICS}})
    return out


def stats(values: Sequence[float]) -> dict[str, float]:
    """Median, quartiles, minimum and maximum."""
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0:
        return {k: math.nan for k in ("median", "q1", "q3", "min", "max")}
    return {"median": float(np.median(v)), "q1": float(np.percentile(v, 25)),
            "q3": float(np.percentile(v, 75)), "min": float(v.min()), "max": float(v.max())}
