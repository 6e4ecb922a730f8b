"""The ports the application drives: participant calls, and what a call can come back as.

The application decides *what* to call and records what came back; infrastructure decides
*how* (HTTP, timeouts, breakers, bulkheads). Outcomes are plain values so that the policy can
turn every one of them into an event: nothing a participant does raises past this boundary.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, Union


@dataclass(frozen=True)
class Call:
    """One participant call. `action` is one of charge, refund, reserve, release, ship, cancel.

    `idempotency_key` is the same for every retry of one logical action; `args` holds what the
    action's request needs (orderId, cents, skus, address, paymentId, reservationId,
    shipmentId, reason)."""

    action: str
    workflow_id: str
    idempotency_key: str
    args: dict[str, Any]
    traceparent: str | None = None


@dataclass(frozen=True)
class Succeeded:
    """2xx. `result` is the participant's JSON body (e.g. {"paymentId": ...}), {} when empty."""

    result: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Rejected:
    """A business rejection: 4xx other than 408, 409 and 429. Never retried."""

    status: int
    detail: str


@dataclass(frozen=True)
class Transient:
    """408, 409, 429, 5xx, a connection error or a timeout: worth another attempt.

    `retry_after` is the participant's Retry-After in seconds, when it sent one.
    `maybe_applied` is False only when the participant surely did nothing (the connection was
    refused, or it answered 408 or 429); a 5xx, a 409 (the same key still in progress) or a
    timeout may hide a done effect."""

    detail: str
    status: int | None = None
    retry_after: float | None = None
    maybe_applied: bool = True


@dataclass(frozen=True)
class Unavailable:
    """No call was made: the participant's circuit breaker is open or its rate limit is spent.

    The step waits `retry_in` seconds and tries again; no attempt is used up."""

    detail: str
    retry_in: float


Outcome = Union[Succeeded, Rejected, Transient, Unavailable]


class Participants(Protocol):
    """Makes one call to the participant that owns `call.action` and classifies the answer."""

    def call(self, call: Call) -> Outcome:
        """Makes the call once (no retries: the application schedules those) and never raises
        for anything the participant or the network does."""
        ...

    def participant_of(self, action: str) -> str:
        """The participant ("payment", "inventory" or "shipping") that serves `action`."""
        ...
