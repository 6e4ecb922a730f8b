"""Prometheus metrics: what the orchestrator reports, in the text format /metrics serves.

Under gunicorn, several API processes share one view through prometheus-client's multiprocess
mode (PROMETHEUS_MULTIPROC_DIR); a single process uses the default registry."""
from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

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


def serve_metrics(port: int, system: Any) -> None:
    """Serves this process's metrics on 127.0.0.1:`port` (a worker has no API of its own)."""
    from prometheus_client import start_http_server

    participants = system.participants
    if hasattr(participants, "breaker_states"):
        for participant in participants.breaker_states():
            def is_open(name: str = participant) -> float:  # read at each scrape
                return float(participants.breaker_states()[name] != "closed")

            BREAKER.labels(participant).set_function(is_open)
    start_http_server(port, addr="127.0.0.1")


def participant_unconfigured(participant: str) -> None:
    UNCONFIGURED.labels(participant).inc()


def set_breakers(states: dict[str, str]) -> None:
    for participant, state in states.items():
        BREAKER.labels(participant).set(0 if state == "closed" else 1)


def set_lag(projection: str, lag: int) -> None:
    LAG.labels(projection).set(max(0, lag))
