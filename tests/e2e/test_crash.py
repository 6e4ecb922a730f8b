"""A crash at any moment loses nothing and applies no effect twice: kill -9 mid-flight."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

from tests.e2e.harness import TERMINAL, Orchestrator, Participants, wait_until


def test_kill_9_mid_flight_then_restart_finishes_every_workflow_once(
        tmp_path: Path, participants: Participants, database_url: str) -> None:
    participants.faults({"charge": {"delay_ms": 50}, "reserve": {"delay_ms": 100},
                         "ship": {"delay_ms": 150}})
    first = Orchestrator(tmp_path, participants, DATABASE_URL=database_url).start()
    orders = [f"crash-{i}" for i in range(40)]
    with ThreadPoolExecutor(8) as pool:
        ids = list(pool.map(lambda o: first.place(o).json()["workflowId"], orders))
    # kill while some are charged, some reserved, some shipping
    wait_until(lambda: participants.stats()["effects"]["reserve"] >= 5, 20, "reserves to begin")
    first.kill()
    assert participants.stats()["orders"]["completed"] < len(orders), "killed too late"

    second = Orchestrator(tmp_path, participants, DATABASE_URL=database_url).start()
    try:
        for wid in ids:
            assert second.finished(wid, timeout=60)["status"] == "COMPLETED"
        stats = participants.stats()
        assert stats["duplicate_effects"] == 0
        assert stats["effects"]["charge"] == stats["effects"]["reserve"] == len(orders)
        assert stats["effects"]["ship"] == len(orders)
        assert stats["orders"]["completed"] == len(orders)
        listed = requests.get(f"{second.url}/workflows", params={"limit": 100}, timeout=5).json()
        assert sorted(s["workflowId"] for s in listed["items"]) == sorted(ids)
        assert all(s["status"] in TERMINAL for s in listed["items"])
    finally:
        second.kill()


def test_sigterm_lets_calls_in_flight_finish_and_exits_0(
        tmp_path: Path, participants: Participants) -> None:
    participants.faults({"charge": {"delay_ms": 700}})
    first = Orchestrator(tmp_path, participants).start()
    wid = first.place("graceful").json()["workflowId"]
    wait_until(lambda: participants.stats()["calls"]["charge"] >= 1, 10, "the charge call")
    assert first.terminate() == 0
    # the charge in flight finished and was recorded before the exit
    assert participants.stats("graceful")["by_order"]["charge"] == 1
    participants.faults({})
    second = Orchestrator(tmp_path, participants).start()
    try:
        state = second.finished(wid)
        assert state["status"] == "COMPLETED"
        assert state["attempts"]["charge"] == 1
    finally:
        second.kill()
