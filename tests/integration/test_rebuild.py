"""`orchestrator projections rebuild` and `status`: blue/green while the API serves and the
live projection writes, an interrupted rebuild started again, and the lag."""
from __future__ import annotations

import threading
from typing import Any

import pytest

from api.app import create_app
from application.projection import NAME
from application.rebuild import Rebuild
from domain.workflow import Workflow
from infrastructure.bootstrap import System
from infrastructure.rebuild_sql import SqlRebuildTarget
from tests.fakes import wait_until
from tests.histories import build
from tests.ops import (
    all_audit,
    all_states,
    cli,
    execute,
    index_names,
    projected,
    table_names,
)

ORDER = {"cents": 990, "skus": ["sku-9"], "address": "9 Elm St"}
EXTRA_TABLES = {"rebuild_workflow_state", "rebuild_workflow_audit",
                "old_workflow_state", "old_workflow_audit"}


class Reader(threading.Thread):
    """Reads through the API, as clients do, until stopped; remembers every answer."""

    def __init__(self, system: System, workflow_ids: list[str]) -> None:
        super().__init__(daemon=True)
        self.client = create_app(system).test_client()
        self.ids, self.answers = workflow_ids, []  # type: list[tuple[str, int, Any]]
        self.stop, self.reads = threading.Event(), 0

    def run(self) -> None:
        while not self.stop.is_set():
            wid = self.ids[self.reads % len(self.ids)]
            for path in (f"/workflows/{wid}", "/workflows?status=FAILED&limit=5"):
                answer = self.client.get(path)
                self.answers.append((path, answer.status_code, answer.get_json()))
            self.reads += 1


def _snapshot(system: System) -> tuple[dict[str, Any], dict[str, Any]]:
    states = all_states(system)
    return states, all_audit(system, sorted(states))


def test_rebuild_while_the_api_serves_and_new_orders_are_projected(
        database_url: str, ops_system: System) -> None:
    build(ops_system.workflows, 120, prefix="b", per_save=40, interleave=True)
    projected(ops_system)
    before_states, before_audit = _snapshot(ops_system)
    reader = Reader(ops_system, sorted(before_states))
    reader.start()
    wait_until(lambda: reader.reads >= 2, what="the first reads")
    seen: list[int] = []

    def during(position: int, head: int, events: int) -> None:
        # While the fresh tables fill, the API answers from the served ones; orders placed
        # now are projected by the live projection into the served tables.
        if len(seen) < 4:
            reads = reader.reads
            wait_until(lambda: reader.reads > reads, what="a read during the rebuild")
            ops_system.workflows.start("order", f"live-{len(seen)}", ORDER)
        seen.append(position)

    report = Rebuild(ops_system.workflows, SqlRebuildTarget(ops_system.views), batch=50,
                     progress=during).run()
    ops_system.workflows.start("order", "live-4", ORDER)  # after the switch
    for n in range(5):  # the live projection goes on, on the tables switched in
        wid = str(Workflow.create_id("order", f"live-{n}"))
        wait_until(lambda w=wid: (ops_system.views.state(w) or {}).get("status") == "COMPLETED",
                   what=f"live-{n} projected COMPLETED after the switch")
    reader.stop.set()
    reader.join(5)

    assert len(seen) > 10 and report.events >= 120 * 6
    assert all(code == 200 for _, code, _ in reader.answers), "the API failed during the rebuild"
    assert all(body == before_states[path.split("/")[2]]
               for path, _, body in reader.answers if "?" not in path), "a state changed"
    projected(ops_system)
    after_states, after_audit = _snapshot(ops_system)
    live = {str(Workflow.create_id("order", f"live-{n}")) for n in range(5)}
    assert set(after_states) == set(before_states) | live
    assert {w: s for w, s in after_states.items() if w not in live} == before_states
    assert {w: a for w, a in after_audit.items() if w not in live} == before_audit
    assert cli(database_url, "audit", "replay", "--all", "--verify").exit_code == 0
    assert not table_names(ops_system) & EXTRA_TABLES
    assert index_names(ops_system) >= {
        "workflow_state_key", "workflow_state_status_created", "workflow_state_created",
        "workflow_state_definition_created"}
    assert not any(i.startswith(("rebuild_", "old_")) for i in index_names(ops_system))


def test_an_interrupted_rebuild_leaves_the_view_alone_and_starts_again_cleanly(
        database_url: str, ops_system: System) -> None:
    build(ops_system.workflows, 40, prefix="i")
    head = projected(ops_system)
    before = _snapshot(ops_system)

    def interrupt(position: int, head: int, events: int) -> None:
        if position > 60:
            raise KeyboardInterrupt  # Ctrl-C, mid-way through the bulk load

    with pytest.raises(KeyboardInterrupt):
        Rebuild(ops_system.workflows, SqlRebuildTarget(ops_system.views), batch=30,
                progress=interrupt).run()
    execute(ops_system, "INSERT INTO rebuild_workflow_audit VALUES ('junk', 1, 'X', 't', '{}')")

    assert {"rebuild_workflow_state", "rebuild_workflow_audit"} <= table_names(ops_system)
    assert _snapshot(ops_system) == before  # the served view is untouched
    assert ops_system.views.position(NAME) == head

    again = cli(database_url, "projections", "rebuild", "--batch", "30")
    twice = cli(database_url, "projections", "rebuild", NAME)  # and once more: names stay tidy

    assert again.exit_code == 0, again.output
    assert f"rebuilt {NAME}: {head} events up to position {head}" in again.stdout
    assert twice.exit_code == 0, twice.output
    assert _snapshot(ops_system) == before
    assert not table_names(ops_system) & EXTRA_TABLES
    assert not any(i.startswith(("rebuild_", "old_")) for i in index_names(ops_system))


def test_status_shows_position_head_and_lag(database_url: str, ops_system: System) -> None:
    build(ops_system.workflows, 5, prefix="s")
    head = projected(ops_system)

    shown = cli(database_url, "projections", "status")
    ops_system.stop_projection()
    ops_system.workflows.start("order", "late-1", ORDER)  # recorded, not projected
    behind = cli(database_url, "projections", "status")
    unknown = cli(database_url, "projections", "rebuild", "no_such_view")

    assert shown.exit_code == 0
    assert shown.stdout.splitlines() == [
        "NAME            POSITION  HEAD  LAG_EVENTS  LAG_S",
        f"workflow_views  {head:<8}  {head:<4}  0           0.0"]
    row = behind.stdout.splitlines()[1].split()
    assert row[:2] == ["workflow_views", str(head)]
    assert int(row[2]) > head and int(row[3]) == int(row[2]) - head
    assert 0.0 <= float(row[4]) < 30
    assert unknown.exit_code == 2
    assert "no projection 'no_such_view'; known: workflow_views" in unknown.output


def test_one_rebuild_at_a_time(database_url: str, ops_system: System) -> None:
    build(ops_system.workflows, 2, prefix="x")
    projected(ops_system)

    with SqlRebuildTarget(ops_system.views).exclusive():
        second = cli(database_url, "projections", "rebuild")

    assert second.exit_code == 1
    assert "another rebuild of these views is running" in second.output
    assert cli(database_url, "projections", "rebuild").exit_code == 0  # released
