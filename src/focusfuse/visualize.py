"""What the network sees, and pictures of the maps: pure functions that return arrays in [0, 1].

Liu et al. 2017, Fig. 3 shows feature maps of each convolutional layer of the siamese
network for a source pair (a few channels of each layer; each channel displayed on its own
scale); Figs. 4 and 5 show the score, focus, binary and decision maps, which
:class:`focusfuse.fusion.DecisionMaps` already holds. This module computes the first and
lays images out in grids, for ``focusfuse fuse --save-steps`` and ``focusfuse bench``.

- :func:`feature_maps`: the ReLU outputs of conv1, conv2 (full resolution) and conv3 (half
  resolution, after the 2×2 max-pool) of one branch for each source;
- :func:`select_channels`: the channels that respond most (largest spread over the sources);
- :func:`normalise_channels`: each channel to [0, 1] over all sources together, so that the
  in-focus source's stronger response shows as brighter;
- :func:`feature_grid`: one picture per layer, a row per source and a column per channel;
- :func:`save_feature_maps`: those pictures as ``features-conv1.png`` .. in a folder;
- :func:`source_map`: for any fused image, where it is closer to source A than to B (an
  estimated decision map, for methods that have none, such as the wavelets or published images).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np

__all__ = ["FEATURES_MAX_SIDE", "LAYERS", "feature_grid", "feature_maps", "grid",
           "normalise_channels", "save_feature_maps", "select_channels", "source_map"]

#: the convolutional layers of FocusNet, in order
LAYERS = ("conv1", "conv2", "conv3")
#: feature maps of images larger than this (per side) are computed on the central crop
FEATURES_MAX_SIDE = 1024


def feature_maps(model, image: np.ndarray, *, layers: Sequence[str] = LAYERS,
                 channels: dict[str, Sequence[int]] | None = None) -> dict[str, np.ndarray]:
    """Activations of ``model``'s convolutional layers for one gray image.

    ``image``: (H, W) float in [0, 1] (convert colour with :func:`focusfuse.color.to_gray`).
    Returns ``{layer: (C, h, w) float32}``: conv1 and conv2 at (H, W), conv3 at
    (ceil(H/2), ceil(W/2)), after their ReLU, computed in float32 on the CPU.
    ``channels`` keeps only the listed channels of a layer (saves memory on large images).
    """
    import torch
    import torch.nn.functional as F

    image = np.asarray(image)
    if image.ndim != 2:
        raise ValueError(f"image must be a gray (H, W) array; got shape {image.shape}; "
                         "convert colour images with focusfuse.color.to_gray first")
    unknown = [name for name in layers if name not in LAYERS]
    if unknown:
        raise ValueError(f"layers must be names from {', '.join(LAYERS)}; got {unknown}")
    model = model.float().to("cpu").eval()
    out: dict[str, np.ndarray] = {}
    keep = channels or {}

    def take(name, x):
        if name in layers:
            sel = x[0] if name not in keep else x[0, list(keep[name])]
            out[name] = sel.numpy().astype(np.float32)

    with torch.inference_mode():
        x = torch.from_numpy(image.astype(np.float32))[None, None]
        x = F.relu(model.conv1(x))
        take("conv1", x)
        if "conv2" in layers or "conv3" in layers:
            x = F.relu(model.conv2(x))
            take("conv2", x)
        if "conv3" in layers:
            x = F.max_pool2d(x, 2, 2, ceil_mode=True)
            x = F.relu(model.conv3(x))
            take("conv3", x)
    return out


def select_channels(maps: Sequence[np.ndarray], k: int = 4) -> list[int]:
    """The ``k`` channels with the largest standard deviation over all of ``maps``.

    ``maps``: one (C, h, w) array per source (the same layer). Dead channels (all zero)
    come last; ties keep channel order. Returns sorted channel indices.
    """
    if k < 1:
        raise ValueError(f"k must be at least 1; got {k}")
    stacked = np.stack([np.asarray(m, dtype=np.float32) for m in maps])  # (S, C, h, w)
    spread = stacked.transpose(1, 0, 2, 3).reshape(stacked.shape[1], -1).std(axis=1)
    order = np.argsort(-spread, kind="stable")[:k]
    return sorted(int(c) for c in order)


def normalise_channels(maps: Sequence[np.ndarray], *, percentile: float = 99.5) -> list[np.ndarray]:
    """Each channel scaled to [0, 1] over all sources together: its minimum to 0, its
    ``percentile``-th percentile to 1 (larger values clipped; 100: the maximum). The
    percentile keeps a few strong responses from turning the rest of a ReLU map black.

    ``maps``: one (C, h, w) array per source. A constant channel becomes 0.
    """
    if not 0 < percentile <= 100:
        raise ValueError(f"percentile must be in (0, 100]; got {percentile}")
    stacked = np.stack([np.asarray(m, dtype=np.float64) for m in maps])
    lo = stacked.min(axis=(0, 2, 3), keepdims=True)
    per_channel = stacked.transpose(1, 0, 2, 3).reshape(stacked.shape[1], -1)
    hi = np.percentile(per_channel, percentile, axis=1)[None, :, None, None]
    scale = np.where(hi > lo, hi - lo, 1.0)
    scaled = np.clip((stacked - lo) / scale, 0.0, 1.0).astype(np.float32)
    return list(scaled)


def grid(tiles: Sequence[Sequence[np.ndarray]], *, gap: int = 2, fill: float = 1.0) -> np.ndarray:
    """Rows of equally sized (h, w) or (h, w, 3) tiles joined with ``gap`` pixels of ``fill``.

    Gray tiles in a grid with colour tiles are repeated over three channels.
    """
    rows = [list(r) for r in tiles]
    if not rows or not rows[0]:
        raise ValueError("tiles must be a non-empty list of non-empty rows")
    colour = any(np.asarray(t).ndim == 3 for r in rows for t in r)
    h, w = np.asarray(rows[0][0]).shape[:2]
    n_cols = max(len(r) for r in rows)
    shape = (len(rows) * h + (len(rows) - 1) * gap, n_cols * w + (n_cols - 1) * gap)
    out = np.full(shape + ((3,) if colour else ()), fill, np.float32)
    for i, row in enumerate(rows):
        for j, tile in enumerate(row):
            tile = np.asarray(tile, dtype=np.float32)
            if tile.shape[:2] != (h, w):
                raise ValueError(f"tiles must all be {h}×{w}; got {tile.shape[:2]} at row {i}, column {j}")
            if colour and tile.ndim == 2:
                tile = np.repeat(tile[..., None], 3, axis=2)
            y, x = i * (h + gap), j * (w + gap)
            out[y:y + h, x:x + w] = tile[..., :3] if colour else tile
    return out


def feature_grid(sources: Sequence[np.ndarray], model, *, k: int = 4,
                 layers: Sequence[str] = LAYERS, size: int | None = None
                 ) -> dict[str, tuple[np.ndarray, list[int]]]:
    """One picture per layer: a row per source, a column per selected channel, in [0, 1].

    ``sources``: gray (H, W) images in [0, 1]. The ``k`` channels of a layer are chosen by
    :func:`select_channels` over all sources and normalised together
    (:func:`normalise_channels`). ``size``: resize every tile to ``size`` pixels on its
    longer side (area averaging; None keeps the layer's resolution; conv3 is then half size).
    Returns ``{layer: (picture, channels)}``.
    """
    import cv2

    if len(sources) < 1:
        raise ValueError("sources must hold at least one gray image")
    per_source = [feature_maps(model, s, layers=layers) for s in sources]
    out = {}
    for layer in layers:
        maps = [f[layer] for f in per_source]
        chosen = select_channels(maps, k=min(k, maps[0].shape[0]))
        norm = normalise_channels([m[chosen] for m in maps])
        if size is None:
            h, w = maps[0].shape[1:]
        else:
            h0, w0 = maps[0].shape[1:]
            s = size / max(h0, w0)
            h, w = max(1, round(h0 * s)), max(1, round(w0 * s))

        def fit(t):
            if t.shape == (h, w):
                return t
            interp = cv2.INTER_AREA if t.shape[0] > h else cv2.INTER_NEAREST
            return cv2.resize(t, (w, h), interpolation=interp)

        out[layer] = (grid([[fit(t) for t in n] for n in norm]), chosen)
    return out


def save_feature_maps(sources: Sequence[np.ndarray], model, folder: str | os.PathLike, *,
                      channels: int = 4) -> tuple[list[Path], tuple[int, int] | None]:
    """Write ``features-conv1.png`` .. ``features-conv3.png`` in ``folder`` (created if
    needed): for each convolutional layer of ``model``, a row per source (colour sources are
    shown in gray) and the ``channels`` channels that vary most (:func:`feature_grid`).
    Sources larger than :data:`FEATURES_MAX_SIDE` on a side are cropped to their central
    square of that side (at an even offset, so the pooling grid stays the same). Returns
    the files and the crop's (width, height), None when uncropped."""
    from focusfuse.color import to_gray
    from focusfuse.io import write_image

    grays = [to_gray(s) for s in sources]
    h, w = grays[0].shape
    crop = None
    if max(h, w) > FEATURES_MAX_SIDE:
        ch, cw = min(h, FEATURES_MAX_SIDE), min(w, FEATURES_MAX_SIDE)
        y, x = (h - ch) // 2 // 2 * 2, (w - cw) // 2 // 2 * 2
        grays = [g[y:y + ch, x:x + cw] for g in grays]
        crop = (cw, ch)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for layer, (picture, _) in feature_grid(grays, model, k=channels).items():
        written.append(write_image(folder / f"features-{layer}.png", picture))
    return written, crop


def source_map(a: np.ndarray, b: np.ndarray, fused: np.ndarray, *, window: int = 7) -> np.ndarray:
    """Where ``fused`` is closer to ``a`` than to ``b``: (H, W) float in [0, 1].

    The weight of A that explains the fused image locally: e_B / (e_A + e_B), with e_X the
    mean of (F − X)² over ``window`` × ``window`` in gray. 1: F equals A there, 0: F equals
    B, 0.5 where A and B agree (flat or equally sharp regions). An estimate for methods
    without a decision map (wavelets, published images); for the CNN it follows the decision
    map D away from flat regions.
    """
    import cv2

    from focusfuse.color import to_gray

    ga, gb, gf = (to_gray(np.asarray(x, dtype=np.float64)) for x in (a, b, fused))
    if not ga.shape == gb.shape == gf.shape:
        raise ValueError(f"a, b and fused must have the same shape; got {ga.shape}, {gb.shape}, {gf.shape}")
    ea = cv2.blur((gf - ga) ** 2, (window, window), borderType=cv2.BORDER_REFLECT)
    eb = cv2.blur((gf - gb) ** 2, (window, window), borderType=cv2.BORDER_REFLECT)
    total = ea + eb
    tiny = total < 1e-8  # below (1e-4)² per pixel: A and B agree there
    return np.where(tiny, 0.5, eb / np.where(tiny, 1.0, total)).astype(np.float32)
