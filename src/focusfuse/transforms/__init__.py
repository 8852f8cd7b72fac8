"""Multiscale transforms written in the project: the 2-D dual-tree complex wavelet transform
and the Laplacian pyramid."""

from focusfuse.transforms.dtcwt import (
    BIORT_FILTERS,
    QSHIFT_FILTERS,
    Pyramid,
    dtcwt_forward,
    dtcwt_inverse,
)
from focusfuse.transforms.laplacian import laplacian_forward, laplacian_inverse

__all__ = [
    "BIORT_FILTERS",
    "Pyramid",
    "QSHIFT_FILTERS",
    "dtcwt_forward",
    "dtcwt_inverse",
    "laplacian_forward",
    "laplacian_inverse",
]
