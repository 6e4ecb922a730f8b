"""The ports the application drives: participant calls, and what a call can come back as.

The application decides *what* to call and records what came back; infrastructure decides
*how* (HTTP, timeouts, breakers, bulkheads). Outcomes are plain values so that the policy can
turn every one of them into an event: nothing a participant does raises past this boundary.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, Union


@dataclass(frozen=True)
class Call:
    """One participant call, rendered from its definition: the engine knows no call by name.

    `action` is the call's name (a step's or an undo's); `idempotency_key` is the same for
    every retry of one logical action; `path` holds the URL-encoded path and query, relative
    to the participant's base URL; `body` is JSON (None: no body); `timeout_s` is the step's
    own timeout (None: the deployment's)."""

    participant: str
    action: str
    workflow_id: str
    idempotency_key: str
    method: str
    path: str
    body: Any = None
    timeout_s: float | None = None
    traceparent: str | None = None


@dataclass(frozen=True)
class Succeeded:
    """2xx. `result` is the participant's JSON body (None when empty or not JSON)."""

    result: Any = None


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
    """No call was made: the participant's circuit breaker is open, its rate limit is spent,
    its bulkhead is full, or it has no base URL configured (`<NAME>_URL`).

    The step waits `retry_in` seconds and tries again; no attempt is used up."""

    detail: str
    retry_in: float


Outcome = Union[Succeeded, Rejected, Transient, Unavailable]


class Participants(Protocol):
    """Makes one call to `call.participant` and classifies the answer.

    An adapter that can make calls without a thread each (infrastructure's HTTP one, on an
    event loop) also offers `start(call, done)`: it returns at once and calls `done(outcome)`
    exactly once, from a thread of its own, with what `call` would have returned. The
    orchestrator uses it when it is there, and runs `call` on a pool per participant when not
    (a test's fake)."""

    def call(self, call: Call) -> Outcome:
        """Makes the call once (no retries: the application schedules those) and never raises
        for anything the participant or the network does. A participant with no base URL
        configured is Unavailable: the step waits, it does not fail."""
        ...
