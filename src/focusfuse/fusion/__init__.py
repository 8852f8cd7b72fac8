"""``fuse(images, *, method=..., **options)``: every fusion method behind one function.

The methods and their options are in :mod:`focusfuse.fusion.registry` and
:mod:`focusfuse.fusion.options`; each method's module says which paper it follows.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from focusfuse.fusion.registry import METHODS, Method, get_method, register
from focusfuse.fusion.result import DecisionMaps, FusionResult

__all__ = ["METHODS", "DecisionMaps", "FusionResult", "Method", "fuse", "get_method", "register"]


def fuse(images: Sequence[np.ndarray], *, method: str = "cnn", **options) -> FusionResult:
    """Fuse two or more sources of one scene focused at different depths.

    ``images``: float arrays in [0, 1], all (H, W) or all (H, W, C) with C = 1, 3 or 4 (an
    alpha channel is not scored and is blended like the others). ``method``: a name from
    :data:`METHODS`:

    - ``"cnn"``: Liu et al. 2017 (:class:`~focusfuse.fusion.options.CNNOptions`: ``weights``
      or an already loaded ``model``, ``min_region``, ``guided_radius``, ``guided_eps``,
      ``precision``, ``device``, ``compile``);
    - ``"dwt"``, ``"dtcwt"``, ``"laplacian"``: multiscale transforms with the rule of Li et
      al. 1995 (``levels``, ``consistency``; ``wavelet`` for the DWT, ``biort`` / ``qshift``
      for the DTCWT);
    - ``"cnn-dtcwt"``: the CNN's decision map weighs the DTCWT sub-bands (the CNN's options
      and ``levels``);
    - ``"learned-pyramid"``: focusfuse's own, the Laplacian pyramid's coefficients weighed
      by a small network trained against the all-in-focus truth of synthetic scenes
      (:mod:`focusfuse.fusion.learned`; ``weights``).

    An option the method does not take is a ``TypeError`` naming the methods that take it;
    a bad value a ``ValueError``, raised before any work is done.

    Returns a :class:`FusionResult`: the fused image (float32, clipped to [0, 1]) and the
    maps of each step; three or more images are fused with one decision over all of them
    (:mod:`focusfuse.fusion.stack`: no steps, a ``depth_map`` with ``cnn``), except by ``cnn-dtcwt``,
    which fuses them in series, one step per added image.
    """
    spec = get_method(method)
    return spec.run(images, spec.make_options(options))
