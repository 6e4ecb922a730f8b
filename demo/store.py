"""The records of the demo participants, in one SQLite file.

Three tables: `resources` (each payment, reservation, shipment, booking, ... and its business
key), `effects` (every applied action, in order) and `answers` (the stored answer per action
and Idempotency-Key). Applying an action and storing its answer happen in one `BEGIN IMMEDIATE`
transaction, so two concurrent calls with one key apply once, and a restart loses nothing.

The `order_id` columns hold any business key (an orderId or a tripId): they keep the name they
had before trips existed, so a records file written then keeps working.
"""
from __future__ import annotations

import json
import os
import sqlite3
import threading
import uuid
from dataclasses import dataclass
from typing import Any

from demo.routes import Route

_SCHEMA = """
CREATE TABLE IF NOT EXISTS resources (
    ref TEXT PRIMARY KEY, kind TEXT NOT NULL, order_id TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS effects (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, action TEXT NOT NULL, order_id TEXT NOT NULL,
    ref TEXT NOT NULL, idempotency_key TEXT, detail TEXT);
CREATE TABLE IF NOT EXISTS answers (
    action TEXT NOT NULL, idempotency_key TEXT NOT NULL, status INTEGER NOT NULL,
    body TEXT NOT NULL, PRIMARY KEY (action, idempotency_key));
"""


class UnknownReference(LookupError):
    """An undo named a resource that does not exist (or one its call does not undo)."""

    def __init__(self, action: str, id_field: str, ref: str) -> None:
        super().__init__(f"{action}: no {id_field} {ref!r}")
        self.action = action
        self.ref = ref


@dataclass(frozen=True)
class Answer:
    """The answer to one call: the original one when `replayed`."""

    status: int
    body: dict[str, Any]
    replayed: bool = False


@dataclass(frozen=True)
class Effect:
    """One applied action, on resource `ref` of business key `key`."""

    action: str
    key: str
    ref: str


class ParticipantStore:
    """The SQLite records of the demo participants; safe to share between threads."""

    def __init__(self, db_path: str) -> None:
        """Opens (and creates, with its directory) the SQLite file at `db_path`."""
        directory = os.path.dirname(os.path.abspath(db_path))
        os.makedirs(directory, exist_ok=True)
        # One connection behind a lock: every statement takes well under a millisecond, and
        # werkzeug starts a thread per request, so per-thread connections would be opened
        # and dropped on every call. isolation_level=None lets us issue BEGIN IMMEDIATE.
        self._conn = sqlite3.connect(db_path, check_same_thread=False, isolation_level=None,
                                     timeout=10.0)
        self._lock = threading.Lock()
        with self._lock:
            self._conn.execute("PRAGMA journal_mode=WAL")
            # NORMAL is durable across a process crash in WAL mode, which is what a demo
            # restart needs; only a power loss could drop the last commits.
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._conn.executescript(_SCHEMA)

    def stored_answer(self, action: str, key: str) -> Answer | None:
        """The answer stored for `key` and `action`, or None when the key is new."""
        with self._lock:
            return self._stored_answer(action, key)

    def apply(self, route: Route, key: str | None, business_key: str | None = None,
              ref: str | None = None, detail: str | None = None) -> Answer:
        """Applies `route`'s action once per `key` and returns its answer (the stored one on
        a replay).

        A forward call needs `business_key` and creates a resource; an undo needs the `ref` it
        undoes, takes that resource's business key, and raises UnknownReference when there is
        no such resource of the kind it undoes. Without a key nothing protects against a
        repeat, which is the caller's bug to see in the stats."""
        with self._lock:
            # BEGIN IMMEDIATE takes the write lock before the check, so a second process on
            # the same file cannot slip in between the check and the insert either.
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                stored = self._stored_answer(route.action, key) if key else None
                if stored is not None:
                    self._conn.execute("COMMIT")
                    return stored
                ref, business_key = self._resource(route, ref, business_key)
                body = route.answer(ref, business_key)
                self._conn.execute(
                    "INSERT INTO effects (action, order_id, ref, idempotency_key, detail)"
                    " VALUES (?, ?, ?, ?, ?)", (route.action, business_key, ref, key, detail))
                if key:
                    self._conn.execute("INSERT INTO answers VALUES (?, ?, ?, ?)",
                                       (route.action, key, route.http_status, json.dumps(body)))
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
        return Answer(route.http_status, body)

    def effects(self) -> list[Effect]:
        """Every applied action, in the order applied."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT action, order_id, ref FROM effects ORDER BY seq").fetchall()
        return [Effect(*row) for row in rows]

    def clear(self) -> None:
        """Forgets every record."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            for table in ("resources", "effects", "answers"):
                self._conn.execute(f"DELETE FROM {table}")  # fixed names, not input
            self._conn.execute("COMMIT")

    def close(self) -> None:
        """Closes the SQLite connection."""
        with self._lock:
            self._conn.close()

    def _resource(self, route: Route, ref: str | None,
                  business_key: str | None) -> tuple[str, str]:
        """(resource, business key) of the call: a new resource for a forward call, the
        undone one for an undo. Runs inside apply's transaction."""
        if route.forward:
            if not business_key:
                raise ValueError(f"{route.action}: {route.key_field} is required")
            created = f"{route.id_prefix}_{uuid.uuid4().hex}"
            self._conn.execute("INSERT INTO resources VALUES (?, ?, ?)",
                               (created, route.action, business_key))
            return created, business_key
        row = self._conn.execute("SELECT order_id FROM resources WHERE ref = ? AND kind = ?",
                                 (ref, route.undoes)).fetchone()
        if row is None:
            raise UnknownReference(route.action, route.id_field, str(ref))
        return str(ref), row[0]

    def _stored_answer(self, action: str, key: str) -> Answer | None:
        row = self._conn.execute(
            "SELECT status, body FROM answers WHERE action = ? AND idempotency_key = ?",
            (action, key)).fetchone()
        return None if row is None else Answer(row[0], json.loads(row[1]), replayed=True)
