"""Dense score map: the only place that speaks NCHW tensors.

Liu et al. 2017, Section 3.3: the network, with its fully connected layers applied as
convolutions, scores every 16×16 window of the source pair at stride 2 in one pass:
an image of H×W pixels gives (ceil(H/2) − 7) × (ceil(W/2) − 7) scores, each the
probability that the window of the first image is the one in focus (the focus map, the
next stage, is in :mod:`focusfuse.decision`).
"""

from __future__ import annotations

import numpy as np
import torch

from focusfuse.device import CompileError, resolve_device, resolve_precision
from focusfuse.models import PATCH, STRIDE, FocusNet
from focusfuse.models.spectral import SPECTRAL_TILE

__all__ = ["REFERENCE_BYTES", "ReferenceScorer", "frame_score_map", "score_map"]


#: input rows/columns a score reads beyond its 16×16 window on each side: two 3×3
#: convolutions at full resolution and one at half resolution (2 pixels) after pooling
MARGIN = 4
#: side of a tile, in scores, unless told otherwise: small tiles keep a light network's
#: feature maps in the caches; the paper network's spectral head wants whole DFT tiles of
#: scores (32×32) and many of them per product (its convolutions run as fast on large tiles)
DEFAULT_TILE = 128
SPECTRAL_TILE_SCORES = 8 * (SPECTRAL_TILE - PATCH // STRIDE + 1)


#: the tile side, in scores, of one image scored on its own: its crops hold half the data of
#: a pair's, so larger tiles fit the caches as well (a 3 MP frame of the fast model: 0.86 s
#: against 1.01 s with tiles of 128, docs/speed.md)
FRAME_TILE = 256

#: the spectral (overlap-save DFT) head is used on the CPU when a tile has at least this
#: many scores; below that the direct convolution is as fast
SPECTRAL_MIN_SCORES = 32 * 32


def _compiled_features(model: FocusNet):
    """``torch.compile`` of the model's branch, made once per model and kept on it."""
    fn = model.__dict__.get("_compiled_features")
    if fn is None:
        fn = torch.compile(model.features)  # a tile size seen twice gets a dynamic kernel
        model.__dict__["_compiled_features"] = fn
    return fn


def _window_features(model: FocusNet, x: torch.Tensor, compile: bool,
                     window: tuple[int, int, int, int]) -> torch.Tensor:
    """The branch's features of ``x`` (through ``torch.compile`` if asked) cut to those under
    the ``window`` (first row, first column, rows, columns) of the scores: the convolutions
    need the whole crop (its margins are their padding), the layers after them only these."""
    if compile:
        try:
            feats = _compiled_features(model)(x)
        except Exception as exc:  # no C compiler, unsupported platform...
            raise CompileError(f"torch.compile failed ({type(exc).__name__}: "
                               f"{str(exc).splitlines()[0] if str(exc) else ''}); "
                               "run without --compile") from exc
    else:
        feats = model.features(x)
    oy, ox, ny, nx = window
    return feats[:, :, oy:oy + ny + PATCH // STRIDE - 1, ox:ox + nx + PATCH // STRIDE - 1]


def _dense_scores(model: FocusNet, x: torch.Tensor, bf16: bool, device_type: str,
                  spectral: bool, compile: bool, window: tuple[int, int, int, int]) -> torch.Tensor:
    """Softmax score of the first image for the ``window`` of the (h/2 − 7, w/2 − 7) scores
    of a (2, 1, h, w) pair tensor (:func:`_window_features`)."""
    with torch.autocast(device_type, dtype=torch.bfloat16, enabled=bf16):
        feats = _window_features(model, x, compile, window)
        ny, nx = window[2:]
        margin = model.dense_margin(feats, spectral=spectral and ny * nx >= SPECTRAL_MIN_SCORES)
    return torch.sigmoid(margin)  # the softmax of the two logits, for the first


def _frame_scores(model: FocusNet, x: torch.Tensor, bf16: bool, device_type: str,
                  spectral: bool, compile: bool, window: tuple[int, int, int, int]) -> torch.Tensor:
    """Per-frame focus scores (:meth:`FocusNet.dense_frame_score`) for the ``window`` of the
    scores of a (1, 1, h, w) image tensor, as :func:`_dense_scores` does for pairs."""
    with torch.autocast(device_type, dtype=torch.bfloat16, enabled=bf16):
        return model.dense_frame_score(_window_features(model, x, compile, window))


def _tiles(n_scores: int, tile: int, n_pixels: int):
    """(first score, end score, first input pixel, end input pixel) along one axis.

    Score i reads input pixels 2i − 4 .. 2i + 19; a tile of scores [i0, i1) therefore needs
    pixels [2·i0 − 4, 2·i1 + 18), clipped to the image (where the clipping reproduces the
    image border's zero padding exactly). The crop starts at an even pixel, so the 2×2
    pooling grid is the untiled one.
    """
    for i0 in range(0, n_scores, tile):
        i1 = min(i0 + tile, n_scores)
        yield i0, i1, max(STRIDE * i0 - MARGIN, 0), min(STRIDE * (i1 - 1) + PATCH + MARGIN, n_pixels)


@torch.inference_mode()
def score_map(model: FocusNet, a: np.ndarray, b: np.ndarray, *, precision: str = "auto",
              device: str = "auto", tile: int | None = None, head: str = "auto",
              compile: bool = False) -> np.ndarray:
    """Scores (ceil(H/2) − 7, ceil(W/2) − 7), float32 in [0, 1]: P(window of ``a`` in focus).

    ``a`` and ``b`` are gray images (H, W) in [0, 1] of the same shape, at least 16×16.
    ``tile``: score the image in tiles of ``tile``×``tile`` scores, which bounds the memory
    whatever the image size and gives exactly the untiled map; ``None`` tiles every image,
    in tiles of 256 scores with the spectral head (whole DFT tiles) and of 128 otherwise
    (faster than one pass, as a tile's feature maps stay in the caches), ``0`` never tiles.
    ``head``: how the 256-unit layer of the paper's network is applied: ``"direct"`` (an 8×8
    convolution), ``"fft"`` (overlap-save DFT by matrix products,
    :mod:`focusfuse.models.spectral`: in float32 the same scores to about 1e-5, in bfloat16
    close to the direct bfloat16 ones, several times faster on a CPU) or ``"auto"`` (fft on
    the CPU, direct on a GPU). ``compile``: run the convolutional branch through
    ``torch.compile`` (the first calls compile, which takes seconds to tens of seconds; it
    pays off over many images).
    """
    if a.ndim != 2 or a.shape != b.shape:
        raise ValueError(f"score_map needs two gray images of one shape; got {a.shape} and {b.shape}")
    return _tiled(model, (a, b), _dense_scores, precision=precision, device=device, tile=tile,
                  head=head, compile=compile)


@torch.inference_mode()
def frame_score_map(model: FocusNet, image: np.ndarray, *, precision: str = "auto",
                    device: str = "auto", tile: int | None = None,
                    compile: bool = False) -> np.ndarray:
    """Focus scores (ceil(H/2) − 7, ceil(W/2) − 7), float32, of one gray image on its own:
    one per 16×16 window at stride 2, higher where the window is sharper, comparable
    between frames of one scene (:meth:`FocusNet.dense_frame_score`). For the layouts
    without the 256-unit layer (``released``, ``fast``); options as :func:`score_map`.
    """
    if model.fc1 is not None:
        raise ValueError("frame_score_map needs a layout without the 256-unit layer "
                         "(released, fast); the paper layout scores pairs only")
    if image.ndim != 2:
        raise ValueError(f"frame_score_map needs a gray image; got shape {image.shape}")
    return _tiled(model, (image,), _frame_scores, precision=precision, device=device,
                  tile=FRAME_TILE if tile is None else tile, head="direct", compile=compile)


class _Plan:
    """How an image of ``shape`` is scored: the device, bfloat16 or not, the spectral head or
    not, the model placed there, and the tiles, largest first (see :func:`_tiled`)."""

    def __init__(self, model: FocusNet, shape: tuple[int, int], *, precision: str, device: str,
                 tile: int | None, head: str):
        if min(shape) < PATCH:
            raise ValueError(f"images must be at least {PATCH}×{PATCH} pixels; got {shape[1]}×{shape[0]}")
        if tile is not None and (not isinstance(tile, int) or tile < 0):
            raise ValueError(f"tile must be None, 0 or a positive number of scores; got {tile!r}")
        if head not in ("auto", "direct", "fft"):
            raise ValueError(f"head must be 'auto', 'direct' or 'fft'; got {head!r}")
        self.device = device = resolve_device(device)
        self.bf16 = resolve_precision(precision, device) == "bf16"
        self.spectral = model.fc1 is not None and (head == "fft" or (head == "auto" and device == "cpu"))
        self.device_type = device.split(":")[0]
        model = model.to(device).eval()
        if device == "cpu":
            model = model.to(memory_format=torch.channels_last)
        self.model = model
        H, W = shape
        self.shape = (H + 1) // 2 - (PATCH // STRIDE - 1), (W + 1) // 2 - (PATCH // STRIDE - 1)
        h, w = self.shape
        if tile is None:
            tile = SPECTRAL_TILE_SCORES if self.spectral else DEFAULT_TILE
        if tile == 0:
            tile = max(h, w)
        tiles = [(ty, tx) for ty in _tiles(h, tile, H) for tx in _tiles(w, tile, W)]
        # the largest crops first (inside the image; those at an edge lack a margin or are
        # cut short): each later tile then fits in the memory an earlier one freed
        tiles.sort(key=lambda t: -(t[0][3] - t[0][2]) * (t[1][3] - t[1][2]))
        self.tiles = tiles

    def crop(self, images: tuple, tile) -> torch.Tensor:
        """The (n, 1, h, w) input of ``tile`` of the n gray ``images``."""
        (_, _, y0, y1), (_, _, x0, x1) = tile
        x = torch.from_numpy(np.stack([im[y0:y1, x0:x1] for im in images]).astype(np.float32))
        x = x[:, None].to(self.device)
        return x.contiguous(memory_format=torch.channels_last) if self.device == "cpu" else x

    @staticmethod
    def window(tile) -> tuple[int, int, int, int]:
        """The scores of ``tile`` within its crop's features (:func:`_window_features`)."""
        (i0, i1, y0, _), (j0, j1, x0, _) = tile
        return i0 - y0 // STRIDE, j0 - x0 // STRIDE, i1 - i0, j1 - j0


def _tiled(model: FocusNet, images: tuple, scorer, *, precision: str, device: str,
           tile: int | None, head: str, compile: bool) -> np.ndarray:
    """``scorer`` over the score map of ``images`` (one or two gray images), tile by tile."""
    plan = _Plan(model, images[0].shape, precision=precision, device=device, tile=tile, head=head)
    out = np.empty(plan.shape, np.float32)
    for t in plan.tiles:
        s = scorer(plan.model, plan.crop(images, t), plan.bf16, plan.device_type, plan.spectral,
                   compile, plan.window(t))
        (i0, i1, _, _), (j0, j1, _, _) = t
        out[i0:i1, j0:j1] = s.cpu().numpy()
    return out


#: the most memory a :class:`ReferenceScorer` keeps for its reference (256 values per
#: score: a 3-megapixel image's reference takes 0.4 GB in bfloat16, 0.8 GB in float32)
REFERENCE_BYTES = 1 << 30


class ReferenceScorer:
    """Scores of gray images against one fixed ``reference`` with the paper layout:
    ``ReferenceScorer(model, reference, ...)(image)`` is ``score_map(model, image,
    reference, ...)`` to rounding (in float32 within 2e-5), each call at a little over half
    the cost of a pair (the reference's share is paid once, when the scorer is made).

    The 256-unit layer is linear up to its ReLU, so a pair's pre-activation is the first
    image's share plus the second's (:meth:`~focusfuse.models.FocusNet.hidden_part`): the
    reference's share is computed here once per tile and kept, 256 values per score
    (bfloat16 when the network runs in bfloat16, else float32); each image then costs one
    branch pass and its own share. ``budget``: the most bytes kept (None:
    :data:`REFERENCE_BYTES`); :attr:`fits` is False (and nothing is computed) when the
    reference needs more, so that the caller scores pairs instead. ``progress(done,
    total)``: after each tile of the reference. Other options as :func:`score_map`.
    """

    def __init__(self, model: FocusNet, reference: np.ndarray, *, precision: str = "auto",
                 device: str = "auto", tile: int | None = None, head: str = "auto",
                 compile: bool = False, budget: int | None = None, progress=None):
        if model.fc1 is None:
            raise ValueError("ReferenceScorer is for the paper layout (with the 256-unit "
                             "layer); score the frames of the others on their own (frame_score_map)")
        if reference.ndim != 2:
            raise ValueError(f"ReferenceScorer needs a gray reference; got shape {reference.shape}")
        self.plan = plan = _Plan(model, reference.shape, precision=precision, device=device,
                                 tile=tile, head=head)
        self.compile, self.image_shape = compile, reference.shape
        self.dtype = torch.bfloat16 if plan.bf16 else torch.float32
        h, w = plan.shape
        budget = REFERENCE_BYTES if budget is None else budget
        self.fits = h * w * model.hidden * self.dtype.itemsize <= budget
        self.parts: dict = {}
        self.kernel = None
        if not self.fits:
            return
        # the second image's spectrum is needed here only; the first's for every call
        kernel = plan.model.fc1_part_kernel(1) if plan.spectral else None
        with torch.inference_mode():
            for i, t in enumerate(plan.tiles):
                part = self._part(plan.crop((reference,), t), t, 1, kernel)
                # a copy of its own: the spectral head's output is a view of a padded buffer
                self.parts[t] = part.to(dtype=self.dtype, memory_format=torch.channels_last,
                                        copy=True)
                if progress:
                    progress(i + 1, len(plan.tiles))
        del kernel
        self.kernel = plan.model.fc1_part_kernel(0) if plan.spectral else None

    def _part(self, x: torch.Tensor, tile, which: int, kernel) -> torch.Tensor:
        plan = self.plan
        window = plan.window(tile)
        with torch.autocast(plan.device_type, dtype=torch.bfloat16, enabled=plan.bf16):
            feats = _window_features(plan.model, x, self.compile, window)
            spectral = kernel is not None and window[2] * window[3] >= SPECTRAL_MIN_SCORES
            return plan.model.hidden_part(feats, which, kernel=kernel if spectral else None)

    def __call__(self, image: np.ndarray) -> np.ndarray:
        if not self.fits:
            raise ValueError("the reference did not fit its budget; score pairs (score_map)")
        plan = self.plan
        if image.shape != self.image_shape:
            raise ValueError(f"need a gray image of the reference's shape {self.image_shape}; "
                             f"got shape {image.shape}")
        out = np.empty(plan.shape, np.float32)
        with torch.inference_mode():
            for t in plan.tiles:
                first = self._part(plan.crop((image,), t), t, 0, self.kernel)
                margin = plan.model.margin_from_parts(first, self.parts[t])
                (i0, i1, _, _), (j0, j1, _, _) = t
                out[i0:i1, j0:j1] = torch.sigmoid(margin).cpu().numpy()
        return out
