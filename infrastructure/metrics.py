"""Prometheus metrics: what the orchestrator reports, in the text format /metrics serves.

Under gunicorn, several API processes share one view through prometheus-client's multiprocess
mode (PROMETHEUS_MULTIPROC_DIR); a single process uses the default registry."""
from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

log = logging.getLogger("orchestrator.metrics")
STARTED = Counter("orchestrator_workflows_started_total", "Workflows started")
FINISHED = Counter("orchestrator_workflows_finished_total", "Workflows ended, by status",
                   ["status"])
CALLS = Histogram("orchestrator_participant_call_seconds",
                  "Participant calls by participant, action and outcome",
                  ["participant", "action", "outcome"],
                  buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
RETRIES = Counter("orchestrator_retries_total", "Failed attempts that will be retried",
                  ["action"])
UNCONFIGURED = Counter("orchestrator_participant_unconfigured_total",
                       "Calls that waited because their participant has no <NAME>_URL",
                       ["participant"])
BREAKER = Gauge("orchestrator_breaker_open", "1 while a participant's breaker is not closed",
                ["participant"], multiprocess_mode="max")
LAG = Gauge("orchestrator_projection_lag_events", "Events not yet in the views",
            ["projection"], multiprocess_mode="max")


class PrometheusMetrics:
    """The orchestrator's Metrics port, onto the counters above."""

    def call_finished(self, participant: str, action: str, outcome: str, seconds: float) -> None:
        CALLS.labels(participant, action, outcome).observe(seconds)
        if outcome == "transient":
            RETRIES.labels(action).inc()

    def workflow_finished(self, status: str) -> None:
        FINISHED.labels(status).inc()


def render(refresh: Callable[[], None] | None = None) -> tuple[bytes, str]:
    """The metrics page and its content type; `refresh` updates gauges read on demand."""
    if refresh is not None:
        refresh()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(), CONTENT_TYPE_LATEST


class _AtScrape:
    """A collector that brings the gauges read on demand up to date (`refresh`), then yields
    every metric of the process: what a scrape of a worker's own port serves."""

    def __init__(self, refresh: Callable[[], None]) -> None:
        self.refresh = refresh

    def describe(self) -> list[Any]:
        return []  # nothing to check for duplicates: it serves the other registries' metrics

    def collect(self) -> Iterator[Any]:
        try:
            self.refresh()
        except Exception:  # a scrape still serves the rest
            log.exception("could not refresh the metrics read on demand")
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            yield from registry.collect()
        else:
            yield from REGISTRY.collect()


def serve_metrics(port: int, system: Any) -> Any:
    """Serves this process's metrics on 127.0.0.1:`port` (a worker has no API of its own);
    returns the server. Participants are made on their first call, so the breaker gauge is
    read at each scrape: a participant appears there once it has been called."""
    from prometheus_client import start_http_server

    def refresh() -> None:
        participants = system.participants
        if participants is not None and hasattr(participants, "breaker_states"):
            set_breakers(participants.breaker_states())

    registry = CollectorRegistry(auto_describe=False)
    registry.register(_AtScrape(refresh))
    server, _ = start_http_server(port, addr="127.0.0.1", registry=registry)
    return server


def participant_unconfigured(participant: str) -> None:
    UNCONFIGURED.labels(participant).inc()


def set_breakers(states: dict[str, str]) -> None:
    for participant, state in states.items():
        BREAKER.labels(participant).set(0 if state == "closed" else 1)


def set_lag(projection: str, lag: int) -> None:
    LAG.labels(projection).set(max(0, lag))
