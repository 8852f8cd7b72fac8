"""The training loop of the focus classifier (Liu et al. 2017, Section 3.2).

Paper settings, the defaults here: mini-batches of 128 pairs, softmax cross-entropy,
SGD with momentum 0.9 and weight decay 0.0005, Xavier initialisation with zero biases,
the learning rate divided by 10 when the validation loss stops improving. The paper's
base learning rate is 1e-4 (in Caffe); it is a setting here (``lr``) and the shipped
model's docs say which value it used and why.

A run lives in one folder: ``log.jsonl`` (one JSON object per evaluation),
``checkpoint.safetensors`` (weights, momentum buffers and the run state, replaced
atomically after every evaluation; a run started again on the same folder resumes from
it), ``state.json`` (a readable copy of the state), ``model.safetensors`` (the weights with
the best validation accuracy so far; ties broken by the accuracy on the lightest blur, then
by the lower validation loss) and, if asked, ``snapshots/`` (the weights of every
evaluation, float16).
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from focusfuse import checks
from focusfuse.data.synthesis import PatchPairSampler, list_images
from focusfuse.models import MODELS, create_model, save_weights
from focusfuse.device import PRECISIONS, resolve_precision

__all__ = ["TrainConfig", "TrainResult", "evaluate_pairs", "train"]


@dataclass
class TrainConfig:
    data: str
    out: str
    arch: str = "paper"
    steps: int = 20000
    batch_size: int = 128
    lr: float = 1e-4
    momentum: float = 0.9
    weight_decay: float = 5e-4
    lr_drop: float = 10.0
    patience: int = 3  # evaluations without a better validation loss before the drop
    min_lr: float = 1e-7
    eval_every: int = 500
    val_pairs: int = 20000
    hard_val_pairs: int = 10000  # a second held-out set with the lightest blur only; 0 = none
    keep_snapshots: bool = False  # also keep the weights of every evaluation (snapshots/)
    holdout_suffix: str | None = None  # e.g. ".png": those files are the validation images
    val_fraction: float = 0.15  # otherwise this share of the files, chosen by the seed
    blur_levels: int = 5
    blur_kernel: str = "gaussian"
    seed: int = 0
    precision: str = "auto"  # "bf16", "fp32" or "auto"
    threads: int | None = None

    def __post_init__(self) -> None:
        """Every setting checked when the config is made, before any work: a bad one is an
        :class:`~focusfuse.checks.OptionError` naming it (the command line names the flag)."""
        for name in ("steps", "batch_size", "eval_every", "val_pairs", "blur_levels", "patience"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise checks.OptionError(f"{name} must be at least 1; got {value!r}", name)
        checks.check_choice("arch", self.arch, list(MODELS))
        checks.check_choice("precision", self.precision, PRECISIONS)
        checks.check_choice("blur_kernel", self.blur_kernel, ["gaussian", "disk"])
        if not 0.0 < self.val_fraction < 1.0:
            raise checks.OptionError(f"val_fraction must be in (0, 1); got {self.val_fraction}",
                                     "val_fraction")
        if self.hard_val_pairs < 0:
            raise checks.OptionError(f"hard_val_pairs must be 0 (none) or more; got "
                                     f"{self.hard_val_pairs}", "hard_val_pairs")
        checks.check_positive("lr", self.lr)
        checks.check_fraction("momentum", self.momentum)
        if not self.weight_decay >= 0:
            raise checks.OptionError(f"weight_decay must be 0 or more; got {self.weight_decay}",
                                     "weight_decay")
        if self.threads is not None:
            checks.check_int("threads", self.threads, minimum=1)


@dataclass
class TrainResult:
    out: Path
    steps: int
    best_accuracy: float
    best_step: int
    seconds: float
    history: list[dict] = field(default_factory=list)


def split_files(cfg: TrainConfig) -> tuple[list[Path], list[Path]]:
    files = list_images(cfg.data)
    if cfg.holdout_suffix:
        suffix = cfg.holdout_suffix.lower()
        val = [f for f in files if f.suffix.lower() == suffix]
        train = [f for f in files if f.suffix.lower() != suffix]
    else:
        rng = np.random.default_rng(cfg.seed + 1)
        idx = rng.permutation(len(files))
        n_val = max(1, round(cfg.val_fraction * len(files)))
        val = [files[i] for i in sorted(idx[:n_val])]
        train = [files[i] for i in sorted(idx[n_val:])]
    if not train or not val:
        if cfg.holdout_suffix:
            raise checks.OptionError(
                f"holdout_suffix {cfg.holdout_suffix!r} leaves {len(train)} training and "
                f"{len(val)} validation images in {cfg.data}; choose a suffix that some but "
                "not all of the files have", "holdout_suffix")
        raise ValueError(f"{cfg.data}: need images for both training and validation; got "
                         f"{len(train)} and {len(val)}; add images")
    return train, val


def _tensor(x: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(x).unsqueeze(1).contiguous(memory_format=torch.channels_last)


@torch.no_grad()
def evaluate_pairs(model: torch.nn.Module, a: np.ndarray, b: np.ndarray, labels: np.ndarray,
                   *, bf16: bool = False, batch: int = 1000) -> tuple[float, float]:
    """Mean cross-entropy and accuracy of ``model`` on fixed pairs."""
    model.eval()
    loss_sum, correct = 0.0, 0
    for i in range(0, len(labels), batch):
        y = torch.from_numpy(labels[i:i + batch])
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits = model(_tensor(a[i:i + batch]), _tensor(b[i:i + batch])).float()
        loss_sum += F.cross_entropy(logits, y, reduction="sum").item()
        correct += (logits.argmax(1) == y).sum().item()
    model.train()
    return loss_sum / len(labels), correct / len(labels)


def _replace_atomically(tmp: Path, path: Path, write: Callable[[Path], None]) -> None:
    """``write(tmp)``, then rename it over ``path``; on any error, Ctrl-C or SIGTERM the
    temporary file is removed (after a SIGKILL the next run removes it:
    :func:`_remove_temporaries`)."""
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


#: the temporary files a run writes in its folder, each renamed into place when complete
_TEMPORARIES = ("checkpoint.tmp", "state.tmp", "log.tmp", "model.safetensors.tmp")


def _remove_temporaries(out: Path) -> None:
    """Temporary files left in a run folder by a killed run: never read, removed."""
    for name in _TEMPORARIES:
        (out / name).unlink(missing_ok=True)
    snapshots = out / "snapshots"
    if snapshots.is_dir():
        for tmp in snapshots.glob("*.safetensors.tmp"):
            tmp.unlink(missing_ok=True)


def _atomic_json(path: Path, obj: dict) -> None:
    _replace_atomically(path.with_suffix(".tmp"), path,
                        lambda tmp: tmp.write_text(json.dumps(obj, indent=1)))


def _save_checkpoint(out: Path, model, opt, state: dict) -> None:
    """Weights, momentum and run state in one file, replaced in one atomic rename.

    The state rides in the file's metadata, so weights and state can never come from two
    different steps; ``state.json`` is a readable copy that resuming does not read.
    """
    tensors = {f"model.{k}": v.detach().contiguous() for k, v in model.state_dict().items()}
    for i, p in enumerate(model.parameters()):
        buf = opt.state.get(p, {}).get("momentum_buffer")
        if buf is not None:
            tensors[f"momentum.{i}"] = buf.contiguous()
    _replace_atomically(out / "checkpoint.tmp", out / "checkpoint.safetensors",
                        lambda tmp: save_file(tensors, str(tmp), metadata={"state": json.dumps(state)}))
    _atomic_json(out / "state.json", state)


def _read_state(out: Path) -> dict | None:
    """The run state saved with the checkpoint in ``out``, or None when there is none."""
    path = out / "checkpoint.safetensors"
    if not path.is_file():
        return None
    try:
        with safe_open(str(path), "pt") as fh:
            meta = fh.metadata() or {}
        if "state" in meta:
            state = json.loads(meta["state"])
        else:
            state = json.loads((out / "state.json").read_text())  # checkpoints before 0.2
        state["config"], state["step"], state["rng"]  # what resuming reads
    except Exception as exc:
        text = " ".join(str(exc).split())[:160]
        raise ValueError(f"{path} is damaged ({type(exc).__name__}: {text}); use a new --out "
                         "folder, or remove the file to start the run again") from None
    return state


def _load_checkpoint(out: Path, model, opt) -> None:
    try:
        tensors = load_file(str(out / "checkpoint.safetensors"))
    except Exception as exc:
        text = " ".join(str(exc).split())[:160]
        raise ValueError(f"{out / 'checkpoint.safetensors'} is damaged ({text}); use a new "
                         "--out folder") from None
    try:
        model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    except RuntimeError:
        raise ValueError(
            f"{out}: the checkpoint's weights do not fit the {model.widths} layout of this "
            "architecture (a run of an older focusfuse?); use a new --out folder"
        ) from None
    for i, p in enumerate(model.parameters()):
        if f"momentum.{i}" in tensors:
            opt.state[p]["momentum_buffer"] = tensors[f"momentum.{i}"].clone()


def _trim_log(path: Path, step: int) -> None:
    """Drop log lines after ``step``: written by a run that stopped before its checkpoint."""
    if path.is_file():
        lines = [ln for ln in path.read_text().splitlines() if ln.strip()]
        kept = [ln for ln in lines if json.loads(ln)["step"] <= step]
        if len(kept) != len(lines):
            _replace_atomically(path.with_suffix(".tmp"), path,
                                lambda tmp: tmp.write_text("".join(ln + "\n" for ln in kept)))


# settings added after runs were made: the value that matches what those runs did
_ADDED_LATER = {"hard_val_pairs": 0}


def train(cfg: TrainConfig, *, progress: Callable[[str], None] | None = None) -> TrainResult:
    """Train (or resume) the classifier described by ``cfg``; returns a summary."""
    say = progress or (lambda s: print(s, file=sys.stderr, flush=True))
    # everything that can be refused is checked before any work and before OUT is made:
    # the settings (TrainConfig), the run folder, the data, a resumed run's settings and
    # checkpoint; then the blur cascades and validation pairs are built
    out = Path(cfg.out)
    checks.check_output_folder(out, "out")
    train_files, val_files = split_files(cfg)
    config_dict = asdict(cfg)
    saved = _read_state(out)
    if saved is not None:
        # settings that do not change the training itself may differ on resuming (the
        # lightest-blur set is drawn with its own seed and only measured)
        keep = ("data", "out", "steps", "threads", "eval_every", "keep_snapshots",
                "hard_val_pairs")
        changed = [k for k in config_dict if k not in keep
                   and saved["config"].get(k, _ADDED_LATER.get(k)) != config_dict[k]]
        if changed:
            raise ValueError(
                f"{out} holds a run with other settings ({', '.join(changed)}); "
                "use a new --out folder or the same settings to resume"
            )
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    bf16 = resolve_precision(cfg.precision, "cpu") == "bf16"  # training runs on the CPU
    model = create_model(cfg.arch).to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum,
                          weight_decay=cfg.weight_decay)
    rng = np.random.default_rng(cfg.seed)
    state = {"step": 0, "lr": cfg.lr, "best_loss": math.inf, "best_accuracy": 0.0,
             "best_step": 0, "bad_evals": 0, "seconds": 0.0, "config": config_dict}
    if saved is not None:
        _load_checkpoint(out, model, opt)
        state = saved
        rng.bit_generator.state = state["rng"]
    out.mkdir(parents=True, exist_ok=True)
    _remove_temporaries(out)
    if saved is not None:
        _trim_log(out / "log.jsonl", state["step"])

    say(f"data: {len(train_files)} training images, {len(val_files)} validation images "
        f"from {cfg.data}; precision {'bf16' if bf16 else 'fp32'}")
    t0 = time.perf_counter()
    sampler = PatchPairSampler.from_files(train_files, levels=cfg.blur_levels, kernel=cfg.blur_kernel)
    val_sampler = PatchPairSampler.from_files(val_files, levels=cfg.blur_levels,
                                              kernel=cfg.blur_kernel)
    va, vb, vy = val_sampler.sample(cfg.val_pairs, np.random.default_rng(cfg.seed + 2))
    hard = None
    if cfg.hard_val_pairs:  # the lightest blur only: does not saturate as early
        hard = val_sampler.sample(cfg.hard_val_pairs, np.random.default_rng(cfg.seed + 3), level=1)
    del val_sampler
    say(f"blur cascades and {cfg.val_pairs} + {cfg.hard_val_pairs} validation pairs ready in "
        f"{time.perf_counter() - t0:.0f} s")
    if saved is not None:
        say(f"resuming {out} at step {state['step']} (lr {state['lr']:g})")
    for g in opt.param_groups:
        g["lr"] = state["lr"]

    history = []
    log_path = out / "log.jsonl"
    t_start = time.perf_counter() - state["seconds"]
    running, n_running = 0.0, 0
    model.train()
    while state["step"] < cfg.steps:
        a, b, y = sampler.sample(cfg.batch_size, rng)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits = model(_tensor(a), _tensor(b)).float()
        loss = F.cross_entropy(logits, torch.from_numpy(y))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        state["step"] += 1
        running += loss.item()
        n_running += 1
        if not math.isfinite(loss.item()):
            raise FloatingPointError(f"training loss became {loss.item()} at step {state['step']}; "
                                     "lower --lr")
        if state["step"] % cfg.eval_every == 0 or state["step"] == cfg.steps:
            vloss, vacc = evaluate_pairs(model, va, vb, vy, bf16=bf16)
            hloss, hacc = evaluate_pairs(model, *hard, bf16=bf16) if hard else (math.nan, 0.0)
            state["seconds"] = time.perf_counter() - t_start
            rec = {"step": state["step"], "pairs_seen": state["step"] * cfg.batch_size,
                   "train_loss": running / n_running, "val_loss": vloss, "val_accuracy": vacc,
                   "lr": state["lr"], "seconds": round(state["seconds"], 1)}
            if hard:
                rec.update(hard_val_loss=hloss, hard_val_accuracy=hacc)
            running, n_running = 0.0, 0
            extra = {"val_accuracy": f"{vacc:.5f}", "step": str(state["step"]),
                     "val_pairs": str(cfg.val_pairs)}
            if hard:
                extra["hard_val_accuracy"] = f"{hacc:.5f}"
            # best: highest accuracy; ties (the main set saturates) broken by the accuracy on
            # the lightest blur, then by the lower validation loss
            # (states of runs made before the key have best_saved_loss instead)
            key = [vacc, hacc, -vloss]
            if key > state.get("best_key", [state["best_accuracy"], 0.0,
                                            -state.get("best_saved_loss", math.inf)]):
                state["best_accuracy"], state["best_step"] = vacc, state["step"]
                state["best_key"] = key
                save_weights(model, out / "model.safetensors", arch=cfg.arch, extra=extra)
            if cfg.keep_snapshots:
                (out / "snapshots").mkdir(exist_ok=True)
                save_weights(model, out / "snapshots" / f"step-{state['step']:06d}.safetensors",
                             arch=cfg.arch, extra=extra, dtype=torch.float16)
            if vloss < state["best_loss"] * (1 - 1e-3):
                state["best_loss"], state["bad_evals"] = vloss, 0
            else:
                state["bad_evals"] += 1
                if state["bad_evals"] >= cfg.patience and state["lr"] / cfg.lr_drop >= cfg.min_lr:
                    state["lr"] /= cfg.lr_drop
                    state["bad_evals"] = 0
                    for g in opt.param_groups:
                        g["lr"] = state["lr"]
                    rec["lr_dropped_to"] = state["lr"]
            with log_path.open("a") as fh:
                fh.write(json.dumps(rec) + "\n")
            history.append(rec)
            state["rng"] = rng.bit_generator.state
            _save_checkpoint(out, model, opt, state)
            rate = rec["pairs_seen"] / max(state["seconds"], 1e-9)
            hard_msg = f"  light-blur acc {100 * hacc:.2f}%" if hard else ""
            say(f"step {state['step']}/{cfg.steps}  train loss {rec['train_loss']:.4f}  "
                f"val loss {vloss:.4f}  val acc {100 * vacc:.3f}%{hard_msg}  lr {rec['lr']:g}  "
                f"{rate:.0f} pairs/s  {state['seconds'] / 60:.1f} min")
    return TrainResult(out, state["step"], state["best_accuracy"], state["best_step"],
                       state["seconds"], history)
