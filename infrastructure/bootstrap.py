"""The composition root: builds the applications, stores, participants and readers from the
settings. Tests swap a part in here (a fake participant, say) instead of patching modules."""
from __future__ import annotations

import contextlib
import functools
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

from application.follower import Follower
from application.orchestrator import Metrics, Orchestrator, RetryPolicy
from application.ports import Participants
from application.projection import WorkflowProjection
from application.workflows import Workflows
from infrastructure.settings import Settings
from infrastructure.views_sql import SqliteViews, SqlViews

log = logging.getLogger("orchestrator.bootstrap")


@contextlib.contextmanager
def schema_lock(settings: Settings) -> Iterator[None]:
    """Serializes table creation among processes starting at once: CREATE TABLE IF NOT
    EXISTS is not safe against a concurrent twin in PostgreSQL."""
    if not settings.is_postgres:
        yield
        return
    import psycopg

    key = 0x6F72636873746172  # not the views' own DDL lock, which is taken inside this one
    with psycopg.connect(settings.database_url, autocommit=True, connect_timeout=10) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (key,))
        try:
            yield
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (key,))


def store_env(settings: Settings) -> dict[str, str]:
    """The eventsourcing library's persistence settings for our DATABASE_URL."""
    if settings.is_postgres:
        parts = urlsplit(settings.database_url)
        return {
            "PERSISTENCE_MODULE": "eventsourcing.postgres",
            "POSTGRES_DBNAME": parts.path.lstrip("/") or "postgres",
            "POSTGRES_HOST": parts.hostname or "127.0.0.1",
            "POSTGRES_PORT": str(parts.port or 5432),
            "POSTGRES_USER": unquote(parts.username or "postgres"),
            "POSTGRES_PASSWORD": unquote(parts.password or ""),
            # Also the wait for a pooled connection, which the library tries ten times: an
            # outage must turn into a 503 in seconds, not minutes.
            "POSTGRES_CONNECT_TIMEOUT": "2",
            "POSTGRES_POOL_SIZE": "5",
            "POSTGRES_MAX_OVERFLOW": "10",
        }
    path = settings.sqlite_path
    path.parent.mkdir(parents=True, exist_ok=True)
    return {"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": str(path),
            "SQLITE_LOCK_TIMEOUT": "30"}


def build_views(settings: Settings, check: bool = False) -> SqlViews:
    """The read-side store: beside the event store, in its own file or tables. With `check`,
    pooled connections are checked before use."""
    if settings.is_postgres:
        from infrastructure.views_postgres import PostgresViews

        return PostgresViews(settings.database_url, check=check)
    path = settings.sqlite_path
    path.parent.mkdir(parents=True, exist_ok=True)
    return SqliteViews(str(path.with_name(path.stem + ".views" + (path.suffix or ".sqlite3"))))


def build_participants(settings: Settings) -> Participants:
    """The HTTP participants, one breaker, pool and optional rate limit each."""
    from infrastructure.participants_http import HttpParticipants

    return HttpParticipants(
        urls=settings.participant_urls, timeout_s=settings.step_timeout_s,
        breaker_fail_max=settings.breaker_fail_max, breaker_reset_s=settings.breaker_reset_s,
        pool_size=settings.bulkheads, rate_limit=settings.rate_limits,
    )


def retry_policy(settings: Settings) -> RetryPolicy:
    from infrastructure.resilience import backoff_delay

    backoff = functools.partial(
        backoff_delay, base_s=settings.backoff_base_s, cap_s=settings.backoff_cap_s)
    return RetryPolicy(
        step_max_attempts=settings.step_max_attempts,
        compensation_max_attempts=settings.compensation_max_attempts,
        backoff=lambda attempt, retry_after: backoff(attempt, retry_after=retry_after),
    )


@dataclass
class System:
    """What a process runs: the application, the views and, in a worker, the readers.

    A worker drives only the shards it holds and runs the projection only while it holds
    that too; a coordinator (infrastructure/cluster.py) decides, so that several workers can
    share one database without two of them driving one workflow."""

    settings: Settings
    workflows: Workflows
    views: SqlViews
    participants: Participants | None = None
    metrics: Metrics | None = None
    orchestrator: Orchestrator | None = None
    projection: WorkflowProjection | None = None
    followers: dict[str, Follower] = field(default_factory=dict)
    coordinator: Any = None
    _stop: threading.Event = field(default_factory=threading.Event)
    _checkpointer: threading.Thread | None = None

    def start_worker(self) -> System:
        """Starts the orchestrator and the projection for whatever this worker comes to hold
        (a standby holds nothing until another worker goes away)."""
        from infrastructure.cluster import build_coordinator

        participants = self.participants = self.participants or build_participants(self.settings)
        self.orchestrator = Orchestrator(
            self.workflows, participants, retry_policy(self.settings),
            bulkheads=self.settings.bulkheads, metrics=self.metrics,
            shards=self.settings.shards)
        self.projection = WorkflowProjection(self.views, self.workflows.mapper)
        self.followers["orchestrator"] = Follower(
            "orchestrator", self.workflows.recorder, self.orchestrator.handle,
            self._orchestrator_start, self._wakeup()).start()
        self._checkpointer = threading.Thread(
            target=self._checkpoint, name="checkpoint", daemon=True)
        self._checkpointer.start()
        self.coordinator = build_coordinator(self)
        self.coordinator.start()
        return self

    # --- what the coordinator calls -----------------------------------------------------------

    def take_shard(self, shard: int) -> None:
        """Starts driving a shard from where its last holder recorded it was."""
        assert self.orchestrator is not None
        resume = self.views.position(shard_name(shard))
        head = self.workflows.recorder.max_notification_id() or 0
        self.orchestrator.acquire(shard, resume, head)
        self.followers["orchestrator"].rewind(resume)

    def give_up_shard(self, shard: int, grace_s: float = 5.0) -> None:
        """Records the shard's position, stops driving it and lets its drives finish."""
        assert self.orchestrator is not None
        position = self.orchestrator.positions().get(shard)
        if position is not None:
            self.views.set_position(shard_name(shard), position)
        self.orchestrator.release(shard)
        deadline = time.monotonic() + grace_s
        while self.orchestrator.busy_in(shard) and time.monotonic() < deadline:
            time.sleep(0.02)

    def start_projection(self) -> None:
        assert self.projection is not None
        if "projection" not in self.followers:
            self.followers["projection"] = Follower(
                "projection", self.workflows.recorder, self.projection.process,
                self.projection.position, self._wakeup()).start()

    def stop_projection(self) -> None:
        follower = self.followers.pop("projection", None)
        if follower is not None:
            follower.stop()

    def reachable(self) -> bool:
        """Whether the event store and the views answer now (quickly: for /ready)."""
        try:
            if self.settings.is_postgres:
                import psycopg

                with psycopg.connect(self.settings.database_url, connect_timeout=2) as conn:
                    conn.execute("SELECT 1")
            else:
                self.workflows.recorder.max_notification_id()
                self.views.ping()
        except Exception:  # noqa: BLE001 - whatever the driver raises, the answer is "no"
            return False
        return True

    def watch_views(self, callback: Callable[[int | None, list[dict[str, Any]] | None], None],
                    ) -> str:
        """Calls `callback(position, states)` after each write to the views, whichever process
        makes it: with what was written when this process wrote it ("here"), with None, None
        when told by PostgreSQL ("notified"); "unknown" where neither can be (poll)."""
        if self.projection is not None:  # the projection runs in this process
            self.projection.listeners.append(callback)
            return "here"
        if self.settings.is_postgres:
            from infrastructure.pg_listen import Listener
            from infrastructure.views_postgres import CHANNEL

            Listener(self.settings.database_url, CHANNEL, lambda: callback(None, None)).start()
            return "notified"
        return "unknown"

    # --- inside -------------------------------------------------------------------------------

    def _orchestrator_start(self) -> int:
        assert self.orchestrator is not None
        owned = self.orchestrator.owned()
        if not owned:  # a standby reads from the head; taking a shard rewinds it
            return self.workflows.recorder.max_notification_id() or 0
        return min(self.views.position(shard_name(k)) for k in owned)

    def _wakeup(self) -> threading.Event:
        event = threading.Event()
        self.workflows.add_listener(event)
        self._listen_for_saves(event)
        return event

    def _listen_for_saves(self, event: threading.Event) -> None:
        """Saves made by other processes wake this process's readers through PostgreSQL."""
        if not self.settings.is_postgres:
            return
        from infrastructure.pg_listen import Listener

        channel = self.workflows.recorder.channel_name  # type: ignore[attr-defined]
        Listener(self.settings.database_url, channel, event.set).start()

    def _checkpoint(self) -> None:
        """Writes where each held shard may resume, twice a second while it moves."""
        last: dict[int, int] = {}
        while not self._stop.wait(0.5):
            self._save_positions(last)

    def _save_positions(self, last: dict[int, int]) -> None:
        assert self.orchestrator is not None
        moved = {shard: position for shard, position in self.orchestrator.positions().items()
                 if last.get(shard) != position}
        if not moved:
            return
        try:  # one transaction for all the shards that moved
            self.views.set_positions({shard_name(k): p for k, p in moved.items()})
            last.update(moved)
        except Exception:
            log.exception("could not record the shards' positions")

    def stop(self, grace_s: float = 10.0) -> bool:
        """Stops taking calls, lets those in flight finish (up to `grace_s`), records the
        positions, and closes the stores. Returns whether everything in flight finished."""
        finished = True
        if self.orchestrator is not None:
            finished = self.orchestrator.stop(grace_s)
        for follower in self.followers.values():
            follower.stop()
        self._stop.set()
        if self._checkpointer is not None:
            self._checkpointer.join(timeout=2)
        if self.orchestrator is not None:
            try:
                self._save_positions({})
            except Exception:
                log.exception("could not record the final positions")
        if self.coordinator is not None:
            self.coordinator.stop()
        self.views.close()
        self.workflows.close()
        return finished


def shard_name(shard: int) -> str:
    """The orchestrator's position for one shard, among the views' positions."""
    return f"orchestrator:{shard}"


def bootstrap(settings: Settings, participants: Participants | None = None,
              metrics: Metrics | None = None, serves_requests: bool = False,
              **overrides: Any) -> System:
    """Builds the system for these settings; `participants` replaces the HTTP ones. Creates
    the tables that are missing, one process at a time.

    A process that `serves_requests` checks each pooled PostgreSQL connection before use, so
    that the first request after a database restart succeeds instead of meeting a dead
    connection; a worker skips that round trip (it retries a failed step by itself)."""
    env = store_env(settings)
    if serves_requests and settings.is_postgres:
        env["POSTGRES_PRE_PING"] = "y"
    with schema_lock(settings):
        workflows = Workflows(env=env)
        views = overrides.get("views") or build_views(settings, check=serves_requests)
    return System(settings, workflows, views, participants=participants, metrics=metrics)
