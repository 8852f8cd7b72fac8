"""Tests of focusfuse.bench and ``focusfuse bench`` on a tiny dataset made here.

Three 64×64 colour pairs (``focusfuse.examples.make_multifocus_pair`` of random textures,
written as ``pN-A.png`` / ``pN-B.png``) and the fast methods (dwt, laplacian); the one run
with figures adds the shipped CNN for the feature maps. No ../shared data is needed.
"""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from conftest import texture
from focusfuse import fuse
from focusfuse.bench import find_pairs, parse_methods, run_bench, write_report
from focusfuse.bench.report import OURS, PUBLISHED, RESCORED, deviations, summarize
from focusfuse.bench.runner import Progress
from focusfuse.cli import main
from focusfuse.examples import make_multifocus_pair, region_mask
from focusfuse.io import read_image, write_image
from focusfuse.metrics import METRICS, evaluate

FAST = "dwt,laplacian"


def _make_pairs(folder, names=("p1", "p2", "p3"), size=64):
    folder.mkdir(parents=True, exist_ok=True)
    for k, name in enumerate(names):
        sharp = np.stack([texture((size, size), seed=3 * k + c) for c in range(3)], axis=2)
        a, b = make_multifocus_pair(sharp, region_mask((size, size), kind="half"), sigma=2.0)
        write_image(folder / f"{name}-A.png", a)
        write_image(folder / f"{name}-B.png", b)
    return folder


@pytest.fixture
def pairs_dir(tmp_path):
    folder = _make_pairs(tmp_path / "pairs")
    (folder / "notes.txt").write_text("not an image")
    return folder


class Counting:
    """focusfuse.fuse that counts its calls per method."""

    def __init__(self):
        self.calls = {}

    def __call__(self, images, **kw):
        self.calls[kw["method"]] = self.calls.get(kw["method"], 0) + 1
        return fuse(images, **kw)


# smoke --------------------------------------------------------------------------------

def test_cli_writes_csv_markdown_html(pairs_dir, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["bench", "--pairs", str(pairs_dir), "--methods", FAST, "--out", str(out),
                 "--no-figures", "--quiet"]) == 0
    assert "benchmarked 2 method(s) on 3 pair(s)" in capsys.readouterr().out
    with open(out / "per_image.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 6 and {r["method"] for r in rows} == {"dwt", "laplacian"}
    assert all(float(r["seconds"]) > 0 and float(r["QG"]) > 0 for r in rows)
    with open(out / "averages.csv", newline="") as fh:
        avg = list(csv.DictReader(fh))
    assert [r["method"] for r in avg] == ["dwt", "laplacian"] and avg[0]["n"] == "3"
    md = (out / "report.md").read_text()
    assert "| method | source | n | QMI |" in md and "s / megapixel" in md
    assert "<table>" in (out / "report.html").read_text()
    info = json.loads((out / "results.json").read_text())["machine"]
    assert {"cpu", "torch", "torch_threads", "gpu"} <= set(info)
    assert info["precision"] == {"dwt": "numpy", "laplacian": "numpy"}


def test_report_with_figures_and_feature_maps(pairs_dir, tmp_path):
    out = tmp_path / "out"
    bench = run_bench(pairs_dir, parse_methods("cnn:fp32,dwt"), out, device="cpu",
                      progress=False, limit=2)
    paths = write_report(bench, out, show=["p2"])
    names = sorted(p.name for p in (out / "figures").iterdir())
    assert names == ["features-cnn_fp32-p2.png", "maps-cnn_fp32-p2.png", "metrics.png",
                     "pair-p2.png", "timing.png"]
    page = paths["html"].read_text()
    assert page.count("data:image/png;base64,") == 5 and "src=\"figures/" not in page
    assert "](figures/pair-p2.png)" in paths["markdown"].read_text()
    assert (out / "fused" / "cnn_fp32" / "p1-decision.png").is_file()
    assert bench.machine["precision"] == {"cnn:fp32": "fp32", "dwt": "numpy"}


# pairs and method specs ---------------------------------------------------------------

def test_find_pairs_sorts_naturally(tmp_path):
    folder = _make_pairs(tmp_path, names=("x-10", "x-2", "x-1"), size=16)
    assert [p.name for p in find_pairs(folder)] == ["x-1", "x-2", "x-10"]
    pair = find_pairs(folder)[0]
    assert pair.a.name == "x-1-A.png" and pair.b.name == "x-1-B.png"
    write_image(folder / "y_B.jpg", texture((16, 16)))  # "_" separates too, any image type
    write_image(folder / "y_A.jpg", texture((16, 16)))
    assert find_pairs(folder)[-1].a.name == "y_A.jpg"


def test_find_pairs_warns_about_a_lone_source(pairs_dir):
    write_image(pairs_dir / "lone-A.png", texture((16, 16)))
    with pytest.warns(UserWarning, match="lone"):
        pairs = find_pairs(pairs_dir)
    assert [p.name for p in pairs] == ["p1", "p2", "p3"]


def test_parse_methods(tmp_path):
    weights = tmp_path / "w.safetensors"
    weights.write_bytes(b"")
    specs = parse_methods("cnn, cnn@mine:fp32,dwt", weights={"mine": weights}, precision="bf16")
    assert [s.label for s in specs] == ["cnn", "cnn@mine:fp32", "dwt"]
    assert specs[0].weights is None and specs[0].precision == "bf16"
    assert specs[1].weights == weights and specs[1].precision == "fp32"
    assert specs[1].slug == "cnn_at_mine_fp32"
    # a file path works without a name
    assert parse_methods(f"cnn-dtcwt@{weights}")[0].weights == weights


# bad input ----------------------------------------------------------------------------

@pytest.mark.parametrize("methods, match", [
    ("cnn,sift", "unknown method 'sift'"),
    ("dwt@mine", "takes no @WEIGHTS"),
    ("cnn@nobody", "add --weights nobody=FILE"),
    ("dwt,dwt", "listed twice"),
    (" , ", "methods is empty"),
])
def test_parse_methods_errors(methods, match):
    with pytest.raises(ValueError, match=match):
        parse_methods(methods)


def _fails(capsys, argv, match):
    code = main(["bench", *map(str, argv), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("focusfuse bench: error: ")
    assert err.count("\n") == 1 and match in err
    return err


def test_cli_no_pairs_found(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    _fails(capsys, ["--pairs", tmp_path / "empty", "--out", tmp_path / "o"],
           "no image pairs in")
    _fails(capsys, ["--pairs", tmp_path / "absent", "--out", tmp_path / "o"], "does not exist")


def test_cli_unknown_method(pairs_dir, tmp_path, capsys):
    _fails(capsys, ["--pairs", pairs_dir, "--out", tmp_path / "o", "--methods", "dwt,magic"],
           "unknown method 'magic'")
    assert not (tmp_path / "o").exists()


def test_cli_missing_reference_folder(pairs_dir, tmp_path, capsys):
    _fails(capsys, ["--pairs", pairs_dir, "--out", tmp_path / "o", "--methods", "dwt",
                    "--reference", tmp_path / "nowhere"], "reference folder")
    assert not (tmp_path / "o").exists()


def test_cli_bad_weights_flag(pairs_dir, tmp_path, capsys):
    _fails(capsys, ["--pairs", pairs_dir, "--out", tmp_path / "o", "--weights", "authors"],
           "expected NAME=FILE")
    _fails(capsys, ["--pairs", pairs_dir, "--out", tmp_path / "o", "--weights",
                    f"a={tmp_path / 'none.mat'}"], "no such file")


def test_reference_without_matching_images(pairs_dir, tmp_path, capsys):
    (tmp_path / "ref" / "m").mkdir(parents=True)
    _fails(capsys, ["--pairs", pairs_dir, "--out", tmp_path / "o", "--methods", "dwt",
                    "--reference", tmp_path / "ref"], "no method folders with images")


# invariants: resume, reference scoring ------------------------------------------------

def test_resume_skips_finished_pairs(pairs_dir, tmp_path):
    out = tmp_path / "out"
    specs = parse_methods(FAST)
    first = Counting()
    run_bench(pairs_dir, specs, out, progress=False, fuse_fn=first)
    assert first.calls == {"dwt": 4, "laplacian": 4}  # one warm-up + three pairs each
    cached = out / "fused" / "laplacian" / "p1.png"
    mtime = cached.stat().st_mtime_ns
    (out / "fused" / "dwt" / "p2.json").unlink()  # as if interrupted before p2 was saved

    again = Counting()
    bench = run_bench(pairs_dir, specs, out, progress=False, fuse_fn=again)
    assert again.calls == {"dwt": 2}  # warm-up + the missing pair; laplacian all cached
    assert cached.stat().st_mtime_ns == mtime
    assert [r["pair"] for r in bench.runs[0].records] == ["p1", "p2", "p3"]
    assert bench.runs[1].warmup_seconds is None  # nothing to warm up for

    refreshed = Counting()
    run_bench(pairs_dir, specs[:1], out, progress=False, refresh=True, fuse_fn=refreshed)
    assert refreshed.calls == {"dwt": 4}


def test_changed_source_is_redone(pairs_dir, tmp_path):
    out = tmp_path / "out"
    run_bench(pairs_dir, parse_methods("dwt"), out, progress=False)
    write_image(pairs_dir / "p3-B.png", np.stack([texture((64, 64), seed=99)] * 3, axis=2))
    counting = Counting()
    run_bench(pairs_dir, parse_methods("dwt"), out, progress=False, fuse_fn=counting)
    assert counting.calls == {"dwt": 2}


def test_published_images_rescored_equal_published_values(pairs_dir, tmp_path):
    """A reference folder whose metrics.csv holds our own scores: deviations are zero."""
    ref = tmp_path / "ref"
    (ref / "avg").mkdir(parents=True)
    lines = ["pair,method," + ",".join(METRICS)]
    for p in find_pairs(pairs_dir):
        a, b = read_image(p.a), read_image(p.b)
        write_image(ref / "avg" / f"{p.name}.png", (a + b) / 2)
        s = evaluate(a, b, read_image(ref / "avg" / f"{p.name}.png"))
        lines.append(f"{p.name},avg," + ",".join(f"{s[m]:.6f}" for m in METRICS))
        lines.append(f"{p.name},other," + ",".join("0.5" for _ in METRICS))
    (ref / "metrics.csv").write_text("\n".join(lines) + "\n")
    out = tmp_path / "out"
    bench = run_bench(pairs_dir, parse_methods("dwt"), out, reference=ref, progress=False)
    rows = summarize(bench)
    assert [(r["name"], r["source"]) for r in rows] == [
        ("dwt", OURS), ("avg", RESCORED), ("avg", PUBLISHED)]
    assert summarize(bench, published_rows="all")[-1]["name"] == "other"
    devs = deviations(bench)
    assert set(devs) == set(METRICS)
    assert all(d["max"] < 1e-6 and d["within"] == d["count"] == 3 for d in devs.values())
    write_report(bench, out, figures=False)
    assert "Published images rescored" in (out / "report.md").read_text()


def test_progress_prints_a_line_per_item_when_not_a_terminal(capsys):
    import sys

    bar = Progress(2, stream=sys.stderr)
    bar.update("dwt p1")
    bar.update("dwt p2", cached=True)
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("bench [") and "1/2 dwt p1" in err[0]
    assert err[1].endswith("2/2 dwt p2 (cached)")
