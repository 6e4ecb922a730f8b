"""Group commit: saves from many threads go to the store together, in one transaction.

Every insert into the event store takes the events table's lock and waits for its commit, so
writes are serialized; one transaction of fifty workflows costs about what one of a single
workflow costs. A writer blocks only until its batch is committed, so what it was told is
what is durable.
"""
from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Any

from eventsourcing.persistence import IntegrityError, PersistenceError


class SaveBatcher:
    """Collects save requests and hands them to `save_many` in batches of up to `max_batch`.

    When a batch fails on a conflict, or on events that cannot be encoded, each of its saves is
    tried alone, so each writer gets its own answer: its recordings, or its own error. One bad
    save never fails its neighbours."""

    def __init__(self, save_many: Callable[..., list[Any]], max_batch: int = 200) -> None:
        self.save_many, self.max_batch = save_many, max_batch
        self._queue: list[tuple[Any, Future[list[Any]]]] = []
        self._cv = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="save-batcher", daemon=True)
        self._thread.start()

    def save(self, aggregate: Any) -> list[Any]:
        """Saves the aggregate's pending events; returns their recordings once committed."""
        future: Future[list[Any]] = Future()
        with self._cv:
            if self._closed:
                raise RuntimeError("the store is closed")
            self._queue.append((aggregate, future))
            self._cv.notify()
        return future.result()

    def close(self) -> None:
        with self._cv:
            self._closed = True
            self._cv.notify()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while True:
            with self._cv:
                while not self._queue and not self._closed:
                    self._cv.wait()
                if not self._queue:
                    return
                batch, self._queue = (
                    self._queue[:self.max_batch], self._queue[self.max_batch:])
            self._commit(batch)

    def _commit(self, batch: Sequence[tuple[Any, Future[list[Any]]]]) -> None:
        # Take each aggregate's pending events first: a save drains them even when it fails,
        # and the one-by-one retry after a conflict must still have every writer's events.
        events = [aggregate.collect_events() for aggregate, _ in batch]
        ids = [a.id for a, _ in batch]
        if len(batch) > 1 and len(set(ids)) == len(ids):
            try:
                recordings = self.save_many(*[e for mine in events for e in mine])
            except IntegrityError:
                pass  # someone in the batch lost a race: find out who, one by one
            except PersistenceError as e:  # the store failed: every writer gets its error
                for _, future in batch:
                    future.set_exception(e)
                return
            except Exception:  # noqa: BLE001 - one writer's events could not be encoded:
                pass  # find whose, one by one, so that the others are saved all the same
            else:
                by_id: dict[Any, list[Any]] = {}
                for r in recordings:
                    by_id.setdefault(r.domain_event.originator_id, []).append(r)
                for aggregate, future in batch:
                    future.set_result(by_id.get(aggregate.id, []))
                return
        for (_, future), mine in zip(batch, events, strict=True):
            try:
                future.set_result(self.save_many(*mine))
            except Exception as e:  # noqa: BLE001 - each writer gets the store's error
                future.set_exception(e)
