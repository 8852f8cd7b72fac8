"""Many focus stacks at once, on Dask: ``focusfuse batch`` is this module's :func:`batch`
(``focusfuse.batch``).

Each stack is one task, :func:`focusfuse.stacking.stack_to_file` (what ``focusfuse stack``
runs), on a ``dask.distributed`` cluster: by default a local one sized to the machine
(:func:`local_layout`: one stack at a time per worker), or any scheduler given by its
address (a cluster started by ``dask-jobqueue`` on SLURM or LSF, say; docs/batch.md),
where each stack gets the threads of :func:`thread_plan`. A worker keeps the network
loaded between stacks.

A summary (CSV) holds one row per stack: its status, frame count, time, outputs and error.
It is rewritten in one step as stacks finish (at most once a second, and at the end), so
that a batch that is stopped (Ctrl-C, a killed job) can be run again: a stack is skipped
when the summary records it as done for the same frames and settings *and* its outputs
still have the recorded SHA-256, not merely because a file of that name exists. Each
output appears complete or not at all (:func:`focusfuse.io.write_image`), and a bad stack
is a failed row, not the end of the batch.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import os
import re
import sys
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = ["SUMMARY_FIELDS", "StackJob", "batch", "dashboard", "find_stacks", "local_layout",
           "read_summary", "thread_plan"]

#: the summary's columns; a row's status is done (written now), skipped (written before,
#: still intact), failed, or pending (not run: the batch was stopped first)
SUMMARY_FIELDS = ("stack", "status", "frames", "kept", "seconds", "output", "depth_map",
                  "bit_depth", "error", "warnings", "worker", "threads", "job", "sha256")
#: the summary is rewritten after a stack finishes if this many seconds have passed since
#: it was last written (and always at the end, also after Ctrl-C): a batch of thousands of
#: stacks does not rewrite a long file thousands of times, and a killed batch redoes at
#: most the stacks of its last second
SUMMARY_EVERY = 1.0
#: the memory one stack of a few megapixels takes at most with the CNN (docs/stacks.md:
#: 0.9 GB for 10 frames of 3 MP with the fast model), with room: a local cluster starts no
#: more workers than the machine has memory for at this size each
STACK_BYTES = 2 * 2**30


@dataclass(frozen=True)
class StackJob:
    """One stack of a batch: its ``name`` (the summary's key), its ``frames`` (files,
    folders or globs, as :func:`focusfuse.stacking.list_frames` takes them), the fused image
    to write and, if asked for, the depth map."""

    name: str
    frames: tuple[str, ...]
    output: Path
    depth_map: Path | None = None


def _check_name(name: str, where: str) -> str:
    name = str(name).strip()
    if not name or name.startswith(".") or "/" in name or "\\" in name:
        raise ValueError(f"{where}: stack name {name!r} cannot name a file; give a name without "
                         "slashes that does not start with a dot")
    return name


def find_stacks(source, out_dir: str | os.PathLike, *, suffix: str = ".png",
                depth_maps: bool = False, skip: Sequence[str | os.PathLike] = ()) -> list[StackJob]:
    """The stacks of ``source``, each with its outputs in ``out_dir``.

    ``source``: a folder of stack folders (one stack per sub-folder, named after it, in
    natural name order), a manifest (``.csv`` with a header, or ``.json``: a list of
    objects, or ``{"stacks": [...]}``), or a list of such rows (dicts, or
    :class:`StackJob`). A row has ``frames`` (a folder, a glob, a list of files, or in CSV
    files separated by ``;``) and optionally ``name`` (default: the frames' folder's name)
    and ``output`` (default ``NAME`` + ``suffix``; relative paths in ``out_dir``). Relative
    frame paths are taken from the manifest's folder. The outputs are ``NAME.png`` (or
    ``suffix``) and, with ``depth_maps``, ``NAME-depth.png``. In a folder of stack
    folders, ``out_dir`` and the folders of ``skip`` (the summary's) are not stacks, nor
    is a folder that holds one of them.
    """
    out_dir = Path(os.path.abspath(out_dir))  # absolute: a worker's folder may be another
    if isinstance(source, (str, os.PathLike)):
        path = Path(os.path.abspath(source))
        if path.is_dir():
            rows, base = _folder_rows(path, [out_dir, *(Path(os.path.abspath(p)) for p in skip)]), path
        elif path.suffix.lower() in (".csv", ".json"):
            if not path.is_file():
                raise ValueError(f"{path}: no such manifest; check the path")
            rows, base = _manifest_rows(path), path.parent
        elif not path.exists():
            raise ValueError(f"{path}: no such folder or manifest; check the path")
        else:
            raise ValueError(f"{path}: give a folder of stack folders or a manifest (.csv or "
                             ".json); to fuse one stack's frames, use focusfuse stack")
    else:
        rows, base = list(source), Path.cwd()
    jobs = [_job(row, k, base, out_dir, suffix, depth_maps) for k, row in enumerate(rows, 1)]
    if not jobs:
        raise ValueError(f"{source}: no stacks in it; a batch needs at least one")
    seen: dict[str, str] = {}
    names: set[str] = set()
    for job in jobs:
        if job.name in names:
            raise ValueError(f"two stacks are named {job.name!r}; the summary keeps one row per "
                             "name: give them different names")
        names.add(job.name)
        for path in (job.output, job.depth_map):
            if path is None:
                continue
            key = str(path.resolve())
            if key in seen:
                raise ValueError(f"stacks {seen[key]!r} and {job.name!r} would both write "
                                 f"{path}; give them different names or outputs")
            seen[key] = job.name
    return jobs


def _folder_rows(folder: Path, outputs: Sequence[Path]) -> list[dict]:
    from focusfuse.checks import IMAGE_SUFFIXES
    from focusfuse.stacking import natural_key

    def ours(p: Path) -> bool:  # the output folder, or one that holds it
        here = Path(os.path.abspath(p))
        return any(o == here or here in o.parents for o in outputs)

    entries = [p for p in folder.iterdir() if not p.name.startswith(".")]
    stacks = sorted((p for p in entries if p.is_dir() and not ours(p)),
                    key=lambda p: natural_key(p.name))
    loose = [p for p in entries if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
    if loose and not stacks:
        raise ValueError(f"{folder}: holds image files, not stack folders; fuse them with "
                         "focusfuse stack, or put each stack's frames in a folder of its own")
    if loose:
        warnings.warn(f"{folder}: left out {len(loose)} image file(s) beside the stack folders "
                      f"({', '.join(p.name for p in loose[:3])}); a batch fuses each "
                      "sub-folder", stacklevel=3)
    return [{"name": p.name, "frames": [p.name]} for p in stacks]


def _manifest_rows(path: Path) -> list[dict]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"manifest {path}: cannot be read ({exc})") from None
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"manifest {path}: not valid JSON ({exc})") from None
        if isinstance(data, dict):
            data = data.get("stacks")
        if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
            raise ValueError(f"manifest {path}: give a list of stacks, each an object with "
                             "\"frames\" (and optionally \"name\", \"output\")")
        return data
    reader = csv.DictReader(io.StringIO(text))
    if not reader.fieldnames or "frames" not in [f.strip() for f in reader.fieldnames]:
        raise ValueError(f"manifest {path}: needs a header row with a 'frames' column (and "
                         "optionally 'name', 'output')")
    rows = []
    for row in reader:
        if None in row:
            raise ValueError(f"manifest {path}: line {reader.line_num} has more fields than the "
                             "header; put frames that hold a comma in quotes")
        row = {(k or "").strip(): (v or "").strip() for k, v in row.items()}
        if any(row.values()):
            row["frames"] = [f.strip() for f in row["frames"].split(";") if f.strip()]
            rows.append(row)
    return rows


def _job(row, k: int, base: Path, out_dir: Path, suffix: str, depth_maps: bool) -> StackJob:
    if isinstance(row, StackJob):
        return row
    where = f"stack {k}"
    if not isinstance(row, dict) or not row.get("frames"):
        raise ValueError(f"{where}: no frames given; each stack needs 'frames' (a folder, a "
                         "glob or a list of files)")
    frames = row["frames"]
    frames = [frames] if isinstance(frames, (str, os.PathLike)) else list(frames)
    frames = tuple(str(f if Path(f).is_absolute() else base / f) for f in map(str, frames))
    single = len(frames) == 1 and not any(ch in Path(frames[0]).name for ch in "*?[")
    name = row.get("name") or (Path(frames[0]).name if single else Path(frames[0]).parent.name)
    name = _check_name(name, where)
    output = Path(row.get("output") or f"{name}{suffix}")
    output = output if output.is_absolute() else out_dir / output
    depth = output.with_name(f"{output.stem}-depth.png") if depth_maps else None
    return StackJob(name, frames, output, depth)


def local_layout(workers: int | None = None, threads: int | None = None, *,
                 cores: int | None = None, memory: int | None = None,
                 gpus: int = 0) -> tuple[int, int]:
    """``(workers, threads per worker)`` for a local cluster: every worker runs one stack at
    a time with ``threads`` PyTorch and OpenCV threads, and ``workers × threads`` is the
    number of ``cores`` (this process's CPUs), so that they do not oversubscribe them.

    By default one worker per core, one thread each (a stack's reading, alignment and
    writing run on one core, so single-threaded workers keep every core busy; docs/batch.md
    measures it against fewer workers of more threads), no more workers than ``memory``
    holds stacks of :data:`STACK_BYTES`, and one worker per GPU when there are ``gpus``."""
    cores = max(1, len(_cpus()) if cores is None else cores)
    _check_counts(workers=workers, threads=threads)
    if workers is None:
        if gpus:
            workers = gpus
        else:
            workers = max(1, cores // (threads or 1))
        if memory and not gpus:
            workers = max(1, min(workers, memory // STACK_BYTES))
    if threads is None:
        threads = max(1, cores // workers)
    return workers, threads


def _check_counts(**counts) -> None:
    """Each of ``counts`` (workers, threads) None or a whole number of at least 1."""
    from focusfuse.checks import OptionError

    for name, value in counts.items():
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                  or value < 1):
            raise OptionError(f"{name} must be a whole number of at least 1; got {value!r}",
                              name)


def _total_memory() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


# --- the summary ------------------------------------------------------------------------


def read_summary(path: str | os.PathLike) -> list[dict]:
    """The rows of a batch summary (``[]`` if there is none). A file that is not one is an
    error, so that it is not overwritten."""
    path = Path(path)
    if not path.exists():
        return []
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"summary {path}: cannot be read ({exc}); move it away") from None
    reader = csv.DictReader(io.StringIO(text))
    if tuple(reader.fieldnames or ()) != SUMMARY_FIELDS:
        raise ValueError(f"{path} exists and is not a focusfuse batch summary; move it away or "
                         "choose another summary file")
    return list(reader)


def _write_summary(path: Path, rows: Iterable[dict]) -> None:
    from focusfuse.io import _publish

    text = io.StringIO()
    writer = csv.DictWriter(text, SUMMARY_FIELDS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: row.get(k, "") for k in SUMMARY_FIELDS})
    _publish(text.getvalue().encode("utf-8"), path)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(2**20), b""):
            h.update(block)
    return h.hexdigest()


def _outputs_digest(job: StackJob) -> str:
    return ";".join(_sha256(p) for p in (job.output, job.depth_map) if p is not None)


def _job_key(job: StackJob, files: Sequence[Path], settings: dict) -> str:
    """What makes a stack's output: its frames (path, size, modification time), outputs,
    method, options and settings, and focusfuse's version."""
    from focusfuse import __version__

    frames = []
    for f in files:
        st = f.stat()
        frames.append([str(f.resolve()), st.st_size, st.st_mtime_ns])
    record = {"version": __version__, "frames": frames, "output": str(job.output.resolve()),
              "depth_map": str(job.depth_map.resolve()) if job.depth_map else None,
              "settings": settings}
    return hashlib.sha256(json.dumps(record, sort_keys=True, default=str).encode()).hexdigest()


def _weights_stamp(options: dict):
    """The weights file of ``options`` (a path given), as (path, size, modification time):
    a file retrained in place changes the job key. Shipped weights change with the
    version, which the key holds."""
    weights = options.get("weights")
    if weights is None or not Path(str(weights)).is_file():
        return None
    st = Path(str(weights)).stat()
    return [str(Path(str(weights)).resolve()), st.st_size, st.st_mtime_ns]


def _finished_before(row: dict | None, job: StackJob, key: str) -> bool:
    """Whether ``row`` (the previous summary's) records ``job`` done with these settings and
    its outputs still have the recorded content."""
    if row is None or row.get("status") not in ("done", "skipped") or row.get("job") != key:
        return False
    try:
        return _outputs_digest(job) == row.get("sha256")
    except OSError:
        return False


# --- one stack, on a worker -------------------------------------------------------------


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if isinstance(exc, (ValueError, TypeError, OSError)) else \
        f"{type(exc).__name__}: {text}"


def run_job(job: StackJob, method: str, options: dict, settings: dict,
            threads: int | dict | None = None, keep_memory: bool = False) -> dict:
    """Fuse one stack of a batch (a Dask task; any process can run it): the summary's row.

    ``threads``: PyTorch's and OpenCV's threads in this process, or a worker address's
    (:func:`thread_plan`); None, or a worker the plan does not know: this process's CPUs
    over the Dask threads of its worker. The network stays loaded in the process for the
    next stack (:func:`focusfuse.fusion.cnn.model_for`). With ``device="auto"``, a worker
    on a machine with GPUs runs on the one its number picks.
    """
    start = time.perf_counter()
    row = {"stack": job.name, "output": str(job.output),
           "depth_map": str(job.depth_map) if job.depth_map else "", "worker": _worker_name()}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            row["threads"] = _set_threads(threads, keep_memory)
            from focusfuse.fusion.registry import get_method
            from focusfuse.stacking import stack_to_file

            built = get_method(method).make_options(_with_device(options))
            done = stack_to_file(list(job.frames), job.output, method=method, options=built,
                                 depth_map=job.depth_map, overwrite=True, **settings)
            row.update(status="done", frames=done["frames"], kept=done["kept"],
                       bit_depth=done["bit_depth"], sha256=_outputs_digest(job))
        except Exception as exc:  # noqa: BLE001 - one bad stack is one failed row
            row.update(status="failed", error=_one_line(exc))
    row["warnings"] = " | ".join(dict.fromkeys(" ".join(str(w.message).split())
                                               for w in caught))
    row["seconds"] = f"{time.perf_counter() - start:.2f}"
    return row


def _worker():
    """The Dask worker running this task, or None outside one."""
    try:
        from distributed import get_worker

        return get_worker()
    except (ImportError, ValueError):
        return None


def _worker_name() -> str:
    worker = _worker()
    return "local" if worker is None else str(worker.name)


def _cpus() -> list[int]:
    """The CPUs this process may run on (a SLURM job's, say), as numbers."""
    if hasattr(os, "sched_getaffinity"):
        return sorted(os.sched_getaffinity(0))
    return list(range(os.cpu_count() or 1))


def thread_plan(client) -> dict[str, int]:
    """Threads per stack for each worker of ``client``'s cluster: the CPUs its process may
    use, over the Dask threads of all the workers that share those CPUs (on one host, with
    one CPU set), so that stacks running at once do not oversubscribe the cores."""
    cpus = client.run(_cpus)
    workers = client.scheduler_info()["workers"]
    shared: dict[tuple, int] = {}
    for address, ids in cpus.items():
        key = (workers[address]["host"], tuple(ids))
        shared[key] = shared.get(key, 0) + workers[address]["nthreads"]
    return {address: max(1, len(ids) // shared[(workers[address]["host"], tuple(ids))])
            for address, ids in cpus.items()}


def _set_threads(threads: int | dict | None, keep_memory: bool) -> int:
    import cv2
    import torch

    worker = _worker()
    if isinstance(threads, dict):
        threads = threads.get(worker.address) if worker is not None else None
    if threads is None:
        per_task = worker.state.nthreads if worker is not None else 1
        threads = max(1, len(_cpus()) // max(1, per_task))
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    cv2.setNumThreads(threads)
    if keep_memory:
        from focusfuse.device import keep_freed_memory

        keep_freed_memory()
    return threads


def _with_device(options: dict) -> dict:
    """``device="auto"`` on a worker of a machine with several GPUs: the one the worker's
    number picks (Dask names local workers 0, 1, ...), so that each GPU runs one stack."""
    if options.get("device", "auto") != "auto":
        return options
    import torch

    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if count < 2:
        return options
    name = _worker_name()
    number = re.search(r"(\d+)$", name)  # 3 of a local worker "3"; 0 of jobqueue's "SLURMCluster-7-0"
    index = int(number[1]) if number else int(hashlib.sha1(name.encode()).hexdigest(), 16)
    return {**options, "device": f"cuda:{index % count}"}


# --- the batch ----------------------------------------------------------------------------


def batch(stacks, out_dir: str | os.PathLike, client=None, *, method: str = "cnn",
          scheduler: str | None = None, workers: int | None = None,
          threads: int | None = None, align: bool = True, reference: int | None = None,
          crop: bool = False, strict: bool = False, read_options: dict | None = None,
          bit_depth: int | None = None, depth_maps: bool = False, depth_raw: bool = False,
          suffix: str = ".png", overwrite: bool = False,
          summary: str | os.PathLike | None = None,
          progress: Callable[[str, int, int], None] | None = None,
          on_cluster: Callable[[object], None] | None = None, **options) -> list[dict]:
    """Fuse many focus stacks on Dask; returns the summary's rows (also written to
    ``summary``, default ``OUT_DIR/summary.csv``), one per stack, in the stacks' order.

    ``stacks``: what :func:`find_stacks` takes (a folder of stack folders, a manifest, or
    rows). ``client``: a ``distributed.Client`` to run on; else ``scheduler`` (an address,
    ``tcp://host:8786``); else a local cluster of ``workers`` processes with ``threads``
    each (:func:`local_layout`), closed at the end. The other arguments are those of
    :func:`focusfuse.stack` and ``focusfuse stack``'s flags, ``options`` the method's.

    A stack already done with the same frames and settings, whose outputs are as
    recorded, is ``"skipped"``; other existing outputs are refused unless ``overwrite``
    (except those the previous summary lists, which are this batch's own). A stack that
    fails is a ``"failed"`` row with its error; the others go on. ``progress(stage, done,
    total)`` hears of every stack; ``on_cluster(client)`` is called once the cluster is up
    (the command prints its dashboard's address).
    """
    from focusfuse import checks
    from focusfuse.fusion.registry import get_method

    get_method(method).make_options(options)  # every option checked before any work
    if depth_maps:
        from focusfuse.stacking import check_depth_method

        check_depth_method(method, "depth_maps")
    if bit_depth == 16 and suffix.lower() in (".jpg", ".jpeg"):
        raise checks.OptionError("JPEG cannot hold 16 bits; write png or tif, or 8 bits",
                                 "bit_depth")
    if client is not None and scheduler is not None:
        raise ValueError("give a client or a scheduler address, not both")
    if (client is not None or scheduler is not None) and workers is not None:
        raise ValueError("workers is for the local cluster; an existing scheduler has its "
                         "own workers")
    _check_counts(workers=workers, threads=threads)
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise checks.OptionError(f"output folder {out_dir} is a file; give a folder", "output")
    summary = Path(summary) if summary is not None else out_dir / "summary.csv"
    read_summary(summary)  # a file that is not a summary: refused before anything is made
    jobs = find_stacks(stacks, out_dir, suffix=suffix, depth_maps=depth_maps,
                       skip=[summary.parent])
    settings = {"align": align, "reference": reference, "crop": crop, "strict": strict,
                "read_options": read_options or {}, "bit_depth": bit_depth,
                "depth_raw": depth_raw}
    out_dir.mkdir(parents=True, exist_ok=True)
    summary.parent.mkdir(parents=True, exist_ok=True)
    with _only_batch_on(summary):
        return _batch(jobs, summary, method, options, settings, client, scheduler, workers,
                      threads, overwrite, progress, on_cluster)


@contextlib.contextmanager
def _only_batch_on(summary: Path):
    """Hold a lock beside ``summary`` (a hidden file left there), so that a second batch on
    the same summary (a rerun while the first still runs) stops with a message instead of
    redoing every stack and rewriting the other's summary."""
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock
        yield
        return
    with open(summary.with_name(f".{summary.name}.lock"), "a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise OSError(f"another batch is running on {summary}; wait for it to end, or "
                          "give this one another output folder or summary") from None
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _batch(jobs, summary, method, options, settings, client, scheduler, workers, threads,
           overwrite, progress, on_cluster) -> list[dict]:
    previous = {row["stack"]: row for row in read_summary(summary)}
    key_settings = {**settings, "method": method, "options": options,
                    "weights": _weights_stamp(options)}

    rows: dict[str, dict] = {}
    todo: list[tuple[StackJob, str]] = []
    for job in jobs:
        row, key = _prepare(job, key_settings, previous.get(job.name), overwrite)
        rows[job.name] = row
        if row["status"] == "pending":
            todo.append((job, key))
    # the rows of stacks not in this run stay: their outputs remain this batch's
    rows.update({name: row for name, row in previous.items() if name not in rows})
    _write_summary(summary, rows.values())
    done = sum(rows[job.name]["status"] != "pending" for job in jobs)
    if progress:
        progress("stacks", done, len(jobs))
    if todo:
        _run_all(todo, rows, summary, method, options, settings, client, scheduler, workers,
                 threads, progress, on_cluster, done, len(jobs))
    return [rows[job.name] for job in jobs]


def _prepare(job: StackJob, key_settings: dict, before: dict | None,
             overwrite: bool) -> tuple[dict, str]:
    """The row of ``job`` before it runs: skipped (done before), failed (its frames cannot
    be listed, or an output that is not ours exists) or pending; and the job's key."""
    from focusfuse.stacking import list_frames

    row = {"stack": job.name, "output": str(job.output),
           "depth_map": str(job.depth_map) if job.depth_map else "", "status": "pending"}
    # whether this batch may have written the outputs there: the previous run listed them
    # for this stack and ran it (a row that failed before any worker ran, as for an output
    # that was already there, does not count), or recorded them done
    ours = (before is not None and before.get("output") == row["output"]
            and before.get("depth_map", "") == row["depth_map"]
            and (before.get("status") != "failed" or bool(before.get("worker"))))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            files = list_frames(job.frames)
        except (ValueError, OSError) as exc:
            row.update(status="failed", error=_one_line(exc))
            if ours:  # still this batch's outputs, for the run that finds the frames again
                row.update({k: before.get(k, "") for k in ("worker", "job", "sha256")})
            return row, ""
    row["frames"] = len(files)
    key = _job_key(job, files, key_settings)
    row["job"] = key
    if ours and _finished_before(before, job, key):
        return {**before, "status": "skipped"}, key
    for path in (job.output, job.depth_map):
        if path is not None and path.exists() and not (overwrite or ours):
            row.update(status="failed", error=f"output {path} exists and is not this batch's; "
                                              "move it away or allow replacing it (--overwrite)")
        elif path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)  # a manifest's sub-folder
    if caught:
        row["warnings"] = " | ".join(" ".join(str(w.message).split()) for w in caught)
    return row, key


def _run_all(todo, rows, summary, method, options, settings, client, scheduler, workers,
             threads, progress, on_cluster, done: int, total: int) -> None:
    from distributed import as_completed

    own, cluster = None, None
    task_threads = threads
    if client is None:
        client, cluster, task_threads = _start(scheduler, workers, threads)
        own = client
    keep_memory = cluster is not None
    pids: dict = {}
    futures = {}
    written = -SUMMARY_EVERY
    try:
        if cluster is not None:
            pids = client.run(os.getpid)
        if on_cluster:
            on_cluster(client)
        if task_threads is None:
            task_threads = thread_plan(client)
        for job, key in todo:
            future = client.submit(run_job, job, method, options, settings, task_threads,
                                   keep_memory, key=f"focusfuse-stack-{key[:16]}", pure=False)
            futures[future] = (job, key)
        dirty = False

        def flush():
            nonlocal written, dirty
            if dirty and time.monotonic() - written >= SUMMARY_EVERY:
                _write_summary(summary, rows.values())
                written, dirty = time.monotonic(), False

        for future in _completed(as_completed(futures), idle=flush):
            job, key = futures[future]
            row = _result(future, job)
            rows[job.name] = {**rows[job.name], **row, "job": key}
            dirty = True
            flush()
            done += 1
            if progress:
                progress("stacks", done, total)
    except BaseException:
        client.cancel(list(futures), force=True)
        _stop(pids)  # the local workers now, not after the stack each is fusing
        raise
    finally:
        _write_summary(summary, rows.values())
        if own is not None:
            own.close()
        if cluster is not None:
            cluster.close()


def _stop(pids: dict) -> None:
    """End the local cluster's worker processes: a fused image being written is then not
    written at all (each appears in one step, :func:`focusfuse.io.write_image`)."""
    import signal

    for pid in pids.values():
        try:
            os.kill(pid, signal.SIGTERM)
        except OSError:
            pass


def _completed(finished, idle=None):
    """The futures of ``finished`` (a ``distributed.as_completed``) as they finish, calling
    ``idle()`` while none does. The wait is a short sleep, not a lock: a signal (Ctrl-C)
    that the system gives another thread of this process then still reaches the main
    thread within a tenth of a second."""
    while not finished.is_empty():
        ready = finished.next_batch(block=False)
        if not ready:
            time.sleep(0.1)
            if idle is not None:
                idle()
        yield from ready


def _result(future, job: StackJob) -> dict:
    """The row a finished task gives: its own, or a failed row saying why there is none."""
    from asyncio import CancelledError

    from distributed import KilledWorker

    failed = {"stack": job.name, "output": str(job.output), "status": "failed",
              "worker": "lost"}  # it was submitted: what it may have written is ours
    try:
        return future.result()
    except KilledWorker as exc:
        return {**failed, "error": f"the task was lost ({_one_line(exc)}); running out of "
                                   "memory is the usual cause: try fewer workers"}
    except CancelledError:
        return {**failed, "error": "the task was cancelled (by the scheduler or another "
                                   "client); run the batch again"}
    except Exception as exc:  # noqa: BLE001 - the task ended without its row
        return {**failed, "error": f"the task failed ({_one_line(exc)})"}


def _start(scheduler: str | None, workers: int | None, threads: int | None):
    """A client for ``scheduler``, or a local cluster: ``(client, cluster, threads)``."""
    import signal

    from distributed import Client, LocalCluster

    if scheduler is not None:
        try:
            return Client(scheduler, timeout="20s"), None, threads
        except (OSError, TimeoutError) as exc:
            raise OSError(f"cannot reach the Dask scheduler at {scheduler} ({_one_line(exc)}); "
                          "check the address and that the scheduler is running") from None
    gpus = _gpu_count()
    workers, threads = local_layout(workers, threads, memory=_total_memory(), gpus=gpus)
    # The workers ignore Ctrl-C (sent to the whole terminal's process group): this process
    # stops them itself, after cancelling their tasks. They inherit the ignoring from this
    # process while they start (a signal mask would not reach them: Python resets it in
    # the processes it spawns), so a Ctrl-C in those seconds goes unseen here too.
    import logging

    before = signal.getsignal(signal.SIGINT)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    cluster = None
    try:
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                               dashboard_address=":0", silence_logs=logging.CRITICAL,
                               memory_limit=None)
    except RuntimeError as exc:
        raise OSError(f"could not start a local Dask cluster ({_one_line(exc)}); in a script "
                      "of your own, call batch() under 'if __name__ == \"__main__\":'") from None
    finally:
        signal.signal(signal.SIGINT, before)
    try:
        client = Client(cluster)
    except BaseException:
        cluster.close()
        raise
    return client, cluster, threads


def _gpu_count() -> int:
    """The CUDA GPUs here; PyTorch (a second and 300 MB in this process, which fuses
    nothing) is imported to count them only where an NVIDIA driver is loaded."""
    import importlib.util

    driver = Path("/proc/driver/nvidia/gpus")
    if sys.platform.startswith("linux") and not driver.is_dir():
        return 0
    if importlib.util.find_spec("torch") is None:
        return 0
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def dashboard(client) -> str | None:
    """The address of the cluster's dashboard, or None when it has none (the dashboard
    needs the ``bokeh`` package where the scheduler runs)."""
    import importlib.util

    link = getattr(client, "dashboard_link", None)
    if not link or "dashboard" not in client.scheduler_info().get("services", {}):
        return None
    local = getattr(client, "cluster", None) is not None
    return link if not local or importlib.util.find_spec("bokeh") is not None else None
