"""Reads the event store's notifications in order, in batches, and hands them on.

Each reader (the orchestrator, each projection) follows the store from its own position. A
save in this process wakes the reader at once; saves by other processes are seen by polling,
or sooner where the store can push (PostgreSQL LISTEN, wired in infrastructure).
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any

from eventsourcing.persistence import ApplicationRecorder

log = logging.getLogger("orchestrator.follower")


class Follower:
    """Runs `handler(notifications)` on a thread for each new batch after `position`.

    A failing handler or an unreachable store is logged and tried again with backoff: the
    batch is handed over again from the same position, so nothing is skipped."""

    def __init__(
        self, name: str, recorder: ApplicationRecorder,
        handler: Callable[[Sequence[Any]], None], position: Callable[[], int],
        wakeup: threading.Event, poll_s: float = 0.05, batch: int = 500,
    ) -> None:
        self.name, self.recorder, self.handler = name, recorder, handler
        self.start_position, self.wakeup, self.poll_s, self.batch = position, wakeup, poll_s, batch
        self.position = 0
        self._rewind: int | None = None
        self._rewind_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"follow-{name}", daemon=True)

    def start(self) -> Follower:
        self._thread.start()
        return self

    def rewind(self, position: int) -> None:
        """Hands over again everything after `position` (when it is behind the reader)."""
        with self._rewind_lock:
            self._rewind = position if self._rewind is None else min(self._rewind, position)
        self.wakeup.set()

    def stop(self) -> None:
        self._stop.set()
        self.wakeup.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        failures, loaded = 0, False
        while not self._stop.is_set():
            try:
                if failures or not loaded:
                    self.position, loaded = self.start_position(), True
                with self._rewind_lock:
                    if self._rewind is not None:
                        self.position = min(self.position, self._rewind)
                        self._rewind = None
                self.wakeup.clear()
                notes = self.recorder.select_notifications(
                    start=self.position + 1, limit=self.batch)
                if notes:
                    self.handler(notes)
                    self.position = notes[-1].id
                failures = 0
            except Exception:
                failures += 1
                log.exception("%s: reading or handling failed (%d in a row)", self.name, failures)
                self._stop.wait(min(5.0, 0.1 * 2**failures))
                continue
            if len(notes) < self.batch:
                self.wakeup.wait(self.poll_s)
