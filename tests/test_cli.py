"""Tests of the command line (focusfuse.cli): bad input, and successful runs.

Every bad input gets a one-line message, exit code 2, no output file, and leaves the inputs
as they were. These checks all happen before the model is loaded; the successful CNN runs
use the authors' weights from ../shared via --weights (skipped without them) or the
shipped fast model.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import texture
from focusfuse.cli import main
from focusfuse.io import read_image, write_image

CNN = ["--precision", "fp32", "--device", "cpu"]


def _gray(path: Path, shape=(48, 48), seed=0, bit_depth=8) -> Path:
    return write_image(path, texture(shape, seed=seed), bit_depth=bit_depth)


def _colour(path: Path, shape=(48, 48), seed=0) -> Path:
    return write_image(path, np.stack([texture(shape, seed=seed + k) for k in range(3)], axis=2))


def _snapshot(paths) -> dict:
    """Bytes and modification time of each file, to show the inputs are left untouched."""
    return {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in paths}


def _fails(capsys, argv, inputs, output, match) -> str:
    """Run the CLI in-process and check the contract of a bad input; returns stderr."""
    before = _snapshot(inputs)
    existed = output.exists()
    code = main(["fuse", *map(str, argv)])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("focusfuse fuse: error: ")
    assert err.count("\n") == 1  # one line, no traceback
    assert match in err
    assert output.exists() == existed
    assert _snapshot(inputs) == before
    assert not list(output.parent.glob(".focusfuse-*"))  # no temporary files either
    return err


# smoke ---------------------------------------------------------------------------------

def test_help_lists_commands(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for command in ("fuse", "demo", "metrics", "train"):
        assert command in out


def test_fuse_help_shows_defaults(capsys):
    with pytest.raises(SystemExit):
        main(["fuse", "--help"])
    out = capsys.readouterr().out
    assert "--save-steps" in out and "--overwrite" in out
    assert "default: 0.01" in out  # --min-region


@pytest.mark.shared
def test_fuse_writes_output(tmp_path, capsys, mat_weights):
    a, b = _gray(tmp_path / "a.png", seed=1), _gray(tmp_path / "b.png", seed=2)
    out = tmp_path / "fused.png"
    assert main(["fuse", str(a), str(b), "-o", str(out), "--weights", str(mat_weights), *CNN]) == 0
    assert f"wrote {out} (8 bit)" in capsys.readouterr().out
    im = read_image(out, with_depth=True)
    assert im.pixels.shape == (48, 48) and im.bit_depth == 8


# errors --------------------------------------------------------------------------------

def test_images_of_different_sizes(tmp_path, capsys):
    a, b = _gray(tmp_path / "a.png"), _gray(tmp_path / "b.png", shape=(48, 50))
    out = tmp_path / "out.png"
    err = _fails(capsys, [a, b, "-o", out], [a, b], out, "same size")
    assert "a.png 48×48" in err and "b.png 50×48" in err and "align or crop" in err


def test_single_image(tmp_path, capsys):
    a = _gray(tmp_path / "a.png")
    out = tmp_path / "out.png"
    _fails(capsys, [a, "-o", out], [a], out, "at least two images")


@pytest.mark.parametrize("position", [0, 1])
def test_file_that_is_not_an_image(tmp_path, capsys, position):
    a = _gray(tmp_path / "a.png")
    bad = tmp_path / "notes.png"
    bad.write_text("shopping list\n")
    files = [a, bad] if position else [bad, a]
    out = tmp_path / "out.png"
    err = _fails(capsys, [*files, "-o", out], [a, bad], out, "not a readable image")
    assert "notes.png" in err


def test_missing_input(tmp_path, capsys):
    a = _gray(tmp_path / "a.png")
    out = tmp_path / "out.png"
    _fails(capsys, [a, tmp_path / "b.png", "-o", out], [a], out, "no such file")


def test_gray_and_colour_together(tmp_path, capsys):
    a, b = _gray(tmp_path / "a.png"), _colour(tmp_path / "b.png")
    out = tmp_path / "out.png"
    err = _fails(capsys, [a, b, "-o", out], [a, b], out, "convert them all to gray or all to colour")
    assert "a.png is gray" in err and "b.png is colour" in err


def test_output_folder_does_not_exist(tmp_path, capsys):
    a, b = _gray(tmp_path / "a.png"), _gray(tmp_path / "b.png", seed=1)
    out = tmp_path / "missing" / "out.png"
    _fails(capsys, [a, b, "-o", out], [a, b], out, "does not exist")
    assert not out.parent.exists()


@pytest.mark.parametrize("which", [0, 1])
def test_output_equal_to_an_input(tmp_path, capsys, which):
    a, b = _gray(tmp_path / "a.png"), _gray(tmp_path / "b.png", seed=1)
    out = [a, b][which]
    _fails(capsys, [a, b, "-o", out, "--overwrite"], [a, b], out, "also an input")


def test_output_equal_to_an_input_by_another_path(tmp_path, capsys):
    a, b = _gray(tmp_path / "a.png"), _gray(tmp_path / "b.png", seed=1)
    (tmp_path / "sub").mkdir()
    out = tmp_path / "sub" / ".." / "a.png"
    _fails(capsys, [a, b, "-o", out, "--overwrite"], [a, b], a, "also an input")


def test_output_exists_without_overwrite(tmp_path, capsys):
    a, b = _gray(tmp_path / "a.png"), _gray(tmp_path / "b.png", seed=1)
    out = _gray(tmp_path / "out.png", seed=9)
    _fails(capsys, [a, b, "-o", out], [a, b, out], out, "--overwrite")


def test_output_of_unknown_type(tmp_path, capsys):
    a, b = _gray(tmp_path / "a.png"), _gray(tmp_path / "b.png", seed=1)
    out = tmp_path / "out.bmp"
    _fails(capsys, [a, b, "-o", out], [a, b], out, "unknown image type")


def test_missing_weights_file(tmp_path, capsys):
    a, b = _gray(tmp_path / "a.png"), _gray(tmp_path / "b.png", seed=1)
    out = tmp_path / "out.png"
    _fails(capsys, [a, b, "-o", out, "--weights", tmp_path / "w.safetensors"], [a, b], out,
           "does not exist")


def test_bad_input_end_to_end(tmp_path):
    # the real console entry point in a fresh interpreter: exit code, message, no traceback
    a, b = _gray(tmp_path / "a.png"), _gray(tmp_path / "b.png", shape=(40, 48))
    out = tmp_path / "out.png"
    proc = subprocess.run([sys.executable, "-m", "focusfuse.cli", "fuse", str(a), str(b),
                           "-o", str(out)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert "focusfuse fuse: error: images must have the same size" in proc.stderr
    assert not out.exists()


def test_console_entry_point_flushes_before_its_quick_exit(tmp_path):
    # piped output is block-buffered: the message must survive the exit without teardown
    a, b = _gray(tmp_path / "a.png"), _gray(tmp_path / "b.png", seed=1)
    out = tmp_path / "out.png"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    proc = subprocess.run([sys.executable, "-m", "focusfuse.cli", "fuse", str(a), str(b),
                           "-o", str(out), "--weights", "fast"], capture_output=True, text=True,
                          timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr
    assert f"wrote {out}" in proc.stdout
    assert read_image(out).shape == read_image(a).shape


# invariants: what a successful run writes ----------------------------------------------

@pytest.mark.shared
def test_save_steps_writes_every_map(tmp_path, capsys, mat_weights):
    a, b = _colour(tmp_path / "a.png", seed=1), _colour(tmp_path / "b.png", seed=5)
    out, steps = tmp_path / "fused.png", tmp_path / "steps"
    code = main(["fuse", str(a), str(b), "-o", str(out), "--weights", str(mat_weights),
                 "--save-steps", str(steps), *CNN])
    assert code == 0
    assert "wrote 5 intermediate maps" in capsys.readouterr().out
    names = sorted(p.name for p in steps.iterdir())
    assert names == ["binary.png", "decision.png", "features-conv1.png", "features-conv2.png",
                     "features-conv3.png", "focus.png", "refined.png", "score.png"]
    assert read_image(steps / "score.png").shape == (17, 17)  # ceil(48/2) − 7
    assert read_image(steps / "decision.png").shape == (48, 48)
    assert set(np.unique(read_image(steps / "binary.png"))) <= {0.0, 1.0}


@pytest.mark.shared
def test_save_steps_of_three_images(tmp_path, capsys, mat_weights):
    srcs = [_gray(tmp_path / f"{k}.png", seed=k) for k in range(3)]
    steps = tmp_path / "steps"
    assert main(["fuse", *map(str, srcs), "-o", str(tmp_path / "f.png"), "--weights",
                 str(mat_weights), "--save-steps", str(steps), *CNN]) == 0
    # three images: one decision over all (a stack), so a depth map instead of pair maps
    names = sorted(p.name for p in steps.iterdir() if not p.name.startswith("features-"))
    assert names == ["depth.png"]
    depth = read_image(steps / "depth.png", with_depth=True)
    assert depth.bit_depth == 16 and set(np.unique(np.rint(depth.pixels * 2))) <= {0, 1, 2}
    assert len(list(steps.glob("features-conv*.png"))) == 3  # one picture per conv layer


@pytest.mark.shared
def test_16_bit_input_gives_16_bit_output(tmp_path, capsys, mat_weights):
    a = _gray(tmp_path / "a.png", seed=1, bit_depth=16)
    b = _gray(tmp_path / "b.png", seed=2, bit_depth=16)
    out = tmp_path / "fused.png"
    assert main(["fuse", str(a), str(b), "-o", str(out), "--weights", str(mat_weights), *CNN]) == 0
    im = read_image(out, with_depth=True)
    assert im.bit_depth == 16
    codes = np.round(im.pixels.astype(np.float64) * 65535)
    assert np.mean(codes % 257 != 0) > 0.5  # not 8-bit values stored in 16 bits
    # one 16-bit input is enough for a 16-bit output
    b8 = _gray(tmp_path / "b8.png", seed=2)
    mixed = tmp_path / "mixed.png"
    assert main(["fuse", str(a), str(b8), "-o", str(mixed), "--weights", str(mat_weights), *CNN]) == 0
    assert read_image(mixed, with_depth=True).bit_depth == 16
    # --bit-depth 8 overrides
    out8 = tmp_path / "fused8.png"
    assert main(["fuse", str(a), str(b), "-o", str(out8), "--weights", str(mat_weights),
                 "--bit-depth", "8", *CNN]) == 0
    assert read_image(out8, with_depth=True).bit_depth == 8


@pytest.mark.shared
def test_overwrite_replaces_output(tmp_path, capsys, mat_weights):
    a, b = _gray(tmp_path / "a.png", seed=1), _gray(tmp_path / "b.png", seed=2)
    out = _gray(tmp_path / "out.png", seed=9)
    old = out.read_bytes()
    assert main(["fuse", str(a), str(b), "-o", str(out), "--overwrite", "--weights",
                 str(mat_weights), *CNN]) == 0
    assert out.read_bytes() != old
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png", "b.png", "out.png"]


# --save-steps and option checks (found in review) -----------------------------------------

def test_save_steps_folder_holding_an_input_is_refused(tmp_path, capsys):
    steps = tmp_path / "steps"
    steps.mkdir()
    a, b = _gray(steps / "score.png"), _gray(steps / "binary.png", seed=1)
    out = tmp_path / "f.png"
    _fails(capsys, [a, b, "-o", out, "--method", "dwt", "--save-steps", steps], [a, b], out,
           "which this command reads or writes")


def test_save_steps_folder_not_empty_needs_overwrite(tmp_path, capsys):
    a, b = _gray(tmp_path / "a.png"), _gray(tmp_path / "b.png", seed=1)
    steps = tmp_path / "steps"
    steps.mkdir()
    keep = steps / "notes.txt"
    keep.write_text("mine")
    out = tmp_path / "f.png"
    _fails(capsys, [a, b, "-o", out, "--method", "dwt", "--save-steps", steps], [a, b, keep],
           out, "is not empty")


def test_save_steps_that_is_a_file_is_refused(tmp_path, capsys):
    a, b = _gray(tmp_path / "a.png"), _gray(tmp_path / "b.png", seed=1)
    steps = tmp_path / "steps.png"
    steps.write_bytes(b"x")
    out = tmp_path / "f.png"
    _fails(capsys, [a, b, "-o", out, "--save-steps", steps], [a, b, steps], out, "is a file")


@pytest.mark.parametrize("method,flag,value", [("cnn", "--min-region", "1.5"),
                                               ("cnn", "--guided-radius", "-1"),
                                               ("cnn", "--guided-eps", "0"),
                                               ("dwt", "--levels", "0"),
                                               ("laplacian", "--consistency", "2")])
def test_bad_settings_fail_before_any_work(tmp_path, capsys, method, flag, value):
    # the library's check, told with the flag's name
    a, b = _gray(tmp_path / "a.png"), _gray(tmp_path / "b.png", seed=1)
    out = tmp_path / "f.png"
    err = _fails(capsys, [a, b, "-o", out, "--method", method, flag, value], [a, b], out,
                 f"error: {flag} must be")
    assert value in err


@pytest.mark.parametrize("method,flag,value,owners", [
    ("dtcwt", "--guided-radius", "3", "cnn, cnn-dtcwt"),
    ("cnn", "--levels", "4", "cnn-dtcwt, dtcwt, dwt, laplacian"),
    ("laplacian", "--wavelet", "db1", "dwt"),
    ("dwt", "--weights", "fast", "cnn, cnn-dtcwt, learned-pyramid"),
])
def test_an_option_of_another_method_is_refused(tmp_path, capsys, method, flag, value, owners):
    a, b = _gray(tmp_path / "a.png"), _gray(tmp_path / "b.png", seed=1)
    out = tmp_path / "f.png"
    err = _fails(capsys, [a, b, "-o", out, "--method", method, flag, value], [a, b], out,
                 f"{flag} is an option of {owners}, not of --method {method}")
    assert "drop it" in err


def test_sixteen_bit_inputs_to_jpeg_give_eight_bit(tmp_path, capsys):
    a = _gray(tmp_path / "a.png", bit_depth=16)
    b = _gray(tmp_path / "b.png", seed=1, bit_depth=16)
    out = tmp_path / "f.jpg"
    assert main(["fuse", str(a), str(b), "-o", str(out), "--method", "dwt"]) == 0
    assert "(8 bit)" in capsys.readouterr().out
    assert read_image(out, with_depth=True).bit_depth == 8


def test_folder_given_as_an_image(tmp_path, capsys):
    a = _gray(tmp_path / "a.png")
    folder = tmp_path / "b.png"
    folder.mkdir()
    out = tmp_path / "f.png"
    _fails(capsys, [a, folder, "-o", out, "--method", "dwt"], [a], out, "is a folder")


def test_the_model_is_loaded_once_for_fusing_and_feature_maps(tmp_path, capsys, monkeypatch):
    import focusfuse.models as models
    from focusfuse.fusion.cnn import _load_cached

    _load_cached.cache_clear()
    calls = []
    real = models.load_weights
    monkeypatch.setattr(models, "load_weights", lambda p=None: calls.append(p) or real(p))
    a, b = _gray(tmp_path / "a.png"), _gray(tmp_path / "b.png", seed=1)
    argv = ["fuse", str(a), str(b), "-o", str(tmp_path / "f.png"), "--weights", "fast",
            "--save-steps", str(tmp_path / "steps")]
    assert main(argv) == 0
    assert "feature-map pictures" in capsys.readouterr().out
    assert calls == ["fast"]


def test_sources_with_alpha_fuse_to_png_and_are_refused_for_jpeg(tmp_path, capsys):
    rng = np.random.default_rng(0)
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    for path in (a, b):
        write_image(path, rng.random((40, 40, 4)).astype(np.float32))
    out = tmp_path / "f.png"
    assert main(["fuse", str(a), str(b), "-o", str(out), "--method", "laplacian"]) == 0
    assert read_image(out).shape == (40, 40, 4)
    _fails(capsys, [a, b, "-o", tmp_path / "f.jpg", "--method", "laplacian"], [a, b],
           tmp_path / "f.jpg", "JPEG cannot hold the alpha channel")
