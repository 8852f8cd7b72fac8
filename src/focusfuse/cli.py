"""The ``focusfuse`` command line: maps flags to the library's functions, does no maths."""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import replace
from pathlib import Path

__all__ = ["main"]


class UserError(Exception):
    """A problem with what the user asked for: printed as one line, exit code 2."""


class _Help(argparse.ArgumentDefaultsHelpFormatter):
    """Every option's default in its help, unless there is none to show (None, off) or the
    help already says it."""

    def _get_help_string(self, action):
        text = action.help or ""
        if "default" in text or action.default in (None, False, argparse.SUPPRESS):
            return text
        return super()._get_help_string(action)


#: train's flags that only the focus classifiers take, with their defaults (the parser's)
_CLASSIFIER_ONLY = {"momentum": 0.9, "weight_decay": 5e-4, "patience": 3, "val_pairs": 20000,
                    "hard_val_pairs": 10000, "blur_levels": 5, "blur_kernel": "gaussian",
                    "precision": "auto", "keep_snapshots": False}
#: and those that only --arch bandnet takes
_BANDNET_ONLY = {"scenes": 160, "frames": 8, "crop": 128, "val_scenes": 16}


def _add_train(sub) -> None:
    from focusfuse.device import PRECISIONS

    p = sub.add_parser(
        "train", help="train the focus classifier (or, --arch bandnet, learned-pyramid's "
                      "network) on a folder of natural images",
        description="Make blurred patch pairs from natural images (Liu et al. 2017) and train "
                    "the focus classifier; with --arch bandnet, render synthetic pairs and "
                    "stacks with their all-in-focus truth and train the band-weighting network "
                    "of the learned-pyramid method against it. A run folder can be resumed by "
                    "running the same command again.",
        formatter_class=_Help)
    p.add_argument("data", help="folder of natural (sharp) images")
    p.add_argument("--out", required=True, help="run folder: log, checkpoints, model.safetensors")
    g = p.add_argument_group("model and optimiser")
    g.add_argument("--arch", default="paper",
                   help="architecture: paper, released, fast, fast-wide, tiny (focus classifiers); "
                        "bandnet (the learned-pyramid method)")
    g.add_argument("--steps", type=int, default=None,
                   help="mini-batches to train (default 20000; bandnet 2000)")
    g.add_argument("--batch-size", type=int, default=None, help="default 128; bandnet 8")
    g.add_argument("--lr", type=float, default=None,
                   help="base learning rate (default 1e-4, SGD; bandnet 3e-3, Adam)")
    g.add_argument("--momentum", type=float, default=_CLASSIFIER_ONLY["momentum"])
    g.add_argument("--weight-decay", type=float, default=_CLASSIFIER_ONLY["weight_decay"])
    g.add_argument("--patience", type=int, default=_CLASSIFIER_ONLY["patience"],
                   help="evaluations without a better validation loss before lr /= 10")
    g = p.add_argument_group("data")
    g.add_argument("--holdout-suffix", default=None,
                   help="files with this suffix (e.g. .png) are the validation images")
    g.add_argument("--val-fraction", type=float, default=0.15,
                   help="otherwise this share of the images is held out (chosen by --seed)")
    g.add_argument("--val-pairs", type=int, default=_CLASSIFIER_ONLY["val_pairs"], help="held-out pairs to validate on")
    g.add_argument("--hard-val-pairs", type=int, default=_CLASSIFIER_ONLY["hard_val_pairs"],
                   help="a second held-out set made with the lightest blur only (0: none)")
    g.add_argument("--blur-levels", type=int, default=_CLASSIFIER_ONLY["blur_levels"])
    g.add_argument("--blur-kernel", default=_CLASSIFIER_ONLY["blur_kernel"], choices=["gaussian", "disk"])
    g = p.add_argument_group("bandnet only")
    g.add_argument("--scenes", type=int, default=_BANDNET_ONLY["scenes"],
                   help="synthetic training scenes (half pairs, half stacks)")
    g.add_argument("--frames", type=int, default=_BANDNET_ONLY["frames"], help="frames of the training stacks")
    g.add_argument("--crop", type=int, default=_BANDNET_ONLY["crop"], help="side of the training crops (px)")
    g.add_argument("--val-scenes", type=int, default=_BANDNET_ONLY["val_scenes"],
                   help="validation scenes, fused whole at every evaluation")
    g = p.add_argument_group("run")
    g.add_argument("--eval-every", type=int, default=None,
                   help="steps between validations (default 500; bandnet 250)")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--precision", default=_CLASSIFIER_ONLY["precision"], choices=PRECISIONS)
    g.add_argument("--threads", type=int, default=None, help="torch threads (default: all cores)")
    g.add_argument("--keep-snapshots", action="store_true",
                   help="also keep the weights of every validation step in OUT/snapshots (float16)")


def _given(args, names: dict) -> list[str]:
    return ["--" + k.replace("_", "-") for k, v in names.items() if getattr(args, k) != v]


def _run_train(args) -> int:
    from focusfuse.checks import OptionError

    if args.arch == "bandnet":
        return _run_train_bandnet(args)
    if _given(args, _BANDNET_ONLY):
        raise OptionError(f"{', '.join(_given(args, _BANDNET_ONLY))} only apply to --arch "
                          "bandnet", "arch")
    from focusfuse.train import TrainConfig, train

    picked = {k: getattr(args, k) for k in ("steps", "batch_size", "lr", "eval_every")
              if getattr(args, k) is not None}
    cfg = TrainConfig(
        data=args.data, out=args.out, arch=args.arch, **picked, momentum=args.momentum,
        weight_decay=args.weight_decay, patience=args.patience,
        val_pairs=args.val_pairs, hard_val_pairs=args.hard_val_pairs,
        keep_snapshots=args.keep_snapshots, holdout_suffix=args.holdout_suffix,
        val_fraction=args.val_fraction, blur_levels=args.blur_levels,
        blur_kernel=args.blur_kernel, seed=args.seed, precision=args.precision,
        threads=args.threads)
    res = train(cfg)
    print(f"trained {res.steps} steps in {res.seconds / 60:.1f} min; best validation accuracy "
          f"{100 * res.best_accuracy:.2f}% at step {res.best_step}; weights: "
          f"{res.out / 'model.safetensors'}")
    return 0


def _run_train_bandnet(args) -> int:
    from focusfuse.checks import OptionError
    from focusfuse.train.bands import BandTrainConfig, train_bands

    if _given(args, _CLASSIFIER_ONLY):
        raise OptionError(f"{', '.join(_given(args, _CLASSIFIER_ONLY))} only apply to the focus "
                          "classifiers, not --arch bandnet", "arch")
    picked = {k: getattr(args, k) for k in ("steps", "batch_size", "lr", "eval_every", "threads")
              if getattr(args, k) is not None}
    holdout = {"holdout_suffix": args.holdout_suffix} if args.holdout_suffix else {}
    cfg = BandTrainConfig(data=args.data, out=args.out, **picked, **holdout,
                          val_fraction=args.val_fraction, scenes=args.scenes, frames=args.frames,
                          crop=args.crop, val_scenes=args.val_scenes, seed=args.seed)
    res = train_bands(cfg)
    print(f"trained {res.steps} steps in {res.seconds / 60:.1f} min; best validation PSNR "
          f"{res.best_psnr:.2f} dB at step {res.best_step}; weights: "
          f"{res.out / 'model.safetensors'}")
    return 0


def _method_flags() -> dict[str, tuple[object, list[str]]]:
    """Every command-line option of the registered methods: ``{name: (info, methods)}``, in
    the order the methods declare them (a name shared by several methods appears once)."""
    from focusfuse.fusion.options import describe
    from focusfuse.fusion.registry import METHODS

    flags: dict[str, tuple[object, list[str]]] = {}
    for method in METHODS.values():
        for info in describe(method.options):
            if not info.cli:
                continue
            if info.name in flags and info.help not in flags[info.name][0].help:
                # a name shared with another meaning: both helps (learned-pyramid's weights)
                first, names = flags[info.name]
                flags[info.name] = (replace(first, help=f"{first.help}; {info.help}"), names)
            flags.setdefault(info.name, (info, []))[1].append(method.name)
    return flags


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _add_method_options(p) -> None:
    """The methods' options as flags, grouped by the methods that take them. A flag not
    given is not passed, so each method gets its own defaults."""
    groups: dict[tuple[str, ...], object] = {}
    for name, (info, methods) in _method_flags().items():
        key = tuple(methods)
        if key not in groups:
            groups[key] = p.add_argument_group(f"options of {', '.join(key)}")
        default = "" if "default" in info.help else f" (default: {info.default})"
        kwargs = {"dest": name, "default": argparse.SUPPRESS, "help": info.help + default}
        if info.type is bool:
            kwargs["action"] = "store_true"
        else:
            kwargs["type"] = info.type or str
            if info.choices:
                kwargs["choices"] = info.choices
            if info.metavar:
                kwargs["metavar"] = info.metavar
        groups[key].add_argument(_flag(name), **kwargs)


def _given_options(args) -> dict:
    """The method options given on the command line (those left out take their defaults)."""
    return {name: getattr(args, name) for name in _method_flags() if hasattr(args, name)}


def _add_fuse(sub) -> None:
    from focusfuse.fusion.registry import METHODS

    p = sub.add_parser(
        "fuse", help="fuse two or more images focused at different depths",
        description="Fuse images of one scene focused at different depths into one image that "
                    "is sharp everywhere. Three or more images are fused with one decision "
                    "over all of them, as they are (for a focus stack to align first, use "
                    "focusfuse stack). Each method takes only its own options.",
        formatter_class=_Help)
    p.add_argument("images", nargs="+", metavar="IMAGE", help="source images (PNG, JPEG, TIFF; 8 or 16 bit)")
    p.add_argument("-o", "--output", required=True, help="fused image to write (.png, .tif, .jpg)")
    p.add_argument("--overwrite", action="store_true", help="replace OUTPUT if it exists")
    p.add_argument("--method", default="cnn", choices=list(METHODS),
                   help="fusion method: " + "; ".join(f"{m.name}: {m.summary}" for m in METHODS.values()))
    _add_method_options(p)
    g = p.add_argument_group("output")
    g.add_argument("--save-steps", default=None, metavar="DIR",
                   help="also write every intermediate map (score, focus, binary, refined, "
                        "decision) and, for the CNN methods, feature maps of each convolutional "
                        "layer (features-conv1.png ..: a row per source, 4 channels)")
    g.add_argument("--bit-depth", type=int, choices=[8, 16], default=None,
                   help="output bit depth (default: 16 if any input is 16 bit and the output "
                        "is PNG or TIFF, else 8)")
    _add_input_options(p)


def _run_fuse(args) -> int:
    from focusfuse import checks
    from focusfuse.fusion.registry import get_method
    from focusfuse.io import output_bit_depth, read_image, write_image

    inputs = [Path(p) for p in args.images]
    if len(inputs) < 2:
        raise UserError(f"fusion needs at least two images; got {len(inputs)} ({inputs[0]})")
    output = checks.check_output_path(args.output, bit_depth=args.bit_depth, inputs=inputs,
                                      overwrite=args.overwrite)
    if args.save_steps:
        checks.check_steps_folder(args.save_steps, keep=[*inputs, output], overwrite=args.overwrite)
    method = get_method(args.method)
    options = method.make_options(_given_options(args))  # every setting, before any work
    images = [read_image(p, with_depth=True, **_read_options(args)) for p in inputs]
    pixels = [im.pixels for im in images]
    checks.check_output_channels(output, pixels[0].shape[2] if pixels[0].ndim == 3 else 1)
    try:
        result = method.run(pixels, options)
    except checks.ImageError as exc:
        raise UserError(exc.named([p.name for p in inputs])) from None
    depth = output_bit_depth(output, [im.bit_depth for im in images], args.bit_depth)
    write_image(output, result.fused, bit_depth=depth)
    print(f"wrote {output} ({depth} bit)")
    if args.save_steps:
        n = len(result.save(args.save_steps))
        print(f"wrote {n} intermediate maps to {args.save_steps}")
        if method.uses_network:
            from focusfuse.fusion.cnn import model_for
            from focusfuse.visualize import save_feature_maps

            files, crop = save_feature_maps(pixels, model_for(options), args.save_steps)
            note = f" (central {crop[0]}×{crop[1]} crop)" if crop else ""
            print(f"wrote {len(files)} feature-map pictures{note} to {args.save_steps}")
    return 0


def _add_stack(sub) -> None:
    p = sub.add_parser(
        "stack", help="fuse a focus stack: align the frames, one decision over all, depth map",
        description="Fuse the frames of a focus stack (5 to 200 photographs focused at "
                    "different depths) into one image sharp everywhere. The frames are "
                    "aligned to the middle one (ECC: scale, shift, rotation; gain and white "
                    "balance), every frame is scored once and one decision is made over all "
                    "of them, so the result does not depend on the frames' order. Frames "
                    "are read one at a time: memory does not grow with their number. "
                    "16-bit frames give a 16-bit result (PNG, TIFF); the reference frame's "
                    "EXIF and ICC profile are kept.",
        formatter_class=_Help)
    p.add_argument("frames", nargs="+", metavar="FRAME",
                   help="frame files, folders of frames or glob patterns, in focus order "
                        "(sorted by name within a folder or pattern)")
    p.add_argument("-o", "--output", default=None,
                   help="fused image to write (.png, .tif, .jpg); required unless --align-only")
    p.add_argument("--overwrite", action="store_true",
                   help="replace OUTPUT (and --depth-map) if they exist")
    _add_stack_flags(p, batch=False)


def _add_stack_flags(p, *, batch: bool) -> None:
    """The flags ``stack`` and ``batch`` share: method, alignment, output, input."""
    from focusfuse.fusion.registry import STACK_METHODS

    p.add_argument("--method", default="cnn", choices=STACK_METHODS, help="fusion method")
    _add_method_options(p)
    g = p.add_argument_group("alignment")
    g.add_argument("--no-align", action="store_true", help="fuse the frames as they are")
    if not batch:
        g.add_argument("--align-only", default=None, metavar="DIR",
                       help="only align: write the aligned frames to DIR (new or empty)")
    g.add_argument("--reference", type=int, default=None, metavar="K",
                   help="index of the frame the others are aligned to (default: the middle "
                        "one; of an even stack's two, the one with the smaller content digest, "
                        "so that the reversed stack has the same)")
    g.add_argument("--crop", action="store_true",
                   help="cut the result to the region every frame covers (default: keep the "
                        "reference's whole frame; where some frames do not reach, the others "
                        "decide, and the reference covers everything)")
    g.add_argument("--strict", action="store_true",
                   help="a frame that cannot be aligned is an error (default: a warning, and "
                        "the frame is left out)")
    g = p.add_argument_group("output")
    if batch:
        g.add_argument("--format", default="png", choices=["png", "tif", "jpg"],
                       help="file type of the fused images, each named after its stack")
        g.add_argument("--depth-maps", action="store_true",
                       help="also write each stack's depth map, NAME-depth.png: the index of "
                            "the frame sharpest at each pixel, spread over the image's range")
    else:
        g.add_argument("--depth-map", default=None, metavar="FILE",
                       help="also write the index of the frame sharpest at each pixel, spread "
                            "over the image's range (0: first frame, white: last)")
    g.add_argument("--depth-raw", action="store_true",
                   help="write the depth map's raw frame index (0, 1, 2 ...) instead")
    g.add_argument("--bit-depth", type=int, choices=[8, 16], default=None,
                   help="output bit depth (default: 16 if the frames are 16 bit and the "
                        "output is PNG or TIFF, else 8)")
    g.add_argument("--quiet", action="store_true", help="no progress on stderr")
    _add_input_options(p)


def _run_stack(args) -> int:
    from focusfuse import checks
    from focusfuse.fusion.registry import get_method
    from focusfuse.progress import Progress
    from focusfuse.stacking import stack_frames, stack_to_file

    if args.output is None and args.align_only is None:
        raise UserError("give the fused image to write (-o OUTPUT), or --align-only DIR")
    options = get_method(args.method).make_options(_given_options(args))
    progress = Progress("stack", enabled=not args.quiet)
    if args.align_only is not None:
        paths = stack_frames(args.frames)
        keep = list(paths)
        for path in (args.output, args.depth_map):
            if path is not None:
                keep.append(checks.check_output_path(path, inputs=keep,
                                                     overwrite=args.overwrite))
        folder = checks.check_steps_folder(args.align_only, keep=keep, overwrite=args.overwrite)
        try:
            return _align_only(paths, folder, args, progress)
        finally:
            progress.close()
    try:
        done = stack_to_file(args.frames, args.output, method=args.method, options=options,
                             **_stack_settings(args), overwrite=args.overwrite,
                             progress=progress)
    finally:
        progress.close()
    left_out = done["frames"] - done["kept"]
    print(f"wrote {done['output']} ({done['bit_depth']} bit) from {done['kept']} frames"
          + (f" ({left_out} left out)" if left_out else ""))
    if done["depth_map"] is not None:
        print(f"wrote {done['depth_map']} (depth map"
              f"{', raw frame index' if args.depth_raw else ''})")
    return 0


def _stack_settings(args) -> dict:
    """The keyword arguments of :func:`focusfuse.stacking.stack_to_file` that ``stack`` and
    ``batch`` share, from their flags (each stack's outputs aside)."""
    return {"align": not args.no_align, "reference": args.reference, "crop": args.crop,
            "strict": args.strict, "read_options": _read_options(args),
            "bit_depth": args.bit_depth, "depth_raw": args.depth_raw,
            **({"depth_map": args.depth_map} if hasattr(args, "depth_map") else {})}


def _align_only(paths, folder, args, progress) -> int:
    from focusfuse.io import write_image
    from focusfuse.stacking import align_stack

    frames, alignment = align_stack(paths, reference=args.reference, strict=args.strict,
                                    read_options=_read_options(args), progress=progress)
    folder.mkdir(parents=True, exist_ok=True)
    bits = 16 if frames.read.bit_depth > 8 else 8  # checked alike for all frames
    for k in range(len(frames)):
        path = frames.path(k)
        write_image(folder / f"{path.stem}.png" if path.suffix.lower() in (".jpg", ".jpeg")
                    else folder / path.name, frames[k], bit_depth=bits)
    print(f"wrote {len(frames)} aligned frames to {folder} (reference: "
          f"{paths[alignment.reference].name})")
    return 0


def _add_batch(sub) -> None:
    p = sub.add_parser(
        "batch", help="fuse many focus stacks on Dask (a local cluster, or a scheduler's)",
        description="Fuse many focus stacks, one output per stack, as focusfuse stack would "
                    "one after another, on Dask: a local cluster sized to this machine by "
                    "default, or the workers of an existing scheduler (--scheduler; on "
                    "SLURM or LSF through dask-jobqueue, docs/batch.md). A summary (CSV) "
                    "records every stack: status, frames, time, and the error of those that "
                    "failed. Run it again to resume: stacks the summary records as done, "
                    "whose outputs are intact, are skipped. Exit code 1 when some stacks "
                    "failed.",
        formatter_class=_Help)
    p.add_argument("input", metavar="INPUT",
                   help="a folder of stack folders (one stack per sub-folder, named after it), "
                        "or a manifest: CSV with a header (frames: a folder, a glob, or files "
                        "separated by ';'; optional name, output) or JSON (a list of objects "
                        "with those keys)")
    p.add_argument("-o", "--output", required=True, metavar="OUTDIR",
                   help="folder for the fused images (created if needed)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace outputs that exist and are not this batch's own")
    p.add_argument("--summary", default=None, metavar="FILE",
                   help="the summary CSV (default: OUTDIR/summary.csv)")
    _add_stack_flags(p, batch=True)
    g = p.add_argument_group("cluster")
    g.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="run on the workers of this Dask scheduler (tcp://host:8786) instead "
                        "of a local cluster")
    g.add_argument("--workers", type=int, default=None, metavar="N",
                   help="worker processes of the local cluster, each fusing one stack at a "
                        "time (default: one per core, as many as the memory holds at 2 GB each; one per GPU)")
    g.add_argument("--threads", type=int, default=None, metavar="N",
                   help="PyTorch and OpenCV threads per worker (default: the cores over the "
                        "workers, so that they do not oversubscribe them)")


def _run_batch(args) -> int:
    from focusfuse.batching import batch, dashboard
    from focusfuse.progress import Progress

    settings = _stack_settings(args)
    progress = Progress("batch", enabled=not args.quiet, unit="stack")

    def on_cluster(client) -> None:
        if args.quiet:
            return
        link = dashboard(client)
        where = args.scheduler or "a local cluster"
        workers = len(client.scheduler_info().get("workers", {}))
        print(f"batch: on {where} ({workers} worker{'s' if workers != 1 else ''}); dashboard: "
              + (link or "none (it needs the bokeh package)"), file=sys.stderr, flush=True)

    try:
        rows = batch(args.input, args.output, method=args.method, scheduler=args.scheduler,
                     workers=args.workers, threads=args.threads, **settings,
                     depth_maps=args.depth_maps, suffix="." + args.format,
                     overwrite=args.overwrite, summary=args.summary, progress=progress,
                     on_cluster=on_cluster, **_given_options(args))
    finally:
        progress.close()
    counts = {s: sum(r["status"] == s for r in rows) for s in ("done", "skipped", "failed")}
    summary = args.summary or Path(args.output) / "summary.csv"
    print(f"batch: {counts['done']} done, {counts['skipped']} skipped (done before), "
          f"{counts['failed']} failed; summary: {summary}")
    for row in rows:
        if row["status"] == "failed":
            print(f"focusfuse batch: failed: {row['stack']}: {row['error']}", file=sys.stderr)
    return 1 if counts["failed"] else 0


def _add_demo(sub) -> None:
    from focusfuse.device import PRECISIONS
    from focusfuse.fusion.registry import METHODS

    p = sub.add_parser(
        "demo", help="fuse a built-in example and report how close it is to the sharp original",
        description="Make a multi-focus pair from a sharp photograph that ships with "
                    "scikit-image by blurring complementary regions, fuse it, write the result "
                    "and its maps, and print PSNR and SSIM against the sharp original.",
        formatter_class=_Help)
    p.add_argument("--out", default="demo-out", help="folder for the images")
    p.add_argument("--method", default="cnn", choices=list(METHODS), help="fusion method")
    p.add_argument("--weights", default=argparse.SUPPRESS,
                   help="classifier weights of the CNN methods (default: the shipped model)")
    p.add_argument("--precision", default=argparse.SUPPRESS, choices=PRECISIONS,
                   help="network precision of the CNN methods (default: auto)")


def _run_demo(args) -> int:
    from focusfuse.examples import run_demo

    from focusfuse.checks import OptionError

    options = {k: getattr(args, k) for k in ("weights", "precision") if hasattr(args, k)}
    try:
        demo = run_demo(args.out, method=args.method, **options)
    except OptionError as exc:
        if exc.option != "folder":
            raise
        raise UserError("--out" + str(exc)[len("folder"):]) from None
    print(f"fused the built-in example (512×512 colour) with method {demo.method!r} "
          f"in {demo.seconds:.2f} s")
    print(f"{'image':<10} {'PSNR (dB)':>10} {'SSIM':>8}   against the sharp original")
    for name, (psnr, ssim) in demo.quality.items():
        print(f"{name:<10} {psnr:>10.2f} {ssim:>8.4f}")
    print(f"images written to {demo.folder}/ (fused.png, decision.png, steps/)")
    return 0


def _add_metrics(sub) -> None:
    p = sub.add_parser(
        "metrics", help="objective quality metrics of a fused image",
        description="The eight metrics of the Liu et al. 2020 survey (QMI, QNCIE, QG, QP, QE, "
                    "QY, QCB, QCV; QCV: lower is better) of FUSED made from sources A and B.",
        formatter_class=_Help)
    p.add_argument("a", metavar="A", help="first source image")
    p.add_argument("b", metavar="B", help="second source image")
    p.add_argument("fused", metavar="FUSED", help="fused image")
    p.add_argument("--metrics", default=None,
                   help="comma-separated subset, e.g. QMI,QG (also EN, SF, SD, AG)")
    p.add_argument("--reference", default=None,
                   help="all-in-focus ground truth: adds PSNR and SSIM")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")


def _run_metrics(args) -> int:
    import json

    from focusfuse.io import read_image
    from focusfuse.metrics import LOWER_IS_BETTER, METRICS, evaluate

    a, b, fused = (read_image(p) for p in (args.a, args.b, args.fused))
    names = [m.strip() for m in args.metrics.split(",")] if args.metrics else None
    reference = read_image(args.reference) if args.reference else None
    if reference is not None:
        names = (names or list(METRICS)) + ["PSNR", "SSIM"]
    try:
        values = evaluate(a, b, fused, metrics=names, reference=reference)
    except (ValueError, TypeError) as exc:  # the library's names of the images: the files
        text = str(exc)
        if text.startswith("a, b and fused "):
            text = f"{args.a}, {args.b} and {args.fused}{text[len('a, b and fused'):]}"
        for name in ("reference", "fused", "a", "b"):
            if text.startswith(name + " "):
                text = f"{getattr(args, name)}{text[len(name):]}"
                break
        raise UserError(text.replace("metrics must be", "--metrics must be", 1)) from None
    if args.json:
        print(json.dumps(values, indent=1))
    else:
        for k, v in values.items():
            note = "  (lower is better)" if k in LOWER_IS_BETTER else ""
            print(f"{k:<6} {v:12.6f}{note}")
    return 0


def _add_convert(sub) -> None:
    p = sub.add_parser(
        "convert-weights", help="convert classifier weights (.mat or .safetensors) to safetensors",
        description="Read focusfuse safetensors weights or the authors' cnnmodel.mat and write "
                    "them as focusfuse safetensors, optionally in float16 (half the size).",
        formatter_class=_Help)
    p.add_argument("source", help="weights to read (.safetensors or the authors' .mat)")
    p.add_argument("output", help="safetensors file to write")
    p.add_argument("--dtype", default="float32", choices=["float32", "float16"])
    p.add_argument("--overwrite", action="store_true", help="replace OUTPUT if it exists")


def _run_convert(args) -> int:
    import torch
    from safetensors import safe_open

    from focusfuse.checks import check_output_path
    from focusfuse.models import load_weights, save_weights

    src = Path(args.source)
    out = check_output_path(args.output, inputs=[src], overwrite=args.overwrite,
                            suffixes=(".safetensors",))
    model = load_weights(src)
    extra = {"converted_from": src.name}
    if src.suffix.lower() == ".safetensors":
        with safe_open(str(src), framework="pt") as fh:
            extra = {**(fh.metadata() or {}), **extra}
    extra.pop("arch", None)
    save_weights(model, out, extra=extra, dtype=getattr(torch, args.dtype))
    print(f"wrote {out} ({args.dtype})")
    return 0


def _default_methods() -> str:
    """bench's --methods default: every registered method (:func:`_methods` narrows it to
    those that fuse stacks when the sources are aligned)."""
    from focusfuse.fusion.registry import METHODS

    return ",".join(METHODS)


def _methods(args) -> str:
    """bench's methods: those given, or, when they are not and the sources are aligned
    (--stacks, --align yes), every method that aligned frames can go to."""
    from focusfuse.fusion.registry import STACK_METHODS

    aligned = args.stacks is not None or args.align == "yes"
    if args.methods == _default_methods() and aligned:
        return ",".join(STACK_METHODS)
    return args.methods


def _add_bench(sub) -> None:
    from focusfuse.bench import SPEC_HELP
    from focusfuse.device import PRECISIONS
    from focusfuse.fusion.registry import METHODS

    p = sub.add_parser(
        "bench", help="run methods over a folder of pairs: quality, speed, report",
        description="Run fusion methods on every pair of a folder (NAME-A.ext + NAME-B.ext), "
                    "time them (one warm-up per method, then each pair; median and spread), "
                    "score the fused images with the eight metrics, and write per-image and "
                    "average CSV, a Markdown table, a self-contained HTML report and figures. "
                    "With --reference, published fused images (REFERENCE/METHOD/NAME.png) are "
                    "scored the same way and shown beside ours. A pair with NAME-truth.ext "
                    "(the all-in-focus truth; focusfuse make-truth writes such pairs) is also "
                    "scored with PSNR and SSIM against it, and NAME-oracle.ext files are a "
                    "row of their own. Finished pairs are cached in "
                    "OUT: running the same command again resumes an interrupted run.",
        epilog="example: focusfuse bench --pairs lytro/pairs --out runs/bench "
               "--methods cnn,cnn@authors:fp32,dwt,dtcwt --weights authors=liu2016-cnnmodel.mat "
               "--reference liu2020-survey/lytro",
        formatter_class=_Help)
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--pairs", metavar="DIR",
                       help="folder of source pairs named NAME-A.ext and NAME-B.ext")
    which.add_argument("--stacks", metavar="DIR",
                       help="folder of stacks with a truth (focusfuse make-truth --frames N): "
                            "each method runs as focusfuse stack does, scored with PSNR and "
                            "SSIM against the truth (no eight metrics: they are for pairs)")
    p.add_argument("--out", required=True, metavar="DIR",
                   help="folder for the report, figures and the cache of finished pairs")
    g = p.add_argument_group("methods")
    g.add_argument("--methods", default=_default_methods(),
                   help=SPEC_HELP.format(methods=", ".join(METHODS)))
    g.add_argument("--weights", action="append", default=[], metavar="NAME=FILE",
                   help="name a weights file for use as METHOD@NAME (repeatable)")
    g.add_argument("--precision", default="auto", choices=PRECISIONS,
                   help="network precision of CNN methods that name none (auto: bf16 where "
                        "the CPU or GPU has it)")
    g.add_argument("--device", default="auto", help="auto, cpu or cuda")
    g = p.add_argument_group("data")
    g.add_argument("--reference", default=None, metavar="DIR",
                   help="published results: a folder per method with NAME.png fused images, "
                        "and optionally metrics.csv (columns pair, method, QMI .. QCV)")
    g.add_argument("--limit", type=int, default=None, metavar="N", help="only the first N pairs")
    g.add_argument("--refresh", action="store_true", help="redo pairs already in the cache")
    g.add_argument("--align", default="auto", choices=("auto", "yes", "no"),
                   help="align the sources before fusing, as focusfuse stack does (OpenCV "
                        "ECC; the time includes it), for every method alike; auto: stacks "
                        "yes, pairs no (as focusfuse fuse); yes for hand-held pairs")
    g.add_argument("--register", default="auto", choices=("auto", "yes", "no"),
                   help="pairs with NAME-truth files: warp each image into the truth's "
                        "geometry (OpenCV ECC, affine) before PSNR and SSIM; auto: when the "
                        "folder's truth.json says its sources move (focusfuse make-truth's "
                        "hand-held variants)")
    g = p.add_argument_group("report")
    g.add_argument("--show", default="2", metavar="N|NAMES",
                   help="pairs shown in the figures: how many of the first, or names "
                        "(comma-separated)")
    g.add_argument("--features-pair", default=None, metavar="NAME",
                   help="pair whose feature maps are shown (default: the first shown)")
    g.add_argument("--title", default=None, help="report title")
    g.add_argument("--no-figures", action="store_true", help="tables only (no matplotlib)")
    g.add_argument("--quiet", action="store_true", help="no progress bar")


def _run_bench(args) -> int:
    from focusfuse.bench import parse_methods, run_bench, write_report

    weights = {}
    for item in args.weights:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise UserError(f"--weights {item!r}: expected NAME=FILE, e.g. "
                            "--weights authors=liu2016-cnnmodel.mat")
        weights[name] = path
    register = {"auto": None, "yes": True, "no": False}[args.register]
    if args.limit is not None and args.limit < 1:
        raise UserError(f"--limit must be at least 1; got {args.limit}")
    if args.stacks is not None:
        from focusfuse.bench.stacks import run_stack_bench

        if args.reference is not None:
            raise UserError("--reference is for pairs (published fused pairs); leave it out "
                            "with --stacks")
        specs = parse_methods(_methods(args), weights=weights, precision=args.precision)

        done = run_stack_bench(args.stacks, specs, args.out, align=args.align != "no",
                               register=register, limit=args.limit, progress=not args.quiet,
                               device=args.device)
        print(done["paths"]["markdown"].read_text(), end="")
        print(f"benchmarked {len(specs)} method(s) on {done['stacks']} stack(s); wrote {done['paths']['markdown']} and "
              f"{done['paths']['per_stack'].name} in {args.out}")
        return 0
    specs = parse_methods(_methods(args), weights=weights, precision=args.precision)
    show = args.show.strip()
    show = int(show) if show.isdigit() else [s.strip() for s in show.split(",") if s.strip()]
    bench = run_bench(args.pairs, specs, args.out, reference=args.reference, device=args.device,
                      refresh=args.refresh, progress=not args.quiet, limit=args.limit,
                      register=register, align=args.align == "yes")
    paths = write_report(bench, args.out, show=show, features_pair=args.features_pair,
                         title=args.title, figures=not args.no_figures)
    print(f"benchmarked {len(specs)} method(s) on {len(bench.pairs)} pair(s); wrote "
          f"{paths['markdown']}, {paths['html']}, {paths['averages'].name} and "
          f"{paths['per_image'].name} in {args.out}")
    return 0


def _add_make_truth(sub) -> None:
    p = sub.add_parser(
        "make-truth", help="make pairs with an all-in-focus truth for focusfuse bench",
        description="Render multi-focus pairs with their all-in-focus truth from sharp images "
                    "(focusfuse.data.stacks.make_stack with two frames: depth edges on image "
                    "edges, disk blur composited back to front, noise, hand-held motion) and "
                    "write, per variant, OUT/VARIANT/NAME-A.png, NAME-B.png, NAME-truth.png, "
                    "NAME-oracle.png (each pixel from the source least blurred there) and "
                    "truth.json (every setting). Benchmark a variant with focusfuse bench "
                    "--pairs OUT/VARIANT.",
        epilog="example: focusfuse make-truth ../shared/data/bsds500 --out /tmp/truth "
               "--variants clean,noisy,handheld --count 40",
        formatter_class=_Help)
    p.add_argument("sharp", metavar="SHARP_DIR",
                   help="folder of sharp (all-in-focus) images, e.g. ../shared/data/bsds500")
    p.add_argument("--out", required=True, metavar="DIR", help="folder for the variants' folders")
    g = p.add_argument_group("set")
    g.add_argument("--variants", default="clean,noisy,handheld",
                   help="comma-separated, of clean, noisy, handheld, handheld-noisy")
    g.add_argument("--count", type=int, default=40, metavar="N",
                   help="pairs (or stacks) per variant: N of the images, a seeded choice")
    g.add_argument("--frames", type=int, default=2, metavar="N",
                   help="2: pairs; more: N-frame stacks (OUT/VARIANT/NAME/frame_XX.png, with "
                        "NAME-truth.png and NAME-oracle.png beside), depths spread over the "
                        "focus range, for focusfuse bench --stacks")
    g.add_argument("--seed", type=int, default=0, help="seed of the choice and of every scene (default: 0)")
    g.add_argument("--suffix", default=".png",
                   help="use the images with this suffix only (BSDS500: .png are the 68 held "
                        "out by train --holdout-suffix .png, never trained on)")
    g.add_argument("--layout", default="two-plane", choices=("two-plane", "stack"),
                   help="depth: two-plane moves each segment to A's or B's focus plane; stack "
                        "keeps make_stack's depths, spread over the range (blurred in both)")
    g.add_argument("--overwrite", action="store_true", help="replace variant folders that exist")
    g.add_argument("--quiet", action="store_true", help="no line per pair")


def _run_make_truth(args) -> int:
    from focusfuse.bench.truth import make_truth_set, make_truth_stacks

    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    say = None if args.quiet else (lambda line: print(f"make-truth {line}", file=sys.stderr))
    if args.frames != 2:
        if args.layout != "two-plane":
            raise UserError("--layout is for pairs; stacks keep make_stack's depths")
        folders = make_truth_stacks(args.sharp, args.out, variants=variants, count=args.count,
                                    frames=args.frames, seed=args.seed, suffix=args.suffix,
                                    overwrite=args.overwrite, progress=say)
        what = f"stack(s) of {args.frames} frames"
    else:
        folders = make_truth_set(args.sharp, args.out, variants=variants, count=args.count,
                                 seed=args.seed, suffix=args.suffix, layout=args.layout,
                                 overwrite=args.overwrite, progress=say)
        what = "pair(s)"
    print(f"wrote {args.count} {what} with truth and oracle in each of "
          f"{', '.join(str(f) for f in folders.values())}")
    return 0


#: command: (add its parser, run it, whether it turns on keeping freed memory)
COMMANDS = {
    "fuse": (_add_fuse, _run_fuse, True),
    "stack": (_add_stack, _run_stack, True),
    "batch": (_add_batch, _run_batch, False),
    "demo": (_add_demo, _run_demo, True),
    "metrics": (_add_metrics, _run_metrics, False),
    "train": (_add_train, _run_train, False),
    "convert-weights": (_add_convert, _run_convert, False),
    "bench": (_add_bench, _run_bench, True),
    "make-truth": (_add_make_truth, _run_make_truth, False),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="focusfuse", description="Multi-focus image fusion (Liu et al. 2017 and wavelets).")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add, _, _ in COMMANDS.values():
        add(sub)
    return parser


def _message(exc: Exception) -> str:
    """The library's message in the command line's terms: an option's flag for its name."""
    from focusfuse.checks import OptionError, UnknownOptionError

    if isinstance(exc, UnknownOptionError):
        owners = f"an option of {', '.join(exc.owners)}" if exc.owners else "unknown"
        return (f"{_flag(exc.option)} is {owners}, not of --method {exc.method}; drop it or "
                "choose one of those methods")
    text = str(exc)
    if isinstance(exc, OptionError):
        if exc.option == "overwrite":
            text += " (--overwrite)"
        elif exc.option == "save_steps":
            text = f"--save-steps: {text}"
        elif (exc.option in _method_flags() or exc.option == "bit_depth"
              or exc.option in _SETTING_FLAGS):
            if text.startswith(exc.option + " "):  # a flag every command that fuses has
                text = _flag(exc.option) + text[len(exc.option):]
    elif isinstance(getattr(exc, "option", None), str):  # io.ImageReadError("... max_pixels")
        import re

        text = re.sub(rf"\b{re.escape(exc.option)}\b", _flag(exc.option), text)
    return " ".join(text.split())  # one line, whatever a library below us said


#: library settings, other than the methods' options, that are flags of the same name:
#: train's (TrainConfig), the run folder of train and demo (--out), read_image's limit
_SETTING_FLAGS = frozenset({
    "arch", "steps", "batch_size", "lr", "momentum", "weight_decay", "patience",
    "holdout_suffix", "val_fraction", "val_pairs", "hard_val_pairs", "blur_levels",
    "blur_kernel", "eval_every", "seed", "threads", "out", "max_pixels", "depth_map", "depth_maps",
    "crop", "scenes", "frames", "val_scenes",
    "workers"})


class _Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP, raised in the main thread like Ctrl-C's KeyboardInterrupt, so that
    the same clean-up runs (temporary files removed); ``signum`` gives the exit code."""

    def __init__(self, signum: int):
        self.signum = signum
        super().__init__(signum)


def _on_signal(signum, frame) -> None:
    """The first SIGINT, SIGTERM or SIGHUP interrupts the work cleanly; a second one ends
    the process at once (a temporary file it leaves is hidden and removed by the next
    write, docs/robustness.md)."""
    import signal

    if _on_signal.fired:
        os.write(2, f"focusfuse: interrupted again ({signal.Signals(signum).name}); "
                    "exiting now\n".encode())
        os._exit(128 + signum)
    _on_signal.fired = True
    if signum == signal.SIGINT:
        raise KeyboardInterrupt
    raise _Terminated(signum)


_on_signal.fired = False


def _install_signal_handlers() -> None:
    """The command's own handlers, set before anything heavy is imported (an early Ctrl-C
    is then one line too). A signal the parent ignores (``nohup``, ``&`` in a script) stays
    ignored."""
    import signal

    for name in ("SIGINT", "SIGTERM", "SIGHUP"):
        sig = getattr(signal, name, None)
        if sig is not None and signal.getsignal(sig) is not signal.SIG_IGN:
            signal.signal(sig, _on_signal)


def _stdout_is_closed() -> bool:
    """Whether stdout is a pipe or socket whose reader has gone (``focusfuse demo | head``)."""
    import select

    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLOUT)
        return any(ev & (select.POLLERR | select.POLLHUP) for _, ev in poller.poll(0))
    except (AttributeError, OSError, ValueError):
        return False


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so that flushing what is left at exit raises nothing."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (AttributeError, OSError, ValueError):
        pass


#: exit code after a broken pipe: 128 + SIGPIPE, what a shell reports for a tool that
#: SIGPIPE ended (``yes | head -1``), and no message
EXIT_BROKEN_PIPE = 141


def _show_warning(command: str):
    """Warnings as one line in the command's voice, not Python's file:line form."""

    def show(message, category, filename, lineno, file=None, line=None):
        text = " ".join(str(message).split())
        print(f"focusfuse {command}: warning: {text}", file=file or sys.stderr)

    return show


def _add_input_options(p) -> None:
    """How source images are read: the flags of :func:`focusfuse.io.read_image`."""
    from focusfuse.checks import MAX_PIXELS

    g = p.add_argument_group("input")
    g.add_argument("--max-pixels", type=int, default=MAX_PIXELS, metavar="N",
                   help="refuse a source whose file claims more than N pixels (height × "
                        "width) per frame, before decoding it: a damaged or hostile file "
                        "(decompression bomb); raise it for bigger images")


def _read_options(args) -> dict:
    """The keyword arguments of :func:`focusfuse.io.read_image` from the input flags."""
    return {"max_pixels": args.max_pixels} if hasattr(args, "max_pixels") else {}


def main(argv: list[str] | None = None) -> int:
    import warnings

    command = "focusfuse"
    try:
        args = build_parser().parse_args(argv)
        command = f"focusfuse {args.command}"
        _, run, keeps_memory = COMMANDS[args.command]
        from focusfuse.device import CompileError, keep_freed_memory_from_env
    except KeyboardInterrupt as exc:  # while the modules load
        return _interrupted(command, exc)
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _show_warning(args.command)
            warnings.filterwarnings("default", category=UserWarning)  # shown, once each
            if keeps_memory:
                keep_freed_memory_from_env()  # this process's own setting (docs/speed.md)
            return run(args)
    except BrokenPipeError as exc:
        if not _stdout_is_closed():
            print(f"{command}: error: {_message(exc)}", file=sys.stderr)
            return 2
        _silence_stdout()
        return EXIT_BROKEN_PIPE
    except (UserError, ValueError, TypeError, OSError, ArithmeticError, CompileError) as exc:
        print(f"{command}: error: {_message(exc)}", file=sys.stderr)
        return 2
    except MemoryError:
        print(f"{command}: error: out of memory; use smaller images, or free memory",
              file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        return _interrupted(command, exc)


def _interrupted(command: str, exc: KeyboardInterrupt) -> int:
    """The one line after Ctrl-C (exit 130) or SIGTERM (143), SIGHUP (129)."""
    import signal

    signum = getattr(exc, "signum", signal.SIGINT)
    what = "interrupted" if signum == signal.SIGINT else \
        f"stopped by {signal.Signals(signum).name}"
    try:
        print(f"{command}: {what}", file=sys.stderr)
    except (OSError, ValueError):
        pass
    return 128 + signum


def console() -> None:
    """The ``focusfuse`` command: :func:`main`, then a quick exit.

    When the command is done everything it wrote is closed; what remains is the
    interpreter's teardown of PyTorch's modules, of no use to a one-shot command
    (docs/speed.md measures it). So the output streams are flushed and the process ends
    without it: without ``atexit`` handlers too (a coverage tool measuring the command
    would lose its data), and not after ``torch.compile`` (its worker processes are shut
    down at exit). A failed flush exits with 120, as Python does; a broken pipe on stdout
    with 141 and no message (docs/robustness.md).

    SIGINT, SIGTERM and SIGHUP get the command's handlers first, before any heavy import:
    each interrupts the work with one line and exit code 128 + the signal's number (130,
    143, 129), after the clean-up of temporary files.
    """
    _install_signal_handlers()
    try:
        code = main()
    except KeyboardInterrupt as exc:  # between main's own handlers (rare)
        code = _interrupted("focusfuse", exc)
    if "torch._inductor" in sys.modules:
        sys.exit(code)
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        os._exit(EXIT_BROKEN_PIPE)
    except OSError:
        os._exit(120)
    try:
        sys.stderr.flush()
    except OSError:
        os._exit(120)
    os._exit(code)


if __name__ == "__main__":
    console()
