"""The participant calls of the last few minutes, per participant: counts by outcome and a
latency histogram, in 10-second buckets, for the console's health page.

Prometheus keeps totals since the process started; an operator asking "is the payment service
slow now?" needs a window. The record is small and mergeable (counts and histogram buckets,
never samples), so a worker publishes it with its heartbeat and the API process that serves
the page adds up every live worker's."""
from __future__ import annotations

import bisect
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from application.orchestrator import Metrics, NoMetrics

BUCKET_S = 10
WINDOW_S = 300
# Latency bounds in ms, each 1.25x the last, 1 ms to about a minute: a percentile read from
# them is within 25 % of the true one.
BOUNDS_MS = tuple(round(1.25 ** i, 3) for i in range(50))
FAILURES = ("transient", "unavailable")  # the participant failed; a rejection is its answer


def _empty() -> dict[str, Any]:
    return {"calls": 0, "failed": 0, "rejected": 0, "hist": [0] * (len(BOUNDS_MS) + 1)}


class RecentCalls:
    """The orchestrator's Metrics port: keeps the window, and passes every report on to
    `then` (the Prometheus metrics)."""

    def __init__(self, then: Metrics | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.then = then or NoMetrics()
        self.clock = clock
        self._lock = threading.Lock()
        self._buckets: dict[str, dict[int, dict[str, Any]]] = {}

    def call_finished(self, participant: str, action: str, outcome: str, seconds: float) -> None:
        self.then.call_finished(participant, action, outcome, seconds)
        slot = int(self.clock() // BUCKET_S)
        index = bisect.bisect_left(BOUNDS_MS, seconds * 1000)
        with self._lock:
            buckets = self._buckets.setdefault(participant, {})
            bucket = buckets.get(slot)
            if bucket is None:
                bucket = buckets[slot] = _empty()
                for old in [s for s in buckets if s <= slot - WINDOW_S // BUCKET_S]:
                    del buckets[old]
            bucket["calls"] += 1
            bucket["failed"] += outcome in FAILURES
            bucket["rejected"] += outcome == "rejected"
            bucket["hist"][index] += 1

    def workflow_finished(self, status: str) -> None:
        self.then.workflow_finished(status)

    def snapshot(self) -> dict[str, dict[str, Any]]:
        """The window's totals per participant (JSON-able, and added up by `merge`)."""
        oldest = int(self.clock() // BUCKET_S) - WINDOW_S // BUCKET_S
        with self._lock:
            return merge(*({name: bucket} for name, buckets in self._buckets.items()
                           for slot, bucket in buckets.items() if slot > oldest))


def merge(*snapshots: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Several windows' totals as one (several workers, or several buckets)."""
    total: dict[str, dict[str, Any]] = {}
    for snapshot in snapshots:
        for name, part in snapshot.items():
            into = total.setdefault(name, _empty())
            for key in ("calls", "failed", "rejected"):
                into[key] += int(part.get(key, 0))
            hist = part.get("hist") or []
            for i, n in enumerate(hist[:len(into["hist"])]):
                into["hist"][i] += int(n)
    return total


def percentile_ms(hist: list[int], q: float) -> float | None:
    """The latency below which a share `q` of the calls fell, read from the histogram
    (linear within a bucket); None without calls."""
    count = sum(hist)
    if count == 0:
        return None
    rank, seen = q * count, 0
    for i, n in enumerate(hist):
        if n and seen + n >= rank:
            low = BOUNDS_MS[i - 1] if i > 0 else 0.0
            high = BOUNDS_MS[i] if i < len(BOUNDS_MS) else BOUNDS_MS[-1]
            return low + (high - low) * (rank - seen) / n
        seen += n
    return BOUNDS_MS[-1]
