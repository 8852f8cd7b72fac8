"""Model registry: focus classifiers by name, and their weight files.

- ``"paper"``: the network as the paper's text describes it (a 256-unit fully connected
  layer before the 2 outputs); the architecture of the shipped model.
- ``"released"``: the layout of the authors' released MATLAB model (no 256-unit layer).
- ``"fast"``: the released layout at a quarter of the width (16, 32, 64 maps), for speed:
  about a sixteenth of the released layout's arithmetic in the convolutions;
- ``"fast-wide"``: the released layout at half the width (32, 64, 128 maps; the ``fast``
  model of focusfuse 0.1).
- ``"tiny"``: the released layout at an eighth of the width (8, 16, 32 maps); a trial that
  is not shipped (its fused results are measurably worse, docs/training.md).

Weights are safetensors files whose metadata names the architecture; the authors' MATLAB
``.mat`` file is read too (:func:`load_matlab_weights`). Nothing is downloaded.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from focusfuse.io import NEW_FILE_MODE
from focusfuse.models.focusnet import PATCH, STRIDE, FocusNet

__all__ = ["FocusNet", "PATCH", "STRIDE", "MODELS", "SHIPPED", "arch_of", "create_model",
           "default_weights_path", "load_matlab_weights", "load_weights", "save_weights",
           "write_safetensors"]

MODELS: dict[str, Callable[[], FocusNet]] = {
    "paper": lambda: FocusNet(hidden=256),
    "released": lambda: FocusNet(hidden=None),
    "fast": lambda: FocusNet(hidden=None, widths=(16, 32, 64)),
    "fast-wide": lambda: FocusNet(hidden=None, widths=(32, 64, 128)),
    "tiny": lambda: FocusNet(hidden=None, widths=(8, 16, 32)),
}

#: the shipped weights, inside the package, by model name (trained with ``focusfuse train``;
#: see docs/training.md)
SHIPPED = {
    "paper": "focusnet-paper.safetensors",
    "fast": "focusnet-fast.safetensors",
}


def create_model(name: str) -> FocusNet:
    """A freshly initialised model of the registered architecture ``name``."""
    try:
        return MODELS[name]()
    except KeyError:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(sorted(MODELS))}") from None


def default_weights_path(name: str = "paper") -> Path:
    """Where the shipped weights of model ``name`` are."""
    return Path(str(resources.files("focusfuse") / "weights" / SHIPPED[name]))


def arch_of(model: FocusNet) -> str:
    """The registry name of a model's architecture."""
    for name, make in MODELS.items():
        ref = make()
        if ref.hidden == model.hidden and ref.widths == model.widths:
            return name
    raise ValueError("this model's layout is not a registered architecture")


def save_weights(model: FocusNet, path: str | Path, *, arch: str | None = None,
                 extra: dict | None = None, dtype: torch.dtype = torch.float32) -> Path:
    """Save ``model`` as safetensors with its architecture name in the metadata.

    ``dtype=torch.float16`` halves the file; loading casts back to float32.
    """
    meta = {"format": "focusfuse", "arch": arch or arch_of(model), **(extra or {})}
    tensors = {k: v.detach().to(dtype).contiguous() for k, v in model.state_dict().items()}
    return write_safetensors(tensors, path, meta)


def write_safetensors(tensors: dict, path: str | Path, metadata: dict) -> Path:
    """Write ``tensors`` with ``metadata`` (str → str) to ``path`` in one step: a temporary
    file with the usual mode of a new file, renamed over ``path``; on an error, Ctrl-C or
    SIGTERM no half-written file is left."""
    from safetensors.torch import save_file

    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    try:
        save_file(tensors, str(tmp), metadata=metadata)
        os.chmod(tmp, NEW_FILE_MODE)  # not a temporary's 0600
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def load_matlab_weights(path: str | Path) -> FocusNet:
    """The authors' released model (``cnnmodel.mat``) in the ``"released"`` layout.

    Layout (see ../shared/README.md): ``weights_b1_1`` 9×64, ``weights_b1_2`` 64×9×128,
    ``weights_b1_3`` 128×9×256 with kernel element (r, c) at index r + 3c;
    ``weights_output`` 512×64×2 with element (r, c) at r + 8c. The authors' code adds no
    output bias, so none is loaded.
    """
    from scipy.io import loadmat

    try:
        mat = loadmat(str(path))
    except Exception as exc:
        raise ValueError(f"{path}: not a readable MATLAB weights file ({exc})") from None
    need = ["weights_b1_1", "weights_b1_2", "weights_b1_3", "weights_output",
            "biases_b1_1", "biases_b1_2", "biases_b1_3"]
    missing = [k for k in need if k not in mat]
    if missing:
        raise ValueError(f"{path}: not the authors' cnnmodel.mat (missing {', '.join(missing)})")

    def conv(w: np.ndarray, k: int) -> torch.Tensor:
        if w.ndim == 2:  # first layer: (k*k, out) with one input channel
            w = w[None]
        cin, kk, cout = w.shape
        w = w.reshape(cin, k, k, cout, order="F")  # index r + k*c -> (r, c)
        return torch.from_numpy(np.ascontiguousarray(w.transpose(3, 0, 1, 2))).float()

    model = FocusNet(hidden=None)
    sd = {
        "conv1.weight": conv(mat["weights_b1_1"], 3),
        "conv2.weight": conv(mat["weights_b1_2"], 3),
        "conv3.weight": conv(mat["weights_b1_3"], 3),
        "conv1.bias": torch.from_numpy(mat["biases_b1_1"].ravel()).float(),
        "conv2.bias": torch.from_numpy(mat["biases_b1_2"].ravel()).float(),
        "conv3.bias": torch.from_numpy(mat["biases_b1_3"].ravel()).float(),
        "fc2.weight": conv(mat["weights_output"], 8).reshape(2, -1),
        "fc2.bias": torch.zeros(2),
    }
    model.load_state_dict(sd)
    return model.eval()


def _check_finite(tensors: dict, path) -> None:
    """Every weight is a finite number: a NaN would make every score NaN, and the fusion
    silently the last source."""
    for name, t in tensors.items():
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            bad = int((~torch.isfinite(t)).sum())
            raise ValueError(f"weights file {path}: layer {name} holds {bad} NaN or infinite "
                             f"value(s) of {t.numel()}; the file is damaged or its training "
                             "diverged; use other weights")


def _check_layers(model: FocusNet, tensors: dict, path, arch: str) -> None:
    """The file's tensors are the model's layers, each of the model's shape: one line naming
    the file and the first layer that differs (instead of PyTorch's list)."""
    want = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    fit = f"weights file {path} does not fit the {arch!r} model"
    for name, shape in want.items():
        if name not in tensors:
            raise ValueError(f"{fit}: it has no layer {name}")
        got = tuple(tensors[name].shape)
        if got != shape:
            raise ValueError(f"{fit}: layer {name} has shape {got} in the file, the model's is "
                             f"{shape}")
    extra = sorted(set(tensors) - set(want))
    if extra:
        raise ValueError(f"{fit}: the file has a layer {extra[0]} that the model has not")


def _shipped_names() -> str:
    return ", ".join(SHIPPED)


def load_weights(path: str | Path | None = None) -> FocusNet:
    """A model with weights from a focusfuse safetensors file or the authors' ``.mat`` file.

    ``None`` loads the shipped model; a shipped model's name (``"paper"``, ``"fast"``) loads
    that one. A file that is missing, unreadable, of another layout or holding NaN or
    infinite weights is a ValueError naming the file (and the layer); a missing file or an
    unknown name is an :class:`~focusfuse.checks.OptionError` of ``weights``.
    """
    from focusfuse.checks import OptionError

    if path is None or (isinstance(path, str) and path in SHIPPED):
        path = default_weights_path(path or "paper")
        if not path.is_file():
            raise ValueError(f"the shipped model {path} is missing; reinstall focusfuse or "
                             "give a weights file")
    path = Path(path)
    if path.is_dir():
        raise OptionError(f"weights {str(path)!r} is a folder; give a .safetensors or .mat "
                          "file", "weights")
    if not path.is_file():
        looks_like_name = path.suffix == "" and len(path.parts) == 1
        if looks_like_name:
            raise OptionError(f"weights {str(path)!r} is neither a shipped model "
                              f"({_shipped_names()}) nor a file; use one of those names or "
                              "give a .safetensors or .mat file", "weights")
        raise OptionError(f"weights file {path} does not exist; check the path, or use a "
                          f"shipped model ({_shipped_names()})", "weights")
    if path.suffix.lower() == ".mat":
        model = load_matlab_weights(path)
        _check_finite(dict(model.state_dict()), path)
        return model
    if path.suffix.lower() != ".safetensors":
        raise ValueError(f"weights file {path}: expected a .safetensors or the authors' .mat file")
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as fh:
            meta = fh.metadata() or {}
            tensors = {k: fh.get_tensor(k) for k in fh.keys()}
    except Exception as exc:
        text = " ".join(str(exc).split())[:200]
        raise ValueError(f"weights file {path}: not a readable safetensors file ({text})") from None
    arch = meta.get("arch")
    if arch not in MODELS:
        raise ValueError(f"weights file {path}: metadata names no known architecture ({arch!r})")
    try:  # the layout is read from the tensors' shapes (widths changed between versions)
        widths = tuple(int(tensors[f"conv{i}.weight"].shape[0]) for i in (1, 2, 3))
        hidden = int(tensors["fc1.weight"].shape[0]) if "fc1.weight" in tensors else None
    except KeyError as exc:
        raise ValueError(f"weights file {path} does not fit the {arch!r} model: "
                         f"no tensor {exc}") from None
    except IndexError:
        raise ValueError(f"weights file {path} does not fit the {arch!r} model: a layer "
                         "without the dimensions of a convolution") from None
    if (hidden is not None) != (arch == "paper"):
        raise ValueError(f"weights file {path} does not fit the {arch!r} model: the file has "
                         f"{'a' if hidden else 'no'} hidden fully connected layer")
    if min(widths) < 1 or (hidden is not None and hidden < 1):
        raise ValueError(f"weights file {path} does not fit the {arch!r} model: a layer of "
                         "width 0")
    with torch.device("meta"):  # no random initialisation of weights about to be replaced
        model = FocusNet(hidden=hidden, widths=widths)
    _check_layers(model, tensors, path, arch)
    _check_finite(tensors, path)
    try:
        model.load_state_dict({k: v.float() for k, v in tensors.items()}, assign=True)
    except RuntimeError as exc:  # not expected after the checks above: one line all the same
        text = " ".join(str(exc).split())[:200]
        raise ValueError(f"weights file {path} does not fit the {arch!r} model: {text}") from None
    return model.eval()
