"""Stored histories in bulk, for the operations tests and the rebuild measurement.

Drives real Workflow aggregates of the bundled `order` definition (compiled by the real
compiler, or the version the system registered) through their own commands (no orchestrator,
no participants) and saves them with the real Workflows application, many per transaction.
Four shapes, in turn: completed, failed and compensated, COMPENSATION_FAILED, and cancelled.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from application.workflows import Workflows
from domain.definitions import Definition, compile_definition
from domain.workflow import Due, Workflow

MAX_ATTEMPTS = 3
BUNDLED = Path(__file__).resolve().parents[1] / "definitions"


def bundled(name: str = "order") -> Definition:
    """A bundled definition, compiled from its YAML."""
    return compile_definition(yaml.safe_load((BUNDLED / f"{name}.yaml").read_text("utf-8")))


ORDER = bundled("order")


def order(key: str, cents: int = 500, skus: list[str] | None = None,
          address: str = "1 Main St", version: int = 1) -> Workflow:
    """A new workflow of the order definition (version `version`) for order `key`."""
    return Workflow(definition="order", definition_version=version, key=key,
                    input={"cents": cents, "skus": skus or ["sku-1"], "address": address})


def due(workflow: Workflow, definition: Definition = ORDER) -> Due:
    """The one call the workflow needs now (the order saga makes one at a time)."""
    plan = workflow.advance(definition, workflow.created_on.timestamp())
    if len(plan.dues) != 1:
        raise AssertionError(f"{len(plan.dues)} calls due in {workflow.status}")
    return plan.dues[0]


def kept(step_due: Due, value: str) -> dict[str, Any]:
    """What a step keeps of a 2xx body that carries `value` where each of its `keep`
    expressions looks (they are plain field names in the bundled definitions)."""
    if step_due.keeps is None:
        return {}
    return step_due.keeps.extract({e.text: value for e in step_due.keeps.keep.values()})


def answer(workflow: Workflow, ok: bool = True, retryable: bool = False,
           uncertain: bool = False, error: str = "no", result: str | None = None,
           retry_at: float | None = None, definition: Definition = ORDER) -> Due:
    """Answers the due call: a success whose ids are `result` (default `<action>-<key>`), or a
    failure as given."""
    found = due(workflow, definition)
    if ok:
        workflow.succeed(definition, found.action, found.attempt,
                         kept(found, result or f"{found.action}-{workflow.key}"))
    else:
        workflow.fail(definition, found.action, found.attempt, error, retryable, uncertain,
                      MAX_ATTEMPTS, retry_at=retry_at)
    return found


def settle(workflow: Workflow, definition: Definition = ORDER) -> None:
    """Takes the transitions that need no call (Completed, Failed, Cancelled)."""
    plan = workflow.advance(definition, workflow.created_on.timestamp())
    if plan.dues:
        raise AssertionError(f"{[d.action for d in plan.dues]} still due in {workflow.status}")


def completed(workflow: Workflow, definition: Definition = ORDER) -> None:
    for _ in range(3):
        answer(workflow, definition=definition)
    settle(workflow, definition)


def failed(workflow: Workflow, definition: Definition = ORDER) -> None:
    answer(workflow, definition=definition)
    answer(workflow, ok=False, error="rejected (422): out of stock", definition=definition)
    answer(workflow, definition=definition)  # the refund
    settle(workflow, definition)


def compensation_failed(workflow: Workflow, definition: Definition = ORDER) -> None:
    answer(workflow, definition=definition)
    answer(workflow, ok=False, error="rejected (422): out of stock", definition=definition)
    for _ in range(MAX_ATTEMPTS):
        answer(workflow, ok=False, retryable=True, error="503: payment down",
               definition=definition)


def cancelled(workflow: Workflow, definition: Definition = ORDER) -> None:
    answer(workflow, definition=definition)
    workflow.request_cancel()
    answer(workflow, definition=definition)  # the refund
    settle(workflow, definition)


SHAPES: dict[str, Callable[[Workflow, Definition], None]] = {
    "COMPLETED": completed, "FAILED": failed,
    "COMPENSATION_FAILED": compensation_failed, "CANCELLED": cancelled,
}


def build(workflows: Workflows, count: int, prefix: str = "h", per_save: int = 500,
          shapes: tuple[str, ...] = tuple(SHAPES), interleave: bool = False) -> dict[str, str]:
    """Stores `count` workflows of the latest `order` version the application knows (orders
    `<prefix>-<n>`); returns order id -> final status.

    With `interleave`, the events of each `per_save` workflows are stored round by round
    (every first event, then every second...), as when many workflows run at once."""
    assert workflows.definitions is not None, "the histories need the registered definitions"
    latest = workflows.definitions.get("order")
    outcome: dict[str, str] = {}
    pending: list[Workflow] = []
    for n in range(count):
        status = shapes[n % len(shapes)]
        workflow = order(f"{prefix}-{n}", cents=100 + n, address=f"{n} Main St",
                         version=latest.version)
        SHAPES[status](workflow, latest.definition)
        if workflow.status != status:
            raise AssertionError(f"{status} history ended {workflow.status}")
        outcome[workflow.key] = status
        pending.append(workflow)
        if len(pending) >= per_save:
            _save(workflows, pending, interleave)
            pending = []
    if pending:
        _save(workflows, pending, interleave)
    return outcome


def trip_waiting(workflows: Workflows, key: str) -> Workflow:
    """A trip (the bundled definition's latest version) whose flight and hotel are booked,
    whose car was skipped, now WAITING for its approval: saved, and stable (nothing is due
    until a signal or its timeout)."""
    assert workflows.definitions is not None, "the histories need the registered definitions"
    latest = workflows.definitions.get("trip")
    workflow = Workflow(definition="trip", definition_version=latest.version, key=key, input={
        "from": "LHR", "to": "JFK", "cents": 500_000,
        "dates": {"depart": "2027-01-10", "return": "2027-01-17"}})
    now = workflow.created_on.timestamp()
    for call in workflow.advance(latest.definition, now).dues:
        workflow.succeed(latest.definition, call.action, call.attempt,
                         kept(call, f"{call.action}-{key}"))
    workflow.advance(latest.definition, now)
    if workflow.status != "WAITING":
        raise AssertionError(f"the trip is {workflow.status}, not WAITING")
    workflows.save(workflow)
    return workflow


def _save(workflows: Workflows, group: list[Workflow], interleave: bool) -> None:
    if not interleave:
        workflows.save(*group) if len(group) > 1 else workflows.save(group[0])
        return
    events = [e for w in group for e in w.collect_events()]
    events.sort(key=lambda e: e.originator_version)  # stable: workflows stay in turn
    workflows.events.put(events)
