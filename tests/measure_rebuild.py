"""Measures `projections rebuild` on a fresh database: python -m tests.measure_rebuild
[--workflows N] [--db postgres|sqlite]. Prints the rate; asserts nothing about time."""
from __future__ import annotations

import argparse
import tempfile
import time
import uuid

from application.rebuild import Rebuild
from infrastructure.bootstrap import bootstrap
from infrastructure.rebuild_sql import SqlRebuildTarget
from infrastructure.settings import load
from tests.conftest import DEFAULT_PG
from tests.histories import build


def _database(kind: str, folder: str) -> tuple[str, str | None]:
    if kind == "sqlite":
        return f"sqlite:///{folder}/measure.sqlite3", None
    import psycopg

    name = f"orch_measure_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(DEFAULT_PG, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return f"{DEFAULT_PG.rsplit('/', 1)[0]}/{name}", name


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workflows", type=int, default=50_000)
    parser.add_argument("--db", choices=("postgres", "sqlite"), default="postgres")
    parser.add_argument("--batch", type=int, default=2000)
    parser.add_argument("--interleave", action="store_true",
                        help="store 1000 workflows' events round by round, as if concurrent")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        url, dropme = _database(args.db, folder)
        try:
            system = bootstrap(load({"DATABASE_URL": url}))
            began = time.monotonic()
            build(system.workflows, args.workflows, per_save=1000, interleave=args.interleave)
            head = system.workflows.recorder.max_notification_id() or 0
            print(f"{args.db}: stored {args.workflows} workflows, {head} events"
                  f"{' (interleaved)' if args.interleave else ''} "
                  f"in {time.monotonic() - began:.1f} s")
            report = Rebuild(system.workflows, SqlRebuildTarget(system.views),
                             batch=args.batch).run()
            print(f"{args.db}: rebuilt {report.events} events in {report.seconds:.2f} s: "
                  f"{report.rate:,.0f} events/s")
            system.stop(grace_s=0)
        finally:
            if dropme:
                import psycopg

                with psycopg.connect(DEFAULT_PG, autocommit=True) as conn:
                    conn.execute(f'DROP DATABASE IF EXISTS "{dropme}" WITH (FORCE)')


if __name__ == "__main__":
    main()
