"""Who drives what: several workers share one database without two of them driving one
workflow, and a dead worker's share is taken over without an operator.

PostgreSQL: each worker beats a heartbeat row; rendezvous hashing over the live workers says
which shards each should hold; a session advisory lock per shard makes sure only one does
(a dead worker's connection, and so its locks, go with it). The projection has a lock of its
own: one writer, the others hot standbys. SQLite (one machine): a file lock makes one worker
the leader of everything; another waits as a standby.
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import socket
import threading
import uuid
from typing import IO, TYPE_CHECKING, Any

import psycopg

if TYPE_CHECKING:  # the system builds its coordinator: no import at run time
    from infrastructure.system import System

log = logging.getLogger("orchestrator.cluster")

LOCK_SPACE = 0x4F524348  # "ORCH": the advisory-lock class of our keys
PROJECTION_KEY = 1_000_000
HEARTBEAT_S = 1.0
DEAD_AFTER_S = 5.0


def _score(worker: str, shard: int) -> int:
    return int.from_bytes(hashlib.blake2b(f"{worker}/{shard}".encode(), digest_size=8).digest())


def assign(shards: int, workers: list[str]) -> dict[int, str]:
    """Rendezvous hashing: each shard goes to the worker with the highest score for it, so a
    worker joining or leaving moves only its own share."""
    return {k: max(workers, key=lambda w: _score(w, k)) for k in range(shards)}


class LocalCoordinator:
    """One machine: the worker holding the file lock drives every shard and the projection."""

    def __init__(self, system: System, lock_path: str):
        self.system, self.lock_path = system, lock_path
        self._file: IO[bytes] | None = None
        self._stop = threading.Event()
        self.leading = threading.Event()

    def start(self) -> None:
        if not self._try_lead():
            log.info("another worker leads (%s); waiting as a standby", self.lock_path)
            threading.Thread(target=self._wait, name="standby", daemon=True).start()

    def _try_lead(self) -> bool:
        handle = open(self.lock_path, "ab")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            return False
        self._file = handle
        for shard in range(self.system.settings.shards):
            self.system.take_shard(shard)
        self.system.start_projection()
        self.leading.set()
        return True

    def _wait(self) -> None:
        while not self._stop.wait(0.5):
            if self._try_lead():
                log.info("took the lead")
                return

    def stop(self) -> None:
        self._stop.set()
        if self._file is not None:
            self._file.close()  # closing releases the lock


class PgCoordinator:
    """Shards and the projection shared among workers through PostgreSQL (see module doc)."""

    def __init__(self, system: System, url: str):
        self.system, self.url = system, url
        self.me = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.held: set[int] = set()
        self.projecting = False
        self.leading = threading.Event()
        self._conn: psycopg.Connection[Any] | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="coordinator", daemon=True)

    def start(self) -> None:
        self._beat()
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(HEARTBEAT_S):
            self._beat()

    def _beat(self) -> None:
        try:
            conn = self._connection()
            holding = (frozenset(self.held), self.projecting)
            conn.execute(
                "INSERT INTO orchestrator_workers (worker_id, last_seen, stats) "
                "VALUES (%s, now(), %s) ON CONFLICT (worker_id) "
                "DO UPDATE SET last_seen = now(), stats = EXCLUDED.stats",
                (self.me, published(self.system, sorted(self.held), self.projecting)))
            live = [r[0] for r in conn.execute(
                "SELECT worker_id FROM orchestrator_workers "
                "WHERE last_seen > now() - make_interval(secs => %s)", (DEAD_AFTER_S,))]
            mine = {k for k, w in assign(self.system.settings.shards, live).items()
                    if w == self.me}
            for shard in sorted(self.held - mine):
                self.system.give_up_shard(shard)
                self._unlock(shard)
                self.held.discard(shard)
            for shard in sorted(mine - self.held):
                if self._try_lock(shard):
                    self.system.take_shard(shard)
                    self.held.add(shard)
            if not self.projecting and self._try_lock(PROJECTION_KEY):
                self.system.start_projection()
                self.projecting = True
            if self.held or self.projecting:
                self.leading.set()
            if (frozenset(self.held), self.projecting) != holding:  # rare: workers came or went
                conn.execute(  # the health page shows what is held now, not a beat ago
                    "UPDATE orchestrator_workers SET stats = %s WHERE worker_id = %s",
                    (published(self.system, sorted(self.held), self.projecting), self.me))
        except Exception as e:  # noqa: BLE001 - whatever failed, our locks are in doubt
            log.warning("lost the coordination connection (%s): letting go of everything",
                        type(e).__name__)
            self._let_go()

    def _connection(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(self.url, autocommit=True, connect_timeout=5)
        return self._conn

    def _try_lock(self, key: int) -> bool:
        row = self._connection().execute(
            "SELECT pg_try_advisory_lock(%s, %s)", (LOCK_SPACE, key)).fetchone()
        return bool(row and row[0])

    def _unlock(self, key: int) -> None:
        self._connection().execute("SELECT pg_advisory_unlock(%s, %s)", (LOCK_SPACE, key))

    def _let_go(self) -> None:
        """Our locks died with the connection: another worker may hold them now."""
        orchestrator = self.system.orchestrator
        for shard in list(self.held):
            if orchestrator is not None:
                orchestrator.release(shard)
        self.held.clear()
        if self.projecting:
            self.system.stop_projection()
            self.projecting = False
        if self._conn is not None:
            with contextlib.suppress(psycopg.Error):
                self._conn.close()
            self._conn = None

    def stop(self) -> None:
        """Leaves the cluster: the others take over our shards at their next beat."""
        self._stop.set()
        self._thread.join(timeout=5)
        try:
            conn = self._connection()
            conn.execute("DELETE FROM orchestrator_workers WHERE worker_id = %s", (self.me,))
            conn.close()
        except psycopg.Error:
            pass


def published(system: System, shards: list[int], projection: bool) -> str | None:
    """What a worker publishes with its heartbeat: its shards, whether it writes the views,
    its breakers and its recent calls, as compact JSON. None when it cannot say (logged):
    the heartbeat must go on whatever happens here, or the worker would lose its shards."""
    try:
        return json.dumps({"shards": shards, "projection": projection, **local_figures(system)},
                          separators=(",", ":"))
    except Exception as e:  # noqa: BLE001 - the figures are a nicety, the beat is not
        log.warning("cannot publish this worker's health figures (%s: %s)", type(e).__name__, e)
        return None


def local_figures(system: System) -> dict[str, Any]:
    """This process's breakers and recent calls (none in a process that makes no calls)."""
    participants = system.participants
    breakers = (participants.breaker_states()
                if participants is not None and hasattr(participants, "breaker_states") else {})
    calls = system.recent.snapshot() if system.recent is not None else {}
    return {"breakers": breakers, "calls": {name: c.as_json() for name, c in calls.items()}}


def build_coordinator(system: System) -> LocalCoordinator | PgCoordinator:
    """The coordinator for the system's database."""
    settings = system.settings
    if settings.is_postgres:
        return PgCoordinator(system, settings.database_url)
    path = settings.sqlite_path
    return LocalCoordinator(system, str(path.with_name(path.name + ".worker-lock")))
