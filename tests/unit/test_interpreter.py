"""The Workflow aggregate interpreting definitions beyond a straight line: parallel groups,
`when`, waits for signals, deadlines, steps without undo. (The order saga's straight line is
in test_workflow.py.)"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from domain.definitions import Definition, compile_definition
from domain.workflow import Due, InvalidTransition, Plan, UnknownSignal, Workflow

BUNDLED = Path(__file__).resolve().parents[2] / "definitions"
MAX = 3
T0 = 1_000_000_000.0  # "now" in these tests; the workflow's own clock is its Started time


def definition(name: str) -> Definition:
    return compile_definition(yaml.safe_load((BUNDLED / f"{name}.yaml").read_text()))


TRIP = definition("trip")
TRIP_INPUT: dict[str, Any] = {"from": "LHR", "to": "JFK", "cents": 50_000,
                              "dates": {"depart": "2027-01-10", "return": "2027-01-17"}}


def trip(**changes: Any) -> Workflow:
    workflow = Workflow(definition="trip", definition_version=1, key="t-1",
                        input={**TRIP_INPUT, **changes})
    return workflow


def names(workflow: Workflow) -> list[str]:
    """The audit names of the events collected since the last call (and forgets them)."""
    return [getattr(e, "name", None) or type(e).__name__ for e in workflow.collect_events()]


def plan(workflow: Workflow, now: float | None = None) -> Plan:
    return workflow.advance(TRIP, workflow.created_on.timestamp() if now is None else now)


def actions(p: Plan) -> list[str]:
    return [d.action for d in p.dues]


def succeed(workflow: Workflow, due: Due, **kept: Any) -> None:
    body = kept or {"bookingId": f"{due.action}-1", "paymentId": "pay-1",
                    "notificationId": "n-1"}
    workflow.succeed(TRIP, due.action, due.attempt,
                     due.keeps.extract(body) if due.keeps is not None else {})


def reject(workflow: Workflow, due: Due) -> None:
    workflow.fail(TRIP, due.action, due.attempt, "no", retryable=False, uncertain=False,
                  max_attempts=MAX, retry_at=None)


def due_of(p: Plan, action: str) -> Due:
    return next(d for d in p.dues if d.action == action)


# --- parallel groups ------------------------------------------------------------------------

def test_a_parallel_group_makes_both_calls_at_once_and_goes_on_when_both_succeed() -> None:
    workflow = trip()
    first = plan(workflow)
    assert actions(first) == ["flight", "hotel"]
    assert first.dues[0].call.path == "/flights/bookings"
    assert first.dues[0].call.body["tripId"] == "t-1"
    succeed(workflow, due_of(first, "hotel"))
    assert actions(plan(workflow)) == ["flight"]  # the hotel is done; the flight still due
    succeed(workflow, due_of(first, "flight"))

    after = plan(workflow)
    assert actions(after) == ["charge"]  # no car asked for, under the approval threshold
    assert workflow.skipped == ["car", "approval"]
    assert names(workflow) == ["Started", "HotelBooked", "FlightBooked", "StepSkipped",
                               "StepSkipped"]


def test_a_failed_branch_lets_its_sibling_finish_then_undoes_it_and_fails() -> None:
    workflow = trip()
    first = plan(workflow)
    reject(workflow, due_of(first, "flight"))
    assert workflow.status != "COMPENSATING"  # the hotel is still in flight
    assert actions(plan(workflow)) == ["hotel"]

    succeed(workflow, due_of(first, "hotel"))
    undo = plan(workflow)  # the group has finished: now it turns
    assert workflow.status == "COMPENSATING"
    assert actions(undo) == ["cancel_hotel"]
    assert undo.dues[0].call.path == "/hotels/bookings/hotel-1/cancel"
    workflow.succeed(TRIP, "cancel_hotel", 1, {})
    assert plan(workflow) == Plan()
    assert workflow.status == "FAILED" and workflow.error == "flight: no"
    assert workflow.undone == ["hotel"]


def test_both_branches_failing_undo_nothing_of_the_group() -> None:
    workflow = trip()
    first = plan(workflow)
    reject(workflow, due_of(first, "flight"))
    reject(workflow, due_of(first, "hotel"))
    assert plan(workflow) == Plan()
    assert workflow.status == "FAILED" and workflow.undone == []


# --- when --------------------------------------------------------------------------------

def test_a_step_runs_only_when_its_expression_is_truthy_and_a_skipped_one_is_never_undone(
        ) -> None:
    workflow = trip(car=True)
    first = plan(workflow)
    for due in first.dues:
        succeed(workflow, due)
    car = plan(workflow)
    assert actions(car) == ["car"]
    succeed(workflow, car.dues[0])
    charge = plan(workflow)
    reject(workflow, charge.dues[0])
    undone = []
    while (p := plan(workflow)).dues:
        undone.append(p.dues[0].action)
        workflow.succeed(TRIP, p.dues[0].action, 1, {})
    assert undone == ["cancel_car", "cancel_hotel", "cancel_flight"]
    assert workflow.status == "FAILED" and "approval" in workflow.skipped


# --- waits and signals ---------------------------------------------------------------------

def booked(workflow: Workflow) -> None:
    for due in plan(workflow).dues:
        succeed(workflow, due)


def test_a_wait_holds_the_workflow_until_its_signal_then_keeps_its_body() -> None:
    workflow = trip(cents=500_000)
    booked(workflow)
    now = workflow.created_on.timestamp()
    waiting = plan(workflow, now)
    assert waiting.dues == () and workflow.status == "WAITING"
    assert waiting.wake_at == now + TRIP.step("approval").timeout_s  # type: ignore[union-attr]
    workflow.signal(TRIP, "approve", {"by": "manager"})

    assert actions(plan(workflow, now + 1)) == ["charge"]
    assert workflow.results["approval"] == {"by": "manager"}
    assert workflow.status == "APPROVED"
    assert names(workflow)[-3:] == ["Waiting", "Signalled", "Approved"]


def test_a_signal_that_comes_before_its_step_is_kept_for_it() -> None:
    workflow = trip(cents=500_000)
    workflow.signal(TRIP, "approve", {"ok": True})
    booked(workflow)
    assert actions(plan(workflow)) == ["charge"]
    assert "Waiting" not in names(workflow)


def test_the_same_signal_twice_is_recorded_once_and_the_other_answer_is_refused() -> None:
    workflow = trip(cents=500_000)
    booked(workflow)
    plan(workflow)
    names(workflow)
    workflow.signal(TRIP, "approve", {})
    workflow.signal(TRIP, "approve", {"again": 1})
    assert names(workflow) == ["Signalled"]
    with pytest.raises(InvalidTransition):
        workflow.signal(TRIP, "deny", {})
    with pytest.raises(UnknownSignal):
        workflow.signal(TRIP, "nonsense", {})


def test_a_reject_signal_fails_the_wait_for_good_and_undoes_the_bookings() -> None:
    workflow = trip(cents=500_000)
    booked(workflow)
    plan(workflow)
    workflow.signal(TRIP, "deny", {"why": "too dear"})
    undo = plan(workflow)
    assert workflow.status == "COMPENSATING"
    assert sorted(actions(undo)) in (["cancel_hotel"], ["cancel_flight"])
    assert "deny" in (workflow.error or "")


def test_a_wait_that_times_out_fails_and_a_late_signal_is_refused() -> None:
    workflow = trip(cents=500_000)
    booked(workflow)
    now = workflow.created_on.timestamp()
    waiting = plan(workflow, now)
    assert waiting.wake_at is not None
    plan(workflow, waiting.wake_at)  # the timer fired: no signal came
    assert workflow.status == "COMPENSATING"
    with pytest.raises(InvalidTransition):
        workflow.signal(TRIP, "approve", {})


# --- the deadline ----------------------------------------------------------------------------

def test_a_workflow_past_its_deadline_compensates_at_its_next_decision() -> None:
    workflow = trip()
    first = plan(workflow)
    assert first.wake_at == workflow.created_on.timestamp() + TRIP.deadline_s  # type: ignore
    succeed(workflow, due_of(first, "flight"))
    succeed(workflow, due_of(first, "hotel"))  # a call that was in flight when time ran out
    late = plan(workflow, workflow.created_on.timestamp() + TRIP.deadline_s)  # type: ignore
    assert workflow.status == "COMPENSATING" and workflow.error == "deadline exceeded"
    assert actions(late) in (["cancel_hotel"], ["cancel_flight"])


# --- a step without undo -----------------------------------------------------------------

def test_a_step_without_undo_is_not_compensated() -> None:
    workflow = trip()
    booked(workflow)
    succeed(workflow, plan(workflow).dues[0])  # charge
    confirm = plan(workflow)
    assert actions(confirm) == ["confirm"]
    succeed(workflow, confirm.dues[0])
    assert plan(workflow) == Plan() and workflow.status == "COMPLETED"
