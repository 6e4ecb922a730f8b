"""The benchmark's settings: flags first, then the environment, then the defaults."""
from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from pathlib import Path

from bench.backends import DEFAULT_PG_ADMIN, postgres_reachable
from bench.system import API_1W, API_2W, RUN, Shape

RESULTS = Path(__file__).resolve().parent / "results"
USAGE = f"""environment: ORDERS (500), CONCURRENCY (32), LATENCY_MS (20), BACKEND
(sqlite|postgres|both; both when PostgreSQL is reachable), GROWTH (1000,100000; 0 skips),
IN_FLIGHT_ORDERS (5000; 0 skips),
BENCH_PG_URL (a PostgreSQL URL whose user may create databases; default {DEFAULT_PG_ADMIN})"""


@dataclass(frozen=True)
class Config:
    orders: int
    concurrency: int
    latency_ms: float
    backends: tuple[str, ...]
    growth: tuple[int, ...]  # stored workflows before each growth measurement
    get_samples: int
    probe_orders: int  # orders at concurrency 1 (0: none)
    inflight_orders: int  # orders started at once in the in-flight scenario (0: none)
    inflight_latency_ms: float
    pg_admin_url: str
    smoke: bool
    out: Path
    notes: tuple[str, ...] = ()

    def shapes(self, backend: str) -> tuple[Shape, ...]:
        """SQLite runs as one process; PostgreSQL also in the production shape."""
        if backend == "sqlite" or self.smoke:
            return (RUN,)
        return (RUN, API_1W, API_2W)


def parse(argv: list[str] | None = None) -> Config:
    """Reads the flags and the environment; a bad value exits with usage."""
    env = os.environ
    parser = argparse.ArgumentParser(
        prog="python -m bench", epilog=USAGE,
        description="The orchestrator's benchmark, against a bare baseline in the same run.")
    parser.add_argument("--smoke", action="store_true",
                        help="a few seconds: 30 orders, concurrency 4, SQLite, 200 stored; "
                             "exits 1 if an order did not complete or an effect was duplicated")
    parser.add_argument("--orders", type=int, default=env.get("ORDERS", "500"))
    parser.add_argument("--concurrency", type=int, default=env.get("CONCURRENCY", "32"))
    parser.add_argument("--latency-ms", type=float, default=env.get("LATENCY_MS", "20"))
    parser.add_argument("--backend", choices=("sqlite", "postgres", "both"),
                        default=env.get("BACKEND") or None)
    parser.add_argument("--growth", default=env.get("GROWTH", "1000,100000"),
                        help="comma-separated store sizes; 0 skips the growth measurements")
    parser.add_argument("--get-samples", type=int, default=2000,
                        help="GET /workflows/{id} per growth measurement")
    parser.add_argument("--probe-orders", type=int, default=60,
                        help="orders at concurrency 1, for the overhead without queueing")
    parser.add_argument("--inflight-orders", type=int,
                        default=env.get("IN_FLIGHT_ORDERS", "5000"),
                        help="orders started at once against slow participants (0: none)")
    parser.add_argument("--inflight-latency-ms", type=float, default=1000.0,
                        help="each participant call's time in the in-flight scenario")
    parser.add_argument("--pg-url", default=env.get("BENCH_PG_URL", DEFAULT_PG_ADMIN))
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)  # string defaults from the environment go through `type`
    if args.smoke:
        return Config(orders=30, concurrency=4, latency_ms=5, backends=("sqlite",),
                      growth=(200,), get_samples=50, probe_orders=0,
                      inflight_orders=60, inflight_latency_ms=200,
                      pg_admin_url=args.pg_url, smoke=True,
                      out=args.out)
    if args.orders < 1 or args.concurrency < 1 or args.latency_ms < 0:
        parser.error("ORDERS and CONCURRENCY must be at least 1, LATENCY_MS at least 0")
    try:
        growth = tuple(n for n in (int(x) for x in args.growth.split(",") if x.strip()) if n)
    except ValueError:
        parser.error(f"GROWTH must be comma-separated integers, got {args.growth!r}")
    backends, notes = _backends(args.backend, args.pg_url, parser)
    return Config(orders=args.orders, concurrency=args.concurrency, latency_ms=args.latency_ms,
                  backends=backends, growth=growth, get_samples=args.get_samples,
                  probe_orders=args.probe_orders, inflight_orders=args.inflight_orders,
                  inflight_latency_ms=args.inflight_latency_ms,
                  pg_admin_url=args.pg_url, smoke=False, out=args.out, notes=notes)


def _backends(asked: str | None, pg_url: str,
              parser: argparse.ArgumentParser) -> tuple[tuple[str, ...], tuple[str, ...]]:
    if asked == "sqlite":
        return ("sqlite",), ()
    why_not = postgres_reachable(pg_url)
    if why_not is None:
        return (("postgres",) if asked == "postgres" else ("sqlite", "postgres")), ()
    if asked in ("postgres", "both"):
        parser.error(f"BACKEND={asked}, but {why_not} (set BENCH_PG_URL)")
    return ("sqlite",), (f"PostgreSQL skipped: {why_not}",)
