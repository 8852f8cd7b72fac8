"""Focus stacks: focusfuse and its peers (focus-stack, enfuse) side by side.

Two modes, each running every tool as a whole process (reading, aligning, fusing, writing)
on the same files:

- **synthetic** (the default): 8-frame stacks made by ``focusfuse.data.stacks.make_stack``
  from ``--scenes`` BSDS500 images (a seeded choice), in the variants clean / noisy /
  handheld (motion alone) / handheld-noisy (motion, gain and noise), written as 8-bit PNG to a temporary folder; each tool's output is registered
  to the all-in-focus truth (OpenCV ECC, affine, since a tool that aligns keeps its
  reference frame's geometry, and focus-stack also crops), then scored on the central
  80%: PSNR and SSIM (scikit-image) on the colour image. Time: wall seconds of the whole
  process per stack; memory: its peak resident set (GNU time's ``%M``, when
  ``/usr/bin/time`` is there). A tool whose template has ``{depth}`` writes its depth map
  there (the raw frame index, ``--depth-map {depth} --depth-raw``): it is brought into the
  truth's geometry with the fused image's registration and scored on the textured pixels
  of the centre (:func:`depth_score`).
- **real** (``--real``): the four real stacks of ``../shared/data/stacks``; the tools run
  alternately (ours, focus-stack, enfuse, ours, ...) ``--repeat`` times; wall-time ratios
  and peak memory; each output registered to the middle frame and cut into crops (fine
  detail and a depth edge, boxes in ``CROPS``), written side by side as PNG under
  ``--out`` for the docs.

A tool is a command-line template: ``{frames}`` becomes the frame files (as separate
arguments), ``{out}`` the output file, ``{folder}`` the stack's folder, ``{depth}`` (if
there) the depth map's file. Ours is given with
``--ours NAME=TEMPLATE`` (repeatable); without it, ``focusfuse stack`` is tried and
skipped with a message when the installed focusfuse has no such subcommand. A peer not on
``PATH`` is skipped with a message saying how to get it.

Run (from the repository root; ``mkdir -p runs`` first):

    .venv/bin/python benchmarks/bench_stacks.py --json runs/bench_stacks.json \\
        --md runs/bench_stacks.md
    .venv/bin/python benchmarks/bench_stacks.py --real --repeat 3 --out runs/bench_stacks_real
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

# the registration to the truth and its helpers are the library's (focusfuse bench scores
# pairs with them)
from focusfuse.bench.truth import CENTRE, _central, _gray, register, truth_scores
from focusfuse.data.stacks import VARIANTS

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
REAL_STACKS = ("pcb", "pcb-depth", "amber-flies", "chimp")

#: the default "ours": used when the installed focusfuse has a `stack` subcommand
OURS = "focusfuse=focusfuse stack {frames} -o {out} --quiet"
#: the peers, as people run them: focus-stack aligns by default; enfuse's focus recipe.
#: enfuse writes TIFF: its PNG writer (VIGRA) stops on some JPEG inputs' ICC profile
#: ("png_set_pHYs(): known incorrect sRGB profile", amber-flies)
PEER_SUFFIX = {"enfuse": ".tif"}
PEERS = {
    "focus-stack": "focus-stack --output={out} {frames}",
    "enfuse": ("enfuse --exposure-weight=0 --saturation-weight=0 --contrast-weight=1 "
               "--hard-mask -o {out} {frames}"),
}
HOW_TO_GET = {
    "focus-stack": "build it from github.com/PetteriAimonen/focus-stack (docs/stacks.md)",
    "enfuse": "apt-get install enfuse",
}

#: crop boxes (x, y, width, height) in the middle frame's pixels, per real stack
CROPS = {
    # silk-screen text and via rings; the gold pins in front of the chip behind them
    "pcb": {"fine-detail": (700, 780, 400, 300), "depth-edge": (1330, 760, 400, 300)},
    # "SW1" and dust on the board; the switch's corner, a bump and a pad at three depths
    "pcb-depth": {"fine-detail": (860, 100, 400, 300), "depth-edge": (480, 440, 400, 300)},
    # the right fly's eye and thorax (focus-stack's gray projection blurs it); the amber's edge
    "amber-flies": {"fine-detail": (640, 100, 320, 240), "depth-edge": (1000, 300, 280, 240)},
    # dimpled cuticle; the mandible's tip over the dark background and the other mandible
    "chimp": {"fine-detail": (300, 350, 200, 140), "depth-edge": (200, 60, 200, 150)},
}


# the tools


@dataclass(frozen=True)
class Tool:
    name: str
    template: str
    suffix: str = ".png"  # of the output file

    def output(self, folder: Path) -> Path:
        return folder / f"out-{self.name}{self.suffix}"

    def depth_output(self, folder: Path) -> Path | None:
        """Where the tool writes its raw depth map, if its template asks for one."""
        return folder / f"depth-{self.name}.png" if "{depth}" in self.template else None

    def argv(self, frames: list[Path], out: Path, folder: Path) -> list[str]:
        args = []
        for token in shlex.split(self.template):
            if token == "{frames}":
                args.extend(str(f) for f in frames)
            else:
                args.append(token.format(out=out, folder=folder,
                                         depth=self.depth_output(out.parent)))
        args[0] = _resolve(args[0])
        return args


def _resolve(program: str) -> str:
    """A program name on PATH, the venv's own scripts first (focusfuse)."""
    here = Path(sys.executable).parent
    return shutil.which(program, path=os.pathsep.join([str(here), os.environ.get("PATH", "")])) \
        or program


def _parse_tool(spec: str) -> Tool:
    name, sep, template = spec.partition("=")
    if not sep or not name.strip() or "{out}" not in template or "{frames}" not in template:
        raise SystemExit(f"--ours {spec!r}: expected NAME=TEMPLATE with {{frames}} and {{out}}, "
                         'e.g. "focusfuse=focusfuse stack {frames} -o {out} --quiet"')
    return Tool(name.strip(), template.strip())


def _has_stack_command() -> bool:
    exe = _resolve("focusfuse")
    try:
        return subprocess.run([exe, "stack", "--help"], capture_output=True,
                              timeout=120).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def choose_tools(ours: list[str] | None, peers: list[str], *, no_ours: bool = False) -> list[Tool]:
    tools = []
    if no_ours:
        pass
    elif ours:
        tools.extend(_parse_tool(s) for s in ours)
    elif _has_stack_command():
        tools.append(_parse_tool(OURS))
    else:
        print("skipping ours: the installed focusfuse has no `stack` subcommand yet "
              "(give --ours NAME=TEMPLATE to run another command)", file=sys.stderr)
    for name in peers:
        if name not in PEERS:
            raise SystemExit(f"--peers: unknown peer {name!r}; choose from {', '.join(PEERS)}")
        if shutil.which(shlex.split(PEERS[name])[0]) is None:
            print(f"skipping {name}: not on PATH; {HOW_TO_GET[name]}", file=sys.stderr)
            continue
        tools.append(Tool(name, PEERS[name], PEER_SUFFIX.get(name, ".png")))
    if not tools:
        raise SystemExit("no tool to run: neither ours nor a peer is available")
    return tools


def tool_versions(tools: list[Tool]) -> dict:
    out = {}
    for t in tools:
        exe = _resolve(shlex.split(t.template)[0])
        try:
            p = subprocess.run([exe, "--version"], capture_output=True,
                               text=True, timeout=60)
            lines = (p.stdout or p.stderr).strip().splitlines()
            out[t.name] = lines[0] if lines else ""
        except (OSError, subprocess.TimeoutExpired) as exc:
            out[t.name] = f"unknown ({exc})"
    return out


#: GNU time: it forks the tool from its own small process, so the peak it reports is the
#: tool's alone (a child forked from this Python process inherits the benchmark's own
#: resident memory as its starting peak: ru_maxrss counts the memory before exec)
GNU_TIME = shutil.which("time", path="/usr/bin:/bin")


def run_process(argv: list[str], log: Path, timeout: float) -> dict:
    """Run one command; its wall seconds, peak resident memory (bytes) and exit status."""
    peak_file = log.with_suffix(".peak")
    if GNU_TIME:
        argv = [GNU_TIME, "-f", "%M", "-o", str(peak_file), *argv]
    with open(log, "wb") as sink:
        start = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=sink, stderr=subprocess.STDOUT)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        seconds = time.perf_counter() - start
    peak = None
    if GNU_TIME and peak_file.is_file():
        text = peak_file.read_text().split()
        peak = int(text[-1]) * 1024 if text and text[-1].isdigit() else None
        peak_file.unlink()
    return {"rc": proc.returncode, "seconds": seconds, "peak_rss": peak,
            "timed_out": seconds > timeout}


# registration and scores


def read_output(path: Path) -> np.ndarray:
    """A tool's output as float32 RGB in [0, 1] (alpha dropped), through OpenCV, which
    also reads enfuse's LZW-compressed TIFF (tifffile needs imagecodecs for that)."""
    raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if raw is None:
        raise ValueError(f"{path}: not a readable image")
    top = 65535.0 if raw.dtype == np.uint16 else 255.0
    if raw.ndim == 3:
        raw = cv2.cvtColor(raw[:, :, :3], cv2.COLOR_BGR2RGB)
    return raw.astype(np.float32) / np.float32(top)


def score(output: np.ndarray, truth: np.ndarray, *, centre: float = CENTRE) -> dict:
    """PSNR and SSIM of ``output`` against ``truth`` on the central part, after registration.

    Also ``psnr_own``: the PSNR in the output's own geometry, against the truth carried
    there by the same registration (``truth`` warped, Lanczos, once, as the generator made
    the hand-held frames). A hand-held stack has no frame in the truth's geometry, so
    ``psnr`` charges every tool for two resamplings of the sharp image that are the
    benchmark's (the generator's warp and the registration back); ``psnr_own`` charges
    only what the tool did (its alignment's warps). Without motion the two are equal, up
    to the registration's resampling where it was not the identity."""
    from skimage.metrics import peak_signal_noise_ratio

    scores = truth_scores(output, truth, register_first=True, centre=centre)
    info = scores["registration"]
    own = None
    out3 = output[..., :3] if output.ndim == 3 else output
    if out3.ndim == truth.ndim:
        oh, ow = out3.shape[:2]
        there = np.clip(cv2.warpAffine(truth, np.asarray(info["matrix"], np.float64), (ow, oh),
                                       flags=cv2.INTER_LANCZOS4, borderMode=cv2.BORDER_REFLECT),
                        0.0, 1.0) if info["method"] != "identity" else truth
        inner = _central(out3.shape, centre)
        own = float(peak_signal_noise_ratio(there[inner].astype(np.float64),
                                            out3[inner].astype(np.float64), data_range=1.0))
    return {"psnr": scores["PSNR"], "psnr_own": own, "ssim": scores["SSIM"],
            "registration": info}


def depth_score(depth: np.ndarray, stack, registration: dict, *, centre: float = CENTRE,
                texture: float = 4 / 255, window: int = 7) -> dict:
    """How often a tool's raw depth map (frame index per pixel, in its output's geometry)
    is within one frame of the true ``depth_index``: on the textured pixels of the central
    part (the truth's local ``window``² gray standard deviation above ``texture``: where a
    focus measure can tell), and on all of them. The map is brought into the truth's
    geometry with the fused image's registration (nearest neighbour)."""
    h, w = stack.truth.shape[:2]
    depth = depth.astype(np.float32)
    if registration.get("method") != "identity" or depth.shape != (h, w):
        depth = cv2.warpAffine(depth, np.asarray(registration["matrix"], np.float64), (w, h),
                               flags=cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP,
                               borderMode=cv2.BORDER_REPLICATE)
    g = _gray(stack.truth)
    mean = cv2.blur(g, (window, window), borderType=cv2.BORDER_REFLECT)
    std = np.sqrt(np.maximum(cv2.blur(g * g, (window, window), borderType=cv2.BORDER_REFLECT)
                             - mean * mean, 0.0))
    box = _central((h, w), centre)
    near = (np.abs(depth - stack.depth_index) <= 1)[box]
    textured = (std > texture)[box]
    return {"depth_textured": float(near[textured].mean()), "depth_all": float(near.mean()),
            "textured_share": float(textured.mean())}


# synthetic ground truth

ORACLE = "oracle (true frame per pixel)"


def oracle_fusion(stack) -> np.ndarray:
    """Each pixel from the frame its true depth index names, in the truth's geometry (the
    handheld frames un-warped with their known transforms), from the 8-bit frames the
    tools read: the best a tool that picks one frame per pixel could do. It keeps the
    noise and the foreground spill of the picked frame, so averaging tools can beat it."""
    h, w = stack.truth.shape[:2]
    picked = np.zeros_like(stack.truth)
    for k, (frame, t) in enumerate(zip(stack.frames, stack.transforms)):
        frame = np.round(frame * 255.0) / 255.0
        if not t.is_identity:
            frame = cv2.warpAffine(frame, cv2.invertAffineTransform(t.matrix), (w, h),
                                   flags=cv2.INTER_LANCZOS4, borderMode=cv2.BORDER_REFLECT)
        where = stack.depth_index == k
        picked[where] = frame[where]
    return np.clip(picked, 0.0, 1.0).astype(np.float32)


def run_synthetic(args, tools: list[Tool]) -> dict:
    from focusfuse.data.stacks import load_sharp_images, make_stack, write_stack

    if not args.data.is_dir():
        raise SystemExit(f"--data {args.data}: no such folder; give a folder of sharp images "
                         "(BSDS500 is ../shared/data/bsds500)")
    scenes = load_sharp_images(args.data, args.scenes, seed=args.seed, suffix=args.suffix)
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench_stacks-"))
    work.mkdir(parents=True, exist_ok=True)
    rows = []
    try:
        for i, (name, sharp) in enumerate(scenes.items()):
            for variant in args.variants:
                t0 = time.perf_counter()
                stack = make_stack(sharp, frames=args.frames, seed=args.seed + i, variant=variant)
                folder = work / f"{name}-{variant}"
                frames = write_stack(stack, folder, bit_depth=8)
                made = time.perf_counter() - t0
                line = [f"{name} {variant:8s} (made in {made:.2f} s)"]
                if args.oracle:
                    row = {"scene": name, "variant": variant, "method": ORACLE, "rc": 0,
                           "seconds": None, "peak_rss": None}
                    row.update(score(oracle_fusion(stack), stack.truth, centre=args.centre))
                    rows.append(row)
                    line.append(f"oracle {row['psnr']:.2f} dB {row['ssim']:.4f}")
                for tool in tools:
                    out = tool.output(folder)
                    run = run_process(tool.argv(frames, out, folder), folder / f"{tool.name}.log",
                                      args.timeout)
                    row = {"scene": name, "variant": variant, "method": tool.name, **run}
                    if run["rc"] == 0 and out.is_file():
                        row.update(score(read_output(out), stack.truth, centre=args.centre))
                        line.append(f"{tool.name} {row['psnr']:.2f} dB {row['ssim']:.4f} "
                                    f"{run['seconds']:.2f} s")
                        depth_file = tool.depth_output(folder)
                        if depth_file is not None and depth_file.is_file():
                            raw = cv2.imread(str(depth_file), cv2.IMREAD_UNCHANGED)
                            row.update(depth_score(raw, stack, row["registration"],
                                                   centre=args.centre))
                            line.append(f"depth {100 * row['depth_textured']:.1f}%")
                    else:
                        tail = (folder / f"{tool.name}.log").read_text(errors="replace")[-300:]
                        row["error"] = tail
                        line.append(f"{tool.name} FAILED (exit {run['rc']})")
                    rows.append(row)
                print(" | ".join(line), flush=True)
                if not args.keep:
                    shutil.rmtree(folder, ignore_errors=True)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    names = [t.name for t in tools] + ([ORACLE] if args.oracle else [])
    return {"scenes": list(scenes), "rows": rows, "summary": summarize(rows, names, args.variants)}


def summarize(rows: list[dict], names: list[str], variants) -> dict:
    out = {}
    for variant in variants:
        for name in names:
            mine = [r for r in rows if r["variant"] == variant and r["method"] == name]
            good = [r for r in mine if "psnr" in r]
            timed = [r["seconds"] for r in good if r["seconds"] is not None]
            depths = [r for r in good if "depth_textured" in r]
            owns = [r["psnr_own"] for r in good if r.get("psnr_own") is not None]
            out.setdefault(variant, {})[name] = {
                "depth_textured": statistics.fmean(r["depth_textured"] for r in depths)
                if depths else None,
                "depth_all": statistics.fmean(r["depth_all"] for r in depths) if depths else None,
                "depth_worst": min((r["depth_textured"] for r in depths), default=None),
                "psnr": statistics.fmean(r["psnr"] for r in good) if good else None,
                "ssim": statistics.fmean(r["ssim"] for r in good) if good else None,
                "psnr_own": statistics.fmean(owns) if owns and name != ORACLE else None,
                "seconds": statistics.fmean(timed) if timed else None,
                "peak_rss_mb": max((r["peak_rss"] or 0 for r in good), default=0) / 2**20 or None,
                "stacks": len(good), "failed": len(mine) - len(good),
            }
    return out


def synthetic_markdown(summary: dict, n_scenes: int, frames: int) -> str:
    lines = []
    for variant, per_tool in summary.items():
        lines += [f"**{variant}** ({n_scenes} scenes, {frames} frames each)", "",
                  "| method | PSNR (dB) | PSNR, own geometry (dB) | SSIM | s / stack "
                  "| peak memory (MB) | stacks | failed "
                  "| depth ±1, textured / all / worst scene (%) |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for name, s in per_tool.items():
            if s["stacks"]:
                peak = f"{s['peak_rss_mb']:.0f}" if s["peak_rss_mb"] else "–"
                secs = f"{s['seconds']:.2f}" if s["seconds"] is not None else "–"
                depth = "–" if s["depth_textured"] is None else (
                    f"{100 * s['depth_textured']:.1f} / {100 * s['depth_all']:.1f} / "
                    f"{100 * s['depth_worst']:.1f}")
                own = "–" if s["psnr_own"] is None else f"{s['psnr_own']:.2f}"
                lines.append(f"| {name} | {s['psnr']:.2f} | {own} | {s['ssim']:.4f} | {secs} "
                             f"| {peak} | {s['stacks']} | {s['failed']} | {depth} |")
            else:
                lines.append(f"| {name} | – | – | – | – | – | 0 | {s['failed']} | – |")
        lines.append("")
    return "\n".join(lines)


# real stacks


def _label(tile: np.ndarray, text: str) -> np.ndarray:
    band = np.full((22, tile.shape[1], 3), 255, np.uint8)
    cv2.putText(band, text, (4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    return np.concatenate([band, tile], axis=0)


def run_real(args, tools: list[Tool]) -> dict:
    from focusfuse.data.synthesis import list_images
    from focusfuse.io import read_image, write_image

    root = args.real_data
    if not root.is_dir():
        raise SystemExit(f"--real-data {root}: no such folder (the real stacks are "
                         "../shared/data/stacks)")
    out_root = Path(args.out)
    out_root.mkdir(parents=True, exist_ok=True)
    result = {}
    for name in args.stacks:
        frames = list_images(root / name)
        folder = out_root / name
        folder.mkdir(exist_ok=True)
        runs = {t.name: [] for t in tools}
        for rep in range(args.repeat):
            for tool in tools:  # alternately: one run of each tool, then again
                out = tool.output(folder)
                run = run_process(tool.argv(frames, out, root / name),
                                  folder / f"{tool.name}.log", args.timeout)
                runs[tool.name].append(run)
                print(f"{name} run {rep + 1}: {tool.name} {run['seconds']:.2f} s, "
                      f"{(run['peak_rss'] or 0) / 2**20:.0f} MB, exit {run['rc']}", flush=True)
        entry = {"frames": len(frames), "size": None, "methods": {}}
        reference = read_image(frames[len(frames) // 2])
        entry["size"] = list(reference.shape[:2])
        registered = {}
        for tool in tools:
            ok = [r for r in runs[tool.name] if r["rc"] == 0]
            out = tool.output(folder)
            m = {"runs": runs[tool.name], "failed": len(runs[tool.name]) - len(ok)}
            if ok and out.is_file():
                secs = [r["seconds"] for r in ok]
                m.update(median_s=statistics.median(secs), min_s=min(secs), max_s=max(secs),
                         peak_rss_mb=max(r["peak_rss"] or 0 for r in ok) / 2**20 or None)
                registered[tool.name], m["registration"] = register(read_output(out), reference)
            entry["methods"][tool.name] = m
        # per-run ratios of wall times (runs were interleaved, so each pair shares conditions)
        for tool in tools:
            m = entry["methods"][tool.name]
            for peer in tools:
                if peer is tool or "median_s" not in m \
                        or "median_s" not in entry["methods"][peer.name]:
                    continue
                pairs = [a["seconds"] / b["seconds"] for a, b in
                         zip(runs[tool.name], runs[peer.name]) if a["rc"] == 0 and b["rc"] == 0]
                m.setdefault("ratio_to", {})[peer.name] = statistics.median(pairs)
        for crop, (x, y, w, h) in CROPS.get(name, {}).items():
            tiles = [_label((np.clip(img[y:y + h, x:x + w, :3], 0, 1) * 255 + 0.5)
                            .astype(np.uint8), tool) for tool, img in registered.items()]
            if tiles:
                gap = np.full((tiles[0].shape[0], 6, 3), 255, np.uint8)
                row = tiles[0]
                for t in tiles[1:]:
                    row = np.concatenate([row, gap, t], axis=1)
                write_image(folder / f"{name}-{crop}.png", row.astype(np.float32) / 255.0)
        result[name] = entry
    return result


def real_markdown(result: dict, tools: list[Tool]) -> str:
    names = [t.name for t in tools]
    lines = ["| stack | method | median s | min–max s | peak memory (MB) | "
             + " | ".join(f"× {n}" for n in names) + " |",
             "|---|---|---:|---:|---:|" + "---:|" * len(names)]
    for stack, entry in result.items():
        for name, m in entry["methods"].items():
            if "median_s" not in m:
                lines.append(f"| {stack} | {name} | failed | | |" + " |" * len(names))
                continue
            ratios = ["1" if n == name else f"{m['ratio_to'][n]:.2f}"
                      if n in m.get("ratio_to", {}) else "–" for n in names]
            peak = f"{m['peak_rss_mb']:.0f}" if m["peak_rss_mb"] else "?"
            lines.append(f"| {stack} | {name} | {m['median_s']:.2f} | {m['min_s']:.2f}–"
                         f"{m['max_s']:.2f} | {peak} | " + " | ".join(ratios)
                         + " |")
    return "\n".join(lines) + "\n"


# main


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--ours", action="append", metavar="NAME=TEMPLATE",
                   help="our method as a command template with {frames} and {out} (repeatable); "
                        f"default: {OURS!r} if `focusfuse stack` exists")
    p.add_argument("--no-ours", action="store_true", help="run the peers only")
    p.add_argument("--peers", nargs="*", default=list(PEERS), help="peers to run")
    p.add_argument("--timeout", type=float, default=1800.0, help="seconds per tool run")
    p.add_argument("--json", type=Path, help="write the results (and the machine) here")
    p.add_argument("--md", type=Path, help="write the Markdown tables here")
    g = p.add_argument_group("synthetic ground truth")
    g.add_argument("--data", type=Path, default=SHARED_DATA / "bsds500",
                   help="folder of sharp images")
    g.add_argument("--scenes", type=int, default=20, help="images drawn from --data")
    g.add_argument("--suffix", default=None,
                   help="only the images of --data ending so (.png: BSDS500's 68 held-out "
                        "test images, which focusfuse train never sees)")
    g.add_argument("--frames", type=int, default=8, help="frames per stack")
    g.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    g.add_argument("--seed", type=int, default=0,
                   help="seed of the scene choice; scene i's stacks use seed + i")
    g.add_argument("--centre", type=float, default=CENTRE, help="scored central fraction")
    g.add_argument("--keep", metavar="DIR", help="keep stacks and outputs in DIR")
    g.add_argument("--no-oracle", dest="oracle", action="store_false",
                   help="leave out the row of the true depth index's frames")
    g = p.add_argument_group("real stacks")
    g.add_argument("--real", action="store_true", help="time the real stacks instead")
    g.add_argument("--real-data", type=Path, default=SHARED_DATA / "stacks")
    g.add_argument("--stacks", nargs="+", default=list(REAL_STACKS))
    g.add_argument("--repeat", type=int, default=3, help="alternating runs of each tool")
    g.add_argument("--out", default="runs/bench_stacks_real", help="outputs and crops")
    args = p.parse_args(argv)

    from focusfuse.bench.machine import machine_info

    tools = choose_tools(args.ours, args.peers, no_ours=args.no_ours)
    machine = machine_info()
    print(f"machine: {machine['cpu']}, {machine['usable_cpus']} usable cores", flush=True)
    for t in tools:
        print(f"{t.name}: {t.template}", flush=True)
    record = {"machine": machine, "versions": tool_versions(tools),
              "tools": {t.name: t.template for t in tools}, "argv": sys.argv[1:]}
    if args.real:
        record["real"] = run_real(args, tools)
        md = real_markdown(record["real"], tools)
    else:
        record["synthetic"] = run_synthetic(args, tools)
        md = synthetic_markdown(record["synthetic"]["summary"],
                                len(record["synthetic"]["scenes"]), args.frames)
    print(md)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(record, indent=1) + "\n")
    if args.md:
        args.md.parent.mkdir(parents=True, exist_ok=True)
        args.md.write_text(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
