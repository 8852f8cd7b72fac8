"""The options of each fusion method family, declared once: name, default, meaning, source.

Each family is a frozen dataclass whose fields are the keyword options that
:func:`focusfuse.fuse` takes for its methods; building one checks every value
(:mod:`focusfuse.checks`). The command line makes its flags from these fields
(``guided_radius`` → ``--guided-radius``, with the field's help, type, choices and
default), so a new option is declared here and nowhere else.

Only NumPy and the checks are imported: ``focusfuse fuse --help`` reads these without
importing PyTorch, SciPy or OpenCV.
"""

from __future__ import annotations

from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from focusfuse import checks
from focusfuse.device import PRECISIONS

__all__ = ["CNNDTCWTOptions", "CNNOptions", "DTCWTOptions", "DWTOptions", "MultiscaleOptions",
           "NoOptions", "OptionInfo", "describe", "option"]


@dataclass(frozen=True)
class OptionInfo:
    """What the command line and the docs need to know of one option."""

    name: str
    default: Any
    help: str
    source: str | None
    type: type | None
    choices: tuple | None
    metavar: str | None
    cli: bool


def option(default, help: str, *, source: str | None = None, type: type | None = None,
           choices: tuple | None = None, metavar: str | None = None, cli: bool = True):
    """A dataclass field with its help text and, where it comes from a paper, the source."""
    return field(default=default, metadata={"help": help, "source": source, "type": type,
                                            "choices": choices, "metavar": metavar, "cli": cli})


def describe(options_class) -> list[OptionInfo]:
    """The options of a family, in declaration order."""
    out = []
    for f in fields(options_class):
        m = f.metadata
        out.append(OptionInfo(f.name, None if f.default is MISSING else f.default, m["help"],
                              m["source"], m["type"], m["choices"], m["metavar"], m["cli"]))
    return out


@dataclass(frozen=True)
class NoOptions:
    """A method without options."""


_LIU = "Liu et al. 2017, Information Fusion 36, Sec. 3.3"
#: the weight files the CNN methods read (focusfuse's and the authors')
WEIGHT_SUFFIXES = (".safetensors", ".mat")


def _levels():
    return option(5, "decomposition levels (5: chosen on synthetic pairs, docs/multiscale.md; "
                     "the survey's MST toolbox used 4)", type=int)


@dataclass(frozen=True)
class CNNOptions:
    """The CNN method (:mod:`focusfuse.fusion.cnn`): the classifier and the post-processing
    of its focus map."""

    weights: str | Path | None = option(
        None, "classifier weights: a shipped model by name (paper: the paper's network; fast: "
              "a narrower one, several times faster), a focusfuse .safetensors file or the "
              "authors' .mat file (default: paper)", type=str)
    model: Any = option(None, "an already loaded focusfuse.models.FocusNet, instead of weights",
                        cli=False)
    min_region: float = option(0.01, "small-region removal area, as a fraction of the image "
                                     "(0: off)", source=_LIU, type=float, metavar="FRACTION")
    guided_radius: int = option(8, "guided filter radius r", source=_LIU, type=int)
    guided_eps: float = option(0.1, "guided filter epsilon", source=_LIU, type=float)
    precision: str = option("auto", "network precision (auto: bf16 where the CPU or GPU has it)",
                            choices=PRECISIONS)
    device: str = option("auto", "where the network runs: auto, cpu, cuda or cuda:N", type=str)
    compile: bool = option(False, "torch.compile the network's convolutions (compiling takes "
                                  "tens of seconds; worth it for many images of one size)",
                           type=bool)

    def __post_init__(self):
        if self.model is not None and self.weights is not None:
            raise checks.OptionError("give model (a loaded network) or weights (a file or "
                                     "shipped name), not both", "weights")
        if self.weights is not None and not isinstance(self.weights, (str, Path)):
            raise TypeError(f"weights must be a file path or a shipped model's name; got "
                            f"{type(self.weights).__name__}; pass a loaded network as model=")
        if (self.weights is not None and Path(self.weights).suffix.lower() in WEIGHT_SUFFIXES
                and not Path(self.weights).is_file()):  # a file that is not there: say so now
            raise checks.OptionError(f"weights file {self.weights} does not exist; check the "
                                     "path", "weights")
        checks.check_fraction("min_region", self.min_region,
                              hint="a fraction of the image; 0 turns the step off")
        checks.check_int("guided_radius", self.guided_radius)
        checks.check_positive("guided_eps", self.guided_eps, hint="it keeps flat windows defined")
        checks.check_choice("precision", self.precision, PRECISIONS)
        checks.check_device("device", self.device)
        if not isinstance(self.compile, (bool, np.bool_)):
            raise TypeError(f"compile must be True or False; got {self.compile!r}")


@dataclass(frozen=True)
class MultiscaleOptions:
    """The multiscale rule (:mod:`focusfuse.fusion.multiscale`; Li, Manjunath, Mitra 1995):
    lowpass averaged, highpass by the windowed maximum of absolute values, majority check."""

    levels: int = _levels()
    consistency: int = option(3, "window of the choice rule and its majority check (1: off)",
                              source="Li, Manjunath, Mitra 1995, Graphical Models and Image "
                                     "Processing 57(3)", type=int)

    def __post_init__(self):
        checks.check_int("levels", self.levels, minimum=1, hint="use e.g. levels=4")
        checks.check_odd_window("consistency", self.consistency,
                                hint="use 3 as in Li et al. 1995")


@dataclass(frozen=True)
class DWTOptions(MultiscaleOptions):
    """:class:`MultiscaleOptions` and the wavelet of the 2-D DWT."""

    wavelet: str = option("bior4.4", "wavelet of the DWT, a PyWavelets name (bior4.4: CDF 9/7)",
                          source="Cohen, Daubechies, Feauveau 1992", type=str)

    def __post_init__(self):
        super().__post_init__()
        import pywt

        if not isinstance(self.wavelet, str) or self.wavelet not in pywt.wavelist(kind="discrete"):
            raise checks.OptionError(
                f"wavelet must be a PyWavelets discrete wavelet name such as 'db1', 'db4', "
                f"'sym4' or 'bior2.2'; got {self.wavelet!r}; see pywt.wavelist(kind='discrete')",
                "wavelet")


@dataclass(frozen=True)
class DTCWTOptions(MultiscaleOptions):
    """:class:`MultiscaleOptions` and the filters of the dual-tree complex wavelet transform."""

    biort: str = option("legall", "level-1 biorthogonal filters", source="Kingsbury 2001; the "
                        "MST toolbox's setting", cli=False)
    qshift: str = option("qshift_06", "Q-shift filters of the levels above", source="Kingsbury "
                         "2000; the MST toolbox's setting", cli=False)

    def __post_init__(self):
        super().__post_init__()
        from focusfuse.transforms.dtcwt import BIORT_FILTERS, QSHIFT_FILTERS

        checks.check_choice("biort", self.biort, BIORT_FILTERS)
        checks.check_choice("qshift", self.qshift, QSHIFT_FILTERS)


@dataclass(frozen=True)
class CNNDTCWTOptions(CNNOptions):
    """:class:`CNNOptions` and the levels of the DTCWT whose bands the decision map weighs."""

    levels: int = _levels()

    def __post_init__(self):
        super().__post_init__()
        checks.check_int("levels", self.levels, minimum=1, hint="use e.g. levels=4")


#: the weights of learned-pyramid shipped with focusfuse (in focusfuse/weights)
BANDNET_WEIGHTS = "bandnet.safetensors"


@dataclass(frozen=True)
class LearnedPyramidOptions:
    """The learned-pyramid method (:mod:`focusfuse.fusion.learned`): its network."""

    weights: str | Path | None = option(
        None, "learned-pyramid: a BandNet .safetensors file from focusfuse train --arch bandnet "
              "(default: the shipped one)", type=str)

    def __post_init__(self):
        if self.weights is not None and not isinstance(self.weights, (str, Path)):
            raise TypeError(f"weights must be a file path; got {type(self.weights).__name__}")
        if self.weights is not None and not Path(self.weights).is_file():
            raise checks.OptionError(f"weights file {self.weights} does not exist; give a BandNet "
                                     ".safetensors file from focusfuse train --arch bandnet",
                                     "weights")
