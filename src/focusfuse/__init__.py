"""focusfuse: multi-focus image fusion.

The CNN method of Liu et al. 2017 (Information Fusion 36), wavelet and complex-wavelet
fusion, and the field's objective metrics.
"""

from focusfuse.fusion import METHODS, DecisionMaps, FusionResult, fuse
from focusfuse.io import read_image, write_image
from focusfuse.models import create_model, load_weights

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
