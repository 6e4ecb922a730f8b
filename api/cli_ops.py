"""The operators' commands: `audit` (replay, export), `projections` (rebuild, status) and
`workflows` (list, show, retry). Each parses, calls the application layer, and prints; the
formatting lives in api/cli_format.py.

None of them starts the worker: they read the event store and the views, and only
`workflows retry` writes (one RetryRequested event per workflow, as the API's retry does).
"""
from __future__ import annotations

import getpass
import json
import re
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

import click

from api import cli_format as fmt
from application import audit as auditing
from application.feed import events_after
from application.projection import NAME, PROJECTIONS
from application.projection_status import projection_status
from application.rebuild import Rebuild, RebuildBusy
from application.views import Search
from application.workflows import WorkflowNotFound
from domain.definitions.language import STATUS_NAME
from domain.workflow import TERMINAL, InvalidTransition, Workflow
from infrastructure.settings import SettingsError, load

if TYPE_CHECKING:
    from infrastructure.bootstrap import System

FINAL = tuple(s for s in TERMINAL if s != "COMPENSATION_FAILED")  # nothing to retry there


def _status(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """A status as definitions name them (A-Z, 0-9, _)."""
    if value is not None and not re.fullmatch(STATUS_NAME, value):
        raise click.BadParameter("a status is A-Z, 0-9 and _ (COMPLETED, CHARGED, ...)")
    if param.name == "status" and ctx.info_name == "retry" and value in FINAL:
        raise click.BadParameter(f"{value} workflows are finished: nothing to retry")
    return value


@contextmanager
def _system() -> Iterator[System]:
    """The applications and views, without the worker; closed on the way out."""
    from infrastructure.bootstrap import bootstrap  # as api/cli.py: wiring when a command runs

    # No log configuration: these commands talk to a person, and Python's last-resort
    # handler already puts warnings and errors on stderr, as plain text.
    try:
        system = bootstrap(load())
    except SettingsError as e:
        raise click.UsageError(str(e)) from None
    try:
        yield system
    finally:
        system.stop(grace_s=0)


def _workflow_id(text: str, definition: str = "order") -> uuid.UUID:
    """A workflow id, or the id of the definition's workflow for a key (an order id)."""
    try:
        return uuid.UUID(text)
    except ValueError:
        return Workflow.create_id(definition, text)


# --- audit ------------------------------------------------------------------------------------


@click.group()
def audit() -> None:
    """Prove what happened to a workflow from its events, and feed the events on."""


@audit.command("replay")
@click.argument("workflow_id", required=False)
@click.option("--all", "everything", is_flag=True, help="replay every workflow")
@click.option("--verify", is_flag=True, help="compare with the served state view")
@click.option("--json", "as_json", is_flag=True, help="one JSON document instead of text")
@click.option("--definition", default="order", show_default=True,
              help="whose key WORKFLOW_ID is, when it is a key rather than a workflow id")
def replay(workflow_id: str | None, everything: bool, verify: bool, as_json: bool,
           definition: str) -> None:
    """Rebuild WORKFLOW_ID's state (or, given a key, the state of the definition's workflow
    for it: an order id by default) from its events alone and print the timeline. With
    --verify, a field that differs from the served view exits 1."""
    if bool(workflow_id) == everything:
        raise click.UsageError("give either a WORKFLOW_ID or --all")
    with _system() as system:
        if everything:
            ok = _replay_all(system, verify, as_json)
        else:
            ok = _replay_one(system, _workflow_id(workflow_id or "", definition), verify,
                             as_json)
    if not ok:
        raise SystemExit(1)


def _replay_one(system: System, wid: uuid.UUID, verify: bool, as_json: bool) -> bool:
    verdict = None
    if verify:
        result, verdict = auditing.verify(system.workflows, system.views, wid)
    else:
        result = auditing.replay(system.workflows, wid)
    if result.state is None:
        raise click.BadParameter(f"no workflow {wid} in the event store", param_hint="WORKFLOW_ID")
    if as_json:
        click.echo(fmt.replay_json(result, verdict))
    else:
        click.echo(fmt.timeline_text(result))
        if verdict is not None:
            click.echo(fmt.verdict_text(verdict))
    return verdict is None or verdict.ok


def _replay_all(system: System, verify: bool, as_json: bool) -> bool:
    app = system.workflows
    upto = system.views.position(NAME) if verify else app.recorder.max_notification_id() or 0
    with fmt.progress("replaying", upto) as advance:
        summary = auditing.replay_all(
            app, system.views if verify else None,
            progress=lambda reached, total: advance(reached, total, None))
    if as_json:
        click.echo(json.dumps({**asdict(summary), "mismatches": {
            wid: [asdict(d) for d in found] for wid, found in summary.mismatches.items()}},
            indent=2, default=str))
    else:
        for wid, found in summary.mismatches.items():
            click.echo(f"MISMATCH workflow {wid}\n{fmt.differences_text(found)}")
        checked = f", {len(summary.mismatches)} mismatch(es)" if verify else ""
        click.echo(f"replayed {summary.workflows} workflows ({summary.events} events, up to "
                   f"position {summary.position}) in {summary.seconds:.2f} s{checked}")
    return not summary.mismatches


@audit.command("export")
@click.option("--after", type=click.IntRange(min=0), default=0, show_default=True,
              help="the last position already consumed")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="at most N events")
def export(after: int, limit: int | None) -> None:
    """Every event after POSITION as JSON lines on stdout, in store order; resume with
    --after set to the last position you consumed."""
    count, position = 0, after
    with _system() as system:
        while limit is None or count < limit:
            want = 1000 if limit is None else min(1000, limit - count)
            page = events_after(system.workflows, position, want)
            for event in page.events:
                click.echo(json.dumps(event, default=str))
            count, position = count + len(page.events), page.next
            if len(page.events) < want:
                break
    click.echo(f"exported {count} events; resume with --after {position}", err=True)


# --- projections ------------------------------------------------------------------------------


@click.group()
def projections() -> None:
    """Rebuild read models from the event store, and see how far behind they are."""


@projections.command("rebuild")
@click.argument("name", default=NAME)
@click.option("--batch", type=click.IntRange(min=1), default=2000, show_default=True,
              help="events per transaction")
def rebuild(name: str, batch: int) -> None:
    """Rebuild projection NAME from position 0 into fresh tables while the API serves the old
    ones, then switch over atomically."""
    from infrastructure.rebuild_sql import SqlRebuildTarget

    if name not in PROJECTIONS:
        raise click.BadParameter(f"no projection {name!r}; known: {', '.join(PROJECTIONS)}",
                                 param_hint="NAME")
    with _system() as system:
        began = time.monotonic()
        head = system.event_head()
        with fmt.progress(f"rebuilding {name}", head) as advance:

            def shown(position: int, head: int, events: int) -> None:
                rate = events / max(time.monotonic() - began, 1e-9)
                advance(position, head, f"{rate:,.0f} events/s")

            try:
                report = Rebuild(system.workflows, SqlRebuildTarget(system.views), name,
                                 batch=batch, progress=shown).run()
            except RebuildBusy as e:
                raise click.ClickException(str(e)) from None
    click.echo(f"rebuilt {name}: {report.events} events up to position {report.position} in "
               f"{report.seconds:.2f} s ({report.rate:,.0f} events/s); now serving the new "
               "tables")


@projections.command("status")
def status() -> None:
    """Each projection's position, the store's head, and the lag in events and seconds."""
    with _system() as system:
        found = projection_status(system.workflows, system.views)
    click.echo(fmt.table(("NAME", "POSITION", "HEAD", "LAG_EVENTS", "LAG_S"), [
        (s.name, s.position, s.head, s.lag_events, f"{s.lag_s:.1f}") for s in found]))


# --- workflows --------------------------------------------------------------------------------


@click.group()
def workflows() -> None:
    """Find, inspect and unstick workflows from a shell."""


@workflows.command("list")
@click.option("--status", callback=_status, default=None,
              help="COMPLETED, FAILED, ... or a step's status")
@click.option("--definition", default=None, help="only workflows of this definition")
@click.option("--limit", type=click.IntRange(1, 500), default=20, show_default=True)
def list_(status: str | None, definition: str | None, limit: int) -> None:
    """State views, newest first, optionally of one status or definition."""
    with _system() as system:
        page = system.views.search(Search(status=status, definition=definition, limit=limit))
    click.echo(fmt.table(
        ("WORKFLOW", "DEFINITION", "KEY", "STATUS", "CREATED", "UPDATED", "VERSION", "ERROR"),
        [(s["workflowId"], s["definition"], s["key"], s["status"], s["createdAt"],
          s["updatedAt"], s["version"], s["error"]) for s in page.items]))
    if page.next is not None:
        click.echo(f"(more: raise --limit above {limit})", err=True)


@workflows.command("show")
@click.argument("key")
@click.option("--definition", default="order", show_default=True)
def show(key: str, definition: str) -> None:
    """A workflow by its key (an order id, by default): its state view and audit trail."""
    with _system() as system:
        state = system.views.state_by_key(definition, key)
        trail = system.views.audit(state["workflowId"]) if state else []
    if state is None:
        raise click.ClickException(f"no {definition} workflow for {key!r}")
    click.echo(fmt.state_text(state) + "\n")
    click.echo(fmt.table(("VERSION", "TIME", "EVENT", "DATA"),
                         [(e.position, e.timestamp, e.type, e.data) for e in trail]))


@workflows.command("retry")
@click.option("--status", callback=_status, required=True,
              help="COMPENSATION_FAILED, or a running status (stuck)")
@click.option("--reason", required=True, help="why: recorded in each RetryRequested event")
@click.option("--definition", default=None, help="only workflows of this definition")
@click.option("--dry-run", is_flag=True, help="list what would be retried; change nothing")
def retry(status: str, reason: str, definition: str | None, dry_run: bool) -> None:
    """Retry every workflow of a status (COMPENSATION_FAILED, or stuck running), of every
    definition or of one, each recorded as a RetryRequested event by cli:<your user name>."""
    by = f"cli:{getpass.getuser()}"
    with _system() as system:
        found = _all_of(system, status, definition)
        rows = [(s["workflowId"], s["definition"], s["key"], "would retry" if dry_run
                 else _retry_one(system, s["workflowId"], by, reason)) for s in found]
    if rows:
        click.echo(fmt.table(("WORKFLOW", "DEFINITION", "KEY", "RESULT"), rows))
    done = sum(r[3] == "retried" for r in rows)
    if dry_run:
        click.echo(f"dry run: {len(rows)} {status} workflow(s) would be retried by {by}; "
                   "nothing was changed")
        return
    click.echo(f"retried {done} of {len(rows)} {status} workflow(s) as {by}: {reason}")
    if done < len(rows):
        raise SystemExit(1)


def _all_of(system: System, status: str, definition: str | None) -> list[dict[str, Any]]:
    """Every state view of the status (and definition), read before any retry changes them."""
    found: list[dict[str, Any]] = []
    cursor = None
    while True:
        page = system.views.search(Search(status=status, definition=definition, limit=500,
                                          after=cursor))
        found += page.items
        if page.next is None:
            return found
        cursor = page.next


def _retry_one(system: System, workflow_id: str, by: str, reason: str) -> str:
    try:
        system.workflows.retry(uuid.UUID(workflow_id), by=by, reason=reason)
    except InvalidTransition as e:
        return f"skipped: now {e.status}"
    except WorkflowNotFound:
        return "skipped: not in the event store"
    return "retried"
