"""The console's reading of a workflow: each step's state and the timeline's bars and marks,
from the audit entries of real Workflow aggregates of the bundled `order` and `trip`
definitions (only the entries' timestamps are set, to known instants)."""
from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from application.views import AuditEntry, iso
from console.saga import STATES, Bar, Timeline, parse_time, step_states, timeline
from domain.workflow import Workflow
from tests.histories import (
    ORDER,
    answer,
    bundled,
    kept,
    order,
    settle,
)

TRIP = bundled("trip")
T0 = datetime(2026, 12, 2, 17, 44, 7, 123456, tzinfo=UTC)
MAX = 3


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def epoch(seconds: float) -> float:
    return at(seconds).timestamp()


def entries(workflow: Workflow, times: Sequence[float] | None = None) -> list[AuditEntry]:
    """The audit entries of the events the workflow collected, the n-th at T0 + times[n]
    seconds (one second apart when not given)."""
    found = [AuditEntry.of(e) for e in workflow.collect_events()]
    times = list(range(len(found))) if times is None else list(times)
    assert len(times) == len(found), [e.type for e in found]
    return [dataclasses.replace(e, timestamp=iso(at(t))) for e, t in zip(found, times,
                                                                          strict=True)]


def lane(tl: Timeline, name: str) -> list[tuple[str, str, datetime, datetime]]:
    return [(b.kind, b.outcome, b.start, b.end) for b in tl.bars if b.lane == name]


def trip(workflow_input: dict[str, Any] | None = None) -> Workflow:
    return Workflow(definition="trip", definition_version=1, key="t-1", input={
        "from": "LHR", "to": "JFK", "cents": 50_000,
        "dates": {"depart": "2027-01-10", "return": "2027-01-17"}, **(workflow_input or {})})


def advance(workflow: Workflow) -> list[Any]:
    return list(workflow.advance(TRIP, workflow.created_on.timestamp()).dues)


def succeed(workflow: Workflow, *dues: Any) -> None:
    for due in dues:
        workflow.succeed(TRIP, due.action, due.attempt, kept(due, f"{due.action}-1"))


def booked_and_waiting() -> Workflow:
    """Flight and hotel booked (the hotel first), the car skipped, approval awaited."""
    workflow = trip({"cents": 500_000})
    flight, hotel = advance(workflow)
    succeed(workflow, hotel, flight)
    assert advance(workflow) == [] and workflow.status == "WAITING"
    return workflow


# --- step states ------------------------------------------------------------------------

def test_every_step_has_one_known_state_in_the_definitions_order() -> None:
    workflow = trip()
    states = step_states(TRIP, entries(workflow), "STARTED")
    assert list(states) == ["flight", "hotel", "car", "approval", "charge", "confirm"]
    assert set(states.values()) <= set(STATES)


def test_a_completed_order_is_done_throughout() -> None:
    workflow = order("o-1")
    for _ in range(3):
        answer(workflow)
    settle(workflow)
    assert step_states(ORDER, entries(workflow), "COMPLETED") == {
        "charge": "done", "reserve": "done", "ship": "done"}


def test_a_failed_order_shows_the_charge_done_then_undone_and_the_reserve_failed() -> None:
    workflow = order("o-2")
    answer(workflow)
    charged = entries(workflow)
    assert step_states(ORDER, charged, "CHARGED") == {
        "charge": "done", "reserve": "running", "ship": "pending"}

    answer(workflow, ok=False, error="rejected (422): out of stock")
    answer(workflow)  # the refund
    settle(workflow)
    trail = charged + entries(workflow, [2, 3, 4, 5])
    assert step_states(ORDER, trail, "FAILED") == {
        "charge": "undone", "reserve": "failed", "ship": "pending"}

    tl = timeline(ORDER, trail, at(100))
    assert lane(tl, "charge") == [("call", "ok", at(0), at(1)), ("undo", "ok", at(3), at(4))]
    assert lane(tl, "reserve") == [("call", "failed", at(1), at(2))]
    refund = [b for b in tl.bars if b.kind == "undo"]
    assert [(b.lane, b.outcome, b.detail[0]) for b in refund] == [
        ("charge", "ok", ("action", "refund"))]
    assert tl.lanes == ("charge", "reserve")  # ship never ran: no lane
    assert tl.end == parse_time(trail[-1].timestamp)  # ended: `now` plays no part


def compensation_failed(workflow: Workflow) -> None:
    """Charged, reserve rejected, the refund failing (5xx) on each of its attempts."""
    answer(workflow)
    answer(workflow, ok=False, error="rejected (422): out of stock")
    for n in range(MAX):
        answer(workflow, ok=False, retryable=True, error="503: payment down",
               retry_at=epoch(4 + n) if n < MAX - 1 else None)


def test_a_compensation_that_failed_leaves_the_undo_owed_and_a_retry_keeps_it_owed() -> None:
    workflow = order("o-3")
    compensation_failed(workflow)
    trail = entries(workflow)
    assert [e.type for e in trail] == [
        "Started", "Charged", "StepFailed", "CompensationStarted", "StepFailed", "StepFailed",
        "StepFailed", "CompensationFailed"]
    assert step_states(ORDER, trail, "COMPENSATION_FAILED") == {
        "charge": "owed", "reserve": "failed", "ship": "pending"}

    workflow.request_retry(by="ops", reason="payment is back")
    trail += entries(workflow, [len(trail)])
    assert step_states(ORDER, trail, "COMPENSATING") == {
        "charge": "owed", "reserve": "failed", "ship": "pending"}
    tl = timeline(ORDER, trail, at(len(trail) + 2))
    undos = [(b.outcome, b.attempt) for b in tl.bars if b.kind == "undo"]
    assert undos == [("retry", 1), ("retry", 2), ("failed", 3), ("running", 4)]
    assert [(m.kind, m.label) for m in tl.marks] == [
        ("started", "started"), ("ended", "compensation failed"), ("retry", "retry by ops")]
    running = tl.bars[-1]
    assert running.start == at(len(trail) - 1) and running.end == at(len(trail) + 2)


def test_a_trip_awaiting_approval_shows_it_waiting_and_the_car_skipped() -> None:
    workflow = booked_and_waiting()
    trail = entries(workflow)
    assert step_states(TRIP, trail, "WAITING") == {
        "flight": "done", "hotel": "done", "car": "skipped", "approval": "waiting",
        "charge": "pending", "confirm": "pending"}


def test_a_step_in_doubt_without_undo_stays_in_doubt_after_the_rest_is_undone() -> None:
    workflow = trip()
    succeed(workflow, *advance(workflow))
    succeed(workflow, *advance(workflow))  # the charge (car and approval skipped)
    confirm = advance(workflow)[0]
    workflow.fail(TRIP, confirm.action, confirm.attempt, "timed out", retryable=True,
                  uncertain=True, max_attempts=1, retry_at=None)
    while dues := advance(workflow):
        succeed(workflow, *dues)
    assert workflow.status == "FAILED"
    assert step_states(TRIP, entries(workflow), "FAILED") == {
        "flight": "undone", "hotel": "undone", "car": "skipped", "approval": "skipped",
        "charge": "undone", "confirm": "doubt"}


def test_a_doubtful_step_with_an_undo_is_owed_until_a_clear_no_settles_it() -> None:
    workflow = order("o-4")
    for _ in range(MAX):
        answer(workflow, ok=False, retryable=True, uncertain=True, error="timed out",
               retry_at=epoch(0))
    assert workflow.status == "COMPENSATING"
    trail = entries(workflow)
    assert step_states(ORDER, trail, "COMPENSATING")["charge"] == "owed"

    asked_again = answer(workflow, ok=False, error="rejected (422): card declined")
    assert asked_again.action == "charge"  # under the same key, not the refund
    settle(workflow)
    trail += entries(workflow, [len(trail), len(trail) + 1])
    assert step_states(ORDER, trail, "FAILED")["charge"] == "failed"


def test_a_call_under_way_is_running_up_to_now() -> None:
    workflow = order("o-5")
    answer(workflow)
    tl = timeline(ORDER, entries(workflow, [0, 1.5]), at(4))
    assert lane(tl, "reserve") == [("call", "running", at(1.5), at(4))]
    assert tl.end == at(4)


def test_legacy_successes_name_their_step_by_their_type() -> None:
    workflow_id = str(uuid.uuid4())
    trail = [AuditEntry(workflow_id, 1, "Started", iso(at(0)), {"orderId": "legacy"}),
             AuditEntry(workflow_id, 2, "Charged", iso(at(1)),
                        {"paymentId": "pay-1", "attempt": 1, "cents": None}),
             AuditEntry(workflow_id, 3, "Reserved", iso(at(2.5)),
                        {"reservationId": "res-1", "attempt": 1})]
    assert step_states(ORDER, trail, "RESERVED") == {
        "charge": "done", "reserve": "done", "ship": "running"}
    tl = timeline(ORDER, trail, at(3))
    assert lane(tl, "reserve") == [("call", "ok", at(1), at(2.5))]


# --- timeline ---------------------------------------------------------------------------

def test_a_charge_that_failed_twice_then_succeeded_has_three_attempts_and_two_backoffs() -> None:
    workflow = order("o-6")
    answer(workflow, ok=False, retryable=True, error="503: busy", retry_at=epoch(2))
    answer(workflow, ok=False, retryable=True, error="503: busy", retry_at=epoch(4.5))
    answer(workflow)
    trail = entries(workflow, [0, 1, 3, 6])

    tl = timeline(ORDER, trail, at(7))
    assert lane(tl, "charge") == [
        ("call", "retry", at(0), at(1)),
        ("backoff", "retry", at(1), at(2)),
        ("call", "retry", at(2), at(3)),
        ("backoff", "retry", at(3), at(4.5)),
        ("call", "ok", at(4.5), at(6)),
    ]
    calls = [b for b in tl.bars if b.lane == "charge" and b.kind == "call"]
    assert [b.attempt for b in calls] == [1, 2, 3]
    assert tl.start == at(0)


def test_a_bar_lists_its_details_in_order() -> None:
    workflow = order("o-7")
    answer(workflow, ok=False, retryable=True, error="503: busy", retry_at=epoch(2))
    trail = entries(workflow, [0, 1])
    first = timeline(ORDER, trail, at(1.5)).bars[0]
    workflow_id = trail[0].workflow_id
    assert first == Bar(
        lane="charge", kind="call", start=at(0), end=at(1), outcome="retry", attempt=1,
        label="charge attempt 1: retry",
        detail=(("action", "charge"), ("attempt", "1"), ("outcome", "retry"),
                ("error", "503: busy"), ("started", iso(at(0))), ("ended", iso(at(1))),
                ("duration", "1.000 s"), ("idempotency key", f"{workflow_id}:charge"),
                ("trace id", uuid.UUID(workflow_id).hex)))


def test_a_backoff_still_under_way_ends_at_the_retry_time_and_nothing_runs_yet() -> None:
    workflow = order("o-8")
    answer(workflow, ok=False, retryable=True, error="503: busy", retry_at=epoch(10))
    tl = timeline(ORDER, entries(workflow, [0, 1]), at(3))
    assert lane(tl, "charge") == [("call", "retry", at(0), at(1)),
                                  ("backoff", "retry", at(1), at(10))]


def test_an_operator_retry_cuts_a_backoff_short() -> None:
    workflow = order("o-9")
    answer(workflow, ok=False, retryable=True, error="503: busy", retry_at=epoch(60))
    workflow.request_retry(by="ops", reason="now")
    answer(workflow)
    tl = timeline(ORDER, entries(workflow, [0, 1, 2, 3]), at(4))
    assert lane(tl, "charge") == [("call", "retry", at(0), at(1)),
                                  ("backoff", "retry", at(1), at(2)),
                                  ("call", "ok", at(2), at(3))]
    assert [m.kind for m in tl.marks] == ["started", "retry"]


def test_parallel_branches_start_together_whatever_order_they_end_in() -> None:
    workflow = booked_and_waiting()
    trail = entries(workflow, [0, 2, 3.5, 3.5, 3.5])  # HotelBooked, FlightBooked, ...
    tl = timeline(TRIP, trail, at(10))
    assert lane(tl, "hotel") == [("call", "ok", at(0), at(2))]
    assert lane(tl, "flight") == [("call", "ok", at(0), at(3.5))]
    assert lane(tl, "approval") == [("wait", "waiting", at(3.5), at(10))]
    assert tl.lanes == ("flight", "hotel", "approval")  # the skipped car has no lane


def test_a_signal_ends_the_wait_and_is_marked() -> None:
    workflow = booked_and_waiting()
    workflow.signal(TRIP, "approve", {"by": "manager"})
    workflow.advance(TRIP, workflow.created_on.timestamp())
    trail = entries(workflow, [0, 1, 2, 2, 2, 8, 8])
    tl = timeline(TRIP, trail, at(9))
    assert lane(tl, "approval") == [("wait", "signalled", at(2), at(8))]
    signal = [m for m in tl.marks if m.kind == "signal"]
    assert [(m.at, m.label) for m in signal] == [(at(8), "signal approve")]
    assert ("body", '{"by": "manager"}') in signal[0].detail
    assert lane(tl, "charge") == [("call", "running", at(8), at(9))]


def test_a_cancel_is_marked_and_the_refund_is_an_undo_bar_in_the_charge_lane() -> None:
    workflow = order("o-10")
    answer(workflow)
    workflow.request_cancel()
    answer(workflow)  # the refund
    settle(workflow)
    trail = entries(workflow, [0, 1, 2, 3, 4, 5])
    tl = timeline(ORDER, trail, at(6))
    assert step_states(ORDER, trail, "CANCELLED")["charge"] == "undone"
    assert lane(tl, "charge") == [("call", "ok", at(0), at(1)), ("undo", "ok", at(3), at(4))]
    assert [(m.kind, m.at) for m in tl.marks] == [
        ("started", at(0)), ("cancel", at(2)), ("ended", at(5))]


def test_a_call_in_flight_at_a_cancel_is_in_doubt_then_asked_again() -> None:
    workflow = order("o-11")
    workflow.advance(ORDER, workflow.created_on.timestamp())  # the charge is due...
    workflow.request_cancel()
    workflow.advance(ORDER, workflow.created_on.timestamp(), fresh=True)  # ...and in flight
    trail = entries(workflow, [0, 1, 2])
    assert step_states(ORDER, trail, "COMPENSATING")["charge"] == "owed"
    tl = timeline(ORDER, trail, at(5))
    assert lane(tl, "charge") == [("call", "doubt", at(0), at(2)),
                                  ("call", "running", at(2), at(5))]


def test_the_same_trail_gives_the_same_timeline() -> None:
    workflow = order("o-12")
    compensation_failed(workflow)
    trail = entries(workflow)
    assert timeline(ORDER, trail, at(99)) == timeline(ORDER, list(trail), at(99))
    assert step_states(ORDER, trail, "COMPENSATION_FAILED") == step_states(
        ORDER, list(trail), "COMPENSATION_FAILED")


def test_an_empty_trail_is_an_empty_timeline() -> None:
    tl = timeline(ORDER, [], at(0))
    assert (tl.start, tl.end, tl.lanes, tl.bars, tl.marks) == (at(0), at(0), (), (), ())
