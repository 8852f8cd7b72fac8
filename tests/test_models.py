"""Tests of focusfuse.models: the registry, shapes, weight files, the authors' .mat layout."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from focusfuse.models import (MODELS, FocusNet, arch_of, create_model, default_weights_path,
                              load_matlab_weights, load_weights, save_weights)


def _pair(n: int, h: int, w: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 1, h, w, generator=g), torch.rand(n, 1, h, w, generator=g)


# smoke ---------------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(MODELS))
def test_create_model(name):
    model = create_model(name)
    assert isinstance(model, FocusNet)
    assert (model.fc1 is not None) == (name == "paper")


def test_the_released_layout_loads_the_authors_file_layout():
    # "released": no hidden layer, the 8×8×512 features straight to 2 outputs (the .mat)
    model = create_model("released")
    assert model.fc1 is None and model.fc2.weight.shape == (2, 512 * 8 * 8)


# shapes --------------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(MODELS))
def test_patch_logits_shape_and_finite(name):
    torch.manual_seed(0)
    model = create_model(name).eval()
    a, b = _pair(5, 16, 16)
    with torch.no_grad():
        logits = model(a, b)
    assert logits.shape == (5, 2)
    assert torch.isfinite(logits).all()


@pytest.mark.parametrize("name", sorted(MODELS))
@pytest.mark.parametrize("h,w", [(40, 37), (16, 16), (33, 50)])
def test_dense_logits_shape(name, h, w):
    torch.manual_seed(0)
    model = create_model(name).eval()
    a, b = _pair(2, h, w)
    with torch.no_grad():
        logits = model.dense_logits(a, b)
    # one score per 16×16 window at stride 2 (odd sizes padded at the end by the pooling)
    assert logits.shape == (2, 2, math.ceil(h / 2) - 7, math.ceil(w / 2) - 7)
    assert torch.isfinite(logits).all()


@pytest.mark.parametrize("name,spectral", [("paper", False), ("paper", True), ("released", False),
                                           ("fast", False)])
@pytest.mark.parametrize("h,w,crop", [(60, 54, False), (16, 40, False), (70, 50, True)])
def test_dense_margin_gives_the_softmax(name, spectral, h, w, crop):
    """sigmoid(l1 − l0) from the margin head is the softmax of the two dense logits, for
    channels-last features and for a window cut out of them (as score_map does)."""
    torch.manual_seed(0)
    model = create_model(name).eval().to(memory_format=torch.channels_last)
    a, b = _pair(1, h, w)
    with torch.no_grad():
        feats = model.features(torch.cat([a, b]).contiguous(memory_format=torch.channels_last))
        if crop:
            feats = feats[:, :, 2:-3, 1:-2]
        margin = model.dense_margin(feats, spectral=spectral)
        want = torch.softmax(model.dense_head(torch.cat([feats[:1], feats[1:]], dim=1)),
                             dim=1)[0, 1]
    assert margin.shape == want.shape and margin.dtype == torch.float32
    torch.testing.assert_close(torch.sigmoid(margin), want, rtol=0, atol=1e-5)


@pytest.mark.parametrize("name", ["paper", "fast"])
def test_dense_margin_under_bfloat16_autocast_is_close(name):
    torch.manual_seed(0)
    model = create_model(name).eval()
    a, b = _pair(1, 60, 54)
    with torch.no_grad():
        want = torch.sigmoid(model.dense_margin(model.features(torch.cat([a, b]))))
        with torch.autocast("cpu", dtype=torch.bfloat16):
            got = torch.sigmoid(model.dense_margin(model.features(torch.cat([a, b]))))
    assert got.dtype == torch.float32
    assert (got - want).abs().max() < 0.02


def test_dense_margin_needs_two_images():
    model = create_model("fast")
    with pytest.raises(ValueError, match="two images"):
        model.dense_margin(torch.zeros(3, 64, 20, 20))


@pytest.mark.parametrize("h,w", [(10, 12), (11, 12), (10, 13), (9, 7), (1, 1)])
def test_max_pool_for_inference_is_pytorchs(h, w):
    from focusfuse.models.focusnet import _max_pool2

    x = torch.randn(2, 3, h, w).contiguous(memory_format=torch.channels_last)
    want = torch.nn.functional.max_pool2d(x, 2, 2, ceil_mode=True)
    assert torch.equal(_max_pool2(x), want)  # gradients on, the input needs none
    with torch.no_grad():
        assert torch.equal(_max_pool2(x.bfloat16()), want.bfloat16())


def test_max_pool_in_training_has_pytorchs_gradient():
    from focusfuse.models.focusnet import _max_pool2

    # ties everywhere: PyTorch's pooling gives each window's gradient to one element, the
    # element-wise maxima would split it
    x = torch.zeros(1, 2, 6, 5, requires_grad=True)
    _max_pool2(x).sum().backward()
    got = x.grad.clone()
    x.grad = None
    torch.nn.functional.max_pool2d(x, 2, 2, ceil_mode=True).sum().backward()
    assert torch.equal(got, x.grad)


def test_parameter_counts():
    # paper: 3·3·(1·64 + 64·128 + 128·256) + (64 + 128 + 256) conv parameters,
    # fc1 512·8·8·256 + 256, fc2 256·2 + 2; released: fc2 512·8·8·2 + 2
    conv = 9 * (64 + 64 * 128 + 128 * 256) + 64 + 128 + 256
    n = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert n(create_model("paper")) == conv + 32768 * 256 + 256 + 256 * 2 + 2
    assert n(create_model("released")) == conv + 32768 * 2 + 2


# errors --------------------------------------------------------------------------------

def test_unknown_model_lists_names():
    with pytest.raises(ValueError, match="paper, released"):
        create_model("resnet")


def test_load_missing_weights_file(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        load_weights(tmp_path / "missing.safetensors")


@pytest.mark.parametrize("name", ["weights.safetensors", "weights.mat", "weights.txt"])
def test_load_non_weights_file(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(b"not a weights file at all\n" * 10)
    with pytest.raises(ValueError, match=name):
        load_weights(path)


def test_load_mat_without_model_variables(tmp_path):
    from scipy.io import savemat

    savemat(tmp_path / "other.mat", {"weights_b1_1": np.zeros((9, 64), np.float32)})
    with pytest.raises(ValueError, match="missing"):
        load_weights(tmp_path / "other.mat")


def test_load_safetensors_with_unknown_arch(tmp_path):
    path = save_weights(create_model("released"), tmp_path / "w.safetensors", arch="vgg")
    with pytest.raises(ValueError, match="no known architecture"):
        load_weights(path)


def test_load_safetensors_with_wrong_arch(tmp_path):
    # released weights labelled as the paper's layout do not fit
    path = save_weights(create_model("released"), tmp_path / "w.safetensors", arch="paper")
    with pytest.raises(ValueError, match="does not fit"):
        load_weights(path)


def test_load_default_weights_is_the_paper_model():
    model = load_weights(None)
    assert arch_of(model) == "paper"
    torch.testing.assert_close(model.state_dict(), load_weights("paper").state_dict())


def test_a_missing_shipped_model_is_named(monkeypatch, tmp_path):
    import focusfuse.models as models

    monkeypatch.setattr(models, "default_weights_path", lambda name="paper": tmp_path / "gone")
    with pytest.raises(ValueError, match="shipped model .*gone is missing; reinstall"):
        load_weights(None)


# invariants ----------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(MODELS))
def test_save_load_round_trip(tmp_path, name):
    torch.manual_seed(1)
    model = create_model(name).eval()
    with torch.no_grad():
        for p in model.parameters():  # non-zero biases too
            p.add_(0.01 * torch.randn_like(p))
    path = save_weights(model, tmp_path / "w.safetensors", arch=name, extra={"step": "7"})
    assert not list(tmp_path.glob("*.tmp"))

    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as fh:
        meta = fh.metadata()
    assert meta["arch"] == name and meta["format"] == "focusfuse" and meta["step"] == "7"

    loaded = load_weights(path)
    assert not loaded.training
    a, b = _pair(3, 16, 16)
    with torch.no_grad():
        assert torch.equal(model(a, b), loaded(a, b))
        assert torch.equal(model.dense_logits(*_pair(1, 30, 24)), loaded.dense_logits(*_pair(1, 30, 24)))


def test_swapping_inputs_changes_logits():
    # the network is siamese but the two branches land in different halves of the head
    torch.manual_seed(0)
    model = create_model("released").eval()
    a, b = _pair(4, 16, 16)
    with torch.no_grad():
        assert not torch.allclose(model(a, b), model(b, a))


# reference values: the authors' .mat layout ----------------------------------------------

@pytest.mark.shared
def test_mat_kernel_layout(mat_weights):
    from scipy.io import loadmat

    raw = loadmat(str(mat_weights))
    model = load_matlab_weights(mat_weights)
    assert model.fc1 is None  # the released layout
    w1 = model.conv1.weight.detach().numpy()  # (64, 1, 3, 3)
    w2 = model.conv2.weight.detach().numpy()  # (128, 64, 3, 3)
    w3 = model.conv3.weight.detach().numpy()  # (256, 128, 3, 3)
    wo = model.fc2.weight.detach().numpy().reshape(2, 512, 8, 8)
    # shared/README.md: kernel element (r, c) at index r + 3c (column-major), output (r, c)
    # at r + 8c; checked element by element against the raw loadmat arrays
    for (o, r, c) in [(0, 0, 1), (5, 2, 0), (63, 1, 2)]:
        assert w1[o, 0, r, c] == raw["weights_b1_1"][r + 3 * c, o]
    for (o, i, r, c) in [(3, 7, 0, 2), (127, 63, 2, 1), (10, 0, 1, 0)]:
        assert w2[o, i, r, c] == raw["weights_b1_2"][i, r + 3 * c, o]
    for (o, i, r, c) in [(200, 100, 2, 0), (0, 127, 0, 2)]:
        assert w3[o, i, r, c] == raw["weights_b1_3"][i, r + 3 * c, o]
    for (k, ch, r, c) in [(1, 300, 1, 6), (0, 0, 7, 0), (1, 511, 2, 5)]:
        assert wo[k, ch, r, c] == raw["weights_output"][ch, r + 8 * c, k]
    # the layouts are not symmetric: the transposed reading would differ
    assert not np.array_equal(w1[:, 0], w1[:, 0].transpose(0, 2, 1))
    # biases of the three conv layers are loaded; the authors add no output bias
    np.testing.assert_array_equal(model.conv1.bias.detach().numpy(), raw["biases_b1_1"].ravel())
    np.testing.assert_array_equal(model.conv2.bias.detach().numpy(), raw["biases_b1_2"].ravel())
    np.testing.assert_array_equal(model.conv3.bias.detach().numpy(), raw["biases_b1_3"].ravel())
    assert np.any(raw["biases_b1_1"] != 0)
    np.testing.assert_array_equal(model.fc2.bias.detach().numpy(), [0.0, 0.0])


@pytest.mark.shared
def test_mat_first_layer_against_numpy_correlation(mat_weights):
    # conv1 + ReLU computed by hand from the raw .mat arrays: a correlation with zero
    # padding 1, kernel element (r, c) at index r + 3c
    from scipy.io import loadmat

    raw = loadmat(str(mat_weights))
    model = load_weights(mat_weights)
    x = np.random.default_rng(0).random((9, 11)).astype(np.float32)
    padded = np.pad(x.astype(np.float64), 1)
    w = raw["weights_b1_1"].astype(np.float64)  # (9, 64)
    expected = np.zeros((64, 9, 11))
    for r in range(3):
        for c in range(3):
            expected += w[r + 3 * c][:, None, None] * padded[None, r:r + 9, c:c + 11]
    expected = np.maximum(expected + raw["biases_b1_1"].astype(np.float64).reshape(64, 1, 1), 0)
    with torch.no_grad():
        got = torch.relu(model.conv1(torch.from_numpy(x)[None, None]))[0].numpy()
    np.testing.assert_allclose(got, expected, atol=1e-5)


@pytest.mark.parametrize("name", ["paper", "fast"])
def test_shipped_models_load_by_name(name):
    from focusfuse.models import SHIPPED, load_weights

    from safetensors import safe_open

    path = default_weights_path(name)
    assert path.is_file() and path.parent.name == "weights"  # inside the package
    with safe_open(str(path), framework="pt") as fh:
        assert fh.metadata()["arch"] == name  # the file says what it is
    model = load_weights(name)
    assert arch_of(model) == name and name in SHIPPED
    x = torch.rand(3, 1, 16, 16)
    logits = model(x, x)
    assert logits.shape == (3, 2) and torch.isfinite(logits).all()


def test_fast_model_is_much_lighter_than_the_paper_model():
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(create_model("fast")) * 20 < count(create_model("paper"))


def test_layout_is_read_from_the_tensors(tmp_path):
    """A file whose metadata names an architecture of other widths (e.g. the 0.1 ``fast``
    model, 32-64-128) still loads, with the widths its tensors have."""
    from focusfuse.models import FocusNet, load_weights, save_weights

    model = FocusNet(hidden=None, widths=(32, 64, 128))
    path = save_weights(model, tmp_path / "old-fast.safetensors", arch="fast")
    loaded = load_weights(path)
    assert loaded.widths == (32, 64, 128) and loaded.fc1 is None
    assert arch_of(loaded) == "fast-wide"
    x = torch.rand(2, 1, 16, 16)
    torch.testing.assert_close(loaded(x, x), model.eval()(x, x))


# hostile and damaged weight files --------------------------------------------------------

@pytest.mark.parametrize("value", [math.nan, math.inf])
def test_non_finite_weights_are_refused_on_load(tmp_path, value):
    # before: all-NaN weights loaded, and fusion silently gave source B
    model = create_model("fast")
    with torch.no_grad():
        model.conv2.weight[0, 0, 1, 1] = value
    path = save_weights(model, tmp_path / "w.safetensors")
    with pytest.raises(ValueError, match=r"w.safetensors: layer conv2.weight holds 1 NaN or "
                                         r"infinite value\(s\) of 4608"):
        load_weights(path)


def test_non_finite_weights_are_refused_before_fusing(tmp_path):
    from focusfuse import fuse

    model = create_model("fast")
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(math.nan)
    path = save_weights(model, tmp_path / "nan.safetensors")
    image = np.random.default_rng(0).random((40, 40)).astype(np.float32)
    with pytest.raises(ValueError, match=r"nan.safetensors: layer conv1\.\w+ holds"):
        fuse([image, image], weights=path)


def test_non_finite_mat_weights_are_refused(tmp_path):
    from scipy.io import savemat

    w = {"weights_b1_1": np.zeros((9, 64)), "weights_b1_2": np.zeros((64, 9, 128)),
         "weights_b1_3": np.zeros((128, 9, 256)), "weights_output": np.zeros((512, 64, 2)),
         "biases_b1_1": np.zeros(64), "biases_b1_2": np.zeros(128),
         "biases_b1_3": np.full(256, np.nan)}
    savemat(tmp_path / "cnnmodel.mat", w)
    with pytest.raises(ValueError, match="cnnmodel.mat: layer conv3.bias holds 256 NaN"):
        load_weights(tmp_path / "cnnmodel.mat")


def test_wrong_shapes_are_one_line_naming_the_file_and_the_layer(tmp_path):
    # before: two lines of PyTorch's "Error(s) in loading state_dict" text
    from safetensors.torch import save_file

    tensors = {k: v.contiguous() for k, v in create_model("fast").state_dict().items()}
    tensors["conv2.weight"] = torch.zeros(32, 8, 3, 3)  # in-channels of another layout
    save_file(tensors, str(tmp_path / "w.safetensors"), metadata={"arch": "fast"})
    with pytest.raises(ValueError) as exc:
        load_weights(tmp_path / "w.safetensors")
    text = str(exc.value)
    assert "\n" not in text
    assert "w.safetensors does not fit the 'fast' model: layer conv2.weight has shape " \
           "(32, 8, 3, 3) in the file, the model's is (32, 16, 3, 3)" in text


def test_a_missing_or_extra_layer_is_named(tmp_path):
    from safetensors.torch import save_file

    tensors = {k: v.contiguous() for k, v in create_model("fast").state_dict().items()}
    save_file({k: v for k, v in tensors.items() if k != "conv3.bias"},
              str(tmp_path / "less.safetensors"), metadata={"arch": "fast"})
    save_file({**tensors, "conv4.weight": torch.zeros(3)}, str(tmp_path / "more.safetensors"),
              metadata={"arch": "fast"})
    with pytest.raises(ValueError, match="less.safetensors does not fit .*no layer conv3.bias"):
        load_weights(tmp_path / "less.safetensors")
    with pytest.raises(ValueError, match="more.safetensors does not fit .*a layer conv4.weight"):
        load_weights(tmp_path / "more.safetensors")


def test_an_unknown_name_lists_the_shipped_models():
    # before: "weights file fastest does not exist; check --weights" (a flag, in the API)
    from focusfuse.checks import OptionError

    with pytest.raises(OptionError, match=r"weights 'fastest' is neither a shipped model "
                                          r"\(paper, fast\) nor a file") as exc:
        load_weights("fastest")
    assert exc.value.option == "weights" and "--" not in str(exc.value)


def test_library_messages_name_no_command_line_flag(tmp_path, monkeypatch):
    import focusfuse.models as models

    messages = []
    for call in (lambda: load_weights(tmp_path / "missing.safetensors"),
                 lambda: load_weights(tmp_path)):
        with pytest.raises(ValueError) as exc:
            call()
        messages.append(str(exc.value))
    monkeypatch.setattr(models, "default_weights_path", lambda name="paper": tmp_path / "gone")
    with pytest.raises(ValueError) as exc:
        load_weights(None)
    messages.append(str(exc.value))
    assert not [m for m in messages if "--" in m], messages


def test_an_interrupted_save_leaves_no_temporary(tmp_path, monkeypatch):
    import safetensors.torch

    def interrupted(tensors, filename, metadata=None):
        with open(filename, "wb") as fh:
            fh.write(b"partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(safetensors.torch, "save_file", interrupted)
    with pytest.raises(KeyboardInterrupt):
        save_weights(create_model("fast"), tmp_path / "w.safetensors")
    assert list(tmp_path.iterdir()) == []
