"""Progress of long work, on stderr: a bar per stage on a terminal (tqdm), a plain line per
step otherwise (logs, pipes), nothing when quiet. The library reports through a callback
``progress(stage, done, total)``; this module turns it into output."""

from __future__ import annotations

import sys

__all__ = ["Progress"]


class Progress:
    """A ``progress(stage, done, total)`` callback that writes to ``stream`` (stderr).

    ``enabled=False`` writes nothing. On a terminal each stage gets a tqdm bar (counting
    ``unit``); elsewhere a line ``PREFIX: STAGE DONE/TOTAL`` per step, flushed at once."""

    def __init__(self, prefix: str, *, enabled: bool = True, stream=None, unit: str = "frame"):
        self.prefix, self.enabled, self.unit = prefix, enabled, unit
        self.stream = stream or sys.stderr
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self._bar = None
        self._stage = None

    def __call__(self, stage: str, done: int, total: int) -> None:
        if not self.enabled:
            return
        if not self.tty:
            self.stream.write(f"{self.prefix}: {stage} {done}/{total}\n")
            self.stream.flush()
            return
        if stage != self._stage:
            self.close()
            from tqdm import tqdm

            self._bar = tqdm(total=total, desc=f"{self.prefix} {stage}", file=self.stream,
                             leave=False, unit=self.unit)
            self._stage = stage
        self._bar.n = done
        self._bar.refresh()
        if done >= total:
            self.close()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
            self._stage = None
