"""The worker's runtime: readers wake on saves, and leadership coming and going leaks nothing."""
from __future__ import annotations

import threading

from infrastructure.bootstrap import System
from tests.fakes import wait_until


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
    started = ops_system.workflows.start("wake-1", 100, ["a"], "1 Main St")
    wait_until(lambda: (s := ops_system.views.state(str(started.workflow_id))) is not None
               and s["status"] == "COMPLETED", 10)
