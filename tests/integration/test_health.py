"""The health page's figures from a real system, on SQLite (`orchestrator run`: one process
reports itself) and on PostgreSQL (the worker's figures go through its heartbeat row even when
the reader is the same process): the calls by participant, the workflows started and finished
this minute, the lag and the workers."""
from __future__ import annotations

from datetime import UTC, datetime

import pytest

from application.health import Health, ParticipantHealth, health
from application.ports import Rejected
from infrastructure.bootstrap import System
from tests.fakes import FakeParticipants, wait_until
from tests.ops import projected

ORDER = {"cents": 500, "skus": ["sku-1"], "address": "1 Main St"}


def run_orders(system: System, fake: FakeParticipants) -> None:
    """Three orders completed and one failed (shipping says no): 4 charges, 4 reserves, 4
    ships (one rejected), then 1 refund and 1 release."""
    fake.script("ship", [Rejected(422, "no")])
    ids = [system.workflows.start("order", f"h-{i}", ORDER).workflow_id for i in range(4)]
    wait_until(lambda: all(system.workflows.load(w).is_terminal for w in ids), 20)
    projected(system)


def calls_in_window(found: ParticipantHealth) -> float:
    """The calls of the window (calls per minute times its 5 minutes)."""
    return round(found.calls_per_minute * 5, 6)


def settled(system: System) -> Health | None:
    """The figures once they hold every payment call (a PostgreSQL worker publishes them with
    its heartbeat, each second)."""
    report = health(system)
    payment = [p for p in report.participants if p.name == "payment"]
    return report if payment and calls_in_window(payment[0]) == 5 else None


def test_the_figures_of_one_worker(ops_system: System, ops_fake: FakeParticipants) -> None:
    system = ops_system
    before = datetime.now(UTC).strftime("%H:%M")
    run_orders(system, ops_fake)

    report = wait_until(lambda: settled(system), 10)
    after = datetime.now(UTC).strftime("%H:%M")
    calls = {p.name: p for p in report.participants}
    assert set(calls) == {"payment", "inventory", "shipping"}
    assert calls_in_window(calls["payment"]) == 5  # 4 charges and 1 refund
    assert calls_in_window(calls["inventory"]) == 5  # 4 reserves and 1 release
    assert calls["shipping"].rejected_rate == pytest.approx(1 / 4)
    assert calls["shipping"].error_rate == 0.0 and calls["payment"].error_rate == 0.0
    assert calls["payment"].p50_ms is not None and calls["payment"].p99_ms is not None
    assert calls["payment"].breaker == "unknown"  # the fakes have no breakers
    assert len(report.per_minute) == 60 and report.per_minute[-1].minute == after
    # Started and finished this minute (or, had the minute turned meanwhile, the last two).
    recent = report.per_minute[-1:] if before == after else report.per_minute[-2:]
    assert sum(m.started for m in recent) == 4 and sum(m.finished for m in recent) == 4
    assert sum(m.started for m in report.per_minute) == 4  # a fresh store
    assert report.lag == 0
    [me] = report.workers
    assert me.live and me.projection and me.shards == tuple(range(system.settings.shards))
    assert health(system).as_dict()["workers"][0]["shards"] == list(me.shards)  # the console's form


def test_a_process_that_is_no_worker_reports_no_calls(ops_system: System,
                                                      database_url: str) -> None:
    """A process that only serves requests (no worker started) has no calls of its own: on
    SQLite it reports nothing; on PostgreSQL it reads the worker's row."""
    from infrastructure.bootstrap import bootstrap
    from tests.ops import settings_for

    reader = bootstrap(settings_for(database_url), serves_requests=True)
    try:
        report = health(reader)
        assert report.lag == 0 and len(report.per_minute) == 60
        if reader.settings.is_postgres:
            [worker] = report.workers  # published as soon as it took its shards
            assert worker.live and worker.projection
            assert worker.shards == tuple(range(reader.settings.shards))
        else:
            assert report.workers == () and report.participants == ()
    finally:
        reader.views.close()
        reader.workflows.close()
        reader.definitions.close()
