"""The composition root: builds the applications, stores, participants and readers from the
settings. Tests swap a part in here (a fake participant, say) instead of patching modules."""
from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from eventsourcing.persistence import PersistenceError

import definitions as definitions_package
from application.definitions import Definitions, Registration
from application.definitions_files import load_definition_text
from application.orchestrator import Metrics, RetryPolicy
from application.ports import Participants
from application.workflows import Workflows
from domain.definitions import DefinitionInvalid
from infrastructure.settings import Settings, SettingsError
from infrastructure.system import System, shard_name
from infrastructure.views_sql import SqliteViews, SqlViews

__all__ = ["System", "apply_definitions", "bootstrap", "build_views", "shard_name"]
BUNDLED = Path(definitions_package.__file__).parent


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


def build_participants(system: System) -> Participants:
    """The HTTP participants, one breaker, bulkhead and optional rate limit each."""
    from infrastructure.metrics import participant_unconfigured
    from infrastructure.participants_http import HttpParticipants

    settings = system.settings
    return HttpParticipants(
        url_of=settings.participant_url, timeout_s=settings.step_timeout_s,
        breaker_fail_max=settings.breaker_fail_max, breaker_reset_s=settings.breaker_reset_s,
        bulkhead=system.bulkhead, rate_limit=system.rate_limit,
        unconfigured=participant_unconfigured,
    )


def retry_policy(settings: Settings) -> RetryPolicy:
    """The deployment's attempts and backoff, for steps whose definition does not say."""
    from infrastructure.resilience import backoff_delay

    def backoff(attempt: int, retry_after: float | None, base_s: float | None,
                cap_s: float | None) -> float:
        return backoff_delay(
            attempt, settings.backoff_base_s if base_s is None else base_s,
            settings.backoff_cap_s if cap_s is None else cap_s, retry_after=retry_after)

    return RetryPolicy(
        step_max_attempts=settings.step_max_attempts,
        compensation_max_attempts=settings.compensation_max_attempts,
        backoff=backoff,
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
        definitions = Definitions(env=definitions_env(settings, env))
        apply_definitions(definitions, settings.definitions_dir or BUNDLED)
        workflows = Workflows(env=env, definitions=definitions)
        views = overrides.get("views") or build_views(settings, check=serves_requests)
    return System(settings, workflows, definitions, views, retry_policy(settings),
                  build_participants, participants=participants,
                  metrics=metrics)


def definitions_env(settings: Settings, env: dict[str, str]) -> dict[str, str]:
    """The definitions' store: beside the workflows', in a SQLite file of its own (two
    applications in one file would share one table) or its own PostgreSQL tables, with a
    small pool (it is read once per start and per version)."""
    if settings.is_postgres:
        return {**env, "POSTGRES_POOL_SIZE": "2", "POSTGRES_MAX_OVERFLOW": "4"}
    path = settings.sqlite_path
    name = path.with_name(path.stem + ".definitions" + (path.suffix or ".sqlite3"))
    return {**env, "SQLITE_DBNAME": str(name)}


def apply_definitions(definitions: Definitions, folder: Path) -> list[Registration]:
    """Registers every `*.yaml` of the folder whose content is no version yet (so a version
    registered since, by PUT or `definitions apply`, stays the latest when a process starts);
    one that does not validate stops the process, naming the file and each error."""
    done = []
    for path in sorted(folder.glob("*.yaml")):
        try:
            document = load_definition_text(path.read_text("utf-8"))
            done.append(definitions.register(document, known=True))
        except DefinitionInvalid as e:
            raise SettingsError(f"DEFINITIONS_DIR: {path} is not a valid definition: "
                                + "; ".join(f"{x.path}: {x.message}" for x in e.errors)) from None
    return done
