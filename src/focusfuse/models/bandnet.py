"""BandNet: a small network that weighs N frames' Laplacian-pyramid coefficients.

The fusion of ``learned-pyramid`` (:mod:`focusfuse.fusion.learned`). Each frame's gray
image is decomposed into a Laplacian pyramid (Burt and Adelson 1983, the 5-tap kernel;
:mod:`focusfuse.transforms.laplacian`), ``LEVELS`` detail levels and the Gaussian top. For
every coefficient of every level, frame ``i`` gets a logit

    l_i = f(own_i, mean over frames, max over frames, level)

where ``own_i`` are two local energies of frame i's band (the log of the 3×3 and 9×9 box
means of the squared coefficients; on the top level, of the coefficients less their 5×5
box mean), and the mean and maximum of those energies over the frames are the context
that every frame sees alike. ``f`` is three 3×3 convolutions (``WIDTH`` channels, ReLU),
one network for all levels told the level by a one-hot input. The fused coefficient is
the softmax-weighted sum over frames, ``Σ_i softmax_i(l) · c_i``, in every colour channel
with the gray image's weights, so that a pixel's channels are never mixed differently.

What this gives: the weights do not depend on the order of the frames (the context is
symmetric, the softmax too), for two frames ``w_A = sigmoid(f(A, ·) − f(B, ·))``; the
network may be hard where one frame is clearly sharper and soft where the truth is a
mixture (the band where a blurred foreground spreads over a sharp background), at every
scale; and the state kept over a stack is a fixed number of pyramids (the context, then a
running softmax), whatever N. It is trained against the all-in-focus truth of synthetic
stacks (:mod:`focusfuse.train.bands`).

The weights file (safetensors) holds the network and, in its metadata, ``arch`` =
``bandnet``, ``levels`` and ``width``.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["ARCH", "BandNet", "LEVELS", "WIDTH", "box", "collapse", "energies", "energies_np",
           "load_bandnet", "pyramid", "save_bandnet"]

ARCH = "bandnet"
#: detail levels of the pyramid the network was made for (and the top)
LEVELS = 5
#: channels of the hidden layers
WIDTH = 16
#: the floor under the energies before the log (gray levels in [0, 1], squared)
EPS = 1e-6
_KERNEL = (1.0, 4.0, 6.0, 4.0, 1.0)


def box(x: torch.Tensor, r: int) -> torch.Tensor:
    """The mean of (N, C, H, W) ``x`` over (2r + 1)² boxes, borders replicated (any size)."""
    return F.avg_pool2d(F.pad(x, (r, r, r, r), mode="replicate"), 2 * r + 1, 1)


def energies_np(band: np.ndarray, top: bool) -> np.ndarray:
    """:func:`energies` of one (h, w) gray band in NumPy and OpenCV (the same box means,
    borders replicated): (2, h, w) float32."""
    import cv2

    band = np.asarray(band, np.float32)
    mean = functools.partial(cv2.boxFilter, ddepth=-1, borderType=cv2.BORDER_REPLICATE)
    if top:
        band = band - mean(band, ksize=(5, 5))
    sq = band * band
    out = np.stack([mean(sq, ksize=(3, 3)), mean(sq, ksize=(9, 9))])
    return np.log(np.maximum(out, 0) + np.float32(EPS), out=out)


def energies(band: torch.Tensor, top: bool) -> torch.Tensor:
    """The two local energies of (N, 1, h, w) gray ``band``s: (N, 2, h, w), log of the 3×3
    and 9×9 means of the squared coefficients (the top level less its 5×5 mean first)."""
    if top:
        band = band - box(band, 2)
    sq = band * band
    return torch.log(EPS + torch.cat([box(sq, 1), box(sq, 4)], dim=1))


class BandNet(nn.Module):
    """The logit network; see the module's notes. ``forward(own, mean, peak, level)`` takes
    (N, 2, h, w) energies of N frames, their mean and maximum over the frames (broadcast),
    and the level (0 the finest, ``levels`` the top), and gives (N, 1, h, w) logits."""

    def __init__(self, levels: int = LEVELS, width: int = WIDTH):
        super().__init__()
        self.levels, self.width = int(levels), int(width)
        inputs = 6 + self.levels + 1
        self.net = nn.Sequential(
            nn.Conv2d(inputs, width, 3, padding=1, padding_mode="replicate"), nn.ReLU(),
            nn.Conv2d(width, width, 3, padding=1, padding_mode="replicate"), nn.ReLU(),
            nn.Conv2d(width, 1, 3, padding=1, padding_mode="replicate"))

    def slot(self, level: int, n_levels: int) -> int:
        """The one-hot slot of ``level`` in a pyramid of ``n_levels`` detail levels (the top
        always has the last slot, so a small image's shorter pyramid keeps its top's)."""
        if not 0 <= level <= n_levels or n_levels > self.levels:
            raise ValueError(f"level {level} of {n_levels} outside this network's "
                             f"{self.levels} levels")
        return self.levels if level == n_levels else level

    def forward(self, own: torch.Tensor, mean: torch.Tensor, peak: torch.Tensor,
                slot: int) -> torch.Tensor:
        n, _, h, w = own.shape
        onehot = own.new_zeros((n, self.levels + 1, h, w))
        onehot[:, slot] = 1.0
        x = torch.cat([own, mean.expand(n, -1, -1, -1), peak.expand(n, -1, -1, -1), onehot], 1)
        return self.net(x)

    @torch.inference_mode()
    def logits(self, features: torch.Tensor, slot: int, rows: int = 256) -> torch.Tensor:
        """:meth:`forward` for inference, from (N, 6, h, w) ``features`` (own, mean, peak),
        in strips of ``rows`` rows so that the hidden layers of a large level are never
        whole. The same numbers as :meth:`forward`: a strip carries 3 rows of its
        neighbours' input (the three layers' reach), each layer pads with replicated rows
        only at the image's top and bottom, as the whole image's layers do. The one-hot
        input, a constant plane, is folded into the first layer's bias (its replicated
        border is the same constant)."""
        first = self.net[0]
        layers = [(first.weight[:, :6], first.bias + first.weight[:, 6 + slot].sum(dim=(1, 2))),
                  (self.net[2].weight, self.net[2].bias), (self.net[4].weight, self.net[4].bias)]
        h = features.shape[2]
        rows = max(int(rows), 3)
        out, y0 = [], 0
        while y0 < h:
            y1 = y0 + rows if h - (y0 + rows) >= 3 else h  # a last strip of 3 rows or more
            top, bottom = y0 == 0, y1 == h
            x = features[:, :, y0 - (0 if top else 3):y1 + (0 if bottom else 3)]
            for i, (weight, bias) in enumerate(layers):
                pad = (1, 1, 1 if top else 0, 1 if bottom else 0)
                x = F.conv2d(F.pad(x, pad, mode="replicate"), weight, bias)
                if i < 2:
                    x = torch.relu_(x)
            out.append(x)
            y0 = y1
        return torch.cat(out, dim=2) if len(out) > 1 else out[0]


# ------------------------------------------------------- a differentiable pyramid, to train
def _blur(x: torch.Tensor) -> torch.Tensor:
    c = x.shape[1]
    k = x.new_tensor(_KERNEL) / 16.0
    x = F.conv2d(F.pad(x, (2, 2, 0, 0), mode="reflect"), k.view(1, 1, 1, 5).repeat(c, 1, 1, 1),
                 groups=c)
    return F.conv2d(F.pad(x, (0, 0, 2, 2), mode="reflect"), k.view(1, 1, 5, 1).repeat(c, 1, 1, 1),
                    groups=c)


def _expand(x: torch.Tensor, size) -> torch.Tensor:
    up = x.new_zeros(x.shape[:2] + tuple(size))
    up[..., ::2, ::2] = x
    return 4.0 * _blur(up)


def pyramid(x: torch.Tensor, levels: int = LEVELS) -> list[torch.Tensor]:
    """Laplacian pyramid of (N, C, H, W) ``x`` in PyTorch, for training (the kernel and the
    reflect-101 borders of :func:`focusfuse.transforms.laplacian_forward`, which fuses; the
    two agree except on the last row or column of a level of odd size, where OpenCV's
    expansion treats the border its own way): ``levels`` bands, finest first, then the
    top."""
    bands, g = [], x
    for _ in range(levels):
        low = _blur(g)[..., ::2, ::2]
        bands.append(g - _expand(low, g.shape[-2:]))
        g = low
    return bands + [g]


def collapse(bands: list[torch.Tensor]) -> torch.Tensor:
    """The image of a :func:`pyramid`."""
    g = bands[-1]
    for band in reversed(bands[:-1]):
        g = band + _expand(g, band.shape[-2:])
    return g


# ------------------------------------------------------------------------------ weights
def save_bandnet(model: BandNet, path: str | Path, extra: dict | None = None) -> None:
    """Write ``model`` as safetensors, in one step (:func:`focusfuse.models.write_safetensors`)."""
    from focusfuse.models import write_safetensors

    meta = {"arch": ARCH, "levels": str(model.levels), "width": str(model.width)}
    meta.update({k: str(v) for k, v in (extra or {}).items()})
    write_safetensors({k: v.detach().contiguous() for k, v in model.state_dict().items()}, path,
                      meta)


def load_bandnet(path: str | Path) -> BandNet:
    """A :class:`BandNet` from a file written by :func:`save_bandnet` (a ValueError naming
    the file when it is not one)."""
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    try:
        with safe_open(str(path), framework="pt") as fh:
            meta = fh.metadata() or {}
            tensors = {k: fh.get_tensor(k) for k in fh.keys()}
    except (SafetensorError, OSError) as exc:
        raise ValueError(f"{path} is not a readable safetensors file ({exc}); give a file "
                         "written by focusfuse train --arch bandnet") from None
    if meta.get("arch") != ARCH:
        raise ValueError(f"{path} holds a {meta.get('arch', 'unnamed')!r} network, not a "
                         f"{ARCH}; give a file written by focusfuse train --arch bandnet")
    model = BandNet(int(meta.get("levels", LEVELS)), int(meta.get("width", WIDTH)))
    try:
        model.load_state_dict(tensors)
    except RuntimeError as exc:
        raise ValueError(f"{path}: its tensors do not fit a {ARCH} ({exc})") from None
    return model.eval()
