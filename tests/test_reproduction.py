"""The pipeline with the authors' released weights reproduces the authors' fused images.

Liu et al. released their trained model (../shared/data/weights/liu2016-cnnmodel.mat) and
the Liu et al. 2020 survey published the fused Lytro images that their MATLAB code made
(../shared/data/reference/liu2020-survey/lytro/cnn/). Loading the weights into focusfuse and
fusing the 20 Lytro pairs in fp32 must give the same images up to small numerical
differences: measured here, the mean absolute difference (gray levels of 0..255) has a
median of 0.018 over the pairs and a maximum of 0.195 (pair-to-pair variation comes from
pixels near the 0.5 threshold whose binary decision flips).
"""

from __future__ import annotations

import numpy as np
import pytest

from conftest import SHARED
from focusfuse import fuse
from focusfuse.io import read_image

LYTRO = SHARED / "data" / "lytro" / "pairs"
REFERENCE = SHARED / "data" / "reference" / "liu2020-survey" / "lytro" / "cnn"

pytestmark = [pytest.mark.shared, pytest.mark.slow]


def test_lytro_pairs_match_the_authors_results(mat_model):
    if not (LYTRO.is_dir() and REFERENCE.is_dir()):
        pytest.skip(f"needs {LYTRO} and {REFERENCE} from the shared data folder; absent here")
    mad = {}
    for k in range(1, 21):
        a = read_image(LYTRO / f"lytro-{k:02d}-A.jpg")
        b = read_image(LYTRO / f"lytro-{k:02d}-B.jpg")
        fused = fuse([a, b], model=mat_model, precision="fp32", device="cpu").fused
        ours = np.floor(np.clip(fused.astype(np.float64), 0, 1) * 255 + 0.5)  # as write_image
        ref = np.round(read_image(REFERENCE / f"lytro-{k:02d}.png").astype(np.float64) * 255)
        assert ours.shape == ref.shape, f"lytro-{k:02d}: {ours.shape} vs {ref.shape}"
        mad[k] = float(np.abs(ours - ref).mean())
    table = ", ".join(f"{k:02d}: {v:.3f}" for k, v in mad.items())
    values = np.array(list(mad.values()))
    assert np.median(values) <= 0.05, f"mean absolute differences (gray levels): {table}"
    assert values.max() <= 0.3, f"mean absolute differences (gray levels): {table}"
