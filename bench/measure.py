"""One measurement: a closed-loop run of one contender, and what it cost.

A contender is the bare baseline (the saga in this process) or the system under test driven
through its HTTP API. Each run starts with an unmeasured warm-up of `concurrency` orders.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import requests

from bench.driver import Run, closed_loop, new_prefix, percentile
from bench.procs import cpu_delta, cpu_seconds, machine_busy
from bench.progress import Progress
from bench.system import SystemUnderTest

STEPS = 3


class StubClient:
    """What the participant stub saw: its counters, and its own time per order."""

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")

    def stats(self) -> dict[str, Any]:
        result: dict[str, Any] = requests.get(f"{self.url}/_stats", timeout=10).json()
        return result

    def order_seconds(self, prefix: str) -> dict[str, float]:
        result: dict[str, float] = requests.get(
            f"{self.url}/_orders", params={"prefix": prefix}, timeout=30).json()
        return result


def _completed(stats: dict[str, Any]) -> int:
    return int(stats["orders"].get("completed", 0))


def measure(label: str, place: Callable[[str], str], stub: StubClient, orders: int,
            concurrency: int, progress: Progress, sut: SystemUnderTest | None = None,
            kind: str = "bench") -> dict[str, Any]:
    """Runs `orders` orders through `place(order_id) -> outcome` and returns the row."""
    warm = new_prefix(f"{kind}-warm")
    closed_loop(concurrency, concurrency, lambda i: (f"{warm}-{i}", place(f"{warm}-{i}")))
    prefix = new_prefix(kind)
    pids = sut.pids() if sut else []
    db_pids = sut.backend.db_pids() if sut else []
    cpu, db_cpu = cpu_seconds(pids), cpu_seconds(db_pids)
    roles = sut.pids_by_role() if sut else {}
    own_cpu, machine, before = time.process_time(), machine_busy(), stub.stats()
    with progress.phase(label, orders) as tick:
        run = closed_loop(orders, concurrency,
                          lambda i: (f"{prefix}-{i}", place(f"{prefix}-{i}")), tick)
    after, machine_after = stub.stats(), machine_busy()
    row = _timings(label, run, stub.order_seconds(prefix), orders, concurrency)
    busy, total = (a - b for a, b in zip(machine_after, machine, strict=True))
    row.update(
        client_cpu_share=(time.process_time() - own_cpu) / run.seconds,
        machine_busy=busy / total if total else None,
        stub_cpu_share=(after["cpu_s"] - before["cpu_s"]) / run.seconds,
        stub_completed=_completed(after) - _completed(before),
        stub_duplicates=after["duplicates"] - before["duplicates"],
        stub_calls=sum(after["calls"].values()) - sum(before["calls"].values()),
    )
    if sut is None:  # bare: the saga ran in this process
        row["cpu_share"] = row["client_cpu_share"]
        row["cpu_ms_per_wf"] = row["cpu_share"] * run.seconds / max(1, run.completed) * 1e3
        return row
    spent = cpu_delta(cpu, cpu_seconds(pids + sut.pids()))
    row["cpu_ms_per_wf"] = spent / max(1, run.completed) * 1e3
    row["cpu_share"] = spent / run.seconds  # cores the system's processes kept busy
    if sut.shape.split:  # where the CPU goes: the API processes against the workers
        for role, now in sut.pids_by_role().items():
            before_role = {pid: cpu[pid] for pid in roles.get(role, []) if pid in cpu}
            row[f"{role}_cpu_ms_per_wf"] = cpu_delta(
                before_role, cpu_seconds(now)) / max(1, run.completed) * 1e3
    if db_pids:
        now = sut.backend.db_pids()
        row["db_connections"] = len(now)
        row["db_cpu_ms_per_wf"] = cpu_delta(
            db_cpu, cpu_seconds(list({*db_pids, *now}))) / max(1, run.completed) * 1e3
    row["peak_mib"] = sut.peak_rss_mib()
    row["workflows_in_store"] = orders + concurrency
    return row


def _timings(label: str, run: Run, stub_seconds: dict[str, float], orders: int,
             concurrency: int) -> dict[str, Any]:
    """Throughput, latency percentiles and the overhead per step (latency minus the
    participants' own time for that order, over the three steps), in milliseconds."""
    latencies = list(run.latencies.values())
    overheads = [(took - stub_seconds.get(order, 0.0)) / STEPS
                 for order, took in run.latencies.items()]

    def ms(value: float | None) -> float | None:
        return None if value is None else value * 1e3

    return {
        "label": label, "orders": orders, "concurrency": concurrency,
        "seconds": run.seconds, "throughput": run.throughput,
        "p50_ms": ms(percentile(latencies, 0.50)), "p99_ms": ms(percentile(latencies, 0.99)),
        "overhead_ms_per_step": ms(percentile(overheads, 0.50)),
        "participants_ms": ms(percentile([stub_seconds.get(o, 0.0) for o in run.latencies],
                                         0.50)),
        "outcomes": dict(run.outcomes),
    }
