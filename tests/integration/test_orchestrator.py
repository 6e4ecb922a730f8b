"""The worker end to end in one process: the real Workflows application on a SQLite file, the
real Orchestrator and projection, each driven by a real Follower, wired by bootstrap(); only
the participants are fakes.

The order saga first (definitions/order.yaml, as sections 1-3 of the contract say it behaves),
then what the interpreter adds: the trip's parallel branches, waits for signals and their
timeouts, deadlines."""
from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import yaml

from application.ports import Rejected, Succeeded, Transient, Unavailable
from application.views import AuditEntry, Search, event_type, fold
from application.workflows import InvalidInput, StartConflict, Workflows
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
    started = system.workflows.start("order", order_id, ORDER)
    assert started.created
    return started.workflow_id


def finished(workflows: Workflows, workflow_id: uuid.UUID, timeout: float = 10.0) -> Workflow:
    """The workflow once it is terminal."""
    def terminal() -> Workflow | None:
        workflow = workflows.load(workflow_id)
        return workflow if workflow.is_terminal else None
    return wait_until(terminal, timeout, what=f"workflow {workflow_id} to finish")


def status_is(system: System, workflow_id: uuid.UUID, status: str) -> Workflow:
    """The workflow once its status is `status` (failing after a few seconds)."""
    def reached() -> Workflow | None:
        workflow = system.workflows.load(workflow_id)
        return workflow if workflow.status == status else None
    return wait_until(reached, 5, what=f"workflow {workflow_id} to be {status}")


def stored(system: System, workflow_id: uuid.UUID) -> list[Any]:
    return list(system.workflows.repository.event_store.get(workflow_id))


def types(system: System, workflow_id: uuid.UUID) -> list[str]:
    """The events' names as the audit shows them (a step's success by its `event:`)."""
    return [event_type(e) for e in stored(system, workflow_id)]


def projected(system: System, workflow_id: uuid.UUID) -> dict[str, Any]:
    """The served state view once the projection has caught up, checked against fold() of the
    stored events and the audit trail against the events themselves."""
    events = stored(system, workflow_id)
    version = events[-1].originator_version

    def caught_up() -> dict[str, Any] | None:
        view = system.views.state(str(workflow_id))
        return view if view is not None and view["version"] == version else None

    view = wait_until(caught_up, what=f"the projection of {workflow_id} to reach {version}")
    assert view == fold(events, system.workflows.shape)
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
    assert [(c.participant, c.method, c.path, c.body) for c in calls] == [
        ("payment", "POST", "/payments/charge",
         {"orderId": "o-1", "cents": 1250, "idempotencyKey": f"{wid}:charge"}),
        ("inventory", "POST", "/inventory/reservations",
         {"orderId": "o-1", "skus": ["sku-1", "sku-2"], "idempotencyKey": f"{wid}:reserve"}),
        ("shipping", "POST", "/shipments",
         {"orderId": "o-1", "address": "1 Main St", "idempotencyKey": f"{wid}:ship"}),
    ]
    assert all(c.timeout_s is None for c in calls)  # the order leaves it to STEP_TIMEOUT_S
    assert all(c.traceparent and wid.hex in c.traceparent for c in calls)
    view = projected(system, wid)
    assert view["status"] == "COMPLETED"
    assert (view["paymentId"], view["reservationId"], view["shipmentId"]) == (
        "pay-1", "res-1", "shp-1")
    assert view["attempts"] == {"charge": 1, "reserve": 1, "ship": 1}
    assert (view["definition"], view["key"], view["orderId"]) == ("order", "o-1", "o-1")
    assert view["results"] == {"charge": {"paymentId": "pay-1"},
                               "reserve": {"reservationId": "res-1"},
                               "ship": {"shipmentId": "shp-1"}}
    assert types(system, wid) == ["Started", "Charged", "Reserved", "Shipped", "Completed"]
    assert system.views.state_by_key("order", "o-1") == view


def test_a_transient_failure_is_retried_under_the_same_key_and_recorded(
        system: System, fake: FakeParticipants) -> None:
    fake.script("reserve", [Transient("service unavailable", status=503),
                            Succeeded({"reservationId": "r-1"})])
    wid = start(system, "o-flaky")

    assert finished(system.workflows, wid).status == "COMPLETED"
    reserves = fake.calls_for(wid, "reserve")
    assert [c.idempotency_key for c in reserves] == [f"{wid}:reserve"] * 2
    assert reserves[0].body == reserves[1].body and reserves[0].path == reserves[1].path
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


def test_a_2xx_without_what_the_step_keeps_is_a_doubt_never_a_success(
        system: System, fake: FakeParticipants) -> None:
    """A participant bug: the charge may have happened, but there is no paymentId to build on
    or refund with. It is retried under the same key (a participant answers it the same way
    again); the doubt is never settled, so nothing goes on and nothing is undone out of order:
    it ends COMPENSATION_FAILED, the doubt named, for an operator."""
    fake.script("charge", [Succeeded({"status": "OK"})])
    wid = start(system, "o-noid")

    workflow = finished(system.workflows, wid)

    assert (workflow.status, workflow.error) == (
        "COMPENSATION_FAILED", "charge: 500: 2xx without paymentId")
    assert fake.actions(wid) == ["charge"] * (STEP_MAX + COMPENSATION_MAX)
    assert_one_key_per_action(fake)
    failures = [e for e in stored(system, wid) if event_type(e) == "StepFailed"]
    assert all((f.action, f.retryable, f.uncertain) == ("charge", True, True) for f in failures)
    view = projected(system, wid)
    assert (view["status"], view["paymentId"]) == ("COMPENSATION_FAILED", None)


# --- failures and compensation -----------------------------------------------------------------


def test_a_rejection_at_reserve_refunds_the_charge_only_and_fails(
        system: System, fake: FakeParticipants) -> None:
    fake.script("reserve", [Rejected(422, "out of stock")])
    wid = start(system, "o-nostock")

    assert finished(system.workflows, wid).status == "FAILED"
    assert fake.actions(wid) == ["charge", "reserve", "refund"]
    refund = fake.calls_for(wid, "refund")[0]
    assert (refund.participant, refund.method, refund.path, refund.body) == (
        "payment", "POST", "/payments/pay-1/refund?reason=failed", None)
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
        assert fake.calls_for(wid, "release")[0].path == (
            "/inventory/reservations/res-late/release")
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
    asked = system.workflows.load(wid)
    assert asked.cancel_requested and asked.status in ("STARTED", "COMPENSATING")
    # The cancel is taken at once; the charge in flight may have taken effect: it is doubtful,
    # and nothing is undone (nor the workflow ended) before it has answered.
    compensating = status_is(system, wid, "COMPENSATING")
    assert compensating.uncertain == ["charge"]
    assert fake.actions(wid) == ["charge"]
    fake.release("charge")

    assert finished(system.workflows, wid).status == "CANCELLED"
    assert fake.actions(wid) == ["charge", "refund"]
    assert fake.calls_for(wid, "refund")[0].path == "/payments/pay-1/refund?reason=cancelled"
    assert types(system, wid) == ["Started", "CancelRequested", "CompensationStarted",
                                  "Charged", "Compensated", "Cancelled"]
    started = stored(system, wid)[2]
    assert (started.reason, started.doubtful) == ("cancelled", ["charge"])
    view = projected(system, wid)
    assert (view["status"], view["paymentId"]) == ("CANCELLED", "pay-1")
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

    again = system.workflows.start("order", "o-twice", ORDER)
    with pytest.raises(StartConflict) as conflict:
        system.workflows.start("order", "o-twice", {**ORDER, "cents": 1})

    assert conflict.value.workflow_id == wid

    assert (again.workflow_id, again.created) == (wid, False)
    finished(system.workflows, wid)
    assert fake.actions(wid) == ["charge", "reserve", "ship"]


def test_a_start_that_breaks_the_definitions_schema_records_nothing(
        system: System, fake: FakeParticipants) -> None:
    with pytest.raises(InvalidInput) as invalid:
        system.workflows.start("order", "o-bad", {**ORDER, "cents": 12.5, "extra": 1})

    paths = {path for path, _ in invalid.value.errors}
    assert {"cents", "extra"} <= paths
    assert system.workflows.recorder.max_notification_id() in (None, 0)
    assert fake.calls == []


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
        shipped = next(e for e in stored(second, wid) if event_type(e) == "Shipped")
        answered = next(m.outcome for m in after.made if m.call.workflow_id == str(wid))
        assert isinstance(answered, Succeeded)
        assert shipped.result == {"shipmentId": answered.result["shipmentId"]}  # the new call
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
    api.stop()
    after = FakeParticipants()

    second = harness.boot(after)

    assert finished(second.workflows, wid).status == "CANCELLED"
    assert before.actions(wid) == ["charge", "reserve"]
    assert "release" in after.actions(wid)  # today: only ["refund"]


def test_a_worker_drives_only_the_shards_it_holds_and_resumes_one_it_takes_back(
        system: System, fake: FakeParticipants) -> None:
    assert system.orchestrator is not None
    shard_of = system.orchestrator.shard_of
    here, away = "o-here", next(
        f"o-away-{i}" for i in range(100)
        if shard_of(Workflow.create_id("order", f"o-away-{i}")) !=
        shard_of(Workflow.create_id("order", "o-here")))
    shard = shard_of(Workflow.create_id("order", away))
    system.give_up_shard(shard)  # as when another worker takes it over

    parked, driven = start(system, away), start(system, here)

    assert finished(system.workflows, driven).status == "COMPLETED"
    assert fake.actions(parked) == [] and shard not in system.orchestrator.owned()
    system.take_shard(shard)  # it comes back: driven from the shard's recorded position
    assert finished(system.workflows, parked).status == "COMPLETED"
    assert fake.actions(parked) == ["charge", "reserve", "ship"]
    assert fake.actions(driven) == ["charge", "reserve", "ship"]


def test_a_drive_that_ends_after_its_shard_was_let_go_is_driven_when_it_comes_back(
        system: System, fake: FakeParticipants) -> None:
    """As in a database outage: the worker lets go of its shards while a call is in flight;
    the call comes back unmade (its participant unavailable), and the drive books a look for
    later that it may no longer take. Once the shard is back the workflow is driven again."""
    assert system.orchestrator is not None
    # a look booked far beyond the test: only driving the workflow anew can finish it
    fake.script("charge", [Unavailable("payment: could not read its limits", retry_in=60)])
    fake.block("charge")
    wid = start(system, "o-let-go")
    fake.wait_blocked("charge")
    shard = system.orchestrator.shard_of(wid)
    system.give_up_shard(shard, grace_s=0)
    fake.release("charge")
    wait_until(lambda: system.orchestrator is not None and not system.orchestrator.busy(), 5,
               what="the drive under way to end")

    system.take_shard(shard)
    assert finished(system.workflows, wid).status == "COMPLETED"
    assert fake.actions(wid) == ["charge", "charge", "reserve", "ship"]


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
    assert system.views.search(Search(definition="order", key="o-b")).items == [
        views[completed]]
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


# --- the interpreter: the trip (definitions/trip.yaml) and definitions of the tests' own --------


TRIP: dict[str, Any] = {"travellerId": "tr-1", "from": "LHR", "to": "JFK", "cents": 50_000,
                        "dates": {"depart": "2027-01-10", "return": "2027-01-17"}}


def start_trip(system: System, trip_id: str, **changes: Any) -> uuid.UUID:
    started = system.workflows.start("trip", trip_id, {**TRIP, **changes})
    assert started.created
    return started.workflow_id


def register(system: System, text: str) -> None:
    system.definitions.register(yaml.safe_load(text))


def test_the_trips_branches_are_called_at_once_and_it_completes(
        system: System, fake: FakeParticipants) -> None:
    fake.block("flight")
    fake.block("hotel")
    wid = start_trip(system, "t-1")

    fake.wait_blocked("flight")  # both held by the participants together:
    fake.wait_blocked("hotel")  # both calls are in flight at once
    assert sorted(fake.actions(wid)) == ["flight", "hotel"]
    fake.release("hotel")
    fake.release("flight")

    assert finished(system.workflows, wid).status == "COMPLETED"
    assert fake.actions(wid)[2:] == ["charge", "confirm"]  # no car asked for, no approval
    flight = fake.calls_for(wid, "flight")[0]
    assert (flight.participant, flight.path, flight.body) == ("flights", "/flights/bookings", {
        "tripId": "t-1", "travellerId": "tr-1", "from": "LHR", "to": "JFK",
        "depart": "2027-01-10", "return": "2027-01-17", "travellers": 1,
        "idempotencyKey": f"{wid}:flight"})
    confirm = fake.calls_for(wid, "confirm")[0]
    assert confirm.participant == "notify"
    assert {k: confirm.body[k] for k in ("flight", "hotel", "car", "payment", "approvedBy")} == {
        "flight": "flt-1", "hotel": "htl-1", "car": None, "payment": "pay-1", "approvedBy": None}
    kinds = types(system, wid)
    assert sorted(kinds[1:3]) == ["FlightBooked", "HotelBooked"]
    assert kinds[3:] == ["StepSkipped", "StepSkipped", "Charged", "Confirmed", "Completed"]
    view = projected(system, wid)
    assert {k: view[k] for k in ("status", "definition", "key", "tripId", "flightBookingId",
                                 "hotelBookingId", "carBookingId", "paymentId",
                                 "notificationId")} == {
        "status": "COMPLETED", "definition": "trip", "key": "t-1", "tripId": "t-1",
        "flightBookingId": "flt-1", "hotelBookingId": "htl-1", "carBookingId": None,
        "paymentId": "pay-1", "notificationId": "ntf-1"}
    assert_one_key_per_action(fake)


def test_a_branch_rejected_while_its_sibling_is_in_flight_lets_it_finish_then_undoes_it(
        system: System, fake: FakeParticipants) -> None:
    fake.block("hotel")
    fake.script("flight", [Rejected(422, "no seats")])
    wid = start_trip(system, "t-noseat")
    fake.wait_blocked("hotel")

    wait_until(lambda: "StepFailed" in types(system, wid), 5, what="the flight's rejection")
    held = system.workflows.load(wid)
    assert held.status == "STARTED" and "flight" in held.failed  # not compensating yet:
    assert sorted(fake.actions(wid)) == ["flight", "hotel"]  # the hotel is still booking
    fake.release("hotel")

    workflow = finished(system.workflows, wid)
    assert (workflow.status, workflow.error) == ("FAILED", "flight: rejected (422): no seats")
    assert fake.actions(wid)[2:] == ["cancel_hotel"]  # nothing else: no flight to cancel
    assert fake.calls_for(wid, "cancel_hotel")[0].path == "/hotels/bookings/htl-1/cancel"
    assert types(system, wid) == ["Started", "StepFailed", "HotelBooked", "CompensationStarted",
                                  "Compensated", "Failed"]
    view = projected(system, wid)
    assert (view["status"], view["hotelBookingId"], view["flightBookingId"]) == (
        "FAILED", "htl-1", None)
    assert view["error"] == "flight: rejected (422): no seats"


def test_a_cancel_with_both_branches_in_flight_undoes_both_once_they_answer(
        system: System, fake: FakeParticipants) -> None:
    fake.block("flight")
    fake.block("hotel")
    wid = start_trip(system, "t-cancel")
    fake.wait_blocked("flight")
    fake.wait_blocked("hotel")

    system.workflows.cancel(wid)
    compensating = status_is(system, wid, "COMPENSATING")
    assert sorted(compensating.uncertain) == ["flight", "hotel"]
    fake.release("flight")
    fake.release("hotel")

    assert finished(system.workflows, wid).status == "CANCELLED"
    assert fake.actions(wid)[2:] == ["cancel_hotel", "cancel_flight"]  # in reverse
    assert fake.calls_for(wid, "cancel_flight")[0].path == "/flights/bookings/flt-1/cancel"
    assert types(system, wid)[-3:] == ["Compensated", "Compensated", "Cancelled"]


def test_a_wait_for_approval_resumes_on_its_signal_and_a_repeated_signal_is_recorded_once(
        system: System, fake: FakeParticipants) -> None:
    wid = start_trip(system, "t-big", cents=250_000)  # above 1,000.00: an approver must say

    status_is(system, wid, "WAITING")
    assert sorted(fake.actions(wid)) == ["flight", "hotel"]  # nothing charged yet
    assert projected(system, wid)["status"] == "WAITING"
    fake.block("charge")
    system.workflows.signal(wid, "approve", {"by": "ops-1"})
    fake.wait_blocked("charge")
    system.workflows.signal(wid, "approve", {"by": "ops-1"})  # delivered twice
    system.workflows.signal(wid, "approve", {"by": "someone-else"})
    fake.release("charge")

    assert finished(system.workflows, wid).status == "COMPLETED"
    kinds = types(system, wid)
    assert kinds.count("Signalled") == 1 and kinds.count("Approved") == 1
    assert kinds.index("Waiting") < kinds.index("Signalled") < kinds.index("Approved")
    assert fake.calls_for(wid, "confirm")[0].body["approvedBy"] == "ops-1"
    view = projected(system, wid)
    assert view["results"]["approval"] == {"by": "ops-1"}


def test_a_denied_approval_undoes_the_bookings_and_fails(
        system: System, fake: FakeParticipants) -> None:
    wid = start_trip(system, "t-denied", cents=250_000)
    status_is(system, wid, "WAITING")

    system.workflows.signal(wid, "deny", {"by": "ops-2"})

    workflow = finished(system.workflows, wid)
    assert (workflow.status, workflow.error) == ("FAILED", "approval: rejected by signal 'deny'")
    assert fake.actions(wid)[2:] == ["cancel_hotel", "cancel_flight"]
    with pytest.raises(InvalidTransition):
        system.workflows.signal(wid, "approve", {"by": "too-late"})


def test_a_signal_that_comes_before_its_wait_is_kept_for_it(
        system: System, fake: FakeParticipants) -> None:
    fake.block("flight")
    wid = start_trip(system, "t-early", cents=250_000)
    fake.wait_blocked("flight")

    system.workflows.signal(wid, "approve", {"by": "ops-3"})
    fake.release("flight")

    assert finished(system.workflows, wid).status == "COMPLETED"
    assert "Waiting" not in types(system, wid)


HOLD = """
name: hold
description: Hold a room, then wait for a go.
key: holdRef
input: {type: object}
participants: {rooms: {}}
steps:
  - name: hold
    participant: rooms
    call: {path: /holds, body: {id: "${key}"}}
    keep: {holdId: holdId}
    undo: {name: unhold, path: "/holds/${steps.hold.holdId}/release"}
  - name: go
    wait: {signal: go, reject: stop, timeout_s: 0.3}
"""


def test_a_wait_that_times_out_is_compensated_and_fails(
        system: System, fake: FakeParticipants) -> None:
    register(system, HOLD)
    fake.always("hold", Succeeded({"holdId": "h/1"}))
    wid = system.workflows.start("hold", "h-1", {}).workflow_id

    workflow = finished(system.workflows, wid, timeout=5)

    assert (workflow.status, workflow.error) == ("FAILED", "go: no signal 'go' within 0.3 s")
    assert fake.actions(wid) == ["hold", "unhold"]
    assert fake.calls_for(wid, "unhold")[0].path == "/holds/h%2F1/release"
    assert types(system, wid) == ["Started", "StepSucceeded", "Waiting", "StepFailed",
                                  "CompensationStarted", "Compensated", "Failed"]
    events = {event_type(e): e for e in stored(system, wid)}
    waited = events["StepFailed"].timestamp - events["Waiting"].timestamp
    assert waited.total_seconds() >= 0.29
    assert projected(system, wid)["holdId"] == "h/1"


RUSH = """
name: rush
description: Book, then pay, all within half a second.
key: rushId
input: {type: object}
participants: {desk: {}}
deadline_s: 0.5
steps:
  - name: book
    participant: desk
    call: {path: /bookings, body: {id: "${key}"}}
    keep: {bookingId: bookingId}
    undo: {name: unbook, path: "/bookings/${steps.book.bookingId}/cancel"}
  - name: pay
    participant: desk
    call: {path: /payments, body: {id: "${key}"}}
    keep: {paymentId: paymentId}
    undo: {name: unpay, path: "/payments/${steps.pay.paymentId}/refund"}
"""


def test_a_deadline_during_a_call_records_its_outcome_then_undoes_everything(
        system: System, fake: FakeParticipants) -> None:
    register(system, RUSH)
    fake.always("book", Succeeded({"bookingId": "b-1"}))
    fake.script("pay", [Succeeded({"paymentId": "p-1"})])
    fake.block("pay")
    wid = system.workflows.start("rush", "r-1", {}).workflow_id
    fake.wait_blocked("pay")
    deadline = system.workflows.load(wid).created_on.timestamp() + 0.5

    wait_until(lambda: time.time() > deadline + 0.2, 5, what="the deadline to pass")
    held = system.workflows.load(wid)  # nothing is decided while the payment is out:
    assert (held.status, fake.actions(wid)) == ("STARTED", ["book", "pay"])  # its answer will
    fake.release("pay")

    workflow = finished(system.workflows, wid, timeout=5)
    assert (workflow.status, workflow.error) == ("FAILED", "deadline exceeded")
    assert fake.actions(wid) == ["book", "pay", "unpay", "unbook"]  # the late payment too
    assert fake.calls_for(wid, "unpay")[0].path == "/payments/p-1/refund"
    assert types(system, wid) == ["Started", "StepSucceeded", "StepSucceeded",
                                  "CompensationStarted", "Compensated", "Compensated", "Failed"]
    view = projected(system, wid)
    assert (view["status"], view["error"], view["paymentId"]) == (
        "FAILED", "deadline exceeded", "p-1")


def test_a_deadline_between_calls_undoes_what_was_done(
        system: System, fake: FakeParticipants) -> None:
    """The deadline comes while the next call waits out its backoff: it is looked at then,
    not when the (far later) retry would be due."""
    register(system, RUSH)
    fake.always("book", Succeeded({"bookingId": "b-2"}))
    fake.always("pay", Transient("busy", status=429, retry_after=30, maybe_applied=False))
    wid = system.workflows.start("rush", "r-2", {}).workflow_id

    workflow = finished(system.workflows, wid, timeout=5)

    assert (workflow.status, workflow.error) == ("FAILED", "deadline exceeded")
    assert fake.actions(wid) == ["book", "pay", "unbook"]  # the payment surely did nothing


def test_a_restart_with_both_branches_in_flight_asks_both_again_and_books_each_once(
        harness: Harness) -> None:
    before = FakeParticipants()
    first = harness.boot(before)
    before.block("flight")
    before.block("hotel")
    wid = start_trip(first, "t-crash")
    before.wait_blocked("flight")
    before.wait_blocked("hotel")
    assert harness.stop(first, grace_s=0.1) is False

    after = FakeParticipants()
    second = harness.boot(after)

    assert finished(second.workflows, wid).status == "COMPLETED"
    assert sorted(after.actions(wid)[:2]) == ["flight", "hotel"]  # asked again, same keys
    assert after.actions(wid)[2:] == ["charge", "confirm"]
    kinds = types(second, wid)
    assert [kinds.count(k) for k in ("FlightBooked", "HotelBooked", "Charged")] == [1, 1, 1]
    assert_one_key_per_action(after)


def test_a_cancel_while_a_branch_waits_for_its_participant_asks_that_branch_nothing(
        system: System, fake: FakeParticipants) -> None:
    """No FLIGHTS_URL (say): the flight's calls wait, unmade. A cancel then undoes the hotel and
    ends; the flight was never called, so there is no doubt to settle with a participant that
    cannot be reached."""
    fake.always("flight", Unavailable("participant flights has no FLIGHTS_URL configured",
                                      retry_in=0.05))
    wid = start_trip(system, "t-nourl")
    wait_until(lambda: "HotelBooked" in types(system, wid)
               and len(fake.calls_for(wid, "flight")) >= 3, 5, what="the flight to wait")
    assert system.workflows.load(wid).status == "HOTEL_BOOKED"  # waiting, not failing

    system.workflows.cancel(wid)

    workflow = finished(system.workflows, wid, timeout=5)
    assert (workflow.status, workflow.uncertain) == ("CANCELLED", [])
    assert "cancel_hotel" in fake.actions(wid) and "cancel_flight" not in fake.actions(wid)
    assert "StepFailed" not in types(system, wid)  # waiting used up no attempt


def test_a_cancel_before_any_call_could_be_made_ends_without_asking_again(
        system: System, fake: FakeParticipants) -> None:
    """The charge has waited for its participant since the start (no call made, nothing
    recorded): a cancel ends the workflow at once, with no doubt to settle."""
    fake.always("charge", Unavailable("participant payment has no PAYMENT_URL configured",
                                      retry_in=0.05))
    wid = start(system, "o-nourl")
    wait_until(lambda: len(fake.calls_for(wid, "charge")) >= 3, 5, what="the charge to wait")

    system.workflows.cancel(wid)

    workflow = finished(system.workflows, wid, timeout=5)
    assert (workflow.status, workflow.uncertain) == ("CANCELLED", [])
    assert set(fake.actions(wid)) == {"charge"}
    assert types(system, wid) == ["Started", "CancelRequested", "CompensationStarted",
                                  "Cancelled"]
