"""Backoff, Retry-After parsing, the token bucket and the breaker wrapper, without a network."""
from __future__ import annotations

import asyncio
import random
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from infrastructure.resilience import (
    Breaker,
    BreakerOpen,
    TokenBucket,
    backoff_delay,
    parse_retry_after,
)


@pytest.mark.parametrize("attempt", [1, 2, 3, 5, 8, 12])
def test_backoff_is_full_jitter_below_the_exponential_ceiling(attempt: int) -> None:
    rng = random.Random(attempt)
    ceiling = min(5.0, 0.1 * 2 ** (attempt - 1))

    samples = [backoff_delay(attempt, 0.1, 5.0, rng=rng) for _ in range(2000)]

    assert all(0.0 <= s <= ceiling for s in samples)
    # full jitter spreads over the whole range, not just near the top
    assert min(samples) < ceiling * 0.05 and max(samples) > ceiling * 0.95


def test_backoff_never_exceeds_the_cap_even_for_huge_attempts() -> None:
    rng = random.Random(1)
    assert all(backoff_delay(10_000, 0.1, 5.0, rng=rng) <= 5.0 for _ in range(500))
    assert backoff_delay(3, 0.1, 0.0, rng=rng) == 0.0


def test_retry_after_is_a_floor_within_the_caps() -> None:
    rng = random.Random(7)
    honoured = [backoff_delay(1, 0.1, 5.0, retry_after=2.0, rng=rng) for _ in range(500)]
    assert all(d == 2.0 for d in honoured)  # jitter (<= 0.1) stays below it

    spread = [backoff_delay(6, 0.1, 5.0, retry_after=1.0, rng=rng) for _ in range(500)]
    assert all(1.0 <= d <= 3.2 for d in spread) and max(spread) > 1.0

    assert backoff_delay(1, 0.1, 5.0, retry_after=60.0, rng=rng) == 60.0  # beyond the cap
    assert backoff_delay(1, 0.1, 5.0, retry_after=86_400.0, rng=rng) == 300.0
    assert 0.0 <= backoff_delay(1, 0.1, 5.0, retry_after=-3.0, rng=rng) <= 0.1


def test_backoff_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        backoff_delay(0, 0.1, 5.0)
    with pytest.raises(ValueError):
        backoff_delay(1, -0.1, 5.0)


def test_parse_retry_after() -> None:
    assert parse_retry_after("2") == 2.0
    assert parse_retry_after(" 120 ") == 120.0
    for unusable in (None, "", "  ", "soon", "-5", "1.5e3", "²"):
        assert parse_retry_after(unusable) is None, unusable
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=60), usegmt=True)
    assert 57 <= (parse_retry_after(later) or 0) <= 60
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # past: now, not negative


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_token_bucket_serves_a_burst_then_says_how_long_to_wait() -> None:
    clock = FakeClock()
    bucket = TokenBucket(5, clock=clock)

    assert [bucket.try_acquire() for _ in range(5)] == [0.0] * 5
    assert bucket.try_acquire() == pytest.approx(0.2)
    clock.now += 0.1
    assert bucket.try_acquire() == pytest.approx(0.1)
    clock.now += 0.1
    assert bucket.try_acquire() == 0.0
    clock.now += 60  # refills only up to the burst
    assert sum(bucket.try_acquire() == 0.0 for _ in range(10)) == 5


def test_token_bucket_burst_defaults_to_at_least_one() -> None:
    clock = FakeClock()
    bucket = TokenBucket(0.5, clock=clock)
    assert bucket.try_acquire() == 0.0
    assert bucket.try_acquire() == pytest.approx(2.0)
    with pytest.raises(ValueError):
        TokenBucket(0)


def test_token_bucket_never_hands_out_more_than_it_has_across_threads() -> None:
    bucket = TokenBucket(50, burst=50, clock=FakeClock())  # a frozen clock: no refill
    barrier = threading.Barrier(8)

    def grab() -> int:
        barrier.wait()
        return sum(bucket.try_acquire() == 0.0 for _ in range(100))

    with ThreadPoolExecutor(8) as pool:
        assert sum(pool.map(lambda _: grab(), range(8))) == 50


def test_breaker_counts_failed_results_and_refuses_while_open() -> None:
    breaker = Breaker("payment", fail_max=2, reset_s=0.2)
    calls: list[str] = []

    def run(value: str, failed: Callable[[str], bool] = lambda r: r == "bad") -> str:
        async def answer() -> str:
            calls.append(value)
            return value
        return asyncio.run(breaker.run(answer, failed))

    assert run("bad") == "bad"
    assert run("no") == "no"  # resets the count
    assert run("bad") == "bad"
    assert breaker.state() == "closed"
    assert run("bad") == "bad"  # trips, but ran
    assert breaker.state() == "open"
    with pytest.raises(BreakerOpen) as refused:
        run("never", lambda r: False)
    assert 0.05 <= refused.value.retry_in <= 0.2
    assert "never" not in calls


def test_breaker_lets_calls_on_one_loop_run_at_once() -> None:
    """Eight calls through one breaker are all inside at the same time: each waits for the
    other seven (were they serialized, as pybreaker's call() would, none would finish)."""
    breaker = Breaker("shipping", fail_max=5, reset_s=1)

    async def eight() -> list[str]:
        inside, everyone = 0, asyncio.Event()

        async def call() -> str:
            nonlocal inside
            inside += 1
            if inside == 8:
                everyone.set()
            await asyncio.wait_for(everyone.wait(), 10)
            return "ok"

        return await asyncio.gather(*(breaker.run(call, lambda r: False) for _ in range(8)))

    assert asyncio.run(eight()) == ["ok"] * 8
