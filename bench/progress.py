"""A progress bar on stderr: redrawn in place on a terminal; elsewhere (a log, CI) one line
per phase when it ends, and one every ten seconds while a long phase runs."""
from __future__ import annotations

import sys
import threading
import time
from typing import TextIO

EVERY_S = 10.0  # between lines, when stderr is not a terminal


class Progress:
    """`with progress.phase("sqlite run", 500) as tick: ... tick()` once per unit done."""

    def __init__(self, out: TextIO = sys.stderr) -> None:
        self.out, self.tty = out, out.isatty()
        self._lock = threading.Lock()
        self.label, self.total, self.done = "", 0, 0
        self._started = self._drawn = time.monotonic()

    def phase(self, label: str, total: int = 0) -> Progress:
        """Starts a phase of `total` units (0: unknown)."""
        with self._lock:
            self.label, self.total, self.done = label, total, 0
            self._started = self._drawn = time.monotonic()
            if self.tty:
                self._draw()
        return self

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self.done = max(self.done, self.total)
            self._draw(final=True)

    def __call__(self, n: int = 1) -> None:
        with self._lock:
            self.done += n
            now = time.monotonic()
            if self.tty and now - self._drawn > 0.1 or now - self._drawn > EVERY_S:
                self._draw()

    def _draw(self, final: bool = False) -> None:
        self._drawn = time.monotonic()
        elapsed = self._drawn - self._started
        if self.total:
            filled = 30 * min(self.done, self.total) // self.total
            bar = f"[{'#' * filled}{'.' * (30 - filled)}] {self.done}/{self.total}"
        else:
            bar = "done" if final else "..."
        line = f"{self.label:<32} {bar} {elapsed:6.1f}s"
        if self.tty:
            self.out.write("\r\033[K" + line + ("\n" if final else ""))
        else:
            self.out.write(line + "\n")
        self.out.flush()
