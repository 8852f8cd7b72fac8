"""The spectral (overlap-save DFT) head gives the direct convolution's scores."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from focusfuse.models import create_model
from focusfuse.models.spectral import SpectralKernel, spectral_conv2d
from focusfuse.score import score_map


@pytest.mark.parametrize("shape", [(8, 8), (9, 30), (40, 33)])
@pytest.mark.parametrize("tile", [16, 24, 39])
def test_spectral_conv_equals_conv2d(shape, tile):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 5, *shape, generator=g)
    w = torch.randn(3, 5, 8, 8, generator=g)
    b = torch.randn(3, generator=g)
    got = spectral_conv2d(x, SpectralKernel(w, tile), b)
    want = F.conv2d(x, w, b)
    assert got.shape == want.shape
    torch.testing.assert_close(got, want, rtol=0, atol=1e-4)


@pytest.mark.parametrize("per_gemm", [3, 7])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_blocks_of_tiles_reuse_the_buffers(monkeypatch, per_gemm, dtype):
    """Few tiles per product: many blocks, the last one partial, through the same two
    buffers; the result is the one-block result."""
    from focusfuse.models import spectral

    g = torch.Generator().manual_seed(2)
    x = torch.randn(2, 6, 45, 30, generator=g).to(dtype)  # 5 × 3 tiles of 9 × 9 outputs
    kernel = SpectralKernel(torch.randn(4, 6, 8, 8, generator=g), 16)
    whole = spectral_conv2d(x, kernel)
    monkeypatch.setattr(spectral, "TILES_PER_GEMM", per_gemm)  # rows of tiles: 1 × 5, 2 + 2 + 1
    blocks = spectral_conv2d(x, kernel)
    torch.testing.assert_close(blocks, whole, rtol=0, atol=1e-5)


@pytest.mark.parametrize("tile", [16, 25, 39])
def test_spectral_conv_bf16_is_close(tile):
    """In bfloat16 the products round to 8 bits: close to the float32 result, not equal."""
    g = torch.Generator().manual_seed(1)
    x = torch.rand(1, 64, 50, 47, generator=g)
    w = torch.randn(16, 64, 8, 8, generator=g) / 64
    want = F.conv2d(x, w)
    got = spectral_conv2d(x.bfloat16(), SpectralKernel(w, tile))
    assert got.dtype == torch.float32 and got.shape == want.shape
    err = (got - want).abs().max() / want.abs().max()
    assert err < 0.02


def test_spectral_conv_checks_its_input():
    kernel = SpectralKernel(torch.zeros(2, 3, 8, 8))
    with pytest.raises(ValueError, match="channels"):
        spectral_conv2d(torch.zeros(1, 4, 20, 20), kernel)
    with pytest.raises(ValueError, match="smaller"):
        spectral_conv2d(torch.zeros(1, 3, 7, 20), kernel)
    with pytest.raises(ValueError, match="square"):
        SpectralKernel(torch.zeros(2, 3, 8, 7))


def test_spectral_conv_is_correlation_not_convolution():
    """A kernel that is not symmetric tells correlation from convolution."""
    x = torch.zeros(1, 1, 12, 12)
    x[0, 0, 4, 4] = 1.0
    w = torch.zeros(1, 1, 8, 8)
    w[0, 0, 0, 1] = 1.0
    got = spectral_conv2d(x, SpectralKernel(w))
    # correlation: out[y, x] = sum w[i, j] x[y + i, x + j] -> the 1 lands at (4, 3)
    assert got[0, 0, 4, 3] == pytest.approx(1.0, abs=1e-5)
    assert float(got.abs().sum()) == pytest.approx(1.0, abs=1e-4)


def test_score_map_heads_agree():
    torch.manual_seed(0)
    model = create_model("paper").eval()
    rng = np.random.default_rng(0)
    a = rng.random((90, 101)).astype(np.float32)
    b = rng.random((90, 101)).astype(np.float32)
    direct = score_map(model, a, b, precision="fp32", device="cpu", head="direct")
    fft = score_map(model, a, b, precision="fp32", device="cpu", head="fft")
    np.testing.assert_allclose(fft, direct, rtol=0, atol=1e-5)


def test_spectral_cache_follows_the_weights():
    from focusfuse.models.focusnet import FocusNet

    torch.manual_seed(0)
    model = FocusNet(16, widths=(4, 8, 8)).eval()  # the paper layout, small: a small spectrum
    first = model._spectral_fc1()
    with torch.no_grad():
        model.fc1.weight.mul_(2.0)
    second = model._spectral_fc1()
    assert second is not first
    torch.testing.assert_close(second.matrices(torch.float32, "cpu")["spec"],
                               2.0 * first.matrices(torch.float32, "cpu")["spec"])


def test_bad_head_is_refused():
    model = create_model("released")
    a = np.zeros((32, 32), np.float32)
    with pytest.raises(ValueError, match="head"):
        score_map(model, a, a, head="winograd")
