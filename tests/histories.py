"""Stored histories in bulk, for the operations tests and the rebuild measurement.

Drives real Workflow aggregates through their own commands (no orchestrator, no participants)
and saves them with the real Workflows application, many per transaction. Four shapes, in
turn: completed, failed and compensated, COMPENSATION_FAILED, and cancelled.
"""
from __future__ import annotations

from collections.abc import Callable

from application.workflows import Workflows
from domain.workflow import Workflow

MAX_ATTEMPTS = 3


def _answer(workflow: Workflow, ok: bool = True, retryable: bool = False,
            uncertain: bool = False, error: str = "no") -> None:
    due = workflow.advance()
    if due is None:
        raise AssertionError(f"nothing due in {workflow.status}")
    if ok:
        workflow.succeed(due.action, due.attempt, f"{due.action}-{workflow.order_id}")
    else:
        workflow.fail(due.action, due.attempt, error, retryable, uncertain, MAX_ATTEMPTS,
                      retry_at=None)


def completed(workflow: Workflow) -> None:
    for _ in range(3):
        _answer(workflow)
    workflow.advance()


def failed(workflow: Workflow) -> None:
    _answer(workflow)
    _answer(workflow, ok=False, error="rejected (422): out of stock")
    _answer(workflow)  # the refund
    workflow.advance()


def compensation_failed(workflow: Workflow) -> None:
    _answer(workflow)
    _answer(workflow, ok=False, error="rejected (422): out of stock")
    for _ in range(MAX_ATTEMPTS):
        _answer(workflow, ok=False, retryable=True, error="503: payment down")


def cancelled(workflow: Workflow) -> None:
    _answer(workflow)
    workflow.request_cancel()
    _answer(workflow)  # the refund
    workflow.advance()


SHAPES: dict[str, Callable[[Workflow], None]] = {
    "COMPLETED": completed, "FAILED": failed,
    "COMPENSATION_FAILED": compensation_failed, "CANCELLED": cancelled,
}


def build(workflows: Workflows, count: int, prefix: str = "h", per_save: int = 500,
          shapes: tuple[str, ...] = tuple(SHAPES), interleave: bool = False) -> dict[str, str]:
    """Stores `count` workflows (orders `<prefix>-<n>`); returns order id -> final status.

    With `interleave`, the events of each `per_save` workflows are stored round by round
    (every first event, then every second...), as when many workflows run at once."""
    outcome: dict[str, str] = {}
    pending: list[Workflow] = []
    for n in range(count):
        status = shapes[n % len(shapes)]
        workflow = Workflow(order_id=f"{prefix}-{n}", cents=100 + n, skus=["sku-1"],
                            address=f"{n} Main St")
        SHAPES[status](workflow)
        if workflow.status != status:
            raise AssertionError(f"{status} history ended {workflow.status}")
        outcome[workflow.order_id] = status
        pending.append(workflow)
        if len(pending) >= per_save:
            _save(workflows, pending, interleave)
            pending = []
    if pending:
        _save(workflows, pending, interleave)
    return outcome


def _save(workflows: Workflows, group: list[Workflow], interleave: bool) -> None:
    if not interleave:
        workflows.save(*group) if len(group) > 1 else workflows.save(group[0])
        return
    events = [e for w in group for e in w.collect_events()]
    events.sort(key=lambda e: e.originator_version)  # stable: workflows stay in turn
    workflows.events.put(events)
