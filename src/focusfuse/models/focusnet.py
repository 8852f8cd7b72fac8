"""The siamese focus classifier of Liu et al. 2017.

Y. Liu, X. Chen, H. Peng, Z. Wang, "Multi-focus image fusion with a deep convolutional
neural network", Information Fusion 36 (2017) 191-207, Section 3.1 and Fig. 2:

- each branch (weights shared): 3×3 convolution to 64 maps, 3×3 convolution to 128 maps,
  2×2 max-pooling with stride 2, 3×3 convolution to 256 maps; stride 1, padding 1, ReLU;
- the two 256-map outputs (8×8 for a 16×16 patch) are concatenated (first image first)
  into 512 maps;
- paper text: a fully connected layer of 256 units (ReLU), then 2 outputs with softmax;
- the authors' released model: the 8×8×512 maps straight to the 2 outputs.

Output class 1 means "the first patch is the one in focus" (class 2 of the authors'
MATLAB code). For whole images, :meth:`FocusNet.dense_logits` applies the fully
connected layers as 8×8 and 1×1 convolutions: one score per 16×16 window at stride 2.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["FocusNet", "PATCH", "STRIDE", "spectral_conv2d", "spectral_weight"]

PATCH = 16  #: side of the patches the classifier scores
STRIDE = 2  #: step between neighbouring scores in the dense map
_FEAT = PATCH // 2  # side of one branch's output for a patch (8)


#: FFT tile side of :func:`spectral_conv2d`: each tile gives (24 − 7)² outputs of an 8×8
#: kernel; 24 was the fastest of 16, 24 and 32 on a 2-core AVX-512 CPU, with the smallest
#: spectral weight of the fast ones (256·512·24·13 complex numbers, 327 MB)
SPECTRAL_TILE = 24
#: FFT tiles multiplied at once: bounds the spectra held in memory (about 160 MB for 512
#: channels) while keeping the batched products large enough to run at full speed
TILES_PER_GEMM = 128


def spectral_weight(weight: torch.Tensor, tile: int = SPECTRAL_TILE) -> torch.Tensor:
    """The conjugate 2-D spectrum of a correlation kernel (O, C, k, k), zero-padded to
    ``tile``×``tile``, laid out (frequency bins, O, C) for :func:`spectral_conv2d`."""
    o, c = weight.shape[:2]
    wf = torch.fft.rfft2(weight.float(), s=(tile, tile)).conj()
    return wf.permute(2, 3, 0, 1).reshape(-1, o, c).contiguous()


def spectral_conv2d(x: torch.Tensor, wf: torch.Tensor, bias: torch.Tensor | None, k: int,
                    tile: int = SPECTRAL_TILE) -> torch.Tensor:
    """``F.conv2d(x, weight, bias)`` ("valid" correlation with a k×k kernel) by overlap-save
    FFT in tiles: the same result to float32 round-off, with far fewer operations for large
    kernels over many channels (for the paper's 8×8×512→256 layer, about 15× fewer).

    ``x`` is (N, C, H, W) float32; ``wf`` is :func:`spectral_weight` of the kernel.
    """
    n, c, h, w = x.shape
    v = tile - k + 1  # valid outputs per tile and axis
    oh, ow = h - k + 1, w - k + 1
    ty, tx = math.ceil(oh / v), math.ceil(ow / v)
    bins, o = wf.shape[0], wf.shape[1]
    out = x.new_empty((n, o, ty * v, tx * v), dtype=torch.float32)
    for i, xi in enumerate(x.float().contiguous()):
        xp = F.pad(xi, (0, tx * v + k - 1 - w, 0, ty * v + k - 1 - h))
        tiles = xp.unfold(1, tile, v).unfold(2, tile, v).reshape(c, ty * tx, tile, tile)
        rows = max(1, TILES_PER_GEMM // tx)  # whole rows of tiles at a time: bounded memory
        for r0 in range(0, ty, rows):
            r1 = min(r0 + rows, ty)
            part = tiles[:, r0 * tx:r1 * tx]
            m = part.shape[1]
            spec = torch.fft.rfft2(part).permute(2, 3, 0, 1).reshape(bins, c, m)
            prod = torch.bmm(wf, spec).reshape(tile, tile // 2 + 1, o, m).permute(2, 3, 0, 1)
            y = torch.fft.irfft2(prod, s=(tile, tile))[..., :v, :v]
            y = y.reshape(o, r1 - r0, tx, v, v).permute(0, 1, 3, 2, 4)
            out[i, :, r0 * v:r1 * v] = y.reshape(o, (r1 - r0) * v, tx * v)
    out = out[:, :, :oh, :ow]
    return out if bias is None else out + bias.float()[None, :, None, None]


class FocusNet(nn.Module):
    """Siamese focus classifier; ``hidden=256`` is the paper's text, ``None`` the released layout."""

    def __init__(self, hidden: int | None = 256, *, widths: tuple[int, int, int] = (64, 128, 256)):
        super().__init__()
        w1, w2, w3 = widths
        self.hidden = hidden
        self.widths = tuple(widths)
        self.conv1 = nn.Conv2d(1, w1, 3, padding=1)
        self.conv2 = nn.Conv2d(w1, w2, 3, padding=1)
        self.conv3 = nn.Conv2d(w2, w3, 3, padding=1)
        n_in = 2 * w3 * _FEAT * _FEAT
        if hidden:
            self.fc1 = nn.Linear(n_in, hidden)
            self.fc2 = nn.Linear(hidden, 2)
        else:
            self.fc1 = None
            self.fc2 = nn.Linear(n_in, 2)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Xavier (Glorot) uniform weights, zero biases, as in the paper's Caffe set-up."""
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """One branch: (N, 1, H, W) gray in [0, 1] to (N, 256, ceil(H/2), ceil(W/2))."""
        x = F.relu(self.conv1(x))
        x = F.relu(self.conv2(x))
        x = F.max_pool2d(x, 2, 2, ceil_mode=True)
        return F.relu(self.conv3(x))

    def head(self, feats: torch.Tensor) -> torch.Tensor:
        """Fully connected layers on (N, 512, 8, 8) concatenated features: (N, 2) logits."""
        x = feats.flatten(1)
        if self.fc1 is not None:
            x = F.relu(self.fc1(x))
        return self.fc2(x)

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Logits (N, 2) for 16×16 patch pairs a, b of shape (N, 1, 16, 16)."""
        fa, fb = self.features(torch.cat([a, b])).chunk(2)
        return self.head(torch.cat([fa, fb], dim=1))

    def _spectral_fc1(self) -> torch.Tensor:
        """fc1's kernel as a spectrum, computed once per version of the weights."""
        key = (self.fc1.weight._version, self.fc1.weight.data_ptr(), self.fc1.weight.device)
        cached = getattr(self, "_spectral_cache", None)
        if cached is None or cached[0] != key:
            w1 = self.fc1.weight.detach().view(self.hidden, -1, _FEAT, _FEAT)
            cached = (key, spectral_weight(w1))
            self._spectral_cache = cached
        return cached[1]

    def dense_head(self, feats: torch.Tensor, *, spectral: bool = False) -> torch.Tensor:
        """The fully connected layers re-cast as convolutions over a feature map of any size.

        ``spectral=True`` computes the 8×8 convolution of the 256-unit layer by FFT
        (:func:`spectral_conv2d`, float32): the same scores, several times faster on a CPU.
        """
        c = feats.shape[1]
        if self.fc1 is not None:
            if spectral:
                with torch.autocast(feats.device.type, enabled=False):
                    x = F.relu(spectral_conv2d(feats.float(), self._spectral_fc1(),
                                               self.fc1.bias, _FEAT))
                w2 = self.fc2.weight.view(2, self.hidden, 1, 1)
                return F.conv2d(x, w2.float(), self.fc2.bias.float())
            w1 = self.fc1.weight.view(self.hidden, c, _FEAT, _FEAT)
            x = F.relu(F.conv2d(feats, w1, self.fc1.bias))
            w2 = self.fc2.weight.view(2, self.hidden, 1, 1)
            return F.conv2d(x, w2, self.fc2.bias)
        w = self.fc2.weight.view(2, c, _FEAT, _FEAT)
        return F.conv2d(feats, w, self.fc2.bias)

    def dense_logits(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Logits (N, 2, ceil(H/2) - 7, ceil(W/2) - 7) for whole images a, b of shape (N, 1, H, W)."""
        fa, fb = self.features(torch.cat([a, b])).chunk(2)
        return self.dense_head(torch.cat([fa, fb], dim=1))
