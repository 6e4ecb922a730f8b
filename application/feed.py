"""The audit feed: every event of every workflow in store order, for downstream systems.

The event store is this system's outbox. A consumer keeps the position of the last event it
handled and asks for those after it, so it sees each event once and in order, across
restarts. `GET /events` and `orchestrator audit export` both serve this feed.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from eventsourcing.application import Application

from application.views import AuditEntry


@dataclass(frozen=True)
class FeedPage:
    """Events in store order and the position to resume after (`after` when there were none)."""

    events: list[dict[str, Any]]
    next: int


def events_after(app: Application[Any], after: int, limit: int) -> FeedPage:
    """At most `limit` events with a store position greater than `after`, oldest first."""
    notes = app.recorder.select_notifications(start=after + 1, limit=limit)
    events = []
    for note in notes:
        entry = AuditEntry.of(app.mapper.to_domain_event(note))
        events.append({"position": note.id, "workflowId": entry.workflow_id, "type": entry.type,
                       "timestamp": entry.timestamp, "data": entry.data})
    return FeedPage(events, notes[-1].id if notes else after)
