"""evolve/fold: the state view rebuilt from a real aggregate's events alone, shaped by the
definition version the workflow runs on (the bundled `order` and `trip`, compiled for real)."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from application.views import AuditEntry, Shape, cached, event_type, evolve, fold, iso
from domain.workflow import Workflow
from tests.histories import ORDER, bundled, due, kept, order, settle

MAX = 3
TRIP = bundled("trip")
DEFINITIONS = {"order": ORDER, "trip": TRIP}


def shapes(name: str, version: int) -> Shape:
    assert version == 1
    return Shape.of(DEFINITIONS[name])


def new_workflow() -> Workflow:
    return order("o-9", cents=500, skus=["a"], address="Elm St 2")


def answer(workflow: Workflow, ok: bool = True, retryable: bool = False,
           uncertain: bool = False, error: str = "no") -> None:
    found = due(workflow)
    if ok:
        workflow.succeed(ORDER, found.action, found.attempt,
                         kept(found, f"{found.action}-{found.attempt}"))
    else:
        workflow.fail(ORDER, found.action, found.attempt, error, retryable, uncertain, MAX,
                      retry_at=None if not retryable else 42.0)


def happy() -> Workflow:
    workflow = new_workflow()
    for _ in range(3):
        answer(workflow)
    settle(workflow)
    return workflow


def compensated() -> Workflow:
    """Charge succeeds, reserve fails once (5xx) then is rejected; the charge is refunded."""
    workflow = new_workflow()
    answer(workflow)
    answer(workflow, ok=False, retryable=True, uncertain=True, error="503: busy")
    answer(workflow, ok=False, error="rejected (422): out of stock")
    answer(workflow)  # the refund
    settle(workflow)
    return workflow


def cancelled() -> Workflow:
    workflow = new_workflow()
    answer(workflow)
    workflow.request_cancel()
    answer(workflow)  # the refund
    settle(workflow)
    return workflow


def compensation_failed_then_retried() -> Workflow:
    workflow = new_workflow()
    answer(workflow)
    answer(workflow)
    answer(workflow, ok=False, error="bad address")
    answer(workflow)  # release
    for _ in range(MAX):
        answer(workflow, ok=False, retryable=True, uncertain=True, error="503: down")
    assert workflow.status == "COMPENSATION_FAILED"
    workflow.request_retry(by="ops", reason="fixed")
    return workflow


def uncertain_step_done_late() -> Workflow:
    """Reserve's 5xx is given up; compensation re-asks it, it succeeds, and is undone."""
    workflow = new_workflow()
    answer(workflow)
    for _ in range(MAX):
        answer(workflow, ok=False, retryable=True, uncertain=True, error="503: busy")
    answer(workflow)  # the re-ask finds the reservation
    return workflow


def test_fold_of_a_happy_history() -> None:
    workflow = happy()
    events = workflow.collect_events()

    view = fold(events, shapes)

    assert view == {
        "workflowId": str(workflow.id), "orderId": "o-9", "status": "COMPLETED",
        "paymentId": "charge-1", "reservationId": "reserve-1", "shipmentId": "ship-1",
        "error": None, "attempts": {"charge": 1, "reserve": 1, "ship": 1},
        "createdAt": iso(events[0].timestamp), "definition": "order", "definitionVersion": 1,
        "key": "o-9", "results": {"charge": {"paymentId": "charge-1"},
                                  "reserve": {"reservationId": "reserve-1"},
                                  "ship": {"shipmentId": "ship-1"}},
        "updatedAt": iso(events[-1].timestamp), "version": 5,
    }
    # the contract's fields first, in its order; what definitions added after them
    assert list(view) == [
        "workflowId", "orderId", "status", "paymentId", "reservationId", "shipmentId", "error",
        "attempts", "createdAt", "definition", "definitionVersion", "key", "results",
        "updatedAt", "version"]


def test_fold_of_a_compensated_history() -> None:
    workflow = compensated()
    events = workflow.collect_events()

    view = fold(events, shapes)

    assert [type(e).__name__ for e in events] == [
        "Started", "StepSucceeded", "StepFailed", "StepFailed", "CompensationStarted",
        "Compensated", "Failed"]
    assert [event_type(e) for e in events] == [
        "Started", "Charged", "StepFailed", "StepFailed", "CompensationStarted", "Compensated",
        "Failed"]
    assert view == {
        "workflowId": str(workflow.id), "orderId": "o-9", "status": "FAILED",
        "paymentId": "charge-1", "reservationId": None, "shipmentId": None,
        "error": "reserve: rejected (422): out of stock",
        "attempts": {"charge": 1, "reserve": 2, "refund": 1},
        "createdAt": iso(events[0].timestamp), "definition": "order", "definitionVersion": 1,
        "key": "o-9", "results": {"charge": {"paymentId": "charge-1"}},
        "updatedAt": iso(events[-1].timestamp), "version": 7,
    }


def test_each_event_moves_the_view_on_step_by_step() -> None:
    events = happy().collect_events()
    view: dict[str, Any] | None = None
    seen = []
    for event in events:
        view = evolve(view, event, shapes)
        seen.append((view["status"], view["version"], view["updatedAt"]))

    assert seen == [(s, i + 1, iso(e.timestamp)) for i, (s, e) in enumerate(zip(
        ["STARTED", "CHARGED", "RESERVED", "SHIPPED", "COMPLETED"], events, strict=True))]


def test_evolve_leaves_the_view_it_was_given_untouched() -> None:
    events = compensated().collect_events()
    before = fold(events[:2], shapes)
    assert before is not None
    snapshot = {**before, "attempts": dict(before["attempts"]),
                "results": dict(before["results"])}

    evolve(before, events[2], shapes)
    evolve(before, events[1], shapes)  # a step's success writes `results` anew, too

    assert before == snapshot


def test_fold_of_nothing_is_none() -> None:
    assert fold([], shapes) is None


@pytest.mark.parametrize("make", [happy, compensated, cancelled,
                                  compensation_failed_then_retried, uncertain_step_done_late])
def test_fold_agrees_with_the_aggregate(make: Callable[[], Workflow]) -> None:
    workflow = make()
    view = fold(workflow.collect_events(), shapes)

    assert view is not None
    assert view["status"] == workflow.status
    assert view["version"] == workflow.version
    assert view["attempts"] == workflow.attempts
    assert view["error"] == workflow.error
    assert view["results"] == workflow.results
    ids = {"paymentId": "charge", "reservationId": "reserve", "shipmentId": "ship"}
    assert {k: view[k] for k in ids} == {
        k: workflow.results.get(s, {}).get(k) for k, s in ids.items()}


def test_a_late_success_during_compensation_keeps_the_view_compensating() -> None:
    events = uncertain_step_done_late().collect_events()
    view = fold(events, shapes)

    assert event_type(events[-1]) == "Reserved"
    assert view is not None
    assert view["status"] == "COMPENSATING" and view["reservationId"] == "reserve-4"


def test_audit_entry_names_the_event_and_hides_the_envelope() -> None:
    workflow = compensated()
    events = workflow.collect_events()

    entries = [AuditEntry.of(e) for e in events]

    assert [(a.position, a.type) for a in entries[:3]] == [
        (1, "Started"), (2, "Charged"), (3, "StepFailed")]
    assert entries[0].data == {"definition": "order", "definitionVersion": 1, "key": "o-9",
                               "input": {"cents": 500, "skus": ["a"], "address": "Elm St 2"}}
    assert entries[1].data == {"step": "charge", "name": "Charged", "status": "CHARGED",
                               "attempt": 1, "result": {"paymentId": "charge-1"}}
    assert entries[2].data == {"action": "reserve", "step": "reserve", "attempt": 1,
                               "error": "503: busy", "retryable": True, "uncertain": True,
                               "retryAt": 42.0}
    assert all(a.workflow_id == str(workflow.id) for a in entries)
    assert entries[-1].timestamp == iso(events[-1].timestamp)


# --- another definition: its own key, kept names, parallel group, skip and wait ---------------

def trip_booked_and_waiting() -> Workflow:
    workflow = Workflow(definition="trip", definition_version=1, key="t-1", input={
        "from": "LHR", "to": "JFK", "cents": 500_000,
        "dates": {"depart": "2027-01-10", "return": "2027-01-17"}})
    now = workflow.created_on.timestamp()
    for call in workflow.advance(TRIP, now).dues:  # flight and hotel at once
        workflow.succeed(TRIP, call.action, call.attempt, kept(call, f"{call.action}-b"))
    workflow.advance(TRIP, now)  # the car is skipped; the approval waits
    return workflow


def test_a_trip_view_has_its_own_key_and_kept_names() -> None:
    workflow = trip_booked_and_waiting()
    events = workflow.collect_events()

    view = fold(events, shapes)

    assert [event_type(e) for e in events] == [
        "Started", "FlightBooked", "HotelBooked", "StepSkipped", "Waiting"]
    assert view == {
        "workflowId": str(workflow.id), "tripId": "t-1", "status": "WAITING",
        "flightBookingId": "flight-b", "hotelBookingId": "hotel-b", "carBookingId": None,
        "paymentId": None, "notificationId": None, "error": None,
        "attempts": {"flight": 1, "hotel": 1}, "createdAt": iso(events[0].timestamp),
        "definition": "trip", "definitionVersion": 1, "key": "t-1",
        "results": {"flight": {"flightBookingId": "flight-b"},
                    "hotel": {"hotelBookingId": "hotel-b"}},
        "updatedAt": iso(events[-1].timestamp), "version": 5,
    }
    assert "orderId" not in view


def test_a_signal_s_body_is_the_wait_step_s_result_and_its_status_the_view_s() -> None:
    workflow = trip_booked_and_waiting()
    workflow.signal(TRIP, "approve", {"by": "manager"})
    charge = workflow.advance(TRIP, workflow.created_on.timestamp()).dues

    view = fold(workflow.collect_events(), shapes)

    assert [d.action for d in charge] == ["charge"]
    assert view is not None
    assert view["status"] == workflow.status == "APPROVED"
    assert view["results"]["approval"] == {"by": "manager"}
    assert view["attempts"] == {"flight": 1, "hotel": 1}  # a wait makes no call


def test_cached_asks_once_per_definition_version() -> None:
    asked: list[tuple[str, int]] = []

    def counting(name: str, version: int) -> Shape:
        asked.append((name, version))
        return shapes(name, version)

    once = cached(counting)
    for _ in range(3):
        assert once("order", 1) == Shape.of(ORDER)
    once("trip", 1)

    assert asked == [("order", 1), ("trip", 1)]
    assert Shape.of(ORDER) == Shape("orderId", {"charge": ("paymentId",),
                                                "reserve": ("reservationId",),
                                                "ship": ("shipmentId",)})
