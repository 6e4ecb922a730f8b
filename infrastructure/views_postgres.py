"""The views on PostgreSQL: the shared SQL of views_sql over a psycopg 3 connection pool."""
from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from psycopg_pool import ConnectionPool

from application.views import ViewsWritten
from domain.workflow import TERMINAL
from infrastructure.views_sql import SqlViews

SCHEMA_LOCK = 0x6F72636865737472  # pg_advisory_xact_lock key: one process creates the tables
CHANNEL = "workflow_views"  # NOTIFY after each write: wakes API processes waiting on views
WORKERS = """CREATE TABLE IF NOT EXISTS orchestrator_workers (
    worker_id TEXT PRIMARY KEY, last_seen TIMESTAMPTZ NOT NULL)"""
# What each worker holds and sees, published with its heartbeat for the console's health page
# (added to tables from before it).
WORKER_STATS = "ALTER TABLE orchestrator_workers ADD COLUMN IF NOT EXISTS stats TEXT"
# A NOTIFY payload must stay under 8000 bytes: past this, it names no workflow, and waiters
# read back all they wait for.
PAYLOAD_MAX = 7000


def notice_payload(position: int | None, states: Sequence[dict[str, Any]] | None) -> str:
    """What a write tells the API processes: its position and the workflows it ended, so that
    a waiter reads back only those (an empty payload: read back everything)."""
    if position is None or states is None:
        return ""
    ended = [s["workflowId"] for s in states if s["status"] in TERMINAL]
    payload = json.dumps({"position": position, "ended": ended}, separators=(",", ":"))
    return payload if len(payload) <= PAYLOAD_MAX else ""


def read_notice(payload: str | None) -> ViewsWritten:
    """The notice a NOTIFY payload carries (None: the listener reconnected, so any write may
    have been missed)."""
    if not payload:
        return ViewsWritten()
    told = json.loads(payload)
    return ViewsWritten(position=int(told["position"]), ended=[str(w) for w in told["ended"]])


class PostgresViews(SqlViews):
    """State views, audit trail and reader positions in PostgreSQL tables."""

    mark = "%s"
    dialect = "postgres"

    def __init__(self, url: str, min_size: int = 1, max_size: int = 10,
                 check: bool = False) -> None:
        self.pool = ConnectionPool(
            url, min_size=min_size, max_size=max_size, open=True, timeout=10,
            kwargs={"connect_timeout": 5},
            check=ConnectionPool.check_connection if check else None)
        super().__init__()

    def schema(self) -> list[str]:
        return [*super().schema(), WORKERS, WORKER_STATS]

    def _after_write(self, cur: Any, position: int | None = None,
                     states: Sequence[dict[str, Any]] | None = None) -> None:
        cur.execute("SELECT pg_notify(%s, %s)", (CHANNEL, notice_payload(position, states)))

    def create_tables(self) -> None:
        # Several processes may start at once: serialize the DDL instead of racing on it.
        with self.writing() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))
            self.drop_outdated(cur)
            for statement in self.schema():
                cur.execute(statement)

    def columns(self, cur: Any, table: str) -> set[str]:
        cur.execute("SELECT column_name FROM information_schema.columns "
                    "WHERE table_schema = current_schema() AND table_name = %s", (table,))
        return {row[0] for row in cur.fetchall()}

    @contextmanager
    def reading(self) -> Iterator[Any]:
        with self.pool.connection() as conn, conn.cursor() as cur:
            yield cur

    @contextmanager
    def writing(self) -> Iterator[Any]:
        with self.pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
            yield cur

    def close(self) -> None:
        self.pool.close()
