"""A store written before definitions existed: the order saga's events exactly as that code
stored them, the state views it served, and the views tables it kept.

Each history below was recorded by the code of commit 807f22d (the last before definitions):
its `Workflow` aggregate was driven through `advance`, `succeed`, `fail`, `request_cancel` and
`request_retry`, its events were stored by the eventsourcing mapper, and only the timestamps were
then set to fixed values. `OLD_VIEWS` is what that code's `fold` made of them, field by field.
The events go into a store straight through the recorder, as topics and JSON, so no code of
today's has a hand in how they are written.

The shapes of that time: `Started` v1 (`order_id`, `cents`, `skus`, `address`; no
`class_version`), `Charged` v1 (no `cents`) and v2, `Reserved`, `Shipped`, `StepFailed` v1 (no
`step`), `CompensationStarted` v1 (`doubtful` a step's name or None), `Compensated`,
`CompensationFailed`, `RetryRequested`, `CancelRequested`, `Completed`, `Failed`, `Cancelled`.
"""
from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from eventsourcing.persistence import StoredEvent

NAMESPACE = uuid.UUID("6f1e7d3c-58a2-4c39-9d0e-0c1b2a3f4e5d")  # as the old create_id used


def old_id(order_id: str) -> uuid.UUID:
    """The workflow id the old code gave an order (uuid5 of the order id alone)."""
    return uuid.uuid5(NAMESPACE, order_id)


# order id -> its events: (class name under Workflow, timestamp, stored fields)
Event = tuple[str, str, dict[str, Any]]
RETRY = {"retryable": True, "uncertain": True}
HISTORIES: dict[str, list[Event]] = {
    # COMPLETED; its charge recorded by v1 of Charged (no cents), reserve retried once
    "legacy-done": [
        ("Started", "2024-03-01T12:00:00+00:00", {
            "originator_topic": "domain.workflow:Workflow", "order_id": "legacy-done",
            "cents": 1999, "skus": ["sku-1", "sku-2"], "address": "1 Old Rd"}),
        ("Charged", "2024-03-01T12:00:01.250000+00:00",
         {"payment_id": "pay-legacy-1", "attempt": 1}),
        ("StepFailed", "2024-03-01T12:00:02.500000+00:00", {
            "action": "reserve", "attempt": 1, "error": "503: inventory busy", **RETRY,
            "retry_at": 1709294405.25}),
        ("Reserved", "2024-03-01T12:00:03.750000+00:00",
         {"reservation_id": "res-legacy-1", "attempt": 2}),
        ("Shipped", "2024-03-01T12:00:04+00:00", {"shipment_id": "shp-legacy-1", "attempt": 1}),
        ("Completed", "2024-03-01T12:00:05.250000+00:00", {}),
    ],
    # FAILED: ship rejected; release done; the refund failed for good (COMPENSATION_FAILED),
    # an operator retried, the refund went through
    "legacy-failed": [
        ("Started", "2024-03-01T12:01:00+00:00", {
            "originator_topic": "domain.workflow:Workflow", "order_id": "legacy-failed",
            "cents": 500, "skus": ["sku-3"], "address": "2 Old Rd"}),
        ("Charged", "2024-03-01T12:01:01.250000+00:00",
         {"payment_id": "pay-legacy-2", "attempt": 1, "cents": 500, "class_version": 2}),
        ("Reserved", "2024-03-01T12:01:02.500000+00:00",
         {"reservation_id": "res-legacy-2", "attempt": 1}),
        ("StepFailed", "2024-03-01T12:01:03.750000+00:00", {
            "action": "ship", "attempt": 1, "error": "503: shipping down", **RETRY,
            "retry_at": 1709294465.5}),
        ("StepFailed", "2024-03-01T12:01:04+00:00", {
            "action": "ship", "attempt": 2, "error": "rejected (422): bad address",
            "retryable": False, "uncertain": False, "retry_at": None}),
        ("CompensationStarted", "2024-03-01T12:01:05.250000+00:00", {
            "reason": "failed", "error": "ship: rejected (422): bad address", "doubtful": None}),
        ("Compensated", "2024-03-01T12:01:06.500000+00:00",
         {"step": "reserve", "action": "release", "attempt": 1}),
        *[("StepFailed", at, {"action": "refund", "attempt": n, "error": "503: payment down",
                              **RETRY, "retry_at": None})
          for n, at in ((1, "2024-03-01T12:01:07.750000+00:00"),
                        (2, "2024-03-01T12:01:08+00:00"),
                        (3, "2024-03-01T12:01:09.250000+00:00"))],
        ("CompensationFailed", "2024-03-01T12:01:10.500000+00:00",
         {"action": "refund", "error": "refund: 503: payment down"}),
        ("RetryRequested", "2024-03-01T12:01:11.750000+00:00",
         {"by": "operator-1", "reason": "payment is back"}),
        ("Compensated", "2024-03-01T12:01:12+00:00",
         {"step": "charge", "action": "refund", "attempt": 4}),
        ("Failed", "2024-03-01T12:01:13.250000+00:00", {"error": "refund: 503: payment down"}),
    ],
    # CANCELLED while reserve was in flight: compensation asked reserve again (the doubt),
    # found it done, released and refunded
    "legacy-cancelled": [
        ("Started", "2024-03-01T12:02:00+00:00", {
            "originator_topic": "domain.workflow:Workflow", "order_id": "legacy-cancelled",
            "cents": 700, "skus": ["sku-4"], "address": "3 Old Rd"}),
        ("Charged", "2024-03-01T12:02:01.250000+00:00",
         {"payment_id": "pay-legacy-3", "attempt": 1, "cents": 700, "class_version": 2}),
        ("CancelRequested", "2024-03-01T12:02:02.500000+00:00", {"by": "client"}),
        ("CompensationStarted", "2024-03-01T12:02:03.750000+00:00", {
            "reason": "cancelled", "error": "cancelled by client", "doubtful": "reserve"}),
        ("Reserved", "2024-03-01T12:02:04+00:00",
         {"reservation_id": "res-legacy-3", "attempt": 1}),
        ("Compensated", "2024-03-01T12:02:05.250000+00:00",
         {"step": "reserve", "action": "release", "attempt": 1}),
        ("Compensated", "2024-03-01T12:02:06.500000+00:00",
         {"step": "charge", "action": "refund", "attempt": 1}),
        ("Cancelled", "2024-03-01T12:02:07.750000+00:00", {}),
    ],
    # mid-flight: charged, nothing more recorded when the old code stopped
    "legacy-midway": [
        ("Started", "2024-03-01T12:03:00+00:00", {
            "originator_topic": "domain.workflow:Workflow", "order_id": "legacy-midway",
            "cents": 4200, "skus": ["sku-5"], "address": "4 Old Rd"}),
        ("Charged", "2024-03-01T12:03:01.250000+00:00",
         {"payment_id": "pay-legacy-4", "attempt": 1, "cents": 4200, "class_version": 2}),
    ],
    # mid-compensation: cancelled by a driver that could not know whether ship was in flight,
    # so ship is in doubt (v1's `doubtful` a string); nothing more recorded
    "legacy-undoing": [
        ("Started", "2024-03-01T12:04:00+00:00", {
            "originator_topic": "domain.workflow:Workflow", "order_id": "legacy-undoing",
            "cents": 800, "skus": ["sku-6"], "address": "5 Old Rd"}),
        ("Charged", "2024-03-01T12:04:01.250000+00:00",
         {"payment_id": "pay-legacy-5", "attempt": 1, "cents": 800, "class_version": 2}),
        ("Reserved", "2024-03-01T12:04:02.500000+00:00",
         {"reservation_id": "res-legacy-5", "attempt": 1}),
        ("CancelRequested", "2024-03-01T12:04:03.750000+00:00", {"by": "client"}),
        ("CompensationStarted", "2024-03-01T12:04:04+00:00", {
            "reason": "cancelled", "error": "cancelled by client", "doubtful": "ship"}),
    ],
}
FINISHED = ("legacy-done", "legacy-failed", "legacy-cancelled")
RUNNING = ("legacy-midway", "legacy-undoing")


def _view(order_id: str, status: str, ids: tuple[str | None, str | None, str | None],
          error: str | None, attempts: dict[str, int]) -> dict[str, Any]:
    events = HISTORIES[order_id]
    return {
        "workflowId": str(old_id(order_id)), "orderId": order_id, "status": status,
        "paymentId": ids[0], "reservationId": ids[1], "shipmentId": ids[2], "error": error,
        "attempts": attempts, "createdAt": view_time(events[0][1]),
        "updatedAt": view_time(events[-1][1]),
        "version": len(events),
    }


def view_time(at: str) -> str:
    """The views' fixed-width form of a stored timestamp."""
    return datetime.fromisoformat(at).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# The state views the old code served (its `fold` over the events above).
OLD_VIEWS: dict[str, dict[str, Any]] = {
    "legacy-done": _view("legacy-done", "COMPLETED",
                         ("pay-legacy-1", "res-legacy-1", "shp-legacy-1"),
                         "reserve: 503: inventory busy", {"charge": 1, "reserve": 2, "ship": 1}),
    "legacy-failed": _view("legacy-failed", "FAILED", ("pay-legacy-2", "res-legacy-2", None),
                           "refund: 503: payment down",
                           {"charge": 1, "reserve": 1, "ship": 2, "release": 1, "refund": 4}),
    "legacy-cancelled": _view("legacy-cancelled", "CANCELLED",
                              ("pay-legacy-3", "res-legacy-3", None), "cancelled by client",
                              {"charge": 1, "reserve": 1, "release": 1, "refund": 1}),
    "legacy-midway": _view("legacy-midway", "CHARGED", ("pay-legacy-4", None, None), None,
                           {"charge": 1}),
    "legacy-undoing": _view("legacy-undoing", "COMPENSATING",
                            ("pay-legacy-5", "res-legacy-5", None), "cancelled by client",
                            {"charge": 1, "reserve": 1}),
}
# What each step kept, as today's views show it under `results`.
OLD_RESULTS: dict[str, dict[str, Any]] = {
    "legacy-done": {"charge": {"paymentId": "pay-legacy-1"},
                    "reserve": {"reservationId": "res-legacy-1"},
                    "ship": {"shipmentId": "shp-legacy-1"}},
    "legacy-failed": {"charge": {"paymentId": "pay-legacy-2"},
                      "reserve": {"reservationId": "res-legacy-2"}},
    "legacy-cancelled": {"charge": {"paymentId": "pay-legacy-3"},
                         "reserve": {"reservationId": "res-legacy-3"}},
    "legacy-midway": {"charge": {"paymentId": "pay-legacy-4"}},
    "legacy-undoing": {"charge": {"paymentId": "pay-legacy-5"},
                       "reserve": {"reservationId": "res-legacy-5"}},
}


def stored(order_id: str) -> list[StoredEvent]:
    """The workflow's events as the old code's mapper stored them."""
    wid = old_id(order_id)
    return [StoredEvent(wid, n, f"domain.workflow:Workflow.{name}", _state(at, fields))
            for n, (name, at, fields) in enumerate(HISTORIES[order_id], start=1)]


def _state(at: str, fields: dict[str, Any]) -> bytes:
    state = {"timestamp": {"_type_": "datetime_iso", "_data_": at}, **fields}
    return json.dumps(state, separators=(",", ":"), ensure_ascii=False).encode()


def interleaved(order_ids: tuple[str, ...] = tuple(HISTORIES)) -> Iterator[StoredEvent]:
    """Every workflow's events, round by round (every first event, then every second...), as
    the store held them when the workflows ran at once."""
    histories = [stored(o) for o in order_ids]
    for n in range(max(len(h) for h in histories)):
        yield from (h[n] for h in histories if n < len(h))


def write(recorder: Any, order_ids: tuple[str, ...] = tuple(HISTORIES)) -> int:
    """Writes the histories straight through the event store's recorder; returns the head."""
    for event in interleaved(order_ids):
        recorder.insert_events([event])
    return int(recorder.max_notification_id() or 0)


# --- the views as the old code kept them -------------------------------------------------------

OLD_VIEW_TABLES = [
    """CREATE TABLE IF NOT EXISTS workflow_state (
    workflow_id TEXT PRIMARY KEY, order_id TEXT NOT NULL, status TEXT NOT NULL,
    payment_id TEXT, reservation_id TEXT, shipment_id TEXT, error TEXT,
    attempts TEXT NOT NULL, created_at TEXT NOT NULL, updated_at TEXT NOT NULL,
    version INTEGER NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS workflow_audit (
    workflow_id TEXT NOT NULL, position INTEGER NOT NULL, type TEXT NOT NULL,
    timestamp TEXT NOT NULL, data TEXT NOT NULL, PRIMARY KEY (workflow_id, position))""",
    "CREATE INDEX IF NOT EXISTS workflow_state_order ON workflow_state (order_id)",
    "CREATE INDEX IF NOT EXISTS workflow_state_status_created "
    "ON workflow_state (status, created_at, workflow_id)",
    "CREATE INDEX IF NOT EXISTS workflow_state_created ON workflow_state (created_at, workflow_id)",
    """CREATE TABLE IF NOT EXISTS view_positions (
    name TEXT PRIMARY KEY, position BIGINT NOT NULL)""",
]
OLD_STATE_KEYS = ("workflowId", "orderId", "status", "paymentId", "reservationId", "shipmentId",
                  "error", "attempts", "createdAt", "updatedAt", "version")


def old_view_rows(view: dict[str, Any]) -> tuple[Any, ...]:
    """A state view as the old tables held it (attempts as sorted JSON)."""
    values = {**view, "attempts": json.dumps(view["attempts"], sort_keys=True)}
    return tuple(values[k] for k in OLD_STATE_KEYS)
