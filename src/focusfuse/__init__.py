"""focusfuse: multi-focus image fusion.

The CNN method of Liu et al. 2017 (Information Fusion 36), wavelet and complex-wavelet
fusion, and the field's objective metrics.
"""

import os

# PyTorch's CPU allocator puts tensors of 2 MB and more on transparent huge pages when this
# is set, which spares most of the page faults of the network's large intermediates (the
# paper network scored a 520×520 pair in 0.67 s instead of 0.98 s). It must be set before torch
# allocates; a value the user set wins.
os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")

from focusfuse.fusion import METHODS, DecisionMaps, FusionResult, fuse  # noqa: E402
from focusfuse.io import read_image, write_image  # noqa: E402
from focusfuse.models import create_model, load_weights  # noqa: E402

__all__ = [
    "METHODS",
    "DecisionMaps",
    "FusionResult",
    "create_model",
    "fuse",
    "load_weights",
    "read_image",
    "write_image",
]
__version__ = "0.1.0"
