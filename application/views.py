"""The read side's shapes: the state view, the audit entry, and the port that stores them.

`evolve` folds one event into a state view. It is deterministic (times come from the events,
never from a clock), so a projection rebuilt from position 0 serves what it served before, and
audit replay can rebuild any workflow's view from its events alone.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, Protocol

from domain.definitions import Definition, Step

STATUS_AFTER_EVENT = {
    "Started": "STARTED", "Waiting": "WAITING", "Completed": "COMPLETED",
    "CompensationStarted": "COMPENSATING", "Failed": "FAILED",
    "CompensationFailed": "COMPENSATION_FAILED", "Cancelled": "CANCELLED",
}
_HIDDEN = {"originator_id", "originator_version", "timestamp", "originator_topic"}
_ABSENT = object()


@dataclass(frozen=True)
class Shape:
    """What a definition version's state views look like beyond the common fields: the name
    of its business key (`orderId`) and, per step, the kept names it hoists to the top."""

    key_name: str
    kept: dict[str, tuple[str, ...]]

    @property
    def kept_names(self) -> tuple[str, ...]:
        return tuple(name for names in self.kept.values() for name in names)

    @classmethod
    def of(cls, definition: Definition) -> Shape:
        """The shape of a compiled definition's state views."""
        return cls(definition.key, {s.name: tuple(s.keep) for s in definition.flat_steps
                                    if isinstance(s, Step)})


# A definition version's shape, by name and version (immutable, so readers cache it).
Shapes = Callable[[str, int], Shape]


def cached(shapes: Shapes) -> Shapes:
    """`shapes`, asked once per definition version: a version never changes, and folding
    asks for the shape of every workflow's first event and of every step it records."""
    known: dict[tuple[str, int], Shape] = {}

    def shape(name: str, version: int) -> Shape:
        found = known.get((name, version))
        if found is None:
            found = known[(name, version)] = shapes(name, version)
        return found

    return shape


def iso(moment: datetime) -> str:
    """A fixed-width UTC timestamp: sorts as text in any database."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def event_type(event: Any) -> str:
    """The event's name in the audit: a step's own name for its success (`Charged`), else
    the event's class name."""
    return str(getattr(event, "name", None) or type(event).__name__)


def event_data(event: Any) -> dict[str, Any]:
    """What the event says, less the envelope every event has."""
    return {
        _camel(k): v for k, v in vars(event).items() if k not in _HIDDEN and not k.startswith("_")
    }


def evolve(view: dict[str, Any] | None, event: Any, shapes: Shapes) -> dict[str, Any]:
    """The state view after `event`; `view` is None before a workflow's first event.

    The events say everything but the view's shape (the key's name, the kept names), which
    comes from the definition version the workflow started on."""
    kind, at = type(event).__name__, iso(event.timestamp)
    if view is None:
        shape = shapes(event.definition, event.definition_version)
        view = {"workflowId": str(event.originator_id), shape.key_name: event.key,
                "status": "STARTED", **dict.fromkeys(shape.kept_names), "error": None,
                "attempts": {}, "createdAt": at, "definition": event.definition,
                "definitionVersion": event.definition_version, "key": event.key,
                "results": {}}
    view = {**view, "attempts": dict(view["attempts"]), "updatedAt": at,
            "version": event.originator_version}
    if kind in STATUS_AFTER_EVENT:
        view["status"] = STATUS_AFTER_EVENT[kind]
    result = getattr(event, "result", _ABSENT)
    if result is not _ABSENT:  # a step done: StepSucceeded, or the order's from before
        step = event.step
        view["results"] = {**view["results"], step: result}
        shape = shapes(view["definition"], view["definitionVersion"])
        for name in shape.kept.get(step, ()):
            view[name] = result.get(name) if isinstance(result, dict) else None
        if event.status and view["status"] != "COMPENSATING":  # a doubt resolved late
            view["status"] = event.status
        if event.attempt:
            view["attempts"][step] = max(event.attempt, view["attempts"].get(step, 0))
    elif kind == "StepFailed":
        view["attempts"][event.action] = event.attempt
        view["error"] = f"{event.action}: {event.error}"
    elif kind == "Compensated":
        view["attempts"][event.action] = max(
            event.attempt, view["attempts"].get(event.action, 0))
    elif kind in ("CompensationStarted", "CompensationFailed") and event.error:
        view["error"] = event.error
    elif kind == "RetryRequested" and view["status"] == "COMPENSATION_FAILED":
        view["status"] = "COMPENSATING"
    return view


def fold(events: Iterable[Any], shapes: Shapes) -> dict[str, Any] | None:
    """The state view rebuilt from a workflow's events alone."""
    view = None
    for event in events:
        view = evolve(view, event, shapes)
    return view


@dataclass(frozen=True)
class AuditEntry:
    """One line of a workflow's audit trail."""

    workflow_id: str
    position: int  # the event's version within its workflow
    type: str
    timestamp: str
    data: dict[str, Any]

    @classmethod
    def of(cls, event: Any) -> AuditEntry:
        return cls(str(event.originator_id), event.originator_version, event_type(event),
                   iso(event.timestamp), event_data(event))


@dataclass(frozen=True)
class Page:
    """One page of a search, newest first, and the cursor of the next page (None at the end)."""

    items: list[dict[str, Any]]
    next: str | None


@dataclass(frozen=True)
class Search:
    """The filters of GET /workflows."""

    status: str | None = None
    definition: str | None = None
    key: str | None = None
    created_after: str | None = None
    created_before: str | None = None
    limit: int = 50
    after: str | None = None


# What a projection makes of a batch, given the current states of the workflows it touches:
# the states to write and the audit entries to add.
Change = Callable[
    [dict[str, dict[str, Any]]], tuple[Sequence[dict[str, Any]], Sequence[AuditEntry]]]


@dataclass(frozen=True)
class ViewsWritten:
    """What one write to the state views tells those waiting on them: its position, and the
    states it wrote (told by the projection in this process) or, told by another process, the
    workflows it ended; a field that is None was not told, and is read back."""

    position: int | None = None
    states: list[dict[str, Any]] | None = None
    ended: list[str] | None = None


class WorkflowViews(Protocol):
    """Where the projections keep the state views and the audit trail, with their position."""

    def position(self, name: str) -> int:
        """The last store position the named reader has processed (0 before any)."""
        ...

    def set_position(self, name: str, position: int) -> None:
        """Records a reader's position on its own (for readers that write no rows)."""
        ...

    def states(self, workflow_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        """The current state views of these workflows (those that have one)."""
        ...

    def write(self, name: str, states: Sequence[dict[str, Any]], audit: Sequence[AuditEntry],
              position: int) -> None:
        """Writes state views, audit entries and the position, in one transaction."""
        ...

    def update(self, name: str, workflow_ids: Iterable[str], change: Change,
               position: int) -> list[dict[str, Any]]:
        """Reads these workflows' states, writes what `change` makes of them and the position,
        all in one transaction; returns the states written."""
        ...

    def state(self, workflow_id: str) -> dict[str, Any] | None:
        """One workflow's state view."""
        ...

    def state_by_key(self, definition: str, key: str) -> dict[str, Any] | None:
        """The state view of the definition's workflow for `key`."""
        ...

    def audit(self, workflow_id: str) -> list[AuditEntry]:
        """The workflow's audit trail, in order (empty when unknown)."""
        ...

    def search(self, query: Search) -> Page:
        """State views matching the query, newest first."""
        ...

    def counts(self, definition: str | None = None) -> dict[str, int]:
        """How many workflows are in each status, of one definition or of all."""
        ...

    def version_counts(self, definition: str) -> dict[int, dict[str, int]]:
        """How many of a definition's workflows are in each status, per version."""
        ...

    def per_minute(self, since: str) -> dict[str, tuple[int, int]]:
        """(workflows created, workflows that reached a terminal status) per minute
        ("YYYY-MM-DDTHH:MM", UTC) since the time `since`; minutes with neither are absent."""
        ...

    def ping(self) -> None:
        """Raises when the database cannot be reached."""
        ...


@lru_cache(maxsize=256)  # a handful of field names, converted for every event replayed
def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)

