"""The `orchestrator` console script: run, api, worker, participants, and operators' tools."""
from __future__ import annotations

import dataclasses
import logging
import signal
import sys
import threading
from pathlib import Path
from typing import Any

import click

from api.cli_definitions import definitions
from api.cli_ops import audit, projections, workflows
from infrastructure import logs
from infrastructure.settings import Settings, SettingsError, load

log = logging.getLogger("orchestrator")


def _settings() -> Settings:
    try:
        settings = load()
    except SettingsError as e:
        raise click.UsageError(str(e)) from None
    logs.configure(json_lines=settings.log_json)
    return settings


def _bootstrap(settings: Settings, **kwargs: Any) -> Any:
    """The system for these settings; a store it cannot open stops the command with a message
    naming the variable, not a traceback."""
    from infrastructure.bootstrap import bootstrap

    try:
        return bootstrap(settings, **kwargs)
    except SettingsError as e:
        raise click.UsageError(str(e)) from None


def _on_stop_signal() -> threading.Event:
    """An event set by SIGINT or SIGTERM; installed before anything starts, so that a stop
    asked for during start-up is a clean stop too."""
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    return stop


def _until(stop: threading.Event) -> None:
    while not stop.wait(0.5):
        pass


@click.group()
def main() -> None:
    """A durable saga orchestrator: charge, reserve, ship, and compensate on failure."""


@main.command()
@click.option("--port", type=int, default=8000, envvar="PORT", show_default=True)
@click.option("--participants-port", type=int, default=8001, show_default=True,
              help="where the demo participants listen (unless *_URL point elsewhere)")
def run(port: int, participants_port: int) -> None:
    """The whole system on one machine: API, worker and demo participants on 127.0.0.1."""
    from api.app import create_app
    from api.dev_server import MAX_WAITING, make_dev_server
    from demo.server import make_participants_server
    from infrastructure.metrics import PrometheusMetrics

    settings = _settings()
    stop = _on_stop_signal()
    servers: list[Any] = []
    system = _bootstrap(settings, metrics=PrometheusMetrics(), serves_requests=True)
    # With no <NAME>_URL at all, the demo participants serve every participant of the
    # definitions; pointed at services of one's own, an unset participant waits, as in
    # production (its worker logs the missing variable).
    unset = {p for name in system.definitions.names()
             for p in system.definitions.get(name).definition.participants}
    demo = not settings.participant_urls
    if demo:
        url = f"http://127.0.0.1:{participants_port}"
        settings = system.settings = dataclasses.replace(
            settings, participant_urls={**settings.participant_urls, **dict.fromkeys(unset, url)})
    if demo:  # up before the worker makes its first call
        data = settings.sqlite_path.parent if not settings.is_postgres else Path("var")
        data.mkdir(parents=True, exist_ok=True)
        servers.append(make_participants_server(
            "127.0.0.1", participants_port, str(data / "participants.sqlite3")))
        log.info("demo participants on http://127.0.0.1:%d", participants_port)
    system.start_worker()
    servers.append(make_dev_server("127.0.0.1", port,
                                   create_app(system, max_waiting=MAX_WAITING)))
    for server in servers:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    log.info("orchestrator on http://127.0.0.1:%d (store %s)", port,
             settings.redacted_database_url())
    click.echo(f"orchestrator listening on http://127.0.0.1:{port}  (Ctrl-C stops it)", err=True)
    _until(stop)
    click.echo("stopping: finishing the calls in flight", err=True)
    servers[-1].shutdown()
    system.stop(grace_s=10)
    for server in servers[:-1]:
        server.shutdown()


@main.command()
@click.option("--metrics-port", type=int, default=None,
              help="serve this worker's Prometheus metrics on 127.0.0.1:PORT/metrics")
def worker(metrics_port: int | None) -> None:
    """The process application, the participant calls and the projections."""
    from infrastructure.metrics import PrometheusMetrics, serve_metrics

    settings = _settings()
    stop = _on_stop_signal()
    system = _bootstrap(settings, metrics=PrometheusMetrics()).start_worker()
    if metrics_port is not None:
        serve_metrics(metrics_port, system)
    log.info("worker started (store %s)", settings.redacted_database_url())
    _until(stop)
    log.info("worker stopping: finishing the calls in flight")
    finished = system.stop(grace_s=10)
    log.info("worker stopped (%s)", "all calls finished" if finished else "grace period over")
    sys.exit(0)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=8000, envvar="PORT", show_default=True)
@click.option("--workers", type=int, default=2, show_default=True, help="gunicorn processes")
def api(host: str, port: int, workers: int) -> None:
    """The HTTP API under gunicorn (the worker runs separately: `orchestrator worker`)."""
    from api.serve import serve

    settings = _settings()
    loopback = host in ("127.0.0.1", "localhost", "::1") or host.startswith("127.")
    if not loopback and not settings.auth_enabled and not settings.allow_anonymous:
        raise click.UsageError(
            f"refusing to serve on {host} without API_TOKENS or OPERATOR_TOKENS; "
            "set tokens, or ALLOW_ANONYMOUS=1 to accept anonymous clients")
    serve(settings, host, port, workers)


@main.group()
def db() -> None:
    """The database."""


@db.command("init")
def db_init() -> None:
    """Creates the event store's and the views' tables (every process also does it at start,
    one at a time; this lets a deploy do it first)."""
    settings = _settings()
    system = _bootstrap(settings)
    system.views.close()
    system.workflows.close()
    click.echo(f"tables ready in {settings.redacted_database_url()}")


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=8001, show_default=True)
@click.option("--db", default="var/participants.sqlite3", show_default=True,
              help="where the participants keep their records")
def participants(host: str, port: int, db: str) -> None:
    """The demo participants of the bundled definitions (order, trip), with fault injection."""
    from demo.server import serve_participants

    logs.configure(json_lines=False)
    Path(db).parent.mkdir(parents=True, exist_ok=True)
    click.echo(f"demo participants on http://{host}:{port}", err=True)
    serve_participants(host, port, db)


# The operators' commands live in their own module.
for _group in (audit, definitions, projections, workflows):
    main.add_command(_group)
