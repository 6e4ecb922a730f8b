"""The state views and the audit trail in SQL tables, on SQLite or PostgreSQL.

One implementation serves both databases: the statements are the same but for the parameter
mark, and each dialect says how to get a connection and open a write transaction. Every write
carries the reader's position in the same transaction, so views and position never disagree.
"""
from __future__ import annotations

import base64
import json
import re
import sqlite3
import threading
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from application.projection import PROJECTIONS
from application.views import AuditEntry, Change, Page, Search
from domain.workflow import TERMINAL

# The state view is kept whole as JSON (its fields depend on its definition); the columns
# beside it are what searches filter and sort by, and they win over the JSON when read.
STATE_COLUMNS = ("workflow_id", "definition", "key", "status", "created_at", "updated_at",
                 "version", "view")
STATE_KEYS = ("workflowId", "definition", "key", "status", "createdAt", "updatedAt", "version")

# The secondary indexes of the state table: (name, columns). Named from the table's name, so a
# second set of tables (a blue/green rebuild's) can carry its own copy beside the served one.
STATE_INDEXES = (
    ("key", "definition, key"),
    ("status_created", "status, created_at, workflow_id"),
    ("created", "created_at, workflow_id"),
    ("definition_created", "definition, created_at, workflow_id"),
)
CREATED = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")  # as the views store times
POSITIONS = """CREATE TABLE IF NOT EXISTS view_positions (
        name TEXT PRIMARY KEY, position BIGINT NOT NULL)"""


def view_tables(prefix: str = "") -> list[str]:
    """The state and audit tables, named `<prefix>workflow_state` and `<prefix>workflow_audit`."""
    return [
        f"""CREATE TABLE IF NOT EXISTS {prefix}workflow_state (
        workflow_id TEXT PRIMARY KEY, definition TEXT NOT NULL, key TEXT NOT NULL,
        status TEXT NOT NULL, created_at TEXT NOT NULL, updated_at TEXT NOT NULL,
        version INTEGER NOT NULL, view TEXT NOT NULL)""",
        f"""CREATE TABLE IF NOT EXISTS {prefix}workflow_audit (
        workflow_id TEXT NOT NULL, position INTEGER NOT NULL, type TEXT NOT NULL,
        timestamp TEXT NOT NULL, data TEXT NOT NULL, PRIMARY KEY (workflow_id, position))""",
    ]


def view_indexes(prefix: str = "") -> list[str]:
    """The state table's secondary indexes, for the table and index names with `prefix`."""
    return [
        f"CREATE INDEX IF NOT EXISTS {prefix}workflow_state_{name} "
        f"ON {prefix}workflow_state ({columns})"
        for name, columns in STATE_INDEXES
    ]


SCHEMA = [*view_tables(), *view_indexes(), POSITIONS]


class SqlViews:
    """WorkflowViews over a DB-API connection; subclasses supply the dialect."""

    mark = "?"
    dialect = "sqlite"

    def __init__(self) -> None:
        self.create_tables()

    # --- dialect ----------------------------------------------------------------------------

    @contextmanager
    def reading(self) -> Iterator[Any]:  # pragma: no cover - abstract
        raise NotImplementedError
        yield

    @contextmanager
    def writing(self) -> Iterator[Any]:  # pragma: no cover - abstract
        raise NotImplementedError
        yield

    def schema(self) -> list[str]:
        return SCHEMA

    def create_tables(self) -> None:
        with self.writing() as cur:
            self.drop_outdated(cur)
            for statement in self.schema():
                cur.execute(statement)

    def drop_outdated(self, cur: Any) -> None:
        """Views from before definitions (a column per order field) are dropped, with their
        position: they are derived data, and the projection builds them anew from the events
        (the first start after the upgrade takes a moment per 10,000 events)."""
        if "order_id" not in self.columns(cur, "workflow_state"):
            return
        for table in ("workflow_state", "workflow_audit"):
            cur.execute(f"DROP TABLE IF EXISTS {table}")
        cur.execute(POSITIONS)
        for name in PROJECTIONS:
            cur.execute(self._sql("DELETE FROM view_positions WHERE name = ?"), (name,))

    def columns(self, cur: Any, table: str) -> set[str]:
        """The columns of a table (none when it does not exist)."""
        cur.execute(f"SELECT * FROM pragma_table_info('{table}')")
        return {row[1] for row in cur.fetchall()}

    def close(self) -> None:
        """Releases the connections."""

    def _sql(self, statement: str) -> str:
        return statement if self.mark == "?" else statement.replace("?", self.mark)

    # --- WorkflowViews ------------------------------------------------------------------------

    def position(self, name: str) -> int:
        with self.reading() as cur:
            cur.execute(self._sql("SELECT position FROM view_positions WHERE name = ?"), (name,))
            row = cur.fetchone()
        return int(row[0]) if row else 0

    def set_position(self, name: str, position: int) -> None:
        self.set_positions({name: position})

    def set_positions(self, positions: dict[str, int]) -> None:
        """Records several readers' positions in one transaction."""
        with self.writing() as cur:
            for name, position in positions.items():
                self._put_position(cur, name, position)

    def states(self, workflow_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        with self.reading() as cur:
            return self.read_states(cur, workflow_ids)

    def write(self, name: str, states: Sequence[dict[str, Any]], audit: Sequence[AuditEntry],
              position: int) -> None:
        with self.writing() as cur:
            self.write_rows(cur, states, audit)
            self._put_position(cur, name, position)
            self._after_write(cur, position, states)

    def update(self, name: str, workflow_ids: Iterable[str], change: Change,
               position: int) -> list[dict[str, Any]]:
        with self.writing() as cur:
            # Read inside the write transaction: a blue/green switch (projections rebuild)
            # renames the tables under a lock, and a batch must fold into the tables it
            # writes, never into states read from the set that was just retired.
            states, audit = change(self.read_states(cur, workflow_ids))
            self.write_rows(cur, states, audit)
            self._put_position(cur, name, position)
            self._after_write(cur, position, states)
        return list(states)

    # --- rows, on a cursor the caller holds (`prefix` names another set of tables) ----------

    def read_states(self, cur: Any, workflow_ids: Iterable[str],
                    prefix: str = "") -> dict[str, dict[str, Any]]:
        """The state rows of these workflows, read on `cur`."""
        ids = list(workflow_ids)
        found: dict[str, dict[str, Any]] = {}
        for i in range(0, len(ids), 500):
            chunk = ids[i:i + 500]
            marks = ",".join("?" * len(chunk))
            cur.execute(self._sql(
                f"SELECT {', '.join(STATE_COLUMNS)} FROM {prefix}workflow_state "
                f"WHERE workflow_id IN ({marks})"), chunk)
            for row in cur.fetchall():
                found[row[0]] = _state(row)
        return found

    def write_rows(self, cur: Any, states: Sequence[dict[str, Any]],
                   audit: Sequence[AuditEntry], prefix: str = "") -> None:
        """Upserts state rows and adds audit rows (a replayed one is ignored), on `cur`."""
        cols, marks = ", ".join(STATE_COLUMNS), ",".join("?" * len(STATE_COLUMNS))
        updates = ", ".join(f"{c} = excluded.{c}" for c in STATE_COLUMNS[1:])
        if states:
            cur.executemany(self._sql(
                f"INSERT INTO {prefix}workflow_state ({cols}) VALUES ({marks}) "
                f"ON CONFLICT (workflow_id) DO UPDATE SET {updates}"),
                [_row(s) for s in states])
        if audit:
            cur.executemany(self._sql(
                f"INSERT INTO {prefix}workflow_audit "
                "(workflow_id, position, type, timestamp, data) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING"),
                [(a.workflow_id, a.position, a.type, a.timestamp,
                  json.dumps(a.data, default=str)) for a in audit])

    def _after_write(self, cur: Any, position: int | None = None,
                     states: Sequence[dict[str, Any]] | None = None) -> None:
        """A hook inside the write transaction (PostgreSQL tells listeners), with the position
        and the states written (None: not known, every state may have changed)."""

    def state(self, workflow_id: str) -> dict[str, Any] | None:
        return self._one("workflow_id", workflow_id)

    def state_by_key(self, definition: str, key: str) -> dict[str, Any] | None:
        with self.reading() as cur:
            cur.execute(self._sql(
                f"SELECT {', '.join(STATE_COLUMNS)} FROM workflow_state "
                "WHERE definition = ? AND key = ?"), (definition, key))
            row = cur.fetchone()
        return _state(row) if row else None

    def audit(self, workflow_id: str) -> list[AuditEntry]:
        with self.reading() as cur:
            cur.execute(self._sql(
                "SELECT workflow_id, position, type, timestamp, data FROM workflow_audit "
                "WHERE workflow_id = ? ORDER BY position"), (workflow_id,))
            rows = cur.fetchall()
        return [AuditEntry(r[0], int(r[1]), r[2], r[3], json.loads(r[4])) for r in rows]

    def search(self, query: Search) -> Page:
        where, params = [], []
        for column, value in (("status", query.status), ("definition", query.definition),
                              ("key", query.key)):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        if query.created_after is not None:
            where.append("created_at > ?")
            params.append(query.created_after)
        if query.created_before is not None:
            where.append("created_at < ?")
            params.append(query.created_before)
        if query.after is not None:
            created, wid = decode_cursor(query.after)
            where.append("(created_at < ? OR (created_at = ? AND workflow_id < ?))")
            params += [created, created, wid]
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        with self.reading() as cur:
            cur.execute(self._sql(
                f"SELECT {', '.join(STATE_COLUMNS)} FROM workflow_state {clause} "
                f"ORDER BY created_at DESC, workflow_id DESC LIMIT ?"), [*params, query.limit + 1])
            rows = cur.fetchall()
        items = [_state(r) for r in rows[:query.limit]]
        more = len(rows) > query.limit
        return Page(items, encode_cursor(items[-1]) if more and items else None)

    def counts(self, definition: str | None = None) -> dict[str, int]:
        """How many workflows are in each status, of one definition or of all."""
        where, params = ("WHERE definition = ?", [definition]) if definition else ("", [])
        with self.reading() as cur:
            cur.execute(self._sql(
                f"SELECT status, COUNT(*) FROM workflow_state {where} GROUP BY status"), params)
            return {status: int(n) for status, n in cur.fetchall()}

    def version_counts(self, definition: str) -> dict[int, dict[str, int]]:
        """How many of a definition's workflows are in each status, per version. The version
        lives only in the view's JSON: this reads every row of the definition (a page an
        operator opens, not a path the API serves)."""
        version = ("json_extract(view, '$.definitionVersion')" if self.dialect == "sqlite"
                   else "(view::jsonb ->> 'definitionVersion')")
        found: dict[int, dict[str, int]] = {}
        with self.reading() as cur:
            cur.execute(self._sql(
                f"SELECT {version}, status, COUNT(*) FROM workflow_state WHERE definition = ? "
                f"GROUP BY 1, 2"), [definition])
            for number, status, n in cur.fetchall():
                found.setdefault(int(number), {})[status] = int(n)
        return found

    def per_minute(self, since: str) -> dict[str, tuple[int, int]]:
        """Workflows created, and workflows ended, per minute (`YYYY-MM-DDTHH:MM`, UTC) since
        the time `since` (as the views store times). An ended workflow counts in the minute
        of its last change: what ended it. One statement for both dialects: the times are
        ISO text, so a minute is the first 16 characters, and the created half reads the
        `created` index."""
        ended = ", ".join(f"'{s}'" for s in TERMINAL)
        with self.reading() as cur:
            cur.execute(self._sql(
                "SELECT substr(at, 1, 16), SUM(started), SUM(ended) FROM ("
                "SELECT created_at AS at, 1 AS started, 0 AS ended FROM workflow_state "
                "WHERE created_at >= ? UNION ALL "
                "SELECT updated_at, 0, 1 FROM workflow_state "
                f"WHERE updated_at >= ? AND status IN ({ended})) AS moments GROUP BY 1"),
                [since, since])
            return {minute: (int(started), int(n)) for minute, started, n in cur.fetchall()}

    def ping(self) -> None:
        """Reads each table the views serve from: raises unless all of them answer (a
        database that answers without our tables, say a deleted file reopened empty, is not
        ready)."""
        with self.reading() as cur:
            for table in ("workflow_state", "workflow_audit", "view_positions"):
                cur.execute(f"SELECT 1 FROM {table} LIMIT 1")
                cur.fetchall()

    # --- helpers ------------------------------------------------------------------------------

    def _one(self, column: str, value: str) -> dict[str, Any] | None:
        with self.reading() as cur:
            cur.execute(self._sql(
                f"SELECT {', '.join(STATE_COLUMNS)} FROM workflow_state WHERE {column} = ?"),
                (value,))
            row = cur.fetchone()
        return _state(row) if row else None

    def put_position(self, cur: Any, name: str, position: int) -> None:
        """Records a reader's position on `cur`, inside the caller's transaction."""
        self._put_position(cur, name, position)

    def _put_position(self, cur: Any, name: str, position: int) -> None:
        cur.execute(self._sql(
            "INSERT INTO view_positions (name, position) VALUES (?, ?) "
            "ON CONFLICT (name) DO UPDATE SET position = excluded.position"), (name, position))


class SqliteViews(SqlViews):
    """The views in a SQLite file of their own (not the event store's: writers would queue)."""

    def __init__(self, path: str, timeout_s: float = 30.0) -> None:
        self.path, self.timeout_s = path, timeout_s
        self._local = threading.local()
        super().__init__()

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=self.timeout_s, isolation_level=None,
                                   check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable on app crash
            self._local.conn = conn
        return conn

    @contextmanager
    def reading(self) -> Iterator[Any]:
        cur = self._conn().cursor()
        try:
            yield cur
        finally:
            cur.close()

    @contextmanager
    def writing(self) -> Iterator[Any]:
        conn = self._conn()
        cur = conn.cursor()
        cur.execute("BEGIN IMMEDIATE")
        try:
            yield cur
        except BaseException:
            conn.rollback()
            raise
        else:
            conn.commit()
        finally:
            cur.close()


def state_rows(states: Iterable[dict[str, Any]]) -> Iterator[tuple[Any, ...]]:
    """State views as rows in STATE_COLUMNS order."""
    return (_row(s) for s in states)


def _row(state: dict[str, Any]) -> tuple[Any, ...]:
    return (*(state[k] for k in STATE_KEYS), json.dumps(state, default=str))


def _state(row: Sequence[Any]) -> dict[str, Any]:
    """The stored view, with the columns beside it: what a search filters by is what it
    serves, so a column that drifted from its JSON is seen (audit replay --verify) rather than
    hidden behind it."""
    state: dict[str, Any] = json.loads(row[-1])
    for key, value in zip(STATE_KEYS, row, strict=False):
        state[key] = value
    state["version"] = int(state["version"])
    return state


def encode_cursor(state: dict[str, Any]) -> str:
    raw = json.dumps([state["createdAt"], state["workflowId"]]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[str, str]:
    """Raises ValueError for a cursor this API did not hand out: only the exact shape that
    encode_cursor makes reaches the database (not a NUL it would refuse, not JSON nested
    deeply enough to crash a parser)."""
    try:
        if len(cursor) > 200:
            raise ValueError
        created, wid = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if not (isinstance(created, str) and CREATED.fullmatch(created)
                and isinstance(wid, str) and str(uuid.UUID(wid)) == wid):
            raise ValueError
    except (ValueError, TypeError, RecursionError):
        raise ValueError("not a cursor this API handed out") from None
    return created, wid
