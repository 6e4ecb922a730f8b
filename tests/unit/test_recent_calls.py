"""The window of recent calls behind the health page: known calls give known rates and
latencies, old buckets fall out, and windows of several workers add up."""
from __future__ import annotations

from infrastructure.recent_calls import BUCKET_S, WINDOW_S, RecentCalls, merge, percentile_ms


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


class Recorded:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str, str, float]] = []
        self.finished: list[str] = []

    def call_finished(self, participant: str, action: str, outcome: str, seconds: float) -> None:
        self.calls.append((participant, action, outcome, seconds))

    def workflow_finished(self, status: str) -> None:
        self.finished.append(status)


def test_known_calls_give_known_counts_and_percentiles() -> None:
    clock, then = Clock(), Recorded()
    recent = RecentCalls(then, clock=clock)
    for _ in range(98):
        recent.call_finished("payment", "charge", "succeeded", 0.020)
    recent.call_finished("payment", "charge", "transient", 2.0)
    recent.call_finished("payment", "refund", "rejected", 0.010)
    recent.call_finished("inventory", "reserve", "succeeded", 0.005)
    snap = recent.snapshot()
    assert snap["payment"]["calls"] == 100
    assert snap["payment"]["failed"] == 1 and snap["payment"]["rejected"] == 1
    assert snap["inventory"]["calls"] == 1
    p50 = percentile_ms(snap["payment"]["hist"], 0.5)
    p99 = percentile_ms(snap["payment"]["hist"], 0.99)
    assert p50 is not None and 20 / 1.25 <= p50 <= 20 * 1.25
    assert p99 is not None and 20 / 1.25 <= p99 <= 20 * 1.25  # 99 of 100 took 10-20 ms
    assert percentile_ms(snap["payment"]["hist"], 1.0) >= 2000 / 1.25
    assert len(then.calls) == 101  # every report also went on to the next metrics


def test_calls_older_than_the_window_fall_out() -> None:
    clock = Clock()
    recent = RecentCalls(clock=clock)
    recent.call_finished("payment", "charge", "succeeded", 0.02)
    clock.now += WINDOW_S - BUCKET_S
    recent.call_finished("payment", "charge", "succeeded", 0.02)
    assert recent.snapshot()["payment"]["calls"] == 2
    clock.now += 2 * BUCKET_S
    assert recent.snapshot()["payment"]["calls"] == 1
    clock.now += WINDOW_S
    assert recent.snapshot() == {}


def test_windows_of_several_workers_add_up() -> None:
    a, b = RecentCalls(clock=Clock()), RecentCalls(clock=Clock())
    a.call_finished("payment", "charge", "succeeded", 0.01)
    b.call_finished("payment", "charge", "unavailable", 0.0)
    b.call_finished("shipping", "ship", "succeeded", 0.3)
    total = merge(a.snapshot(), b.snapshot())
    assert (total["payment"]["calls"], total["payment"]["failed"]) == (2, 1)
    assert total["shipping"]["calls"] == 1
    assert percentile_ms([], 0.5) is None
