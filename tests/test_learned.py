"""learned-pyramid: the trained band weighting, for pairs and stacks, and its training.

Scenes made here from a scikit-image photograph (not in ../shared) by focusfuse's own
generator: depth edges on image edges, disk blur composited back to front, so that the
truth is known. The quality tests use the shipped weights.
"""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

import focusfuse as ff
from focusfuse.bench.truth import make_truth_pair, truth_scores
from focusfuse.cli import main
from focusfuse.data.stacks import make_stack


def _cli(capsys, argv) -> tuple[int, str]:
    """Run the command line in this process: (exit code, stderr)."""
    code = main([str(a) for a in argv])
    return code, capsys.readouterr().err


@pytest.fixture(scope="module")
def sharp():
    from skimage import data

    return data.astronaut()[16:272, 120:376].astype(np.float32) / 255


def _psnr(image, truth):
    return truth_scores(image, truth)["PSNR"]


@pytest.mark.parametrize("variant", ["clean", "noisy"])
def test_a_pair_is_closer_to_the_truth_than_laplacian_and_cnn(sharp, variant):
    pair = make_truth_pair(sharp, seed=3, variant=variant)
    learned = _psnr(ff.fuse([pair.a, pair.b], method="learned-pyramid").fused, pair.truth)
    lap = _psnr(ff.fuse([pair.a, pair.b], method="laplacian").fused, pair.truth)
    cnn = _psnr(ff.fuse([pair.a, pair.b], method="cnn", weights="fast").fused, pair.truth)
    assert learned > lap + 0.2 and learned > cnn + 0.2, (learned, lap, cnn)


def test_a_stack_is_closer_to_the_truth_than_laplacian(sharp):
    stack = make_stack(sharp, frames=6, seed=5, variant="clean")
    learned = _psnr(ff.fuse(stack.frames, method="learned-pyramid").fused, stack.truth)
    lap = _psnr(ff.fuse(stack.frames, method="laplacian").fused, stack.truth)
    assert learned > lap + 0.2, (learned, lap)


def test_order_does_not_change_a_bit(sharp):
    frames = make_stack(sharp, frames=5, seed=1).frames
    fused = ff.fuse(frames, method="learned-pyramid").fused
    for order in ([4, 3, 2, 1, 0], [2, 0, 4, 1, 3]):
        assert np.array_equal(ff.fuse([frames[i] for i in order], method="learned-pyramid").fused,
                              fused)
    pair = frames[:2]
    assert np.array_equal(ff.fuse(pair, method="learned-pyramid").fused,
                          ff.fuse(pair[::-1], method="learned-pyramid").fused)


def test_identical_frames_give_the_frame_back(sharp):
    fused = ff.fuse([sharp, sharp, sharp], method="learned-pyramid").fused
    assert np.abs(fused - sharp).max() < 1e-5


def test_gray_small_and_odd_sizes(sharp):
    gray = sharp[..., 1]
    with pytest.raises(ValueError, match="at least 2 pixels on each side"):
        ff.fuse([gray[:1, :5], gray[1:2, :5]], method="learned-pyramid")
    for shape in ((256, 256), (37, 61), (9, 14), (2, 9)):
        a = gray[:shape[0], :shape[1]]
        b = cv2.GaussianBlur(a, (0, 0), 1.5)
        fused = ff.fuse([a, b], method="learned-pyramid").fused
        assert fused.shape == a.shape and fused.dtype == np.float32
        assert np.isfinite(fused).all() and 0 <= fused.min() and fused.max() <= 1


def test_the_colour_channels_share_the_gray_weights(sharp):
    """The gray of the colour result is the result for the gray frames: every channel is
    weighed with the weights the gray image gets (the transform and the gray are linear)."""
    from focusfuse.color import to_gray

    stack = make_stack(sharp * 0.8 + 0.1, frames=3, seed=2)  # no clipping at 0 or 1
    colour = ff.fuse(stack.frames, method="learned-pyramid").fused
    gray = ff.fuse([to_gray(f) for f in stack.frames], method="learned-pyramid").fused
    assert colour.shape == sharp.shape
    assert np.abs(to_gray(colour) - gray).max() < 1e-4


def test_weights_that_are_not_a_bandnet_are_refused(tmp_path):
    from focusfuse.checks import OptionError
    from focusfuse.models import default_weights_path

    with pytest.raises(OptionError, match="does not exist"):
        ff.fuse([np.zeros((32, 32)), np.ones((32, 32))], method="learned-pyramid",
                weights=str(tmp_path / "none.safetensors"))
    with pytest.raises(ValueError, match="not a bandnet"):
        ff.fuse([np.zeros((32, 32)), np.ones((32, 32))], method="learned-pyramid",
                weights=str(default_weights_path("fast")))


def test_stack_command_with_16_bit_frames(sharp, tmp_path, capsys):
    import tifffile

    stack = make_stack(sharp, frames=4, seed=4)
    paths = []
    for k, f in enumerate(stack.frames):
        p = tmp_path / f"f{k}.tif"
        tifffile.imwrite(p, np.round(f * 65535).astype(np.uint16))
        paths.append(str(p))
    out = tmp_path / "out.tif"
    code, err = _cli(capsys, ["stack", *paths, "-o", out, "--method", "learned-pyramid",
                              "--no-align", "--quiet"])
    assert code == 0, err
    image = tifffile.imread(out)
    assert image.dtype == np.uint16 and image.shape == sharp.shape
    direct = ff.fuse([np.round(f * 65535) / 65535 for f in stack.frames],
                     method="learned-pyramid").fused
    assert np.abs(image / 65535 - direct).max() < 1.5 / 65535
    code, err = _cli(capsys, ["stack", *paths, "-o", tmp_path / "b.tif", "--method",
                              "learned-pyramid", "--weights", tmp_path / "nothing.safetensors"])
    assert code == 2 and "does not exist" in err
    assert "Traceback" not in err and not (tmp_path / "b.tif").exists()


# training ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def jpeg_folder(tmp_path_factory, sharp):
    folder = tmp_path_factory.mktemp("natural")
    for k in range(5):
        crop = np.rot90(sharp, k)[:96, :88]
        cv2.imwrite(str(folder / f"im{k}.jpg"),
                    cv2.cvtColor(np.round(crop * 255).astype(np.uint8), cv2.COLOR_RGB2BGR))
    cv2.imwrite(str(folder / "test.png"), np.zeros((90, 90), np.uint8))  # held out: never read
    return folder


def _train(capsys, folder, out, *extra) -> tuple[int, str]:
    import torch

    threads = torch.get_num_threads()
    try:
        return _cli(capsys, ["train", folder, "--arch", "bandnet", "--out", out, "--scenes", "2",
                             "--frames", "3", "--crop", "64", "--batch-size", "2",
                             "--val-scenes", "1", "--eval-every", "2", "--threads", "1", *extra])
    finally:
        torch.set_num_threads(threads)


def test_train_bandnet_writes_a_model_and_resumes(jpeg_folder, tmp_path, capsys):
    out = tmp_path / "run"
    code, err = _train(capsys, jpeg_folder, out, "--steps", "4")
    assert code == 0, err
    rows = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [2, 4]
    assert all(np.isfinite(r["val_psnr"]) and r["val_psnr"] > 10 for r in rows)
    code, err = _train(capsys, jpeg_folder, out, "--steps", "6")
    assert code == 0 and "resuming at step 4" in err
    rows = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [2, 4, 6]
    pair = make_truth_pair(np.asarray(cv2.imread(str(jpeg_folder / "im0.jpg"))[..., ::-1],
                                      np.float32) / 255, seed=1)
    fused = ff.fuse([pair.a, pair.b], method="learned-pyramid",
                    weights=str(out / "model.safetensors")).fused
    assert np.isfinite(fused).all() and fused.shape == pair.a.shape
    code, err = _train(capsys, jpeg_folder, out, "--steps", "8", "--crop", "72")
    assert code == 2 and "other settings (crop)" in err


def test_train_bandnet_refuses_classifier_flags(jpeg_folder, tmp_path, capsys):
    code, err = _train(capsys, jpeg_folder, tmp_path / "r", "--momentum", "0.5")
    assert code == 2 and "--momentum only apply to the focus classifiers" in err
    code, err = _cli(capsys, ["train", jpeg_folder, "--out", tmp_path / "c", "--scenes", "3"])
    assert code == 2 and "--scenes only apply to --arch bandnet" in err


def test_a_stopped_run_resumes_as_the_uninterrupted_one(jpeg_folder, tmp_path, monkeypatch):
    """Stopped during its third evaluation and started again, a run ends bit-identical to
    one that was never stopped: weights, Adam's moments, the data drawn, the log."""
    import torch
    from safetensors.torch import load_file

    from focusfuse.train import bands

    def config(out):
        return bands.BandTrainConfig(data=str(jpeg_folder), out=str(out), steps=6, eval_every=2,
                                     scenes=2, frames=3, crop=64, batch_size=2, threads=1,
                                     val_scenes=1)

    threads = torch.get_num_threads()
    try:
        bands.train_bands(config(tmp_path / "whole"))
        validate, calls = bands._validate, []

        def stop_at_the_third(model, scenes):
            calls.append(1)
            if len(calls) == 3:
                raise KeyboardInterrupt
            return validate(model, scenes)

        monkeypatch.setattr(bands, "_validate", stop_at_the_third)
        with pytest.raises(KeyboardInterrupt):
            bands.train_bands(config(tmp_path / "cut"))
        monkeypatch.setattr(bands, "_validate", validate)
        bands.train_bands(config(tmp_path / "cut"))
    finally:
        torch.set_num_threads(threads)
    a = load_file(tmp_path / "cut" / "checkpoint.safetensors")
    b = load_file(tmp_path / "whole" / "checkpoint.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    logs = [[{k: v for k, v in json.loads(line).items() if k != "seconds"}
             for line in (tmp_path / d / "log.jsonl").read_text().splitlines()]
            for d in ("cut", "whole")]
    assert logs[0] == logs[1] and [r["step"] for r in logs[0]] == [2, 4, 6]


def test_train_bandnet_bad_settings_name_the_problem(jpeg_folder, tmp_path, capsys):
    code, err = _train(capsys, jpeg_folder, tmp_path / "big", "--steps", "2", "--crop", "100")
    assert code == 2 and "smaller than the 100-pixel crops" in err
    code, err = _train(capsys, jpeg_folder, tmp_path / "one", "--steps", "2", "--scenes", "1")
    assert code == 2 and "scenes must be an integer >= 2" in err
    empty = tmp_path / "empty"
    empty.mkdir()
    code, err = _train(capsys, empty, tmp_path / "r", "--steps", "2")
    assert code == 2 and "Traceback" not in err
    # a failed start leaves no run behind: the same folder then takes other data
    code, err = _train(capsys, jpeg_folder, tmp_path / "r", "--steps", "2")
    assert code == 0, err
    (tmp_path / "r" / "checkpoint.safetensors").write_bytes(b"not a checkpoint")
    code, err = _train(capsys, jpeg_folder, tmp_path / "r", "--steps", "4")
    assert code == 2 and "is not a whole checkpoint" in err and "Traceback" not in err


def test_training_never_reads_the_held_out_suffix(jpeg_folder):
    from focusfuse.train.bands import BandTrainConfig, _split

    train, val = _split(BandTrainConfig(data=str(jpeg_folder), out="unused"))
    names = {p.name for p in train + val}
    assert "test.png" not in names and len(names) == 5 and not set(train) & set(val)


@pytest.mark.parametrize("height", [1, 5, 37, 257, 300])
def test_logits_in_strips_are_the_networks(height):
    """BandNet.logits (strips, the one-hot folded into a bias) gives forward's numbers."""
    import torch

    from focusfuse.models.bandnet import BandNet

    torch.manual_seed(height)
    model = BandNet().eval()
    own, mean, peak = torch.randn(3, 2, height, 23), torch.randn(1, 2, height, 23), \
        torch.randn(1, 2, height, 23)
    with torch.no_grad():
        whole = model(own, mean, peak, 4)
    features = torch.cat([own, mean.expand(3, -1, -1, -1), peak.expand(3, -1, -1, -1)], 1)
    for rows in (256, 16, 3):
        assert torch.allclose(model.logits(features, 4, rows=rows), whole, atol=1e-5)


def test_a_depth_map_is_refused_before_any_work_without_cnn(sharp, tmp_path, capsys):
    from focusfuse.io import write_image

    paths = []
    for k, f in enumerate(make_stack(sharp[:64, :64], frames=3, seed=0).frames):
        paths.append(tmp_path / f"f{k}.png")
        write_image(paths[-1], f)
    for method in ("learned-pyramid", "laplacian"):
        code, err = _cli(capsys, ["stack", *paths, "-o", tmp_path / "out.png", "--method", method,
                                  "--depth-map", tmp_path / "depth.png", "--quiet"])
        assert code == 2 and f"--depth-map needs method cnn: {method}" in err
        assert not (tmp_path / "out.png").exists() and not (tmp_path / "depth.png").exists()
