"""The measurements of a run, each on a fresh store: the bare baseline, the system in each
shape, the same at concurrency 1 (the overhead without queueing), and growth."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.backends import Backend, PostgresBackend, SqliteBackend
from bench.baseline import BareSaga
from bench.config import Config
from bench.driver import ApiClient
from bench.growth import grow
from bench.inflight import in_flight
from bench.measure import StubClient, measure
from bench.progress import Progress
from bench.system import RUN, Shape, SystemUnderTest

Row = dict[str, Any]


def new_backend(name: str, cfg: Config, tmp: Path, tag: str) -> Backend:
    if name == "postgres":
        return PostgresBackend(cfg.pg_admin_url)
    return SqliteBackend(tmp / tag)


def bare(stub: StubClient, cfg: Config, progress: Progress, label: str,
         orders: int | None = None, concurrency: int | None = None) -> Row:
    """The baseline: the same three calls per order from this process, nothing durable."""
    row = measure(label, BareSaga(stub.url).run, stub, orders or cfg.orders,
                  concurrency or cfg.concurrency, progress, kind="bare")
    row.update(contender="bare", backend=None, shape=None)
    return row


def system(backend_name: str, shape: Shape, stub: StubClient, cfg: Config, tmp: Path,
           progress: Progress, orders: int | None = None,
           concurrency: int | None = None) -> Row:
    """The system in `shape` on a fresh store; a failure becomes a row with the logs' tail."""
    concurrency = concurrency or cfg.concurrency
    label = f"{backend_name} {shape.label}" + (f" c={concurrency}" if concurrency == 1 else "")
    tag = label.replace(" ", "-").replace("+", "").replace("=", "")
    try:
        backend = new_backend(backend_name, cfg, tmp, tag)
    except Exception as e:  # noqa: BLE001 - the database is down: say so in the table
        return _failed(label, backend_name, shape, e)
    sut = SystemUnderTest(shape, backend, stub.url, tmp, tag)
    try:
        progress.phase(f"{label}: start")
        sut.start()
        row = measure(label, ApiClient(sut.url).place, stub, orders or cfg.orders, concurrency,
                      progress, sut, kind=tag)
        live = backend.live_writes()
        sut.stop()
        final = backend.final_writes()
        writes = live if live is not None else final.get("writes")
        row.update(contender="system", backend=backend_name, shape=shape.label,
                   db_writes=final or writes,
                   writes_per_wf=writes / row["workflows_in_store"] if writes else None)
        return row
    except Exception as e:  # noqa: BLE001 - one contender failing must not lose the others
        return _failed(label, backend_name, shape, e, sut.logs())
    finally:
        sut.stop()
        backend.drop()


def _failed(label: str, backend: str, shape: Shape, error: Exception, logs: str = "") -> Row:
    return {"label": label, "contender": "system", "backend": backend, "shape": shape.label,
            "error": f"{type(error).__name__}: {error}", "logs": logs[-3000:]}


def uncontended(stub: StubClient, cfg: Config, tmp: Path, progress: Progress) -> list[Row]:
    """Concurrency 1: latency and overhead per step with no queue in front of anything."""
    rows = [bare(stub, cfg, progress, "bare c=1", cfg.probe_orders, 1)]
    for name in cfg.backends:
        rows.append(system(name, RUN, stub, cfg, tmp, progress, cfg.probe_orders, 1))
    return rows


def growth(backend_name: str, stub: StubClient, cfg: Config, tmp: Path,
           progress: Progress) -> list[Row]:
    """One row per store size in GROWTH, each on a fresh store."""
    rows = []
    for size in cfg.growth:
        try:
            backend = new_backend(backend_name, cfg, tmp, f"{backend_name}-grow{size}")
        except Exception as e:  # noqa: BLE001 - the database is down: say so in the table
            rows.append({"backend": backend_name, "stored": size,
                         "error": f"{type(e).__name__}: {e}"})
            continue
        try:
            rows.append(grow(backend, size, stub, cfg.orders, cfg.concurrency, cfg.get_samples,
                             tmp, progress, timed_commands=size == max(cfg.growth)))
        except Exception as e:  # noqa: BLE001 - reported in the table, fails the run
            rows.append({"backend": backend_name, "stored": size,
                         "error": f"{type(e).__name__}: {e}"})
        finally:
            backend.drop()
    return rows


def inflight(cfg: Config, tmp: Path, progress: Progress) -> list[Row]:
    """Thousands of slow calls in flight, per backend (bench/inflight.py)."""
    rows = []
    for name in cfg.backends:
        try:
            backend = new_backend(name, cfg, tmp, f"inflight-{name}")
        except Exception as e:  # noqa: BLE001 - the database is down: say so in the table
            rows.append({"label": f"{name} in flight", "backend": name,
                         "error": f"{type(e).__name__}: {e}"})
            continue
        rows.append(in_flight(name, backend, cfg.inflight_orders, cfg.inflight_latency_ms, tmp,
                              progress))
    return rows
