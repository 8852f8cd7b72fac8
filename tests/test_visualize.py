"""Tests of focusfuse.visualize (feature maps, grids, source maps) and of the feature maps
that ``focusfuse fuse --save-steps`` writes. Models are freshly initialised (seeded) or the
shipped one; no ../shared data is needed."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import texture
from focusfuse.cli import main
from focusfuse.io import read_image, write_image
from focusfuse.models import create_model
from focusfuse.visualize import (
    LAYERS,
    feature_grid,
    feature_maps,
    grid,
    normalise_channels,
    select_channels,
    source_map,
)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return create_model("released")


# smoke and shapes ---------------------------------------------------------------------

def test_feature_maps_shapes(model):
    maps = feature_maps(model, texture((20, 21)))
    assert list(maps) == list(LAYERS)
    assert maps["conv1"].shape == (64, 20, 21)
    assert maps["conv2"].shape == (128, 20, 21)
    assert maps["conv3"].shape == (256, 10, 11)  # after the 2×2 pool, odd sizes rounded up
    assert all(m.dtype == np.float32 and m.min() >= 0 for m in maps.values())  # after ReLU


def test_feature_maps_subset_of_layers_and_channels(model):
    maps = feature_maps(model, texture((16, 16)), layers=["conv1"], channels={"conv1": [3, 5]})
    assert list(maps) == ["conv1"] and maps["conv1"].shape == (2, 16, 16)


def test_feature_grid_shape(model):
    a, b = texture((24, 30), seed=1), texture((24, 30), seed=2)
    pictures = feature_grid([a, b], model, k=3)
    pic, chosen = pictures["conv1"]
    assert pic.shape == (2 * 24 + 2, 3 * 30 + 2 * 2) and len(chosen) == 3
    assert pictures["conv3"][0].shape == (2 * 12 + 2, 3 * 15 + 2 * 2)
    assert 0 <= pic.min() and pic.max() <= 1
    assert feature_grid([a, b], model, k=2, size=10)["conv3"][0].shape == (2 * 8 + 2, 2 * 10 + 2)


def test_grid_layout():
    tiles = [[np.zeros((3, 4)), np.zeros((3, 4))], [np.zeros((3, 4, 3))]]
    out = grid(tiles, gap=1)
    assert out.shape == (7, 9, 3)
    assert out[3, 0, 0] == 1.0 and out[0, 4, 0] == 1.0  # the gaps
    assert np.all(out[4:, 5:] == 1.0)  # a short row is padded with the fill


# errors -------------------------------------------------------------------------------

def test_feature_maps_needs_gray(model):
    with pytest.raises(ValueError, match="gray"):
        feature_maps(model, np.zeros((16, 16, 3), np.float32))


def test_feature_maps_unknown_layer(model):
    with pytest.raises(ValueError, match="conv4"):
        feature_maps(model, texture((16, 16)), layers=["conv4"])


def test_grid_rejects_mixed_sizes():
    with pytest.raises(ValueError, match="3×4"):
        grid([[np.zeros((3, 4)), np.zeros((3, 5))]])


# invariants ---------------------------------------------------------------------------

def test_conv3_is_what_the_classifier_reads(model):
    im = texture((32, 34), seed=3)
    with torch.inference_mode():
        ref = model.features(torch.from_numpy(im)[None, None]).numpy()[0]
    np.testing.assert_allclose(feature_maps(model, im)["conv3"], ref, atol=1e-5)


def test_select_channels_prefers_varying_channels():
    rng = np.random.default_rng(0)
    maps = np.zeros((5, 8, 8), np.float32)
    maps[1] = rng.random((8, 8))
    maps[3] = 3 * rng.random((8, 8))
    assert select_channels([maps, maps], k=2) == [1, 3]


def test_normalise_channels_shares_the_scale_between_sources():
    a = np.stack([np.full((2, 2), 1.0), np.full((2, 2), 5.0)])
    b = np.stack([np.full((2, 2), 3.0), np.full((2, 2), 5.0)])
    na, nb = normalise_channels([a, b])
    assert na[0].max() == 0.0 and nb[0].min() == 1.0  # channel 0: A weaker than B
    assert not na[1].any() and not nb[1].any()  # a constant channel becomes 0


def test_source_map_follows_the_fused_image():
    a, b = texture((32, 32), seed=1), texture((32, 32), seed=2)
    assert np.allclose(source_map(a, b, a), 1.0)
    assert np.allclose(source_map(a, b, b), 0.0)
    assert np.allclose(source_map(a, a, a), 0.5)  # A and B agree: no preference
    half = np.where(np.arange(32)[None, :] < 16, a, b)
    m = source_map(a, b, half)
    assert m[:, :10].min() > 0.99 and m[:, 22:].max() < 0.01


# the CLI ------------------------------------------------------------------------------

def test_save_steps_writes_feature_maps(tmp_path, capsys):
    a = write_image(tmp_path / "a.png", texture((48, 48), seed=1))
    b = write_image(tmp_path / "b.png", texture((48, 48), seed=2))
    steps = tmp_path / "steps"
    assert main(["fuse", str(a), str(b), "-o", str(tmp_path / "f.png"), "--save-steps",
                 str(steps), "--precision", "fp32", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "wrote 5 intermediate maps" in out and "wrote 3 feature-map pictures" in out
    for layer, side in (("conv1", 48), ("conv2", 48), ("conv3", 24)):
        pic = read_image(steps / f"features-{layer}.png")
        assert pic.shape == (2 * side + 2, 4 * side + 3 * 2)  # a row per source, 4 channels


def test_save_steps_of_a_wavelet_method_has_no_feature_maps(tmp_path, capsys):
    a = write_image(tmp_path / "a.png", texture((48, 48), seed=1))
    b = write_image(tmp_path / "b.png", texture((48, 48), seed=2))
    steps = tmp_path / "steps"
    assert main(["fuse", str(a), str(b), "-o", str(tmp_path / "f.png"), "--method", "dwt",
                 "--save-steps", str(steps)]) == 0
    assert not list(steps.glob("features-*"))
