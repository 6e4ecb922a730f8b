"""The health page's figures from a real system: the calls its workers made, by participant,
the workflows started and ended this minute, the lag and the workers. On PostgreSQL the
figures cross processes: an API-only system reads what a worker published with its heartbeat."""
from __future__ import annotations

from typing import Any

import pytest

from application.ports import Rejected
from infrastructure.bootstrap import System, bootstrap
from infrastructure.health import health
from tests.fakes import FakeParticipants, wait_until
from tests.ops import projected, settings_for

ORDER = {"cents": 500, "skus": ["sku-1"], "address": "1 Main St"}


def run_orders(system: System, fake: FakeParticipants) -> None:
    """Three orders completed and one failed (shipping says no): 4 charges, 4 reserves, 4
    ships (one rejected), 1 refund and 1 release."""
    fake.script("ship", [Rejected(422, "no")])
    ids = [system.workflows.start("order", f"h-{i}", ORDER).workflow_id for i in range(4)]
    wait_until(lambda: all(system.workflows.load(w).is_terminal for w in ids), 20)
    projected(system)


def payment_calls(report: dict[str, Any]) -> float:
    """The payment calls of the window (calls per minute times its 5 minutes)."""
    found = [p for p in report["participants"] if p["name"] == "payment"]
    return round(found[0]["callsPerMinute"] * 5, 6) if found else 0


def settled(system: System) -> dict[str, Any] | None:
    """The report once it holds every payment call (a worker publishes each second)."""
    report = health(system)
    return report if payment_calls(report) == 5 else None


def test_the_figures_of_one_process(ops_system: System, ops_fake: FakeParticipants) -> None:
    worker = ops_system
    run_orders(worker, ops_fake)
    report = wait_until(lambda: settled(worker), 10)
    calls = {p["name"]: p for p in report["participants"]}
    assert payment_calls(report) == 5  # 4 charges and 1 refund
    assert calls["shipping"]["rejectedRate"] == pytest.approx(1 / 4)
    assert calls["inventory"]["errorRate"] == 0.0
    assert calls["payment"]["p50Ms"] is not None
    assert len(report["perMinute"]) == 60  # a fresh store: the hour holds these four
    assert sum(m["started"] for m in report["perMinute"]) == 4
    assert sum(m["finished"] for m in report["perMinute"]) == 4
    assert report["lag"] == 0
    [me] = report["workers"]
    assert me["live"] and sorted(me["shards"]) == list(range(worker.settings.shards))


@pytest.mark.postgres
def test_an_api_process_reads_what_the_worker_publishes(
        pg_url: str, ops_fake: FakeParticipants) -> None:
    fake = ops_fake
    worker = bootstrap(settings_for(pg_url), participants=fake).start_worker()
    api = bootstrap(settings_for(pg_url), serves_requests=True)  # serves, calls nothing
    try:
        run_orders(worker, fake)

        report = wait_until(lambda: settled(api), 10)
        [beating] = report["workers"]
        assert beating["live"] and sorted(beating["shards"]) == list(range(16))
        assert beating["projection"]
        shipping = next(p for p in report["participants"] if p["name"] == "shipping")
        assert shipping["rejectedRate"] == pytest.approx(1 / 4)
        assert sum(m["started"] for m in report["perMinute"]) == 4
    finally:
        fake.release_all()
        worker.stop(grace_s=2.0)
        api.views.close()
        api.workflows.close()
        api.definitions.close()
