"""Growth: does the system slow down as its store fills up?

For each size, a fresh store is preloaded with that many completed workflows (and one long
one, of 200 events); the system is started on it and builds its views (the catch-up rate,
events per second); then GET /workflows/{id} latency (one client, one GET after another,
random stored workflows), the web console against the API it must not slow (both read the
same views: GET /console/ against GET /workflows?limit=50, the console's page of the long
workflow against GET /workflows/{id}/audit; see `console_rows`) and the closed-loop
throughput are measured. With the system stopped, `orchestrator projections rebuild` and
`orchestrator audit replay --all` are timed where those commands exist.
"""
from __future__ import annotations

import os
import random
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.backends import Backend
from bench.driver import ApiClient, percentile
from bench.measure import StubClient, measure
from bench.preload import preload, wait_caught_up
from bench.procs import REPO
from bench.progress import Progress
from bench.system import RUN, SystemUnderTest

COMMAND_TIMEOUT_S = 1800
PAGE_ROUNDS = 200  # at most, per console/API pair; fewer when get_samples is smaller
PAGE_BUDGET_S = 10.0  # per pair: a slow page shortens the sample rather than the patience


def grow(backend: Backend, size: int, stub: StubClient, orders: int, concurrency: int,
         get_samples: int, logdir: Path, progress: Progress,
         timed_commands: bool) -> dict[str, Any]:
    """The growth row for `size` stored workflows on `backend` (a fresh, empty store)."""
    row: dict[str, Any] = {"backend": backend.name, "stored": size}
    with progress.phase(f"{backend.name}: preload {size:,}", size) as tick:
        loaded = preload(backend.url, size, prefix=f"pre{size}", tick=tick)
    row.update(preload_s=loaded.seconds, events=loaded.head,
               preload_events_per_s=loaded.head / loaded.seconds)
    since = time.perf_counter()
    sut = SystemUnderTest(RUN, backend, stub.url, logdir, f"{backend.name}-grow{size}")
    try:
        sut.start()
        with progress.phase(f"{backend.name}: views catch up", loaded.head) as tick:
            took = wait_caught_up(backend.url, loaded.head, since, timeout_s=1800, tick=tick)
        row.update(catchup_s=took, catchup_events_per_s=loaded.head / took)
        sample = random.Random(size).choices(loaded.workflow_ids, k=get_samples)
        client = ApiClient(sut.url)
        with progress.phase(f"{backend.name}: {get_samples} GETs", get_samples):
            gets = client.get_latencies(sample)
        row.update(get_p50_ms=1e3 * (percentile(gets, 0.5) or 0),
                   get_p99_ms=1e3 * (percentile(gets, 0.99) or 0))
        rounds = min(get_samples, PAGE_ROUNDS)
        with progress.phase(f"{backend.name}: console vs API", 2 * len(PAGES) * rounds) as tick:
            row.update(console_rows(client, loaded.long_workflow_id, rounds, tick))
        run = measure(f"{backend.name}: run at {size:,}", client.place, stub, orders,
                      concurrency, progress, sut, kind=f"grow{size}")
        row.update({k: run[k] for k in ("throughput", "p50_ms", "p99_ms", "outcomes",
                                        "stub_duplicates", "orders")})
    finally:
        sut.stop()
    if timed_commands:
        row.update(timed_operations(backend.url, loaded.head, logdir,
                                    f"{backend.name}-{size}", progress))
    return row


PAGES = (  # (console key, API key, console path, API path); {id}: the long workflow
    ("console_list", "api_list", "/console/", "/workflows?limit=50"),
    ("console_workflow", "api_audit", "/console/workflows/{id}", "/workflows/{id}/audit"),
)


def console_rows(client: ApiClient, long_id: str, rounds: int,
                 tick: Callable[[int], None] = lambda n: None) -> dict[str, Any]:
    """p50 and p99 ms of each console page and its API counterpart, the console's p50 and p99
    over the API's, the samples taken, the body's bytes, and the answers other than 200
    (status -> count, 0: no answer), which are not in the percentiles and fail the run."""
    out: dict[str, Any] = {}
    for console, api, console_path, api_path in PAGES:
        took, other, size = client.paired_latencies(
            (console_path.format(id=long_id), api_path.format(id=long_id)), rounds,
            PAGE_BUDGET_S, tick)
        for i, key in enumerate((console, api)):
            seconds, bad = took[i], other[i]
            out[f"{key}_n"], out[f"{key}_bytes"] = len(seconds), size[i]
            for name, q in (("p50", 0.5), ("p99", 0.99)):
                value = percentile(seconds, q)
                out[f"{key}_{name}_ms"] = None if value is None else 1e3 * value
            if bad:
                out[f"{key}_non_200"] = {str(code): n for code, n in sorted(bad.items())}
        for name in ("p50", "p99"):
            mine, theirs = out[f"{console}_{name}_ms"], out[f"{api}_{name}_ms"]
            out[f"{console}_x_api_{name}"] = mine / theirs if mine and theirs else None
    return out


def has_command(*words: str) -> bool:
    """Whether `orchestrator <words> --help` exists in this checkout."""
    done = subprocess.run([sys.executable, "-m", "api", *words, "--help"], cwd=REPO,
                          capture_output=True, timeout=60)
    return done.returncode == 0


def timed_operations(url: str, events: int, logdir: Path, tag: str,
                     progress: Progress) -> dict[str, Any]:
    """Seconds for a projection rebuild and a verified audit replay of every workflow, or why
    they were skipped."""
    out: dict[str, Any] = {}
    for key, words in (("rebuild", ["projections", "rebuild"]),
                       ("audit_replay", ["audit", "replay", "--all", "--verify"])):
        if not has_command(*words[:2]):
            out[f"{key}_note"] = f"`orchestrator {' '.join(words[:2])}` does not exist yet"
            continue
        with progress.phase(f"{tag}: {' '.join(words[:2])}"):
            seconds, code = _timed([*words], url, logdir / f"{tag}-{key}.log")
        out[f"{key}_s"] = seconds
        out[f"{key}_events_per_s"] = events / seconds
        if code != 0:
            out[f"{key}_note"] = f"exited {code}, see {logdir / f'{tag}-{key}.log'}"
    return out


def _timed(args: list[str], url: str, log: Path) -> tuple[float, int]:
    """Runs `orchestrator <args>` on the store at `url`: (seconds, exit code)."""
    started = time.perf_counter()
    with open(log, "wb") as err:  # stdout (100,000 timelines) is not kept
        done = subprocess.run(
            [sys.executable, "-m", "api", *args], cwd=REPO, stdout=subprocess.DEVNULL,
            stderr=err, stdin=subprocess.DEVNULL, timeout=COMMAND_TIMEOUT_S,
            env={**os.environ, "DATABASE_URL": url, "LOG_FORMAT": "text"})
    return time.perf_counter() - started, done.returncode
