"""Shared fixtures: the ../shared data folder and small test images made on the fly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

REPO = Path(__file__).resolve().parents[1]
#: the read-only data folder beside the repository (absent on a user's fresh machine)
SHARED = REPO.parent / "shared"
MAT_WEIGHTS = SHARED / "data" / "weights" / "liu2016-cnnmodel.mat"


@pytest.fixture(scope="session")
def shared() -> Path:
    """The ../shared folder; the test is skipped when it is absent."""
    if not (SHARED / "data").is_dir():
        pytest.skip(f"needs the shared data folder {SHARED}; absent here")
    return SHARED


@pytest.fixture(scope="session")
def mat_weights() -> Path:
    """The authors' released weights (../shared/data/weights/liu2016-cnnmodel.mat)."""
    if not MAT_WEIGHTS.is_file():
        pytest.skip(f"needs the authors' weights {MAT_WEIGHTS} from the shared folder; absent here")
    return MAT_WEIGHTS


@pytest.fixture(scope="session")
def mat_model(mat_weights):
    """The authors' model, loaded once per session (do not train or modify it)."""
    from focusfuse.models import load_weights

    return load_weights(mat_weights)


@pytest.fixture(scope="session")
def shipped_model():
    """The model that ships inside the package (always present)."""
    from focusfuse.models import load_weights

    return load_weights()


@pytest.fixture(scope="session", params=["shipped", "authors"])
def any_model(request):
    """Each model in turn: the shipped one, then the authors' (skipped without ../shared)."""
    if request.param == "shipped":
        return request.getfixturevalue("shipped_model")
    return request.getfixturevalue("mat_model")


def texture(shape=(48, 48), seed: int = 0) -> np.ndarray:
    """A random texture in [0, 1] with structure at several scales (float32)."""
    rng = np.random.default_rng(seed)
    x = sum(ndimage.gaussian_filter(rng.random(shape), s) * s for s in (0.7, 1.5, 3.0))
    x = (x - x.min()) / (x.max() - x.min())
    return x.astype(np.float32)
