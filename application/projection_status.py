"""Where each projection stands: its position, the store's head, and how far behind it is."""
from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from eventsourcing.application import Application

from application.projection import PROJECTIONS
from application.views import WorkflowViews


@dataclass(frozen=True)
class ProjectionStatus:
    """`lag_events` counts store positions not yet projected; `lag_s` is the age of the oldest
    of them (0 when there are none)."""

    name: str
    position: int
    head: int
    lag_events: int
    lag_s: float


def projection_status(app: Application[uuid.UUID], views: WorkflowViews,
                      names: Iterable[str] = PROJECTIONS,
                      now: Callable[[], float] = time.time) -> list[ProjectionStatus]:
    """The status of each named projection."""
    head = app.recorder.max_notification_id() or 0
    found = []
    for name in names:
        position = views.position(name)
        lag_s = 0.0
        if position < head:
            oldest = app.recorder.select_notifications(start=position + 1, limit=1)
            if oldest:
                event: Any = app.mapper.to_domain_event(oldest[0])
                lag_s = max(0.0, now() - event.timestamp.timestamp())
        found.append(ProjectionStatus(name, position, head, max(0, head - position), lag_s))
    return found
