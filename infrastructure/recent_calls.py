"""The participant calls of the last few minutes, kept in memory by the process that makes
them: per participant, 10-second buckets of counts by outcome and a latency histogram.

Prometheus keeps totals since the process started; an operator asking "is the payment service
slow now?" needs a window. A worker publishes `snapshot()` with its heartbeat (cluster.py) and
the process that serves the health page adds up every live worker's (application/health.py).
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable

from application.health import (
    BUCKET_S,
    FAILED,
    REJECTED,
    WINDOW_S,
    CallCounts,
    latency_bucket,
)
from application.orchestrator import Metrics, NoMetrics

SLOTS = WINDOW_S // BUCKET_S


class _Bucket:
    """One participant's calls in one 10-second slot (mutable: the hot path adds to it)."""

    __slots__ = ("calls", "failed", "rejected", "latency")

    def __init__(self) -> None:
        self.calls = self.failed = self.rejected = 0
        self.latency: dict[int, int] = {}


class RecentCalls:
    """The orchestrator's Metrics port: keeps the window, and passes every report on to
    `then` (the Prometheus metrics), which it wraps rather than replaces."""

    def __init__(self, then: Metrics | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.then = then or NoMetrics()
        self.clock = clock
        self._lock = threading.Lock()
        self._buckets: dict[str, dict[int, _Bucket]] = {}  # participant -> slot -> bucket

    def call_finished(self, participant: str, action: str, outcome: str, seconds: float) -> None:
        self.then.call_finished(participant, action, outcome, seconds)
        slot = int(self.clock() // BUCKET_S)
        index = latency_bucket(seconds)
        with self._lock:
            buckets = self._buckets.setdefault(participant, {})
            bucket = buckets.get(slot)
            if bucket is None:  # a new slot: the ones it pushes out of the window go
                bucket = buckets[slot] = _Bucket()
                for old in [s for s in buckets if s <= slot - SLOTS]:
                    del buckets[old]
            bucket.calls += 1
            bucket.failed += outcome in FAILED
            bucket.rejected += outcome == REJECTED
            bucket.latency[index] = bucket.latency.get(index, 0) + 1

    def workflow_finished(self, status: str) -> None:
        self.then.workflow_finished(status)

    def snapshot(self) -> dict[str, CallCounts]:
        """The window's calls per participant: the current slot and those before it, up to
        WINDOW_S; a participant without a call in the window is left out. Added up in place
        under the lock (once per heartbeat: well under a millisecond for a few participants,
        cheaper than copying every bucket out first)."""
        oldest = int(self.clock() // BUCKET_S) - SLOTS
        found: dict[str, CallCounts] = {}
        with self._lock:
            for name, buckets in self._buckets.items():
                calls = failed = rejected = 0
                latency: dict[int, int] = {}
                for slot, bucket in buckets.items():
                    if slot > oldest:
                        calls += bucket.calls
                        failed += bucket.failed
                        rejected += bucket.rejected
                        for index, n in bucket.latency.items():
                            latency[index] = latency.get(index, 0) + n
                if calls:
                    found[name] = CallCounts(calls, failed, rejected, latency)
        return found
