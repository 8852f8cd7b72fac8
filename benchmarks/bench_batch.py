"""``focusfuse batch`` against ``focusfuse stack`` called once per stack, one after another.

The same ``--stacks`` stacks (each the frames of ``--frames``, by default the real stack
``../shared/data/stacks/pcb-depth``, 10 × 2048×1536) are fused three ways, as whole
processes, in turn: ``focusfuse stack`` once per stack in series; ``focusfuse batch`` with
the default local cluster; and, with ``--layouts``, batch with other worker × thread
layouts. Printed: wall seconds of each, the ratio to the series, peak memory of the whole
process tree (when GNU time is there it gives only the biggest process, so the tree is
sampled from /proc), and the Dask overhead per stack: the batch's wall time, less the
stacks' own time in the workers (the summary's ``seconds``) spread over the workers,
divided by the number of stacks (it holds the cluster's start, the workers' imports and
the scheduling). The outputs of every way are checked to be the same bytes.

Run (from the repository root, on an idle machine):

    .venv/bin/python benchmarks/bench_batch.py --json runs/bench_batch.json
"""

from __future__ import annotations

import argparse
import csv
import json
import shlex
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FOCUSFUSE = str(Path(sys.executable).with_name("focusfuse"))


def _tree_rss(pid: int) -> int:
    """Resident bytes of ``pid`` and all its descendants, from /proc."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            status = (stat.parent / "statm").read_text().split()
        except OSError:
            continue
        p = int(stat.parent.name)
        children.setdefault(int(fields[1]), []).append(p)
        rss[p] = int(status[1]) * 4096
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        total += rss.get(p, 0)
        todo += children.get(p, [])
    return total


def run(argv: list[str]) -> tuple[float, int]:
    """Wall seconds and the peak resident memory of the process tree of ``argv``."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    peak = [0]

    def sample():
        while proc.poll() is None:
            peak[0] = max(peak[0], _tree_rss(proc.pid))
            time.sleep(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    _, err = proc.communicate()
    wall = time.perf_counter() - start
    sampler.join()
    if proc.returncode not in (0,):
        raise SystemExit(f"{shlex.join(argv)} failed ({proc.returncode}): {err.strip()}")
    return wall, peak[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", default=str(REPO.parent / "shared/data/stacks/pcb-depth"),
                        help="the folder of one stack's frames, used for every stack")
    parser.add_argument("--stacks", type=int, default=8, help="number of stacks")
    parser.add_argument("--options", default="--weights fast",
                        help="options of focusfuse stack and batch, for every run")
    parser.add_argument("--layouts", default="", metavar="WxT,...",
                        help="also run batch with these workers × threads (e.g. 2x1,1x2)")
    parser.add_argument("--json", default=None, help="write the figures here")
    args = parser.parse_args()

    sys.path.insert(0, str(REPO / "src"))
    from focusfuse.batching import local_layout
    from focusfuse.bench.machine import machine_info

    frames = Path(args.frames)
    if not frames.is_dir():
        raise SystemExit(f"{frames}: no such folder; give --frames a stack's folder")
    options = shlex.split(args.options)
    machine = machine_info()
    print("machine:", machine.get("cpu"), f"{machine.get('usable_cpus')} cores,",
          f"torch {machine.get('torch')}")
    n = args.stacks
    results = {"machine": machine, "stacks": n, "frames": str(frames),
               "options": args.options, "default_layout": local_layout()}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        plate = tmp / "plate"
        plate.mkdir()
        for k in range(n):
            (plate / f"stack{k + 1:02d}").symlink_to(frames.resolve())
        series = tmp / "series"
        series.mkdir()
        start = time.perf_counter()
        peak = 0
        for k in range(n):
            _, mem = run([FOCUSFUSE, "stack", str(plate / f"stack{k + 1:02d}"), "-o",
                          str(series / f"stack{k + 1:02d}.png"), "--quiet", *options])
            peak = max(peak, mem)
        t_series = time.perf_counter() - start
        results["series"] = {"seconds": t_series, "peak_bytes": peak}
        print(f"focusfuse stack × {n}, in series: {t_series:.1f} s, peak {peak / 1e9:.2f} GB")
        ways = [("default", [])]
        for layout in filter(None, args.layouts.split(",")):
            w, t = layout.lower().split("x")
            ways.append((layout, ["--workers", w, "--threads", t]))
        for name, extra in ways:
            out = tmp / f"batch-{name}"
            wall, mem = run([FOCUSFUSE, "batch", str(plate), "-o", str(out), "--quiet",
                             *options, *extra])
            rows = list(csv.DictReader(open(out / "summary.csv")))
            workers = len({r["worker"] for r in rows})
            in_tasks = sum(float(r["seconds"]) for r in rows)
            overhead = (wall - in_tasks / workers) / n
            same = all((out / f"stack{k + 1:02d}.png").read_bytes()
                       == (series / f"stack{k + 1:02d}.png").read_bytes() for k in range(n))
            results[f"batch-{name}"] = {
                "seconds": wall, "ratio_to_series": wall / t_series, "peak_bytes": mem,
                "workers": workers, "stack_seconds_in_workers": in_tasks,
                "dask_overhead_per_stack": overhead, "same_bytes_as_series": same}
            print(f"focusfuse batch ({name}{', ' + ' '.join(extra) if extra else ''}): "
                  f"{wall:.1f} s = {wall / t_series:.2f}× the series, peak {mem / 1e9:.2f} GB, "
                  f"{workers} worker(s), stacks' own time {in_tasks:.1f} s, Dask overhead "
                  f"{overhead:.2f} s per stack; outputs {'the same bytes' if same else 'DIFFER'}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2, default=str))


if __name__ == "__main__":
    main()
