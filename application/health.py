"""The console's health page as data: its shapes, and the arithmetic that makes them from what
each worker publishes (its recent calls, breakers and shards), the views' counts per minute
and the projection's position. Pure: infrastructure gathers the inputs (infrastructure/health.py)
and the `HealthSource` a System is hands them over.

A worker's recent calls are a `CallCounts` per participant: counts by outcome and a sparse
latency histogram, never samples, so that a record is small enough to publish with every
heartbeat and records of several workers (or several 10-second buckets) simply add up.
"""
from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from application.projection import PROJECTIONS
from application.views import WorkflowViews

BUCKET_S = 10  # the window moves in steps this long
WINDOW_S = 300
WINDOW = f"last {WINDOW_S // 60} minutes"
MINUTES = 60  # perMinute covers the last hour, the current minute last
# Latency bounds in ms, each 1.25x the last, 1 ms to about a minute: a percentile read from
# them is within 25 % of the true one, with 51 buckets at most (most calls fill a few).
BOUNDS_MS = tuple(round(1.25 ** i, 3) for i in range(50))
FAILED = frozenset({"transient", "unavailable"})  # the participant failed or was unreachable
REJECTED = "rejected"  # its business "no": an answer, counted apart from failures
# Which breaker state wins when workers disagree: the worst one any of them sees.
BREAKER_RANK = {"unknown": -1, "closed": 0, "half-open": 1, "open": 2}
TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"  # as the views store times


def latency_bucket(seconds: float) -> int:
    """The histogram bucket of one call's duration."""
    return bisect.bisect_left(BOUNDS_MS, seconds * 1000)


@dataclass(frozen=True)
class CallCounts:
    """A participant's calls over some time: how many, how many failed (transient or
    unavailable), how many were rejected, and their durations as a histogram (bucket index
    of BOUNDS_MS -> calls; the last index holds what took longer than the last bound)."""

    calls: int = 0
    failed: int = 0
    rejected: int = 0
    latency: Mapping[int, int] = field(default_factory=dict)

    def __add__(self, other: CallCounts) -> CallCounts:
        latency = dict(self.latency)
        for index, n in other.latency.items():
            latency[index] = latency.get(index, 0) + n
        return CallCounts(self.calls + other.calls, self.failed + other.failed,
                          self.rejected + other.rejected, latency)

    def percentile_ms(self, q: float) -> float | None:
        """The duration below which a share `q` of the calls fell, read from the histogram
        (linear within a bucket); None without calls."""
        count = sum(self.latency.values())
        if count == 0:
            return None
        rank, seen = q * count, 0
        for index in sorted(self.latency):
            n = self.latency[index]
            if n and seen + n >= rank:
                low = BOUNDS_MS[index - 1] if index > 0 else 0.0
                high = BOUNDS_MS[min(index, len(BOUNDS_MS) - 1)]
                return round(low + (high - low) * (rank - seen) / n, 3)
            seen += n
        return BOUNDS_MS[-1]

    def as_json(self) -> dict[str, Any]:
        """The published form (JSON object keys are strings)."""
        return {"calls": self.calls, "failed": self.failed, "rejected": self.rejected,
                "latency": {str(k): n for k, n in sorted(self.latency.items())}}

    @classmethod
    def from_json(cls, raw: object) -> CallCounts:
        """Reads the published form; what is not (another version's, a damaged row) reads as
        no calls rather than failing the page."""
        if not isinstance(raw, dict):
            return cls()
        try:
            latency = {int(k): int(n) for k, n in (raw.get("latency") or {}).items()
                       if 0 <= int(k) <= len(BOUNDS_MS) and int(n) > 0}
            return cls(int(raw.get("calls", 0)), int(raw.get("failed", 0)),
                       int(raw.get("rejected", 0)), latency)
        except (TypeError, ValueError, AttributeError):
            return cls()


def add_up(records: Iterable[Mapping[str, CallCounts]]) -> dict[str, CallCounts]:
    """Several records per participant (workers, buckets) as one."""
    total: dict[str, CallCounts] = {}
    for record in records:
        for name, counts in record.items():
            total[name] = total[name] + counts if name in total else counts
    return total


@dataclass(frozen=True)
class WorkerReport:
    """What one worker published with its latest heartbeat (or, in `orchestrator run`, what
    this process holds and sees): the input of `assemble`."""

    id: str
    last_seen: datetime
    live: bool  # beat within the time after which the others take over its shards
    shards: tuple[int, ...] = ()
    projection: bool = False  # writes the views (the others are standbys)
    breakers: Mapping[str, str] = field(default_factory=dict)
    calls: Mapping[str, CallCounts] = field(default_factory=dict)


# --- what the page shows ----------------------------------------------------------------------

@dataclass(frozen=True)
class ParticipantHealth:
    """One participant over the window, across every live worker."""

    name: str
    breaker: str  # "closed", "open", "half-open", or "unknown" (no live worker holds one)
    calls_per_minute: float
    error_rate: float  # failed (transient, unavailable) over all calls; 0 without calls
    rejected_rate: float  # rejected over all calls: error_rate + rejected_rate = not succeeded
    p50_ms: float | None  # None without calls
    p99_ms: float | None
    window: str = WINDOW

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "breaker": self.breaker,
                "callsPerMinute": self.calls_per_minute, "errorRate": self.error_rate,
                "rejectedRate": self.rejected_rate, "p50Ms": self.p50_ms, "p99Ms": self.p99_ms,
                "window": self.window}


@dataclass(frozen=True)
class MinuteHealth:
    """Workflows started (created) and finished (reached a terminal status) in one minute."""

    minute: str  # "HH:MM", UTC
    started: int
    finished: int

    def as_dict(self) -> dict[str, Any]:
        return {"minute": self.minute, "started": self.started, "finished": self.finished}


@dataclass(frozen=True)
class WorkerHealth:
    """One worker seen lately: live, or gone (stopped beating) within the last minute."""

    id: str
    last_seen: str  # ISO 8601, UTC
    shards: tuple[int, ...]
    live: bool
    projection: bool

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "lastSeen": self.last_seen, "shards": list(self.shards),
                "live": self.live, "projection": self.projection}


@dataclass(frozen=True)
class Health:
    """The health page's figures; `as_dict()` is the JSON-able form with camelCase keys."""

    participants: tuple[ParticipantHealth, ...]
    per_minute: tuple[MinuteHealth, ...]  # MINUTES entries, oldest first
    lag: int  # events in the store not yet in the views
    workers: tuple[WorkerHealth, ...]

    def as_dict(self) -> dict[str, Any]:
        return {"participants": [p.as_dict() for p in self.participants],
                "perMinute": [m.as_dict() for m in self.per_minute], "lag": self.lag,
                "workers": [w.as_dict() for w in self.workers]}


# --- making it ----------------------------------------------------------------------------------

class HealthSource(Protocol):
    """What `health` reads; infrastructure's System is one."""

    @property
    def views(self) -> WorkflowViews: ...

    def event_head(self) -> int:
        """The store's last position (0 when empty)."""
        ...

    def worker_reports(self) -> list[WorkerReport]:
        """The workers seen lately, live or gone, with what each published."""
        ...


def health(system: HealthSource, now: datetime | None = None) -> Health:
    """The health page's figures, read now from the system's views, store and workers."""
    now = now or datetime.now(UTC)
    first = first_minute(now)
    counts = system.views.per_minute(first.strftime(TIME_FORMAT))
    lag = system.event_head() - system.views.position(PROJECTIONS[0])
    return assemble(now, system.worker_reports(), counts, lag)


def first_minute(now: datetime) -> datetime:
    """The start of the oldest minute shown."""
    return now.astimezone(UTC).replace(second=0, microsecond=0) - timedelta(minutes=MINUTES - 1)


def assemble(now: datetime, workers: Sequence[WorkerReport],
             counts: Mapping[str, tuple[int, int]], lag: int) -> Health:
    """The figures from their inputs: the live workers' calls added up and their breakers at
    the worst, the views' (started, finished) per minute ("YYYY-MM-DDTHH:MM") laid over the
    last hour, and the lag (never below 0: a position read after the head)."""
    live = [w for w in workers if w.live]
    calls = add_up(w.calls for w in live)
    breakers: dict[str, str] = {}
    for worker in live:
        for name, state in worker.breakers.items():
            state = state if state in BREAKER_RANK else "unknown"
            if name not in breakers or BREAKER_RANK[state] > BREAKER_RANK[breakers[name]]:
                breakers[name] = state
    minutes = WINDOW_S / 60
    participants = []
    for name in sorted(set(calls) | set(breakers)):
        part = calls.get(name, CallCounts())
        n = part.calls
        participants.append(ParticipantHealth(
            name=name, breaker=breakers.get(name, "unknown"),
            calls_per_minute=round(n / minutes, 3),
            error_rate=part.failed / n if n else 0.0, rejected_rate=part.rejected / n if n else 0.0,
            p50_ms=part.percentile_ms(0.5), p99_ms=part.percentile_ms(0.99)))
    first = first_minute(now)
    per_minute = []
    for i in range(MINUTES):
        minute = first + timedelta(minutes=i)
        started, finished = counts.get(minute.strftime("%Y-%m-%dT%H:%M"), (0, 0))
        per_minute.append(MinuteHealth(minute.strftime("%H:%M"), started, finished))
    shown = [WorkerHealth(w.id, w.last_seen.astimezone(UTC).strftime(TIME_FORMAT),
                          tuple(sorted(w.shards)), w.live, w.projection)
             for w in sorted(workers, key=lambda w: w.id)]
    return Health(tuple(participants), tuple(per_minute), max(0, lag), tuple(shown))

