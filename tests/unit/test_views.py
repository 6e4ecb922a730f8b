"""evolve/fold: the contract's state view rebuilt from a real aggregate's events alone."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from application.views import AuditEntry, evolve, fold, iso
from domain.workflow import Workflow

MAX = 3


def new_workflow() -> Workflow:
    return Workflow(order_id="o-9", cents=500, skus=["a"], address="Elm St 2")


def answer(workflow: Workflow, ok: bool = True, retryable: bool = False,
           uncertain: bool = False, error: str = "no") -> None:
    due = workflow.advance()
    assert due is not None
    if ok:
        workflow.succeed(due.action, due.attempt, f"{due.action}-{due.attempt}")
    else:
        workflow.fail(due.action, due.attempt, error, retryable, uncertain, MAX,
                      retry_at=None if not retryable else 42.0)


def happy() -> Workflow:
    workflow = new_workflow()
    for _ in range(3):
        answer(workflow)
    workflow.advance()
    return workflow


def compensated() -> Workflow:
    """Charge succeeds, reserve fails once (5xx) then is rejected; the charge is refunded."""
    workflow = new_workflow()
    answer(workflow)
    answer(workflow, ok=False, retryable=True, uncertain=True, error="503: busy")
    answer(workflow, ok=False, error="rejected (422): out of stock")
    answer(workflow)  # the refund
    workflow.advance()
    return workflow


def cancelled() -> Workflow:
    workflow = new_workflow()
    answer(workflow)
    workflow.request_cancel()
    answer(workflow)  # the refund
    workflow.advance()
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

    view = fold(events)

    assert view == {
        "workflowId": str(workflow.id), "orderId": "o-9", "status": "COMPLETED",
        "paymentId": "charge-1", "reservationId": "reserve-1", "shipmentId": "ship-1",
        "error": None, "attempts": {"charge": 1, "reserve": 1, "ship": 1},
        "createdAt": iso(events[0].timestamp), "updatedAt": iso(events[-1].timestamp),
        "version": 5,
    }


def test_fold_of_a_compensated_history() -> None:
    workflow = compensated()
    events = workflow.collect_events()

    view = fold(events)

    assert [type(e).__name__ for e in events] == [
        "Started", "Charged", "StepFailed", "StepFailed", "CompensationStarted", "Compensated",
        "Failed"]
    assert view == {
        "workflowId": str(workflow.id), "orderId": "o-9", "status": "FAILED",
        "paymentId": "charge-1", "reservationId": None, "shipmentId": None,
        "error": "reserve: rejected (422): out of stock",
        "attempts": {"charge": 1, "reserve": 2, "refund": 1},
        "createdAt": iso(events[0].timestamp), "updatedAt": iso(events[-1].timestamp),
        "version": 7,
    }


def test_each_event_moves_the_view_on_step_by_step() -> None:
    events = happy().collect_events()
    view: dict[str, Any] | None = None
    seen = []
    for event in events:
        view = evolve(view, event)
        seen.append((view["status"], view["version"], view["updatedAt"]))

    assert seen == [(s, i + 1, iso(e.timestamp)) for i, (s, e) in enumerate(zip(
        ["STARTED", "CHARGED", "RESERVED", "SHIPPED", "COMPLETED"], events, strict=False))]


def test_evolve_leaves_the_view_it_was_given_untouched() -> None:
    events = compensated().collect_events()
    before = fold(events[:2])
    assert before is not None
    snapshot = {**before, "attempts": dict(before["attempts"])}

    evolve(before, events[2])

    assert before == snapshot


def test_fold_of_nothing_is_none() -> None:
    assert fold([]) is None


@pytest.mark.parametrize("make", [happy, compensated, cancelled,
                                  compensation_failed_then_retried, uncertain_step_done_late])
def test_fold_agrees_with_the_aggregate(make: Callable[[], Workflow]) -> None:
    workflow = make()
    view = fold(workflow.collect_events())

    assert view is not None
    assert view["status"] == workflow.status
    assert view["version"] == workflow.version
    assert view["attempts"] == workflow.attempts
    assert view["error"] == workflow.error
    ids = {"paymentId": "charge", "reservationId": "reserve", "shipmentId": "ship"}
    assert {k: view[k] for k in ids} == {k: workflow.results.get(s) for k, s in ids.items()}


def test_a_late_success_during_compensation_keeps_the_view_compensating() -> None:
    events = uncertain_step_done_late().collect_events()
    view = fold(events)

    assert type(events[-1]).__name__ == "Reserved"
    assert view is not None
    assert view["status"] == "COMPENSATING" and view["reservationId"] == "reserve-4"


def test_audit_entry_names_the_event_and_hides_the_envelope() -> None:
    workflow = compensated()
    events = workflow.collect_events()

    entries = [AuditEntry.of(e) for e in events]

    assert [(a.position, a.type) for a in entries[:3]] == [
        (1, "Started"), (2, "Charged"), (3, "StepFailed")]
    assert entries[0].data == {"orderId": "o-9", "cents": 500, "skus": ["a"],
                               "address": "Elm St 2"}
    assert entries[2].data == {"action": "reserve", "attempt": 1, "error": "503: busy",
                               "retryable": True, "uncertain": True, "retryAt": 42.0}
    assert all(a.workflow_id == str(workflow.id) for a in entries)
    assert entries[-1].timestamp == iso(events[-1].timestamp)
