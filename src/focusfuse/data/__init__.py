"""Training-pair synthesis for the focus classifier."""

from focusfuse.data.synthesis import PatchPairSampler, blur_cascade, list_images, make_pairs

__all__ = ["PatchPairSampler", "blur_cascade", "list_images", "make_pairs"]
