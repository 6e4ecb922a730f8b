"""The projection that builds the state views and the audit trail from the events."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from eventsourcing.persistence import Mapper

from application.views import AuditEntry, WorkflowViews, evolve


class WorkflowProjection:
    """Folds each batch of events into the views and records the batch's position with them,
    in one transaction: a crash replays the batch, and the views never run ahead or behind."""

    def __init__(self, views: WorkflowViews, mapper: Mapper[Any], name: str = "workflow_views"):
        self.views, self.mapper, self.name = views, mapper, name
        # told what each batch wrote: its position and the state views
        self.listeners: list[Callable[[int, list[dict[str, Any]]], None]] = []

    def position(self) -> int:
        return self.views.position(self.name)

    def process(self, notifications: Sequence[Any]) -> None:
        events = [self.mapper.to_domain_event(n) for n in notifications]
        wanted = {str(e.originator_id) for e in events}
        states = self.views.states(wanted)
        for event in events:
            wid = str(event.originator_id)
            current = states.get(wid)
            if current is not None and current["version"] >= event.originator_version:
                continue  # already folded in: a batch replayed after a crash
            states[wid] = evolve(current, event)
        touched = [states[w] for w in wanted if w in states]
        audit = [AuditEntry.of(e) for e in events]
        self.views.write(self.name, touched, audit, notifications[-1].id)
        for listener in self.listeners:
            listener(notifications[-1].id, touched)
