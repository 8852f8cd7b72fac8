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

import torch
import torch.nn.functional as F
from torch import nn

from focusfuse.models.spectral import SpectralKernel, spectral_conv2d

__all__ = ["FocusNet", "PATCH", "STRIDE"]

PATCH = 16  #: side of the patches the classifier scores
STRIDE = 2  #: step between neighbouring scores in the dense map
_FEAT = PATCH // 2  # side of one branch's output for a patch (8)


def _max_pool2(x: torch.Tensor) -> torch.Tensor:
    """2×2 max-pooling, stride 2, a last odd row or column pooled alone (``ceil_mode``).

    Without gradients, as two element-wise maxima of strided views (the same values as
    PyTorch's pooling, which also computes the indices of the maxima; faster on the CPU,
    docs/speed.md); with gradients, PyTorch's pooling.
    """
    if torch.is_grad_enabled() and x.requires_grad:
        return F.max_pool2d(x, 2, 2, ceil_mode=True)
    h, w = x.shape[-2:]
    if h % 2 or w % 2:
        x = F.pad(x, (0, w % 2, 0, h % 2), value=float("-inf"))
    rows = torch.maximum(x[..., 0::2, :], x[..., 1::2, :])
    return torch.maximum(rows[..., 0::2], rows[..., 1::2])


def _tap_sum(feats: torch.Tensor, taps: torch.Tensor) -> torch.Tensor:
    """The 8×8 correlation of (n, C, h, w) features with (n, 64, C) tap weights, summed over
    the n images: float32 (h − 7, w − 7).

    As a convolution with one output channel this is slow (a matrix product with nothing to
    run in parallel along), so it is done in two steps: one matrix product gives, for every
    position and each of the 64 taps, the features' product with that tap's weights, then
    the 64 maps are summed, each shifted by its tap's offset, in float32, through one
    strided view of them.
    """
    n, c, h, w = feats.shape
    oh, ow = h - _FEAT + 1, w - _FEAT + 1
    f = feats.permute(0, 2, 3, 1).reshape(n, h * w, c)  # a view if channels last
    g = torch.bmm(taps, f.transpose(1, 2))  # (image, tap, h·w)
    # g[n, i·8 + j, y + i, x + j] for all (n, i, j, y, x) is one strided view of g
    step = g.stride()
    shifted = g.as_strided((n, _FEAT, _FEAT, oh, ow),
                           (step[0], _FEAT * step[1] + w, step[1] + 1, w, 1))
    return shifted.sum(dim=(0, 1, 2), dtype=torch.float32)


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
        kind = x.device.type
        if torch.is_autocast_enabled(kind):
            # the first layer in float32 even under autocast: rounding the gray input itself to
            # bfloat16 (8 significant bits, up to half a gray level of an 8-bit image) is the
            # largest part of bfloat16's error in the scores (docs/speed.md); the layer is tiny
            with torch.autocast(kind, enabled=False):
                x = self.conv1(x.float()).relu_()
            x = x.to(torch.get_autocast_dtype(kind))
        else:
            x = self.conv1(x).relu_()
        # max-pooling and ReLU commute: pooling first leaves a quarter of the values to clip
        x = _max_pool2(self.conv2(x)).relu_()
        return self.conv3(x).relu_()

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

    def _spectral_fc1(self) -> SpectralKernel:
        """fc1's kernel as a spectrum, computed once per version of the weights."""
        key = (self.fc1.weight._version, self.fc1.weight.data_ptr(), self.fc1.weight.device)
        cached = getattr(self, "_spectral_cache", None)
        if cached is None or cached[0] != key:
            w1 = self.fc1.weight.detach().view(self.hidden, -1, _FEAT, _FEAT)
            cached = (key, SpectralKernel(w1))
            self._spectral_cache = cached
        return cached[1]

    def fc1_part_kernel(self, part: int) -> SpectralKernel:
        """fc1's weights on one image's features (``part`` 0: the first image's, 1: the
        second's), prepared for :func:`~focusfuse.models.spectral.spectral_conv2d`. Not kept
        on the model: its spectrum (hundreds of MB) lives as long as the caller keeps it."""
        if part not in (0, 1):
            raise ValueError(f"part must be 0 (the first image) or 1 (the second); got {part!r}")
        c = self.widths[2]
        w1 = self.fc1.weight.detach().view(self.hidden, 2 * c, _FEAT, _FEAT)
        return SpectralKernel(w1[:, part * c:(part + 1) * c])

    def hidden_part(self, feats: torch.Tensor, part: int, *,
                    kernel: SpectralKernel | None = None) -> torch.Tensor:
        """One image's share of the 256-unit layer, before its bias and ReLU: the layer's
        weights on the first image's features (``part`` 0) or on the second's (1) applied to
        ``feats`` (1, C, h, w) as an 8×8 correlation, float32 (1, hidden, h − 7, w − 7) (by
        overlap-save DFT with ``kernel``, that part's :meth:`fc1_part_kernel`: a
        channels-last view; else directly).

        The layer is linear up to its ReLU, so a pair's pre-activation is the sum of its two
        images' parts and the bias (:meth:`margin_from_parts`): the part of an image scored
        against many others is computed once (a stack's frames against its mean image)."""
        if feats.shape[0] != 1 or part not in (0, 1):
            raise ValueError(f"need one image's features (1, C, h, w) and part 0 or 1; got "
                             f"{tuple(feats.shape)} and {part!r}")
        if kernel is not None:
            with torch.autocast(feats.device.type, enabled=False):
                return spectral_conv2d(feats, kernel)
        c = feats.shape[1]
        w1 = self.fc1.weight.view(self.hidden, 2 * c, _FEAT, _FEAT)[:, part * c:(part + 1) * c]
        return F.conv2d(feats, w1.to(feats.dtype)).float()

    def margin_from_parts(self, first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
        """:meth:`dense_margin` of a pair from :meth:`hidden_part` 0 of its first image and
        1 of its second (either float32 or bfloat16): float32 (h − 7, w − 7)."""
        x = (first.float() + second.float()).add_(self.fc1.bias.float()[:, None, None]).relu_()
        wd = (self.fc2.weight[1] - self.fc2.weight[0]).float()
        bias = (self.fc2.bias[1] - self.fc2.bias[0]).float()
        return F.conv2d(x, wd.view(1, self.hidden, 1, 1))[0, 0] + bias

    def dense_head(self, feats: torch.Tensor, *, spectral: bool = False) -> torch.Tensor:
        """The fully connected layers re-cast as convolutions over a feature map of any size.

        ``spectral=True`` computes the 8×8 convolution of the 256-unit layer by overlap-save
        DFT (:func:`~focusfuse.models.spectral.spectral_conv2d`, in the features' type,
        bfloat16 or float32): in float32 the same scores to about 1e-5, in bfloat16 close
        to the direct convolution's bfloat16 scores; several times faster on a CPU.
        """
        if self.fc1 is not None:
            x = self._hidden_map(feats, spectral)
            w2 = self.fc2.weight.view(2, self.hidden, 1, 1)
            return F.conv2d(x, w2.to(x.dtype), self.fc2.bias.to(x.dtype))
        w = self.fc2.weight.view(2, feats.shape[1], _FEAT, _FEAT)
        return F.conv2d(feats, w, self.fc2.bias)

    def _hidden_map(self, pair: torch.Tensor, spectral: bool) -> torch.Tensor:
        """The 256-unit layer (with its ReLU) at every position of the concatenated features:
        an 8×8 convolution, by overlap-save DFT when ``spectral`` (float32 out)."""
        if spectral:
            with torch.autocast(pair.device.type, enabled=False):
                return spectral_conv2d(pair, self._spectral_fc1(), self.fc1.bias).relu_()
        w1 = self.fc1.weight.view(self.hidden, pair.shape[1], _FEAT, _FEAT)
        return F.relu(F.conv2d(pair, w1, self.fc1.bias))

    def dense_margin(self, feats: torch.Tensor, *, spectral: bool = False) -> torch.Tensor:
        """Log-odds that the first image's window is the one in focus, float32 (h − 7, w − 7).

        ``feats`` are the two images' features stacked, (2, C, h, w), as :meth:`features`
        gives them for a (2, 1, H, W) pair. The softmax of the two logits l0, l1 is
        sigmoid(l1 − l0), so only the difference of the last layer's two outputs is
        computed. Without the 256-unit layer that is a correlation with an 8×8 kernel from
        2C maps to one (:func:`_tap_sum`).
        """
        if feats.shape[0] != 2:
            raise ValueError(f"need the features of two images stacked, (2, C, h, w); got {tuple(feats.shape)}")
        c = feats.shape[1]
        wd = self.fc2.weight[1] - self.fc2.weight[0]
        bias = (self.fc2.bias[1] - self.fc2.bias[0]).float()
        if self.fc1 is not None:
            x = self._hidden_map(torch.cat([feats[:1], feats[1:]], dim=1), spectral)
            return F.conv2d(x, wd.view(1, self.hidden, 1, 1).to(x.dtype))[0, 0].float() + bias
        # (image, tap, C), in the features' type (bmm runs in autocast's type anyway)
        taps = wd.view(2, c, _FEAT * _FEAT).transpose(1, 2).to(feats.dtype)
        return _tap_sum(feats, taps) + bias

    def frame_weights(self) -> torch.Tensor:
        """The per-frame focus weights of a layout without the 256-unit layer: the half
        difference of the last layer's weights on the first and on the second image,
        (C, 8, 8). The log-odds of a pair is then this weighting of the first image's
        features minus that of the second's, plus a term symmetric in the two; the
        antisymmetric part alone scores one image on its own, so frames can be compared
        without pairing them (:meth:`dense_frame_score`)."""
        if self.fc1 is not None:
            raise ValueError("the paper layout's 256-unit layer is not linear in the two "
                             "branches; it scores pairs only")
        c = self.widths[2]
        wd = (self.fc2.weight[1] - self.fc2.weight[0]).view(2, c, _FEAT, _FEAT)
        return (wd[0] - wd[1]) / 2

    def dense_frame_score(self, feats: torch.Tensor) -> torch.Tensor:
        """Focus score of each 16×16 window of one image, float32 (h − 7, w − 7), from its
        (1, C, h, w) features: :meth:`frame_weights` applied as an 8×8 correlation.
        Higher is sharper; scores of different frames of one scene are comparable."""
        if feats.shape[0] != 1:
            raise ValueError(f"need the features of one image, (1, C, h, w); got {tuple(feats.shape)}")
        c = feats.shape[1]
        taps = self.frame_weights().reshape(1, c, _FEAT * _FEAT).transpose(1, 2)
        return _tap_sum(feats, taps.to(feats.dtype))

    def dense_logits(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Logits (N, 2, ceil(H/2) - 7, ceil(W/2) - 7) for whole images a, b of shape (N, 1, H, W)."""
        fa, fb = self.features(torch.cat([a, b])).chunk(2)
        return self.dense_head(torch.cat([fa, fb], dim=1))
