"""The `Participants` port over HTTP: one rendered call, made once and classified.

Calls run on one asyncio event loop (aiohttp), in a thread of its own: a call waiting on a
participant holds a socket and a little memory, not a thread, so a thousand calls in flight to
a slow bank or carrier cost what a thousand open connections cost. `start(call, done)` hands a
call to the loop and returns at once; `call(call)` waits for it (for callers that may block).

Per participant: a circuit breaker, an optional token-bucket rate limit and a bulkhead (its
own connection pool and a semaphore), so a slow or failing service cannot use up what the
others need. Retries are not made here: the application schedules them.

A participant is known by name only: its base URL comes from the deployment (`url_of`, from
`<NAME>_URL`), and one without a URL is Unavailable, so its steps wait rather than fail.
"""
from __future__ import annotations

import asyncio
import json
import logging
import re
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any

import aiohttp
from yarl import URL

from application.ports import Call, Outcome, Rejected, Succeeded, Transient, Unavailable
from infrastructure.resilience import Breaker, BreakerOpen, TokenBucket, parse_retry_after

TRANSIENT_STATUSES = frozenset({408, 409, 429})
UNCONFIGURED_RETRY_S = 5.0  # a deploy may add the URL and restart: look again, not fast
UNCONFIGURED_LOG_EVERY_S = 60.0
CONNECT_TIMEOUT_CAP_S = 3.05  # just over a 3 s TCP retransmit window
log = logging.getLogger("orchestrator.participants")
_TRACEPARENT = re.compile(r"^00-(?!0{32})[0-9a-f]{32}-(?!0{16})[0-9a-f]{16}-[0-9a-f]{2}$")


def new_traceparent() -> str:
    """A fresh W3C traceparent (version 00, sampled)."""
    return f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-01"


@dataclass(frozen=True)
class Answer:
    """What a participant answered, read whole: all that classifying it needs."""

    status: int
    headers: Mapping[str, str]
    body: bytes
    reason: str | None = None

    def json(self) -> Any:
        """The body as JSON; None when empty, HTML, truncated: not ours to crash on."""
        try:
            return json.loads(self.body) if self.body else None
        except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
            return None


def _detail(answer: Answer) -> str:
    """The problem document's detail (or title), else the start of the body, else the reason."""
    body = answer.json()
    if isinstance(body, dict):
        for field in ("detail", "title"):
            if isinstance(body.get(field), str) and body[field]:
                return str(body[field])
    text = answer.body[:200].decode("utf-8", "replace").strip()
    return text or answer.reason or f"HTTP {answer.status}"


def classify(answer: Answer) -> Outcome:
    """Turns a participant's answer into an Outcome: 2xx success, 408/409/429/5xx transient,
    another 4xx a business rejection. What a success must carry is the step's business (its
    kept values), checked by the orchestrator."""
    status = answer.status
    if 200 <= status < 300:
        return Succeeded(answer.json())
    if status in TRANSIENT_STATUSES or status >= 500:
        retry_after = parse_retry_after(answer.headers.get("Retry-After"))
        return Transient(_detail(answer), status=status, retry_after=retry_after,
                         maybe_applied=status >= 500 or status == 409)
    if 400 <= status < 500:
        return Rejected(status=status, detail=_detail(answer))
    # 1xx/3xx: a misrouted or misconfigured endpoint; not a business "no", so worth retrying
    return Transient(f"unexpected HTTP {status}", status=status)


class HttpParticipants:
    """The Participants port over HTTP, with a breaker, a rate limit and a bulkhead per
    participant, each made when the participant is first called. Thread-safe: any thread may
    start a call; every call runs on this instance's own event loop.

    `url_of(name)` is the base URL (None: not configured); `bulkhead` and `rate_limit` give a
    participant's limits, read once, on its first call; `unconfigured(name)` is told of each
    call that waits for want of a URL (a metric)."""

    def __init__(
        self,
        url_of: Callable[[str], str | None],
        timeout_s: float,
        breaker_fail_max: int,
        breaker_reset_s: float,
        bulkhead: Callable[[str], int],
        rate_limit: Callable[[str], float | None],
        unconfigured: Callable[[str], None] | None = None,
    ) -> None:
        if timeout_s <= 0:
            raise ValueError(f"timeout_s must be positive, got {timeout_s}")
        self._url_of, self._timeout_s = url_of, timeout_s
        self._breaker_fail_max, self._breaker_reset_s = breaker_fail_max, breaker_reset_s
        self._bulkhead, self._rate_limit = bulkhead, rate_limit
        self._unconfigured = unconfigured or (lambda participant: None)
        self._lock = threading.Lock()
        self._participants: dict[str, _Participant] = {}
        self._unconfigured_logged: dict[str, float] = {}  # participant -> last logged
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: set[asyncio.Task[None]] = set()  # the loop keeps only weak references

    def breaker_states(self) -> dict[str, str]:
        """Each called participant's breaker state: "closed", "open" or "half-open"."""
        with self._lock:
            known = dict(self._participants)
        return {name: p.breaker.state() for name, p in known.items()}

    def start(self, call: Call, done: Callable[[Outcome], None]) -> None:
        """Makes at most one HTTP call for `call` without waiting for it: `done(outcome)` is
        called exactly once, on the event loop's thread (so it must be quick), with the
        classified answer; nothing the network or the participant does raises."""
        p = self._participant(call.participant, call.workflow_id)  # may read a store: not
        if not isinstance(p, _Participant):                        # on the loop
            done(p)
            return
        self._running_loop().call_soon_threadsafe(self._spawn, p, call, done)

    def call(self, call: Call) -> Outcome:
        """Makes at most one HTTP call for `call` and waits for its classified answer."""
        answered: list[Outcome] = []
        came_back = threading.Event()

        def done(outcome: Outcome) -> None:
            answered.append(outcome)
            came_back.set()

        self.start(call, done)
        came_back.wait()
        return answered[0]

    def close(self) -> None:
        """Closes the pooled connections and stops the loop (at shutdown; a later call starts
        them again, with participants made anew: their semaphores belonged to the old loop)."""
        with self._lock:
            loop, self._loop = self._loop, None
            known = list(self._participants.values())
            self._participants.clear()
        if loop is None:
            return

        async def close_all() -> None:
            for p in known:
                if p.session is not None:
                    await p.session.close()
                    p.session = None

        try:
            asyncio.run_coroutine_threadsafe(close_all(), loop).result(timeout=5)
        finally:
            loop.call_soon_threadsafe(loop.stop)

    # --- on the caller's thread -------------------------------------------------------------

    def _running_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                self._loop = asyncio.new_event_loop()
                threading.Thread(target=self._loop.run_forever, name="participant-calls",
                                 daemon=True).start()
            return self._loop

    def _participant(self, name: str, workflow_id: str) -> _Participant | Unavailable:
        """The participant's breaker, bulkhead and rate limit, made on its first call; or why
        no call can be made (no URL: the step waits until a deploy configures one)."""
        with self._lock:
            found = self._participants.get(name)
        if found is not None:
            return found
        # Outside the lock: the limits may come from the definitions' store, and a slow read
        # must not hold up the calls to the participants we know already.
        try:
            url = self._url_of(name)
            if url is None:
                return self._not_configured(name, workflow_id)
            size, rate = self._bulkhead(name), self._rate_limit(name)
        except Exception as e:  # noqa: BLE001 - the store is down, say: wait, never raise
            log.warning("participant %s: could not read its limits (%s): the call waits",
                        name, type(e).__name__, extra={"participant": name})
            return Unavailable(f"{name}: could not read its limits", retry_in=1.0)
        made = _Participant(name, url.rstrip("/"), size,
                            Breaker(name, self._breaker_fail_max, self._breaker_reset_s),
                            asyncio.Semaphore(size), TokenBucket(rate) if rate else None)
        with self._lock:  # another thread may have made it meanwhile: theirs stands
            return self._participants.setdefault(name, made)

    def _not_configured(self, name: str, workflow_id: str) -> Unavailable:
        """A participant with no <NAME>_URL: counted on every call, logged as an error once
        per participant and minute (thousands of waiting workflows would flood the log)."""
        var = f"{name.upper()}_URL"
        self._unconfigured(name)
        now = time.monotonic()
        with self._lock:
            last = self._unconfigured_logged.get(name)
            due = last is None or now - last >= UNCONFIGURED_LOG_EVERY_S
            if due:
                self._unconfigured_logged[name] = now
        if due:
            log.error("participant %s has no %s configured: its calls wait until a deploy "
                      "sets it", name, var,
                      extra={"participant": name, "workflow_id": workflow_id})
        return Unavailable(f"participant {name} has no {var} configured",
                           retry_in=UNCONFIGURED_RETRY_S)

    # --- on the loop ------------------------------------------------------------------------

    def _spawn(self, p: _Participant, call: Call, done: Callable[[Outcome], None]) -> None:
        task = asyncio.get_running_loop().create_task(self._run(p, call, done))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, p: _Participant, call: Call, done: Callable[[Outcome], None]) -> None:
        try:
            outcome = await self._limited(p, call)
        except Exception as e:  # noqa: BLE001 - a bug of ours: the step is retried, same key
            log.exception("participant %s: the call failed in the client", p.name,
                          extra={"participant": p.name, "workflow_id": call.workflow_id})
            outcome = Transient(f"{type(e).__name__} in the orchestrator's client")
        done(outcome)

    async def _limited(self, p: _Participant, call: Call) -> Outcome:
        """The call through the participant's breaker, rate limit and bulkhead."""
        if p.breaker.state() == "open":  # checked first so an open breaker spends no token
            return Unavailable(f"{call.participant} circuit open", p.breaker.retry_in())
        wait = p.bucket.try_acquire() if p.bucket else 0.0
        if wait > 0:
            return Unavailable("rate limited", retry_in=wait)
        timeout = call.timeout_s or self._timeout_s
        if p.slots.locked():  # full: wait at most one call's time for a slot
            try:
                await asyncio.wait_for(p.slots.acquire(), timeout)
            except TimeoutError:
                return Unavailable(f"{call.participant} bulkhead full", retry_in=0.1)
        else:
            await p.slots.acquire()
        try:
            return await p.breaker.run(partial(self._send, p, call, timeout),
                                       _counts_as_failure)
        except BreakerOpen as refused:
            return Unavailable(refused.detail, refused.retry_in)
        finally:
            p.slots.release()

    async def _send(self, p: _Participant, call: Call, timeout_s: float) -> Outcome:
        traceparent = call.traceparent
        if not (traceparent and _TRACEPARENT.match(traceparent)):  # W3C: bad one, new trace
            traceparent = new_traceparent()
        headers = {
            "Idempotency-Key": call.idempotency_key,
            "X-Workflow-Id": call.workflow_id,
            "traceparent": traceparent,
        }
        # No body, no Content-Type: aiohttp would otherwise say application/octet-stream
        body: dict[str, Any] = ({"skip_auto_headers": ("Content-Type",)} if call.body is None
                                else {"json": call.body})
        session = p.session or p.open()
        try:
            async with session.request(
                call.method, URL(p.url + call.path, encoded=True),  # rendered, encoded once
                headers=headers, allow_redirects=False, **body,  # one request a call
                timeout=aiohttp.ClientTimeout(
                    total=timeout_s, sock_connect=min(CONNECT_TIMEOUT_CAP_S, timeout_s)),
            ) as response:
                return classify(Answer(response.status, response.headers,
                                       await response.read(), response.reason))
        except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as exc:
            # A refused or timed-out connect never reached the participant; anything later may
            # have taken effect before the answer was lost.
            return Transient(f"{type(exc).__name__}: {str(exc)[:200]}", status=None,
                             maybe_applied=not _never_sent(exc))


class _Participant:
    """One participant's base URL and its own breaker, rate limit, bulkhead and pool."""

    def __init__(self, name: str, url: str, size: int, breaker: Breaker,
                 slots: asyncio.Semaphore, bucket: TokenBucket | None) -> None:
        self.name, self.url, self.size = name, url, size
        self.breaker, self.slots, self.bucket = breaker, slots, bucket
        self.session: aiohttp.ClientSession | None = None  # made on the loop, on first use

    def open(self) -> aiohttp.ClientSession:
        # Participant URLs are explicit config: no proxies or .netrc from the environment,
        # and no cookies kept between calls.
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=self.size, limit_per_host=0),
            trust_env=False, cookie_jar=aiohttp.DummyCookieJar())
        return self.session


def _never_sent(exc: Exception) -> bool:
    """Whether the request surely never reached the participant (no connection was made)."""
    return isinstance(exc, (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError))


def _counts_as_failure(outcome: Outcome) -> bool:
    # Only what says "the service is unwell" trips the breaker: a business 4xx proves it works
    return isinstance(outcome, Transient)
