"""Tests of focusfuse.score: the dense score map against patch-wise scoring, and the focus map."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from conftest import texture
from focusfuse.models import create_model
from focusfuse.decision import focus_map
from focusfuse.score import score_map


def _random_model(arch: str, seed: int = 0):
    """A randomly initialised model whose scores spread over (0, 1).

    The Xavier initialisation leaves every score within 0.01 of 0.5 (logit differences of
    std ~0.01 on textures); the output layer is scaled up 200 times and given a random bias
    so that a wrong window, order or class shows. The convolution biases stay zero (see
    the dense-equals-patch-wise test).
    """
    torch.manual_seed(seed)
    model = create_model(arch).eval()
    with torch.no_grad():
        model.fc2.weight.mul_(200.0)
        model.fc2.bias.normal_(0.0, 0.5)
    return model


def _patchwise(model, a: np.ndarray, b: np.ndarray, positions) -> np.ndarray:
    """softmax(model(patch_a, patch_b))[:, 1] on 16×16 patches cut at ``positions``: the
    forward pass with the Linear layers, independent of ``dense_head``."""
    pa = torch.from_numpy(np.stack([a[y:y + 16, x:x + 16] for y, x in positions]).astype(np.float32))
    pb = torch.from_numpy(np.stack([b[y:y + 16, x:x + 16] for y, x in positions]).astype(np.float32))
    with torch.no_grad():
        return torch.softmax(model(pa[:, None], pb[:, None]), dim=1)[:, 1].numpy()


def _brute_focus(scores: np.ndarray, shape) -> np.ndarray:
    """The focus map by explicit loops: each pixel, the mean of the scores of the 16×16
    stride-2 windows that cover it."""
    H, W = shape
    total = np.zeros((H, W))
    count = np.zeros((H, W))
    for i in range(scores.shape[0]):
        for j in range(scores.shape[1]):
            y0, x0 = 2 * i, 2 * j
            total[y0:y0 + 16, x0:x0 + 16] += scores[i, j]
            count[y0:y0 + 16, x0:x0 + 16] += 1
    return total / count


# smoke ---------------------------------------------------------------------------------

def test_score_map_runs():
    a, b = texture((24, 24), seed=1), texture((24, 24), seed=2)
    s = score_map(_random_model("released"), a, b, precision="fp32", device="cpu")
    assert s.dtype == np.float32
    assert np.all((s >= 0) & (s <= 1))


# shapes --------------------------------------------------------------------------------

@pytest.mark.parametrize("h,w", [(16, 16), (40, 37), (31, 18)])
def test_score_map_shape(h, w):
    a, b = texture((h, w), seed=1), texture((h, w), seed=2)
    s = score_map(_random_model("released"), a, b, precision="fp32", device="cpu")
    assert s.shape == (math.ceil(h / 2) - 7, math.ceil(w / 2) - 7)


@pytest.mark.parametrize("h,w", [(16, 16), (40, 37), (31, 18)])
def test_focus_map_shape(h, w):
    scores = np.random.default_rng(0).random((math.ceil(h / 2) - 7, math.ceil(w / 2) - 7))
    f = focus_map(scores, (h, w))
    assert f.shape == (h, w) and f.dtype == np.float64


# errors --------------------------------------------------------------------------------

def test_score_map_rejects_bad_shapes():
    model = _random_model("released")
    with pytest.raises(ValueError, match="one shape"):
        score_map(model, np.zeros((20, 20)), np.zeros((20, 21)), device="cpu")
    with pytest.raises(ValueError, match="gray"):
        score_map(model, np.zeros((20, 20, 3)), np.zeros((20, 20, 3)), device="cpu")
    with pytest.raises(ValueError, match="at least 16"):
        score_map(model, np.zeros((15, 40)), np.zeros((15, 40)), device="cpu")


def test_score_map_rejects_bad_precision_and_device():
    model = _random_model("released")
    a = np.zeros((16, 16))
    with pytest.raises(ValueError, match="precision"):
        score_map(model, a, a, precision="fp16", device="cpu")
    with pytest.raises(ValueError, match="device"):
        score_map(model, a, a, device="tpu")


def test_focus_map_rejects_foreign_shape():
    with pytest.raises(ValueError, match="does not belong"):
        focus_map(np.zeros((5, 5)), (40, 40))


# invariants: dense equals patch-wise ------------------------------------------------------

@pytest.mark.parametrize("arch", ["paper", "released"])
def test_dense_equals_patchwise_on_isolated_patches(arch):
    # The dense map applies the fully connected layers as convolutions over the feature
    # map of the whole image; patch-wise scoring runs the Linear layers on 16×16 crops whose
    # borders the 3×3 convolutions pad with zeros. The two agree exactly when every
    # activation just outside the patch is zero in the whole image too: the image is zero
    # around the patch, the convolution biases are zero (as initialised), and the patch's
    # content keeps 2 pixels from its edge (conv1 + conv2 reach 2 pixels, and the
    # pooled map's outside neighbour is built from those). Patches lie at even
    # coordinates (window (y/2, x/2)) with gaps of at least 24 pixels.
    model = _random_model(arch, seed=3)
    rng = np.random.default_rng(4)
    H, W = 120, 104
    positions = [(y, x) for y in (8, 48, 88) for x in (6, 46, 86) if y + 16 <= H and x + 16 <= W]
    a = np.zeros((H, W), np.float32)
    b = np.zeros((H, W), np.float32)
    for y, x in positions:
        ka, kb = rng.uniform(0.1, 1.0, size=2)  # contrasts: some windows favour a, some b
        a[y + 2:y + 14, x + 2:x + 14] = rng.random((12, 12)) * ka
        b[y + 2:y + 14, x + 2:x + 14] = rng.random((12, 12)) * kb
    dense = score_map(model, a, b, precision="fp32", device="cpu")
    expected = _patchwise(model, a, b, positions)
    got = np.array([dense[y // 2, x // 2] for y, x in positions])
    assert expected.std() > 0.05  # the scores spread: a wrong window or class would show
    np.testing.assert_allclose(got, expected, atol=1e-5)
    # one position off gives other scores
    shifted = np.array([dense[y // 2 + 1, x // 2] for y, x in positions])
    assert np.abs(shifted - expected).max() > 1e-3


@pytest.mark.parametrize("arch", ["paper", "released"])
def test_dense_equals_head_on_feature_windows(arch):
    # On natural content with context (any biases): the score of window (i, j) is the
    # Linear head applied to the 8×8 window (i, j) of each branch's whole-image features.
    model = _random_model(arch, seed=5)
    with torch.no_grad():
        for conv in (model.conv1, model.conv2, model.conv3):
            conv.bias.normal_(0.0, 0.05)
    a, b = texture((44, 39), seed=6), texture((44, 39), seed=7) * 0.5
    dense = score_map(model, a, b, precision="fp32", device="cpu")
    with torch.no_grad():
        fa = model.features(torch.from_numpy(a)[None, None])
        fb = model.features(torch.from_numpy(b)[None, None])
        for i in range(dense.shape[0]):
            for j in range(dense.shape[1]):
                win = torch.cat([fa[..., i:i + 8, j:j + 8], fb[..., i:i + 8, j:j + 8]], dim=1)
                p = torch.softmax(model.head(win), dim=1)[0, 1].item()
                assert dense[i, j] == pytest.approx(p, abs=1e-5)


@pytest.mark.shared
def test_dense_close_to_patchwise_on_natural_content(shared, mat_model):
    # With real context, patch-wise scoring zero-pads each crop's border, the dense pass sees
    # the true neighbours: the scores differ a little, mostly near 0.5 where the network is
    # undecided. Measured on this crop of Lytro pair 01 with the authors' weights: median
    # |difference| 3.5e-4, the > 0.5 decision the same at 99.5 % of positions.
    from focusfuse.color import to_gray
    from focusfuse.io import read_image

    pairs = shared / "data" / "lytro" / "pairs"
    a = to_gray(read_image(pairs / "lytro-01-A.jpg"))[100:228, 100:228].astype(np.float64)
    b = to_gray(read_image(pairs / "lytro-01-B.jpg"))[100:228, 100:228].astype(np.float64)
    dense = score_map(mat_model, a, b, precision="fp32", device="cpu")
    positions = [(y, x) for y in range(16, 96, 6) for x in range(16, 96, 6)]
    expected = _patchwise(mat_model, a, b, positions)
    got = np.array([dense[y // 2, x // 2] for y, x in positions])
    diff = np.abs(got - expected)
    assert np.median(diff) < 0.01
    assert np.mean((got > 0.5) == (expected > 0.5)) > 0.97


# invariants and reference values: the focus map -------------------------------------------

@pytest.mark.parametrize("value", [0.0, 0.3, 1.0])
def test_focus_map_of_constant_scores_is_constant(value):
    scores = np.full((13, 12), value)
    np.testing.assert_allclose(focus_map(scores, (40, 37)), value, atol=1e-12)


@pytest.mark.parametrize("h,w", [(40, 38), (41, 37), (16, 16), (17, 30)])
def test_focus_map_equals_brute_force(h, w):
    scores = np.random.default_rng(h * w).random((math.ceil(h / 2) - 7, math.ceil(w / 2) - 7))
    np.testing.assert_allclose(focus_map(scores, (h, w)), _brute_focus(scores, (h, w)), atol=1e-12)


def test_focus_map_stays_in_score_range():
    scores = np.random.default_rng(1).random((20, 20)) * 0.5 + 0.25
    f = focus_map(scores, (54, 54))
    assert f.min() >= scores.min() - 1e-12 and f.max() <= scores.max() + 1e-12


def test_compile_failure_is_a_clear_error(monkeypatch):
    """Where torch.compile cannot work, the error says so and how to go on."""
    from focusfuse.device import CompileError
    from focusfuse.models import create_model

    def broken(*args, **kwargs):
        raise OSError("no C compiler")

    monkeypatch.setattr(torch, "compile", broken)
    a = np.random.default_rng(0).random((40, 40)).astype(np.float32)
    with pytest.raises(CompileError, match="without --compile"):
        score_map(create_model("released"), a, a, compile=True)


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # from inside torch.compile
def test_compiled_branch_gives_the_same_scores():
    """torch.compile changes how the convolutions run, not what they compute (fp32)."""
    import shutil

    if shutil.which("cc") is None and shutil.which("gcc") is None:
        pytest.skip("torch.compile needs a C compiler on the CPU")
    from focusfuse.models import create_model

    torch.manual_seed(0)
    model = create_model("fast").eval()
    rng = np.random.default_rng(1)
    a, b = rng.random((48, 52)).astype(np.float32), rng.random((48, 52)).astype(np.float32)
    eager = score_map(model, a, b, precision="fp32", device="cpu")
    compiled = score_map(model, a, b, precision="fp32", device="cpu", compile=True)
    np.testing.assert_allclose(compiled, eager, atol=1e-5)


# scores against one fixed reference (a stack's frames against its mean) --------------------

@pytest.fixture(scope="module")
def paper_model():
    return _random_model("paper", seed=8)  # one model: its spectra are made once


@pytest.mark.parametrize("tile,head", [(32, "fft"), (0, "direct")])
def test_scores_against_a_kept_reference_are_the_pair_scores(paper_model, tile, head):
    # in tiles of 32 scores the first (32 × 32) takes the spectral head, the others the direct
    from focusfuse.score import ReferenceScorer

    model = paper_model
    reference = texture((100, 110), seed=9) * 0.6
    scorer = ReferenceScorer(model, reference, precision="fp32", device="cpu", tile=tile, head=head)
    assert scorer.fits and len(scorer.parts) == len(scorer.plan.tiles)
    for seed in (10, 11):  # the kept part serves every image
        image = texture((100, 110), seed=seed)
        pair = score_map(model, image, reference, precision="fp32", device="cpu", tile=tile, head=head)
        assert pair.std() > 0.05  # scores that spread, so that a wrong share shows
        np.testing.assert_allclose(scorer(image), pair, atol=2e-5)


def test_a_reference_over_its_budget_is_not_kept(paper_model):
    from focusfuse.score import ReferenceScorer

    model = paper_model
    reference = texture((64, 64), seed=1)
    scores = (32 - 7) ** 2
    assert ReferenceScorer(model, reference, precision="fp32", budget=scores * 256 * 4).fits
    small = ReferenceScorer(model, reference, precision="fp32", budget=scores * 256 * 4 - 1)
    assert not small.fits and not small.parts
    with pytest.raises(ValueError, match="budget"):
        small(reference)


def test_a_reference_scorer_refuses_what_it_cannot_score(paper_model):
    from focusfuse.score import ReferenceScorer

    with pytest.raises(ValueError, match="paper layout"):
        ReferenceScorer(_random_model("released"), texture((32, 32)))
    with pytest.raises(ValueError, match="gray reference"):
        ReferenceScorer(paper_model, np.zeros((32, 32, 3), np.float32))
    scorer = ReferenceScorer(paper_model, texture((32, 32)), precision="fp32")
    with pytest.raises(ValueError, match="reference's shape"):
        scorer(texture((32, 40)))
