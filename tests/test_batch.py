"""``focusfuse batch`` and :func:`focusfuse.batch`: stacks found in folders and
manifests; every output the same bytes as ``focusfuse stack`` on the same stack, on a real
Dask cluster of worker processes reached through its TCP address; the network loaded once
per worker; a broken stack reported while the others are written; a stopped batch resumed
without redoing what is done; Ctrl-C leaves no worker and no partial output.

The stacks are small (three or four frames of 192×256, made as in test_cli_stack.py); the
CNN runs the shipped fast model.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from focusfuse.batching import find_stacks, local_layout, read_summary, thread_plan
from focusfuse.cli import main
from focusfuse.io import read_image, write_image

distributed = pytest.importorskip("distributed")

sys.path.insert(0, str(Path(__file__).parent))
from test_cli_stack import _frames  # noqa: E402

FAST = ["--weights", "fast", "--quiet"]


def _stacks(root: Path, n: int = 4) -> Path:
    """``n`` stacks in folders of ``root``: 3 or 4 frames, 8-bit PNG, one 16-bit TIFF."""
    for k in range(n):
        _frames(root / f"plate{k + 1}", n=3 + k % 2, bit_depth=16 if k == 1 else 8,
                suffix=".tif" if k == 1 else ".png")
    return root


@pytest.fixture(scope="module")
def cluster():
    """A real cluster of two worker processes, as a user would start with ``dask
    scheduler`` and ``dask worker``."""
    import logging

    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=":0", silence_logs=logging.ERROR) as c:
        yield c


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The stacks, and each fused by ``focusfuse stack`` one after another."""
    root = tmp_path_factory.mktemp("batch") / "stacks"
    root.mkdir()
    _stacks(root)
    out = root.parent / "one-by-one"
    out.mkdir()
    for folder in sorted(root.iterdir()):
        assert main(["stack", str(folder), "-o", str(out / f"{folder.name}.png"), *FAST]) == 0
    return root, out


def _plate(folder: Path, root: Path, *names: str) -> Path:
    """A folder of the named stacks of ``root`` (links to them)."""
    folder.mkdir()
    for name in names:
        os.symlink(root / name, folder / name)
    return folder


def _rows(summary: Path) -> dict[str, dict]:
    return {row["stack"]: row for row in read_summary(summary)}


# --- finding the stacks ------------------------------------------------------------------


def test_a_folder_of_stack_folders(tmp_path):
    for name in ("b10", "b2", "a"):
        (tmp_path / "in" / name).mkdir(parents=True)
    (tmp_path / "in" / ".hidden").mkdir()
    jobs = find_stacks(tmp_path / "in", tmp_path / "out", depth_maps=True)
    assert [j.name for j in jobs] == ["a", "b2", "b10"]  # natural order, hidden left out
    assert jobs[1].frames == (str(tmp_path / "in" / "b2"),)
    assert jobs[1].output == tmp_path / "out" / "b2.png"
    assert jobs[1].depth_map == tmp_path / "out" / "b2-depth.png"


def test_manifests_csv_and_json(tmp_path):
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "plate.csv").write_text(
        "name,frames,output\n"
        "well-a,a/f1.png;a/f2.png,\n"
        ",b,sub/b.tif\n"
        "well-c,/abs/c/*.png,\n")
    jobs = find_stacks(tmp_path / "m" / "plate.csv", tmp_path / "out")
    assert [j.name for j in jobs] == ["well-a", "b", "well-c"]
    assert jobs[0].frames == (str(tmp_path / "m" / "a" / "f1.png"),
                              str(tmp_path / "m" / "a" / "f2.png"))
    assert jobs[1].output == tmp_path / "out" / "sub" / "b.tif"
    assert jobs[2].frames == ("/abs/c/*.png",)
    (tmp_path / "m" / "plate.json").write_text(json.dumps(
        {"stacks": [{"frames": ["x/1.png", "x/2.png"]}, {"name": "y", "frames": "y"}]}))
    jobs = find_stacks(tmp_path / "m" / "plate.json", tmp_path / "out", suffix=".tif")
    assert [(j.name, j.output.name) for j in jobs] == [("x", "x.tif"), ("y", "y.tif")]


@pytest.mark.parametrize("text, match", [
    ("name,files\nа,b\n", "needs a header row with a 'frames' column"),
    ("name,frames\nx,a\ny,b\nx,c\n", "two stacks are named 'x'"),
    ("name,frames,output\nx,a,o.png\ny,b,o.png\n", "would both write"),
    ("name,frames\nx,a,b\n", "line 2 has more fields than the header"),
    ("name,frames\n../up,a\n", "cannot name a file"),
    ("name,frames\nx,\n", "no frames given"),
    ("name,frames\n", "no stacks in it"),
])
def test_bad_manifests(tmp_path, text, match):
    (tmp_path / "plate.csv").write_text(text)
    with pytest.raises(ValueError, match=match):
        find_stacks(tmp_path / "plate.csv", tmp_path / "out")


def test_a_globs_name_and_a_file_whose_name_looks_like_one(tmp_path):
    from focusfuse.stacking import list_frames

    (tmp_path / "well-7").mkdir()
    (tmp_path / "m.csv").write_text("frames\nwell-7/*.png\n")
    assert find_stacks(tmp_path / "m.csv", tmp_path / "out")[0].name == "well-7"
    odd = [tmp_path / "well-7" / f"f[{k}].png" for k in (1, 2)]
    for path in odd:
        write_image(path, np.full((20, 20), 0.5, np.float32))
    assert list_frames(odd) == odd


def test_a_folder_of_frames_is_not_a_batch(tmp_path):
    _frames(tmp_path / "frames")
    with pytest.raises(ValueError, match="not stack folders; fuse them with focusfuse stack"):
        find_stacks(tmp_path / "frames", tmp_path / "out")
    with pytest.raises(ValueError, match="no such folder or manifest"):
        find_stacks(tmp_path / "nothing", tmp_path / "out")


def test_local_layout_does_not_oversubscribe():
    assert local_layout(cores=2) == (2, 1)
    assert local_layout(cores=16) == (16, 1)
    assert local_layout(cores=16, memory=6 * 2**30) == (3, 5)  # 2 GiB a stack
    assert local_layout(4, cores=16) == (4, 4)
    assert local_layout(threads=2, cores=8) == (4, 2)
    assert local_layout(cores=16, gpus=2) == (2, 8)
    with pytest.raises(ValueError, match="workers must be a whole number of at least 1"):
        local_layout(0, cores=4)


# --- on a cluster ------------------------------------------------------------------------


def test_batch_on_a_scheduler_matches_stack_one_by_one(tmp_path, cluster, reference, capsys):
    root, one_by_one = reference
    out = tmp_path / "out"
    assert main(["batch", str(root), "-o", str(out), "--scheduler", cluster.scheduler_address,
                 *FAST]) == 0
    assert "4 done, 0 skipped" in capsys.readouterr().out
    rows = _rows(out / "summary.csv")
    assert sorted(rows) == ["plate1", "plate2", "plate3", "plate4"]
    for name, row in rows.items():
        assert row["status"] == "done", row
        assert (out / f"{name}.png").read_bytes() == (one_by_one / f"{name}.png").read_bytes()
        assert int(row["frames"]) == int(row["kept"]) == len(list((root / name).iterdir()))
        assert float(row["seconds"]) > 0
    assert read_image(out / "plate2.png", with_depth=True).bit_depth == 16  # 16-bit TIFFs
    assert {rows[n]["worker"] for n in rows} <= {str(w["name"]) for w in
                                                 cluster.scheduler_info["workers"].values()}

    def loads():
        from focusfuse.fusion.cnn import _load_cached

        return _load_cached.cache_info().misses

    with distributed.Client(cluster.scheduler_address) as client:
        assert all(n <= 1 for n in client.run(loads).values())  # once per worker
        plan = thread_plan(client)  # two one-thread workers share this machine's CPUs
    cpus = len(os.sched_getaffinity(0))
    assert set(plan) == set(cluster.scheduler_info["workers"])
    assert all(t == max(1, cpus // 2) for t in plan.values())
    assert {int(r["threads"]) for r in rows.values()} == {max(1, cpus // 2)}


def test_a_broken_stack_is_reported_and_the_others_written(tmp_path, cluster, reference,
                                                           capsys):
    root, one_by_one = reference
    plate = _plate(tmp_path / "plate", root, "plate1", "plate3")
    (plate / "unreadable").mkdir()
    for k in range(3):
        (plate / "unreadable" / f"f{k}.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    sizes = plate / "sizes"
    sizes.mkdir()
    write_image(sizes / "f0.png", np.full((40, 60), 0.5, np.float32))
    write_image(sizes / "f1.png", np.full((40, 64), 0.5, np.float32))
    (plate / "empty").mkdir()
    out = tmp_path / "out"
    code = main(["batch", str(plate), "-o", str(out), "--scheduler",
                 cluster.scheduler_address, *FAST])
    captured = capsys.readouterr()
    assert code == 1
    assert "2 done, 0 skipped (done before), 3 failed" in captured.out
    rows = _rows(out / "summary.csv")
    assert "not a readable PNG image" in rows["unreadable"]["error"]
    assert "same" in rows["sizes"]["error"] and "f1.png" in rows["sizes"]["error"]
    assert "no image files" in rows["empty"]["error"]
    for name in ("unreadable", "sizes", "empty"):
        assert rows[name]["status"] == "failed"
        assert f"failed: {name}: " in captured.err
        assert not (out / f"{name}.png").exists()
    for name in ("plate1", "plate3"):
        assert (out / f"{name}.png").read_bytes() == (one_by_one / f"{name}.png").read_bytes()
    assert sorted(p.name for p in out.iterdir()) == [".summary.csv.lock", "plate1.png",
                                                     "plate3.png", "summary.csv"]


def test_a_stopped_batch_resumes_without_redoing(tmp_path, cluster, reference):
    from focusfuse.batching import batch

    root, one_by_one = reference
    manifest = tmp_path / "plate.csv"
    with open(manifest, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["name", "frames"])
        for folder in sorted(root.iterdir()):
            w.writerow([folder.name, str(folder)])
    out = tmp_path / "out"
    seen = []

    def stop_after_two(stage, done, total):  # Ctrl-C once two stacks are done
        seen.append(done)
        if done >= 2:
            raise KeyboardInterrupt

    with distributed.Client(cluster.scheduler_address) as client:
        with pytest.raises(KeyboardInterrupt):
            batch(manifest, out, client, weights="fast", progress=stop_after_two)
        rows = _rows(out / "summary.csv")
        done = sorted(n for n, r in rows.items() if r["status"] == "done")
        assert len(done) == 2 and sum(r["status"] == "pending" for r in rows.values()) == 2
        # a task already running on a scheduler's worker is not stopped (the workers are
        # not ours), but what it writes is whole
        written = sorted(p.stem for p in out.glob("*.png"))
        assert set(done) <= set(written)
        for name in written:
            assert (out / f"{name}.png").read_bytes() == \
                (one_by_one / f"{name}.png").read_bytes()

        rows = {r["stack"]: r for r in batch(manifest, out, client, weights="fast")}
        assert sorted(n for n, r in rows.items() if r["status"] == "skipped") == done
        assert sum(r["status"] == "done" for r in rows.values()) == 2
        for name in rows:
            assert (out / f"{name}.png").read_bytes() == \
                (one_by_one / f"{name}.png").read_bytes()

        # a record, not the file's mere presence: a changed output is made again, and so is
        # every output when a setting changes
        target = out / f"{done[0]}.png"
        target.write_bytes(target.read_bytes()[:-10])
        rows = {r["stack"]: r for r in batch(manifest, out, client, weights="fast")}
        assert [n for n, r in rows.items() if r["status"] == "done"] == [done[0]]
        assert target.read_bytes() == (one_by_one / target.name).read_bytes()
        rows = batch(manifest, out, client, weights="fast", guided_radius=4)
        assert all(r["status"] == "done" for r in rows)


def test_outputs_that_are_not_the_batchs_are_kept(tmp_path, cluster, reference, capsys):
    root, _ = reference
    out = tmp_path / "out"
    out.mkdir()
    mine = out / "plate1.png"
    mine.write_bytes(b"the user's own file")
    (out / "summary.csv").write_text("not, a summary\n")
    args = ["batch", str(root), "-o", str(out), "--scheduler", cluster.scheduler_address, *FAST]
    assert main(args) == 2
    assert "is not a focusfuse batch summary" in capsys.readouterr().err
    (out / "summary.csv").unlink()
    assert main(args) == 1
    assert "plate1: output" in capsys.readouterr().err and "--overwrite" in \
        _rows(out / "summary.csv")["plate1"]["error"]
    assert mine.read_bytes() == b"the user's own file"
    assert main(args) == 1  # listed in the summary now, as failed: still not the batch's
    assert mine.read_bytes() == b"the user's own file"
    assert main([*args, "--overwrite"]) == 0
    assert mine.read_bytes() != b"the user's own file"


def test_the_output_folder_inside_the_input_is_not_a_stack(tmp_path, cluster, reference,
                                                          capsys):
    root, _ = reference
    plate = _plate(tmp_path / "plate", root, "plate1", "plate3")
    args = ["batch", str(plate), "-o", str(plate / "fused"), "--scheduler",
            cluster.scheduler_address, *FAST]
    assert main(args) == 0
    assert main(args) == 0
    assert "0 done, 2 skipped" in capsys.readouterr().out
    assert sorted(_rows(plate / "fused" / "summary.csv")) == ["plate1", "plate3"]


def test_only_this_batchs_own_outputs_are_replaced(tmp_path, cluster, reference):
    """The summary says which outputs a batch wrote: those of stacks run another time stay
    its own, and a file at a path it never wrote is the user's."""
    from focusfuse.batching import batch

    root, _ = reference

    def manifest(name, rows):
        path = tmp_path / name
        path.write_text("name,frames,output\n" + "".join(f"{n},{root / f},{o}\n"
                                                         for n, f, o in rows))
        return path

    out = tmp_path / "out"
    with distributed.Client(cluster.scheduler_address) as client:
        run = lambda m: {r["stack"]: r["status"] for r in batch(m, out, client, weights="fast")}
        ab = manifest("ab.csv", [("a", "plate1", ""), ("b", "plate3", "")])
        assert run(ab) == {"a": "done", "b": "done"}
        assert run(manifest("c.csv", [("c", "plate2", "")])) == {"c": "done"}
        assert run(ab) == {"a": "skipped", "b": "skipped"}  # still recorded as the batch's
        (out / "keep.png").write_bytes(b"the user's")
        rows = batch(manifest("moved.csv", [("a", "plate1", "keep.png")]), out, client,
                     weights="fast")
        assert rows[0]["status"] == "failed" and "is not this batch's" in rows[0]["error"]
        assert (out / "keep.png").read_bytes() == b"the user's"


def test_a_second_batch_on_the_same_summary_is_refused(tmp_path, capsys):
    import fcntl

    out = tmp_path / "out"
    out.mkdir()
    (tmp_path / "in" / "s").mkdir(parents=True)
    with open(out / ".summary.csv.lock", "a") as held:  # as a running batch holds it
        fcntl.flock(held, fcntl.LOCK_EX)
        assert main(["batch", str(tmp_path / "in"), "-o", str(out)]) == 2
    assert "another batch is running on" in capsys.readouterr().err
    assert not (out / "summary.csv").exists()


def test_bad_options_are_refused_before_any_work(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["batch", str(tmp_path), "-o", str(out), "--method", "dtcwt",
                 "--guided-radius", "3"]) == 2
    assert "--guided-radius is an option of" in capsys.readouterr().err
    assert main(["batch", str(tmp_path / "none.csv"), "-o", str(out)]) == 2
    assert "no such manifest" in capsys.readouterr().err
    assert main(["batch", str(tmp_path), "-o", str(out), "--scheduler",
                 "tcp://127.0.0.1:9", "--workers", "2"]) == 2
    assert "workers is for the local cluster" in capsys.readouterr().err
    assert main(["batch", str(tmp_path), "-o", str(out), "--threads", "0"]) == 2
    assert "--threads must be a whole number of at least 1" in capsys.readouterr().err


def _running_in_group(pgid: int) -> list[int]:
    """The processes of group ``pgid`` that still run (not those only waiting to be
    reaped)."""
    running = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            running.append(int(stat.parent.name))
    return running


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux's /proc")
def test_ctrl_c_stops_the_local_cluster_and_leaves_no_partial_output(tmp_path, reference):
    import cv2

    root, one_by_one = reference
    plate = tmp_path / "plate"
    plate.mkdir()
    names = {}
    for k in range(6):  # one worker takes them in order: s01 and s02 are slow, 16× the pixels
        name = f"s{k:02d}"
        if k in (1, 2):
            (plate / name).mkdir()
            for frame in sorted((root / "plate3").iterdir()):
                big = cv2.resize(cv2.imread(str(frame)), None, fx=4, fy=4,
                                 interpolation=cv2.INTER_CUBIC)
                cv2.imwrite(str(plate / name / frame.name), big)
        else:
            os.symlink(root / f"plate{k % 4 + 1}", plate / name)
            names[name] = f"plate{k % 4 + 1}"
    out = tmp_path / "out"
    # Ctrl-C's SIGINT as a terminal gives it: not ignored, whatever this test's parent does
    # with it (a job started in the background, as CI may be, ignores it, and the command
    # leaves an ignored SIGINT ignored)
    command = [sys.executable, "-c", "import signal, sys; signal.signal(signal.SIGINT, "
               "signal.SIG_DFL); from focusfuse.cli import console; console()",
               "batch", str(plate), "-o", str(out), "--workers", "1", *FAST]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
        try:
            if any(r["status"] == "done" for r in read_summary(out / "summary.csv")):
                break
        except (ValueError, OSError):
            pass
    assert proc.poll() is None, "the batch ended before it could be interrupted"
    os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C reaches the terminal's whole group
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert err.rstrip().endswith("focusfuse batch: interrupted"), err
    assert "Traceback" not in err  # the workers ignore the terminal's Ctrl-C
    deadline = time.monotonic() + 10
    while _running_in_group(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _running_in_group(proc.pid)  # the workers are gone too
    rows = _rows(out / "summary.csv")
    done = {n for n, r in rows.items() if r["status"] == "done"}
    assert done and len(done) < 6
    for path in out.iterdir():  # every file whole: no partial image, no temporary
        assert path.name in ("summary.csv", ".summary.csv.lock") or path.suffix == ".png"
        if path.stem in names:
            assert path.read_bytes() == (one_by_one / f"{names[path.stem]}.png").read_bytes()
        elif path.suffix == ".png":
            assert read_image(path).shape[:2] == (768, 1024)
    rerun = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert f"{6 - len(done)} done, {len(done)} skipped (done before)" in rerun.stdout
    assert len(list(out.glob("*.png"))) == 6
