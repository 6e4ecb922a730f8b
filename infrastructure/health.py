"""Where the health page's figures live, gathered as `WorkerReport`s (application/health.py
makes the page from them): what each worker holds and sees, and how it is published.

Calls are made by the workers, not by the process that serves the page. On PostgreSQL each
worker publishes what it holds and sees with its heartbeat, in the `stats` column of its row
in orchestrator_workers (cluster.py `published`), and `worker_reports` reads the rows seen
lately; on SQLite one process (`orchestrator run`) does everything and reports itself."""
from __future__ import annotations

import json
import os
import socket
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from application.health import CallCounts, WorkerReport
from infrastructure.cluster import DEAD_AFTER_S, local_figures

if TYPE_CHECKING:
    from infrastructure.system import System

SHOWN_AFTER_DEATH_S = 60  # a worker that stopped beating is shown as gone for a minute


def worker_reports(system: System) -> list[WorkerReport]:
    """The workers seen lately, live or gone, with what each published."""
    if not system.settings.is_postgres:
        return _this_process(system)
    with system.views.reading() as cur:
        cur.execute("SELECT worker_id, last_seen, stats, last_seen > now() - "
                    "make_interval(secs => %s) FROM orchestrator_workers WHERE last_seen > "
                    "now() - make_interval(secs => %s)", (DEAD_AFTER_S, SHOWN_AFTER_DEATH_S))
        rows = cur.fetchall()
    return [_report(worker_id, seen, bool(live), _object(raw))
            for worker_id, seen, raw, live in rows]


def _this_process(system: System) -> list[WorkerReport]:
    """`orchestrator run`: this process, when it is a worker (the leader holds every shard
    and the projection; a standby waiting for the file lock holds nothing)."""
    coordinator = system.coordinator
    if coordinator is None:  # serves requests only: the worker is another process
        return []
    leading = getattr(coordinator, "leading", None)
    holds = leading is not None and leading.is_set()
    seen = local_figures(system)
    return [_report(f"{socket.gethostname()}:{os.getpid()}", datetime.now(UTC), True, {
        "shards": list(range(system.settings.shards)) if holds else [], "projection": holds,
        **seen})]


def _report(worker_id: str, seen: datetime, live: bool, stats: dict[str, Any]) -> WorkerReport:
    """One worker's report from what it published (what does not parse reads as nothing)."""
    shards = stats.get("shards")
    breakers = stats.get("breakers")
    calls = stats.get("calls")
    return WorkerReport(
        id=worker_id, last_seen=seen, live=live,
        shards=tuple(k for k in shards if isinstance(k, int)) if isinstance(shards, list) else (),
        projection=stats.get("projection") is True,
        breakers={str(k): str(v) for k, v in breakers.items()} if isinstance(breakers, dict)
        else {},
        calls={str(k): CallCounts.from_json(v) for k, v in calls.items()}
        if isinstance(calls, dict) else {})


def _object(raw: str | None) -> dict[str, Any]:
    try:
        found = json.loads(raw) if raw else {}
    except ValueError:
        found = {}
    return found if isinstance(found, dict) else {}
