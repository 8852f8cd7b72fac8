"""Training BandNet (``learned-pyramid``) against the all-in-focus truth of synthetic stacks.

The scenes are rendered from sharp natural images by the generator of
:mod:`focusfuse.data.stacks` (depth edges on image edges, disk blur composited back to
front, exposure gain and sensor noise): half of them as two-source pairs with every segment
on one of the two focus planes (:func:`focusfuse.bench.truth.make_truth_pair`), half as
``frames``-frame stacks with depths spread over the range; the variants ``clean`` and
``noisy`` alternate. A step takes ``batch_size`` random ``crop``² crops of scenes of one
kind, the stacks cut to a random subset of 2 to ``frames`` of their frames (the same
scene focused more coarsely), fuses them through the differentiable pyramid of
:mod:`focusfuse.models.bandnet` and minimises the mean squared error to the truth (gray,
8 pixels in from the crop's edge). Adam, its learning rate divided by 10 after
``lr_drop_at`` of the steps.

Images whose suffix is ``holdout_suffix`` (``.png``: BSDS500's 68 test images, the
ground-truth benchmark's) are never used; of the rest, ``val_fraction`` (chosen by the
seed) make the validation scenes, on which the model is scored every ``eval_every`` steps:
the PSNR of whole fused scenes against their truth. ``model.safetensors`` keeps the best.

A run lives in one folder: ``config.json`` (the settings), ``log.jsonl`` (one JSON object
per evaluation: step, training loss, validation PSNR, learning rate, seconds),
``checkpoint.safetensors`` (weights, Adam's state and, in its metadata, the step, the best
score and the data generator's state, replaced in one step after every evaluation; a run
started again on the same folder resumes from it, and goes on as the uninterrupted run
would have, bit for bit: tested), ``state.json`` (a readable copy of that state) and
``model.safetensors`` (the best validation PSNR so far). Raising ``steps`` when resuming
moves the learning-rate drop with it.
"""

from __future__ import annotations

import json
import math
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from focusfuse import checks
from focusfuse.models.bandnet import BandNet, collapse, energies, pyramid, save_bandnet
from focusfuse.train.loop import _atomic_json, _trim_log

__all__ = ["BandTrainConfig", "BandTrainResult", "fuse_tensors", "train_bands"]

_MARGIN = 8


@dataclass
class BandTrainConfig:
    data: str
    out: str
    steps: int = 2000
    batch_size: int = 8
    crop: int = 128
    lr: float = 3e-3
    lr_drop_at: float = 0.75  # the learning rate is divided by 10 after this share of the steps
    scenes: int = 160  # training scenes (half pairs, half stacks)
    frames: int = 8  # frames of the stack scenes
    eval_every: int = 250
    holdout_suffix: str | None = ".png"
    val_fraction: float = 0.15
    val_scenes: int = 16
    width: int = 16
    seed: int = 0
    threads: int | None = None

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "eval_every", "val_scenes", "width"):
            checks.check_int(name, getattr(self, name), minimum=1)
        checks.check_int("scenes", self.scenes, minimum=2,
                         hint="half are pairs, half stacks, so at least one of each")
        checks.check_int("crop", self.crop, minimum=64)
        checks.check_int("frames", self.frames, minimum=2)
        if not 0.0 < self.val_fraction < 1.0:
            raise checks.OptionError(f"val_fraction must be in (0, 1); got {self.val_fraction}",
                                     "val_fraction")
        if not 0.0 < self.lr_drop_at <= 1.0:
            raise checks.OptionError(f"lr_drop_at must be in (0, 1]; got {self.lr_drop_at}",
                                     "lr_drop_at")
        if not (isinstance(self.lr, (int, float)) and self.lr > 0):
            raise checks.OptionError(f"lr must be positive; got {self.lr!r}", "lr")
        if self.threads is not None:
            checks.check_int("threads", self.threads, minimum=1)


@dataclass
class BandTrainResult:
    out: Path
    steps: int
    best_psnr: float
    best_step: int
    seconds: float


def fuse_tensors(model: BandNet, frames: torch.Tensor) -> torch.Tensor:
    """Fuse (B, N, 1, H, W) gray frames into (B, 1, H, W), differentiably."""
    b, n = frames.shape[:2]
    levels = model.levels
    bands = pyramid(frames.flatten(0, 1), levels)
    fused = []
    for k, band in enumerate(bands):
        own = energies(band, top=k == levels).unflatten(0, (b, n))
        mean, peak = own.mean(1, keepdim=True), own.amax(1, keepdim=True)
        logits = torch.stack([model(own[j], mean[j], peak[j], model.slot(k, levels))
                              for j in range(b)])  # (B, N, 1, h, w)
        w = torch.softmax(logits, dim=1)
        fused.append((w * band.unflatten(0, (b, n))).sum(1))
    return collapse(fused)


def _gray(x: np.ndarray) -> np.ndarray:
    from focusfuse.color import to_gray

    return (to_gray(x) if x.ndim == 3 else x).astype(np.float32)


def _render(files: list[Path], count: int, frames: int, seed: int, crop: int,
            report=None) -> list[dict]:
    """``count`` scenes (gray): pairs and ``frames``-frame stacks alternating, the variants
    clean and noisy alternating in each kind. An image smaller than ``crop`` is an
    OptionError naming it."""
    from focusfuse.bench.truth import make_truth_pair
    from focusfuse.data.stacks import make_stack
    from focusfuse.io import read_image

    rng = np.random.default_rng(seed)
    scenes = []
    for i in range(count):
        path = files[rng.integers(len(files))]
        sharp = read_image(path)
        sharp = sharp[..., :3] if sharp.ndim == 3 and sharp.shape[2] == 4 else sharp
        if min(sharp.shape[:2]) < crop:
            raise checks.OptionError(f"{path.name} is {sharp.shape[1]}×{sharp.shape[0]}, smaller "
                                     f"than the {crop}-pixel crops; give a smaller --crop or "
                                     "larger images", "crop")
        variant = ("clean", "noisy")[(i // 2) % 2]
        scene_seed = int(rng.integers(2**31))
        if i % 2 == 0:
            pair = make_truth_pair(sharp, seed=scene_seed, variant=variant)
            stack, truth = [pair.a, pair.b], pair.truth
        else:
            made = make_stack(sharp, frames=frames, seed=scene_seed, variant=variant)
            stack, truth = made.frames, made.truth
        scenes.append({"frames": np.stack([_gray(f) for f in stack]), "truth": _gray(truth)})
        if report:
            report(i + 1, count)
    return scenes


def _batch(scenes: list[dict], kind: int, cfg: BandTrainConfig, rng) -> tuple:
    pool = [s for i, s in enumerate(scenes) if i % 2 == kind]
    n = 2 if kind == 0 else int(rng.integers(2, cfg.frames + 1))
    xs, ts = [], []
    for _ in range(cfg.batch_size):
        s = pool[rng.integers(len(pool))]
        k, h, w = s["frames"].shape
        pick = np.arange(k) if n == k else np.sort(rng.choice(k, n, replace=False))
        y, x = rng.integers(0, h - cfg.crop + 1), rng.integers(0, w - cfg.crop + 1)
        cut = (slice(y, y + cfg.crop), slice(x, x + cfg.crop))
        xs.append(s["frames"][pick][:, cut[0], cut[1]])
        ts.append(s["truth"][cut])
    frames = torch.from_numpy(np.stack(xs))[:, :, None]
    return frames, torch.from_numpy(np.stack(ts))[:, None]


def _loss(model: BandNet, frames: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    m = _MARGIN
    return F.mse_loss(fuse_tensors(model, frames)[..., m:-m, m:-m], truth[..., m:-m, m:-m])


@torch.no_grad()
def _validate(model: BandNet, scenes: list[dict]) -> float:
    """Mean PSNR (dB) of the whole fused scenes against their truth."""
    values = []
    for s in scenes:
        fused = fuse_tensors(model, torch.from_numpy(s["frames"])[None, :, None])[0, 0]
        err = F.mse_loss(fused.clamp(0, 1)[_MARGIN:-_MARGIN, _MARGIN:-_MARGIN],
                         torch.from_numpy(s["truth"])[_MARGIN:-_MARGIN, _MARGIN:-_MARGIN])
        values.append(-10.0 * math.log10(max(err.item(), 1e-12)))
    return float(np.mean(values))


def _split(cfg: BandTrainConfig) -> tuple[list[Path], list[Path]]:
    from focusfuse.data.synthesis import list_images

    files = list_images(cfg.data)
    if cfg.holdout_suffix:
        files = [p for p in files if p.suffix.lower() != cfg.holdout_suffix.lower()]
    if len(files) < 4:
        raise checks.OptionError(f"{cfg.data} has {len(files)} usable images (those ending in "
                                 f"{cfg.holdout_suffix} are never trained on); give at least 4",
                                 "data")
    rng = np.random.default_rng(cfg.seed)
    order = rng.permutation(len(files))
    n_val = max(1, int(round(cfg.val_fraction * len(files))))
    return [files[i] for i in sorted(order[n_val:])], [files[i] for i in sorted(order[:n_val])]


def _progress(label: str):
    def report(done: int, total: int) -> None:
        if done == total or done % 20 == 0:
            print(f"{label}: {done}/{total}", file=sys.stderr, flush=True)
    return report


def train_bands(cfg: BandTrainConfig) -> BandTrainResult:
    """Train (or resume) a BandNet run in ``cfg.out``; see the module's notes."""
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    config_file = out / "config.json"
    ckpt = out / "checkpoint.safetensors"
    settings = asdict(cfg)
    if ckpt.is_file() and config_file.is_file():  # a run to resume: the same settings
        before = json.loads(config_file.read_text())
        changed = sorted(k for k in settings if k not in ("out", "steps", "threads")
                         and before.get(k) != settings[k])
        if changed:
            raise checks.OptionError(f"{out} holds a run with other settings ({', '.join(changed)}"
                                     "); give a new --out or the same settings", "out")
    train_files, val_files = _split(cfg)
    torch.manual_seed(cfg.seed)
    model = BandNet(width=cfg.width)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    step, best, best_step, spent = 0, -math.inf, 0, 0.0
    rng = np.random.default_rng([cfg.seed, 0])
    if ckpt.is_file():
        state = _load_checkpoint(ckpt, model, opt, cfg.lr)
        step, best, best_step, spent = (state["step"], state["best_psnr"], state["best_step"],
                                        state["seconds"])
        rng.bit_generator.state = state["rng"]
        _trim_log(out / "log.jsonl", step)
        print(f"resuming at step {step}", file=sys.stderr, flush=True)
    _atomic_json(config_file, settings)
    t0 = time.perf_counter()
    scenes = _render(train_files, cfg.scenes, cfg.frames, cfg.seed, cfg.crop,
                     _progress("training scenes"))
    val = _render(val_files, cfg.val_scenes, cfg.frames, cfg.seed + 1, cfg.crop,
                  _progress("validation"))
    print(f"rendered {len(scenes)} training and {len(val)} validation scenes in "
          f"{time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)

    t_start = time.perf_counter() - spent
    losses = []
    while step < cfg.steps:
        lr = cfg.lr if step < cfg.lr_drop_at * cfg.steps else cfg.lr / 10
        for group in opt.param_groups:
            group["lr"] = lr
        frames, truth = _batch(scenes, step % 2, cfg, rng)
        loss = _loss(model, frames, truth)
        opt.zero_grad()
        loss.backward()
        opt.step()
        step += 1
        losses.append(loss.item())
        if step % cfg.eval_every == 0 or step == cfg.steps:
            psnr = _validate(model, val)
            if psnr > best:
                best, best_step = psnr, step
                save_bandnet(model, out / "model.safetensors", {"step": step})
            seconds = time.perf_counter() - t_start
            row = {"step": step, "train_loss": float(np.mean(losses)),
                   "train_psnr": float(-10 * np.log10(np.mean(losses))), "val_psnr": psnr,
                   "best_step": best_step, "lr": lr, "seconds": round(seconds, 1)}
            losses = []
            state = {"step": step, "best_psnr": best, "best_step": best_step,
                     "seconds": seconds, "rng": rng.bit_generator.state}
            _save_checkpoint(ckpt, model, opt, state)  # first: a log row means a checkpoint
            _atomic_json(out / "state.json", state)  # a readable copy
            with open(out / "log.jsonl", "a") as fh:
                fh.write(json.dumps(row) + "\n")
            print(json.dumps(row), file=sys.stderr, flush=True)
    return BandTrainResult(out, step, best, best_step, time.perf_counter() - t_start)


def _save_checkpoint(path: Path, model: BandNet, opt, state: dict) -> None:
    """Weights, Adam's moments and the run's state (in the file's metadata), in one step."""
    from focusfuse.models import write_safetensors

    tensors = {f"model.{k}": v.contiguous() for k, v in model.state_dict().items()}
    tensors.update(_flatten_adam(opt))
    write_safetensors(tensors, path, {"state": json.dumps(state)})


def _load_checkpoint(path: Path, model: BandNet, opt, lr: float) -> dict:
    """Restore ``model`` and ``opt`` from ``path``; returns the run's state. A file that is
    not a whole checkpoint of this network is an OptionError naming it."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as fh:
            state = json.loads((fh.metadata() or {})["state"])
            tensors = {k: fh.get_tensor(k) for k in fh.keys()}
        model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
        opt.load_state_dict(_unflatten_adam(opt, tensors, lr))
    except (SafetensorError, OSError, KeyError, RuntimeError, ValueError) as exc:
        raise checks.OptionError(f"{path} is not a whole checkpoint of this run ({exc}); give a "
                                 "new --out, or delete the file to start again", "out") from None
    return state


def _flatten_adam(opt: torch.optim.Adam) -> dict:
    tensors = {}
    for i, st in opt.state_dict()["state"].items():
        for name in ("exp_avg", "exp_avg_sq"):
            tensors[f"adam.{i}.{name}"] = st[name].contiguous()
        tensors[f"adam.{i}.step"] = torch.as_tensor(st["step"], dtype=torch.float32).reshape(1)
    return tensors


def _unflatten_adam(opt: torch.optim.Adam, tensors: dict, lr: float) -> dict:
    sd = opt.state_dict()
    state = {}
    for i in sd["param_groups"][0]["params"]:  # a missing one is a KeyError
        state[i] = {"step": tensors[f"adam.{i}.step"].reshape(()),
                    "exp_avg": tensors[f"adam.{i}.exp_avg"],
                    "exp_avg_sq": tensors[f"adam.{i}.exp_avg_sq"]}
    groups = [dict(g, lr=lr) for g in sd["param_groups"]]
    return {"state": state, "param_groups": groups}
