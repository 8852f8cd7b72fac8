"""Fuzzer of image reading: mutated PNG, JPEG and TIFF files against `read_image` and `focusfuse fuse`.

    python benchmarks/fuzz.py [--mutants 10000] [--cli-runs 500] [--seed 0]
                              [--memory-cap-gib 4] [--timeout 30] [--json runs/fuzz.json]

Valid seed files (PNG gray, colour, alpha, 16 bit; JPEG gray, colour, progressive, with an
EXIF orientation; TIFF 8, 16 and float, planar, tiled, deflate, big-endian, two pages) are
mutated: bit flips, overwritten bytes, truncation, duplicated chunks (PNG chunks, JPEG
segments, byte runs), removed byte runs, and, one mutant in eight, a width or height
rewritten in the header (PNG IHDR with its CRC mended three times in four, JPEG SOF, TIFF
ImageWidth / ImageLength): to 0 or 1, a scaled size, or a huge one (a decompression bomb).
One mutant in sixteen is given the suffix of another type.

Each mutant is fed to `focusfuse.read_image` in a worker process, and (`--cli-runs`) with
its unmutated seed to `focusfuse fuse` as a process, both under a memory cap (RLIMIT_AS)
and a time limit. Outcomes:

- refused: ImageReadError (in-process) or exit 2 with one `error:` line (command);
- read / fused: a float32 array in [0, 1] of a gray or colour shape (in-process; with an
  ImageReadWarning counted apart), or exit 0 with a readable output (command);
- crash: any other exception, a wrong array, a traceback, anything on stderr that is not
  one of our lines, a Python warning other than ours, an exit by a signal, a run over the
  time limit, a temporary file left in the output folder, or an output file after a refusal.

The mutant of index i is a function of (seed, i) only, so a crash is reproduced with
`--only i` (in-process) or `--only-cli i`. Prints the counts and the machine; `--json`
writes them with every crash. The test suite runs a short seeded run of the same code
(tests/test_fuzz.py).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import select
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from collections import Counter
from pathlib import Path

import numpy as np

# ------------------------------------------------------------------------------ seeds
SEED_SHAPE = (40, 52)  # small: the command-line runs fuse them (the CNN takes about 1 s)


def _texture(shape, rng) -> np.ndarray:
    import cv2

    x = rng.random(shape)
    x = cv2.GaussianBlur(x, (0, 0), 1.5) * 0.6 + x * 0.4
    return (x - x.min()) / (x.max() - x.min())


def make_seeds(folder: Path) -> list[Path]:
    """The valid files every mutant starts from, written into ``folder``."""
    import cv2
    import tifffile
    from PIL import Image as PILImage

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(12345)
    h, w = SEED_SHAPE
    gray = _texture((h, w), rng)
    rgb = np.dstack([_texture((h, w), rng) for _ in range(3)])
    rgba = np.dstack([rgb, _texture((h, w), rng)])
    u8, u16 = (lambda x: (x * 255).round().astype(np.uint8)), (lambda x: (x * 65535).round().astype(np.uint16))
    bgr = lambda x: x[..., [2, 1, 0]] if x.shape[2] == 3 else x[..., [2, 1, 0, 3]]  # noqa: E731
    files = {
        "gray8.png": lambda p: cv2.imwrite(str(p), u8(gray)),
        "gray16.png": lambda p: cv2.imwrite(str(p), u16(gray)),
        "rgb8.png": lambda p: cv2.imwrite(str(p), bgr(u8(rgb))),
        "rgba8.png": lambda p: cv2.imwrite(str(p), bgr(u8(rgba))),
        "rgb16.png": lambda p: cv2.imwrite(str(p), bgr(u16(rgb))),
        "palette.png": lambda p: PILImage.fromarray(u8(rgb)).quantize(16).save(p),
        "gray.jpg": lambda p: cv2.imwrite(str(p), u8(gray)),
        "rgb.jpg": lambda p: cv2.imwrite(str(p), bgr(u8(rgb))),
        "progressive.jpg": lambda p: cv2.imwrite(str(p), bgr(u8(rgb)),
                                                 [cv2.IMWRITE_JPEG_PROGRESSIVE, 1]),
        "exif.jpg": lambda p: _jpeg_with_orientation(p, u8(rgb)),
        "gray8.tif": lambda p: tifffile.imwrite(p, u8(gray)),
        "rgb8.tif": lambda p: tifffile.imwrite(p, u8(rgb), photometric="rgb"),
        "gray16.tif": lambda p: tifffile.imwrite(p, u16(gray)),
        "rgb16.tif": lambda p: tifffile.imwrite(p, u16(rgb), photometric="rgb"),
        "float.tif": lambda p: tifffile.imwrite(p, gray.astype(np.float32)),
        "planar.tif": lambda p: tifffile.imwrite(p, np.moveaxis(u8(rgb), 2, 0), photometric="rgb",
                                                 planarconfig="separate"),
        "tiled.tif": lambda p: tifffile.imwrite(p, u8(gray[:32, :48]), tile=(16, 16)),
        "deflate.tif": lambda p: tifffile.imwrite(p, u16(rgb), photometric="rgb",
                                                  compression="zlib"),
        "bigendian.tif": lambda p: tifffile.imwrite(p, u16(gray), byteorder=">"),
        "twopage.tif": lambda p: tifffile.imwrite(p, np.stack([u8(gray)] * 2),
                                                  photometric="minisblack"),
    }
    paths = []
    for name, write in files.items():
        write(folder / name)
        paths.append(folder / name)
    return paths


def _jpeg_with_orientation(path: Path, rgb8: np.ndarray) -> None:
    from PIL import Image as PILImage

    im = PILImage.fromarray(rgb8)
    exif = im.getexif()
    exif[0x0112] = 6  # rotated 90°: the reader applies it
    im.save(path, quality=90, exif=exif)


def kind_of(path: Path) -> str:
    suffix = path.suffix.lower()
    return {".png": "png", ".jpg": "jpeg", ".jpeg": "jpeg"}.get(suffix, "tiff")


# --------------------------------------------------------------------------- mutations
def _png_chunks(data: bytes) -> list[tuple[int, int]]:
    """(start, end) of each PNG chunk, as far as the lengths make sense."""
    out, i = [], 8
    while i + 12 <= len(data):
        length = struct.unpack(">I", data[i:i + 4])[0]
        end = i + 12 + length
        if end > len(data):
            break
        out.append((i, end))
        i = end
    return out


def _jpeg_segments(data: bytes) -> list[tuple[int, int, int]]:
    """(start, end, marker) of each JPEG marker segment before the scan."""
    out, i = [], 2
    while i + 4 <= len(data) and data[i] == 0xFF:
        marker = data[i + 1]
        if marker == 0xDA:
            out.append((i, len(data), marker))
            break
        length = struct.unpack(">H", data[i + 2:i + 4])[0]
        out.append((i, i + 2 + length, marker))
        i += 2 + length
    return out


def _tiff_size_fields(data: bytes) -> list[tuple[int, str]]:
    """(offset, struct format) of the ImageWidth and ImageLength values in IFD 0."""
    if len(data) < 8 or data[:2] not in (b"II", b"MM"):
        return []
    bo = "<" if data[:2] == b"II" else ">"
    if struct.unpack(bo + "H", data[2:4])[0] != 42:
        return []
    ifd = struct.unpack(bo + "I", data[4:8])[0]
    if ifd + 2 > len(data):
        return []
    n = struct.unpack(bo + "H", data[ifd:ifd + 2])[0]
    fields = []
    for k in range(n):
        e = ifd + 2 + 12 * k
        if e + 12 > len(data):
            break
        tag, typ = struct.unpack(bo + "HH", data[e:e + 4])
        if tag in (256, 257) and typ in (3, 4):
            fields.append((e + 8, bo + ("H" if typ == 3 else "I")))
    return fields


def _new_size(old: int, rng, top: int, how: int) -> int:
    """0 or 1; the old size scaled by 0.5..2; a huge one; the largest; or about 16384 (both
    sides of that: just under or over the default pixel limit of 2**28)."""
    if how == 0:
        return int(rng.integers(0, 2))
    if how == 1:
        return int(min(top, max(1, round(old * rng.uniform(0.5, 2.0)))))
    if how == 2:
        return int(rng.integers(min(20000, top), top + 1))
    if how == 3:
        return top
    return int(min(top, rng.integers(14000, 18000)))


def _sizes(n_fields: int, rng) -> tuple[list[int], int]:
    """Which of the ``n_fields`` size fields to rewrite (one, or both half the time) and how."""
    fields = [int(rng.integers(n_fields))] if rng.random() < 0.5 else list(range(n_fields))
    return fields, int(rng.integers(5))


def _rewrite_size(data: bytearray, kind: str, rng) -> str:
    if kind == "png" and len(data) >= 33 and data[12:16] == b"IHDR":
        which, how = _sizes(2, rng)
        for k in which:
            at = 16 + 4 * k
            old = struct.unpack(">I", data[at:at + 4])[0]
            struct.pack_into(">I", data, at, _new_size(old, rng, 2**31 - 1, how))
        if rng.random() < 0.75:  # mend the CRC: the decoder believes the new size
            struct.pack_into(">I", data, 29, zlib.crc32(bytes(data[12:29])) & 0xFFFFFFFF)
        return "size:png"
    if kind == "jpeg":
        sof = [s for s in _jpeg_segments(bytes(data)) if s[2] in range(0xC0, 0xD0)
               and s[2] not in (0xC4, 0xC8, 0xCC)]
        if sof and sof[0][0] + 9 <= len(data):
            which, how = _sizes(2, rng)
            for k in which:
                at = sof[0][0] + 5 + 2 * k
                old = struct.unpack(">H", data[at:at + 2])[0]
                struct.pack_into(">H", data, at, _new_size(old, rng, 65535, how))
            return "size:jpeg"
    if kind == "tiff":
        fields = _tiff_size_fields(bytes(data))
        if fields:
            which, how = _sizes(len(fields), rng)
            for k in which:
                at, fmt = fields[k]
                top = 65535 if fmt.endswith("H") else 2**32 - 1
                old = struct.unpack(fmt, data[at:at + struct.calcsize(fmt)])[0]
                struct.pack_into(fmt, data, at, _new_size(old, rng, top, how))
            return "size:tiff"
    return "size:none"


def _span(data: bytearray, kind: str, rng) -> tuple[int, int]:
    """A run of bytes to duplicate or remove: a whole chunk or segment when the file has
    them, else a random run."""
    if kind == "png":
        chunks = _png_chunks(bytes(data))
        if chunks and rng.random() < 0.7:
            return chunks[int(rng.integers(len(chunks)))]
    if kind == "jpeg":
        segments = _jpeg_segments(bytes(data))[:-1]  # not the scan itself
        if segments and rng.random() < 0.7:
            return segments[int(rng.integers(len(segments)))][:2]
    start = int(rng.integers(len(data)))
    return start, min(len(data), start + int(rng.integers(1, 256)))


def mutate(data: bytes, kind: str, rng) -> tuple[bytes, list[str]]:
    """A mutant of ``data`` (a file of ``kind``) and the names of the mutations made."""
    out, done = bytearray(data), []
    if rng.random() < 1 / 8:
        done.append(_rewrite_size(out, kind, rng))
    for _ in range(int(rng.integers(0 if done else 1, 4))):
        if not out:
            break
        op = rng.choice(["flip", "bytes", "truncate", "duplicate", "remove"],
                        p=[0.35, 0.25, 0.15, 0.15, 0.10])
        if op == "flip":
            head = rng.random() < 0.5
            for _ in range(int(rng.integers(1, 17))):
                pos = int(rng.integers(min(len(out), 512) if head else len(out)))
                out[pos] ^= 1 << int(rng.integers(8))
        elif op == "bytes":
            for _ in range(int(rng.integers(1, 9))):
                pos = int(rng.integers(len(out)))
                out[pos] = int(rng.choice([0x00, 0xFF, 0x7F, 0x80, int(rng.integers(256))]))
        elif op == "truncate":
            del out[int(rng.integers(len(out))):]
        elif op == "duplicate":
            a, b = _span(out, kind, rng)
            out[b:b] = out[a:b]
        else:
            a, b = _span(out, kind, rng)
            del out[a:b]
        done.append(str(op))
    return bytes(out), done


def mutant(seeds: list[Path], seed: int, index: int, stream: int = 0):
    """Mutant ``index`` of the run ``seed``: (bytes, suffix, seed file, mutations)."""
    rng = np.random.default_rng([seed, stream, index])
    base = seeds[int(rng.integers(len(seeds)))]
    data, done = mutate(base.read_bytes(), kind_of(base), rng)
    suffix = base.suffix
    if rng.random() < 1 / 16:
        suffix = str(rng.choice([".png", ".jpg", ".tif"]))
        done.append("suffix")
    return data, suffix, base, done


# --------------------------------------------------------------------- in-process
def check_one(path: Path, max_pixels: int | None = None) -> tuple[str, str]:
    """Read ``path`` with focusfuse.read_image; returns (outcome, detail). Outcomes:
    refused, refused:memory, read, read:warned, crash:exception, crash:result,
    crash:warning."""
    import warnings

    from focusfuse.io import ImageReadError, ImageReadWarning, read_image

    kwargs = {} if max_pixels is None else {"max_pixels": max_pixels}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            im = read_image(path, with_depth=True, **kwargs)
        except ImageReadError as exc:
            text = str(exc)
            if "\n" in text:
                return "crash:exception", f"ImageReadError of several lines: {text[:300]!r}"
            return ("refused:memory" if "not enough memory" in text else "refused"), text[:300]
        except BaseException as exc:  # noqa: BLE001 - every other exception is the finding
            if isinstance(exc, KeyboardInterrupt):
                raise
            return "crash:exception", f"{type(exc).__name__}: {str(exc)[:300]}"
    others = [w for w in caught if not issubclass(w.category, ImageReadWarning)]
    if others:
        return "crash:warning", f"{others[0].category.__name__}: {str(others[0].message)[:300]}"
    x = im.pixels
    ok = (isinstance(x, np.ndarray) and x.dtype == np.float32
          and (x.ndim == 2 or (x.ndim == 3 and x.shape[2] in (3, 4))) and min(x.shape[:2]) >= 1
          and im.bit_depth in (8, 16, 32) and bool(np.isfinite(x).all())
          and float(x.min()) >= 0.0 and float(x.max()) <= 1.0)
    if not ok:
        return "crash:result", f"dtype {x.dtype}, shape {x.shape}, depth {im.bit_depth}"
    return ("read:warned" if caught else "read"), f"shape {x.shape}"


class _StderrWatch:
    """File descriptor 2 sent to a file, to catch anything a decoder prints past focusfuse."""

    def __enter__(self):
        sys.stderr.flush()
        self.saved = os.dup(2)
        self.file = tempfile.TemporaryFile()
        os.dup2(self.file.fileno(), 2)
        self.seen = 0
        return self

    def new_text(self) -> str:
        self.file.seek(0, 2)
        end = self.file.tell()
        if end == self.seen:
            return ""
        self.file.seek(self.seen)
        text = self.file.read(end - self.seen).decode("utf-8", "replace")
        self.seen = end
        return text

    def __exit__(self, *exc):
        os.dup2(self.saved, 2)
        os.close(self.saved)
        self.file.close()


def fuzz_in_process(seeds: list[Path], folder: Path, indices, *, seed: int,
                    max_pixels: int | None = None, report=None) -> list[dict]:
    """Read each mutant of ``indices`` in this process; one record per mutant. Output on
    stderr during a read is a crash (crash:stderr)."""
    records = []
    with _StderrWatch() as watch:
        for i in indices:
            data, suffix, base, done = mutant(seeds, seed, i)
            path = folder / f"mutant{suffix}"
            path.write_bytes(data)
            if report:
                report({"start": i})
            outcome, detail = check_one(path, max_pixels)
            leaked = watch.new_text()
            if leaked and not outcome.startswith("crash"):
                outcome, detail = "crash:stderr", leaked.strip()[:300]
            rec = {"index": i, "seed_file": base.name, "mutations": done, "outcome": outcome,
                   "detail": detail, "size": len(data),
                   "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
            records.append(rec)
            if report:
                report(rec)
    return records


def _worker(args) -> None:
    """The in-process fuzzer's child: reads mutants, one JSON line per event on stdout."""
    _cap(args.memory_cap_gib)()
    seeds = sorted(Path(args.seeds).iterdir())
    folder = Path(tempfile.mkdtemp(prefix="fuzz-worker-"))
    out = os.fdopen(os.dup(1), "w", buffering=1)

    def report(obj):
        out.write(json.dumps(obj) + "\n")
        out.flush()

    try:
        fuzz_in_process(seeds, folder, range(args.start, args.stop), seed=args.seed,
                        report=report)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _cap(gib: float):
    def preexec():
        if gib:
            resource.setrlimit(resource.RLIMIT_AS, (int(gib * 2**30), int(gib * 2**30)))
    return preexec


def run_in_process(seeds_dir: Path, n: int, *, seed: int, cap: float, timeout: float,
                   only=None, say=print) -> list[dict]:
    """Supervise worker processes over mutants 0..n-1 (or ``only``): a worker that dies by
    a signal or stops answering for ``timeout`` s marks its mutant and a new one goes on."""
    todo = [only] if only is not None else list(range(n))
    records: dict[int, dict] = {}
    pos, t0 = 0, time.perf_counter()
    while pos < len(todo):
        start, stop = todo[pos], (todo[pos] + 1 if only is not None else n)
        cmd = [sys.executable, __file__, "--worker", "--seeds", str(seeds_dir), "--seed", str(seed),
               "--start", str(start), "--stop", str(stop), "--memory-cap-gib", str(cap)]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        current = None
        while True:
            ready, _, _ = select.select([proc.stdout], [], [], timeout)
            if not ready:
                proc.kill()
                proc.wait()
                if current is not None:
                    records[current] = {"index": current, "outcome": "crash:hang",
                                        "detail": f"no answer in {timeout:.0f} s"}
                break
            line = proc.stdout.readline()
            if not line:  # the worker ended
                proc.wait()
                if current is None:
                    current = start  # it died before its first mutant
                if current not in records:
                    err = proc.stderr.read()[-300:]
                    what = (f"signal {-proc.returncode}" if proc.returncode < 0
                            else f"exit {proc.returncode}")
                    records[current] = {"index": current, "outcome": "crash:died",
                                        "detail": f"{what}: {err}"}
                break
            obj = json.loads(line)
            if "start" in obj:
                current = obj["start"]
            else:
                records[obj["index"]] = obj
                done = len(records)
                if done % 1000 == 0:
                    say(f"  in-process: {done}/{len(todo)} mutants, "
                        f"{time.perf_counter() - t0:.0f} s")
        # go on after the last mutant recorded
        finished = [i for i in todo if i in records]
        pos = (todo.index(max(finished)) + 1) if finished else pos + 1
        if only is not None:
            break
    return [records[i] for i in sorted(records)]


# ------------------------------------------------------------------- command line
def _focusfuse_command() -> list[str]:
    script = Path(sys.executable).parent / "focusfuse"
    return [str(script)] if script.is_file() else [sys.executable, "-m", "focusfuse.cli"]


#: the methods the command-line runs rotate through (the CNN with the fast model too)
CLI_METHODS = (["--method", "dwt"], ["--method", "laplacian"], ["--method", "cnn"],
               ["--method", "dtcwt"], ["--method", "cnn", "--weights", "fast"],
               ["--method", "cnn-dtcwt", "--weights", "fast"])


def run_cli_one(seeds: list[Path], work: Path, seed: int, i: int, *, cap: float,
                timeout: float) -> dict:
    """One `focusfuse fuse MUTANT SEED -o OUT` run; its record."""
    data, suffix, base, done = mutant(seeds, seed, i, stream=1)
    if work.exists():
        shutil.rmtree(work)
    (work / "out").mkdir(parents=True)
    src = work / f"mutant{suffix}"
    src.write_bytes(data)
    other = work / f"seed{base.suffix}"
    shutil.copy(base, other)
    out = work / "out" / "fused.png"
    method = CLI_METHODS[i % len(CLI_METHODS)]
    cmd = [*_focusfuse_command(), "fuse", str(src), str(other), "-o", str(out), *method]
    rec = {"index": i, "seed_file": base.name, "mutations": done, "method": " ".join(method)}
    t = time.perf_counter()
    with open(work / "stdout", "w+") as out_f, open(work / "stderr", "w+") as err_f:
        proc = subprocess.Popen(cmd, stdout=out_f, stderr=err_f, text=True, preexec_fn=_cap(cap))
        timer = threading.Timer(timeout, proc.kill)
        timer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            timer.cancel()
        proc.returncode = os.waitstatus_to_exitcode(status)
        out_f.seek(0), err_f.seek(0)
        stdout, stderr = out_f.read(), err_f.read()
    rec["maxrss_mb"] = usage.ru_maxrss / 1024
    if time.perf_counter() - t >= timeout:
        rec.update(outcome="crash:hang", detail=f"over {timeout:.0f} s")
        return rec
    rec["seconds"] = round(time.perf_counter() - t, 2)
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    ours = [ln for ln in lines if ln.startswith("focusfuse fuse: warning: ")]
    errors = [ln for ln in lines if ln.startswith("focusfuse fuse: error: ")]
    stray = [ln for ln in lines if ln not in ours and ln not in errors]
    left = [p.name for p in (work / "out").iterdir() if p.name != "fused.png"]
    if proc.returncode < 0:
        rec.update(outcome="crash:signal", detail=f"signal {-proc.returncode}: {stderr[-300:]}")
    elif "Traceback" in stderr or stray:
        rec.update(outcome="crash:stderr", detail=(stray or lines)[0][:300])
    elif left:
        rec.update(outcome="crash:temporary", detail=f"left in the output folder: {left}")
    elif proc.returncode == 2 and len(errors) == 1:
        if out.exists():
            rec.update(outcome="crash:output", detail="an output file after a refusal")
        else:
            rec.update(outcome="refused:memory" if "memory" in errors[0] else "refused",
                       detail=errors[0][:300])
    elif proc.returncode == 0 and out.exists() and f"wrote {out}" in stdout:
        rec.update(outcome="fused:warned" if ours else "fused", detail=stdout.strip()[:200])
    else:
        rec.update(outcome="crash:exit", detail=f"exit {proc.returncode}: {stderr[-300:]}")
    return rec


def run_cli(seeds: list[Path], n: int, *, seed: int, cap: float, timeout: float, only=None,
            say=print) -> list[dict]:
    work = Path(tempfile.mkdtemp(prefix="fuzz-cli-"))
    records, t0 = [], time.perf_counter()
    try:
        for i in ([only] if only is not None else range(n)):
            records.append(run_cli_one(seeds, work / "run", seed, i, cap=cap, timeout=timeout))
            if len(records) % 50 == 0:
                say(f"  command line: {len(records)}/{n} runs, {time.perf_counter() - t0:.0f} s")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return records


# -------------------------------------------------------------------------- report
#: why a mutant was refused, from the start of its message (the first that matches)
REASONS = (("pixel limit", "pixels ("), ("out of memory", "not enough memory"),
           ("multi-page or stack", "multi-page"), ("multi-page or stack", "axes"),
           ("not an image", "not a readable image;"), ("values", "NaN"),
           ("values", "far outside"), ("pixel type", "pixel type"), ("shape", "shape"),
           ("empty", "empty"), ("damaged", "not a readable"), ("damaged", "cut short"),
           ("sources differ", "must have the same"), ("sources differ", "convert them all"))


def reason(detail: str) -> str:
    for name, mark in REASONS:
        if mark in detail:
            return name
    return "other"


def summary(records: list[dict]) -> dict:
    counts = Counter(r["outcome"] for r in records)
    reasons = Counter(reason(r.get("detail", "")) for r in records
                      if r["outcome"].startswith("refused"))
    crashes = [r for r in records if r["outcome"].startswith("crash")]
    header = [r for r in records if any(m.startswith("size:") for m in r.get("mutations", []))]
    return {"total": len(records), "outcomes": dict(sorted(counts.items())),
            "crashes": len(crashes), "refusal_reasons": dict(reasons.most_common()),
            "header_mutations": len(header),
            "header_outcomes": dict(sorted(Counter(r["outcome"] for r in header).items())),
            "peak_rss_mb": max((r.get("maxrss_mb", 0) for r in records), default=0)}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--mutants", type=int, default=10000, help="in-process mutants")
    p.add_argument("--cli-runs", type=int, default=500, help="focusfuse fuse runs")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--memory-cap-gib", type=float, default=4.0,
                   help="address-space limit of every child (RLIMIT_AS); 0: none")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds before a hang")
    p.add_argument("--json", default=None, help="write the counts and every crash here")
    p.add_argument("--only", type=int, default=None, help="only this in-process mutant")
    p.add_argument("--only-cli", type=int, default=None, help="only this command-line run")
    p.add_argument("--keep", default=None, metavar="DIR",
                   help="write the crashing mutants here")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--seeds", default=None, help=argparse.SUPPRESS)
    p.add_argument("--start", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--stop", type=int, default=0, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        _worker(args)
        return 0

    from focusfuse.bench.machine import machine_info

    machine = machine_info()
    print(f"machine: {machine['cpu']}, {machine['usable_cpus']} usable cores, "
          f"focusfuse {machine['focusfuse']}, torch {machine['torch']}", flush=True)
    seeds_dir = Path(tempfile.mkdtemp(prefix="fuzz-seeds-"))
    say = lambda s: print(s, flush=True)  # noqa: E731
    try:
        seeds = make_seeds(seeds_dir)
        t0 = time.perf_counter()
        inproc = []
        if args.only_cli is None and args.mutants:
            say(f"in-process: {args.mutants if args.only is None else 1} mutants of "
                f"{len(seeds)} seed files, seed {args.seed}, cap {args.memory_cap_gib} GiB, "
                f"timeout {args.timeout:.0f} s")
            inproc = run_in_process(seeds_dir, args.mutants, seed=args.seed,
                                    cap=args.memory_cap_gib, timeout=args.timeout,
                                    only=args.only, say=say)
        t1 = time.perf_counter()
        cli = []
        if args.only is None and args.cli_runs:
            say(f"command line: {args.cli_runs if args.only_cli is None else 1} runs of "
                f"focusfuse fuse MUTANT SEED, methods rotating")
            cli = run_cli(seeds, args.cli_runs, seed=args.seed, cap=args.memory_cap_gib,
                          timeout=args.timeout, only=args.only_cli, say=say)
        t2 = time.perf_counter()
        result = {"machine": machine, "seed": args.seed, "memory_cap_gib": args.memory_cap_gib,
                  "timeout_s": args.timeout,
                  "in_process": {**summary(inproc), "seconds": round(t1 - t0, 1)},
                  "command_line": {**summary(cli), "seconds": round(t2 - t1, 1)},
                  "crash_records": [r for r in inproc + cli if r["outcome"].startswith("crash")]}
        for name in ("in_process", "command_line"):
            s = result[name]
            say(f"{name}: {s['total']} runs, {s['crashes']} crashes, {s['seconds']} s; "
                f"outcomes {s['outcomes']}; with a header size rewritten: "
                f"{s['header_mutations']} ({s['header_outcomes']}); refusals by reason "
                f"{s['refusal_reasons']}; peak RSS {s['peak_rss_mb']:.0f} MB")
        for r in result["crash_records"][:20]:
            say(f"  crash: {r}")
        if args.keep and result["crash_records"]:
            keep = Path(args.keep)
            keep.mkdir(parents=True, exist_ok=True)
            for r in result["crash_records"]:
                stream = 1 if "method" in r else 0
                data, suffix, _, _ = mutant(seeds, args.seed, r["index"], stream=stream)
                (keep / f"{'cli' if stream else 'inproc'}-{r['index']}{suffix}").write_bytes(data)
        if args.json:
            Path(args.json).parent.mkdir(parents=True, exist_ok=True)
            Path(args.json).write_text(json.dumps(result, indent=1))
        return 1 if result["crash_records"] else 0
    finally:
        shutil.rmtree(seeds_dir, ignore_errors=True)


if __name__ == "__main__":
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    sys.exit(main())
