"""The method registry and the one entry point: every method through fuse(), its options
checked against the method's own declaration.

Ordered as elsewhere: every registered method (smoke, shapes, invariants), then errors.
The CNN methods run the shipped fast model, which always ships.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import fields

import numpy as np
import pytest

from conftest import texture
from focusfuse import METHODS, FusionResult, fuse
from focusfuse.checks import OptionError, UnknownOptionError
from focusfuse.fusion import register
from focusfuse.fusion.options import describe
from focusfuse.fusion.registry import option_owners


def _options(name: str) -> dict:
    return {"weights": "fast", "device": "cpu"} if METHODS[name].uses_network else {}


# every registered method ---------------------------------------------------------------

@pytest.mark.parametrize("name", list(METHODS))
@pytest.mark.parametrize("shape", [(40, 44), (40, 44, 1), (40, 44, 3), (40, 44, 4)])
def test_every_method_fuses_every_accepted_shape(name, shape):
    rng = np.random.default_rng(0)
    a, b = (rng.random(shape, dtype=np.float32) for _ in range(2))
    result = fuse([a, b], method=name, **_options(name))
    assert isinstance(result, FusionResult) and result.method == name
    assert result.fused.shape == shape and result.fused.dtype == np.float32
    assert np.isfinite(result.fused).all()
    assert 0.0 <= result.fused.min() and result.fused.max() <= 1.0


@pytest.mark.parametrize("name", list(METHODS))
def test_every_method_takes_nested_lists_as_arrays(name):
    # the same inputs for every method: anything np.asarray makes a float image
    a, b = texture((32, 32), seed=1), texture((32, 32), seed=2)
    as_lists = fuse([a.tolist(), b.tolist()], method=name, **_options(name)).fused
    np.testing.assert_array_equal(as_lists, fuse([a.astype(np.float64), b.astype(np.float64)],
                                                  method=name, **_options(name)).fused)


@pytest.mark.parametrize("name", list(METHODS))
def test_identical_sources_fuse_to_themselves(name):
    a = texture((48, 48), seed=3)
    np.testing.assert_allclose(fuse([a, a.copy()], method=name, **_options(name)).fused, a,
                               atol=2e-5)


@pytest.mark.parametrize("name", list(METHODS))
def test_every_option_has_a_default_and_a_help(name):
    for info in describe(METHODS[name].options):
        assert info.help and len(info.help) > 10
    METHODS[name].options()  # all defaults are valid values


def test_a_method_is_one_function_and_one_registration():
    def fuse_mean(images, options):
        return np.mean(images, axis=0)

    sys.modules[__name__].fuse_mean = fuse_mean
    register("test-mean", f"{__name__}:fuse_mean", "the mean of the sources")
    try:
        a, b = texture((16, 16), seed=1), texture((16, 16), seed=2)
        result = fuse([a, b], method="test-mean")
        assert result.method == "test-mean" and result.steps == []
        np.testing.assert_allclose(result.fused, (a + b) / 2)
        with pytest.raises(ValueError, match="registered already"):
            register("test-mean", f"{__name__}:fuse_mean", "")
    finally:
        del METHODS["test-mean"]


# errors --------------------------------------------------------------------------------

def test_an_option_of_another_method_is_a_type_error_naming_its_owners():
    a, b = texture(seed=1), texture(seed=2)
    with pytest.raises(TypeError, match=r"'dtcwt' takes no option 'guided_radius'; it is an "
                                        r"option of cnn, cnn-dtcwt"):
        fuse([a, b], method="dtcwt", guided_radius=3)
    with pytest.raises(UnknownOptionError) as exc:  # the case: it used to run
        fuse([a, b], method="dtcwt", guided_radius=3, weights="nope.mat")
    assert exc.value.option == "guided_radius" and exc.value.owners == ("cnn", "cnn-dtcwt")
    with pytest.raises(TypeError, match="'cnn' takes no option 'wavelet'; it is an option of dwt"):
        fuse([a, b], method="cnn", wavelet="db1")


def test_a_misspelt_option_is_named():
    with pytest.raises(TypeError, match="no option 'guided_raduis'; no method takes it"):
        fuse([texture(seed=1), texture(seed=2)], guided_raduis=3)


def test_model_and_weights_together_are_refused(shipped_model):
    a, b = texture(seed=1), texture(seed=2)
    with pytest.raises(ValueError, match="give model .* or weights .*, not both"):
        fuse([a, b], model=shipped_model, weights="fast")


def test_options_are_checked_before_the_images():
    # a bad option is named even when the images are bad too: nothing runs
    with pytest.raises(OptionError, match="guided_eps must be > 0"):
        fuse("not images", guided_eps=0)


def test_unknown_method():
    with pytest.raises(ValueError, match="unknown method 'cnn2'; choose one of cnn, cnn-dtcwt"):
        fuse([texture(seed=1), texture(seed=2)], method="cnn2")


def test_option_owners():
    assert option_owners("levels") == ["cnn-dtcwt", "dtcwt", "dwt", "laplacian"]
    assert option_owners("wavelet") == ["dwt"]
    assert option_owners("nope") == []


def test_multiscale_defaults_are_the_options_defaults():
    # the public per-method functions take the same options, declared once
    from focusfuse.fusion.multiscale import fuse_dwt

    a, b = texture(seed=1), texture(seed=2)
    np.testing.assert_array_equal(fuse_dwt([a, b]), fuse([a, b], method="dwt").fused)
    defaults = {f.name: f.default for f in fields(METHODS["dwt"].options)}
    np.testing.assert_array_equal(fuse_dwt([a, b], **defaults), fuse_dwt([a, b]))


LIGHT = """
import sys
from focusfuse.cli import main
for argv in (["--help"], ["fuse", "--help"]):
    try:
        main(argv)
    except SystemExit as exc:
        assert exc.code == 0
heavy = sorted(m for m in ("torch", "scipy", "pywt", "skimage") if m in sys.modules)
print(heavy, file=sys.stderr)
"""


def test_help_imports_neither_torch_nor_scipy():
    err = subprocess.run([sys.executable, "-c", LIGHT], capture_output=True, text=True,
                         check=True).stderr
    assert err.strip() == "[]"
