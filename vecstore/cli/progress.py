"""Output of the command line: the progress display -- a redrawn bar with
rate and ETA on a terminal, plain lines (at most one every few seconds)
otherwise, always on stderr so that ``--json`` output on stdout stays
clean -- and the result printing and exit codes shared by the commands."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from typing import Any, TextIO

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_LOCKED, EXIT_PROBLEMS, EXIT_INTERRUPTED = 0, 1, 2, 3, 4, 130


def emit(args: argparse.Namespace, doc: dict[str, Any], lines: Sequence[str]) -> None:
    """The command's result: ``doc`` as one JSON document with ``--json``,
    else ``lines`` for people."""
    if args.json:
        print(json.dumps(doc, sort_keys=True, default=json_default))
    else:
        for line in lines:
            print(line)


def json_default(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    return repr(value)


def _duration(seconds: float) -> str:
    seconds = max(0, int(seconds + 0.5))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class Progress:
    """``Progress(label)(done, total)``; call :meth:`close` at the end."""

    def __init__(self, label: str, *, stream: TextIO | None = None, enabled: bool = True,
                 tty: bool | None = None, interval: float | None = None,
                 unit: str = "records") -> None:
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled
        self.tty = self.stream.isatty() if tty is None else tty
        env = os.environ.get("VECSTORE_PROGRESS_INTERVAL")
        default = 0.1 if self.tty else 5.0
        self.interval = interval if interval is not None else float(env) if env else default
        self.unit = unit
        self.t0 = time.monotonic()
        self._last = -1e9
        self._first_done: int | None = None
        self._line_open = False
        self._drawn: tuple[int, int] | None = None
        self.done = 0
        self.total = 0

    def __call__(self, done: int, total: int) -> None:
        self.done, self.total = done, total
        if not self.enabled or (done, total) == self._drawn or (done == total == 0):
            return
        now = time.monotonic()
        if self._first_done is None:
            self._first_done = done
            self.t0 = now
        final = total > 0 and done >= total
        if not final and now - self._last < self.interval and done != 0:
            return
        self._last = now
        self._drawn = (done, total)
        self._draw(now, final)

    def _figures(self, now: float) -> tuple[float, float, str]:
        elapsed = max(now - self.t0, 1e-9)
        rate = (self.done - (self._first_done or 0)) / elapsed
        pct = 100.0 * self.done / self.total if self.total else 100.0
        if self.done >= self.total:
            eta = f"in {_duration(elapsed)}"
        elif rate > 0:
            eta = f"ETA {_duration((self.total - self.done) / rate)}"
        else:
            eta = "ETA --:--"
        return pct, rate, eta

    def _draw(self, now: float, final: bool) -> None:
        pct, rate, eta = self._figures(now)
        counts = f"{self.done:,}/{self.total:,} {self.unit}"
        if self.tty:
            width = 24
            fill = int(width * min(pct, 100.0) / 100)
            bar = "#" * fill + "-" * (width - fill)
            text = f"\r{self.label} [{bar}] {pct:5.1f}% {counts} {rate:,.0f}/s {eta}\x1b[K"
            self.stream.write(text)
            self._line_open = True
            if final:
                self.stream.write("\n")
                self._line_open = False
        else:
            self.stream.write(f"{self.label}: {counts} ({pct:.1f}%), {rate:,.0f}/s, {eta}\n")
        self.stream.flush()

    def close(self) -> None:
        """End the bar's line (if it is still open)."""
        if self._line_open:
            self.stream.write("\n")
            self.stream.flush()
            self._line_open = False


class PhaseBar:
    """A :class:`Progress` whose label names the phase's total, known only at
    the first call: ``PhaseBar("indexing", "vectors")`` shows "indexing
    50,000 vectors [####----] ...".  Nothing is shown for an empty phase."""

    def __init__(self, verb: str, unit: str, *, enabled: bool = True,
                 stream: TextIO | None = None, tty: bool | None = None) -> None:
        self.verb, self.unit = verb, unit
        self._opts: dict[str, Any] = {"enabled": enabled, "stream": stream, "tty": tty}
        self.bar: Progress | None = None

    def __call__(self, done: int, total: int) -> None:
        if self.bar is None:
            if total <= 0:
                return
            self.bar = Progress(f"{self.verb} {total:,} {self.unit}", unit=self.unit,
                                **self._opts)
        self.bar(done, total)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
