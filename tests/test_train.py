"""Tests of training-pair synthesis (focusfuse.data) and the training loop (focusfuse.train).

The runs are tiny (6–9 steps of 16 pairs on 64×64 generated images, one thread, fp32): they
check the files, resuming and determinism, not that the classifier learns.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import texture
from focusfuse.data import PatchPairSampler, blur_cascade, list_images, make_pairs
from focusfuse.io import write_image
from focusfuse.models import load_weights
from focusfuse.train import TrainConfig, evaluate_pairs, train
from focusfuse.train.loop import split_files


def _grad_energy(x: np.ndarray) -> float:
    """Mean squared finite difference, over both axes (a plain sharpness measure)."""
    x = np.asarray(x, np.float64)
    return float(np.mean(np.diff(x, axis=-1) ** 2) + np.mean(np.diff(x, axis=-2) ** 2))


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory) -> Path:
    """Six 64×64 textured images: four gray, two colour, as 8-bit PNG."""
    folder = tmp_path_factory.mktemp("images")
    for k in range(6):
        if k % 3 == 2:
            im = np.stack([texture((64, 64), seed=10 * k + c) for c in range(3)], axis=2)
        else:
            im = texture((64, 64), seed=10 * k)
        write_image(folder / f"img{k}.png", im)
    (folder / "readme.txt").write_text("not an image; list_images skips it\n")
    return folder


def _config(folder: Path, out: Path, **kw) -> TrainConfig:
    base = dict(data=str(folder), out=str(out), steps=6, eval_every=3, val_pairs=64,
                hard_val_pairs=32, batch_size=16, precision="fp32", threads=1, val_fraction=0.34, seed=0,
                arch="released")
    base.update(kw)
    return TrainConfig(**base)


def _log(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def trained(image_folder, tmp_path_factory):
    """One tiny run of 6 steps (evaluations at steps 3 and 6), shared by several tests."""
    out = tmp_path_factory.mktemp("run")
    return out, train(_config(image_folder, out), progress=lambda s: None)


@pytest.fixture(autouse=True, scope="module")
def _restore_torch_threads():
    """train(threads=1) sets torch's thread count for the process: put it back afterwards."""
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


# smoke ---------------------------------------------------------------------------------

def test_tiny_run_writes_its_files(trained):
    out, result = trained
    assert result.steps == 6 and result.out == out
    names = sorted(p.name for p in out.iterdir())
    assert names == ["checkpoint.safetensors", "log.jsonl", "model.safetensors", "state.json"]
    log = _log(out)
    assert [r["step"] for r in log] == [3, 6]
    assert log[-1]["pairs_seen"] == 6 * 16
    for rec in log:
        assert np.isfinite(rec["train_loss"]) and np.isfinite(rec["val_loss"])
        assert 0.0 <= rec["val_accuracy"] <= 1.0
        assert np.isfinite(rec["hard_val_loss"]) and 0.0 <= rec["hard_val_accuracy"] <= 1.0
    state = json.loads((out / "state.json").read_text())
    assert state["step"] == 6 and state["config"]["batch_size"] == 16
    assert result.best_step in (3, 6)
    assert result.best_accuracy == max(r["val_accuracy"] for r in log)


def test_checkpoint_carries_its_state(trained):
    """Weights and run state are replaced in one rename: the state is in the file itself."""
    from safetensors import safe_open

    out, _ = trained
    with safe_open(str(out / "checkpoint.safetensors"), "pt") as fh:
        inside = json.loads(fh.metadata()["state"])
    assert inside == json.loads((out / "state.json").read_text())
    assert inside["step"] == 6


def test_resume_does_not_need_state_json(trained, image_folder, tmp_path):
    import shutil

    out = tmp_path / "run"
    shutil.copytree(trained[0], out)
    (out / "state.json").write_text("{}")  # stale or broken copy: not what resuming reads
    messages = []
    train(_config(image_folder, out, steps=9), progress=messages.append)
    assert any("resuming" in m and "step 6" in m for m in messages)


def test_snapshots_are_kept_when_asked(image_folder, tmp_path):
    train(_config(image_folder, tmp_path, keep_snapshots=True), progress=lambda s: None)
    snaps = sorted(p.name for p in (tmp_path / "snapshots").iterdir())
    assert snaps == ["step-000003.safetensors", "step-000006.safetensors"]
    assert load_weights(tmp_path / "snapshots" / snaps[0]).fc1 is None


def test_trained_model_loads(trained):
    out, result = trained
    model = load_weights(out / "model.safetensors")
    assert model.fc1 is None  # the "released" architecture, named in the metadata
    a = torch.rand(4, 1, 16, 16)
    with torch.no_grad():
        assert torch.isfinite(model(a, a.flip(0))).all()


# shapes --------------------------------------------------------------------------------

def test_blur_cascade_shape():
    stack = blur_cascade(texture((40, 30)))
    assert stack.shape == (6, 40, 30) and stack.dtype == np.float32
    assert blur_cascade(texture((40, 30)), levels=2).shape == (3, 40, 30)


def test_sampler_shapes(image_folder):
    sampler = PatchPairSampler.from_files(list_images(image_folder))
    assert sampler.levels == 5 and len(sampler.stacks) == 6
    a, b, y = sampler.sample(37, np.random.default_rng(0))
    assert a.shape == b.shape == (37, 16, 16) and a.dtype == np.float32
    assert y.shape == (37,) and y.dtype == np.int64 and set(np.unique(y)) <= {0, 1}


def test_list_images_skips_other_files(image_folder):
    files = list_images(image_folder)
    assert [f.name for f in files] == [f"img{k}.png" for k in range(6)]


# errors --------------------------------------------------------------------------------

@pytest.mark.parametrize("kw,match", [({"steps": 0}, "at least 1"), ({"batch_size": 0}, "at least 1"),
                                      ({"val_pairs": 0}, "val_pairs"),
                                      ({"blur_levels": 0}, "blur_levels"),
                                      ({"precision": "fp16"}, "precision"),
                                      ({"val_fraction": 1.0}, "val_fraction"),
                                      ({"hard_val_pairs": -1}, "hard_val_pairs")])
def test_bad_config(tmp_path, kw, match):
    with pytest.raises(ValueError, match=match):
        _config(tmp_path, tmp_path / "out", **kw)


def test_list_images_errors(tmp_path, image_folder):
    with pytest.raises(ValueError, match="does not exist"):
        list_images(tmp_path / "missing")
    with pytest.raises(ValueError, match="holds no"):
        list_images(image_folder, suffixes=(".jpg",))


def test_holdout_suffix_without_files(tmp_path, image_folder):
    with pytest.raises(ValueError, match="holdout_suffix ..tif. leaves 6 training and 0 validation"):
        split_files(_config(image_folder, tmp_path, holdout_suffix=".tif"))


def test_blur_cascade_errors():
    with pytest.raises(ValueError, match="gray"):
        blur_cascade(np.zeros((20, 20, 3), np.float32))
    with pytest.raises(ValueError, match="kernel"):
        blur_cascade(np.zeros((20, 20), np.float32), kernel="box")


def test_changed_setting_on_resume_raises(trained, image_folder):
    out, _ = trained
    before = (out / "log.jsonl").read_text()
    with pytest.raises(ValueError, match="other settings \\(lr\\)"):
        train(_config(image_folder, out, lr=0.5), progress=lambda s: None)
    assert (out / "log.jsonl").read_text() == before


# invariants ----------------------------------------------------------------------------

@pytest.mark.parametrize("kernel", ["gaussian", "disk"])
def test_each_blur_level_is_blurrier(kernel):
    stack = blur_cascade(texture((64, 64), seed=3), kernel=kernel)
    energy = [_grad_energy(level) for level in stack]
    assert all(e1 < e0 for e0, e1 in zip(energy, energy[1:])), energy


def test_blur_preserves_mean():
    x = texture((64, 64), seed=4)
    stack = blur_cascade(x)
    np.testing.assert_allclose(stack.mean(axis=(1, 2)), x.mean(), atol=5e-3)


def test_split_is_disjoint_and_seeded(image_folder, tmp_path):
    cfg = _config(image_folder, tmp_path)
    train_files, val_files = split_files(cfg)
    assert len(val_files) == 2 and len(train_files) == 4
    assert not set(train_files) & set(val_files)
    assert split_files(cfg) == (train_files, val_files)
    assert split_files(replace(cfg, seed=1)) != (train_files, val_files)


def test_clear_patches_have_texture(image_folder):
    sampler = PatchPairSampler.from_files(list_images(image_folder))
    a, b, y = sampler.sample(200, np.random.default_rng(1))
    clear = np.where((y == 1)[:, None, None], a, b)
    # variance on the 0..255 scale above the paper's rejection threshold 25
    assert np.all((clear.astype(np.float64) * 255).var(axis=(1, 2)) > 25)


def test_rejects_flat_patches():
    # one image, flat on its left half: no clear patch may come from there
    x = texture((64, 64), seed=5)
    x[:, :40] = 0.5
    sampler = PatchPairSampler([blur_cascade(x)])
    a, b, y = sampler.sample(100, np.random.default_rng(2))
    clear = np.where((y == 1)[:, None, None], a, b)
    assert np.all((clear.astype(np.float64) * 255).var(axis=(1, 2)) > 25)


def test_flat_images_give_an_error_not_a_hang():
    sampler = PatchPairSampler([blur_cascade(np.full((40, 40), 0.5, np.float32))])
    with pytest.raises(ValueError, match="flat"):
        sampler.sample(4, np.random.default_rng(0))


def test_one_blur_level_only():
    x = texture((48, 48), seed=9)
    stack = blur_cascade(x)
    a, b, y = PatchPairSampler([stack]).sample(20, np.random.default_rng(5), level=1)
    blurred = np.where((y == 1)[:, None, None], b, a)
    for bl in blurred:
        assert any(np.array_equal(stack[1, yy:yy + 16, xx:xx + 16], bl)
                   for yy in range(33) for xx in range(33))
    with pytest.raises(ValueError, match="level"):
        PatchPairSampler([stack]).sample(2, np.random.default_rng(5), level=6)


def test_label_1_means_a_is_sharper(image_folder):
    sampler = PatchPairSampler.from_files(list_images(image_folder))
    a, b, y = sampler.sample(200, np.random.default_rng(3))
    sharper_a = np.array([_grad_energy(pa) > _grad_energy(pb) for pa, pb in zip(a, b)])
    np.testing.assert_array_equal(sharper_a, y == 1)
    assert 0.3 < y.mean() < 0.7  # both orders occur


def test_pairs_come_from_one_place():
    # the blurred patch is the clear patch's own place in a blurred level
    x = texture((48, 48), seed=6)
    stack = blur_cascade(x)
    a, b, y = PatchPairSampler([stack]).sample(20, np.random.default_rng(4))
    clear = np.where((y == 1)[:, None, None], a, b)
    blurred = np.where((y == 1)[:, None, None], b, a)
    for c, bl in zip(clear, blurred):
        hits = [(lv, yy, xx) for yy in range(33) for xx in range(33)
                if np.array_equal(stack[0, yy:yy + 16, xx:xx + 16], c)
                for lv in range(1, 6) if np.array_equal(stack[lv, yy:yy + 16, xx:xx + 16], bl)]
        assert hits


def test_sampling_is_seeded(image_folder):
    files = list_images(image_folder)
    first = make_pairs(files, 50, seed=7)
    second = make_pairs(files, 50, seed=7)
    other = make_pairs(files, 50, seed=8)
    for x, y in zip(first, second):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(first[0], other[0])


def test_evaluate_pairs_counts_accuracy():
    # a model that always answers class 1 has the accuracy of the share of label 1
    class One(torch.nn.Module):
        def forward(self, a, b):
            return torch.tensor([[0.0, 1.0]]).repeat(a.shape[0], 1)

    a = np.zeros((10, 16, 16), np.float32)
    y = np.array([1, 1, 1, 0, 0, 0, 0, 1, 0, 0])
    loss, acc = evaluate_pairs(One(), a, a, y, batch=4)
    assert acc == pytest.approx(0.4)
    # cross-entropy of logits (0, 1): -log softmax = log(1 + e) for label 0, log(1 + e^-1) for 1
    expected = (6 * np.log1p(np.e) + 4 * np.log1p(np.exp(-1))) / 10
    assert loss == pytest.approx(expected, rel=1e-6)


def test_resume_continues_the_run(trained, image_folder, tmp_path):
    # copy the finished 6-step run, then ask for 9 steps: it resumes from step 6
    import shutil

    src, _ = trained
    out = tmp_path / "run"
    shutil.copytree(src, out)
    messages = []
    result = train(_config(image_folder, out, steps=9), progress=messages.append)
    assert any("resuming" in m and "step 6" in m for m in messages)
    log = _log(out)
    assert [r["step"] for r in log] == [3, 6, 9]
    assert [r["step"] for r in result.history] == [9]
    assert json.loads((out / "state.json").read_text())["step"] == 9


def test_same_config_gives_same_run(trained, image_folder, tmp_path):
    # a second run from scratch in another folder draws the same pairs and reaches the same
    # losses: the sampler and the initialisation are seeded
    src, _ = trained
    train(_config(image_folder, tmp_path / "again"), progress=lambda s: None)
    drop = lambda rec: {k: v for k, v in rec.items() if k != "seconds"}  # noqa: E731
    assert [drop(r) for r in _log(tmp_path / "again")] == [drop(r) for r in _log(src)]
    w1 = load_weights(src / "model.safetensors").state_dict()
    w2 = load_weights(tmp_path / "again" / "model.safetensors").state_dict()
    assert all(torch.equal(w1[k], w2[k]) for k in w1)


def test_resumed_run_equals_straight_run(trained, image_folder, tmp_path):
    # 6 steps + resume to 9 gives the weights of 9 steps in one go: the checkpoint carries
    # the weights, the momentum buffers and the sampler's generator state
    import shutil

    src, _ = trained
    resumed = tmp_path / "resumed"
    shutil.copytree(src, resumed)
    train(_config(image_folder, resumed, steps=9), progress=lambda s: None)
    train(_config(image_folder, tmp_path / "straight", steps=9), progress=lambda s: None)
    drop = lambda rec: {k: v for k, v in rec.items() if k != "seconds"}  # noqa: E731
    assert [drop(r) for r in _log(resumed)] == [drop(r) for r in _log(tmp_path / "straight")]
    from safetensors.torch import load_file

    w1 = load_file(str(resumed / "checkpoint.safetensors"))
    w2 = load_file(str(tmp_path / "straight" / "checkpoint.safetensors"))
    assert w1.keys() == w2.keys()
    assert all(torch.equal(w1[k], w2[k]) for k in w1)


def test_tiny_run_of_the_paper_architecture(image_folder, tmp_path):
    # the default architecture (a 256-unit hidden layer: 8.4 M parameters)
    cfg = replace(_config(image_folder, tmp_path), arch="paper", steps=3)
    train(cfg, progress=lambda s: None)
    model = load_weights(tmp_path / "model.safetensors")
    assert model.fc1 is not None and model.fc1.out_features == 256


def test_resume_without_state_json_and_with_a_longer_log(trained, image_folder, tmp_path):
    """Resuming reads the checkpoint alone; log lines written after it are dropped."""
    import shutil

    out = tmp_path / "run"
    shutil.copytree(trained[0], out)
    (out / "state.json").unlink()
    with (out / "log.jsonl").open("a") as fh:  # a step 9 whose checkpoint never landed
        fh.write(json.dumps({"step": 9, "val_loss": 0.0}) + "\n")
    messages = []
    train(_config(image_folder, out, steps=9), progress=messages.append)
    assert any("resuming" in m and "step 6" in m for m in messages)
    assert [r["step"] for r in _log(out)] == [3, 6, 9]


def test_resume_with_other_widths_says_so(trained, image_folder, tmp_path, monkeypatch):
    import shutil

    from focusfuse.models import MODELS, FocusNet

    out = tmp_path / "run"
    shutil.copytree(trained[0], out)
    monkeypatch.setitem(MODELS, "released", lambda: FocusNet(hidden=None, widths=(8, 16, 32)))
    with pytest.raises(ValueError, match="do not fit"):
        train(_config(image_folder, out, steps=9), progress=lambda s: None)


def test_hard_val_pairs_may_change_on_resume(trained, image_folder, tmp_path):
    import shutil

    out = tmp_path / "run"
    shutil.copytree(trained[0], out)
    train(_config(image_folder, out, steps=9, hard_val_pairs=0), progress=lambda s: None)
    assert "hard_val_accuracy" not in _log(out)[-1]


# refusals before any work ----------------------------------------------------------------

def test_unknown_arch_is_refused_when_the_config_is_made(tmp_path, image_folder):
    from focusfuse.checks import OptionError

    with pytest.raises(OptionError, match="arch must be one of 'paper', 'released'.*got 'bogus'"):
        _config(image_folder, tmp_path / "out", arch="bogus")


@pytest.mark.parametrize("kw,option", [({"lr": 0.0}, "lr"), ({"momentum": 1.5}, "momentum"),
                                       ({"threads": 0}, "threads"), ({"patience": 0}, "patience"),
                                       ({"blur_kernel": "box"}, "blur_kernel")])
def test_bad_settings_name_their_option(tmp_path, image_folder, kw, option):
    from focusfuse.checks import OptionError

    with pytest.raises(OptionError, match=f"^{option} ") as exc:
        _config(image_folder, tmp_path / "out", **kw)
    assert exc.value.option == option


def test_refusals_leave_no_run_folder(tmp_path, image_folder):
    # before: --out was made before the checks
    with pytest.raises(ValueError, match="does not exist"):
        train(_config(tmp_path / "no-data", tmp_path / "out"), progress=lambda s: None)
    with pytest.raises(ValueError, match="holdout_suffix"):
        train(_config(image_folder, tmp_path / "out", holdout_suffix=".tif"),
              progress=lambda s: None)
    assert not (tmp_path / "out").exists()


def test_out_that_is_a_file_is_refused(tmp_path, image_folder):
    (tmp_path / "out").write_text("a file")
    with pytest.raises(ValueError, match="out .* is a file; give a folder"):
        train(_config(image_folder, tmp_path / "out"), progress=lambda s: None)


def test_resume_with_other_settings_is_refused_before_the_data_is_built(
        trained, image_folder, monkeypatch):
    # before: the blur cascades and validation pairs were built first (minutes on BSDS500)
    import focusfuse.train.loop as loop

    def built(*args, **kwargs):
        raise AssertionError("the training data was built before the check")

    monkeypatch.setattr(loop.PatchPairSampler, "from_files", built)
    out, _ = trained
    with pytest.raises(ValueError, match=r"other settings \(lr\)"):
        train(_config(image_folder, out, lr=0.5), progress=lambda s: None)


def test_a_damaged_checkpoint_is_one_message(trained, image_folder, tmp_path):
    import shutil

    out = tmp_path / "run"
    shutil.copytree(trained[0], out)
    (out / "checkpoint.safetensors").write_bytes(b"\x00" * 100)
    with pytest.raises(ValueError, match="checkpoint.safetensors is damaged"):
        train(_config(image_folder, out, steps=9), progress=lambda s: None)


def test_temporaries_of_a_killed_run_are_removed_on_resume(trained, image_folder, tmp_path):
    import shutil

    out = tmp_path / "run"
    shutil.copytree(trained[0], out)
    for name in ("checkpoint.tmp", "state.tmp", "model.safetensors.tmp"):
        (out / name).write_bytes(b"partial")  # what a SIGKILL while saving leaves
    train(_config(image_folder, out, steps=9), progress=lambda s: None)
    assert not list(out.glob("*.tmp"))


def test_command_line_refuses_a_bogus_arch_at_once(tmp_path, image_folder, capsys):
    from focusfuse.cli import main

    code = main(["train", str(image_folder), "--out", str(tmp_path / "out"), "--arch", "bogus"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert err.startswith("focusfuse train: error: --arch must be one of 'paper'")
    assert not (tmp_path / "out").exists()
