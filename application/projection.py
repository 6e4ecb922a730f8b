"""The projection that builds the state views and the audit trail from the events."""
from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from eventsourcing.persistence import Mapper

from application.views import AuditEntry, Shapes, WorkflowViews, cached, evolve

NAME = "workflow_views"
PROJECTIONS = (NAME,)  # every projection this system keeps, by the name of its position


def fold_batch(states: dict[str, dict[str, Any]], events: Iterable[Any],
               shapes: Shapes) -> list[dict[str, Any]]:
    """Folds `events` into `states` (updated in place), skipping any whose version a state
    already has (a batch replayed after a crash, or one a rebuild has done); returns the
    states of the workflows the events belong to."""
    wanted: dict[str, None] = {}
    for event in events:
        wid = str(event.originator_id)
        wanted[wid] = None
        current = states.get(wid)
        if current is not None and current["version"] >= event.originator_version:
            continue
        states[wid] = evolve(current, event, shapes)
    return [states[w] for w in wanted if w in states]


class WorkflowProjection:
    """Folds each batch of events into the views and records the batch's position with them,
    in one transaction: a crash replays the batch, and the views never run ahead or behind."""

    def __init__(self, views: WorkflowViews, mapper: Mapper[Any], shapes: Shapes,
                 name: str = NAME):
        self.views, self.mapper, self.shapes, self.name = views, mapper, cached(shapes), name
        # told what each batch wrote: its position and the state views
        self.listeners: list[Callable[[int, list[dict[str, Any]]], None]] = []

    def position(self) -> int:
        return self.views.position(self.name)

    def process(self, notifications: Sequence[Any]) -> None:
        events = [self.mapper.to_domain_event(n) for n in notifications]
        audit = [AuditEntry.of(e) for e in events]

        def change(states: dict[str, dict[str, Any]]) -> tuple[list[dict[str, Any]],
                                                                list[AuditEntry]]:
            return fold_batch(states, events, self.shapes), audit

        touched = self.views.update(
            self.name, {str(e.originator_id) for e in events}, change, notifications[-1].id)
        for listener in self.listeners:
            listener(notifications[-1].id, touched)
