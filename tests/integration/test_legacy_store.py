"""A store written before definitions existed keeps working under today's code, on SQLite and
PostgreSQL: its workflows load, replay, verify and project as the code of that time served
them (plus the fields definitions added), `projections rebuild` and `audit replay --all
--verify` agree on it, the ones it left mid-flight finish, and the views that code kept are
rebuilt from the events in today's shape.

The events are the order saga's of that time, written straight through the recorder as that
code's mapper stored them (tests/legacy.py: topics and JSON, recorded by that code).
"""
from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from application.audit import replay, replay_all
from application.projection import NAME, WorkflowProjection
from application.views import AuditEntry, Search
from application.workflows import Workflows
from infrastructure.bootstrap import System, bootstrap, shard_name, store_env
from infrastructure.settings import Settings
from tests.fakes import FakeParticipants, wait_until
from tests.legacy import (
    FINISHED,
    HISTORIES,
    OLD_RESULTS,
    OLD_VIEW_TABLES,
    OLD_VIEWS,
    RUNNING,
    interleaved,
    old_id,
    old_view_rows,
    stored,
    view_time,
    write,
)
from tests.ops import all_audit, all_states, cli, execute, projected, settings_for

ADDED = ("definition", "definitionVersion", "key", "results")  # what definitions added


def _wid(order_id: str) -> str:
    return str(old_id(order_id))


def _write_old_store(settings: Settings) -> int:
    """The old events into the event store, through the recorder alone; returns the head."""
    store = Workflows(env=store_env(settings))  # only its recorder is used: no definitions
    try:
        return write(store.recorder)
    finally:
        store.close()


def _as_served_then(view: dict[str, Any]) -> dict[str, Any]:
    """The fields the code before definitions served, out of today's view."""
    return {k: view[k] for k in OLD_VIEWS["legacy-done"]}


def _added(order_id: str) -> dict[str, Any]:
    return {"definition": "order", "definitionVersion": 1, "key": order_id,
            "results": OLD_RESULTS[order_id]}


def _assert_as_old(order_id: str, view: dict[str, Any] | None) -> None:
    """Today's view of an old workflow: what the old code served, field by field, plus the
    fields definitions added, and nothing else."""
    assert view is not None, f"no view of {order_id}"
    assert _as_served_then(view) == OLD_VIEWS[order_id]
    assert {k: view[k] for k in ADDED} == _added(order_id)
    assert set(view) == {*OLD_VIEWS[order_id], *ADDED}


@pytest.fixture
def old_store(database_url: str) -> tuple[Settings, int]:
    settings = settings_for(database_url)
    return settings, _write_old_store(settings)


@pytest.fixture
def system(old_store: tuple[Settings, int]) -> Iterator[System]:
    """Today's code over the old store: no worker, nothing driven."""
    built = bootstrap(old_store[0])
    try:
        yield built
    finally:
        built.stop(grace_s=0)


# --- load, replay, project, verify, rebuild -----------------------------------------------------


def test_old_workflows_load_and_replay_to_the_views_the_old_code_served(
        system: System) -> None:
    for order_id in HISTORIES:
        wid = old_id(order_id)
        workflow = system.workflows.load(wid)
        old = OLD_VIEWS[order_id]
        assert (workflow.id, workflow.version, workflow.status) == (
            wid, old["version"], old["status"])
        assert (workflow.definition, workflow.definition_version, workflow.key) == (
            "order", 1, order_id)
        started = HISTORIES[order_id][0][2]
        assert workflow.input == {k: started[k] for k in ("cents", "skus", "address")}
        assert (workflow.results, workflow.attempts, workflow.error) == (
            OLD_RESULTS[order_id], old["attempts"], old["error"])

        replayed = replay(system.workflows, wid)

        _assert_as_old(order_id, replayed.state)
        assert [m.type for m in replayed.timeline] == [e[0] for e in HISTORIES[order_id]]
    assert system.workflows.load(old_id("legacy-undoing")).uncertain == ["ship"]  # v1 doubt
    assert system.workflows.load(old_id("legacy-failed")).undone == ["reserve", "charge"]


def test_the_calls_due_next_are_those_the_old_code_would_have_made(system: System) -> None:
    order = system.definitions.get("order", 1).definition
    midway = system.workflows.load(old_id("legacy-midway"))
    undoing = system.workflows.load(old_id("legacy-undoing"))

    [reserve] = midway.advance(order, midway.created_on.timestamp()).dues
    [ship] = undoing.advance(order, undoing.created_on.timestamp()).dues

    wid = _wid("legacy-midway")
    assert (reserve.action, reserve.attempt, reserve.compensating) == ("reserve", 1, False)
    assert (reserve.call.path, reserve.call.body) == ("/inventory/reservations", {
        "orderId": "legacy-midway", "skus": ["sku-5"], "idempotencyKey": f"{wid}:reserve"})
    # cancelled while ship may have been in flight: ask it again, under the same key, first
    assert (ship.action, ship.attempt, ship.compensating) == ("ship", 1, True)
    assert ship.call.body["idempotencyKey"] == f"{_wid('legacy-undoing')}:ship"


def test_projection_replay_and_rebuild_agree_on_an_old_store(
        database_url: str, system: System, old_store: tuple[Settings, int]) -> None:
    head = old_store[1]
    projection = WorkflowProjection(system.views, system.workflows.mapper,
                                    system.workflows.shape)
    for start in range(1, head + 1, 7):  # batches that split workflows, as the follower's do
        projection.process(system.workflows.recorder.select_notifications(start, limit=7))

    served = all_states(system)
    assert system.views.position(NAME) == head
    assert set(served) == {_wid(o) for o in HISTORIES}
    for order_id in HISTORIES:
        _assert_as_old(order_id, served[_wid(order_id)])
        assert served[_wid(order_id)] == replay(system.workflows, old_id(order_id)).state
    trails = all_audit(system, sorted(served))
    for order_id, events in HISTORIES.items():  # each event under its old name and time
        assert [(a.position, a.type, a.timestamp) for a in trails[_wid(order_id)]] == [
            (n, name, view_time(at)) for n, (name, at, _) in enumerate(events, start=1)]
    _assert_failed_audit(trails[_wid("legacy-failed")])
    assert [a.data["doubtful"] for a in trails[_wid("legacy-cancelled")]
            if a.type == "CompensationStarted"] == [["reserve"]]
    assert system.views.state_by_key("order", "legacy-midway") == served[_wid("legacy-midway")]
    assert [s["key"] for s in system.views.search(Search(status="COMPENSATING")).items] == [
        "legacy-undoing"]

    summary = replay_all(system.workflows, system.views)
    every = cli(database_url, "audit", "replay", "--all", "--verify")

    assert (summary.workflows, summary.events, summary.mismatches) == (5, head, {})
    assert every.exit_code == 0, every.output
    assert "replayed 5 workflows" in every.stdout and ", 0 mismatch(es)" in every.stdout

    rebuilt = cli(database_url, "projections", "rebuild", "--batch", "4")

    assert rebuilt.exit_code == 0, rebuilt.output
    assert f"rebuilt {NAME}: {head} events up to position {head}" in rebuilt.stdout
    assert all_states(system) == served
    assert all_audit(system, sorted(served)) == trails
    again = cli(database_url, "audit", "replay", "--all", "--verify")
    assert again.exit_code == 0 and ", 0 mismatch(es)" in again.stdout
    for order_id in HISTORIES:  # one by one, by order id, as an operator would
        one = cli(database_url, "audit", "replay", order_id, "--verify")
        assert one.exit_code == 0, one.output
        assert one.stdout.startswith(
            f"workflow {_wid(order_id)}  order {order_id}  {OLD_VIEWS[order_id]['status']}")


def _assert_failed_audit(trail: list[AuditEntry]) -> None:
    """The audit of the failed one: each old event under its old name, the data of the step
    events as they were, the upcast events' data in today's form."""
    wid = _wid("legacy-failed")
    refund_failed = {"action": "refund", "step": "charge", "error": "503: payment down",
                     "retryable": True, "uncertain": True, "retryAt": None}
    assert [(a.workflow_id, a.position, a.type, a.data) for a in trail] == [
        (wid, 1, "Started", {"definition": "order", "definitionVersion": 1,
                             "key": "legacy-failed",
                             "input": {"cents": 500, "skus": ["sku-3"], "address": "2 Old Rd"}}),
        (wid, 2, "Charged", {"paymentId": "pay-legacy-2", "attempt": 1, "cents": 500}),
        (wid, 3, "Reserved", {"reservationId": "res-legacy-2", "attempt": 1}),
        (wid, 4, "StepFailed", {"action": "ship", "step": "ship", "attempt": 1,
                                "error": "503: shipping down", "retryable": True,
                                "uncertain": True, "retryAt": 1709294465.5}),
        (wid, 5, "StepFailed", {"action": "ship", "step": "ship", "attempt": 2,
                                "error": "rejected (422): bad address", "retryable": False,
                                "uncertain": False, "retryAt": None}),
        (wid, 6, "CompensationStarted", {"reason": "failed",
                                         "error": "ship: rejected (422): bad address",
                                         "doubtful": []}),
        (wid, 7, "Compensated", {"step": "reserve", "action": "release", "attempt": 1}),
        (wid, 8, "StepFailed", {**refund_failed, "attempt": 1}),
        (wid, 9, "StepFailed", {**refund_failed, "attempt": 2}),
        (wid, 10, "StepFailed", {**refund_failed, "attempt": 3}),
        (wid, 11, "CompensationFailed", {"action": "refund",
                                         "error": "refund: 503: payment down"}),
        (wid, 12, "RetryRequested", {"by": "operator-1", "reason": "payment is back"}),
        (wid, 13, "Compensated", {"step": "charge", "action": "refund", "attempt": 4}),
        (wid, 14, "Failed", {"error": "refund: 503: payment down"}),
    ]


# --- the ones left mid-flight finish ------------------------------------------------------------


def test_old_workflows_left_mid_flight_finish_and_nothing_is_charged_twice(
        old_store: tuple[Settings, int], database_url: str) -> None:
    settings, head = old_store
    fake = FakeParticipants()
    system = bootstrap(settings, participants=fake).start_worker()
    try:
        midway, undoing = _wid("legacy-midway"), _wid("legacy-undoing")
        wait_until(lambda: (system.views.state(midway) or {}).get("status") == "COMPLETED",
                   timeout=20, what="the old mid-flight workflow to complete")
        wait_until(lambda: (system.views.state(undoing) or {}).get("status") == "CANCELLED",
                   timeout=20, what="the old mid-compensation workflow to be cancelled")
        projected(system)

        # exactly one reserve and one ship, no second charge: the old charge stands
        assert fake.actions(midway) == ["reserve", "ship"]
        assert [c.idempotency_key for c in fake.calls_for(midway)] == [
            f"{midway}:reserve", f"{midway}:ship"]
        reserve, ship = fake.calls_for(midway)
        assert reserve.body == {"orderId": "legacy-midway", "skus": ["sku-5"],
                                "idempotencyKey": f"{midway}:reserve"}
        assert ship.body == {"orderId": "legacy-midway", "address": "4 Old Rd",
                             "idempotencyKey": f"{midway}:ship"}
        # the doubt of v1 (`doubtful: "ship"`): ship asked again under its key, then
        # everything undone in reverse, with the ids the old code recorded
        shipped = {m.call.workflow_id: m.outcome.result["shipmentId"]  # type: ignore[union-attr]
                   for m in fake.made if m.call.action == "ship"}
        assert fake.actions(undoing) == ["ship", "cancel", "release", "refund"]
        assert [c.path for c in fake.calls_for(undoing)][1:] == [
            f"/shipments/{shipped[undoing]}/cancel",
            "/inventory/reservations/res-legacy-5/release",
            "/payments/pay-legacy-5/refund?reason=cancelled"]
        assert {c.workflow_id for c in fake.calls} == {midway, undoing}  # the rest: finished
        assert fake.calls_for(action="charge") == []

        done = system.views.state(midway)
        assert done is not None
        assert _as_served_then(done) == {
            **OLD_VIEWS["legacy-midway"], "status": "COMPLETED", "reservationId": "res-1",
            "shipmentId": shipped[midway], "attempts": {"charge": 1, "reserve": 1, "ship": 1},
            "updatedAt": done["updatedAt"], "version": 5}
        assert done["results"] == {"charge": {"paymentId": "pay-legacy-4"},
                                   "reserve": {"reservationId": "res-1"},
                                   "ship": {"shipmentId": shipped[midway]}}
        trail = system.views.audit(midway)
        assert [a.type for a in trail] == ["Started", "Charged", "Reserved", "Shipped",
                                           "Completed"]
        assert trail[2].data == {"step": "reserve", "name": "Reserved", "status": "RESERVED",
                                 "attempt": 1, "result": {"reservationId": "res-1"}}
        cancelled = system.views.state(undoing)
        assert cancelled is not None
        assert (cancelled["shipmentId"], cancelled["error"], cancelled["attempts"]) == (
            shipped[undoing], "cancelled by client",
            {"charge": 1, "reserve": 1, "ship": 1, "cancel": 1, "release": 1, "refund": 1})
        for order_id in FINISHED:  # untouched
            _assert_as_old(order_id, system.views.state(_wid(order_id)))
            assert system.workflows.recorder.select_events(old_id(order_id))[-1].state == \
                stored(order_id)[-1].state
        every = cli(database_url, "audit", "replay", "--all", "--verify")
        assert every.exit_code == 0, every.output
        assert "replayed 5 workflows" in every.stdout
        assert (system.workflows.recorder.max_notification_id() or 0) == head + 3 + 5
    finally:
        fake.release_all()
        system.stop(grace_s=2.0)


# --- the views the old code kept ------------------------------------------------------------


def _old_views(settings: Settings, head: int, shard_position: int) -> None:
    """The views database as the code before definitions left it: its tables, each
    workflow's row and audit, the projection at the head, each orchestrator shard where it
    stood (before the first workflow still running: a position never passes one)."""
    statements: list[tuple[str, tuple[Any, ...]]] = [(s, ()) for s in OLD_VIEW_TABLES]
    for order_id, view in OLD_VIEWS.items():
        statements.append(("INSERT INTO workflow_state VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                           old_view_rows(view)))
        for n, (name, at, fields) in enumerate(HISTORIES[order_id], start=1):
            data = {k: v for k, v in fields.items() if k not in ("originator_topic",
                                                                 "class_version")}
            statements.append(("INSERT INTO workflow_audit VALUES (?, ?, ?, ?, ?)",
                               (view["workflowId"], n, name, at, json.dumps(data))))
    positions = {NAME: head, **{shard_name(k): shard_position for k in range(settings.shards)}}
    for name, position in positions.items():
        statements.append(("INSERT INTO view_positions VALUES (?, ?)", (name, position)))
    if settings.is_postgres:
        import psycopg

        with psycopg.connect(settings.database_url) as pg, pg.transaction():
            for statement, params in statements:
                pg.execute(statement.replace("?", "%s"), params)
        return
    path = settings.sqlite_path
    lite = sqlite3.connect(path.with_name(path.stem + ".views" + (path.suffix or ".sqlite3")))
    try:
        with lite:
            for statement, params in statements:
                lite.execute(statement, params)
    finally:
        lite.close()


def test_views_kept_before_definitions_are_rebuilt_from_the_events_in_the_new_shape(
        database_url: str, old_store: tuple[Settings, int]) -> None:
    settings, head = old_store
    running = {old_id(o) for o in RUNNING}
    first_running = min(n for n, e in enumerate(interleaved(), start=1)
                        if e.originator_id in running)  # its position, as `write` stores
    _old_views(settings, head, shard_position=first_running - 1)
    fake = FakeParticipants()

    system = bootstrap(settings, participants=fake)  # today's code starts on the old views
    try:
        assert system.views.position(NAME) == 0  # dropped with the old tables
        assert system.views.position(shard_name(0)) == first_running - 1  # kept
        assert system.views.state(_wid("legacy-done")) is None
        columns = {r[0] for r in execute(system, _COLUMNS[system.views.dialect])}
        assert "order_id" not in columns and {"definition", "key", "view"} <= columns

        system.start_worker()
        for order_id, final in (("legacy-midway", "COMPLETED"),
                                ("legacy-undoing", "CANCELLED")):
            wid = _wid(order_id)
            wait_until(lambda: (system.views.state(wid) or {}).get("status") == final,  # noqa: B023
                       timeout=20, what=f"{order_id} to end {final}")
        projected(system)

        served = all_states(system)
        assert set(served) == {_wid(o) for o in HISTORIES}
        for order_id in HISTORIES:  # the views are the events', in the new shape
            assert served[_wid(order_id)] == replay(system.workflows, old_id(order_id)).state
        for order_id in FINISHED:
            _assert_as_old(order_id, served[_wid(order_id)])
            assert [a.type for a in system.views.audit(_wid(order_id))] == [
                e[0] for e in HISTORIES[order_id]]
        assert served[_wid("legacy-midway")]["status"] == "COMPLETED"
        assert system.views.state_by_key("order", "legacy-done") == served[_wid("legacy-done")]
        assert [s["key"] for s in system.views.search(
            Search(definition="order", status="FAILED")).items] == ["legacy-failed"]
        assert fake.calls_for(action="charge") == []
        assert fake.actions(_wid("legacy-midway")) == ["reserve", "ship"]
        assert fake.actions(_wid("legacy-undoing")) == ["ship", "cancel", "release", "refund"]
        every = cli(database_url, "audit", "replay", "--all", "--verify")
        assert every.exit_code == 0, every.output
        lag = cli(database_url, "projections", "status")
        assert lag.stdout.splitlines()[1].split()[3] == "0"  # no lag
    finally:
        fake.release_all()
        system.stop(grace_s=2.0)


_COLUMNS = {
    "sqlite": "SELECT name FROM pragma_table_info('workflow_state')",
    "postgres": "SELECT column_name FROM information_schema.columns "
                "WHERE table_schema = current_schema() AND table_name = 'workflow_state'",
}


def test_the_old_histories_are_what_the_old_code_stored() -> None:
    """A guard on the fixtures: every old topic, v1 shapes where the old code wrote v1."""
    for order_id in HISTORIES:
        for event in stored(order_id):
            state = json.loads(event.state)
            name = event.topic.rsplit(".", 1)[1]
            assert event.topic == f"domain.workflow:Workflow.{name}"
            assert event.originator_id == uuid.uuid5(
                uuid.UUID("6f1e7d3c-58a2-4c39-9d0e-0c1b2a3f4e5d"), order_id)
            if name == "Started":
                assert set(state) == {"timestamp", "originator_topic", "order_id", "cents",
                                      "skus", "address"}
            if name == "StepFailed":
                assert "step" not in state and "class_version" not in state
            if name == "CompensationStarted":
                assert state["doubtful"] is None or isinstance(state["doubtful"], str)
    charges = [json.loads(e.state) for o in HISTORIES for e in stored(o)
               if e.topic.endswith(".Charged")]
    assert {c.get("class_version", 1) for c in charges} == {1, 2}
