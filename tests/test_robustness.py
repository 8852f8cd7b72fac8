"""Tests of the command's behaviour under interruption and hostile input (docs/robustness.md).

Signals at chosen moments (during the imports, during the write of the output), broken
pipes, the pixel limit's flag, warnings in the command's voice, and refusals that come
before the work. The kills run `focusfuse` in a child process; the moment "during the
write" is made exact by a child that holds the write open until it is killed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import texture
from focusfuse.cli import main
from focusfuse.io import write_image

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="Linux signals and /proc")

FOCUSFUSE = Path(sys.executable).parent / "focusfuse"


def _pair(folder: Path, shape=(48, 48)) -> tuple[Path, Path]:
    return (write_image(folder / "a.png", texture(shape, seed=1)),
            write_image(folder / "b.png", texture(shape, seed=2)))


def _visible(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def _child(env_extra=None, **kwargs) -> subprocess.Popen:
    """A process with SIGINT at its default (a test runner may start us with it ignored)."""
    env = {**os.environ, **(env_extra or {})}
    return subprocess.Popen(preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            **kwargs)


#: a child that runs the command (handlers first, as the entry point does) and holds the
#: output's write open: it says "writing" and sleeps inside io._write_all until killed
_HOLD_THE_WRITE = textwrap.dedent("""
    import os, sys, time
    from focusfuse import cli
    import focusfuse.io as fio
    if sys.argv[1] == "named":
        fio._UNNAMED = False  # the fallback: a hidden temporary name
    real = fio._write_all
    def hold(fd, data):
        print("writing", flush=True)
        time.sleep(60)
        real(fd, data)
    fio._write_all = hold
    cli._install_signal_handlers()
    sys.argv = ["focusfuse", *sys.argv[2:]]
    cli.console()
""")


def _kill_during_write(tmp_path: Path, sig: int, mode: str = "unnamed") -> tuple:
    a, b = _pair(tmp_path)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    out = out_dir / "fused.png"
    proc = _child(args=[sys.executable, "-c", _HOLD_THE_WRITE, mode, "fuse", str(a), str(b),
                        "-o", str(out), "--method", "dwt"])
    assert proc.stdout.readline().strip() == "writing"
    during = _visible(out_dir)
    proc.send_signal(sig)
    stdout, stderr = proc.communicate(timeout=60)
    return proc.returncode, stderr, out_dir, during


@pytest.mark.parametrize("sig,code,what", [(signal.SIGINT, 130, "interrupted"),
                                           (signal.SIGTERM, 143, "stopped by SIGTERM")])
@pytest.mark.parametrize("mode", ["unnamed", "named"])
def test_sigint_and_sigterm_during_the_write_leave_nothing(tmp_path, sig, code, what, mode):
    # before: SIGTERM was not handled and left a 0-byte hidden temporary file
    rc, stderr, out_dir, during = _kill_during_write(tmp_path, sig, mode)
    assert rc == code
    assert stderr == f"focusfuse fuse: {what}\n"
    assert _visible(out_dir) == []  # no output, no temporary, hidden or not
    if mode == "unnamed":
        assert during == []  # the bytes being written had no name at all


def test_sigkill_during_the_write_leaves_nothing_visible(tmp_path):
    rc, _, out_dir, during = _kill_during_write(tmp_path, signal.SIGKILL)
    assert rc == -signal.SIGKILL
    assert during == [] and _visible(out_dir) == []


def test_sigkill_with_a_named_temporary_is_cleaned_by_the_next_run(tmp_path):
    # where the file system has no O_TMPFILE: the hidden name a SIGKILL leaves goes at the
    # next write into that folder
    rc, _, out_dir, during = _kill_during_write(tmp_path, signal.SIGKILL, "named")
    assert rc == -signal.SIGKILL
    left = _visible(out_dir)
    assert len(left) == 1 and left[0].startswith(".focusfuse-") and during == left
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    assert main(["fuse", str(a), str(b), "-o", str(out_dir / "fused.png"), "--method", "dwt"]) == 0
    assert _visible(out_dir) == ["fused.png"]


def _handlers_installed(pid: int) -> bool:
    """Whether the process catches SIGTERM (its handlers are set): from /proc's SigCgt."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    caught = int(next(ln for ln in status.splitlines() if ln.startswith("SigCgt:")).split()[1], 16)
    return bool(caught & (1 << (signal.SIGTERM - 1)))


@pytest.mark.parametrize("sig,code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_while_the_modules_load_is_one_line(tmp_path, sig, code):
    # before: Ctrl-C in the first 2-3 s (argparse, NumPy, PyTorch loading) printed a
    # KeyboardInterrupt traceback
    if not FOCUSFUSE.is_file():
        pytest.skip("the focusfuse entry point is not installed in this environment")
    a, b = _pair(tmp_path)
    proc = _child(args=[str(FOCUSFUSE), "fuse", str(a), str(b), "-o", str(tmp_path / "f.png")])
    deadline = time.monotonic() + 30
    while not _handlers_installed(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.001)
    proc.send_signal(sig)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == code, stderr
    assert "Traceback" not in stderr and stderr.count("\n") == 1
    assert stderr.startswith("focusfuse")
    assert not (tmp_path / "f.png").exists()


def test_a_second_signal_ends_the_process_at_once(tmp_path):
    script = textwrap.dedent("""
        import time
        from focusfuse import cli
        cli._install_signal_handlers()
        try:
            print("ready", flush=True)
            time.sleep(60)
        except KeyboardInterrupt:
            print("cleaning up", flush=True)
            time.sleep(60)  # a clean-up that hangs
    """)
    proc = _child(args=[sys.executable, "-c", script])
    assert proc.stdout.readline().strip() == "ready"
    proc.send_signal(signal.SIGTERM)
    assert proc.stdout.readline().strip() == "cleaning up"
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 130 and "exiting now" in stderr


# ----------------------------------------------------------------------- broken pipes
@pytest.mark.parametrize("unbuffered", [False, True])
def test_a_broken_pipe_exits_quietly(tmp_path, unbuffered):
    # before: "focusfuse demo: error: [Errno 32] Broken pipe", exit 2 (focusfuse demo | head -1)
    if not FOCUSFUSE.is_file():
        pytest.skip("the focusfuse entry point is not installed in this environment")
    env = {"PYTHONUNBUFFERED": "1"} if unbuffered else {}
    proc = _child(env, args=[str(FOCUSFUSE), "demo", "--method", "dwt", "--out",
                             str(tmp_path / "demo")])
    proc.stdout.close()  # the reader has gone before the first line
    stderr = proc.stderr.read()
    proc.stderr.close()
    proc.wait(timeout=120)
    assert proc.returncode == 141 and stderr == ""


def test_a_broken_pipe_elsewhere_is_an_error(capsys, monkeypatch):
    import focusfuse.cli as cli

    def run(args):
        raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setitem(cli.COMMANDS, "metrics", (cli._add_metrics, run, False))
    assert main(["metrics", "a.png", "b.png", "f.png"]) == 2  # stdout is fine: not quiet
    assert "Broken pipe" in capsys.readouterr().err


# --------------------------------------------------------------- input and refusals
def test_max_pixels_flag(tmp_path, capsys):
    a, b = _pair(tmp_path)
    out = tmp_path / "f.png"
    assert main(["fuse", str(a), str(b), "-o", str(out), "--method", "dwt",
                 "--max-pixels", "2000"]) == 2
    err = capsys.readouterr().err
    assert err == (f"focusfuse fuse: error: {a}: the file says 48×48 pixels (0 million), more "
                   "than the limit of 0 million; a damaged or hostile file? If the image is "
                   "real, raise --max-pixels\n")
    assert main(["fuse", str(a), str(b), "-o", str(out), "--method", "dwt",
                 "--max-pixels", "2304"]) == 0
    with pytest.raises(SystemExit):
        main(["fuse", "--help"])
    assert "--max-pixels N" in capsys.readouterr().out


def test_warnings_are_one_line_in_the_commands_voice(tmp_path, capsys):
    import tifffile

    x = texture((48, 48), seed=3) * 1.2 - 0.1
    tifffile.imwrite(tmp_path / "a.tif", x.astype(np.float32))
    b = write_image(tmp_path / "b.png", texture((48, 48), seed=4))
    assert main(["fuse", str(tmp_path / "a.tif"), str(b), "-o", str(tmp_path / "f.png"),
                 "--method", "dwt"]) == 0
    err = capsys.readouterr().err
    assert err.startswith(f"focusfuse fuse: warning: {tmp_path / 'a.tif'} has values outside "
                          "[0, 1]") and err.count("\n") == 1


def test_unwritable_output_folder_is_refused_before_fusing(tmp_path, capsys, monkeypatch):
    # before: reported after the whole fusion, naming the temporary file
    import focusfuse.checks as checks
    from focusfuse.fusion.registry import Method

    a, b = _pair(tmp_path)
    (tmp_path / "ro").mkdir()
    real = checks._writable
    monkeypatch.setattr(checks, "_writable", lambda f: Path(f).name != "ro" and real(f))
    monkeypatch.setattr(Method, "run", lambda *args: pytest.fail("fused"))
    assert main(["fuse", str(a), str(b), "-o", str(tmp_path / "ro" / "f.png")]) == 2
    err = capsys.readouterr().err
    assert "ro is not writable; choose another folder" in err and ".focusfuse" not in err


def test_really_read_only_folder(tmp_path, capsys):
    # mode 0555 for a user; for root (whom the permission bits do not stop) an immutable
    # folder (chattr +i), where the system allows it
    import shutil

    a, b = _pair(tmp_path)
    ro = tmp_path / "ro"
    ro.mkdir()
    if os.geteuid() != 0:
        lock, unlock = (lambda: ro.chmod(0o555)), (lambda: ro.chmod(0o755))
    elif shutil.which("chattr"):
        def lock():
            if subprocess.run(["chattr", "+i", str(ro)], capture_output=True).returncode:
                pytest.skip("root, and chattr +i is not allowed here")

        def unlock():
            subprocess.run(["chattr", "-i", str(ro)], capture_output=True)
    else:
        pytest.skip("root writes into a folder of mode 0555, and there is no chattr")
    lock()
    try:
        code = main(["fuse", str(a), str(b), "-o", str(ro / "f.png"), "--method", "dwt"])
    finally:
        unlock()
    assert code == 2
    assert capsys.readouterr().err == (f"focusfuse fuse: error: output folder {ro} is not "
                                       "writable; choose another folder or change its "
                                       "permissions\n")
    assert _visible(ro) == []


def test_demo_refusals_leave_no_folder(tmp_path, capsys):
    # demo --method bogus is refused by its flag's choices; a bad option or an --out that
    # is a file are refused before the fusion, and the folder is made only after it
    with pytest.raises(SystemExit):
        main(["demo", "--method", "bogus", "--out", str(tmp_path / "d1")])
    assert main(["demo", "--method", "dwt", "--weights", "fast", "--out", str(tmp_path / "d2")]) == 2
    (tmp_path / "d3").write_text("a file")
    assert main(["demo", "--method", "dwt", "--out", str(tmp_path / "d3")]) == 2
    err = capsys.readouterr().err
    assert f"focusfuse demo: error: --out {tmp_path / 'd3'} is a file; give a folder" in err
    assert _visible(tmp_path) == ["d3"]


def test_unknown_weights_name_lists_the_shipped_models(tmp_path, capsys):
    a, b = _pair(tmp_path)
    assert main(["fuse", str(a), str(b), "-o", str(tmp_path / "f.png"), "--weights",
                 "fastest"]) == 2
    assert capsys.readouterr().err == (
        "focusfuse fuse: error: --weights 'fastest' is neither a shipped model (paper, fast) "
        "nor a file; use one of those names or give a .safetensors or .mat file\n")


def test_metrics_messages_name_the_files(tmp_path, capsys):
    a, b = _pair(tmp_path)
    small = write_image(tmp_path / "small.png", texture((40, 48), seed=5))
    assert main(["metrics", str(a), str(b), str(small)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"focusfuse metrics: error: {a}, {b} and {small} must have the same "
                          "height and width") and err.count("\n") == 1
