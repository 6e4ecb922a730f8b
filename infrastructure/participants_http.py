"""The `Participants` port over HTTP: one rendered call, made once and classified.

Per participant: a circuit breaker, an optional token-bucket rate limit and a bulkhead (its
own connection pools and a semaphore), so a slow or failing service cannot use up what the
others need. Retries are not made here: the application schedules them.

A participant is known by name only: its base URL comes from the deployment (`url_of`, from
`<NAME>_URL`), and one without a URL is Unavailable, so its steps wait rather than fail.
"""
from __future__ import annotations

import logging
import re
import secrets
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import NewConnectionError

from application.ports import Call, Outcome, Rejected, Succeeded, Transient, Unavailable
from infrastructure.resilience import Breaker, BreakerOpen, TokenBucket, parse_retry_after

TRANSIENT_STATUSES = frozenset({408, 409, 429})
UNCONFIGURED_RETRY_S = 5.0  # a deploy may add the URL and restart: look again, not fast
UNCONFIGURED_LOG_EVERY_S = 60.0
CONNECT_TIMEOUT_CAP_S = 3.05  # just over a 3 s TCP retransmit window, as requests advises
log = logging.getLogger("orchestrator.participants")
_TRACEPARENT = re.compile(r"^00-(?!0{32})[0-9a-f]{32}-(?!0{16})[0-9a-f]{16}-[0-9a-f]{2}$")


def new_traceparent() -> str:
    """A fresh W3C traceparent (version 00, sampled)."""
    return f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-01"


def _body(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:  # empty, HTML, truncated: not our problem to crash on
        return None


def _detail(response: requests.Response) -> str:
    """The problem document's detail (or title), else the start of the body, else the reason."""
    body = _body(response)
    if isinstance(body, dict):
        for field in ("detail", "title"):
            if isinstance(body.get(field), str) and body[field]:
                return str(body[field])
    text = response.text[:200].strip()
    return text or response.reason or f"HTTP {response.status_code}"


def classify(response: requests.Response) -> Outcome:
    """Turns a participant's answer into an Outcome: 2xx success, 408/409/429/5xx transient,
    another 4xx a business rejection. What a success must carry is the step's business (its
    kept values), checked by the orchestrator."""
    status = response.status_code
    if 200 <= status < 300:
        return Succeeded(_body(response))
    if status in TRANSIENT_STATUSES or status >= 500:
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        return Transient(_detail(response), status=status, retry_after=retry_after,
                         maybe_applied=status >= 500 or status == 409)
    if 400 <= status < 500:
        return Rejected(status=status, detail=_detail(response))
    # 1xx/3xx: a misrouted or misconfigured endpoint; not a business "no", so worth retrying
    return Transient(f"unexpected HTTP {status}", status=status)


class HttpParticipants:
    """The Participants port over HTTP, with a breaker, a rate limit and a bulkhead per
    participant, each made when the participant is first called. Thread-safe: share one
    instance between all worker threads.

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
        self._local = threading.local()  # a Session is not thread-safe: one per thread
        # weak, so the sessions of threads that ended can be collected with their connections
        self._sessions: weakref.WeakSet[requests.Session] = weakref.WeakSet()
        self._sessions_lock = threading.Lock()

    def breaker_states(self) -> dict[str, str]:
        """Each called participant's breaker state: "closed", "open" or "half-open"."""
        with self._lock:
            known = dict(self._participants)
        return {name: p.breaker.state() for name, p in known.items()}

    def call(self, call: Call) -> Outcome:
        """Makes at most one HTTP call for `call` and classifies the answer; never raises for
        anything the network or the participant does."""
        p = self._participant(call.participant, call.workflow_id)
        if not isinstance(p, _Participant):
            return p
        if p.breaker.state() == "open":  # checked first so an open breaker spends no token
            return Unavailable(f"{call.participant} circuit open", p.breaker.retry_in())
        wait = p.bucket.try_acquire() if p.bucket else 0.0
        if wait > 0:
            return Unavailable("rate limited", retry_in=wait)
        timeout = call.timeout_s or self._timeout_s
        # The caller's per-participant pool normally keeps us under the limit; the semaphore
        # is the hard stop, waiting at most one call's time for a slot
        if not p.slots.acquire(timeout=timeout):
            return Unavailable(f"{call.participant} bulkhead full", retry_in=0.1)
        try:
            return p.breaker.run(partial(self._send, p, call, timeout), _counts_as_failure)
        except BreakerOpen as refused:
            return Unavailable(refused.detail, refused.retry_in)
        finally:
            p.slots.release()

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
                            threading.BoundedSemaphore(size), TokenBucket(rate) if rate else None)
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

    def _send(self, p: _Participant, call: Call, timeout_s: float) -> Outcome:
        traceparent = call.traceparent
        if not (traceparent and _TRACEPARENT.match(traceparent)):  # W3C: bad one, new trace
            traceparent = new_traceparent()
        headers = {
            "Idempotency-Key": call.idempotency_key,
            "X-Workflow-Id": call.workflow_id,
            "traceparent": traceparent,
        }
        try:
            response = self._session(p).request(
                call.method, p.url + call.path, json=call.body, headers=headers,
                timeout=(min(CONNECT_TIMEOUT_CAP_S, timeout_s), timeout_s),
                allow_redirects=False,  # exactly one request per call
            )
        except (requests.RequestException, OSError, ValueError) as exc:
            # OSError/ValueError: socket or URL errors that requests failed to wrap
            # A refused or timed-out connect never reached the participant; anything later may
            # have taken effect before the answer was lost.
            return Transient(f"{type(exc).__name__}: {str(exc)[:200]}", status=None,
                             maybe_applied=not _never_sent(exc))
        with response:
            return classify(response)

    def _session(self, p: _Participant) -> requests.Session:
        if not hasattr(self._local, "sessions"):
            self._local.sessions = {}
        session: requests.Session | None = self._local.sessions.get(p.name)
        if session is None:
            session = self._local.sessions[p.name] = requests.Session()
            # Participant URLs are explicit config: no proxies or .netrc from the environment
            session.trust_env = False
            adapter = HTTPAdapter(pool_maxsize=p.size, max_retries=0)
            session.mount("http://", adapter)
            session.mount("https://", adapter)
            with self._sessions_lock:
                self._sessions.add(session)
        return session

    def close(self) -> None:
        """Closes every thread's pooled connections (at shutdown; a later call reconnects)."""
        with self._sessions_lock:
            sessions = list(self._sessions)
        for session in sessions:
            session.close()


@dataclass(frozen=True)
class _Participant:
    """One participant's base URL and its own breaker, bulkhead and rate limit."""

    name: str
    url: str
    size: int
    breaker: Breaker
    slots: threading.BoundedSemaphore
    bucket: TokenBucket | None


def _never_sent(exc: Exception) -> bool:
    """Whether the request surely never reached the participant (no connection was made)."""
    if isinstance(exc, requests.ConnectTimeout):
        return True
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    return isinstance(exc, requests.ConnectionError) and isinstance(reason, NewConnectionError)


def _counts_as_failure(outcome: Outcome) -> bool:
    # Only what says "the service is unwell" trips the breaker: a business 4xx proves it works
    return isinstance(outcome, Transient)
