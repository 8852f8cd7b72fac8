"""A large-kernel convolution by overlap-save DFT, computed with matrix products only.

The paper's 256-unit layer, applied densely, is an 8×8 correlation from 512 maps to 256:
87% of the network's work. In the frequency domain each output map is a sum over input
maps of products, so the 64 taps of the kernel cost about one complex multiply-add per bin
instead. The image is cut into ``tile``×``tile`` tiles that overlap by ``k − 1``; each tile
gives ``(tile − k + 1)²`` exact outputs (overlap-save).

FFT libraries are slow on millions of 24×24 transforms (a few microseconds each, mostly
overhead), so the transforms here are small dense DFT matrices applied along one axis at a
time, as matrix products over all tiles and channels at once. Every step is then a large
GEMM, which runs near the machine's peak, in bfloat16 when the input is bfloat16 (each
product accumulates in float32, and its result is rounded to bfloat16 for the next step, so
the output is close to, not equal to, the float32 one), otherwise in float32. The layouts
are chosen so that no step needs a transposed copy:

1. tiles ``(x, r, C, m)`` (C: channels, m: tiles); along x: ``(kx, part, r, C·m)``
   (part: real, imaginary);
2. along r, complex: ``(kx, ky, part, C, m)``, so each frequency bin holds a
   ``[re; im]`` (2C, m) matrix;
3. per bin, the real form of the complex product: ``(2O, 2C) @ (2C, m)`` →
   ``(kx, ky, part, O, m)``;
4. inverse along ky (complex, only the valid rows): ``(kx, part, y, O·m)``;
5. inverse along kx to real: ``(x, y, O, m)``.
"""

from __future__ import annotations

import math

import torch

__all__ = ["SPECTRAL_TILE", "TILES_PER_GEMM", "SpectralKernel", "spectral_conv2d"]

#: tile side: each tile gives (24 − 7)² outputs of an 8×8 kernel
SPECTRAL_TILE = 24
#: tiles transformed and multiplied at once: bounds the memory (for 512 bfloat16 channels,
#: about 150 MB per intermediate and two alive at a time) while keeping every product large
#: enough to run at full speed
TILES_PER_GEMM = 256


def _dft_matrices(tile: int, k: int) -> dict[str, torch.Tensor]:
    """Real matrices of the forward and inverse transforms (float64, then cast by the user)."""
    v = tile - k + 1
    nb = tile // 2 + 1
    n = torch.arange(tile, dtype=torch.float64)
    kx = torch.arange(nb, dtype=torch.float64)
    ang = 2 * math.pi * torch.outer(n, kx) / tile  # (x, kx)
    # 1. along x, real input to half spectrum; columns (kx, part)
    fwd_x = torch.stack([torch.cos(ang), -torch.sin(ang)], dim=2).reshape(tile, 2 * nb)
    # 2. along r, complex: rows (ky, part_out), columns (part_in, r)
    a = torch.cos(2 * math.pi * torch.outer(n, n) / tile)  # (ky, r)
    b = -torch.sin(2 * math.pi * torch.outer(n, n) / tile)
    fwd_y = torch.stack([torch.cat([a, -b], 1), torch.cat([b, a], 1)], dim=1)
    fwd_y = fwd_y.reshape(2 * tile, 2 * tile)
    # 4. inverse along ky, complex, only the v valid rows: rows (part_out, y), columns
    # (ky, part_in)
    y = torch.arange(v, dtype=torch.float64)
    ca = torch.cos(2 * math.pi * torch.outer(y, n) / tile)  # (y, ky)
    sa = torch.sin(2 * math.pi * torch.outer(y, n) / tile)
    inv_y = torch.stack([torch.stack([ca, -sa], 2), torch.stack([sa, ca], 2)], 0)
    inv_y = inv_y.reshape(2 * v, 2 * tile)
    # 5. inverse along kx, half spectrum to real (Hermitian): rows x, columns (kx, part),
    # with the 1 / tile² of the inverse transform
    weight = torch.full((nb,), 2.0, dtype=torch.float64)
    weight[0] = 1.0
    if tile % 2 == 0:
        weight[-1] = 1.0
    angx = 2 * math.pi * torch.outer(y, kx) / tile  # (x, kx)
    inv_x = torch.stack([weight * torch.cos(angx), -weight * torch.sin(angx)], 2)
    inv_x = inv_x.reshape(v, 2 * nb) / tile**2
    return {"fwd_x": fwd_x, "fwd_y": fwd_y, "inv_y": inv_y, "inv_x": inv_x}


class SpectralKernel:
    """A correlation kernel (O, C, k, k) prepared for :func:`spectral_conv2d`.

    :meth:`matrices` gives the kernel's spectrum in the real block form of step 3, per
    frequency bin, and the DFT matrices, in the type asked, made on first use.
    """

    def __init__(self, weight: torch.Tensor, tile: int = SPECTRAL_TILE):
        o, c, k, k2 = weight.shape
        if k != k2 or k > tile:
            raise ValueError(f"need a square kernel no larger than the tile; got {tuple(weight.shape)}")
        self.out_channels, self.in_channels, self.k, self.tile = o, c, k, tile
        self._weight = weight.detach().to("cpu", torch.float32).clone()
        self._cache: dict[tuple, dict[str, torch.Tensor]] = {}

    def matrices(self, dtype: torch.dtype, device: torch.device | str) -> dict[str, torch.Tensor]:
        """The kernel's spectrum and the DFT matrices in ``dtype`` on ``device`` (cached)."""
        key = (dtype, str(device))
        if key not in self._cache:
            o, c, tile = self.out_channels, self.in_channels, self.tile
            k, nb = self.k, tile // 2 + 1
            # correlation: multiply by the conjugate spectrum of the kernel,
            # sum_ij w[i, j] · exp(+2πi (ky·i + kx·j) / tile), bins in (kx, ky) order; a
            # matrix product (the kernel has only k×k taps), much faster than FFTs
            i = torch.arange(k, dtype=torch.float64)
            ang = 2 * math.pi / tile * (
                torch.arange(nb, dtype=torch.float64)[:, None, None, None] * i[None, None, None, :]
                + torch.arange(tile, dtype=torch.float64)[None, :, None, None] * i[None, None, :, None])
            dft = torch.stack([torch.cos(ang), torch.sin(ang)], 2)  # (kx, ky, part, i, j)
            spec = dft.reshape(-1, k * k).float() @ self._weight.reshape(o * c, k * k).t()
            spec = spec.view(nb * tile, 2, o, c)  # (bins, part, O, C)
            big = torch.empty((nb * tile, 2 * o, 2 * c), dtype=dtype)
            big[:, :o, :c] = spec[:, 0]
            big[:, :o, c:] = -spec[:, 1]
            big[:, o:, :c] = spec[:, 1]
            big[:, o:, c:] = spec[:, 0]
            del spec
            mats = {"big": big}
            mats.update(_dft_matrices(tile, self.k))
            self._cache[key] = {n: m.to(device=device, dtype=dtype).contiguous()
                                for n, m in mats.items()}
        return self._cache[key]


def spectral_conv2d(x: torch.Tensor, kernel: SpectralKernel,
                    bias: torch.Tensor | None = None) -> torch.Tensor:
    """``F.conv2d(x, weight, bias)`` ("valid" correlation) through :class:`SpectralKernel`.

    ``x`` is (N, C, H, W), float32 or bfloat16; the products run in that type (accumulating
    in float32; in bfloat16 each step's result is rounded). Returns float32
    (N, O, H − k + 1, W − k + 1).
    """
    n, c, h, w = x.shape
    if c != kernel.in_channels:
        raise ValueError(f"input has {c} channels; the kernel expects {kernel.in_channels}")
    k, tile, o = kernel.k, kernel.tile, kernel.out_channels
    v = tile - k + 1
    oh, ow = h - k + 1, w - k + 1
    if oh < 1 or ow < 1:
        raise ValueError(f"input {h}×{w} is smaller than the {k}×{k} kernel")
    ty, tx = math.ceil(oh / v), math.ceil(ow / v)
    dtype = torch.bfloat16 if x.dtype == torch.bfloat16 else torch.float32
    mats = kernel.matrices(dtype, x.device)
    nb = tile // 2 + 1
    out = torch.empty((n, o, ty * v, tx * v), dtype=torch.float32, device=x.device)
    rows = max(1, TILES_PER_GEMM // tx)  # whole rows of tiles at a time: bounded memory
    for i in range(n):
        # (H, W, C), zero-padded to whole tiles: channels last, so that gathering the tiles
        # copies runs of C contiguous values
        xp = x.new_zeros((ty * v + k - 1, tx * v + k - 1, c), dtype=dtype)
        xp[:h, :w] = x[i].permute(1, 2, 0)
        for r0 in range(0, ty, rows):
            r1 = min(r0 + rows, ty)
            m = (r1 - r0) * tx
            part = xp[r0 * v:r1 * v + k - 1]
            # (tr, tx, C, r, x) -> (x, r, C, tr, tx)
            tiles = part.unfold(0, tile, v).unfold(1, tile, v).permute(4, 3, 2, 0, 1)
            tiles = tiles.reshape(tile, tile * c * m)
            # each intermediate is dropped as soon as the next exists: the peak holds two
            s1 = mats["fwd_x"].t() @ tiles  # (kx·part, r·C·m)
            del tiles
            s1 = s1.view(nb, 2 * tile, c * m)  # (kx, part·r, C·m)
            s2 = torch.matmul(mats["fwd_y"], s1)  # (kx, ky·part, C·m)
            del s1
            s2 = s2.view(nb * tile, 2 * c, m)  # (bins, part·C, m)
            p = torch.bmm(mats["big"], s2)  # (bins, part·O, m)
            del s2
            p = p.view(nb, 2 * tile, o * m)  # (kx, ky·part, O·m)
            q = torch.matmul(mats["inv_y"], p)  # (kx, part·y, O·m)
            del p
            q = q.view(2 * nb, v * o * m)
            y = (mats["inv_x"] @ q).float()  # (x, y·O·m)
            del q
            y = y.view(v, v, o, r1 - r0, tx).permute(2, 3, 1, 4, 0)  # (O, tr, y, tx, x)
            out[i, :, r0 * v:r1 * v] = y.reshape(o, (r1 - r0) * v, tx * v)
    if bias is not None:
        out += bias.float()[None, :, None, None]
    return out[:, :, :oh, :ow]
