"""The composition root: builds the applications, stores, participants and readers from the
settings. Tests swap a part in here (a fake participant, say) instead of patching modules."""
from __future__ import annotations

import contextlib
import functools
import sqlite3
from collections.abc import Iterator
from typing import Any
from urllib.parse import unquote, urlsplit

from eventsourcing.persistence import PersistenceError

from application.orchestrator import Metrics, RetryPolicy
from application.ports import Participants
from application.workflows import Workflows
from infrastructure.settings import Settings, SettingsError
from infrastructure.system import System, shard_name
from infrastructure.views_sql import SqliteViews, SqlViews

__all__ = ["System", "bootstrap", "build_views", "shard_name"]


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


@contextlib.contextmanager
def _store_opening(settings: Settings) -> Iterator[None]:
    """A SQLite store that cannot be created or opened where DATABASE_URL points (a read-only
    folder, a file in the way) stops the process with a message naming the variable."""
    if settings.is_postgres:
        yield
        return
    try:
        yield
    except (OSError, sqlite3.Error, PersistenceError) as e:
        raise SettingsError(
            f"DATABASE_URL: cannot create or open the SQLite store at {settings.sqlite_path} "
            f"({getattr(e, 'strerror', None) or e})") from None


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


def bootstrap(settings: Settings, participants: Participants | None = None,
              metrics: Metrics | None = None, serves_requests: bool = False,
              **overrides: Any) -> System:
    """Builds the system for these settings; `participants` replaces the HTTP ones. Creates
    the tables that are missing, one process at a time.

    A process that `serves_requests` checks each pooled PostgreSQL connection before use, so
    that the first request after a database restart succeeds instead of meeting a dead
    connection; a worker skips that round trip (it retries a failed step by itself)."""
    with schema_lock(settings), _store_opening(settings):
        env = store_env(settings)
        if serves_requests and settings.is_postgres:
            env["POSTGRES_PRE_PING"] = "y"
        workflows = Workflows(env=env)
        views = overrides.get("views") or build_views(settings, check=serves_requests)
    return System(settings, workflows, views, retry_policy(settings),
                  functools.partial(build_participants, settings), participants=participants,
                  metrics=metrics)
