"""`python -m bench` (make bench) and `python -m bench --smoke` (make bench-smoke).

Starts the participant stub, runs the bare baseline, the system on each backend and shape,
the bare baseline again (drift within the run shows), bare and the system at concurrency 1,
thousands of slow calls in flight, then the growth measurements; prints the table and writes
bench/results/<name>.json and .png.
"""
from __future__ import annotations

import shutil
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

from bench import chart, report, scenarios
from bench.config import Config, parse
from bench.measure import StubClient
from bench.procs import Proc, free_port
from bench.progress import Progress


def pg_version(cfg: Config) -> str | None:
    if "postgres" not in cfg.backends:
        return None
    with psycopg.connect(cfg.pg_admin_url, autocommit=True, connect_timeout=5) as conn:
        row = conn.execute("SHOW server_version").fetchone()
    return str(row[0]).split()[0] if row else None


def main(argv: list[str] | None = None) -> int:
    cfg = parse(argv)
    progress = Progress()
    tmp = Path(tempfile.mkdtemp(prefix="orchestrator-bench-"))
    meta: dict[str, Any] = {
        "started": datetime.now(UTC).isoformat(), "orders": cfg.orders,
        "concurrency": cfg.concurrency, "latency_ms": cfg.latency_ms,
        "backends": list(cfg.backends), "smoke": cfg.smoke,
        "machine": report.machine(pg_version(cfg)), "notes": list(cfg.notes)}
    port = free_port()
    stub_proc = Proc("stub", "bench.stub", ["--port", str(port), "--latency-ms",
                                            str(cfg.latency_ms)], {}, tmp)
    stub = StubClient(f"http://127.0.0.1:{port}")
    rows: list[dict[str, Any]] = []
    calm: list[dict[str, Any]] = []
    grown: list[dict[str, Any]] = []
    inflight: list[dict[str, Any]] = []
    try:
        stub_proc.start().wait_http(f"{stub.url}/_stats")
        rows.append(scenarios.bare(stub, cfg, progress, "bare (before)"))
        for name in cfg.backends:
            for shape in cfg.shapes(name):
                rows.append(scenarios.system(name, shape, stub, cfg, tmp, progress))
        rows.append(scenarios.bare(stub, cfg, progress, "bare (after)"))
        if cfg.probe_orders:
            calm = scenarios.uncontended(stub, cfg, tmp, progress)
        if cfg.inflight_orders:
            inflight = scenarios.inflight(cfg, tmp, progress)
        for name in cfg.backends:
            grown += scenarios.growth(name, stub, cfg, tmp, progress)
        meta["stub_total"] = stub.stats()
    finally:
        stub_proc.stop()
    report.finish(rows, grown)
    print(report.table(rows, calm, grown, meta, inflight))
    name = "smoke" if cfg.smoke else "bench"
    report.write_json(cfg.out / f"{name}.json", rows, calm, grown, meta, inflight)
    title = (f"{cfg.orders} orders at concurrency {cfg.concurrency}, participants "
             f"{cfg.latency_ms:g} ms; {meta['machine']['cores']} cores, Python "
             f"{meta['machine']['python']}, PostgreSQL {meta['machine']['postgres']}")
    why_not = chart.write_png(cfg.out / f"{name}.png", rows, grown, title)
    print(why_not or f"wrote {cfg.out / name}.json and .png", file=sys.stderr)
    problems = report.failures([*rows, *calm], grown, inflight)
    if meta.get("stub_total", {}).get("duplicates"):
        problems.append(f"the stub saw {meta['stub_total']['duplicates']} duplicate effects")
    if problems:
        print("FAILED:\n  " + "\n  ".join(problems) + f"\nlogs kept in {tmp}", file=sys.stderr)
        return 1
    shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
