"""Filling a store with completed workflows, fast: through the Workflows application, many
aggregates per save, instead of through the HTTP API (100,000 orders would take many minutes).

Each workflow is driven to COMPLETED by its own aggregate, pinned to the `order` definition's
latest registered version (`advance()` plans the due calls, `succeed()` records each with what
its step keeps), so its events are exactly those a real run records. One more, the long
workflow, has about 200 events: its first call fails retryably ~195 times before it succeeds
(the console's workflow page is measured on it). As every preloaded
workflow is finished, the orchestrator's shard positions are set to the store's head: what a
running system that had finished them would have recorded. The projection is left at 0; the
system builds the views itself when it starts (see `wait_caught_up`).
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from domain.definitions import Definition
from domain.workflow import Workflow
from infrastructure.bootstrap import bootstrap, build_views, shard_name
from infrastructure.settings import Settings, load

PROJECTION = "workflow_views"


LONG_EVENTS = 200  # the long workflow's events: Started, failures, 3 successes, Completed


@dataclass
class Preloaded:
    workflow_ids: list[str]  # the `count` ordinary workflows (not the long one)
    head: int  # the store's last notification id
    seconds: float
    long_workflow_id: str  # a completed workflow with LONG_EVENTS events


def settings_for(url: str) -> Settings:
    return load({"DATABASE_URL": url, "LOG_FORMAT": "text"})


def completed_workflow(order_id: str, definition: Definition, version: int) -> Workflow:
    """A new workflow of the order definition whose calls all succeeded: Started ..
    Completed. Each success keeps `<action>-<order id>` under every name its step keeps."""
    workflow = Workflow(definition="order", definition_version=version, key=order_id,
                        input={"cents": 1234, "skus": ["sku-1", "sku-2"],
                               "address": "1 Main St"})
    now = workflow.created_on.timestamp()
    while (plan := workflow.advance(definition, now)).dues:
        for due in plan.dues:
            kept = dict.fromkeys(due.keeps.keep if due.keeps else (), f"{due.action}-{order_id}")
            workflow.succeed(definition, due.action, due.attempt, kept)
    if workflow.status != "COMPLETED":
        raise RuntimeError(f"{order_id} ended {workflow.status}, not COMPLETED")
    return workflow


def long_workflow(order_id: str, definition: Definition, version: int,
                  events: int = LONG_EVENTS) -> Workflow:
    """A completed workflow of `events` events (at least 5): its first call fails retryably
    (a 503) until the events left are those of the successes, then everything succeeds."""
    workflow = Workflow(definition="order", definition_version=version, key=order_id,
                        input={"cents": 1234, "skus": ["sku-1", "sku-2"],
                               "address": "1 Main St"})
    now = workflow.created_on.timestamp()
    successes = len(completed_workflow(f"{order_id}-probe", definition, version)
                    .collect_events()) - 1  # those after Started: the calls', and Completed
    failures = max(0, events - 1 - successes)
    flaky: str | None = None
    while (plan := workflow.advance(definition, now)).dues:
        for due in plan.dues:
            flaky = flaky or due.action
            if due.action == flaky and failures:
                failures -= 1
                now += 1.0
                workflow.fail(definition, due.action, due.attempt,
                              error="HTTP 503 from payment: Service Unavailable",
                              retryable=True, uncertain=False, max_attempts=events + 1,
                              retry_at=now)
                continue
            kept = dict.fromkeys(due.keeps.keep if due.keeps else (), f"{due.action}-{order_id}")
            workflow.succeed(definition, due.action, due.attempt, kept)
    if workflow.status != "COMPLETED":
        raise RuntimeError(f"{order_id} ended {workflow.status}, not COMPLETED")
    return workflow


def preload(url: str, count: int, prefix: str, batch: int = 500,
            tick: Callable[[int], None] = lambda n: None) -> Preloaded:
    """Stores `count` completed workflows, `batch` aggregates per transaction."""
    settings = settings_for(url)
    system = bootstrap(settings)
    ids: list[str] = []
    started = time.perf_counter()
    try:
        order = system.definitions.get("order")
        for first in range(0, count, batch):
            workflows = [completed_workflow(f"{prefix}-{i}", order.definition, order.version)
                         for i in range(first, min(count, first + batch))]
            system.workflows.save(*workflows)
            ids.extend(str(w.id) for w in workflows)
            tick(len(workflows))
        long = long_workflow(f"{prefix}-long", order.definition, order.version)
        system.workflows.save(long)
        head = system.workflows.recorder.max_notification_id() or 0
        for shard in range(settings.shards):
            system.views.set_position(shard_name(shard), head)
    finally:
        system.stop()
    return Preloaded(ids, head, time.perf_counter() - started, str(long.id))


def wait_caught_up(url: str, head: int, since: float, timeout_s: float,
                   tick: Callable[[int], None] = lambda n: None) -> float:
    """Waits until the views' position reaches `head`; returns the seconds since `since` (a
    `time.perf_counter()` reading taken when the system was started)."""
    views = build_views(settings_for(url))
    started, seen = since, 0
    try:
        while (position := views.position(PROJECTION)) < head:
            tick(position - seen)
            seen = position
            if time.perf_counter() - started > timeout_s:
                raise TimeoutError(f"the views reached {position} of {head} in {timeout_s}s")
            time.sleep(0.2)
        tick(head - seen)
    finally:
        views.close()
    return time.perf_counter() - started
