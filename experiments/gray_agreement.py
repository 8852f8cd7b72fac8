"""Gray, low-texture inputs: the shipped model's decisions against the authors' model's.

    python experiments/gray_agreement.py [--weights paper] [--lytro-pairs 20] [--bsds-every 1]
        [--sigma 3] [--quantize] [--threads 1] [--no-swap] [--json FILE]

Both models fuse the same gray pairs in fp32 with the full pipeline (``focusfuse.fuse``):
the 20 Lytro pairs converted to gray (``focusfuse.color.to_gray``), and synthetic pairs
made from the held-out BSDS500 images (the 68 PNG files of ../shared/data/bsds500, in
gray), blurred in complementary regions as the demo does
(``focusfuse.examples.make_multifocus_pair``, Gaussian sigma 3, masks ``region_mask``
"ellipse", "half", "wave" in turn, the true mask: "A is sharp"). The gray inputs are
float (unrounded gray; the blurred regions continuous), or with ``--quantize`` rounded to
8-bit levels, as an 8-bit gray file holds them (then flat areas of the two sources are
often exactly equal).

Prints the machine, then Markdown tables:

1. agreement of the final binary maps (``refined_map``, after small-region removal) of the
   two models, per set (mean, min over pairs), and for the synthetic pairs each model's
   agreement with the true mask;
2. the network scores (P(first input in focus)) by the texture of the 16x16 window each
   score sees: "flat" where both sources' window standard deviation is below 1/255,
   "low" up to 5/255 (below the training data's floor: clear patches of variance <= 25
   on the 0..255 scale are rejected), "textured" above; per class: the share of
   windows, the mean score, the mean |score - 0.5|, the share above 0.5 (leaning to the
   first input), and, with the inputs swapped (unless ``--no-swap``), the mean of
   s(A, B) + s(B, A) - 1 (0 for a network that does not care about the input order;
   positive: it leans to whichever image comes first); for the synthetic pairs the share
   of windows whose score picks the truly sharp source (the mask at the window's
   centre); and how often the two models' scores fall on the same side of 0.5, with the
   mean absolute difference of their scores;
3. where the two models' final maps disagree, by the texture of each pixel's centred
   16x16 window: the share of all pixels in each class, the share of the disagreeing
   pixels, and the disagreement rate within the class; for the synthetic pairs also each
   model's error against the true mask within each class.

Reads ../shared in place; writes nothing unless ``--json`` is given.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np

import focusfuse as ff
from focusfuse.bench.machine import machine_info
from focusfuse.color import to_gray
from focusfuse.data.synthesis import list_images
from focusfuse.examples import make_multifocus_pair, region_mask

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
LYTRO = SHARED / "lytro" / "pairs"
BSDS = SHARED / "bsds500"
AUTHORS_WEIGHTS = SHARED / "weights" / "liu2016-cnnmodel.mat"

WINDOW = 16  # the network's patch
STRIDE = 2
#: texture classes by the larger of the two sources' 16x16 standard deviations (0..1 scale)
CLASSES = (("flat", 0.0, 1.0 / 255), ("low", 1.0 / 255, 5.0 / 255), ("textured", 5.0 / 255, np.inf))
MASK_KINDS = ("ellipse", "half", "wave")


def _box_std(x: np.ndarray, anchor: tuple[int, int]) -> np.ndarray:
    """Standard deviation over WINDOW x WINDOW boxes (the box at ``anchor`` of each pixel)."""
    x = x.astype(np.float64)
    kw = dict(ddepth=cv2.CV_64F, ksize=(WINDOW, WINDOW), anchor=anchor, normalize=True,
              borderType=cv2.BORDER_REFLECT)
    mean = cv2.boxFilter(x, **kw)
    var = cv2.boxFilter(x * x, **kw) - mean * mean
    return np.sqrt(np.maximum(var, 0.0))


def window_std(a: np.ndarray, b: np.ndarray, score_shape: tuple[int, int]) -> np.ndarray:
    """max(std A, std B) over the 16x16 window of each score (window i: pixels 2i .. 2i+15)."""
    s = np.maximum(_box_std(a, (0, 0)), _box_std(b, (0, 0)))
    h, w = score_shape
    return s[: STRIDE * h : STRIDE, : STRIDE * w : STRIDE]


def pixel_std(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """max(std A, std B) over the 16x16 window around each pixel."""
    return np.maximum(_box_std(a, (-1, -1)), _box_std(b, (-1, -1)))


def classify(std: np.ndarray) -> dict[str, np.ndarray]:
    return {name: (std >= lo) & (std < hi) if lo > 0 else std < hi for name, lo, hi in CLASSES}


def fuse_maps(a, b, model, swap: bool) -> dict:
    res = ff.fuse([a, b], model=model, precision="fp32")
    out = {"score": res.score_map, "refined": res.refined_map}
    if swap:
        out["score_swapped"] = ff.fuse([b, a], model=model, precision="fp32").score_map
    return out


def study_pair(a, b, models, swap: bool, truth=None) -> dict:
    maps = {name: fuse_maps(a, b, m, swap) for name, m in models.items()}
    names = list(models)
    score_cls = classify(window_std(a, b, maps[names[0]]["score"].shape))
    pix_cls = classify(pixel_std(a, b))
    ref0, ref1 = (maps[n]["refined"] for n in names)
    disagree = ref0 != ref1
    rec = {"agreement": float(np.mean(~disagree)), "scores": {}, "pixels": {}}
    if truth is not None:
        rec["truth"] = {n: float(np.mean(maps[n]["refined"] == truth)) for n in names}
    s0, s1 = (maps[n]["score"].astype(np.float64) for n in names)
    if truth is not None:  # the true side of each window: the mask at its centre
        h, w = s0.shape
        half = WINDOW // 2
        window_truth = truth[half : half + STRIDE * h : STRIDE, half : half + STRIDE * w : STRIDE]
    for cls, sel in score_cls.items():
        entry = {"count": int(sel.sum()),
                 "same_side": int(((s0[sel] > 0.5) == (s1[sel] > 0.5)).sum()),
                 "abs_diff": float(np.abs(s0[sel] - s1[sel]).sum())}
        for n in names:
            s = maps[n]["score"][sel].astype(np.float64)
            e = {"sum": float(s.sum()), "dev": float(np.abs(s - 0.5).sum()),
                 "near_half": int((np.abs(s - 0.5) < 0.1).sum()), "above": int((s > 0.5).sum())}
            if swap:
                e["order"] = float((s + maps[n]["score_swapped"][sel] - 1.0).sum())
            if truth is not None:
                e["right"] = int(((s > 0.5) == window_truth[sel]).sum())
            entry[n] = e
        rec["scores"][cls] = entry
    for cls, sel in pix_cls.items():
        entry = {"count": int(sel.sum()), "disagree": int((disagree & sel).sum())}
        if truth is not None:
            for n in names:
                entry[f"wrong_{n}"] = int(((maps[n]["refined"] != truth) & sel).sum())
        rec["pixels"][cls] = entry
    rec["n_pixels"] = int(disagree.size)
    rec["n_disagree"] = int(disagree.sum())
    return rec


def _pct(x: float) -> str:
    return f"{100 * x:.2f}%"


def summarise(name: str, recs: list[dict], names: list[str], swap: bool) -> str:
    lines = [f"### {name} ({len(recs)} pairs)", ""]
    agree = np.array([r["agreement"] for r in recs])
    head = "| set | agreement mean | agreement min (pair) |"
    row = f"| {name} | {_pct(agree.mean())} | {_pct(agree.min())} ({recs[int(agree.argmin())]['image']}) |"
    if "truth" in recs[0]:
        for n in names:
            t = np.array([r["truth"][n] for r in recs])
            head += f" {n} vs true mask: mean | min |"
            row += f" {_pct(t.mean())} | {_pct(t.min())} |"
    lines += [head, "|" + "---|" * (head.count("|") - 1), row, ""]

    truth = "truth" in recs[0]
    head = ("| window class | share of windows | model | mean score | mean abs(score − 0.5) "
            "| share abs(score − 0.5) < 0.1 | share > 0.5 |")
    head += " order bias s(A,B)+s(B,A)−1 |" if swap else ""
    head += " picks the sharp source |" if truth else ""
    head += " same side as the other model | mean abs(score difference) |"
    lines += [head, "|" + "---|" * (head.count("|") - 1)]
    total = sum(r["scores"][c]["count"] for r in recs for c, _, _ in CLASSES)
    for cls, _, _ in CLASSES:
        count = sum(r["scores"][cls]["count"] for r in recs)
        if count == 0:
            lines.append(f"| {cls} | 0 | | | | | |" + (" |" if swap else "") + (" |" if truth else "")
                         + " | |")
            continue
        same = sum(r["scores"][cls]["same_side"] for r in recs) / count
        diff = sum(r["scores"][cls]["abs_diff"] for r in recs) / count
        for k, n in enumerate(names):
            agg = {key: sum(r["scores"][cls][n][key] for r in recs)
                   for key in recs[0]["scores"][cls][n]}
            cells = [cls, _pct(count / total), n, f"{agg['sum'] / count:.3f}",
                     f"{agg['dev'] / count:.3f}", _pct(agg["near_half"] / count),
                     _pct(agg["above"] / count)]
            if swap:
                cells.append(f"{agg['order'] / count:+.4f}")
            if truth:
                cells.append(_pct(agg["right"] / count))
            cells += [_pct(same), f"{diff:.3f}"] if k == 0 else ["", ""]
            lines.append("| " + " | ".join(cells) + " |")
    lines.append("")

    head = "| pixel class | share of pixels | share of disagreeing pixels | disagreement within class |"
    if "truth" in recs[0]:
        head += "".join(f" {n} error within class |" for n in names)
    lines += [head, "|" + "---|" * (head.count("|") - 1)]
    n_pix = sum(r["n_pixels"] for r in recs)
    n_dis = sum(r["n_disagree"] for r in recs)
    for cls, _, _ in CLASSES:
        count = sum(r["pixels"][cls]["count"] for r in recs)
        dis = sum(r["pixels"][cls]["disagree"] for r in recs)
        cells = [cls, _pct(count / n_pix), _pct(dis / max(n_dis, 1)), _pct(dis / max(count, 1))]
        if "truth" in recs[0]:
            cells += [_pct(sum(r["pixels"][cls][f"wrong_{n}"] for r in recs) / max(count, 1))
                      for n in names]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--weights", default="paper",
                    help="the model compared with the authors': a shipped name or a weights file")
    ap.add_argument("--lytro-pairs", type=int, default=20, help="use the first N Lytro pairs")
    ap.add_argument("--bsds-every", type=int, default=1,
                    help="use every N-th of the 68 held-out PNG images (sorted by name)")
    ap.add_argument("--sigma", type=float, default=3.0, help="Gaussian blur of the synthetic pairs")
    ap.add_argument("--quantize", action="store_true",
                    help="round the gray inputs to 8-bit levels (k/255), as 8-bit files hold them")
    ap.add_argument("--threads", type=int, default=1, help="torch and OpenCV threads")
    ap.add_argument("--no-swap", action="store_true",
                    help="skip the second fusion with the inputs swapped (halves the time)")
    ap.add_argument("--json", type=Path, default=None, help="write the per-pair records here")
    args = ap.parse_args(argv)
    for path in (LYTRO, BSDS, AUTHORS_WEIGHTS):
        if not path.exists():
            print(f"needs the shared data at {path}", file=sys.stderr)
            return 2
    import torch

    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    models = {"shipped": ff.load_weights(args.weights), "authors": ff.load_weights(AUTHORS_WEIGHTS)}
    names = list(models)
    swap = not args.no_swap
    print(json.dumps(machine_info()))
    print()
    t0 = time.perf_counter()

    def prepare(x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, np.float32)
        return np.round(x * 255.0).astype(np.float32) / 255.0 if args.quantize else x

    lytro = []
    for i in range(1, args.lytro_pairs + 1):
        a, b = (prepare(to_gray(ff.read_image(LYTRO / f"lytro-{i:02d}-{s}.jpg"))) for s in "AB")
        lytro.append(study_pair(a, b, models, swap) | {"image": f"lytro-{i:02d}"})
        print(f"lytro-{i:02d}: agreement {_pct(lytro[-1]['agreement'])}", file=sys.stderr)

    files = list_images(BSDS, suffixes=(".png",))[:: args.bsds_every]
    bsds = []
    for k, path in enumerate(files):
        sharp = to_gray(ff.read_image(path))
        truth = region_mask(sharp.shape, kind=MASK_KINDS[k % len(MASK_KINDS)])
        a, b = map(prepare, make_multifocus_pair(sharp, truth, sigma=args.sigma))
        bsds.append(study_pair(a, b, models, swap, truth=truth))
        bsds[-1]["image"] = path.name
        print(f"{path.name}: agreement {_pct(bsds[-1]['agreement'])}, vs truth "
              + ", ".join(f"{n} {_pct(v)}" for n, v in bsds[-1]["truth"].items()), file=sys.stderr)

    kind = "8-bit" if args.quantize else "float"
    print(summarise(f"Lytro pairs in gray, {kind}", lytro, names, swap))
    print(summarise(f"BSDS500 held-out, synthetic gray pairs, {kind} (sigma {args.sigma:g})", bsds,
                    names, swap))
    print(f"{time.perf_counter() - t0:.0f} s", file=sys.stderr)
    if args.json:
        args.json.write_text(json.dumps({"lytro": lytro, "bsds": bsds, "args": vars(args) | {
            "json": str(args.json)}, "machine": machine_info()}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
