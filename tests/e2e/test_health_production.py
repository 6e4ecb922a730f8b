"""The health page in the production shape: two `orchestrator worker` processes make the calls
and an `orchestrator api` serves the orders; the figures that a process serving the page reads
(`health(system)` on a System of its own, which starts no worker) are the workers' own,
published with their heartbeats, and a killed worker's leave them."""
from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

import psycopg
import pytest
import requests

from application.health import Health, ParticipantHealth, health
from infrastructure.bootstrap import System, bootstrap
from infrastructure.cluster import DEAD_AFTER_S
from tests.e2e.harness import ORDER, TERMINAL, Api, Participants, Worker, wait_until
from tests.ops import settings_for

pytestmark = pytest.mark.postgres
ORDERS = 20


@pytest.fixture
def reader(pg_url: str) -> Iterator[System]:
    """What the API process that serves the page has: a System that makes no calls."""
    system = bootstrap(settings_for(pg_url), serves_requests=True)
    yield system
    system.views.close()
    system.workflows.close()
    system.definitions.close()


def in_window(report: Health, name: str) -> ParticipantHealth | None:
    return next((p for p in report.participants if p.name == name), None)


def calls(report: Health, name: str) -> int:
    found = in_window(report, name)
    return round(found.calls_per_minute * 5) if found else 0  # the window is 5 minutes


def published_calls(pg_url: str, participant: str) -> dict[str, int]:
    """Each worker's calls to the participant, as its row says."""
    with psycopg.connect(pg_url) as conn:
        rows = conn.execute("SELECT worker_id, stats FROM orchestrator_workers").fetchall()
    return {w: json.loads(s or "{}").get("calls", {}).get(participant, {}).get("calls", 0)
            for w, s in rows}


def test_the_workers_figures_reach_the_page_of_another_process(
        tmp_path: Path, pg_url: str, participants: Participants, reader: System) -> None:
    participants.faults({"charge": {"delay_ms": 80},
                         "reserve": {"status": 503, "count": 2}})  # retried: 2 failed calls
    workers = [Worker(tmp_path, pg_url, participants).start() for _ in range(2)]
    api = Api(tmp_path, pg_url).start()
    try:
        with ThreadPoolExecutor(8) as pool:
            ids = list(pool.map(lambda i: requests.post(
                f"{api.url}/orders/hp-{i}/orchestrate", json=ORDER, timeout=40,
            ).json()["workflowId"], range(ORDERS)))
        def ended(wid: str) -> bool:
            state = requests.get(f"{api.url}/workflows/{wid}", timeout=5).json()
            return state.get("status") in TERMINAL

        for wid in ids:
            wait_until(partial(ended, wid), 60, f"workflow {wid} to end")
        truth = participants.stats()["calls"]  # what the participants were asked, all told

        def published() -> Health | None:
            r = health(reader)
            return r if calls(r, "payment") == ORDERS and r.lag == 0 else None

        report = wait_until(published, 15, "the calls to be published")
        assert calls(report, "payment") == truth["charge"] == ORDERS
        inventory = in_window(report, "inventory")
        assert inventory is not None and calls(report, "inventory") == truth["reserve"]
        assert inventory.error_rate == pytest.approx(2 / truth["reserve"])
        payment = in_window(report, "payment")
        assert payment is not None and payment.p50_ms is not None
        assert payment.p50_ms >= 80 / 1.25  # the charge's 80 ms delay, within a bucket
        assert {p.name: p.breaker for p in report.participants} == {
            "payment": "closed", "inventory": "closed", "shipping": "closed"}
        assert sum(m.started for m in report.per_minute[-2:]) == ORDERS
        assert sum(m.finished for m in report.per_minute[-2:]) == ORDERS
        assert len(report.workers) == 2 and all(w.live for w in report.workers)
        held = [k for w in report.workers for k in w.shards]
        assert sorted(held) == list(range(reader.settings.shards))  # each shard once
        assert sum(w.projection for w in report.workers) == 1

        # A worker killed: after DEAD_AFTER_S its calls leave the sum, it shows as gone, and
        # the survivor holds every shard.
        by_worker = published_calls(pg_url, "payment")
        assert sum(by_worker.values()) == ORDERS and all(by_worker.values()), by_worker
        workers[0].kill()
        dead = next(w for w in by_worker if f":{workers[0].proc.pid}:" in w)  # type: ignore
        survivor = ORDERS - by_worker[dead]

        def after_death() -> Health | None:
            r = health(reader)
            gone = [w for w in r.workers if w.id == dead and not w.live]
            return r if gone and calls(r, "payment") == survivor else None

        report = wait_until(after_death, DEAD_AFTER_S + 15, "the dead worker to leave")
        [alive] = [w for w in report.workers if w.live]
        wait_until(lambda: [w.shards for w in health(reader).workers if w.live]
                   == [tuple(range(reader.settings.shards))], 15, "the survivor to take over")
        assert alive.id != dead
    finally:
        for process in (api, *workers):
            process.kill()
