"""Tiled scoring gives exactly the untiled score map (Liu et al.'s dense network)."""

import numpy as np
import pytest
import torch

from focusfuse.models import create_model
from focusfuse.score import _tiles, score_map


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    net = create_model("released")
    # random biases too, so that zero padding and real context differ visibly
    for p in net.parameters():
        torch.nn.init.normal_(p, std=0.05)
    return net.eval()


def test_tiles_cover_every_score_once():
    for n_scores, n_pixels in ((9, 32), (10, 33), (57, 128)):
        got = [i for i0, i1, _, _ in _tiles(n_scores, 4, n_pixels) for i in range(i0, i1)]
        assert got == list(range(n_scores))


def test_tile_crops_start_on_even_pixels():
    for _, _, p0, p1 in _tiles(57, 5, 128):
        assert p0 % 2 == 0 and 0 <= p0 < p1 <= 128


@pytest.mark.parametrize("shape", [(48, 48), (51, 41), (37, 60)])
@pytest.mark.parametrize("tile", [3, 7])
def test_tiled_equals_untiled(model, shape, tile):
    rng = np.random.default_rng(1)
    a = rng.random(shape).astype(np.float32)
    b = rng.random(shape).astype(np.float32)
    whole = score_map(model, a, b, precision="fp32", device="cpu", tile=0)
    tiled = score_map(model, a, b, precision="fp32", device="cpu", tile=tile)
    assert tiled.shape == whole.shape == ((shape[0] + 1) // 2 - 7, (shape[1] + 1) // 2 - 7)
    np.testing.assert_allclose(tiled, whole, rtol=0, atol=1e-5)


def test_too_small_margin_would_show(model):
    """The test above can fail: cropping without the 4-pixel margin changes the scores."""
    rng = np.random.default_rng(2)
    a = rng.random((64, 64)).astype(np.float32)
    b = rng.random((64, 64)).astype(np.float32)
    whole = score_map(model, a, b, precision="fp32", device="cpu", tile=0)
    crop = score_map(model, a[8:40, 8:40], b[8:40, 8:40], precision="fp32", device="cpu", tile=0)
    assert np.abs(crop - whole[4:4 + crop.shape[0], 4:4 + crop.shape[1]]).max() > 1e-3


def test_bad_tile_is_refused(model):
    a = np.zeros((32, 32), np.float32)
    with pytest.raises(ValueError, match="tile"):
        score_map(model, a, a, tile=-1)
