"""The composition root: builds the applications, stores, participants and readers from the
settings. Tests swap a part in here (a fake participant, say) instead of patching modules."""
from __future__ import annotations

import functools
import logging
import threading
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
            "POSTGRES_CONNECT_TIMEOUT": "5",
            "POSTGRES_PRE_PING": "y",
            "POSTGRES_POOL_SIZE": "10",
            "POSTGRES_MAX_OVERFLOW": "20",
        }
    path = settings.sqlite_path
    path.parent.mkdir(parents=True, exist_ok=True)
    return {"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": str(path),
            "SQLITE_LOCK_TIMEOUT": "30"}


def build_views(settings: Settings) -> SqlViews:
    """The read-side store: beside the event store, in its own file or tables."""
    if settings.is_postgres:
        from infrastructure.views_postgres import PostgresViews

        return PostgresViews(settings.database_url)
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
    """What a process runs: the application, the views and, in a worker, the readers."""

    settings: Settings
    workflows: Workflows
    views: SqlViews
    participants: Participants | None = None
    metrics: Metrics | None = None
    orchestrator: Orchestrator | None = None
    projection: WorkflowProjection | None = None
    followers: list[Follower] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _checkpointer: threading.Thread | None = None

    def start_worker(self) -> System:
        """Starts the orchestrator and the projection, each following the store."""
        participants = self.participants = self.participants or build_participants(self.settings)
        self.orchestrator = Orchestrator(
            self.workflows, participants, retry_policy(self.settings),
            bulkheads=self.settings.bulkheads, metrics=self.metrics)
        self.projection = WorkflowProjection(self.views, self.workflows.mapper)
        orchestrator, views = self.orchestrator, self.views
        self.followers = [
            Follower("projection", self.workflows.recorder, self.projection.process,
                     self.projection.position, self._wakeup()).start(),
            Follower("orchestrator", self.workflows.recorder, orchestrator.handle,
                     lambda: views.position(orchestrator.name), self._wakeup()).start(),
        ]
        self._checkpointer = threading.Thread(
            target=self._checkpoint, name="checkpoint", daemon=True)
        self._checkpointer.start()
        return self

    def _wakeup(self) -> threading.Event:
        event = threading.Event()
        self.workflows.add_listener(event)
        return event

    def _checkpoint(self) -> None:
        """Writes where the orchestrator may resume, twice a second while it moves."""
        assert self.orchestrator is not None
        last = -1
        while not self._stop.wait(0.5):
            position = self.orchestrator.position(default=0)
            if position != last and position > 0:
                try:
                    self.views.set_position(self.orchestrator.name, position)
                    last = position
                except Exception:
                    log.exception("could not record the orchestrator's position")

    def stop(self, grace_s: float = 10.0) -> bool:
        """Stops taking calls, lets those in flight finish (up to `grace_s`), records the
        position, and closes the stores. Returns whether everything in flight finished."""
        finished = True
        if self.orchestrator is not None:
            finished = self.orchestrator.stop(grace_s)
        for follower in self.followers:
            follower.stop()
        self._stop.set()
        if self._checkpointer is not None:
            self._checkpointer.join(timeout=2)
        if self.orchestrator is not None:
            position = self.orchestrator.position(default=0)
            if position > 0:
                self.views.set_position(self.orchestrator.name, position)
        self.views.close()
        self.workflows.close()
        return finished


def bootstrap(settings: Settings, participants: Participants | None = None,
              metrics: Metrics | None = None, **overrides: Any) -> System:
    """Builds the system for these settings; `participants` replaces the HTTP ones."""
    workflows = Workflows(env=store_env(settings))
    views = overrides.get("views") or build_views(settings)
    return System(settings, workflows, views, participants=participants, metrics=metrics)
