"""The Workflow aggregate on the order definition: which call is due, and every legal and
illegal transition of the saga's straight line. (Parallel groups, waits and deadlines are in
test_interpreter.py.)

`Order` below speaks the aggregate's API for the order definition in this file's terms: a
result id per forward step, the due call or None."""
from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from domain.definitions import compile_definition
from domain.workflow import Due, InvalidTransition, Workflow

MAX = 3  # attempts allowed per step / per compensation in these tests
ORDER = compile_definition(yaml.safe_load(
    (Path(__file__).resolve().parents[2] / "definitions" / "order.yaml").read_text()))
KEPT = {"charge": "paymentId", "reserve": "reservationId", "ship": "shipmentId"}
NOW = 2_000_000_000.0


class Order:
    """A Workflow of the order definition, answered the way the orchestrator would."""

    def __init__(self, order_id: str = "o-1") -> None:
        self.workflow = Workflow(definition="order", definition_version=1, key=order_id,
                                 input={"cents": 1250, "skus": ["sku-1", "sku-2"],
                                        "address": "1 Main St"})

    def __getattr__(self, name: str) -> Any:
        return getattr(self.workflow, name)

    def advance(self, fresh: bool = False) -> Due | None:
        dues = self.workflow.advance(ORDER, NOW, fresh).dues
        assert len(dues) <= 1  # a straight line: one call at a time
        return dues[0] if dues else None

    def succeed(self, action: str, attempt: int, result_id: str | None = None) -> None:
        kept = {KEPT[action]: result_id} if action in KEPT else {}
        self.workflow.succeed(ORDER, action, attempt, kept)

    def fail(self, action: str, attempt: int, error: str, retryable: bool, uncertain: bool,
             max_attempts: int, retry_at: float | None) -> None:
        self.workflow.fail(ORDER, action, attempt, error, retryable, uncertain, max_attempts,
                           retry_at)

    @property
    def ids(self) -> dict[str, str]:
        """Each done step's result id."""
        return {step: kept[KEPT[step]] for step, kept in self.workflow.results.items()}


def new_workflow(order_id: str = "o-1") -> Any:
    return Order(order_id)


def request(due: Due) -> tuple[str, str, Any]:
    """What the due call sends: method, path with query, body."""
    return due.call.method, due.call.target, due.call.body


def names(workflow: Any) -> list[str]:
    """The audit names of the events collected since the last call (and forgets them)."""
    return [getattr(e, "name", None) or type(e).__name__ for e in workflow.collect_events()]


def succeed_due(workflow: Any, result_id: str | None = None) -> Due:
    """Answers the due call with success; returns the Due that was answered."""
    due = workflow.advance()
    assert due is not None
    workflow.succeed(due.action, due.attempt, result_id or f"{due.action}-id")
    return due


def reject_due(workflow: Any, error: str = "no") -> Due:
    due = workflow.advance()
    assert due is not None
    workflow.fail(due.action, due.attempt, error, retryable=False, uncertain=False,
                  max_attempts=MAX, retry_at=None)
    return due


def transient_due(workflow: Any, uncertain: bool = True, retry_at: float = 0.0) -> Due:
    due = workflow.advance()
    assert due is not None
    workflow.fail(due.action, due.attempt, "503: busy", retryable=True, uncertain=uncertain,
                  max_attempts=MAX, retry_at=retry_at)
    return due


def undo_all(workflow: Any) -> list[Due]:
    """Answers every due compensation with success; returns them in the order they were due."""
    done = []
    while (due := workflow.advance()) is not None:
        assert due.compensating
        forward = due.action in KEPT  # a doubtful step re-asked
        workflow.succeed(due.action, due.attempt, f"{due.action}-id" if forward else None)
        done.append(due)
    return done


# --- the happy path -------------------------------------------------------------------------


def test_happy_path_calls_charge_reserve_ship_then_completes() -> None:
    workflow = new_workflow()
    assert workflow.status == "STARTED"
    statuses, dues = [], []
    for result_id in ("pay-1", "res-1", "shp-1"):
        dues.append(succeed_due(workflow, result_id))
        statuses.append(workflow.status)

    assert workflow.advance() is None
    assert statuses == ["CHARGED", "RESERVED", "SHIPPED"]
    assert workflow.status == "COMPLETED" and workflow.is_terminal
    assert [(d.action, d.attempt, d.compensating, d.not_before) for d in dues] == [
        ("charge", 1, False, None), ("reserve", 1, False, None), ("ship", 1, False, None)]
    wid = workflow.id
    assert [request(d) for d in dues] == [
        ("POST", "/payments/charge",
         {"orderId": "o-1", "cents": 1250, "idempotencyKey": f"{wid}:charge"}),
        ("POST", "/inventory/reservations",
         {"orderId": "o-1", "skus": ["sku-1", "sku-2"], "idempotencyKey": f"{wid}:reserve"}),
        ("POST", "/shipments",
         {"orderId": "o-1", "address": "1 Main St", "idempotencyKey": f"{wid}:ship"})]
    assert workflow.ids == {"charge": "pay-1", "reserve": "res-1", "ship": "shp-1"}
    assert names(workflow) == ["Started", "Charged", "Reserved", "Shipped", "Completed"]


def test_advance_twice_without_an_answer_names_the_same_call_and_records_nothing() -> None:
    workflow = new_workflow()
    workflow.collect_events()
    assert workflow.advance() == workflow.advance()
    assert names(workflow) == []


def test_a_forward_success_without_its_id_is_refused() -> None:
    workflow = new_workflow()
    workflow.collect_events()
    with pytest.raises(ValueError, match="paymentId"):
        workflow.succeed("charge", 1, None)
    with pytest.raises(ValueError, match="paymentId"):
        workflow.succeed("charge", 1, "")
    assert names(workflow) == [] and workflow.status == "STARTED"


# --- business rejections: undo the earlier steps in reverse order ----------------------------


def test_charge_rejected_fails_with_nothing_to_compensate() -> None:
    workflow = new_workflow()
    reject_due(workflow, "card declined")
    assert workflow.status == "COMPENSATING"
    assert workflow.advance() is None

    assert workflow.status == "FAILED"
    assert workflow.error == "charge: card declined"
    assert names(workflow) == ["Started", "StepFailed", "CompensationStarted", "Failed"]


def test_reserve_rejected_refunds_the_charge_then_fails() -> None:
    workflow = new_workflow()
    succeed_due(workflow, "pay-1")
    reject_due(workflow, "out of stock")

    undone = undo_all(workflow)

    assert [(d.action, request(d)) for d in undone] == [
        ("refund", ("POST", "/payments/pay-1/refund?reason=failed", None))]
    assert workflow.status == "FAILED" and workflow.undone == ["charge"]
    assert names(workflow) == ["Started", "Charged", "StepFailed", "CompensationStarted",
                               "Compensated", "Failed"]


def test_ship_rejected_releases_then_refunds_then_fails() -> None:
    workflow = new_workflow()
    succeed_due(workflow, "pay-1")
    succeed_due(workflow, "res-1")
    reject_due(workflow, "bad address")

    undone = undo_all(workflow)

    assert [(d.action, request(d)) for d in undone] == [
        ("release", ("POST", "/inventory/reservations/res-1/release", None)),
        ("refund", ("POST", "/payments/pay-1/refund?reason=failed", None)),
    ]
    assert all(d.attempt == 1 for d in undone)
    assert workflow.status == "FAILED" and workflow.undone == ["reserve", "charge"]
    assert workflow.error == "ship: bad address"
    assert names(workflow)[-4:] == ["CompensationStarted", "Compensated", "Compensated", "Failed"]


# --- transient failures -----------------------------------------------------------------------


def test_transient_failures_are_retried_with_the_next_attempt_not_before_the_backoff() -> None:
    workflow = new_workflow()
    succeed_due(workflow, "pay-1")
    first = transient_due(workflow, uncertain=False, retry_at=100.0)

    again = workflow.advance()

    assert first.attempt == 1 and workflow.status == "CHARGED"
    assert again is not None
    assert (again.action, again.attempt, again.not_before, again.compensating) == \
        ("reserve", 2, 100.0, False)
    workflow.succeed("reserve", 2, "res-1")
    assert workflow.status == "RESERVED" and workflow.retry_at == {}
    assert workflow.attempts["reserve"] == 2


def test_a_step_that_fails_transiently_max_times_is_given_up_and_compensated() -> None:
    workflow = new_workflow()
    succeed_due(workflow, "pay-1")
    attempts = [transient_due(workflow, uncertain=False, retry_at=1.0).attempt
                for _ in range(MAX)]

    assert attempts == [1, 2, 3]
    assert workflow.status == "COMPENSATING"
    assert workflow.error == "reserve: 503: busy"
    assert [d.action for d in undo_all(workflow)] == ["refund"]
    assert workflow.status == "FAILED"
    events = workflow.collect_events()
    failed: list[Any] = [e for e in events if type(e).__name__ == "StepFailed"]
    assert [(e.attempt, e.retry_at) for e in failed] == [(1, 1.0), (2, 1.0), (3, None)]


# --- uncertain failures: the failing step may have taken effect ------------------------------


def uncertain_reserve(workflow: Workflow) -> None:
    """Charge succeeds; every reserve attempt fails with a 5xx until the step is given up."""
    succeed_due(workflow, "pay-1")
    for _ in range(MAX):
        transient_due(workflow, uncertain=True)
    assert workflow.status == "COMPENSATING"


def test_compensation_first_re_asks_a_step_whose_5xx_may_have_taken_effect() -> None:
    workflow = new_workflow()
    uncertain_reserve(workflow)

    due = workflow.advance()

    assert due is not None
    assert (due.action, due.attempt, due.not_before, due.compensating) == \
        ("reserve", MAX + 1, None, True)
    assert request(due)[2]["idempotencyKey"] == f"{workflow.id}:reserve"  # the same key


def test_a_clear_rejection_of_the_re_ask_settles_it_and_only_the_charge_is_refunded() -> None:
    workflow = new_workflow()
    uncertain_reserve(workflow)
    reject_due(workflow, "no such reservation")

    assert workflow.status == "COMPENSATING"
    assert [d.action for d in undo_all(workflow)] == ["refund"]
    assert workflow.status == "FAILED" and workflow.undone == ["charge"]


def test_a_re_ask_that_succeeds_gets_undone_too() -> None:
    workflow = new_workflow()
    uncertain_reserve(workflow)
    succeed_due(workflow, "res-late")

    assert workflow.status == "COMPENSATING"  # a late success does not move the saga forward
    undone = undo_all(workflow)
    assert [(d.action, request(d)[1]) for d in undone] == [
        ("release", "/inventory/reservations/res-late/release"),
        ("refund", "/payments/pay-1/refund?reason=failed")]
    assert workflow.status == "FAILED"


def test_a_re_ask_that_stays_uncertain_up_to_max_ends_compensation_failed() -> None:
    workflow = new_workflow()
    uncertain_reserve(workflow)
    for _ in range(MAX):
        due = transient_due(workflow, uncertain=True)
        assert (due.action, due.compensating) == ("reserve", True)

    assert workflow.status == "COMPENSATION_FAILED"
    assert workflow.advance() is None


def test_a_clear_answer_after_a_5xx_settles_the_doubt_before_compensation() -> None:
    workflow = new_workflow()
    succeed_due(workflow, "pay-1")
    transient_due(workflow, uncertain=True)
    reject_due(workflow, "out of stock")

    assert [d.action for d in undo_all(workflow)] == ["refund"]
    assert workflow.status == "FAILED"


def test_a_429_after_a_timeout_keeps_the_doubt_it_says_nothing_of_the_first_call() -> None:
    workflow = new_workflow()
    succeed_due(workflow, "pay-1")
    transient_due(workflow, uncertain=True)  # a timeout: the reservation may exist
    for _ in range(MAX - 1):
        transient_due(workflow, uncertain=False)  # 429s until the attempts run out

    assert workflow.status == "COMPENSATING"
    assert [d.action for d in undo_all(workflow)] == ["reserve", "release", "refund"]


def test_a_cancel_seen_by_a_fresh_driver_re_asks_the_step_that_may_be_in_flight() -> None:
    workflow = new_workflow()
    succeed_due(workflow, "pay-1")
    workflow.request_cancel()
    # a driver that took over after a crash cannot know whether reserve was called
    due = workflow.advance(fresh=True)

    assert due is not None and (due.action, due.compensating) == ("reserve", True)
    assert [d.action for d in undo_all(workflow)] == ["reserve", "release", "refund"]
    assert workflow.status == "CANCELLED"


def test_a_cancel_taken_by_the_live_driver_between_calls_undoes_only_what_was_done() -> None:
    workflow = new_workflow()
    succeed_due(workflow, "pay-1")
    workflow.request_cancel()

    assert [d.action for d in undo_all(workflow)] == ["refund"]
    assert workflow.status == "CANCELLED"


# --- compensations that fail ------------------------------------------------------------------


def refund_failing(workflow: Workflow) -> None:
    """Reserve is rejected, then every refund attempt fails until compensation is given up."""
    succeed_due(workflow, "pay-1")
    reject_due(workflow)
    for attempt in range(1, MAX + 1):
        due = transient_due(workflow, retry_at=5.0)
        assert (due.action, due.attempt, due.compensating) == ("refund", attempt, True)


def test_compensation_failing_max_times_ends_compensation_failed() -> None:
    workflow = new_workflow()
    refund_failing(workflow)

    assert workflow.status == "COMPENSATION_FAILED" and workflow.is_terminal
    assert workflow.error == "refund: 503: busy"
    assert workflow.advance() is None
    assert names(workflow)[-2:] == ["StepFailed", "CompensationFailed"]


def test_retry_from_compensation_failed_resumes_compensation_and_ends_failed() -> None:
    workflow = new_workflow()
    refund_failing(workflow)
    workflow.collect_events()

    workflow.request_retry(by="ops", reason="payment service fixed")

    assert workflow.status == "COMPENSATING"
    due = workflow.advance()
    assert due is not None
    assert (due.action, due.attempt, request(due)[1], due.compensating) == \
        ("refund", MAX + 1, "/payments/pay-1/refund?reason=failed", True)
    workflow.succeed("refund", due.attempt)
    assert workflow.advance() is None
    assert workflow.status == "FAILED"
    assert names(workflow) == ["RetryRequested", "Compensated", "Failed"]


def test_retry_gives_compensation_a_fresh_budget_of_attempts() -> None:
    workflow = new_workflow()
    refund_failing(workflow)
    workflow.request_retry(by="ops", reason="again")

    for _ in range(MAX - 1):
        transient_due(workflow)
    assert workflow.status == "COMPENSATING"
    transient_due(workflow)
    assert workflow.status == "COMPENSATION_FAILED"
    assert workflow.attempts["refund"] == 2 * MAX


def test_retry_of_a_running_workflow_in_backoff_makes_the_step_due_now() -> None:
    workflow = new_workflow()
    succeed_due(workflow, "pay-1")
    for _ in range(MAX - 1):
        transient_due(workflow, retry_at=1e12)
    assert workflow.advance().not_before == 1e12  # type: ignore[union-attr]

    workflow.request_retry(by="ops", reason="stuck")

    assert workflow.status == "CHARGED"
    due = workflow.advance()
    assert (due.action, due.attempt, due.not_before, due.compensating) == \
        ("reserve", MAX, None, False)
    transient_due(workflow)  # the budget was reset: this is not the last attempt any more
    assert workflow.status == "CHARGED"


def test_a_retry_that_would_change_nothing_records_nothing() -> None:
    workflow = new_workflow()
    succeed_due(workflow, "pay-1")
    transient_due(workflow, retry_at=1e12)
    names(workflow)
    workflow.request_retry(by="ops", reason="first")  # resets the budget and the wait
    assert names(workflow) == ["RetryRequested"]
    for _ in range(3):
        workflow.request_retry(by="ops", reason="again")
    assert names(workflow) == []


# --- cancellation -----------------------------------------------------------------------------


def test_cancel_mid_flight_is_recorded_then_compensates_and_ends_cancelled() -> None:
    workflow = new_workflow()
    succeed_due(workflow, "pay-1")
    succeed_due(workflow, "res-1")
    workflow.collect_events()

    workflow.request_cancel()

    assert workflow.status == "RESERVED" and workflow.cancel_requested
    assert names(workflow) == ["CancelRequested"]
    undone = undo_all(workflow)
    assert [d.action for d in undone] == ["release", "refund"]
    assert request(undone[1])[1] == "/payments/pay-1/refund?reason=cancelled"
    assert workflow.status == "CANCELLED"
    assert workflow.error == "cancelled by client"
    assert names(workflow) == ["CompensationStarted", "Compensated", "Compensated", "Cancelled"]


def test_cancel_while_the_charge_is_in_flight_refunds_it_when_it_lands() -> None:
    workflow = new_workflow()
    due = workflow.advance()
    workflow.request_cancel()
    workflow.succeed(due.action, due.attempt, "pay-1")  # type: ignore[union-attr]

    assert [d.action for d in undo_all(workflow)] == ["refund"]
    assert workflow.status == "CANCELLED"


def test_cancel_before_any_call_ends_cancelled_with_nothing_to_undo() -> None:
    workflow = new_workflow()
    workflow.request_cancel()

    assert workflow.advance() is None
    assert workflow.status == "CANCELLED"
    assert names(workflow) == ["Started", "CancelRequested", "CompensationStarted", "Cancelled"]


def test_a_second_cancel_records_nothing_more() -> None:
    workflow = new_workflow()
    workflow.request_cancel()
    workflow.collect_events()
    workflow.request_cancel()
    assert names(workflow) == []


def test_cancel_during_compensation_of_a_failure_still_ends_failed() -> None:
    workflow = new_workflow()
    succeed_due(workflow, "pay-1")
    reject_due(workflow, "out of stock")
    workflow.request_cancel()

    assert [request(d)[1] for d in undo_all(workflow)] == ["/payments/pay-1/refund?reason=failed"]
    assert workflow.status == "FAILED"


# --- illegal requests on terminal workflows -----------------------------------------------------


def completed() -> Any:
    workflow = new_workflow()
    for _ in range(3):
        succeed_due(workflow)
    workflow.advance()
    return workflow


def failed() -> Any:
    workflow = new_workflow()
    reject_due(workflow)
    workflow.advance()
    return workflow


def cancelled() -> Any:
    workflow = new_workflow()
    workflow.request_cancel()
    workflow.advance()
    return workflow


def compensation_failed() -> Any:
    workflow = new_workflow()
    refund_failing(workflow)
    return workflow


@pytest.mark.parametrize("make", [completed, failed, cancelled, compensation_failed])
def test_cancel_of_a_terminal_workflow_is_refused(make: Callable[[], Any]) -> None:
    workflow = make()
    status = workflow.status
    workflow.collect_events()

    with pytest.raises(InvalidTransition) as raised:
        workflow.request_cancel()

    assert (raised.value.workflow_id, raised.value.status) == (workflow.id, status)
    assert workflow.status == status and names(workflow) == []


@pytest.mark.parametrize("make", [completed, failed, cancelled])
def test_retry_of_a_finished_workflow_is_refused(make: Callable[[], Any]) -> None:
    workflow = make()
    status = workflow.status
    workflow.collect_events()

    with pytest.raises(InvalidTransition, match="cannot retry"):
        workflow.request_retry(by="ops", reason="why not")

    assert workflow.status == status and names(workflow) == []


# --- stale and repeated outcomes ------------------------------------------------------------------


def test_a_repeated_success_records_nothing_more() -> None:
    workflow = new_workflow()
    succeed_due(workflow, "pay-1")
    workflow.collect_events()

    workflow.succeed("charge", 1, "pay-2")

    assert names(workflow) == [] and workflow.ids["charge"] == "pay-1"


def test_a_failure_that_a_later_attempt_overtook_records_nothing() -> None:
    workflow = new_workflow()
    succeed_due(workflow, "pay-1")
    transient_due(workflow)
    transient_due(workflow)
    workflow.collect_events()

    for attempt in (1, 2):  # the same outcome delivered again, or an older one
        workflow.fail("reserve", attempt, "late", retryable=False, uncertain=False,
                      max_attempts=MAX, retry_at=None)

    assert names(workflow) == [] and workflow.status == "CHARGED"


def test_a_stale_failure_of_a_step_that_succeeded_records_nothing() -> None:
    workflow = new_workflow()
    succeed_due(workflow, "pay-1")
    workflow.collect_events()

    workflow.fail("charge", 1, "late 409", retryable=True, uncertain=False, max_attempts=1,
                  retry_at=None)

    assert names(workflow) == [] and workflow.status == "CHARGED"


def test_a_repeated_compensation_records_nothing_more() -> None:
    workflow = new_workflow()
    succeed_due(workflow, "pay-1")
    succeed_due(workflow, "res-1")
    reject_due(workflow)
    due = workflow.advance()
    workflow.succeed(due.action, due.attempt)  # type: ignore[union-attr]
    workflow.collect_events()

    workflow.succeed("release", 1)

    assert names(workflow) == [] and workflow.undone == ["reserve"]


@pytest.mark.parametrize("make", [completed, failed, cancelled, compensation_failed])
def test_outcomes_after_the_end_change_nothing(make: Callable[[], Any]) -> None:
    workflow = make()
    status = workflow.status
    workflow.collect_events()

    workflow.succeed("ship", 9, "shp-9")
    workflow.succeed("refund", 9)
    workflow.fail("ship", 9, "late", retryable=False, uncertain=False, max_attempts=1,
                  retry_at=None)
    workflow.fail("refund", 9, "late", retryable=False, uncertain=False, max_attempts=1,
                  retry_at=None)

    assert workflow.status == status and names(workflow) == []


# --- identity and repeated starts ---------------------------------------------------------------


def test_create_id_is_deterministic_per_definition_and_key() -> None:
    assert Workflow.create_id("trip", "t-1") == Workflow.create_id("trip", "t-1")
    assert Workflow.create_id("trip", "t-1") != Workflow.create_id("trip", "t-2")
    assert Workflow.create_id("trip", "k") != Workflow.create_id("refund", "k")
    assert new_workflow("o-7").id == Workflow.create_id("order", "o-7")


def test_the_order_sagas_ids_are_what_they_were_before_definitions() -> None:
    namespace = uuid.UUID("6f1e7d3c-58a2-4c39-9d0e-0c1b2a3f4e5d")
    assert Workflow.create_id("order", "o-1") == uuid.uuid5(namespace, "o-1")


def test_same_start_compares_the_definition_and_the_whole_input() -> None:
    workflow = new_workflow()
    body = {"cents": 1250, "skus": ["sku-1", "sku-2"], "address": "1 Main St"}
    assert workflow.same_start("order", body)
    assert not workflow.same_start("trip", body)
    assert not workflow.same_start("order", {**body, "cents": 1251})
    assert not workflow.same_start("order", {**body, "skus": ["sku-2", "sku-1"]})
    assert not workflow.same_start("order", {**body, "address": "2 Main St"})
