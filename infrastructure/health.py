"""The console's health page, gathered: per participant the breaker and the calls of the last
minutes, the workflows started and ended per minute over the last hour, the projection's lag,
and the workers with the shards each holds.

Calls are made by the workers, not by the process that serves the page. On PostgreSQL each
worker publishes what it holds and sees with its heartbeat (cluster.py), and this reads every
worker seen lately; on SQLite one process (`orchestrator run`) does everything, and reads its
own."""
from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from application.projection import PROJECTIONS
from infrastructure.cluster import DEAD_AFTER_S, local_stats
from infrastructure.recent_calls import WINDOW_S, merge, percentile_ms

if TYPE_CHECKING:
    from infrastructure.system import System

SHOWN_AFTER_DEATH_S = 60  # a worker that stopped beating is shown as gone for a minute
BREAKER_RANK = {"closed": 0, "half-open": 1, "open": 2}


def health(system: System) -> dict[str, Any]:
    """The health page's figures, JSON-able."""
    now = datetime.now(UTC)
    workers = _workers(system, now)
    seen: list[dict[str, Any]] = []
    breakers: dict[str, str] = {}
    for worker in workers:
        calls, states = worker.pop("calls", {}), worker.pop("breakers", {})
        if not worker["live"]:
            continue
        seen.append(calls)
        for name, state in states.items():  # the worst state any live worker sees
            if BREAKER_RANK.get(state, 0) >= BREAKER_RANK.get(breakers.get(name, ""), -1):
                breakers[name] = state
    calls = merge(*seen)
    minutes = WINDOW_S / 60
    participants = []
    for name in sorted(set(calls) | set(breakers)):
        part = calls.get(name) or {"calls": 0, "failed": 0, "rejected": 0, "hist": []}
        n = part["calls"]
        participants.append({
            "name": name, "breaker": breakers.get(name, "unknown"),
            "callsPerMinute": n / minutes, "errorRate": part["failed"] / n if n else 0.0,
            "rejectedRate": part["rejected"] / n if n else 0.0,
            "p50Ms": percentile_ms(part["hist"], 0.5), "p99Ms": percentile_ms(part["hist"], 0.99),
            "window": f"last {WINDOW_S // 60} minutes"})
    head = system.workflows.recorder.max_notification_id() or 0
    return {"participants": participants, "perMinute": _per_minute(system, now),
            "lag": max(0, head - system.views.position(PROJECTIONS[0])), "workers": workers}


def _per_minute(system: System, now: datetime) -> list[dict[str, Any]]:
    """60 minutes, oldest first, the current one last."""
    first = now.replace(second=0, microsecond=0) - timedelta(minutes=59)
    counts = system.views.per_minute(first.strftime("%Y-%m-%dT%H:%M:%S.%fZ"))
    out = []
    for i in range(60):
        minute = first + timedelta(minutes=i)
        started, ended = counts.get(minute.strftime("%Y-%m-%dT%H:%M"), (0, 0))
        out.append({"minute": minute.strftime("%H:%M"), "started": started, "finished": ended})
    return out


def _workers(system: System, now: datetime) -> list[dict[str, Any]]:
    if not system.settings.is_postgres:
        coordinator = system.coordinator
        leading = getattr(coordinator, "leading", None)
        if leading is None or not leading.is_set():
            return []
        return [{"id": "this process (orchestrator run)", "lastSeen": _iso(now), "live": True,
                 "shards": list(range(system.settings.shards)), "projection": True,
                 **local_stats(system)}]
    with system.views.reading() as cur:
        cur.execute("SELECT worker_id, last_seen, stats, last_seen > now() - "
                    "make_interval(secs => %s) FROM orchestrator_workers WHERE last_seen > "
                    "now() - make_interval(secs => %s) ORDER BY worker_id",
                    (DEAD_AFTER_S, SHOWN_AFTER_DEATH_S))
        rows = cur.fetchall()
    workers = []
    for worker_id, seen, raw, live in rows:
        stats = _stats(raw)
        workers.append({"id": worker_id, "lastSeen": _iso(seen), "live": bool(live),
                        "shards": stats.get("shards", []),
                        "projection": bool(stats.get("projection")),
                        "breakers": stats.get("breakers", {}), "calls": stats.get("calls", {})})
    return workers


def _stats(raw: str | None) -> dict[str, Any]:
    try:
        found = json.loads(raw) if raw else {}
    except ValueError:
        found = {}
    return found if isinstance(found, dict) else {}


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
