"""A large-kernel convolution by overlap-save DFT, computed with matrix products only.

The paper's 256-unit layer, applied densely, is an 8×8 correlation from 512 maps to 256:
87% of the network's work. In the frequency domain each output map is a sum over input
maps of products, so the 64 taps of the kernel cost about one complex multiply-add per bin
instead. The image is cut into ``tile``×``tile`` tiles that overlap by ``k − 1``; each tile
gives ``(tile − k + 1)²`` exact outputs (overlap-save).

FFT libraries spend most of their time on overhead for millions of small transforms
(docs/speed.md), so the transforms here are small dense DFT matrices applied along one axis at a
time, as matrix products over all tiles and channels at once. Every step is then a large
GEMM. With a bfloat16 input the forward transforms and the products run in bfloat16 (each
accumulates in float32 and its result is rounded to bfloat16 for the next step) and the
inverse transforms in float32, so the output is close to, not equal to, the float32 one;
with a float32 input everything is float32. The layouts are chosen so that no step needs a
transposed copy, and that gathering the tiles and writing the output copy runs of whole
channel vectors (channels last):

1. tiles ``(x, r, m, C)`` (m: tiles, C: channels); along x: ``(kx, part, r, m·C)``
   (part: real, imaginary);
2. along r, complex, giving per bin the real part, the imaginary part and their sum:
   ``(kx, ky, j, m, C)``;
3. per bin, the complex product in three real products instead of four (Gauss:
   ``k1 = a·c``, ``k2 = b·d``, ``k3 = (a + b)(c + d)``, then ``re = k1 − k2`` and
   ``im = k3 − k1 − k2``), each ``(m, C) @ (C, O)`` → ``(kx, ky, j, m, O)``;
4. inverse along ky, complex, which also forms re and im from k1, k2, k3 (only the valid
   rows), in float32: ``(kx, part, y, m·O)``;
5. inverse along kx to real: ``(x, y, m, O)``, copied out channels last.
"""

from __future__ import annotations

import math

import torch

__all__ = ["SPECTRAL_TILE", "TILES_PER_GEMM", "SpectralKernel", "spectral_conv2d"]

#: tile side: each tile gives (39 − 7)² = 32² outputs of an 8×8 kernel, so a block of 256
#: scores is 8×8 whole tiles. Larger tiles need fewer products per output (the 780 bins of
#: a 39×39 tile serve 1,024 outputs; the 312 bins of a 24×24 tile serve 289) at the price of
#: a larger kernel spectrum (780 bins × 3 × 512 × 256 values: 613 MB in bfloat16)
SPECTRAL_TILE = 39
#: tiles transformed and multiplied at once: bounds the memory (for 512 bfloat16 channels,
#: about 150 MB per intermediate and two alive at a time) while keeping every product large
#: enough to run at full speed
TILES_PER_GEMM = 64


def _dft_matrices(tile: int, k: int) -> dict[str, torch.Tensor]:
    """Real matrices of the forward and inverse transforms (float64, then cast by the user)."""
    v = tile - k + 1
    nb = tile // 2 + 1
    n = torch.arange(tile, dtype=torch.float64)
    kx = torch.arange(nb, dtype=torch.float64)
    ang = 2 * math.pi * torch.outer(n, kx) / tile  # (x, kx)
    # 1. along x, real input to half spectrum; columns (kx, part)
    fwd_x = torch.stack([torch.cos(ang), -torch.sin(ang)], dim=2).reshape(tile, 2 * nb)
    # 2. along r, complex: rows (ky, j) for j = re, im, re + im; columns (part_in, r)
    a = torch.cos(2 * math.pi * torch.outer(n, n) / tile)  # (ky, r)
    b = -torch.sin(2 * math.pi * torch.outer(n, n) / tile)
    re, im = torch.cat([a, -b], 1), torch.cat([b, a], 1)
    fwd_y = torch.stack([re, im, re + im], dim=1).reshape(3 * tile, 2 * tile)
    # 4. inverse along ky, complex, only the v valid rows: rows (part_out, y), columns
    # (ky, j) for the products j = k1, k2, k3, with re = k1 − k2 and im = k3 − k1 − k2
    y = torch.arange(v, dtype=torch.float64)
    ca = torch.cos(2 * math.pi * torch.outer(y, n) / tile)  # (y, ky)
    sa = torch.sin(2 * math.pi * torch.outer(y, n) / tile)
    of_re = torch.stack([ca, sa])  # (part_out, y, ky): what re contributes
    of_im = torch.stack([-sa, ca])
    inv_y = torch.stack([of_re - of_im, -of_re - of_im, of_im], 3).reshape(2 * v, 3 * tile)
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

    :meth:`matrices` gives the kernel's spectrum in the form of step 3 (per frequency bin,
    the real part, the imaginary part and their sum, each (C, O)), and the DFT matrices, in
    the type asked, made on first use.
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
            # sum_ij w[i, j] · exp(+2πi (ky·i + kx·j) / tile), one axis at a time: along j
            # to (kx, part), then along i, per kx, to the three products' (ky, j) of step 3
            t = torch.arange(k, dtype=torch.float64)
            angj = 2 * math.pi / tile * torch.outer(torch.arange(nb, dtype=torch.float64), t)
            along_j = torch.stack([torch.cos(angj), torch.sin(angj)], 1).reshape(2 * nb, k)
            angi = 2 * math.pi / tile * torch.outer(torch.arange(tile, dtype=torch.float64), t)
            cos_i, sin_i = torch.cos(angi), torch.sin(angi)  # (ky, i)
            # (re, im) of the product with a complex (re, im) over i: rows (ky, j), columns
            # (part, i)
            re, im = torch.cat([cos_i, -sin_i], 1), torch.cat([sin_i, cos_i], 1)
            along_i = torch.stack([re, im, re + im], 1).reshape(3 * tile, 2 * k).float()
            # (O, C, i, j) to (j, i·C·O): a blocked 2-D transpose, then whole rows of O moved
            # (one 4-D permuted copy is several times slower)
            w = self._weight.view(o, c * k * k).t().contiguous().view(c, k, k, o)
            w = w.permute(2, 1, 0, 3).reshape(k, k * c * o)  # (j, i·C·O)
            half = (along_j.float() @ w).view(nb, 2 * k, c * o)  # (kx, part·i, C·O)
            spec = torch.empty((nb, 3 * tile, c * o), dtype=dtype)
            # float32, rounded once to the type asked, in column blocks of 15 MB: large enough
            # that there are few calls, each of which waits for every thread (docs/speed.md)
            cols = 32768
            block = torch.empty((3 * tile, cols))
            for kx in range(nb):
                for c0 in range(0, c * o, cols):
                    c1 = min(c0 + cols, c * o)
                    torch.mm(along_i, half[kx, :, c0:c1], out=block[:, :c1 - c0])
                    spec[kx, :, c0:c1] = block[:, :c1 - c0]
            mats = {"spec": spec.view(nb * tile * 3, c, o)}
            mats.update(_dft_matrices(tile, self.k))
            # the inverse transforms run in float32 (their input is the products' output)
            self._cache[key] = {n: m.to(device=device, dtype=torch.float32 if n.startswith("inv")
                                        else dtype).contiguous()
                                for n, m in mats.items()}
        return self._cache[key]


def spectral_conv2d(x: torch.Tensor, kernel: SpectralKernel,
                    bias: torch.Tensor | None = None) -> torch.Tensor:
    """``F.conv2d(x, weight, bias)`` ("valid" correlation) through :class:`SpectralKernel`.

    ``x`` is (N, C, H, W), float32 or bfloat16; the products run in that type (accumulating
    in float32; in bfloat16 each step's result is rounded). Returns float32
    (N, O, H − k + 1, W − k + 1), a channels-last view.
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
    out = torch.empty((n, ty * v, tx * v, o), dtype=torch.float32, device=x.device)
    rows = max(1, TILES_PER_GEMM // tx)  # whole rows of tiles at a time: bounded memory
    most = min(rows, ty) * tx  # tiles in the largest block
    # two buffers, each step reading one and writing the other: every block reuses the same
    # memory (no page faults after the first, and a heap that does not fragment)
    wide = 4 // dtype.itemsize  # the inverse transforms' float32, in elements of dtype
    size = most * max(tile * tile * c, 3 * nb * tile * c,  # tiles, s1, s2
                      3 * nb * tile * o * wide, 2 * nb * v * o * wide)  # p, q (y is smaller)
    wa = torch.empty(size, dtype=dtype, device=x.device)
    wb = torch.empty(size, dtype=dtype, device=x.device)

    def view(buf, shape, type_=dtype):
        count = math.prod(shape) * type_.itemsize // buf.itemsize
        return buf[:count].view(type_).view(shape)

    for i in range(n):
        xp = x.new_empty((ty * v + k - 1, tx * v + k - 1, c), dtype=dtype)
        xp[:h, :w] = x[i].permute(1, 2, 0)
        xp[h:] = 0
        xp[:h, w:] = 0
        for r0 in range(0, ty, rows):
            r1 = min(r0 + rows, ty)
            m = (r1 - r0) * tx
            part = xp[r0 * v:r1 * v + k - 1]
            # (tr, tx, C, r, x) -> (x, r, tr, tx, C)
            tiles = view(wa, (tile, tile, r1 - r0, tx, c))
            tiles.copy_(part.unfold(0, tile, v).unfold(1, tile, v).permute(4, 3, 0, 1, 2))
            s1 = view(wb, (2 * nb, tile * m * c))  # (kx·part, r·m·C)
            torch.mm(mats["fwd_x"].t(), tiles.view(tile, tile * m * c), out=s1)
            s1 = s1.view(nb, 2 * tile, m * c)
            s2 = view(wa, (nb, 3 * tile, m * c))  # (kx, ky·j, m·C)
            torch.matmul(mats["fwd_y"], s1, out=s2)
            p = view(wb, (nb * tile * 3, m, o))  # (bins·j, m, O)
            torch.bmm(s2.view(nb * tile * 3, m, c), mats["spec"], out=p)
            if dtype != torch.float32:  # the inverse in float32: fewer roundings
                p32 = view(wa, (nb, 3 * tile, m * o), torch.float32)
                p32.copy_(p.view(nb, 3 * tile, m * o))
                p = p32
            p = p.view(nb, 3 * tile, m * o)
            q = view(wb if dtype != torch.float32 else wa, (nb, 2 * v, m * o), torch.float32)
            torch.matmul(mats["inv_y"], p, out=q)  # (kx, part·y, m·O)
            y = view(wa if dtype != torch.float32 else wb, (v, v * m * o), torch.float32)
            torch.mm(mats["inv_x"], q.view(2 * nb, v * m * o), out=y)  # (x, y·m·O)
            y = y.view(v, v, r1 - r0, tx, o).permute(2, 1, 3, 0, 4)  # (tr, y, tx, x, O)
            out[i, r0 * v:r1 * v].view(r1 - r0, v, tx, v, o).copy_(y)
    if bias is not None:
        out += bias.float()
    return out[:, :oh, :ow].permute(0, 3, 1, 2)
