"""Pairs with a truth: focusfuse and its peers (focus-stack, enfuse) side by side.

``focusfuse bench --pairs`` scores focusfuse's methods in-process; this script runs every
tool as a whole process on the same ``focusfuse make-truth`` pairs (``NAME-A.png``,
``NAME-B.png``, ``NAME-truth.png``) and scores every output the same way, as
``benchmarks/bench_stacks.py`` scores stacks (its ``score``: registered to the truth with
OpenCV's ECC, kept as it is when the identity correlates better, then PSNR and SSIM on the
central 80%): a tool that aligns (focus-stack; ``focusfuse stack``) keeps its reference
frame's geometry, and focus-stack crops. A tool is ``NAME=TEMPLATE`` as in bench_stacks
(``{frames}`` the two sources, ``{out}`` the output); the peers are skipped with a
message when they are not on PATH. The per-pixel oracle (``NAME-oracle.png``) is scored
the same way.

    .venv/bin/python benchmarks/bench_pairs_peers.py /tmp/truth-bsds/handheld \\
        --ours "learned-pyramid=focusfuse stack {frames} -o {out} --quiet --method learned-pyramid" \\
        --json runs/pairs_peers_handheld.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_stacks import PEERS, choose_tools, read_output, run_process, score  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("pairs", type=Path, help="a focusfuse make-truth variant folder")
    p.add_argument("--ours", action="append", metavar="NAME=TEMPLATE",
                   help="a focusfuse tool (repeatable); without it, the peers alone")
    p.add_argument("--peers", nargs="*", default=list(PEERS))
    p.add_argument("--limit", type=int, default=None)
    p.add_argument("--timeout", type=float, default=600.0)
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    from focusfuse.bench.runner import find_pairs
    from focusfuse.io import read_image

    tools = choose_tools(args.ours, args.peers, no_ours=not args.ours)
    pairs = [q for q in find_pairs(args.pairs) if q.truth is not None][:args.limit]
    if not pairs:
        raise SystemExit(f"{args.pairs}: no pair with a NAME-truth file; make a set with "
                         "focusfuse make-truth")
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_pairs-") as tmp:
        for pair in pairs:
            truth = read_image(pair.truth)
            line = [pair.name]
            if pair.oracle is not None:
                s = score(read_image(pair.oracle), truth)
                rows.append({"tool": "oracle", "pair": pair.name, **s, "seconds": None})
                line.append(f"oracle {s['psnr']:.2f}")
            for tool in tools:
                folder = Path(tmp) / pair.name
                folder.mkdir(exist_ok=True)
                out = tool.output(folder)
                run = run_process(tool.argv([pair.a, pair.b], out, folder),
                                  folder / f"{tool.name}.log", args.timeout)
                if run["rc"] != 0 or not out.is_file():
                    rows.append({"tool": tool.name, "pair": pair.name, "failed": True})
                    line.append(f"{tool.name} FAILED")
                    continue
                s = score(read_output(out), truth)
                rows.append({"tool": tool.name, "pair": pair.name, **s,
                             "seconds": run["seconds"]})
                line.append(f"{tool.name} {s['psnr']:.2f}")
            print(" | ".join(line), flush=True)
    names = ["oracle"] + [t.name for t in tools]
    summary = {}
    print(f"\n| tool | pairs | PSNR (dB) | SSIM | s / pair (median) |\n|---|---:|---:|---:|---:|")
    for name in names:
        mine = [r for r in rows if r["tool"] == name and not r.get("failed")]
        failed = sum(1 for r in rows if r["tool"] == name and r.get("failed"))
        if not mine:
            if failed:
                print(f"| {name} | 0 ({failed} failed) | – | – | – |")
            continue
        secs = [r["seconds"] for r in mine if r["seconds"] is not None]
        summary[name] = {"pairs": len(mine), "psnr": float(np.mean([r["psnr"] for r in mine])),
                         "ssim": float(np.mean([r["ssim"] for r in mine])),
                         "seconds": statistics.median(secs) if secs else None,
                         "failed": failed}
        m = summary[name]
        print(f"| {name} | {m['pairs']} | {m['psnr']:.2f} | {m['ssim']:.4f} | "
              + ("–" if m["seconds"] is None else f"{m['seconds']:.2f}") + " |")
    if args.json:
        from focusfuse.bench.machine import machine_info

        args.json.write_text(json.dumps({"machine": machine_info(), "argv": sys.argv,
                                         "summary": summary, "rows": rows}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
