"""The Workflow aggregate: one order's saga, its events, and the rules of what comes next.

Pure: no clocks (times come in as arguments), no I/O. The aggregate decides which call is due,
which compensations are owed and which transitions are legal; the process application only asks
it and records what the participants answered.

Event classes and their module path are a stored contract: rename nothing; change a field with
`class_version` and an upcaster.
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from eventsourcing.domain import Aggregate, event

STEPS = ("charge", "reserve", "ship")
UNDO = {"charge": "refund", "reserve": "release", "ship": "cancel"}
STEP_OF = {undo: step for step, undo in UNDO.items()}
RESULT_KEY = {"charge": "paymentId", "reserve": "reservationId", "ship": "shipmentId"}
STATUS_AFTER = {"charge": "CHARGED", "reserve": "RESERVED", "ship": "SHIPPED"}

TERMINAL = ("COMPLETED", "FAILED", "COMPENSATION_FAILED", "CANCELLED")
FORWARD = ("STARTED", "CHARGED", "RESERVED", "SHIPPED")
RETRYABLE = ("COMPENSATION_FAILED",)

NAMESPACE = uuid.UUID("6f1e7d3c-58a2-4c39-9d0e-0c1b2a3f4e5d")


class InvalidTransition(Exception):
    """The workflow's status does not allow what was asked."""

    def __init__(self, workflow_id: uuid.UUID, status: str, what: str):
        super().__init__(f"workflow {workflow_id} is {status}: cannot {what}")
        self.workflow_id, self.status, self.what = workflow_id, status, what


@dataclass(frozen=True)
class Due:
    """A participant call the workflow needs now (or not before `not_before`, epoch seconds)."""

    action: str
    attempt: int
    args: dict[str, Any]
    not_before: float | None
    compensating: bool


class Workflow(Aggregate):
    """An order's saga: charge, reserve, ship; on failure, undo what succeeded in reverse."""

    @staticmethod
    def create_id(order_id: str) -> uuid.UUID:
        """The same order always maps to the same workflow: a start is idempotent."""
        return uuid.uuid5(NAMESPACE, order_id)

    @event("Started")
    def __init__(self, order_id: str, cents: int, skus: list[str], address: str) -> None:
        self.order_id, self.cents, self.skus, self.address = order_id, cents, skus, address
        self.status = "STARTED"
        self.results: dict[str, str] = {}  # step -> the participant's id for it
        self.undone: list[str] = []  # compensated steps, in order
        self.attempts: dict[str, int] = {}  # action -> attempts made, for the record
        self.budget: dict[str, int] = {}  # action -> attempts since the last operator retry
        self.uncertain: list[str] = []  # steps whose last attempt may have taken effect
        self.retry_at: float | None = None
        self.error: str | None = None
        self.reason: str | None = None  # why compensating: "failed" or "cancelled"
        self.cancel_requested = False

    # --- what comes next -------------------------------------------------------------------

    def same_order(self, cents: int, skus: list[str], address: str) -> bool:
        """Whether a repeated start asks for exactly what this workflow was started with."""
        return (self.cents, list(self.skus), self.address) == (cents, list(skus), address)

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL

    def advance(self, fresh: bool = False) -> Due | None:
        """Takes every transition that needs no call, then names the call that is due, if any.

        `fresh` says the caller cannot know whether an earlier driver (one that crashed or
        stopped) had the due call in flight: a cancel then treats that step as possibly done."""
        while True:
            if self.status in FORWARD:
                if self.cancel_requested:
                    pending = next((s for s in STEPS if s not in self.results), None)
                    self.compensation_started(
                        reason="cancelled", error="cancelled by client",
                        doubtful=pending if fresh else None)
                    continue
                step = next((s for s in STEPS if s not in self.results), None)
                if step is None:
                    self.completed()
                    continue
                return self._due(step, compensating=False)
            if self.status == "COMPENSATING":
                step = self._next_to_undo()
                if step is None:
                    if self.reason == "cancelled":
                        self.cancelled()
                    else:
                        self.failed(error=self.error)
                    continue
                if step in self.results:
                    return self._due(UNDO[step], compensating=True)
                # The step's last attempt may have taken effect and we hold no id to undo it
                # with: ask again under the same key, which returns the original result.
                return self._due(step, compensating=True)
            return None

    def _next_to_undo(self) -> str | None:
        for step in reversed(STEPS):
            if step in self.undone:
                continue
            if step in self.results or step in self.uncertain:
                return step
        return None

    def _due(self, action: str, compensating: bool) -> Due:
        step = STEP_OF.get(action, action)
        args: dict[str, Any] = {"orderId": self.order_id}
        if action == "charge":
            args["cents"] = self.cents
        elif action == "reserve":
            args["skus"] = list(self.skus)
        elif action == "ship":
            args["address"] = self.address
        else:
            args[RESULT_KEY[step]] = self.results[step]
            if action == "refund":
                args["reason"] = self.reason or "failed"
        return Due(action, self.attempts.get(action, 0) + 1, args, self.retry_at, compensating)

    # --- outcomes of calls -----------------------------------------------------------------

    def succeed(self, action: str, attempt: int, result_id: str | None = None) -> None:
        """Records a call that succeeded. A stale or repeated outcome changes nothing."""
        if action in STEPS:
            if action in self.results or self.is_terminal:
                return
            if not result_id:
                raise ValueError(f"{action} succeeded without a {RESULT_KEY[action]}")
            if action == "charge":
                self.charged(payment_id=result_id, attempt=attempt, cents=self.cents)
            elif action == "reserve":
                self.reserved(reservation_id=result_id, attempt=attempt)
            else:
                self.shipped(shipment_id=result_id, attempt=attempt)
        else:
            step = STEP_OF[action]
            if step in self.undone or self.status != "COMPENSATING":
                return
            self.compensated(step=step, action=action, attempt=attempt)

    def fail(
        self, action: str, attempt: int, error: str, retryable: bool, uncertain: bool,
        max_attempts: int, retry_at: float | None,
    ) -> None:
        """Records a failed attempt; when it was the last one allowed, the saga turns:
        a forward step starts compensation, a compensation ends COMPENSATION_FAILED."""
        if self.is_terminal or attempt <= self.attempts.get(action, 0):
            return  # an outcome that another attempt already overtook
        spent = self.budget.get(action, 0) + 1 >= max_attempts
        gives_up = not retryable or spent
        self.step_failed(
            action=action, attempt=attempt, error=error, retryable=retryable,
            uncertain=uncertain, retry_at=None if gives_up else retry_at,
        )
        if not gives_up:
            return
        if action in STEPS and self.status == "COMPENSATING" and action not in self.uncertain:
            return  # a clear "no" to a doubtful step: nothing was applied, nothing to undo
        if action in STEPS and self.status in FORWARD:
            self.compensation_started(reason="failed", error=f"{action}: {error}")
        elif self.status == "COMPENSATING":
            self.compensation_failed(action=action, error=f"{action}: {error}")

    # --- requests from clients and operators -------------------------------------------------

    def request_cancel(self) -> None:
        """A client's cancellation: honoured at the next decision, never mid-call."""
        if self.is_terminal:
            raise InvalidTransition(self.id, self.status, "cancel")
        if not self.cancel_requested:
            self.cancel_requested_(by="client")

    def request_retry(self, by: str, reason: str) -> None:
        """An operator's retry: resumes a COMPENSATION_FAILED or a stuck running workflow.
        Like a cancel, one that would change nothing records nothing."""
        if self.status in TERMINAL and self.status not in RETRYABLE:
            raise InvalidTransition(self.id, self.status, "retry")
        if self.status not in RETRYABLE and not self.budget and self.retry_at is None:
            return  # nothing spent, nothing waited for: a retry would change nothing
        self.retry_requested(by=by, reason=reason)

    # --- events ---------------------------------------------------------------------------

    class Charged(Aggregate.Event):
        """The payment service took the money. Declared as a class (not by name) for its
        `class_version`: its topic stays `domain.workflow:Workflow.Charged`.

        v2 added `cents`, the amount charged, so that a downstream reader of the audit feed
        needs no join with `Started`. A v1 event did not record it: it reads as None
        ("not recorded"), never as a guess."""

        payment_id: str
        attempt: int
        cents: int | None

        class_version = 2

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state["cents"] = None

    @event(Charged)
    def charged(self, payment_id: str, attempt: int, cents: int | None = None) -> None:
        self._step_done("charge", payment_id, attempt)

    @event("Reserved")
    def reserved(self, reservation_id: str, attempt: int) -> None:
        self._step_done("reserve", reservation_id, attempt)

    @event("Shipped")
    def shipped(self, shipment_id: str, attempt: int) -> None:
        self._step_done("ship", shipment_id, attempt)

    def _step_done(self, step: str, result_id: str, attempt: int) -> None:
        self.results[step] = result_id
        self.attempts[step] = max(attempt, self.attempts.get(step, 0))
        if step in self.uncertain:
            self.uncertain.remove(step)
        if self.status in FORWARD:
            self.status = STATUS_AFTER[step]
        self.retry_at = None

    @event("Completed")
    def completed(self) -> None:
        self.status = "COMPLETED"

    @event("StepFailed")
    def step_failed(
        self, action: str, attempt: int, error: str, retryable: bool, uncertain: bool,
        retry_at: float | None,
    ) -> None:
        self.attempts[action] = attempt
        self.budget[action] = self.budget.get(action, 0) + 1
        step = STEP_OF.get(action, action)
        if action in STEPS and step not in self.results:
            if uncertain and step not in self.uncertain:
                self.uncertain.append(step)
            elif not retryable and step in self.uncertain:
                # A rejection under the same key settles an earlier doubt: had that call taken
                # effect, the participant would have answered with its stored result.
                self.uncertain.remove(step)
        self.retry_at = retry_at
        self.error = f"{action}: {error}"

    @event("CompensationStarted")
    def compensation_started(
        self, reason: str, error: str | None, doubtful: str | None = None,
    ) -> None:
        self.status, self.reason, self.error = "COMPENSATING", reason, error
        self.retry_at = None
        self.budget = {}
        if doubtful and doubtful not in self.uncertain:
            self.uncertain.append(doubtful)

    @event("Compensated")
    def compensated(self, step: str, action: str, attempt: int) -> None:
        self.undone.append(step)
        self.attempts[action] = max(attempt, self.attempts.get(action, 0))
        self.retry_at = None

    @event("CompensationFailed")
    def compensation_failed(self, action: str, error: str) -> None:
        self.status, self.error, self.retry_at = "COMPENSATION_FAILED", error, None

    @event("Failed")
    def failed(self, error: str | None) -> None:
        self.status = "FAILED"

    @event("CancelRequested")
    def cancel_requested_(self, by: str) -> None:
        self.cancel_requested = True

    @event("Cancelled")
    def cancelled(self) -> None:
        self.status = "CANCELLED"

    @event("RetryRequested")
    def retry_requested(self, by: str, reason: str) -> None:
        if self.status == "COMPENSATION_FAILED":
            self.status = "COMPENSATING"
        self.budget, self.retry_at = {}, None
