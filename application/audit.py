"""Audit replay: a workflow's state rebuilt from its events alone, its timeline, and a field
by field comparison with the state view the API serves.

Replay only reads. It folds stored events with the same `evolve` the projection uses and never
runs a policy, so it can never call a participant or write anything.
"""
from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from application.projection import NAME
from application.views import WorkflowViews, cached, event_data, event_type, evolve, fold, iso
from application.workflows import Workflows


@dataclass(frozen=True)
class Moment:
    """One line of a timeline: an event, its data, and how long after the previous one."""

    version: int
    timestamp: str
    type: str
    data: dict[str, Any]
    since_previous_s: float | None


@dataclass(frozen=True)
class Difference:
    """A field where the replayed state and the served view disagree."""

    field: str
    replayed: Any
    served: Any


@dataclass(frozen=True)
class Replay:
    """A workflow rebuilt from its events: the state and the timeline (both empty if unknown)."""

    workflow_id: str
    state: dict[str, Any] | None
    timeline: list[Moment]


@dataclass(frozen=True)
class Verdict:
    """How the served view compares with the replay. `behind` counts events the projection
    has not reached yet: the view is compared at its own version, and that is not a mismatch."""

    differences: list[Difference]
    behind: int = 0

    @property
    def ok(self) -> bool:
        return not self.differences


@dataclass
class Summary:
    """What replaying every workflow found."""

    workflows: int = 0
    events: int = 0
    position: int = 0
    seconds: float = 0.0
    mismatches: dict[str, list[Difference]] = field(default_factory=dict)


def timeline(events: Sequence[Any]) -> list[Moment]:
    """The events as moments, each with the seconds since the one before."""
    moments, previous = [], None
    for event in events:
        since: float | None = (
            None if previous is None else (event.timestamp - previous).total_seconds())
        moments.append(Moment(event.originator_version, iso(event.timestamp), event_type(event),
                              event_data(event), since))
        previous = event.timestamp
    return moments


def replay(app: Workflows, workflow_id: uuid.UUID) -> Replay:
    """Reads the workflow's events from the store and folds them."""
    events = list(app.events.get(workflow_id))
    return Replay(str(workflow_id), fold(events, app.shape), timeline(events))


def differences(replayed: dict[str, Any] | None,
                served: dict[str, Any] | None) -> list[Difference]:
    """Every field whose value differs, in the state view's order."""
    if replayed is None and served is None:
        return []
    if replayed is None or served is None:
        return [Difference("(state view)", "absent" if replayed is None else "present",
                           "absent" if served is None else "present")]
    keys = [*replayed, *(k for k in served if k not in replayed)]
    return [Difference(k, replayed.get(k), served.get(k))
            for k in keys if replayed.get(k) != served.get(k)]


def verify(app: Workflows, views: WorkflowViews, workflow_id: uuid.UUID,
           name: str = NAME, attempts: int = 3) -> tuple[Replay, Verdict]:
    """Replays the workflow and compares it with its served view."""
    for _ in range(attempts):
        served = views.state(str(workflow_id))
        events = list(app.events.get(workflow_id))
        result = Replay(str(workflow_id), fold(events, app.shape), timeline(events))
        verdict = _compare(app, events, served, lagging=_lagging(app, views, name))
        # The projection may have moved between our reads: look again before accusing it.
        if not _moved(verdict):
            return result, verdict
    return result, verdict


def replay_all(app: Workflows, views: WorkflowViews | None, name: str = NAME,
               batch: int = 5000, progress: Callable[[int, int], None] | None = None,
               clock: Callable[[], float] = time.monotonic) -> Summary:
    """Replays every workflow, scanning the store once in batches and folding in memory;
    with `views`, compares each with its served view (up to the projection's position, so
    that events it has not reached yet are not mistaken for mismatches). `progress` is told
    the position reached and the position the replay goes to."""
    began = clock()
    summary = Summary()
    summary.position = (views.position(name) if views is not None
                        else app.recorder.max_notification_id() or 0)
    states: dict[str, dict[str, Any]] = {}
    shapes = cached(app.shape)
    start = 1
    while start <= summary.position:
        notes = app.recorder.select_notifications(start=start, limit=batch, stop=summary.position)
        if not notes:
            break
        for note in notes:
            event = app.mapper.to_domain_event(note)
            wid = str(event.originator_id)
            states[wid] = evolve(states.get(wid), event, shapes)
        summary.events += len(notes)
        start = notes[-1].id + 1
        if progress is not None:
            progress(notes[-1].id, summary.position)
    summary.workflows = len(states)
    if views is not None:
        ids = list(states)
        for i in range(0, len(ids), 1000):
            served = views.states(ids[i:i + 1000])
            for wid in ids[i:i + 1000]:
                found = _compare_all(app, wid, states[wid], served.get(wid))
                if found:
                    summary.mismatches[wid] = found
    summary.seconds = clock() - began
    return summary


def _compare(app: Workflows, events: list[Any], served: dict[str, Any] | None,
             lagging: bool) -> Verdict:
    if lagging and events and served is None:
        return Verdict([], behind=len(events))
    if lagging and served is not None and served["version"] < len(events):
        # The projection has not reached the rest yet: compare at the view's own version.
        return Verdict(differences(fold(events[:served["version"]], app.shape), served),
                       behind=len(events) - served["version"])
    return Verdict(differences(fold(events, app.shape), served))


def _compare_all(app: Workflows, wid: str, replayed: dict[str, Any],
                 served: dict[str, Any] | None) -> list[Difference]:
    if served is not None and served["version"] > replayed["version"]:
        # Projected after the position we replayed to: compare at the view's own version.
        replayed = fold(app.events.get(uuid.UUID(wid), lte=served["version"]),
                        app.shape) or replayed
    return differences(replayed, served)


def _lagging(app: Workflows, views: WorkflowViews, name: str) -> bool:
    return views.position(name) < (app.recorder.max_notification_id() or 0)


def _moved(verdict: Verdict) -> bool:
    return any(d.field in ("version", "(state view)") for d in verdict.differences)
