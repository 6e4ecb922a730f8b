"""The Workflows application: the commands that start, record, cancel and retry workflows.

It takes and returns primitives and UUIDs. Library errors are turned into our own here, at the
boundary, so that nothing above it needs to know the event store.
"""
from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.persistence import IntegrityError, Recording

from application.batching import SaveBatcher
from domain.workflow import InvalidTransition, Workflow

MAX_CENTS = 10**12
MAX_SKUS = 100
MAX_ADDRESS = 500
CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


class InvalidOrder(ValueError):
    """The order's fields are out of range; nothing was recorded. `path` names the field."""

    def __init__(self, message: str, path: str):
        super().__init__(message)
        self.path = path


class WorkflowNotFound(LookupError):
    """No workflow has this id."""

    def __init__(self, workflow_id: uuid.UUID | str):
        super().__init__(f"no workflow {workflow_id}")
        self.workflow_id = workflow_id


class OrderConflict(Exception):
    """The order was started before with a different body."""

    def __init__(self, order_id: str, workflow_id: uuid.UUID):
        super().__init__(f"order {order_id} was already started with a different body")
        self.order_id, self.workflow_id = order_id, workflow_id


@dataclass(frozen=True)
class Started:
    """What a start did: the workflow, whether this call created it, and its store position."""

    workflow_id: uuid.UUID
    created: bool
    position: int | None


def validate_order(cents: Any, skus: Any, address: Any) -> None:
    """Raises InvalidOrder naming the first field that breaks the contract's ranges."""
    if isinstance(cents, bool) or not isinstance(cents, int) or not 1 <= cents <= MAX_CENTS:
        raise InvalidOrder(f"cents must be an integer from 1 to {MAX_CENTS}", "cents")
    if not isinstance(skus, list) or not 1 <= len(skus) <= MAX_SKUS:
        raise InvalidOrder(f"skus must be a list of 1 to {MAX_SKUS} strings", "skus")
    for i, sku in enumerate(skus):
        if not isinstance(sku, str) or not 0 < len(sku) <= 100:
            raise InvalidOrder("each sku must be a string of 1 to 100 characters", f"skus[{i}]")
        _plain_text(f"skus[{i}]", sku)
    if not isinstance(address, str) or not 1 <= len(address) <= MAX_ADDRESS:
        raise InvalidOrder(f"address must be a string of 1 to {MAX_ADDRESS} characters",
                           "address")
    _plain_text("address", address)


def _plain_text(field: str, value: str) -> None:
    """Text that every reader takes the same way: encodable as UTF-8 (a lone surrogate is
    valid JSON but cannot be stored or sent on) and free of control characters (a terminal, a
    log line or a participant would misread a NUL, an ESC or a line break)."""
    if CONTROL.search(value):
        raise InvalidOrder(f"{field} must not hold control characters", field)
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidOrder(f"{field} must be valid Unicode text (no lone surrogates)",
                           field) from None


class Workflows(Application[uuid.UUID]):
    """Stores Workflow aggregates; every change goes through one of these commands."""

    name = "Workflows"  # pinned: the PostgreSQL table names derive from it

    def __init__(self, env: dict[str, str] | None = None) -> None:
        super().__init__(env)
        self._listeners: list[Callable[[], None]] = []
        self._batcher = SaveBatcher(super().save)

    def save(self, *objs: Any, **kwargs: Any) -> list[Recording[uuid.UUID]]:
        """Saves one aggregate together with those other threads are saving (group commit)."""
        if len(objs) == 1 and not kwargs and isinstance(objs[0], Workflow):
            return self._batcher.save(objs[0])
        return super().save(*objs, **kwargs)

    def close(self) -> None:
        self._batcher.close()
        super().close()

    def start(self, order_id: str, cents: int, skus: list[str], address: str) -> Started:
        """Starts the order's workflow, or finds the one it already has (same body)."""
        validate_order(cents, skus, address)
        workflow = Workflow(order_id=order_id, cents=cents, skus=list(skus), address=address)
        try:
            recordings = self.save(workflow)
        except IntegrityError:
            existing = self.load(workflow.id)
            if not existing.same_order(cents, skus, address):
                raise OrderConflict(order_id, existing.id) from None
            return Started(existing.id, created=False, position=None)
        return Started(workflow.id, created=True, position=_last_position(recordings))

    def load(self, workflow_id: uuid.UUID) -> Workflow:
        """The workflow as recorded now."""
        try:
            return self.repository.get(workflow_id)
        except AggregateNotFoundError:
            raise WorkflowNotFound(workflow_id) from None

    def cancel(self, workflow_id: uuid.UUID) -> int | None:
        """Asks a running workflow to compensate and end CANCELLED."""
        return self.change(workflow_id, Workflow.request_cancel)

    def retry(self, workflow_id: uuid.UUID, by: str, reason: str) -> int | None:
        """Resumes a COMPENSATION_FAILED (or stuck) workflow where it stopped."""
        return self.change(workflow_id, lambda w: w.request_retry(by=by, reason=reason))

    def change(self, workflow_id: uuid.UUID, command: Callable[[Workflow], Any]) -> int | None:
        """Applies `command` to the latest version, again on a concurrent write (the worker may
        record an outcome between our read and our write). Returns the last store position."""
        for _ in range(20):
            workflow = self.load(workflow_id)
            command(workflow)
            try:
                return _last_position(self.save(workflow))
            except IntegrityError:
                continue
        raise InvalidTransition(workflow_id, "busy", "record a change under contention")

    def record(self, workflow: Workflow) -> list[Recording[uuid.UUID]]:
        """Saves what the worker decided; IntegrityError means someone wrote first."""
        return self.save(workflow)

    def add_listener(self, listener: Callable[[], None]) -> None:
        """`listener()` is called after every save: it wakes this process's followers at once."""
        self._listeners.append(listener)

    def _notify(self, recordings: list[Recording[uuid.UUID]]) -> None:
        for listener in self._listeners:
            listener()


def _last_position(recordings: list[Recording[uuid.UUID]]) -> int | None:
    return recordings[-1].notification.id if recordings else None
