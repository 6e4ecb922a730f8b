"""The worker end to end in one process: the real Workflows application on a SQLite file, the
real Orchestrator and projection, each driven by a real Follower, wired by bootstrap(); only
the participants are fakes."""
from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from application.ports import Rejected, Succeeded, Transient, Unavailable
from application.views import AuditEntry, Search, fold
from application.workflows import OrderConflict, Workflows
from domain.workflow import InvalidTransition, Workflow
from infrastructure.bootstrap import System, bootstrap
from infrastructure.settings import load
from tests.fakes import FakeParticipants, wait_until

STEP_MAX = 3
COMPENSATION_MAX = 3
ORDER: dict[str, Any] = {"cents": 1250, "skus": ["sku-1", "sku-2"], "address": "1 Main St"}


class Harness:
    """Starts systems on one pair of SQLite files; stops whatever is left at teardown."""

    def __init__(self, tmp_path: Path) -> None:
        self.settings = load({
            "DATABASE_URL": f"sqlite:///{tmp_path}/o.sqlite3",
            "STEP_MAX_ATTEMPTS": str(STEP_MAX),
            "COMPENSATION_MAX_ATTEMPTS": str(COMPENSATION_MAX),
            "RETRY_BACKOFF_BASE_S": "0.005",  # tiny backoff, Retry-After still honoured
            "RETRY_BACKOFF_CAP_S": "0.02",
        })
        self.running: list[System] = []
        self.fakes: list[FakeParticipants] = []

    def boot(self, fake: FakeParticipants) -> System:
        self.fakes.append(fake)
        system = bootstrap(self.settings, participants=fake).start_worker()
        self.running.append(system)
        return system

    def stop(self, system: System, grace_s: float = 10.0) -> bool:
        self.running.remove(system)
        return system.stop(grace_s)

    def close(self) -> None:
        for fake in self.fakes:
            fake.release_all()
        for system in list(self.running):
            self.stop(system, grace_s=2.0)


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Harness]:
    h = Harness(tmp_path)
    yield h
    h.close()


@pytest.fixture
def fake() -> FakeParticipants:
    return FakeParticipants()


@pytest.fixture
def system(harness: Harness, fake: FakeParticipants) -> System:
    return harness.boot(fake)


def start(system: System, order_id: str) -> uuid.UUID:
    started = system.workflows.start(order_id, **ORDER)
    assert started.created
    return started.workflow_id


def finished(workflows: Workflows, workflow_id: uuid.UUID, timeout: float = 10.0) -> Workflow:
    """The workflow once it is terminal."""
    def terminal() -> Workflow | None:
        workflow = workflows.load(workflow_id)
        return workflow if workflow.is_terminal else None
    return wait_until(terminal, timeout, what=f"workflow {workflow_id} to finish")


def stored(system: System, workflow_id: uuid.UUID) -> list[Any]:
    return list(system.workflows.repository.event_store.get(workflow_id))


def types(system: System, workflow_id: uuid.UUID) -> list[str]:
    return [type(e).__name__ for e in stored(system, workflow_id)]


def projected(system: System, workflow_id: uuid.UUID) -> dict[str, Any]:
    """The served state view once the projection has caught up, checked against fold() of the
    stored events and the audit trail against the events themselves."""
    events = stored(system, workflow_id)
    version = events[-1].originator_version

    def caught_up() -> dict[str, Any] | None:
        view = system.views.state(str(workflow_id))
        return view if view is not None and view["version"] == version else None

    view = wait_until(caught_up, what=f"the projection of {workflow_id} to reach {version}")
    assert view == fold(events)
    assert system.views.audit(str(workflow_id)) == [AuditEntry.of(e) for e in events]
    return view


def assert_one_key_per_action(fake: FakeParticipants) -> None:
    for call in fake.calls:
        assert call.idempotency_key == f"{call.workflow_id}:{call.action}"


# --- forward ----------------------------------------------------------------------------------


def test_happy_path_completes_with_one_call_per_step_under_stable_keys(
        system: System, fake: FakeParticipants) -> None:
    wid = start(system, "o-1")

    workflow = finished(system.workflows, wid)

    assert workflow.status == "COMPLETED"
    calls = fake.calls_for(wid)
    assert [(c.action, c.idempotency_key, c.workflow_id) for c in calls] == [
        (a, f"{wid}:{a}", str(wid)) for a in ("charge", "reserve", "ship")]
    assert [c.args for c in calls] == [
        {"orderId": "o-1", "cents": 1250},
        {"orderId": "o-1", "skus": ["sku-1", "sku-2"]},
        {"orderId": "o-1", "address": "1 Main St"},
    ]
    assert all(c.traceparent and wid.hex in c.traceparent for c in calls)
    view = projected(system, wid)
    assert view["status"] == "COMPLETED"
    assert (view["paymentId"], view["reservationId"], view["shipmentId"]) == (
        "pay-1", "res-1", "shp-1")
    assert view["attempts"] == {"charge": 1, "reserve": 1, "ship": 1}
    assert types(system, wid) == ["Started", "Charged", "Reserved", "Shipped", "Completed"]
    assert system.views.state_by_order("o-1") == view


def test_a_transient_failure_is_retried_under_the_same_key_and_recorded(
        system: System, fake: FakeParticipants) -> None:
    fake.script("reserve", [Transient("service unavailable", status=503),
                            Succeeded({"reservationId": "r-1"})])
    wid = start(system, "o-flaky")

    assert finished(system.workflows, wid).status == "COMPLETED"
    reserves = fake.calls_for(wid, "reserve")
    assert [c.idempotency_key for c in reserves] == [f"{wid}:reserve"] * 2
    assert reserves[0].args == reserves[1].args
    assert types(system, wid) == [
        "Started", "Charged", "StepFailed", "Reserved", "Shipped", "Completed"]
    failure = stored(system, wid)[2]
    assert (failure.action, failure.attempt, failure.retryable, failure.uncertain) == (
        "reserve", 1, True, True)
    view = projected(system, wid)
    assert view["reservationId"] == "r-1"
    assert view["attempts"] == {"charge": 1, "reserve": 2, "ship": 1}


def test_retry_after_is_waited_for_before_the_next_attempt(
        system: System, fake: FakeParticipants) -> None:
    fake.script("charge", [
        Transient("slow down", status=429, retry_after=0.3, maybe_applied=False)])
    wid = start(system, "o-slow")

    assert finished(system.workflows, wid).status == "COMPLETED"
    first, second = [m.at for m in fake.made if m.call.action == "charge"]
    assert second - first >= 0.29


def test_an_unavailable_participant_uses_up_no_attempt(
        system: System, fake: FakeParticipants) -> None:
    fake.script("charge", [Unavailable("payment circuit open", retry_in=0.05)])
    wid = start(system, "o-breaker")

    assert finished(system.workflows, wid).status == "COMPLETED"
    charges = [m for m in fake.made if m.call.action == "charge"]
    assert [m.call.idempotency_key for m in charges] == [f"{wid}:charge"] * 2
    assert charges[1].at - charges[0].at >= 0.04  # it waited rather than hammering
    assert "StepFailed" not in types(system, wid)
    assert projected(system, wid)["attempts"] == {"charge": 1, "reserve": 1, "ship": 1}


# --- failures and compensation -----------------------------------------------------------------


def test_a_rejection_at_reserve_refunds_the_charge_only_and_fails(
        system: System, fake: FakeParticipants) -> None:
    fake.script("reserve", [Rejected(422, "out of stock")])
    wid = start(system, "o-nostock")

    assert finished(system.workflows, wid).status == "FAILED"
    assert fake.actions(wid) == ["charge", "reserve", "refund"]
    refund = fake.calls_for(wid, "refund")[0]
    assert refund.args == {"orderId": "o-nostock", "paymentId": "pay-1", "reason": "failed"}
    assert refund.idempotency_key == f"{wid}:refund"
    assert types(system, wid) == [
        "Started", "Charged", "StepFailed", "CompensationStarted", "Compensated", "Failed"]
    view = projected(system, wid)
    assert view["status"] == "FAILED"
    assert view["error"] == "reserve: rejected (422): out of stock"
    assert view["attempts"] == {"charge": 1, "reserve": 1, "refund": 1}


@pytest.mark.parametrize("re_ask, undo, error", [
    (Succeeded({"reservationId": "res-late"}), ["release", "refund"],
     "reserve: 502: bad gateway"),
    # the view shows the last failure recorded: the answer that settled the doubt
    (Rejected(404, "no such reservation"), ["refund"],
     "reserve: rejected (404): no such reservation"),
])
def test_a_step_given_up_on_5xx_is_re_asked_before_compensating(
        system: System, fake: FakeParticipants, re_ask: Any, undo: list[str],
        error: str) -> None:
    fake.script("reserve", [Transient("bad gateway", status=502)] * STEP_MAX + [re_ask])
    wid = start(system, "o-doubt")

    assert finished(system.workflows, wid).status == "FAILED"
    assert fake.actions(wid) == ["charge", *["reserve"] * (STEP_MAX + 1), *undo]
    if "release" in undo:
        assert fake.calls_for(wid, "release")[0].args["reservationId"] == "res-late"
    assert_one_key_per_action(fake)
    view = projected(system, wid)
    assert view["error"] == error


def test_a_compensation_that_keeps_failing_waits_for_an_operator_retry(
        system: System, fake: FakeParticipants) -> None:
    fake.script("ship", [Rejected(400, "bad address")])
    fake.always("refund", Transient("payment down", status=503))
    wid = start(system, "o-stuck")

    assert finished(system.workflows, wid).status == "COMPENSATION_FAILED"
    assert fake.actions(wid) == ["charge", "reserve", "ship", "release",
                                 *["refund"] * COMPENSATION_MAX]
    stuck = projected(system, wid)
    assert stuck["status"] == "COMPENSATION_FAILED"
    assert stuck["error"] == "refund: 503: payment down"
    assert system.views.search(Search(status="COMPENSATION_FAILED")).items == [stuck]

    fake.always("refund", None)  # the payment service is back
    system.workflows.retry(wid, by="ops", reason="payment service fixed")

    assert finished(system.workflows, wid).status == "FAILED"
    assert fake.actions(wid).count("refund") == COMPENSATION_MAX + 1
    assert_one_key_per_action(fake)
    assert types(system, wid)[-4:] == [
        "CompensationFailed", "RetryRequested", "Compensated", "Failed"]
    assert projected(system, wid)["attempts"]["refund"] == COMPENSATION_MAX + 1


# --- clients and operators -----------------------------------------------------------------------


def test_cancel_while_the_charge_is_in_flight_refunds_it_and_ends_cancelled(
        system: System, fake: FakeParticipants) -> None:
    fake.block("charge")
    wid = start(system, "o-cancel")
    fake.wait_blocked("charge")

    system.workflows.cancel(wid)
    waiting = system.workflows.load(wid)
    assert (waiting.status, waiting.cancel_requested) == ("STARTED", True)
    fake.release("charge")

    assert finished(system.workflows, wid).status == "CANCELLED"
    assert fake.actions(wid) == ["charge", "refund"]
    assert fake.calls_for(wid, "refund")[0].args == {
        "orderId": "o-cancel", "paymentId": "pay-1", "reason": "cancelled"}
    assert types(system, wid) == ["Started", "CancelRequested", "Charged",
                                  "CompensationStarted", "Compensated", "Cancelled"]
    assert projected(system, wid)["status"] == "CANCELLED"
    with pytest.raises(InvalidTransition):
        system.workflows.cancel(wid)


def test_cancel_and_retry_of_a_completed_workflow_are_refused(system: System) -> None:
    wid = start(system, "o-done")
    finished(system.workflows, wid)

    with pytest.raises(InvalidTransition):
        system.workflows.cancel(wid)
    with pytest.raises(InvalidTransition):
        system.workflows.retry(wid, by="ops", reason="why not")
    assert types(system, wid)[-1] == "Completed"


def test_a_repeated_start_finds_the_same_workflow_and_a_different_body_conflicts(
        system: System, fake: FakeParticipants) -> None:
    wid = start(system, "o-twice")

    again = system.workflows.start("o-twice", **ORDER)
    with pytest.raises(OrderConflict):
        system.workflows.start("o-twice", **{**ORDER, "cents": 1})

    assert (again.workflow_id, again.created) == (wid, False)
    finished(system.workflows, wid)
    assert fake.actions(wid) == ["charge", "reserve", "ship"]


# --- load and restarts ---------------------------------------------------------------------------


def test_fifty_concurrent_workflows_all_complete(system: System,
                                                 fake: FakeParticipants) -> None:
    with ThreadPoolExecutor(8) as pool:
        wids = list(pool.map(lambda i: start(system, f"o-{i}"), range(50)))

    for wid in wids:
        assert finished(system.workflows, wid, timeout=20).status == "COMPLETED"
    assert Counter(c.idempotency_key for c in fake.calls) == Counter(
        f"{w}:{a}" for w in wids for a in ("charge", "reserve", "ship"))
    views = [projected(system, wid) for wid in wids]
    page = system.views.search(Search(status="COMPLETED", limit=100))
    assert sorted(s["workflowId"] for s in page.items) == sorted(str(w) for w in wids)
    assert page.items == sorted(views, key=lambda s: (s["createdAt"], s["workflowId"]),
                                reverse=True)


def test_a_restart_mid_flight_finishes_every_workflow_without_repeating_a_step(
        harness: Harness) -> None:
    before = FakeParticipants()
    first = harness.boot(before)
    done = [start(first, f"o-early-{i}") for i in range(2)]
    for wid in done:
        finished(first.workflows, wid)
    before.block("ship")
    flying = [start(first, f"o-late-{i}") for i in range(3)]
    before.wait_blocked("ship", count=3)

    assert harness.stop(first, grace_s=0.2) is False  # the ship calls never answered
    after = FakeParticipants()
    second = harness.boot(after)

    for wid in flying:
        assert finished(second.workflows, wid).status == "COMPLETED"
    assert sorted((c.workflow_id, c.action, c.idempotency_key) for c in after.calls) == sorted(
        (str(w), "ship", f"{w}:ship") for w in flying)  # nothing else was called again
    for wid in flying + done:
        kinds = types(second, wid)
        assert [kinds.count(k) for k in ("Charged", "Reserved", "Shipped", "Completed")] == [
            1, 1, 1, 1]
        projected(second, wid)
    for wid in flying:
        shipped = next(e for e in stored(second, wid) if type(e).__name__ == "Shipped")
        answered = next(m.outcome for m in after.made if m.call.workflow_id == str(wid))
        assert isinstance(answered, Succeeded)
        assert shipped.shipment_id == answered.result["shipmentId"]  # the new worker's call
    assert_one_key_per_action(before)
    assert_one_key_per_action(after)


def test_a_cancel_after_a_crash_mid_call_still_undoes_that_call(harness: Harness) -> None:
    before = FakeParticipants()
    first = harness.boot(before)
    before.block("reserve")
    wid = start(first, "o-crash")
    before.wait_blocked("reserve")  # the reservation is being made...
    assert harness.stop(first, grace_s=0.1) is False  # ...when the worker goes away
    api = bootstrap(harness.settings)  # an API process records the client's cancel
    api.workflows.cancel(wid)
    api.workflows.close()
    after = FakeParticipants()

    second = harness.boot(after)

    assert finished(second.workflows, wid).status == "CANCELLED"
    assert before.actions(wid) == ["charge", "reserve"]
    assert "release" in after.actions(wid)  # today: only ["refund"]


def test_the_projection_serves_what_the_events_say(system: System,
                                                   fake: FakeParticipants) -> None:
    fake.script("ship", [Rejected(400, "bad address")])
    failed = start(system, "o-a")
    finished(system.workflows, failed)
    completed = start(system, "o-b")
    finished(system.workflows, completed)

    views = {wid: projected(system, wid) for wid in (failed, completed)}

    newest_first = [views[completed], views[failed]]
    assert system.views.search(Search()).items == newest_first
    assert system.views.search(Search(status="FAILED")).items == [views[failed]]
    assert system.views.search(Search(order_id="o-b")).items == [views[completed]]
    page = system.views.search(Search(limit=1))
    assert page.items == newest_first[:1]
    assert system.views.search(Search(limit=1, after=page.next)).items == newest_first[1:]
    assert [a.type for a in system.views.audit(str(failed))] == [
        "Started", "Charged", "Reserved", "StepFailed", "CompensationStarted", "Compensated",
        "Compensated", "Failed"]


def test_a_replayed_batch_changes_no_view(system: System) -> None:
    wid = start(system, "o-replay")
    finished(system.workflows, wid)
    view = projected(system, wid)
    assert system.projection is not None
    notes = system.workflows.recorder.select_notifications(start=1, limit=100)

    system.projection.process(notes[:3])  # as after a crash between write and acknowledgement
    assert system.views.state(str(wid)) == view
    system.projection.process(notes)

    assert system.views.state(str(wid)) == view
    assert system.views.audit(str(wid)) == [AuditEntry.of(e) for e in stored(system, wid)]
