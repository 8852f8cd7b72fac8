"""The result of a fusion: the fused image and every intermediate map."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = ["DecisionMaps", "FusionResult"]


@dataclass
class DecisionMaps:
    """The maps of one two-image fusion step (the first image of the step is "A").

    - ``score``: (ceil(H/2) − 7, ceil(W/2) − 7) network scores, P(A's window in focus);
    - ``focus``: (H, W) mean of the scores covering each pixel;
    - ``binary``: focus > 0.5;
    - ``refined``: the binary map after small-region removal;
    - ``decision``: the guided-filtered weight of A, F = D·A + (1 − D)·B.
    Methods without some stage leave it ``None``.
    """

    decision: np.ndarray
    score: np.ndarray | None = None
    focus: np.ndarray | None = None
    binary: np.ndarray | None = None
    refined: np.ndarray | None = None

    def items(self):
        """(name, map) for the maps present, in pipeline order."""
        for name in ("score", "focus", "binary", "refined", "decision"):
            value = getattr(self, name)
            if value is not None:
                yield name, value


@dataclass
class FusionResult:
    """``fused`` (float32, the sources' shape, in [0, 1]) and one :class:`DecisionMaps` per
    step: one step for two images; for N images fused in series (``cnn-dtcwt``), N − 1
    steps (step k fuses the result so far with image k + 1); none for a stack fused with
    one decision over all frames, which gives ``depth_map`` instead."""

    fused: np.ndarray
    method: str
    steps: list[DecisionMaps] = field(default_factory=list)
    #: for a stack fused with one decision over all frames (three or more frames): the index
    #: of the frame each pixel was taken from, (H, W) int16, in the order the frames were
    #: given (None for pairs and for the multiscale methods)
    depth_map: np.ndarray | None = None
    #: the number of frames ``depth_map`` indexes
    n_frames: int | None = None

    @property
    def decision_map(self) -> np.ndarray | None:
        return self.steps[0].decision if self.steps else None

    @property
    def score_map(self) -> np.ndarray | None:
        return self.steps[0].score if self.steps else None

    @property
    def focus_map(self) -> np.ndarray | None:
        return self.steps[0].focus if self.steps else None

    @property
    def binary_map(self) -> np.ndarray | None:
        return self.steps[0].binary if self.steps else None

    @property
    def refined_map(self) -> np.ndarray | None:
        return self.steps[0].refined if self.steps else None

    def save(self, folder: str | os.PathLike) -> list[Path]:
        """Write every intermediate map as an 8-bit PNG in ``folder`` (created if needed):
        ``score.png``, ``focus.png``, ``binary.png``, ``refined.png``, ``decision.png``, each
        prefixed ``stepK-`` when the fusion had several steps; for a stack, ``depth.png``
        (the frame index spread over the range, 16 bit). Returns the files written."""
        from focusfuse.io import write_image

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        written = []
        for k, maps in enumerate(self.steps, 1):
            prefix = f"step{k}-" if len(self.steps) > 1 else ""
            for name, value in maps.items():
                written.append(write_image(folder / f"{prefix}{name}.png",
                                           np.clip(np.asarray(value, dtype=np.float64), 0, 1)))
        if self.depth_map is not None:
            written.append(self.save_depth(folder / "depth.png"))
        return written

    def save_depth(self, path: str | os.PathLike, *, raw: bool = False) -> Path:
        """Write ``depth_map`` as a PNG or TIFF: the frame index spread over the range (0
        the first frame, white the last; 16 bit), or with ``raw`` the index itself as the
        pixel value (8 bit, 16 bit beyond 256 frames)."""
        from focusfuse.io import write_image

        if self.depth_map is None:
            raise ValueError("this result has no depth map (it is not a stack's)")
        n = self.n_frames or int(self.depth_map.max()) + 1
        bits = 16 if n > 256 or not raw else 8
        scale = 1.0 / (255 if bits == 8 else 65535) if raw else 1.0 / max(n - 1, 1)
        return write_image(path, self.depth_map * scale, bit_depth=bits)
