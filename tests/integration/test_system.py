"""The worker's runtime: readers wake on saves, leadership coming and going leaks nothing, and
workers share the shards of one PostgreSQL database."""
from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from infrastructure.bootstrap import System, bootstrap
from tests.fakes import FakeParticipants, wait_until
from tests.ops import settings_for

ORDER: dict[str, Any] = {"cents": 100, "skus": ["a"], "address": "1 Main St"}


def _listeners() -> int:
    return sum(1 for t in threading.enumerate() if t.name.startswith("listen-workflows"))


def test_restarting_the_projection_adds_no_listener_and_still_wakes_on_saves(
        ops_system: System) -> None:
    before = _listeners()
    for _ in range(3):  # what losing and regaining the projection's lock does
        ops_system.stop_projection()
        ops_system.start_projection()

    assert _listeners() == before  # one LISTEN per process on PostgreSQL, none on SQLite
    assert len(ops_system.workflows._listeners) == 1
    started = ops_system.workflows.start("order", "wake-1", ORDER)
    wait_until(lambda: (s := ops_system.views.state(str(started.workflow_id))) is not None
               and s["status"] == "COMPLETED", 10)


# --- shards: several workers on one PostgreSQL database -------------------------------------------


class Workers:
    """Worker systems on one database, each with participants of its own."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.running: list[tuple[System, FakeParticipants]] = []

    def boot(self) -> tuple[System, FakeParticipants]:
        fake = FakeParticipants()
        system = bootstrap(settings_for(self.url), participants=fake).start_worker()
        self.running.append((system, fake))
        return system, fake

    def stop(self, system: System) -> None:
        for entry in list(self.running):
            if entry[0] is system:
                self.running.remove(entry)
                entry[1].release_all()
                system.stop(grace_s=2.0)

    def close(self) -> None:
        for system, _ in list(self.running):
            self.stop(system)


@pytest.fixture
def workers(pg_url: str) -> Iterator[Workers]:
    running = Workers(pg_url)
    yield running
    running.close()


def held(system: System) -> set[int]:
    assert system.orchestrator is not None
    return system.orchestrator.owned()


def finished(system: System, workflow_ids: list[uuid.UUID]) -> None:
    """Waits until every one of the workflows has completed."""
    def all_completed() -> bool:
        return all(system.workflows.load(w).status == "COMPLETED" for w in workflow_ids)
    wait_until(all_completed, 15, 0.05, what=f"{len(workflow_ids)} workflows to complete")


def test_two_workers_share_the_shards_and_one_takes_over_when_the_other_leaves(
        workers: Workers) -> None:
    first, first_fake = workers.boot()
    second, second_fake = workers.boot()
    shards = first.settings.shards
    wait_until(lambda: held(first) and held(second)
               and held(first) | held(second) == set(range(shards))
               and not held(first) & held(second), 15, 0.05, what="the shards to be shared")

    wids = [first.workflows.start("order", f"s-{i}", ORDER).workflow_id for i in range(24)]

    finished(first, wids)
    assert first.orchestrator is not None
    for wid in wids:  # each driven by the worker holding its shard, and by no other
        mine = first.orchestrator.shard_of(wid) in held(first)
        by_first, by_second = first_fake.actions(wid), second_fake.actions(wid)
        assert (by_first, by_second) == ((["charge", "reserve", "ship"], []) if mine
                                         else ([], ["charge", "reserve", "ship"]))
    assert first_fake.calls and second_fake.calls

    workers.stop(second)  # it leaves: its heartbeat row goes, the other takes its shards
    wait_until(lambda: held(first) == set(range(shards)), 15, 0.05,
               what="the first worker to hold every shard")
    later = [first.workflows.start("order", f"t-{i}", ORDER).workflow_id for i in range(8)]
    finished(first, later)
    for wid in later:
        assert first_fake.actions(wid) == ["charge", "reserve", "ship"]
