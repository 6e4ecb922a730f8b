"""In flight: thousands of slow calls at once.

Participants that take `latency_ms` (1,000 ms) per call, `BULKHEAD_SIZE=2000`, and `orders`
(5,000) orders started at once by an open-loop client: each is POSTed without `?wait`, all
at once over 64 connections (what the API serves at once), as fast as the API takes them.
The run ends when the last order's terminal status is in the views.

What it reports: the run's seconds against its bound, 1.5 x the larger of the participants'
own time (three calls in a row) and the system's CPU seconds over the machine's cores; the
worker's threads (sampled every 0.1 s: before, and the most seen); and the worker's resident
memory at its peak over what it held before, per order (all of them are in flight at once).
On SQLite the system is `orchestrator run`; on PostgreSQL the production shape with one worker.
"""
from __future__ import annotations

import asyncio
import os
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import requests

from bench.backends import Backend
from bench.driver import ORDER, TERMINAL, new_prefix
from bench.measure import StubClient
from bench.procs import Proc, cpu_delta, cpu_seconds, free_port
from bench.progress import Progress
from bench.system import API_1W, RUN, SystemUnderTest

Row = dict[str, Any]
SENDERS = 64  # connections the open-loop client keeps open: as many as the API serves at once
STEPS = 3


def _status(pid: int) -> dict[str, int]:
    """Threads and VmRSS (KiB) of a live process."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("Threads", "VmRSS"):
            out[name] = int(value.split()[0])
    return out


class _Sampler(threading.Thread):
    """The most threads and resident memory a process showed while it ran."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True, name="sampler")
        self.pid, self.threads, self.rss_kib = pid, 0, 0
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(0.1):
            try:
                seen = _status(self.pid)
            except OSError:
                return
            self.threads = max(self.threads, seen.get("Threads", 0))
            self.rss_kib = max(self.rss_kib, seen.get("VmRSS", 0))


def _post_all(url: str, prefix: str, n: int, tick: Any) -> list[str]:
    """Starts the n orders, open loop: every POST is sent at once (up to SENDERS
    connections); returns the ids of those the API accepted."""
    async def post_all() -> list[str | None]:
        timeout = aiohttp.ClientTimeout(total=300)
        connector = aiohttp.TCPConnector(limit=SENDERS)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            async def post(i: int) -> str | None:
                async with session.post(f"{url}/orders/{prefix}-{i}/orchestrate",
                                        json=ORDER) as r:
                    body = await r.json()
                tick()
                return str(body["workflowId"]) if r.status in (200, 201, 202) else None
            return await asyncio.gather(*(post(i) for i in range(n)))

    return [wid for wid in asyncio.run(post_all()) if wid]


def _terminal(url: str, since: str) -> int:
    """Orders created since `since` that the views show terminal (pages of 500)."""
    ended = 0
    for status in TERMINAL:
        after: str | None = None
        while True:
            params = {"status": status, "createdAfter": since, "limit": "500",
                      **({"after": after} if after else {})}
            page = requests.get(f"{url}/workflows", params=params, timeout=30).json()
            ended += len(page["items"])
            after = page.get("next")
            if not after:
                break
    return ended


def in_flight(backend_name: str, backend: Backend, orders: int, latency_ms: float, tmp: Path,
              progress: Progress) -> Row:
    """One run of the scenario on a fresh store; a failure is a row with the logs' tail."""
    shape = RUN if backend_name == "sqlite" else API_1W
    label = f"{backend_name} {shape.label}, {orders} in flight"
    tag = f"inflight-{backend_name}"
    port = free_port()
    stub_proc = Proc(f"{tag}-stub", "bench.stub",
                     ["--port", str(port), "--latency-ms", str(latency_ms)], {}, tmp)
    stub = StubClient(f"http://127.0.0.1:{port}")
    sut = SystemUnderTest(shape, backend, stub.url, tmp, tag,
                          extra_env={"BULKHEAD_SIZE": "2000", "STEP_TIMEOUT_S": "30"})
    row: Row = {"label": label, "backend": backend_name, "shape": shape.label,
                "orders": orders, "latency_ms": latency_ms}
    try:
        stub_proc.start().wait_http(f"{stub.url}/_stats")
        progress.phase(f"{label}: start")
        sut.start()
        worker = sut.workers[0].pid
        before = _status(worker)
        sampler = _Sampler(worker)
        sampler.start()
        pids = sut.pids()
        cpu, stats = cpu_seconds(pids), stub.stats()
        since = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        prefix = new_prefix(tag)
        started = time.perf_counter()
        with progress.phase(f"{label}: start them", orders) as tick:
            accepted = _post_all(sut.url, prefix, orders, tick)
        row["start_s"] = time.perf_counter() - started
        deadline = time.monotonic() + max(120.0, orders / 20)
        with progress.phase(f"{label}: until each ends", orders) as tick:
            # The stub's count first (cheap to ask), then the views (a page per 500 orders: were
            # they asked all along, serving the pages would cost the system much of its CPU).
            ended, base = 0, stats["orders"].get("completed", 0)
            while ended < len(accepted):
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{len(accepted) - ended} orders not terminal in time")
                time.sleep(0.1)
                done = stub.stats()["orders"].get("completed", 0) - base
                now = _terminal(sut.url, since) if done >= len(accepted) else min(
                    done, len(accepted) - 1)
                tick(now - ended)
                ended = now
        seconds = time.perf_counter() - started
        spent = cpu_delta(cpu, cpu_seconds(pids + sut.pids()))
        sampler.done.set()
        after = stub.stats()
        cores = os.cpu_count() or 1
        bound = 1.5 * max(STEPS * latency_ms / 1e3, spent / cores)
        grew_kib = max(0, sampler.rss_kib - before.get("VmRSS", 0))
        row.update(
            accepted=len(accepted), seconds=seconds, cpu_s=spent, bound_s=bound,
            met=seconds <= bound and len(accepted) == orders, cores=cores,
            completed=after["orders"].get("completed", 0) - stats["orders"].get("completed", 0),
            duplicates=after["duplicates"] - stats["duplicates"],
            threads_before=before.get("Threads"), threads_max=sampler.threads,
            peak_mib=sampler.rss_kib / 1024, grew_mib=grew_kib / 1024,
            kib_per_order=grew_kib / max(1, orders), peak_by_role=sut.peak_rss_mib())
    except Exception as e:  # noqa: BLE001 - one scenario failing must not lose the others
        row.update(error=f"{type(e).__name__}: {e}", logs=sut.logs()[-3000:])
    finally:
        sut.stop()
        stub_proc.stop()
        backend.drop()
    return row
