"""The closed-loop load generator and the client of the orchestrator's HTTP API.

`concurrency` threads each run one order from start to end, then the next, until `n` orders
are done. An order's latency runs from its first request to the moment its terminal status is
seen; throughput counts orders that reached a terminal status over the run's wall time.
"""
from __future__ import annotations

import math
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import requests

TERMINAL = ("COMPLETED", "FAILED", "COMPENSATION_FAILED", "CANCELLED")
ORDER = {"cents": 1234, "skus": ["sku-1", "sku-2"], "address": "1 Main St"}


@dataclass
class Run:
    """What one closed-loop run saw."""

    seconds: float = 0.0
    latencies: dict[str, float] = field(default_factory=dict)  # order id -> s, terminal only
    outcomes: Counter[str] = field(default_factory=Counter)

    @property
    def completed(self) -> int:
        return self.outcomes["COMPLETED"]

    @property
    def throughput(self) -> float:
        ended = sum(self.outcomes[s] for s in TERMINAL)
        return ended / self.seconds if self.seconds else 0.0


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest rank; None for no values."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)] if ordered else None


def new_prefix(kind: str) -> str:
    """Order ids unique to this run, so that runs against one stub never meet."""
    return f"{kind}-{uuid.uuid4().hex[:8]}"


def closed_loop(n: int, concurrency: int, order: Callable[[int], tuple[str, str]],
                tick: Callable[[], None] = lambda: None) -> Run:
    """Runs `order(i)` (which returns its order id and outcome label) for i in range(n) on
    `concurrency` threads. A client-side exception counts as an outcome, not a crash."""
    run, lock = Run(), threading.Lock()

    def one(i: int) -> None:
        started = time.perf_counter()
        try:
            order_id, outcome = order(i)
        except Exception as e:  # noqa: BLE001 - counted and shown in the table
            order_id, outcome = f"#{i}", f"error:{type(e).__name__}"
        took = time.perf_counter() - started
        with lock:
            run.outcomes[outcome] += 1
            if outcome in TERMINAL:
                run.latencies[order_id] = took
        tick()

    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency, thread_name_prefix="order") as pool:
        list(pool.map(one, range(n)))
    run.seconds = time.perf_counter() - started
    return run


class ApiClient:
    """Places orders through the API: POST ...?wait=S, then GET /workflows/{id} until terminal.
    One keep-alive session per thread (a Session is not guaranteed thread-safe)."""

    def __init__(self, base_url: str, wait_s: int = 30, poll_s: float = 0.02,
                 order_timeout_s: float = 60.0) -> None:
        self.base, self.wait_s, self.poll_s = base_url.rstrip("/"), wait_s, poll_s
        self.order_timeout_s = order_timeout_s
        self.local = threading.local()

    def session(self) -> requests.Session:
        if not hasattr(self.local, "session"):
            self.local.session = requests.Session()
        return self.local.session

    def place(self, order_id: str) -> str:
        """The order's terminal status, or a label saying why none was seen."""
        s, deadline = self.session(), time.monotonic() + self.order_timeout_s
        r = s.post(f"{self.base}/orders/{order_id}/orchestrate?wait={self.wait_s}",
                   json=ORDER, timeout=self.wait_s + 10)
        while r.status_code in (200, 202):
            state = r.json()
            if state["status"] in TERMINAL:
                return str(state["status"])
            if time.monotonic() > deadline:
                return "not-terminal"
            time.sleep(self.poll_s)
            r = s.get(f"{self.base}/workflows/{state['workflowId']}", timeout=10)
        return f"http-{r.status_code}"

    def get_latencies(self, workflow_ids: Sequence[str]) -> list[float]:
        """Seconds per GET /workflows/{id}, one after another from one thread."""
        s, took = self.session(), []
        for wid in workflow_ids:
            started = time.perf_counter()
            r = s.get(f"{self.base}/workflows/{wid}", timeout=10)
            took.append(time.perf_counter() - started)
            r.raise_for_status()
        return took

    def paired_latencies(self, paths: tuple[str, str], rounds: int, budget_s: float,
                         tick: Callable[[int], None] = lambda n: None,
                         ) -> tuple[list[list[float]], list[Counter[int]], list[int]]:
        """Seconds per GET of each of two paths, alternating (one of each per round, so that
        drift over the run falls on both alike), one thread, each whole body read, redirects
        not followed; after one unmeasured GET of each (the first renders compile templates).
        Stops after `rounds` rounds or once `budget_s` has passed. Returns per path the
        latencies of its 200 answers, the count of every other status (0: no answer) and the
        size in bytes of its last 200 answer's body."""
        s = self.session()
        took: list[list[float]] = [[], []]
        other: list[Counter[int]] = [Counter(), Counter()]
        size = [0, 0]

        def get(i: int) -> tuple[float, int]:
            started = time.perf_counter()
            try:
                r = s.get(f"{self.base}{paths[i]}", timeout=30, allow_redirects=False)
                body = r.content  # the whole body, as a browser waits for it
            except requests.RequestException:
                return time.perf_counter() - started, 0
            if r.status_code == 200:
                size[i] = len(body)
            return time.perf_counter() - started, r.status_code

        for i in (0, 1):
            if (code := get(i)[1]) != 200:
                other[i][code] += 1
        deadline = time.perf_counter() + budget_s
        for _ in range(rounds):
            for i in (0, 1):
                seconds, code = get(i)
                if code == 200:
                    took[i].append(seconds)
                else:
                    other[i][code] += 1
            tick(2)
            if time.perf_counter() > deadline:
                break
        return took, other, size
