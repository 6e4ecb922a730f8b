"""The records of the demo Payment, Inventory and Shipping services, in one SQLite file.

Three tables: `resources` (each payment, reservation and shipment and its order), `effects`
(every applied action, in order) and `answers` (the stored answer per action and
Idempotency-Key). Applying an action and storing its answer happen in one `BEGIN IMMEDIATE`
transaction, so two concurrent calls with one key apply once, and a restart loses nothing.
"""
from __future__ import annotations

import json
import os
import sqlite3
import threading
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ActionSpec:
    """What one participant action creates or undoes, and how its success answer looks."""

    id_field: str  # paymentId, reservationId or shipmentId
    done_status: str  # the "status" of the success answer
    http_status: int
    id_prefix: str | None = None  # set for forward actions, which create a resource
    undoes: str | None = None  # set for compensations: the forward action they undo


ACTIONS: dict[str, ActionSpec] = {
    "charge": ActionSpec("paymentId", "charged", 201, id_prefix="pay"),
    "refund": ActionSpec("paymentId", "refunded", 200, undoes="charge"),
    "reserve": ActionSpec("reservationId", "reserved", 201, id_prefix="res"),
    "release": ActionSpec("reservationId", "released", 200, undoes="reserve"),
    "ship": ActionSpec("shipmentId", "shipped", 201, id_prefix="shp"),
    "cancel": ActionSpec("shipmentId", "cancelled", 200, undoes="ship"),
}
FORWARD_ACTIONS = [name for name, spec in ACTIONS.items() if spec.undoes is None]

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
    """A compensation named a payment, reservation or shipment that does not exist."""

    def __init__(self, action: str, ref: str) -> None:
        super().__init__(f"{action}: no {ACTIONS[action].id_field} {ref!r}")
        self.action = action
        self.ref = ref


@dataclass(frozen=True)
class Answer:
    """The answer to one call: the original one when `replayed`."""

    status: int
    body: dict[str, Any]
    replayed: bool = False


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

    def apply(self, action: str, key: str | None, order_id: str | None = None,
              ref: str | None = None, detail: str | None = None) -> Answer:
        """Applies `action` once per `key` and returns its answer (the stored one on a replay).

        Forward actions need `order_id` and create a resource; compensations need the `ref`
        they undo and raise UnknownReference when there is none. Without a key nothing
        protects against a repeat, which is the caller's bug to see in the stats."""
        spec = ACTIONS[action]
        with self._lock:
            # BEGIN IMMEDIATE takes the write lock before the check, so a second process on
            # the same file cannot slip in between the check and the insert either.
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                stored = self._stored_answer(action, key) if key else None
                if stored is not None:
                    self._conn.execute("COMMIT")
                    return stored
                if spec.undoes is None:
                    if not order_id:
                        raise ValueError(f"{action}: orderId is required")
                    created = f"{spec.id_prefix}_{uuid.uuid4().hex}"
                    self._conn.execute("INSERT INTO resources VALUES (?, ?, ?)",
                                       (created, action, order_id))
                    ref = created
                    body: dict[str, Any] = {spec.id_field: created, "status": spec.done_status}
                    if action == "charge":  # only the charge answer names the order (§1)
                        body = {"orderId": order_id, **body}
                else:
                    row = self._conn.execute(
                        "SELECT order_id FROM resources WHERE ref = ? AND kind = ?",
                        (ref, spec.undoes)).fetchone()
                    if row is None:
                        raise UnknownReference(action, str(ref))
                    order_id = row[0]
                    body = {spec.id_field: ref, "status": spec.done_status}
                self._conn.execute(
                    "INSERT INTO effects (action, order_id, ref, idempotency_key, detail)"
                    " VALUES (?, ?, ?, ?, ?)", (action, order_id, ref, key, detail))
                if key:
                    self._conn.execute("INSERT INTO answers VALUES (?, ?, ?, ?)",
                                       (action, key, spec.http_status, json.dumps(body)))
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
        return Answer(spec.http_status, body)

    def effect_stats(self, order_id: str | None = None) -> dict[str, Any]:
        """Applied effects per action, duplicate effects, orders by outcome and, for
        `order_id`, that order's effects per action; all read from the file."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT action, order_id, ref FROM effects ORDER BY seq").fetchall()
        effects = Counter({action: 0 for action in ACTIONS})
        history: dict[str, list[tuple[str, str]]] = defaultdict(list)
        for action, order, ref in rows:
            effects[action] += 1
            history[order].append((action, ref))
        duplicates = 0
        outcomes = Counter({"completed": 0, "compensated": 0, "partial": 0})
        for events in history.values():
            order_duplicates, net = _replay_order(events)
            duplicates += order_duplicates
            if all(n == 1 for n in net.values()):
                outcomes["completed"] += 1
            elif all(n == 0 for n in net.values()):
                outcomes["compensated"] += 1
            else:
                outcomes["partial"] += 1  # still in flight, or left half done
        stats: dict[str, Any] = {"effects": dict(effects), "duplicate_effects": duplicates,
                                 "orders": dict(outcomes)}
        if order_id is not None:
            per_action = Counter({action: 0 for action in ACTIONS})
            per_action.update(action for action, _ in history.get(order_id, []))
            stats["by_order"] = dict(per_action)
        return stats

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

    def _stored_answer(self, action: str, key: str) -> Answer | None:
        row = self._conn.execute(
            "SELECT status, body FROM answers WHERE action = ? AND idempotency_key = ?",
            (action, key)).fetchone()
        return None if row is None else Answer(row[0], json.loads(row[1]), replayed=True)


def _replay_order(events: list[tuple[str, str]]) -> tuple[int, dict[str, int]]:
    """Walks one order's effects in order: counts duplicates (a forward action applied while
    an earlier one is still outstanding, or a resource undone twice) and returns the net
    number of outstanding forward effects per forward action."""
    outstanding = Counter({action: 0 for action in FORWARD_ACTIONS})
    undone: set[str] = set()
    duplicates = 0
    for action, ref in events:
        forward = ACTIONS[action].undoes
        if forward is None:
            duplicates += outstanding[action] > 0
            outstanding[action] += 1
        elif ref in undone or outstanding[forward] == 0:
            duplicates += 1
        else:
            undone.add(ref)
            outstanding[forward] -= 1
    return duplicates, dict(outstanding)
