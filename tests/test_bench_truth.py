"""Tests of the ground-truth pair benchmark: focusfuse.bench.truth, truth files in
find_pairs, PSNR / SSIM / oracle in focusfuse bench, and ``focusfuse make-truth``.

Everything runs on 64×80 colour textures made here (``conftest.texture``); one test reads
the held-out BSDS500 images of ../shared and is skipped without them.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math

import numpy as np
import pytest

from conftest import texture
from focusfuse.bench import find_pairs, parse_methods, run_bench, write_report
from focusfuse.bench.report import ORACLE, BenchRun, summarize, truth_correlations
from focusfuse.bench.runner import MethodRun, MethodSpec
from focusfuse.bench.truth import (LAYOUTS, SETTINGS_FILE, make_truth_pair, make_truth_set,
                                   oracle_image, register, truth_scores, two_plane_depth)
from focusfuse.cli import build_parser, main
from focusfuse.fusion.result import FusionResult
from focusfuse.io import read_image, write_image
from focusfuse.metrics import METRICS


def _sharp(seed: int = 0, shape=(64, 80)) -> np.ndarray:
    return np.stack([texture(shape, seed=3 * seed + c) for c in range(3)], axis=2)


@pytest.fixture
def sharp_dir(tmp_path):
    folder = tmp_path / "sharp"
    folder.mkdir()
    for k in range(3):
        write_image(folder / f"s{k}.png", _sharp(k))
    write_image(folder / "other.jpg", _sharp(9))  # not of the held-out (.png) split
    return folder


@pytest.fixture
def truth_set(sharp_dir, tmp_path):
    return make_truth_set(sharp_dir, tmp_path / "set", variants=("clean", "handheld"), count=3,
                          seed=5)


def _digest(folder) -> dict[str, str]:
    return {p.name: hashlib.sha1(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


class FuseWith:
    """A fuse function that returns, for each pair, a chosen image of it ("truth" or "A")."""

    def __init__(self, folder, part):
        self.by_source = {read_image(p.a).tobytes(): read_image(getattr(p, part))
                          for p in find_pairs(folder)}
        self.calls = 0

    def __call__(self, images, **kw):
        self.calls += 1
        return FusionResult(self.by_source[np.asarray(images[0]).tobytes()], kw["method"])


# smoke --------------------------------------------------------------------------------

def test_truth_set_folders_and_settings(truth_set, sharp_dir):
    assert set(truth_set) == {"clean", "handheld"}
    names = sorted(p.name for p in truth_set["clean"].iterdir())
    assert names == sorted([f"s{k}-{part}.png" for k in range(3)
                            for part in ("A", "B", "truth", "oracle")] + [SETTINGS_FILE])
    meta = json.loads((truth_set["handheld"] / SETTINGS_FILE).read_text())
    assert meta["variant"] == "handheld" and meta["register"] is True and meta["seed"] == 5
    assert meta["frames"] == 2 and meta["layout"] == "two-plane" and meta["suffix"] == ".png"
    assert meta["stack_options"]["blur_range"] == 12.0  # make_stack's defaults, recorded
    assert [p["source"] for p in meta["pairs"]] == ["s0.png", "s1.png", "s2.png"]
    assert not any(np.allclose(p["transforms"][0]["matrix"], np.eye(2, 3)) for p in meta["pairs"])
    assert json.loads((truth_set["clean"] / SETTINGS_FILE).read_text())["register"] is False
    pairs = find_pairs(truth_set["clean"])
    assert [(p.name, p.truth.name, p.oracle.name) for p in pairs] == [
        (f"s{k}", f"s{k}-truth.png", f"s{k}-oracle.png") for k in range(3)]


# truth files in find_pairs -------------------------------------------------------------

def test_find_pairs_without_truth_is_unchanged(tmp_path, recwarn):
    for name in ("x-1", "x-2"):
        for part in "AB":
            write_image(tmp_path / f"{name}-{part}.png", texture((16, 16)))
    pairs = find_pairs(tmp_path)
    assert [(p.name, p.truth, p.oracle) for p in pairs] == [("x-1", None, None), ("x-2", None, None)]
    assert len(recwarn) == 0


def test_find_pairs_truth_and_oracle(tmp_path):
    for part in ("A", "B", "truth", "oracle"):
        write_image(tmp_path / f"p1-{part}.png", texture((16, 16)))
    write_image(tmp_path / "p2_A.jpg", texture((16, 16)))
    write_image(tmp_path / "p2_B.jpg", texture((16, 16)))
    write_image(tmp_path / "p2_Truth.tif", texture((16, 16)))  # "_" and any case, any type
    write_image(tmp_path / "p3-A.png", texture((16, 16)))
    write_image(tmp_path / "p3-B.png", texture((16, 16)))
    write_image(tmp_path / "lone-truth.png", texture((16, 16)))  # a truth without sources
    with pytest.warns(UserWarning) as caught:
        pairs = find_pairs(tmp_path)
    text = " ".join(str(w.message) for w in caught)
    assert "lone" in text and "1 of 3 pairs have no NAME-truth file (p3)" in text
    assert [(p.name, p.truth and p.truth.name, p.oracle and p.oracle.name) for p in pairs] == [
        ("p1", "p1-truth.png", "p1-oracle.png"), ("p2", "p2_Truth.tif", None), ("p3", None, None)]


# the generator ----------------------------------------------------------------------------

@pytest.mark.parametrize("variant", ["clean", "handheld-noisy"])
def test_pair_is_seeded(variant):
    one, two = (make_truth_pair(_sharp(), seed=7, variant=variant) for _ in range(2))
    for name in ("a", "b", "truth", "oracle"):
        assert np.array_equal(getattr(one, name), getattr(two, name)), name
    other = make_truth_pair(_sharp(), seed=8, variant=variant)
    assert not np.array_equal(one.a, other.a)


def test_set_is_reproducible(sharp_dir, tmp_path, truth_set):
    again = make_truth_set(sharp_dir, tmp_path / "again", variants=("clean", "handheld"),
                           count=3, seed=5)
    for v in truth_set:
        assert _digest(truth_set[v]) == {**_digest(again[v]), SETTINGS_FILE: _digest(truth_set[v])[SETTINGS_FILE]}
        meta = json.loads((again[v] / SETTINGS_FILE).read_text())
        assert meta["pairs"] == json.loads((truth_set[v] / SETTINGS_FILE).read_text())["pairs"]
    other = make_truth_set(sharp_dir, tmp_path / "other", variants=("clean",), count=3, seed=6)
    assert _digest(other["clean"])["s0-A.png"] != _digest(truth_set["clean"])["s0-A.png"]


def _psnr(image, truth):
    return truth_scores(image, truth)["PSNR"]


def test_oracle_is_closer_to_the_truth_than_either_source():
    """On the default layout. (With layout="stack" most pixels are blurred in both sources,
    and where the less blurred one is the worse because of a blurred foreground's spill, the
    oracle, chosen by blur radius, can lose: on seed 1 here by 0.002 dB to source B.)"""
    for seed in range(3):
        p = make_truth_pair(_sharp(seed), seed=seed)
        assert _psnr(p.oracle, p.truth) >= max(_psnr(p.a, p.truth), _psnr(p.b, p.truth))
        # clean: each oracle pixel is the chosen source's own pixel
        chosen = np.where(p.oracle_index[..., None] == 0, p.a, p.b)
        assert np.array_equal(p.oracle, chosen)
        assert 0 < np.mean(p.oracle_index == 0) < 1  # both sources contribute


def test_oracle_of_a_moving_pair_is_in_the_truths_geometry():
    p = make_truth_pair(_sharp(1), seed=3, variant="handheld")
    unwarped = _psnr(p.oracle, p.truth)
    naive, _ = oracle_image(p.stack, [p.a, p.b])  # the same, recomputed
    assert np.allclose(naive, p.oracle, atol=1 / 255 + 1e-6)
    # taking the pixels without warping them back is worse
    as_given = np.where(p.oracle_index[..., None] == 0, p.a, p.b)
    assert unwarped > _psnr(as_given, p.truth) + 1.0


def test_two_plane_depth_puts_every_segment_near_a_focus_plane():
    p = make_truth_pair(_sharp(2), seed=1)
    radius = np.minimum(p.stack.blur_radius(0), p.stack.blur_radius(1))
    spread = make_truth_pair(_sharp(2), seed=1, layout="stack").stack
    radius_stack = np.minimum(spread.blur_radius(0), spread.blur_radius(1))
    assert np.median(radius) < 1.0 < np.median(radius_stack)
    depth = two_plane_depth(spread.depth, spread.segments)
    assert np.array_equal(depth, p.stack.depth)  # the same scene, moved to the two planes


def test_generator_errors(sharp_dir, tmp_path, truth_set):
    with pytest.raises(ValueError, match="count 4 is more than the 3 .png images.*--count 3"):
        make_truth_set(sharp_dir, tmp_path / "x", count=4)
    with pytest.raises(ValueError, match="variants must be some of clean, noisy"):
        make_truth_set(sharp_dir, tmp_path / "x", variants=("foggy",), count=1)
    with pytest.raises(ValueError, match="not empty; give another --out, or --overwrite"):
        make_truth_set(sharp_dir, truth_set["clean"].parent, variants=("clean",), count=1)
    with pytest.raises(TypeError, match="unknown or fixed stack option.*frames"):
        make_truth_set(sharp_dir, tmp_path / "x", count=1, frames=3)
    with pytest.raises(ValueError, match="layout must be one of"):
        make_truth_pair(_sharp(), layout="three-plane")
    made = make_truth_set(sharp_dir, truth_set["clean"].parent, variants=("clean",), count=1,
                          overwrite=True)
    assert len(find_pairs(made["clean"])) == 1


# scores -----------------------------------------------------------------------------------

def test_truth_scores_can_fail():
    p = make_truth_pair(_sharp(), seed=2)
    perfect = truth_scores(p.truth, p.truth)
    assert perfect == {"PSNR": math.inf, "SSIM": 1.0}
    for source in (p.a, p.b):
        s = truth_scores(source, p.truth)
        assert 10 < s["PSNR"] < 45 and s["SSIM"] < 0.999
    with pytest.raises(ValueError, match="same shape.*register_first=True"):
        truth_scores(p.truth[:-2], p.truth)
    with pytest.raises(ValueError, match="centre must be in"):
        truth_scores(p.truth, p.truth, centre=0)


def test_register_undoes_a_shift():
    import cv2

    truth = _sharp(4, shape=(96, 96))
    m = np.array([[1.0, 0.0, 2.5], [0.0, 1.0, -1.5]])
    moved = cv2.warpAffine(truth, m, (96, 96), flags=cv2.INTER_LANCZOS4,
                           borderMode=cv2.BORDER_REFLECT_101)
    plain = truth_scores(moved, truth)["PSNR"]
    registered = truth_scores(moved, truth, register_first=True)
    assert registered["PSNR"] > plain + 10
    assert registered["registration"]["method"] == "ecc-affine"
    assert np.allclose(np.asarray(registered["registration"]["matrix"])[:, 2], (2.5, -1.5), atol=0.1)
    same, info = register(truth, truth)  # nothing to undo: kept as it is
    assert info["method"] == "identity" and np.array_equal(same, truth)


# the benchmark ----------------------------------------------------------------------------

def test_bench_scores_the_truth_itself_perfectly_and_a_source_lower(truth_set, tmp_path):
    folder = truth_set["clean"]
    itself = run_bench(folder, parse_methods("dwt"), tmp_path / "t", progress=False,
                       fuse_fn=FuseWith(folder, "truth"))
    source = run_bench(folder, parse_methods("dwt"), tmp_path / "b", progress=False,
                       fuse_fn=FuseWith(folder, "b"))
    assert all(r["truth"]["PSNR"] == math.inf and r["truth"]["SSIM"] == 1.0
               for r in itself.runs[0].records)
    psnr_b = [r["truth"]["PSNR"] for r in source.runs[0].records]
    oracle = {r["pair"]: r["truth"]["PSNR"] for r in source.oracle}
    assert all(math.isfinite(v) for v in psnr_b)
    assert all(oracle[r["pair"]] > r["truth"]["PSNR"] + 3 for r in source.runs[0].records)
    for pair in find_pairs(folder):  # the oracle's row is its file scored like any output
        assert oracle[pair.name] == truth_scores(read_image(pair.oracle),
                                                 read_image(pair.truth))["PSNR"]
    rows = summarize(source)
    assert [(r["name"], r["source"]) for r in rows] == [("dwt", "focusfuse"), ("oracle", ORACLE)]
    assert rows[0]["PSNR"] == pytest.approx(np.mean(psnr_b)) and rows[1]["PSNR"] > rows[0]["PSNR"]
    assert not source.registered and run_bench(
        truth_set["handheld"], parse_methods("dwt"), tmp_path / "h", progress=False).registered


def test_moving_pairs_are_registered(truth_set, tmp_path):
    bench = run_bench(truth_set["handheld"], parse_methods("laplacian"), tmp_path / "h",
                      progress=False)
    unregistered = run_bench(truth_set["handheld"], parse_methods("laplacian"), tmp_path / "n",
                             progress=False, register=False)
    got = [r["truth"]["PSNR"] for r in bench.runs[0].records]
    plain = [r["truth"]["PSNR"] for r in unregistered.runs[0].records]
    assert all("registration" in r["truth"] for r in bench.runs[0].records)
    assert np.mean(got) > np.mean(plain)


def test_aligned_pairs_score_closer_to_the_truth(tmp_path):
    """--align yes aligns each moving pair as focusfuse stack does: closer to the truth
    than fusing the sources as they are, and cached apart from the unaligned run."""
    sharp = tmp_path / "big"
    sharp.mkdir()
    from skimage import data

    photo = data.astronaut().astype(np.float32) / 255  # natural detail, which motion tears
    for k in range(2):
        write_image(sharp / f"b{k}.png", photo[k * 200:k * 200 + 192, 100:356])
    moving = make_truth_set(sharp, tmp_path / "set", variants=("handheld",), count=2)["handheld"]
    plain = run_bench(moving, parse_methods("laplacian"), tmp_path / "b", progress=False)
    aligned = run_bench(moving, parse_methods("laplacian"), tmp_path / "b", progress=False,
                        align=True)
    got = [r["truth"]["PSNR"] for r in aligned.runs[0].records]
    before = [r["truth"]["PSNR"] for r in plain.runs[0].records]
    assert np.mean(got) > np.mean(before) + 1.0, (got, before)
    assert aligned.machine["aligned"] is True and plain.machine["aligned"] is False
    with pytest.raises(ValueError, match="aligned pairs go to focusfuse stack"):
        run_bench(moving, parse_methods("laplacian,cnn-dtcwt"), tmp_path / "c", progress=False,
                  align=True)


def test_changed_truth_is_rescored(truth_set, tmp_path):
    folder, out = truth_set["clean"], tmp_path / "out"
    first = FuseWith(folder, "a")
    run_bench(folder, parse_methods("dwt"), out, progress=False, fuse_fn=first)
    assert first.calls == 4  # warm-up + 3 pairs
    cached = FuseWith(folder, "a")
    run_bench(folder, parse_methods("dwt"), out, progress=False, fuse_fn=cached)
    assert cached.calls == 0
    oracle_json = out / "oracle" / "s1.json"
    before = json.loads(oracle_json.read_text())["truth"]["PSNR"]
    write_image(folder / "s1-truth.png", read_image(folder / "s1-B.png"))
    again = FuseWith(folder, "a")
    bench = run_bench(folder, parse_methods("dwt"), out, progress=False, fuse_fn=again)
    assert again.calls == 2  # warm-up + the pair whose truth changed
    assert json.loads(oracle_json.read_text())["truth"]["PSNR"] != before
    assert bench.runs[0].records[1]["truth"]["PSNR"] != pytest.approx(
        bench.runs[0].records[0]["truth"]["PSNR"])
    # the register flag is part of the key too
    flagged = FuseWith(folder, "a")
    run_bench(folder, parse_methods("dwt"), out, progress=False, fuse_fn=flagged, register=True)
    assert flagged.calls == 4


def test_spearman_against_psnr():
    """Records built here: a metric that orders the pairs as PSNR does has +1, one that
    reverses it −1 (reference: the definition; scipy.stats.spearmanr computes it)."""
    psnr = [30.0, 25.0, 35.0, 28.0, 31.0]
    runs = []
    for label, shift in (("m1", 0.0), ("m2", 1.0), ("m3", 2.0)):
        recs = []
        for k, p in enumerate(psnr):
            scores = {m: 0.5 for m in METRICS}
            scores.update(QMI=p + shift, QCV=-p, QG=[3, 1, 2, 5, 4][k])
            recs.append({"pair": f"p{k}", "scores": scores,
                         "truth": {"PSNR": p + shift, "SSIM": (p + shift) / 100}})
        runs.append(MethodRun(MethodSpec(label, "dwt"), recs))
    corr = truth_correlations(BenchRun(pairs=[], runs=runs))
    assert corr["QMI"]["pooled"] == pytest.approx(1.0) and corr["SSIM"]["pooled"] == pytest.approx(1.0)
    assert corr["QMI"]["within_pair"] == pytest.approx(1.0) and corr["QMI"]["pairs"] == 5
    assert corr["QCV"]["per_method"] == {"m1": pytest.approx(-1.0), "m2": pytest.approx(-1.0),
                                         "m3": pytest.approx(-1.0)}
    assert corr["QG"]["per_method"]["m1"] == pytest.approx(0.1)  # ranks 3,1,2,5,4 vs 3,1,5,2,4
    assert math.isnan(corr["QP"]["pooled"])  # constant: no correlation to speak of
    assert corr["QMI"]["n"] == 15


# the command line ---------------------------------------------------------------------------

def test_cli_make_truth_then_bench(sharp_dir, tmp_path, capsys):
    sets = tmp_path / "sets"
    assert main(["make-truth", str(sharp_dir), "--out", str(sets), "--variants", "noisy",
                 "--count", "2", "--quiet"]) == 0
    assert "wrote 2 pair(s)" in capsys.readouterr().out
    out = tmp_path / "bench"
    assert main(["bench", "--pairs", str(sets / "noisy"), "--methods", "dwt,laplacian,dtcwt",
                 "--out", str(out), "--quiet"]) == 0
    md = (out / "report.md").read_text()
    assert "| method | source | n | PSNR | SSIM | QMI |" in md and "## Against the truth" in md
    assert f"| oracle | {ORACLE} | 2 |" in md
    assert "| metric | pooled | n | within a pair (mean) | pairs | dwt | laplacian | dtcwt |" in md
    with open(out / "per_image.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 8 and all(float(r["PSNR"]) > 10 for r in rows)
    with open(out / "averages.csv", newline="") as fh:
        assert [r["method"] for r in csv.DictReader(fh)] == ["dwt", "laplacian", "dtcwt", "oracle"]
    info = json.loads((out / "results.json").read_text())
    assert info["registered_to_truth"] is False and len(info["oracle"]) == 2
    assert "QMI" in info["truth_correlations"]
    assert "pair-s1.png" in {p.name for p in (out / "figures").iterdir()}  # seeded choice: s1, s2


def test_cli_make_truth_errors(sharp_dir, tmp_path, capsys):
    for argv, match in ((["--variants", "clean,foggy"], "variants must be some of"),
                        (["--count", "9"], "give --count 3 or fewer"),
                        (["--suffix", ".tif"], "holds no .tif files")):
        code = main(["make-truth", str(sharp_dir), "--out", str(tmp_path / "o"), "--quiet", *argv])
        err = capsys.readouterr().err
        assert code == 2 and err.startswith("focusfuse make-truth: error: ") and match in err


def test_cli_help_names_every_variant_and_layout():
    from focusfuse.data.stacks import VARIANTS

    sub = build_parser()._subparsers._group_actions[0].choices["make-truth"]
    actions = {a.dest: a for a in sub._actions}
    assert all(v in actions["variants"].help for v in VARIANTS)
    assert tuple(actions["layout"].choices) == LAYOUTS


def test_report_without_truth_has_no_truth_columns(tmp_path):
    for part in "AB":
        write_image(tmp_path / f"p-{part}.png", _sharp(0))
    bench = run_bench(tmp_path, parse_methods("dwt"), tmp_path / "out", progress=False)
    write_report(bench, tmp_path / "out", figures=False)
    md = (tmp_path / "out" / "report.md").read_text()
    assert "| method | source | n | QMI |" in md and "PSNR" not in md
    with open(tmp_path / "out" / "per_image.csv", newline="") as fh:
        assert "PSNR" not in next(csv.reader(fh))


@pytest.mark.shared
def test_bsds500_holdout_images(shared, tmp_path):
    folder = shared / "data" / "bsds500"
    made = make_truth_set(folder, tmp_path / "set", variants=("clean",), count=1, seed=0)
    meta = json.loads((made["clean"] / SETTINGS_FILE).read_text())
    assert meta["pairs"][0]["source"].endswith(".png")
    assert len(list(folder.glob("*.png"))) == 68
    pair = find_pairs(made["clean"])[0]
    assert read_image(pair.truth).shape == read_image(pair.a).shape


# stacks with a truth ------------------------------------------------------------------

def test_cli_make_truth_stacks_then_bench(sharp_dir, tmp_path, capsys):
    sets = tmp_path / "stacks"
    assert main(["make-truth", str(sharp_dir), "--out", str(sets), "--variants",
                 "clean,handheld", "--count", "2", "--frames", "3", "--quiet"]) == 0
    assert "wrote 2 stack(s) of 3 frames" in capsys.readouterr().out
    names = sorted(p.name for p in (sets / "clean").iterdir() if p.is_dir())
    assert len(names) == 2
    assert sorted(p.name for p in (sets / "clean" / names[0]).iterdir()) == [
        "frame_00.png", "frame_01.png", "frame_02.png"]
    meta = json.loads((sets / "handheld" / SETTINGS_FILE).read_text())
    assert meta["frames"] == 3 and meta["register"] is True and len(meta["stacks"]) == 2
    # the oracle is nearer the truth than any frame; a method scored like focusfuse stack
    truth = read_image(sets / "clean" / f"{names[0]}-truth.png")
    oracle = truth_scores(read_image(sets / "clean" / f"{names[0]}-oracle.png"), truth)["PSNR"]
    frames = [truth_scores(read_image(p), truth)["PSNR"]
              for p in sorted((sets / "clean" / names[0]).iterdir())]
    assert oracle > max(frames)
    out = tmp_path / "bench"
    assert main(["bench", "--stacks", str(sets / "clean"), "--methods", "laplacian,dwt",
                 "--out", str(out), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "| oracle | 2 |" in printed and "benchmarked 2 method(s) on 2 stack(s)" in printed
    with open(out / "stacks_per_stack.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["method"] for r in rows] == ["oracle"] * 2 + ["laplacian"] * 2 + ["dwt"] * 2
    assert all(float(r["PSNR"]) > 10 for r in rows)
    assert {r["frames"] for r in rows if r["method"] != "oracle"} == {"3"}
    direct = read_image(out / "fused" / "laplacian" / f"{names[0]}.png")
    assert direct.shape == truth.shape
    # without --methods: every method that fuses stacks (cnn-dtcwt does not)
    assert main(["bench", "--stacks", str(sets / "handheld"), "--out", str(tmp_path / "all"),
                 "--limit", "1", "--quiet"]) == 0
    capsys.readouterr()
    with open(tmp_path / "all" / "stacks_averages.csv", newline="") as fh:
        assert [r["method"] for r in csv.DictReader(fh)] == [
            "oracle", "cnn", "dtcwt", "dwt", "laplacian", "learned-pyramid"]


def test_cli_bench_stacks_errors(sharp_dir, tmp_path, capsys):
    sets = tmp_path / "stacks"
    assert main(["make-truth", str(sharp_dir), "--out", str(sets), "--variants", "clean",
                 "--count", "1", "--frames", "3", "--quiet"]) == 0
    capsys.readouterr()
    for argv, match in (
            (["--stacks", str(sets / "clean"), "--methods", "cnn-dtcwt"], "not a stack method"),
            (["--stacks", str(tmp_path / "none"), "--methods", "dwt"], "is not a folder"),
            (["--stacks", str(sharp_dir), "--methods", "dwt"], "no stack folder"),
            (["--stacks", str(sets / "clean"), "--limit", "0"], "--limit must be at least 1")):
        code = main(["bench", *argv, "--out", str(tmp_path / "b"), "--quiet"])
        err = capsys.readouterr().err
        assert code == 2 and match in err and "Traceback" not in err
    with pytest.raises(SystemExit) as stop:  # argparse: one of the two, not both
        main(["bench", "--stacks", str(sets / "clean"), "--pairs", str(sets), "--out", "b"])
    assert stop.value.code == 2 and "not allowed with" in capsys.readouterr().err
    code = main(["make-truth", str(sharp_dir), "--out", str(tmp_path / "o"), "--frames", "4",
                 "--layout", "stack", "--quiet"])
    assert code == 2 and "--layout is for pairs" in capsys.readouterr().err
