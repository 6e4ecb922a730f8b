"""The health page's arithmetic: the rolling window of calls (known calls give known rates and
percentiles, old buckets fall out, on an injected clock), and the page assembled from several
workers' reports (calls added up, the worst breaker, dead workers left out, an hour of
minutes)."""
from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from application.health import (
    BUCKET_S,
    MINUTES,
    WINDOW_S,
    CallCounts,
    WorkerReport,
    add_up,
    assemble,
)
from infrastructure.recent_calls import RecentCalls

NOW = datetime(2026, 12, 2, 18, 30, 42, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


class Recorded:
    """The next Metrics in line (Prometheus in the app): what reached it."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, str, float]] = []
        self.finished: list[str] = []

    def call_finished(self, participant: str, action: str, outcome: str, seconds: float) -> None:
        self.calls.append((participant, action, outcome, seconds))

    def workflow_finished(self, status: str) -> None:
        self.finished.append(status)


def report(worker: str, calls: dict[str, CallCounts], *, live: bool = True,
           shards: tuple[int, ...] = (), breakers: dict[str, str] | None = None) -> WorkerReport:
    return WorkerReport(worker, NOW, live, shards, False, breakers or {}, calls)


# --- the window ---------------------------------------------------------------------------------

def test_known_calls_give_known_rates_and_percentiles() -> None:
    """The histogram's buckets are 1.25x apart: a percentile is within 25 % of the truth."""
    clock, then = Clock(), Recorded()
    recent = RecentCalls(then, clock=clock)
    for _ in range(96):
        recent.call_finished("payment", "charge", "succeeded", 0.020)
    recent.call_finished("payment", "charge", "transient", 2.0)
    recent.call_finished("payment", "charge", "unavailable", 0.0)
    recent.call_finished("payment", "refund", "rejected", 0.010)
    recent.call_finished("payment", "refund", "rejected", 0.010)
    recent.call_finished("inventory", "reserve", "succeeded", 0.005)
    recent.workflow_finished("COMPLETED")

    page = assemble(NOW, [report("w", recent.snapshot())], {}, 0)
    payment, inventory = page.participants[1], page.participants[0]
    assert (inventory.name, payment.name) == ("inventory", "payment")
    assert payment.calls_per_minute == 100 / 5  # 100 calls in a 5-minute window
    assert payment.error_rate == pytest.approx(2 / 100)  # transient and unavailable
    assert payment.rejected_rate == pytest.approx(2 / 100)
    assert payment.p50_ms is not None and 20 / 1.25 <= payment.p50_ms <= 20 * 1.25
    assert payment.p99_ms is not None and 20 / 1.25 <= payment.p99_ms <= 20 * 1.25  # 20 ms
    assert inventory.calls_per_minute == 0.2 and inventory.error_rate == 0.0
    assert payment.window == "last 5 minutes"
    assert len(then.calls) == 101 and then.finished == ["COMPLETED"]  # all passed on


def test_the_slowest_calls_show_in_the_p99() -> None:
    recent = RecentCalls(clock=Clock())
    for i in range(100):
        recent.call_finished("shipping", "ship", "succeeded", 0.100 if i < 90 else 1.0)
    counts = recent.snapshot()["shipping"]
    p50, p99 = counts.percentile_ms(0.5), counts.percentile_ms(0.99)
    assert p50 is not None and 100 / 1.25 <= p50 <= 100 * 1.25
    assert p99 is not None and 1000 / 1.25 <= p99 <= 1000 * 1.25
    assert CallCounts().percentile_ms(0.5) is None


def test_calls_older_than_the_window_fall_out() -> None:
    clock = Clock()
    recent = RecentCalls(clock=clock)
    recent.call_finished("payment", "charge", "succeeded", 0.02)
    clock.now += WINDOW_S - BUCKET_S
    recent.call_finished("payment", "charge", "transient", 0.02)
    assert recent.snapshot()["payment"].calls == 2
    clock.now += 2 * BUCKET_S  # the first call's bucket is now more than WINDOW_S old
    assert (recent.snapshot()["payment"].calls, recent.snapshot()["payment"].failed) == (1, 1)
    clock.now += WINDOW_S
    assert recent.snapshot() == {}


def test_old_buckets_are_dropped_not_only_hidden() -> None:
    clock = Clock()
    recent = RecentCalls(clock=clock)
    for _ in range(3 * WINDOW_S // BUCKET_S):  # one call per bucket for three windows
        recent.call_finished("payment", "charge", "succeeded", 0.01)
        clock.now += BUCKET_S
    assert len(recent._buckets["payment"]) <= WINDOW_S // BUCKET_S


# --- several workers --------------------------------------------------------------------------

def test_the_live_workers_add_up_and_the_worst_breaker_wins() -> None:
    a, b, dead = (RecentCalls(clock=Clock()) for _ in range(3))
    a.call_finished("payment", "charge", "succeeded", 0.010)
    b.call_finished("payment", "charge", "unavailable", 0.0)
    b.call_finished("shipping", "ship", "succeeded", 0.3)
    dead.call_finished("payment", "charge", "succeeded", 0.010)
    workers = [
        report("a", a.snapshot(), shards=(0, 2),
               breakers={"payment": "closed", "shipping": "closed"}),
        report("b", b.snapshot(), shards=(1,),
               breakers={"payment": "open", "shipping": "half-open"}),
        report("gone", dead.snapshot(), live=False,
               breakers={"payment": "open", "notify": "open"}),
    ]
    page = assemble(NOW, workers, {}, 0)
    found = {p.name: p for p in page.participants}
    assert set(found) == {"payment", "shipping"}  # the dead worker's figures are left out
    assert found["payment"].calls_per_minute == 2 / 5 and found["payment"].error_rate == 0.5
    assert (found["payment"].breaker, found["shipping"].breaker) == ("open", "half-open")
    assert [(w.id, w.shards, w.live) for w in page.workers] == [
        ("a", (0, 2), True), ("b", (1,), True), ("gone", (), False)]


def test_a_participant_called_where_no_breaker_is_known_says_unknown() -> None:
    recent = RecentCalls(clock=Clock())
    recent.call_finished("payment", "charge", "succeeded", 0.01)
    page = assemble(NOW, [report("w", recent.snapshot(),
                                 breakers={"hotels": "closed", "cars": "odd"})], {}, 0)
    assert {p.name: p.breaker for p in page.participants} == {
        "payment": "unknown", "hotels": "closed", "cars": "unknown"}
    hotels = next(p for p in page.participants if p.name == "hotels")
    assert (hotels.calls_per_minute, hotels.p50_ms) == (0.0, None)


def test_published_counts_survive_json_and_junk_reads_as_nothing() -> None:
    recent = RecentCalls(clock=Clock())
    recent.call_finished("payment", "charge", "rejected", 0.05)
    counts = recent.snapshot()["payment"]
    assert CallCounts.from_json(json.loads(json.dumps(counts.as_json()))) == counts
    junks: list[object] = [None, [], "x", {"calls": "many"}, {"latency": {"x": 1}},
                           {"latency": [1]}]
    for junk in junks:
        assert CallCounts.from_json(junk).calls == 0
    assert add_up([{"p": counts}, {"p": counts}])["p"].latency == {
        k: 2 * n for k, n in counts.latency.items()}


# --- the page -----------------------------------------------------------------------------------

def test_an_hour_of_minutes_oldest_first_and_the_lag_never_negative() -> None:
    counts = {"2026-12-02T18:30": (4, 3), "2026-12-02T17:31": (1, 0),
              "2026-12-02T17:30": (9, 9)}  # the 61st minute back: not shown
    page = assemble(NOW, [], counts, -3)
    assert len(page.per_minute) == MINUTES
    first, last = page.per_minute[0], page.per_minute[-1]
    assert (first.minute, first.started, first.finished) == ("17:31", 1, 0)
    assert (last.minute, last.started, last.finished) == ("18:30", 4, 3)
    assert sum(m.started for m in page.per_minute) == 5
    assert page.lag == 0


def test_the_dict_form_has_the_pages_keys() -> None:
    recent = RecentCalls(clock=Clock())
    recent.call_finished("payment", "charge", "succeeded", 0.01)
    worker = WorkerReport("w1", NOW - timedelta(seconds=1), True, (3, 1), True,
                          {"payment": "closed"}, recent.snapshot())
    out = assemble(NOW, [worker], {}, 7).as_dict()
    assert json.loads(json.dumps(out)) == out
    assert set(out) == {"participants", "perMinute", "lag", "workers"}
    assert set(out["participants"][0]) == {"name", "breaker", "callsPerMinute", "errorRate",
                                           "rejectedRate", "p50Ms", "p99Ms", "window"}
    assert out["perMinute"][-1] == {"minute": "18:30", "started": 0, "finished": 0}
    assert out["workers"] == [{"id": "w1", "lastSeen": "2026-12-02T18:30:41.000000Z",
                               "shards": [1, 3], "live": True, "projection": True}]
    assert out["lag"] == 7
