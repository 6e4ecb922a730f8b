"""Blue/green rebuild of the state and audit views from the event store, position 0 up.

A fresh set of tables is filled in large batches (one transaction each) while the API keeps
reading the served set. Once the fresh set is within a batch of the store's head, one
transaction locks the served tables, folds the last events in, puts the fresh tables in the
served tables' place and records their position. The live projection writes by table name and
folds inside its own write transaction, so after the switch it simply continues on the new
tables, skipping the events they already hold.

A rebuild only reads events: it never runs a policy, so it can never call a participant.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from itertools import islice
from typing import Any, Protocol

from application.projection import NAME, PROJECTIONS, fold_batch
from application.views import AuditEntry, cached
from application.workflows import Workflows


class UnknownProjection(LookupError):
    """No projection has this name."""

    def __init__(self, name: str):
        super().__init__(f"no projection {name!r}; known: {', '.join(PROJECTIONS)}")
        self.name = name


class RebuildBusy(RuntimeError):
    """Another rebuild of the same views is running."""


class Tables(Protocol):
    """The fresh tables, inside a transaction the caller holds."""

    def states(self, workflow_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        """The state rows of these workflows (those that have one)."""
        ...

    def write(self, states: Sequence[dict[str, Any]], audit: Sequence[AuditEntry]) -> None:
        """Upserts state rows and adds audit rows."""
        ...


class RebuildTarget(Protocol):
    """Where a rebuild builds its tables and how it switches them in."""

    def exclusive(self) -> AbstractContextManager[None]:
        """Held for the whole rebuild; raises RebuildBusy when another one holds it."""
        ...

    def prepare(self) -> None:
        """Drops whatever an interrupted rebuild left and creates fresh, empty tables."""
        ...

    def batch(self) -> AbstractContextManager[Tables]:
        """One transaction on the fresh tables."""
        ...

    def add_indexes(self) -> None:
        """Creates the fresh tables' secondary indexes (after the bulk load: it is faster)."""
        ...

    def switch(self, name: str, catch_up: Callable[[Tables], int]) -> None:
        """In one transaction: locks the served tables, lets `catch_up` fold the last events
        into the fresh ones and return their position, swaps the sets and records it."""
        ...

    def finish(self) -> None:
        """Drops the retired tables."""
        ...


@dataclass(frozen=True)
class RebuildReport:
    """What a rebuild did."""

    name: str
    events: int
    position: int
    seconds: float

    @property
    def rate(self) -> float:
        """Events per second."""
        return self.events / self.seconds if self.seconds > 0 else 0.0


# called after each batch with (position reached, store head, events so far)
Progress = Callable[[int, int, int], None]


class Rebuild:
    """Rebuilds one projection blue/green; see the module's docstring."""

    def __init__(self, app: Workflows, target: RebuildTarget, name: str = NAME,
                 batch: int = 2000, cache: int = 200_000, progress: Progress | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if name not in PROJECTIONS:
            raise UnknownProjection(name)
        self.app, self.target, self.name, self.batch = app, target, name, batch
        self.cache_size, self.progress, self.clock = cache, progress, clock
        # Recent states, so that a batch reads from the tables only the workflows that were
        # evicted; first seen, first evicted (a workflow's events are close together in time).
        self._states: dict[str, dict[str, Any]] = {}
        self._shapes = cached(app.shape)
        self.events = 0

    def run(self) -> RebuildReport:
        """Builds, catches up, switches; returns the count, the position and the time taken."""
        began = self.clock()
        with self.target.exclusive():
            self.target.prepare()
            position = self._copy(0, self._head())
            self.target.add_indexes()
            while self._head() - position > self.batch:  # keep the locked tail short
                position = self._copy(position, self._head())
            final = position

            def catch_up(tables: Tables) -> int:
                nonlocal final
                final = self._fold_to(tables, position, self._head())
                return final

            self.target.switch(self.name, catch_up)
            self.target.finish()
        return RebuildReport(self.name, self.events, final, self.clock() - began)

    def _head(self) -> int:
        return self.app.recorder.max_notification_id() or 0

    def _copy(self, position: int, head: int) -> int:
        """Batches from `position` to `head`, one transaction each."""
        while position < head:
            with self.target.batch() as tables:
                reached = self._fold_to(tables, position, head, batches=1)
            if reached == position:
                break
            position = reached
        return position

    def _fold_to(self, tables: Tables, position: int, head: int,
                 batches: int | None = None) -> int:
        while position < head and batches != 0:
            notes = self.app.recorder.select_notifications(
                start=position + 1, limit=self.batch, stop=head)
            if not notes:
                break
            self._apply(tables, notes)
            position = notes[-1].id
            batches = None if batches is None else batches - 1
            if self.progress is not None:
                self.progress(position, head, self.events)
        return position

    def _apply(self, tables: Tables, notes: Sequence[Any]) -> None:
        events = [self.app.mapper.to_domain_event(n) for n in notes]
        missing = {str(e.originator_id) for e in events
                   if e.originator_version > 1 and str(e.originator_id) not in self._states}
        if missing:
            self._states.update(tables.states(missing))
        touched = fold_batch(self._states, events, self._shapes)
        tables.write(touched, [AuditEntry.of(e) for e in events])
        self.events += len(events)
        excess = len(self._states) - self.cache_size
        if excess > 0:  # every state evicted has been written: the tables have it
            for wid in list(islice(self._states, excess)):
                del self._states[wid]
