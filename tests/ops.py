"""Helpers of the operations tests: settings, the CLI in process, and reading every row back.

The database is real (a SQLite file, or a fresh PostgreSQL database from `pg_url`); only the
participants are fakes.
"""
from __future__ import annotations

from typing import Any

from click.testing import CliRunner, Result

from api.cli import main
from application.projection import NAME
from application.views import AuditEntry, Search
from infrastructure.bootstrap import System
from infrastructure.settings import Settings, load
from tests.fakes import wait_until


def settings_for(url: str) -> Settings:
    return load({
        "DATABASE_URL": url, "STEP_MAX_ATTEMPTS": "3", "COMPENSATION_MAX_ATTEMPTS": "3",
        "RETRY_BACKOFF_BASE_S": "0.005", "RETRY_BACKOFF_CAP_S": "0.02",
    })


def cli(url: str, *args: str) -> Result:
    """Runs `orchestrator <args>` in this process against the database at `url`."""
    env = {"DATABASE_URL": url, "LOG_FORMAT": "text", "STEP_MAX_ATTEMPTS": "3",
           "COMPENSATION_MAX_ATTEMPTS": "3"}
    return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)


def projected(system: System, timeout: float = 20.0) -> int:
    """Waits until the projection has reached the store's head; returns it."""
    head = system.workflows.recorder.max_notification_id() or 0
    wait_until(lambda: system.views.position(NAME) >= head, timeout,
               what=f"the projection to reach position {head}")
    return head


def all_states(system: System) -> dict[str, dict[str, Any]]:
    """Every served state view, by workflow id."""
    found: dict[str, dict[str, Any]] = {}
    cursor = None
    while True:
        page = system.views.search(Search(limit=500, after=cursor))
        found.update((s["workflowId"], s) for s in page.items)
        if page.next is None:
            return found
        cursor = page.next


def all_audit(system: System, workflow_ids: list[str]) -> dict[str, list[AuditEntry]]:
    """Every served audit trail of these workflows."""
    return {wid: system.views.audit(wid) for wid in workflow_ids}


def execute(system: System, statement: str, *params: Any) -> list[tuple[Any, ...]]:
    """Runs one statement on the views database, in a transaction of its own."""
    views = system.views
    with views.writing() as cur:
        cur.execute(statement if views.mark == "?" else statement.replace("?", views.mark),
                    params)
        return list(cur.fetchall()) if cur.description else []


def table_names(system: System) -> set[str]:
    if system.views.dialect == "postgres":
        rows = execute(system, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    else:
        rows = execute(system, "SELECT name FROM sqlite_master WHERE type = 'table'")
    return {r[0] for r in rows}


def index_names(system: System) -> set[str]:
    """The indexes of the views' state and audit tables."""
    if system.views.dialect == "postgres":
        rows = execute(system, "SELECT indexname FROM pg_indexes WHERE tablename IN "
                               "('workflow_state', 'workflow_audit')")
    else:
        rows = execute(system, "SELECT name FROM sqlite_master WHERE type = 'index' AND "
                               "tbl_name IN ('workflow_state', 'workflow_audit') "
                               "AND name NOT LIKE 'sqlite_autoindex%'")
    return {r[0] for r in rows}
