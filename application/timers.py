"""One thread that runs callbacks at given times: the waits between retries.

A thread per waiting workflow would not scale to thousands of workflows in backoff; a heap
and one condition variable do. The callbacks must be quick: they only hand work to a pool.
"""
from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections.abc import Callable


class Timers:
    """Runs `callback()` on its own thread once `time.monotonic()` reaches the due time."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._order = itertools.count()
        self._cv = threading.Condition()
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name="timers", daemon=True)
        self._thread.start()

    def call_later(self, delay_s: float, callback: Callable[[], None]) -> None:
        """Schedules `callback` after `delay_s` seconds (now, if not positive)."""
        with self._cv:
            heapq.heappush(self._heap, (time.monotonic() + delay_s, next(self._order), callback))
            self._cv.notify()

    def stop(self) -> None:
        """Drops what waits: after a restart, the event store says what is due."""
        with self._cv:
            self._stopped = True
            self._heap.clear()
            self._cv.notify()
        self._thread.join(timeout=2)

    def _run(self) -> None:
        while True:
            with self._cv:
                while not self._stopped and (
                    not self._heap or self._heap[0][0] > time.monotonic()
                ):
                    timeout = self._heap[0][0] - time.monotonic() if self._heap else None
                    self._cv.wait(timeout)
                if self._stopped:
                    return
                _, _, callback = heapq.heappop(self._heap)
            callback()
