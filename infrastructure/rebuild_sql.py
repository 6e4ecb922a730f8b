"""The blue/green tables of a projection rebuild, beside the served ones in the views database.

`rebuild_workflow_state` and `rebuild_workflow_audit` are filled while the API reads
`workflow_state` and `workflow_audit`. The switch renames, in one transaction: served ->
`old_*`, fresh -> served names (and their indexes with them), and records the position; the
old set is dropped afterwards. On PostgreSQL the switch first takes ACCESS EXCLUSIVE locks on
the served tables and `view_positions`, in the order the projection's writes touch them, so
no projection batch interleaves; on SQLite the views' BEGIN IMMEDIATE already shuts out every
other writer.
"""
from __future__ import annotations

import fcntl
import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from application.rebuild import RebuildBusy, Tables
from application.views import AuditEntry
from infrastructure.views_sql import (
    STATE_COLUMNS,
    STATE_INDEXES,
    SqlViews,
    state_rows,
    view_indexes,
    view_tables,
)

FRESH, RETIRED = "rebuild_", "old_"
TABLES = ("workflow_state", "workflow_audit")
# Every index of the two tables, PostgreSQL's primary keys included, by its served name.
INDEXES = ("workflow_state_pkey", "workflow_audit_pkey",
           *(f"workflow_state_{name}" for name, _ in STATE_INDEXES))
REBUILD_LOCK = 0x72656275696C64  # pg_try_advisory_lock key: one rebuild at a time


class SqlTables:
    """The fresh tables on a cursor whose transaction the caller holds."""

    def __init__(self, views: SqlViews, cur: Any) -> None:
        self.views, self.cur = views, cur

    def states(self, workflow_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        return self.views.read_states(self.cur, workflow_ids, prefix=FRESH)

    def write(self, states: Sequence[dict[str, Any]], audit: Sequence[AuditEntry]) -> None:
        if self.views.dialect != "postgres":
            self.views.write_rows(self.cur, states, audit, prefix=FRESH)
            return
        # COPY is several times faster than row inserts. States go through a staging table
        # (a workflow's row may exist from an earlier batch); audit rows straight in, as a
        # rebuild reads each event once into tables it created itself.
        cols = ", ".join(STATE_COLUMNS)
        self.cur.execute(f"CREATE TEMP TABLE IF NOT EXISTS {FRESH}stage "
                         f"(LIKE {FRESH}workflow_state) ON COMMIT DELETE ROWS")
        with self.cur.copy(f"COPY {FRESH}stage ({cols}) FROM STDIN") as copy:
            for row in state_rows(states):
                copy.write_row(row)
        updates = ", ".join(f"{c} = excluded.{c}" for c in STATE_COLUMNS[1:])
        self.cur.execute(f"INSERT INTO {FRESH}workflow_state ({cols}) SELECT {cols} FROM "
                         f"{FRESH}stage ON CONFLICT (workflow_id) DO UPDATE SET {updates}")
        with self.cur.copy(f"COPY {FRESH}workflow_audit "
                           "(workflow_id, position, type, timestamp, data) FROM STDIN") as copy:
            for a in audit:
                copy.write_row((a.workflow_id, a.position, a.type, a.timestamp,
                                json.dumps(a.data, default=str)))


class SqlRebuildTarget:
    """RebuildTarget over SqlViews (SQLite or PostgreSQL)."""

    def __init__(self, views: SqlViews) -> None:
        self.views = views
        self.postgres = views.dialect == "postgres"

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        if self.postgres:
            # A session lock on a connection of its own, held (outside any transaction) for
            # the whole rebuild; PostgreSQL releases it if we die.
            with self.views.pool.connection() as conn:  # type: ignore[attr-defined]
                conn.autocommit = True
                try:
                    got = conn.execute(
                        "SELECT pg_try_advisory_lock(%s)", (REBUILD_LOCK,)).fetchone()
                    if not got or not got[0]:
                        raise RebuildBusy("another rebuild of these views is running")
                    try:
                        yield
                    finally:
                        conn.execute("SELECT pg_advisory_unlock(%s)", (REBUILD_LOCK,))
                finally:
                    conn.autocommit = False
            return
        # SQLite: a lock file beside the views; the kernel releases it if we die.
        with open(f"{self.views.path}.rebuild.lock", "w") as file:  # type: ignore[attr-defined]
            try:
                fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise RebuildBusy("another rebuild of these views is running") from None
            yield

    def prepare(self) -> None:
        with self.views.writing() as cur:
            for table in TABLES:
                cur.execute(f"DROP TABLE IF EXISTS {FRESH}{table}")
                cur.execute(f"DROP TABLE IF EXISTS {RETIRED}{table}")
            self._tidy_indexes(cur)  # a switch whose clean-up was interrupted
            for statement in view_tables(FRESH):
                cur.execute(statement)

    @contextmanager
    def batch(self) -> Iterator[Tables]:
        with self.views.writing() as cur:
            yield SqlTables(self.views, cur)

    def add_indexes(self) -> None:
        with self.views.writing() as cur:
            for statement in view_indexes(FRESH):
                cur.execute(statement)

    def switch(self, name: str, catch_up: Callable[[Tables], int]) -> None:
        with self.views.writing() as cur:
            if self.postgres:
                cur.execute("LOCK TABLE workflow_state, workflow_audit, view_positions "
                            "IN ACCESS EXCLUSIVE MODE")
            position = catch_up(SqlTables(self.views, cur))
            for table in TABLES:
                cur.execute(f"ALTER TABLE {table} RENAME TO {RETIRED}{table}")
            for table in TABLES:
                cur.execute(f"ALTER TABLE {FRESH}{table} RENAME TO {table}")
            if self.postgres:  # SQLite cannot rename an index: finish() recreates them
                for index in INDEXES:
                    cur.execute(f"ALTER INDEX IF EXISTS {index} RENAME TO {RETIRED}{index}")
                for index in INDEXES:
                    cur.execute(f"ALTER INDEX IF EXISTS {FRESH}{index} RENAME TO {index}")
            self.views.put_position(cur, name, position)
            self.views._after_write(cur)  # wakes API processes waiting on the views

    def finish(self) -> None:
        with self.views.writing() as cur:
            for table in TABLES:
                cur.execute(f"DROP TABLE IF EXISTS {RETIRED}{table}")
            self._tidy_indexes(cur)

    def _tidy_indexes(self, cur: Any) -> None:
        """Gives the served tables their indexes under the served names again (SQLite)."""
        if self.postgres:
            return
        for statement in view_indexes():
            cur.execute(statement)
        for name, _ in STATE_INDEXES:
            cur.execute(f"DROP INDEX IF EXISTS {FRESH}workflow_state_{name}")
