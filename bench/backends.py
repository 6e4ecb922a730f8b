"""The databases the system runs on during the benchmark, and how many writes they took.

Each measurement gets a fresh store: a SQLite file in a temporary folder, or a PostgreSQL
database created for it and dropped afterwards. Write transactions are counted exactly:

- SQLite: the WAL index's change counter (`iChange` in the `-shm` header, bumped once per
  committed write transaction) of the event store and of the views file, read while the
  system's processes are still running (the index goes when the last connection closes);
- PostgreSQL: the event store's transactions are the distinct `xmin` of the events written;
  every views transaction (a projection batch or a position checkpoint) writes exactly one
  `view_positions` row, and heartbeats write `orchestrator_workers`: their row counts from
  `pg_stat_user_tables`, read after the processes have ended (their statistics are flushed
  then). `xact_commit` is reported too: every commit, reads and idle polling included.
"""
from __future__ import annotations

import struct
import sys
import time
import uuid
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote, urlsplit

import psycopg

DEFAULT_PG_ADMIN = "postgresql://127.0.0.1:5432/postgres"


class Backend(Protocol):
    name: str
    url: str  # DATABASE_URL for the system

    def live_writes(self) -> int | None:
        """Write transactions so far, read while the system runs (None if only after)."""

    def final_writes(self) -> dict[str, Any]:
        """Write counters once the system's processes have ended."""

    def db_pids(self) -> list[int]:
        """Server processes working for this database (none for SQLite: it is in-process)."""

    def drop(self) -> None:
        """Removes the store."""


class SqliteBackend:
    """A SQLite event store (and its views file beside it) in `folder`."""

    name = "sqlite"

    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.store = folder / "orchestrator.sqlite3"
        self.views = folder / "orchestrator.views.sqlite3"  # as infrastructure names it
        self.url = f"sqlite:///{self.store}"

    def live_writes(self) -> int | None:
        counts = [wal_changes(path) for path in (self.store, self.views)]
        return None if None in counts else sum(c for c in counts if c is not None)

    def final_writes(self) -> dict[str, Any]:
        return {}

    def db_pids(self) -> list[int]:
        return []

    def drop(self) -> None:
        for path in self.store.parent.glob("orchestrator*"):
            path.unlink(missing_ok=True)


def wal_changes(database: Path) -> int | None:
    """The WAL index's count of committed write transactions, or None without a WAL index."""
    try:
        with open(f"{database}-shm", "rb") as f:
            header = f.read(12)
    except OSError:
        return None
    return struct.unpack("=III", header)[2] if len(header) == 12 else None


class PostgresBackend:
    """A database of its own on the PostgreSQL server that `admin_url` reaches."""

    name = "postgres"

    def __init__(self, admin_url: str) -> None:
        self.admin_url = admin_url
        self.dbname = f"bench_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(admin_url, autocommit=True, connect_timeout=5) as conn:
            user, password = conn.info.user, conn.info.password
            conn.execute(f'CREATE DATABASE "{self.dbname}"')
        parts = urlsplit(admin_url)
        auth = quote(user, safe="") + (f":{quote(password, safe='')}" if password else "")
        self.url = f"postgresql://{auth}@{parts.hostname or '127.0.0.1'}:{parts.port or 5432}" \
                   f"/{self.dbname}"

    def live_writes(self) -> int | None:
        return None

    def final_writes(self) -> dict[str, Any]:
        with psycopg.connect(self.url, autocommit=True) as conn:
            store = conn.execute(
                "SELECT count(DISTINCT xmin::text) FROM workflows_events").fetchone()
            rows: dict[str, int] = dict(conn.execute(
                "SELECT relname, n_tup_ins + n_tup_upd + n_tup_del FROM pg_stat_user_tables "
                "WHERE relname IN ('view_positions', 'orchestrator_workers')").fetchall())
            commits = conn.execute("SELECT xact_commit FROM pg_stat_database "
                                   "WHERE datname = current_database()").fetchone()
        store_tx = int(store[0]) if store else 0
        views_tx = int(rows.get("view_positions", 0))
        heartbeats = int(rows.get("orchestrator_workers", 0))
        return {"writes": store_tx + views_tx + heartbeats, "store_tx": store_tx,
                "views_tx": views_tx, "heartbeat_tx": heartbeats,
                "xact_commit": int(commits[0]) if commits else None}

    def db_pids(self) -> list[int]:
        with psycopg.connect(self.admin_url, autocommit=True, connect_timeout=5) as conn:
            rows = conn.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s",
                                (self.dbname,)).fetchall()
        return [int(r[0]) for r in rows]

    def drop(self, retry_s: float = 60.0) -> None:
        """Drops the database; while the server is away (restarting, say), tries again for
        `retry_s`, then leaves it behind with a warning rather than lose the results."""
        deadline = time.monotonic() + retry_s
        while True:
            try:
                with psycopg.connect(self.admin_url, autocommit=True, connect_timeout=5) as c:
                    c.execute(f'DROP DATABASE IF EXISTS "{self.dbname}" WITH (FORCE)')
                return
            except psycopg.OperationalError as e:
                if time.monotonic() > deadline:
                    print(f"warning: could not drop database {self.dbname}: {e}",
                          file=sys.stderr)
                    return
                time.sleep(1)


def postgres_reachable(admin_url: str) -> str | None:
    """None when we can create databases there, else why not."""
    try:
        with psycopg.connect(admin_url, autocommit=True, connect_timeout=3) as conn:
            row = conn.execute("SELECT rolcreatedb OR rolsuper FROM pg_roles "
                               "WHERE rolname = current_user").fetchone()
    except psycopg.Error as e:
        first = (str(e).strip().splitlines() or ["?"])[0]
        return f"PostgreSQL at {admin_url} is not reachable ({first})"
    return None if row and row[0] else "the PostgreSQL user may not create databases"
