"""Tables, plots and the report of a benchmark run: CSV, Markdown, self-contained HTML.

:func:`summarize` turns the per-pair records of :mod:`focusfuse.bench.runner` into table
rows (mean of each metric; median, quartiles and range of the time per pair and per
megapixel); :func:`write_report` writes ``per_image.csv``, ``averages.csv``,
``results.json``, ``report.md`` with its figures in ``figures/``, and ``report.html`` with
the same figures embedded as base64 PNG. The figures (matplotlib) are bar plots of each
metric and of the time, for a few pairs the sources, crops of every fused image where the
methods disagree most and each method's decision map, and for the CNN methods what the
network sees (feature maps of each convolutional layer, Liu et al. 2017 Fig. 3) and its
maps (score, focus, binary, refined, decision: Figs. 4 and 5).

When the pairs have an all-in-focus truth, the tables add PSNR and SSIM against it beside
the eight metrics, the pairs' per-pixel oracle is a row of its own ("oracle", the ceiling of
any decision that takes each pixel from one source), and :func:`truth_correlations` gives
the Spearman rank correlation of each metric with PSNR over the pairs.
"""

from __future__ import annotations

import base64
import csv
import html
import io
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from focusfuse.bench.runner import MethodRun, Pair, _drop_alpha, stats
from focusfuse.bench.truth import TRUTH_METRICS

__all__ = ["BenchRun", "TOLERANCE", "deviations", "summarize", "truth_correlations",
           "write_report"]

#: agreement asked of rescored published images (the metrics issue): absolute, QCV relative
TOLERANCE = {"abs": 1e-3, "QCV_rel": 1e-3}

OURS, RESCORED, PUBLISHED = "focusfuse", "published image, our metrics", "published value"
ORACLE = "truth: per-pixel oracle"


@dataclass
class BenchRun:
    """Everything a report needs: the pairs, our methods' runs, the published results."""

    pairs: list[Pair]
    runs: list[MethodRun]
    reference: dict[str, list[dict]] = field(default_factory=dict)  # method -> rescored records
    published: dict[str, list[dict]] = field(default_factory=dict)  # method -> metrics.csv rows
    machine: dict = field(default_factory=dict)
    pairs_dir: str = ""
    reference_dir: str | None = None
    oracle: list[dict] = field(default_factory=list)  # the oracle image's record per pair
    registered: bool = False  # images were registered to the truth before PSNR and SSIM

    @property
    def has_truth(self) -> bool:
        return any(p.truth is not None for p in self.pairs)


# numbers ------------------------------------------------------------------------------

def _mean_scores(records: Sequence[dict]) -> dict[str, float]:
    from focusfuse.metrics import METRICS

    means = {m: float(np.mean([r["scores"][m] for r in records])) if records else math.nan
             for m in METRICS}
    truths = [r["truth"] for r in records if r.get("truth")]
    for m in TRUTH_METRICS:
        means[m] = float(np.mean([t[m] for t in truths])) if truths else math.nan
    means["n_truth"] = len(truths)
    return means


def summarize(bench: BenchRun, *, published_rows: str = "with-images") -> list[dict]:
    """One row per method and source: ``name``, ``source``, ``n``, the metric means, and for
    our methods ``precision``, ``device``, ``seconds`` and ``per_mp`` (:func:`stats`) and
    ``warmup``. ``published_rows``: "with-images" lists the survey's values only for the
    methods whose images were rescored, "all" every method of ``metrics.csv``."""
    rows = []
    for run in bench.runs:
        recs = run.records
        rows.append({
            "name": run.spec.label, "source": OURS, "n": len(recs), **_mean_scores(recs),
            "precision": run.precision, "device": run.device,
            "seconds": stats([r["seconds"] for r in recs]),
            "per_mp": stats([r["seconds"] / r["megapixels"] for r in recs]),
            "warmup": run.warmup_seconds, "megapixels": stats([r["megapixels"] for r in recs]),
        })
    if bench.oracle:
        rows.append({"name": "oracle", "source": ORACLE, "n": len(bench.oracle),
                     **_mean_scores(bench.oracle)})
    for method, recs in bench.reference.items():
        rows.append({"name": method, "source": RESCORED, "n": len(recs), **_mean_scores(recs)})
        if method in bench.published:
            pub = bench.published[method]
            rows.append({"name": method, "source": PUBLISHED, "n": len(pub), **_mean_scores(pub)})
    if published_rows == "all":
        for method, pub in bench.published.items():
            if method not in bench.reference:
                rows.append({"name": method, "source": PUBLISHED, "n": len(pub),
                             **_mean_scores(pub)})
    return rows


def deviations(bench: BenchRun) -> dict[str, dict]:
    """Per metric, how far our scores of the published images are from the published values:
    ``{metric: {"max", "pair", "method", "within", "count", "relative"}}`` (QCV relative)."""
    from focusfuse.metrics import METRICS

    out = {}
    for m in METRICS:
        worst, where, within, count = -1.0, ("", ""), 0, 0
        for method, recs in bench.reference.items():
            pub = {r["pair"]: r["scores"] for r in bench.published.get(method, [])}
            for r in recs:
                if r["pair"] not in pub:
                    continue
                ours, ref = r["scores"][m], pub[r["pair"]][m]
                dev = abs(ours - ref) / abs(ref) if m == "QCV" else abs(ours - ref)
                tol = TOLERANCE["QCV_rel"] if m == "QCV" else TOLERANCE["abs"]
                within += dev <= tol
                count += 1
                if dev > worst:
                    worst, where = dev, (r["pair"], method)
        if count:
            out[m] = {"max": worst, "pair": where[0], "method": where[1], "within": within,
                      "count": count, "relative": m == "QCV"}
    return out


# tables -------------------------------------------------------------------------------

def _fmt_metric(m: str, v: float) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    return f"{v:.2f}" if m in ("QCV", "PSNR") else f"{v:.4f}"


def _columns(rows: list[dict]) -> list[str]:
    """The score columns: PSNR and SSIM first when any row has them, then the eight."""
    from focusfuse.metrics import METRICS

    truth = [m for m in TRUTH_METRICS if any(not math.isnan(r.get(m, math.nan)) for r in rows)]
    return [*truth, *METRICS]


def _spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman's rank correlation; NaN for fewer than 3 values or a constant one."""
    from scipy.stats import spearmanr

    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    if x.size < 3 or np.unique(x).size < 2 or np.unique(y).size < 2:
        return math.nan
    return float(spearmanr(x, y).statistic)


def truth_correlations(bench: BenchRun) -> dict[str, dict]:
    """Spearman's rank correlation of each metric (and SSIM) with PSNR against the truth.

    ``{metric: {"pooled": rho, "n": count, "within_pair": rho, "pairs": count,
    "per_method": {label: rho}}}``: pooled over every (method, pair) of our methods; the
    mean over pairs of the correlation across the methods on that pair (how well the metric
    ranks the methods on one scene; pairs with a finite PSNR for at least 3 methods);
    and for each method over its pairs. QCV is lower-is-better: it agrees with PSNR when its
    correlation is negative. Empty without a truth.
    """
    from focusfuse.metrics import METRICS

    rows = []  # (method, pair, psnr, {metric: value})
    for run in bench.runs:
        for r in run.records:
            t = r.get("truth")
            if t and math.isfinite(t["PSNR"]):
                rows.append((run.spec.label, r["pair"], t["PSNR"],
                             {**r["scores"], "SSIM": t["SSIM"]}))
    if not rows:
        return {}
    out = {}
    for m in ("SSIM", *METRICS):
        pooled = _spearman([v[m] for *_, v in rows], [p for _, _, p, _ in rows])
        per_method = {}
        for run in bench.runs:
            mine = [(p, v[m]) for label, _, p, v in rows if label == run.spec.label]
            per_method[run.spec.label] = _spearman([v for _, v in mine], [p for p, _ in mine])
        within = []
        for pair in dict.fromkeys(name for _, name, _, _ in rows):
            here = [(p, v[m]) for _, name, p, v in rows if name == pair]
            rho = _spearman([v for _, v in here], [p for p, _ in here])
            if not math.isnan(rho):
                within.append(rho)
        out[m] = {"pooled": pooled, "n": len(rows),
                  "within_pair": float(np.mean(within)) if within else math.nan,
                  "pairs": len(within), "per_method": per_method}
    return out


def correlation_table(corr: dict[str, dict]) -> tuple[list[str], list[list[str]]]:
    methods = list(next(iter(corr.values()))["per_method"]) if corr else []
    header = ["metric", "pooled", "n", "within a pair (mean)", "pairs", *methods]

    def f(v):
        return "" if math.isnan(v) else f"{v:+.2f}"
    cells = [[m, f(c["pooled"]), str(c["n"]), f(c["within_pair"]), str(c["pairs"]),
              *(f(c["per_method"][k]) for k in methods)] for m, c in corr.items()]
    return header, cells


def _fmt_s(v: float | None) -> str:
    if v is None or math.isnan(v):
        return ""
    return f"{v:.3f}" if v < 10 else f"{v:.1f}"


def quality_table(rows: list[dict]) -> tuple[list[str], list[list[str]], list[list[bool]]]:
    """Header, cells and which cells are the best of their column (QCV: lowest; the oracle
    row, a ceiling and not a method, is not a candidate)."""
    from focusfuse.metrics import LOWER_IS_BETTER

    columns = _columns(rows)
    header = ["method", "source", "n", *columns]
    best = {}
    for m in columns:
        vals = [r[m] for r in rows if not math.isnan(r[m]) and r["source"] != ORACLE]
        if vals:
            best[m] = min(vals) if m in LOWER_IS_BETTER else max(vals)
    cells, bold = [], []
    for r in rows:
        cells.append([r["name"], r["source"], str(r["n"]), *(_fmt_metric(m, r[m]) for m in columns)])
        bold.append([False, False, False,
                     *(m in best and r["source"] != ORACLE
                       and _fmt_metric(m, r[m]) == _fmt_metric(m, best[m]) for m in columns)])
    return header, cells, bold


def speed_table(rows: list[dict]) -> tuple[list[str], list[list[str]]]:
    header = ["method", "precision", "device", "s / pair: median", "IQR", "min–max",
              "s / megapixel: median", "IQR", "warm-up s"]
    cells = []
    for r in rows:
        if r["source"] != OURS:
            continue
        s, p = r["seconds"], r["per_mp"]
        cells.append([r["name"], r["precision"], r["device"], _fmt_s(s["median"]),
                      f"{_fmt_s(s['q1'])}–{_fmt_s(s['q3'])}", f"{_fmt_s(s['min'])}–{_fmt_s(s['max'])}",
                      _fmt_s(p["median"]), f"{_fmt_s(p['q1'])}–{_fmt_s(p['q3'])}",
                      _fmt_s(r["warmup"]) if r["warmup"] is not None else "(cached)"])
    return header, cells


def deviation_table(devs: dict[str, dict]) -> tuple[list[str], list[list[str]]]:
    header = ["metric", "largest deviation", "where", "within tolerance"]
    cells = []
    for m, d in devs.items():
        value = f"{d['max']:.1e}" + (" (relative)" if d["relative"] else "")
        cells.append([m, value, f"{d['pair']}, {d['method']}", f"{d['within']}/{d['count']}"])
    return header, cells


def _md_table(header, cells, bold=None) -> list[str]:
    lines = ["| " + " | ".join(header) + " |",
             "|" + "|".join("---" if i < 2 else "---:" for i in range(len(header))) + "|"]
    for i, row in enumerate(cells):
        shown = [f"**{c}**" if bold and bold[i][j] and c else c for j, c in enumerate(row)]
        lines.append("| " + " | ".join(shown) + " |")
    return lines


def _html_table(header, cells, bold=None) -> str:
    out = ["<table><thead><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in header)
           + "</tr></thead><tbody>"]
    for i, row in enumerate(cells):
        tds = []
        for j, c in enumerate(row):
            c = html.escape(c)
            tds.append(f"<td><b>{c}</b></td>" if bold and bold[i][j] and c else f"<td>{c}</td>")
        out.append("<tr>" + "".join(tds) + "</tr>")
    return "".join(out) + "</tbody></table>"


def write_csv(bench: BenchRun, rows: list[dict], out: Path) -> tuple[Path, Path]:
    from focusfuse.metrics import METRICS

    truth = list(TRUTH_METRICS) if bench.has_truth else []  # columns only with a truth

    def values(r):
        t = r.get("truth") or {}
        return [*(f"{t[m]:.6f}" if m in t else "" for m in truth),
                *(f"{r['scores'][m]:.6f}" for m in METRICS)]

    per_image = out / "per_image.csv"
    with open(per_image, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["pair", "method", "source", "precision", "device", "seconds", "megapixels",
                    *truth, *METRICS])
        for run in bench.runs:
            for r in run.records:
                w.writerow([r["pair"], run.spec.label, OURS, run.precision, run.device,
                            f"{r['seconds']:.6f}", f"{r['megapixels']:.6f}", *values(r)])
        for r in bench.oracle:
            w.writerow([r["pair"], "oracle", ORACLE, "", "", "", "", *values(r)])
        for method, recs in bench.reference.items():
            for r in recs:
                w.writerow([r["pair"], method, RESCORED, "", "", "", "", *values(r)])
            for r in bench.published.get(method, []):
                w.writerow([r["pair"], method, PUBLISHED, "", "", "", "", *values(r)])
    averages = out / "averages.csv"
    with open(averages, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["method", "source", "n", *truth, *METRICS, "precision", "device",
                    "s_per_pair_median", "s_per_pair_q1", "s_per_pair_q3", "s_per_pair_min",
                    "s_per_pair_max", "s_per_mp_median", "s_per_mp_q1", "s_per_mp_q3",
                    "warmup_s"])
        for r in rows:
            timing = ["", "", "", "", "", "", "", "", "", "", ""]
            if r["source"] == OURS:
                s, p = r["seconds"], r["per_mp"]
                timing = [r["precision"], r["device"], *(f"{s[k]:.6f}" for k in
                                                         ("median", "q1", "q3", "min", "max")),
                          *(f"{p[k]:.6f}" for k in ("median", "q1", "q3")),
                          "" if r["warmup"] is None else f"{r['warmup']:.6f}"]
            w.writerow([r["name"], r["source"], r["n"], *(f"{r[m]:.6f}" for m in truth),
                        *(f"{r[m]:.6f}" for m in METRICS), *timing])
    return per_image, averages


# figures ------------------------------------------------------------------------------

def _save_png(fig, path: Path, *, palette: bool = False, dpi: int = 100) -> Path:
    """Save a matplotlib figure; ``palette``: 256-colour PNG (a third of the size for photos)."""
    import matplotlib.pyplot as plt
    from PIL import Image

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight", pad_inches=0.05)
    plt.close(fig)
    buf.seek(0)
    im = Image.open(buf).convert("RGB")
    if palette:
        im = im.quantize(256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    im.save(path, optimize=True)
    return path


def _thumb(image: np.ndarray, size: int) -> np.ndarray:
    import cv2

    h, w = image.shape[:2]
    s = size / max(h, w)
    if s >= 1:
        return image
    return cv2.resize(np.ascontiguousarray(image), (max(1, round(w * s)), max(1, round(h * s))),
                      interpolation=cv2.INTER_AREA)


def metrics_figure(rows: list[dict], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from focusfuse.metrics import LOWER_IS_BETTER, METRICS

    shown = [r for r in rows if r["source"] in (OURS, RESCORED)]
    labels = [r["name"] if r["source"] == OURS else f"{r['name']} (pub.)" for r in shown]
    colours = ["C0" if r["source"] == OURS else "C1" for r in shown]
    fig, axes = plt.subplots(2, 4, figsize=(12, 5.2))
    for ax, m in zip(axes.ravel(), METRICS):
        vals = np.array([r[m] for r in shown])
        ax.bar(range(len(vals)), vals, color=colours)
        lo, hi = np.nanmin(vals), np.nanmax(vals)
        pad = 0.15 * (hi - lo) if hi > lo else 0.05 * abs(hi) + 1e-3
        ax.set_ylim(lo - pad, hi + pad)
        ax.set_title(m + (" (lower is better)" if m in LOWER_IS_BETTER else ""), fontsize=10)
        ax.set_xticks(range(len(vals)))
        ax.set_xticklabels(labels, rotation=60, ha="right", fontsize=7)
        ax.tick_params(axis="y", labelsize=7)
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle("mean over the pairs; blue: focusfuse, orange: published images scored by "
                 "focusfuse.metrics (y axes do not start at 0)", fontsize=9)
    fig.tight_layout()
    return _save_png(fig, path)


def timing_figure(rows: list[dict], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ours = [r for r in rows if r["source"] == OURS]
    fig, axes = plt.subplots(1, 2, figsize=(10, 0.45 * len(ours) + 1.2))
    for ax, key, title in zip(axes, ("seconds", "per_mp"), ("s / pair", "s / megapixel")):
        med = np.array([r[key]["median"] for r in ours])
        err = np.array([[r[key]["median"] - r[key]["q1"] for r in ours],
                        [r[key]["q3"] - r[key]["median"] for r in ours]])
        y = np.arange(len(ours))
        ax.barh(y, med, xerr=err, color="C0", capsize=3)
        ax.set_yticks(y)
        ax.set_yticklabels([f"{r['name']} ({r['precision']})" for r in ours], fontsize=8)
        ax.invert_yaxis()
        ax.set_xscale("log")
        ax.set_title(f"{title}: median and IQR", fontsize=10)
        ax.grid(axis="x", alpha=0.3, which="both")
        for yi, v in zip(y, med):
            ax.text(v, yi, f" {v:.2f}", va="center", fontsize=7)
    fig.tight_layout()
    return _save_png(fig, path)


def _crop_box(images: Sequence[np.ndarray], size: int) -> tuple[int, int, int]:
    """(y, x, side) of the square where the fused images disagree most."""
    import cv2

    from focusfuse.color import to_gray

    grays = np.stack([to_gray(np.asarray(im, dtype=np.float32)) for im in images])
    h, w = grays.shape[1:]
    side = min(size, h, w)
    spread = grays.std(axis=0).astype(np.float32) if len(grays) > 1 else np.zeros((h, w), np.float32)
    if not spread.any():
        return (h - side) // 2, (w - side) // 2, side
    mean = cv2.blur(spread, (side, side), borderType=cv2.BORDER_CONSTANT)
    half = side // 2
    valid = mean[half:h - side + half + 1, half:w - side + half + 1]
    y, x = np.unravel_index(np.argmax(valid), valid.shape)
    return int(y), int(x), side


def _pair_images(bench: BenchRun, pair: Pair, out: Path):
    """[(label, fused image, decision map, is_true_decision)] for every method on ``pair``."""
    from focusfuse.io import read_image
    from focusfuse.visualize import source_map

    a, b = _drop_alpha(read_image(pair.a)), _drop_alpha(read_image(pair.b))
    items = []
    for run in bench.runs:
        folder = out / "fused" / run.spec.slug
        fused_path = folder / f"{pair.name}.png"
        if not fused_path.is_file():
            continue
        fused = read_image(fused_path)
        dpath = folder / f"{pair.name}-decision.png"
        if dpath.is_file():
            items.append((run.spec.label, fused, read_image(dpath), True))
        else:
            items.append((run.spec.label, fused, source_map(a, b, fused), False))
    if pair.oracle is not None and bench.oracle:
        oracle = _drop_alpha(read_image(pair.oracle))
        if oracle.shape == a.shape:
            items.append(("oracle", oracle, source_map(a, b, oracle), False))
    for method, recs in bench.reference.items():
        for r in recs:
            if r["pair"] == pair.name:
                fused = _drop_alpha(read_image(r["image"]))
                items.append((f"{method} (pub.)", fused, source_map(a, b, fused), False))
    return a, b, items


def pair_figure(bench: BenchRun, pair: Pair, out: Path, path: Path, *, crop: int = 128,
                thumb: int = 128, per_row: int = 8) -> Path:
    """Sources with the crop marked; each method's crop; each method's decision map
    (``per_row`` panels to a row, the crops above the maps)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    a, b, items = _pair_images(bench, pair, out)
    y, x, side = _crop_box([im for _, im, _, _ in items], crop)
    h, w = a.shape[:2]
    panels = [(f"source {k}", src, src, None) for k, src in (("A", a), ("B", b))]
    if pair.truth is not None:
        from focusfuse.io import read_image

        truth = _drop_alpha(read_image(pair.truth))
        if truth.shape == a.shape:
            panels.append(("truth", truth, truth, None))
    panels += items
    blocks = math.ceil(len(panels) / per_row)
    n = min(per_row, len(panels))
    fig, axes = plt.subplots(2 * blocks, n, figsize=(1.3 * n, 2.75 * blocks))
    axes = np.asarray(axes).reshape(2 * blocks, n)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_frame_on(False)
    for k, (label, fused, dmap, true_d) in enumerate(panels):
        top, bottom = axes[2 * (k // per_row), k % per_row], axes[2 * (k // per_row) + 1, k % per_row]
        top.set_frame_on(True)
        bottom.set_frame_on(True)
        top.imshow(np.clip(fused[y:y + side, x:x + side], 0, 1), interpolation="nearest",
                   cmap=None if fused.ndim == 3 else "gray", vmin=0, vmax=1)
        top.set_title(label, fontsize=7)
        if true_d is None:  # a source: the whole image with the crop marked
            bottom.imshow(np.clip(_thumb(fused, thumb), 0, 1), extent=(0, w, h, 0),
                          cmap=None if fused.ndim == 3 else "gray", vmin=0, vmax=1)
            bottom.set_title("crop in red", fontsize=6)
        else:
            bottom.imshow(_thumb(np.clip(dmap, 0, 1).astype(np.float32), thumb), cmap="gray",
                          vmin=0, vmax=1, extent=(0, w, h, 0))
            bottom.set_title("decision D" if true_d else "closer to A (est.)", fontsize=6)
        bottom.add_patch(Rectangle((x, y), side, side, fill=False, color="red", lw=0.7))
    fig.suptitle(f"{pair.name}: {side}×{side} crops where the fused images differ most, and "
                 "the weight of A of each method (white: A, black: B)", fontsize=8)
    fig.tight_layout()
    return _save_png(fig, path, palette=True)


def network_figures(run: MethodRun, pair: Pair, folder: Path, *, k: int = 4, size: int = 160
                    ) -> list[Path]:
    """What the network of ``run`` sees on ``pair``: feature maps of each conv layer (a row
    per source, ``k`` channels normalised to [0, 1] over both sources) and the maps of the
    pipeline (score, focus, binary, refined, decision)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from focusfuse import fuse
    from focusfuse.color import to_gray
    from focusfuse.io import read_image
    from focusfuse.models import load_weights
    from focusfuse.visualize import LAYERS, feature_maps, normalise_channels, select_channels

    model = load_weights(run.spec.weights)
    a, b = _drop_alpha(read_image(pair.a)), _drop_alpha(read_image(pair.b))
    ga, gb = to_gray(a), to_gray(b)
    fa, fb = feature_maps(model, ga), feature_maps(model, gb)
    fig, axes = plt.subplots(2 * len(LAYERS), k + 1, figsize=(1.3 * (k + 1), 1.3 * 2 * len(LAYERS)))
    for li, layer in enumerate(LAYERS):
        chosen = select_channels([fa[layer], fb[layer]], k=k)
        na, nb = normalise_channels([fa[layer][chosen], fb[layer][chosen]])
        for si, (name, gray, maps) in enumerate((("A", ga, na), ("B", gb, nb))):
            row = 2 * li + si
            axes[row, 0].imshow(_thumb(gray, size), cmap="gray", vmin=0, vmax=1)
            axes[row, 0].set_ylabel(f"{layer}\n{name}", fontsize=7)
            for ci, c in enumerate(chosen):
                axes[row, ci + 1].imshow(_thumb(maps[ci], size), cmap="gray", vmin=0, vmax=1)
                if si == 0:
                    axes[row, ci + 1].set_title(f"{layer} ch {c}", fontsize=7)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(f"{run.spec.label} on {pair.name}: feature maps (ReLU outputs; each channel "
                 "scaled to [0, 1] over A and B together)", fontsize=7)
    fig.tight_layout()
    slug = run.spec.slug
    paths = [_save_png(fig, folder / f"features-{slug}-{pair.name}.png", palette=True)]

    result = fuse([a, b], method="cnn", model=model, precision=run.spec.precision,
                  device=run.device)
    panels = [("A", ga), ("B", gb), *result.steps[0].items()]
    fig, axes = plt.subplots(1, len(panels), figsize=(1.5 * len(panels), 1.9))
    for ax, (name, im) in zip(axes, panels):
        ax.imshow(_thumb(np.asarray(im, dtype=np.float32), size), cmap="gray", vmin=0, vmax=1,
                  interpolation="nearest")
        shape = np.asarray(im).shape
        ax.set_title(f"{name} {shape[1]}×{shape[0]}" if name == "score" else name, fontsize=7)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(f"{run.spec.label} on {pair.name}: score, focus, binary, refined "
                 "(small regions removed) and decision maps", fontsize=7)
    fig.tight_layout()
    paths.append(_save_png(fig, folder / f"maps-{slug}-{pair.name}.png", palette=True))
    return paths


# the report ---------------------------------------------------------------------------

def _machine_rows(bench: BenchRun) -> list[list[str]]:
    rows = []
    for k, v in bench.machine.items():
        if isinstance(v, dict):
            v = ", ".join(f"{a}={b}" for a, b in v.items()) or "(none)"
        rows.append([k, str(v)])
    return rows


def write_report(bench: BenchRun, out: str | os.PathLike, *, show: Sequence[str] | int = 2,
                 features_pair: str | None = None, title: str | None = None,
                 html_report: bool = True, figures: bool = True) -> dict[str, Path]:
    """Write CSV, JSON, Markdown (with ``figures/``) and HTML under ``out``; returns their paths.

    ``show``: the pairs (names) shown in figures, or how many of the first pairs.
    ``features_pair``: the pair whose feature maps are shown (default: the first shown).
    """
    from focusfuse.metrics import METRICS

    out = Path(out)
    names = [p.name for p in bench.pairs]
    if isinstance(show, int):
        shown = names[:show]
    else:
        unknown = [s for s in show if s not in names]
        if unknown:
            raise ValueError(f"pairs to show {unknown} are not among the pairs ({', '.join(names[:5])}, ...)")
        shown = list(show)
    if features_pair is not None and features_pair not in names:
        raise ValueError(f"features pair {features_pair!r} is not among the pairs ({', '.join(names[:5])}, ...)")
    features_pair = features_pair or (shown[0] if shown else names[0])

    rows = summarize(bench)
    devs = deviations(bench)
    corr = truth_correlations(bench)
    paths = {}
    paths["per_image"], paths["averages"] = write_csv(bench, rows, out)
    paths["json"] = out / "results.json"
    paths["json"].write_text(json.dumps({
        "machine": bench.machine, "pairs_dir": bench.pairs_dir,
        "reference_dir": bench.reference_dir, "pairs": names,
        "methods": [{"label": r.spec.label, "method": r.spec.method,
                     "weights": str(r.spec.weights) if r.spec.weights else "shipped",
                     "precision": r.precision, "device": r.device,
                     "warmup_seconds": r.warmup_seconds} for r in bench.runs],
        "summary": rows, "deviations": devs,
        "per_pair": {r.spec.label: [{k: v for k, v in rec.items() if k != "settings"}
                                    for rec in r.records] for r in bench.runs},
        **({"registered_to_truth": bench.registered, "truth_correlations": corr,
            "oracle": [{k: v for k, v in rec.items() if k != "settings"}
                       for rec in bench.oracle]} if bench.has_truth else {}),
    }, indent=1, default=str))

    figs: list[tuple[str, Path, str]] = []  # (section, path, caption)
    figdir = out / "figures"
    figure_note = None
    if figures:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            figure_note = "figures left out: matplotlib is not installed (pip install 'focusfuse[bench]')"
        else:
            figdir.mkdir(exist_ok=True)
            figs.append(("quality", metrics_figure(rows, figdir / "metrics.png"),
                         "Mean of each metric per method"))
            if any(r.records for r in bench.runs):
                figs.append(("speed", timing_figure(rows, figdir / "timing.png"),
                             "Time per pair and per megapixel (log scale)"))
            by_name = {p.name: p for p in bench.pairs}
            for name in shown:
                figs.append(("pairs", pair_figure(bench, by_name[name], out,
                                                  figdir / f"pair-{name}.png"), name))
            seen = set()
            for run in bench.runs:
                key = (run.spec.weights, run.spec.precision)
                if run.spec.method == "cnn" and key not in seen:
                    seen.add(key)
                    for p in network_figures(run, by_name[features_pair], figdir):
                        figs.append(("network", p, f"{run.spec.label}, {p.stem.split('-')[0]}"))

    title = title or f"focusfuse bench: {len(names)} pairs from {Path(bench.pairs_dir).name or bench.pairs_dir}"
    q = quality_table(rows)
    s = speed_table(rows)
    d = deviation_table(devs)
    intro = (f"{len(names)} pairs from `{bench.pairs_dir}`"
             + (f"; published results from `{bench.reference_dir}`" if bench.reference_dir else "")
             + ". Every fused image is rounded to 8 bit (as published images are) and scored "
             "with `focusfuse.metrics` on the gray images (QCV: lower is better; the rest: "
             "higher)" + ("; PSNR and SSIM are against the pairs' all-in-focus truth (see "
                           "\"Against the truth\")" if bench.has_truth else "")
             + ". Best of each column in bold.")
    speed_note = ("Time of the `focusfuse.fuse` call alone (no reading, writing or scoring), "
                  "one run per pair after one untimed warm-up run per method; the CNN's model "
                  "is loaded once per method. IQR: 25th–75th percentile over the pairs.")
    truth_note = (
        "PSNR (dB) and SSIM (scikit-image, data range 1, colour) of each 8-bit image against "
        "the pair's all-in-focus truth, on the central 80% of each side"
        + (", after registering the image to the truth (OpenCV ECC, affine)"
           if bench.registered else "")
        + ". \"oracle\": the pairs' per-pixel oracle images (each pixel from the source "
        "least blurred there), the ceiling of any decision that takes each pixel from one "
        "source; it is not a candidate for the bold. Spearman's rank correlation of each "
        "metric with PSNR: pooled over every (method, pair); within a pair, across the "
        "methods, averaged over the pairs; and per method over its pairs. QCV is lower-is-"
        "better, so it agrees with PSNR when negative.")
    dev_note = (f"The published images scored by `focusfuse.metrics` against the published "
                f"values of `metrics.csv`; tolerance {TOLERANCE['abs']:g} absolute, QCV "
                f"{100 * TOLERANCE['QCV_rel']:g}% relative.")

    md = [f"# {title}", "", intro, "", "## Quality", "", *_md_table(*q), ""]
    if bench.has_truth:
        md += ["## Against the truth", "", truth_note, ""]
        if corr:
            md += [*_md_table(*correlation_table(corr)), ""]
    md += ["## Speed", "", speed_note, "", *_md_table(*s), ""]
    if devs:
        md += ["## Published images rescored", "", dev_note, "", *_md_table(*d), ""]
    if figs or figure_note:
        md += ["## Figures", ""]
        if figure_note:
            md += [figure_note, ""]
        for section, p, caption in figs:
            md += [f"**{caption}**", "", f"![{caption}](figures/{p.name})", ""]
    md += ["## Machine", "", *_md_table(["key", "value"], _machine_rows(bench)), "",
           "Per-pair values: `per_image.csv`; means and times: `averages.csv`; "
           "everything: `results.json`.", ""]
    paths["markdown"] = out / "report.md"
    paths["markdown"].write_text("\n".join(md))

    if html_report:
        def img(p: Path) -> str:
            data = base64.b64encode(p.read_bytes()).decode("ascii")
            return f'<img src="data:image/png;base64,{data}" alt="{html.escape(p.stem)}">'

        parts = [
            "<!doctype html><html><head><meta charset='utf-8'>",
            f"<title>{html.escape(title)}</title><style>",
            "body{font-family:system-ui,sans-serif;max-width:1500px;margin:1em auto;padding:0 1em;color:#222}",
            "table{border-collapse:collapse;font-size:13px;margin:.5em 0}",
            "td,th{border:1px solid #ccc;padding:2px 7px;text-align:right}",
            "td:first-child,td:nth-child(2),th{text-align:left}img{max-width:100%}",
            "figure{margin:1em 0}figcaption{font-weight:bold;font-size:14px}",
            "</style></head><body>",
            f"<h1>{html.escape(title)}</h1><p>{html.escape(intro)}</p>",
            "<h2>Quality</h2>", _html_table(*q)]
        if bench.has_truth:
            parts += ["<h2>Against the truth</h2>", f"<p>{html.escape(truth_note)}</p>"]
            if corr:
                parts.append(_html_table(*correlation_table(corr)))
        parts += [
            "<h2>Speed</h2>", f"<p>{html.escape(speed_note)}</p>", _html_table(*s)]
        if devs:
            parts += ["<h2>Published images rescored</h2>", f"<p>{html.escape(dev_note)}</p>",
                      _html_table(*d)]
        if figs or figure_note:
            parts.append("<h2>Figures</h2>")
            if figure_note:
                parts.append(f"<p>{html.escape(figure_note)}</p>")
            for section, p, caption in figs:
                parts.append(f"<figure><figcaption>{html.escape(caption)}</figcaption>{img(p)}</figure>")
        truth = list(TRUTH_METRICS) if bench.has_truth else []

        def values(r):
            t = r.get("truth") or {}
            return [*(_fmt_metric(m, t.get(m)) for m in truth),
                    *(_fmt_metric(m, r["scores"][m]) for m in METRICS)]
        per_pair = [["pair", "method", "source", "seconds", *truth, *METRICS]]
        for run in bench.runs:
            for r in run.records:
                per_pair.append([r["pair"], run.spec.label, OURS, _fmt_s(r["seconds"]),
                                 *values(r)])
        for r in bench.oracle:
            per_pair.append([r["pair"], "oracle", ORACLE, "", *values(r)])
        for method, recs in bench.reference.items():
            for r in recs:
                per_pair.append([r["pair"], method, RESCORED, "", *values(r)])
        parts += ["<h2>Machine</h2>", _html_table(["key", "value"], _machine_rows(bench)),
                  "<details><summary>Per-pair values</summary>",
                  _html_table(per_pair[0], per_pair[1:]), "</details></body></html>"]
        paths["html"] = out / "report.html"
        paths["html"].write_text("\n".join(parts))
    paths["figures"] = figdir
    return paths
