"""Resilience primitives for participant calls: backoff, Retry-After, token bucket, breaker.

Nothing here makes a call; `participants_http` combines them per participant.
"""
from __future__ import annotations

import random
import threading
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar

import pybreaker

T = TypeVar("T")

MAX_DELAY_S = 300.0  # no Retry-After, however large, parks a step for more than this
MIN_RETRY_IN_S = 0.05  # keeps an "open" answer from turning into a busy loop
_MAX_EXPONENT = 62  # 2**62 already dwarfs any cap; bigger exponents would overflow a float
_UNSET: Any = object()


def backoff_delay(
    attempt: int,
    base_s: float,
    cap_s: float,
    retry_after: float | None = None,
    rng: random.Random | None = None,
) -> float:
    """Seconds to wait after attempt `attempt` (1-based) failed: exponential backoff with full
    jitter, uniform(0, min(cap_s, base_s * 2**(attempt-1))).

    A participant's `retry_after` is honoured as a floor (jitter may still spread retries out
    beyond it) but never yields more than max(cap_s, retry_after), itself capped at 300 s."""
    if attempt < 1:
        raise ValueError(f"attempt starts at 1, got {attempt}")
    if base_s < 0 or cap_s < 0:
        raise ValueError("base_s and cap_s must not be negative")
    ceiling = min(cap_s, base_s * 2.0 ** min(attempt - 1, _MAX_EXPONENT))
    jitter = (rng or random).uniform(0.0, ceiling)
    if retry_after is None:
        return jitter
    # jitter <= cap_s, so max(retry_after, jitter) <= max(cap_s, retry_after) already
    return min(max(max(retry_after, 0.0), jitter), MAX_DELAY_S)


def parse_retry_after(value: str | None) -> float | None:
    """Retry-After as seconds from now (delta-seconds or an HTTP-date), never negative; None
    when absent or unparseable."""
    if not value or not value.strip():
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():  # str.isdigit alone accepts "²"
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # HTTP-dates are GMT; a naive parse means "-0000"
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


class TokenBucket:
    """A thread-safe token bucket: `rate_per_s` tokens a second, holding at most `burst`."""

    def __init__(
        self,
        rate_per_s: float,
        burst: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if rate_per_s <= 0:
            raise ValueError(f"rate_per_s must be positive, got {rate_per_s}")
        self.rate = float(rate_per_s)
        self.burst = float(burst) if burst is not None else max(1.0, self.rate)
        if self.burst < 1:
            raise ValueError(f"burst must be at least 1, got {burst}")
        self._clock = clock
        self._tokens = self.burst  # start full: a fresh process may serve one burst at once
        self._stamp = clock()
        self._lock = threading.Lock()

    def try_acquire(self) -> float:
        """Takes a token and returns 0, or takes nothing and returns the seconds until one is
        available. Never blocks: the caller decides whether to wait."""
        with self._lock:
            now = self._clock()
            self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
            self._stamp = now
            if self._tokens >= 1.0 - 1e-9:  # float refills land on 0.999...; that is a token
                self._tokens -= 1.0
                return 0.0
            return (1.0 - self._tokens) / self.rate


class BreakerOpen(Exception):
    """The breaker refused the call without making it; retry in `retry_in` seconds."""

    def __init__(self, detail: str, retry_in: float) -> None:
        super().__init__(detail)
        self.detail = detail
        self.retry_in = retry_in


class _CountedFailure(Exception):
    """Raised inside pybreaker's block so that it counts a failed result (not an exception)."""


class Breaker:
    """One participant's circuit breaker, created once and shared by all threads.

    pybreaker keeps the state; we use `calling()` rather than `call()` because `call()` holds
    a lock for the whole call and would serialize every call to the participant (`calling()`
    holds none across the await: calls on one event loop interleave). pybreaker's half-open
    state admits every caller, so a lock of our own lets exactly one trial through.
    """

    def __init__(self, name: str, fail_max: int, reset_s: float) -> None:
        if fail_max < 1 or reset_s <= 0:
            raise ValueError("fail_max must be >= 1 and reset_s > 0")
        self.name = name
        self._cb = pybreaker.CircuitBreaker(fail_max=fail_max, reset_timeout=reset_s, name=name)
        self._trial = threading.Lock()

    def state(self) -> str:
        """"closed", "open" or "half-open". An open breaker whose reset timeout has passed is
        reported half-open: pybreaker only flips it on the next call, but that call will be let
        through as the trial."""
        state = self._cb.current_state
        if state == pybreaker.STATE_OPEN and self._remaining() <= 0:
            return pybreaker.STATE_HALF_OPEN
        return state

    def retry_in(self) -> float:
        """Seconds until an open breaker lets a trial call through (at least 0.05)."""
        return max(MIN_RETRY_IN_S, self._remaining())

    def _remaining(self) -> float:
        opened_at = self._cb._state_storage.opened_at  # no public accessor in pybreaker 1.4
        if opened_at is None:
            return 0.0
        elapsed = (datetime.now(UTC) - opened_at).total_seconds()
        return self._cb.reset_timeout - elapsed

    async def run(self, fn: Callable[[], Awaitable[T]], failed: Callable[[T], bool]) -> T:
        """Awaits `fn()` through the breaker and returns its result; results for which `failed` is
        true count towards tripping it, others reset the count (and close a half-open breaker).

        Raises BreakerOpen, without running `fn`, while the breaker is open or while another
        caller's trial call is in flight."""
        state = self.state()
        if state == pybreaker.STATE_OPEN:
            raise BreakerOpen(f"{self.name} circuit open", self.retry_in())
        trial = state == pybreaker.STATE_HALF_OPEN
        if trial and not self._trial.acquire(blocking=False):
            raise BreakerOpen(f"{self.name} circuit half-open, trial in flight", MIN_RETRY_IN_S)
        ran, result = False, _UNSET
        try:
            with self._cb.calling():
                ran = True
                result = await fn()
                if failed(result):
                    raise _CountedFailure
        except _CountedFailure:
            pass
        except pybreaker.CircuitBreakerError:
            # Also raised by the call that trips the breaker: that call was made, keep its result
            if not ran:
                raise BreakerOpen(f"{self.name} circuit open", self.retry_in()) from None
            if result is _UNSET:  # fn itself raised: a bug of ours, not the participant's
                raise
        finally:
            if trial:
                self._trial.release()
        return result
