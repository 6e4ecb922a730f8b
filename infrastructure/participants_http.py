"""The `Participants` port over HTTP (CONTRACT.md section 1): one call, classified.

Per participant: a circuit breaker, an optional token-bucket rate limit and a bulkhead (its
own connection pools and a semaphore), so a slow or failing service cannot use up what the
others need. Retries are not made here: the application schedules them.
"""
from __future__ import annotations

import re
import secrets
import threading
import weakref
from functools import partial
from typing import Any
from urllib.parse import quote, urlencode

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import NewConnectionError

from application.ports import Call, Outcome, Rejected, Succeeded, Transient, Unavailable
from infrastructure.resilience import Breaker, BreakerOpen, TokenBucket, parse_retry_after

PARTICIPANTS = ("payment", "inventory", "shipping")
PARTICIPANT_OF = {
    "charge": "payment", "refund": "payment",
    "reserve": "inventory", "release": "inventory",
    "ship": "shipping", "cancel": "shipping",
}
RESULT_ID = {"charge": "paymentId", "reserve": "reservationId", "ship": "shipmentId"}
TRANSIENT_STATUSES = frozenset({408, 409, 429})
CONNECT_TIMEOUT_CAP_S = 3.05  # just over a 3 s TCP retransmit window, as requests advises
_TRACEPARENT = re.compile(r"^00-(?!0{32})[0-9a-f]{32}-(?!0{16})[0-9a-f]{16}-[0-9a-f]{2}$")


def new_traceparent() -> str:
    """A fresh W3C traceparent (version 00, sampled)."""
    return f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-01"


def _request(call: Call) -> tuple[str, str, dict[str, Any] | None]:
    """(participant, path with query, JSON body) for the call's action."""
    a, key = call.args, call.idempotency_key
    try:
        match call.action:
            case "charge":
                return "payment", "/payments/charge", {
                    "orderId": a["orderId"], "cents": a["cents"], "idempotencyKey": key}
            case "refund":
                query = urlencode({"reason": a.get("reason", "saga-compensation")})
                return "payment", f"/payments/{_q(a['paymentId'])}/refund?{query}", None
            case "reserve":
                return "inventory", "/inventory/reservations", {
                    "orderId": a["orderId"], "skus": a["skus"], "idempotencyKey": key}
            case "release":
                path = f"/inventory/reservations/{_q(a['reservationId'])}/release"
                return "inventory", path, None
            case "ship":
                return "shipping", "/shipments", {
                    "orderId": a["orderId"], "address": a["address"], "idempotencyKey": key}
            case "cancel":
                return "shipping", f"/shipments/{_q(a['shipmentId'])}/cancel", None
    except KeyError as missing:
        raise ValueError(f"{call.action} needs args[{missing}]") from None
    raise ValueError(f"unknown action {call.action!r}")


def _q(segment: Any) -> str:
    return quote(str(segment), safe="")  # an id with "/" or "?" must stay one path segment


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


def classify(action: str, response: requests.Response) -> Outcome:
    """Turns a participant's answer into an Outcome (CONTRACT.md section 1)."""
    status = response.status_code
    if 200 <= status < 300:
        body = _body(response)
        result = body if isinstance(body, dict) else {}
        expected = RESULT_ID.get(action)
        if expected and not (isinstance(result.get(expected), str) and result[expected]):
            # A participant bug: the effect may have happened, so retry (same key) to learn it
            return Transient(f"{action} answered {status} without {expected}", status=None)
        return Succeeded(result)
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
    participant. Thread-safe: share one instance between all worker threads."""

    def __init__(
        self,
        urls: dict[str, str],
        timeout_s: float,
        breaker_fail_max: int,
        breaker_reset_s: float,
        pool_size: dict[str, int] | int = 32,
        rate_limit: dict[str, float | None] | None = None,
    ) -> None:
        missing = [name for name in PARTICIPANTS if not urls.get(name)]
        if missing:
            raise ValueError(f"no URL for {', '.join(missing)}")
        if timeout_s <= 0:
            raise ValueError(f"timeout_s must be positive, got {timeout_s}")
        self._urls = {name: urls[name].rstrip("/") for name in PARTICIPANTS}
        self._timeout = (min(CONNECT_TIMEOUT_CAP_S, timeout_s), timeout_s)
        sizes = pool_size if isinstance(pool_size, dict) else dict.fromkeys(PARTICIPANTS, pool_size)
        self._pool_size = {name: sizes.get(name, 32) for name in PARTICIPANTS}
        if min(self._pool_size.values()) < 1:
            raise ValueError(f"pool sizes must be at least 1, got {self._pool_size}")
        self._breakers = {n: Breaker(n, breaker_fail_max, breaker_reset_s) for n in PARTICIPANTS}
        self._slots = {n: threading.BoundedSemaphore(self._pool_size[n]) for n in PARTICIPANTS}
        self._buckets = {
            name: TokenBucket(rate) for name, rate in (rate_limit or {}).items()
            if rate is not None and name in PARTICIPANTS
        }
        self._local = threading.local()  # a Session is not thread-safe: one per thread
        # weak, so the sessions of threads that ended can be collected with their connections
        self._sessions: weakref.WeakSet[requests.Session] = weakref.WeakSet()
        self._sessions_lock = threading.Lock()

    def participant_of(self, action: str) -> str:
        """The participant ("payment", "inventory" or "shipping") that serves `action`."""
        try:
            return PARTICIPANT_OF[action]
        except KeyError:
            raise ValueError(f"unknown action {action!r}") from None

    def breaker_states(self) -> dict[str, str]:
        """Each participant's breaker state: "closed", "open" or "half-open"."""
        return {name: breaker.state() for name, breaker in self._breakers.items()}

    def call(self, call: Call) -> Outcome:
        """Makes at most one HTTP call for `call` and classifies the answer; never raises for
        anything the network or the participant does (ValueError for a malformed Call)."""
        participant, path, body = _request(call)
        breaker = self._breakers[participant]
        if breaker.state() == "open":  # checked first so an open breaker spends no token
            return Unavailable(f"{participant} circuit open", breaker.retry_in())
        bucket = self._buckets.get(participant)
        wait = bucket.try_acquire() if bucket else 0.0
        if wait > 0:
            return Unavailable("rate limited", retry_in=wait)
        slot = self._slots[participant]
        # The caller's per-participant pool normally keeps us under the limit; the semaphore
        # is the hard stop, waiting at most one call's time for a slot
        if not slot.acquire(timeout=self._timeout[1]):
            return Unavailable(f"{participant} bulkhead full", retry_in=0.1)
        try:
            send = partial(self._send, participant, path, body, call)
            return breaker.run(send, _counts_as_failure)
        except BreakerOpen as refused:
            return Unavailable(refused.detail, refused.retry_in)
        finally:
            slot.release()

    def _send(
        self, participant: str, path: str, body: dict[str, Any] | None, call: Call
    ) -> Outcome:
        traceparent = call.traceparent
        if not (traceparent and _TRACEPARENT.match(traceparent)):  # W3C: bad one, new trace
            traceparent = new_traceparent()
        headers = {
            "Idempotency-Key": call.idempotency_key,
            "X-Workflow-Id": call.workflow_id,
            "traceparent": traceparent,
        }
        try:
            response = self._session(participant).post(
                self._urls[participant] + path, json=body, headers=headers,
                timeout=self._timeout, allow_redirects=False,  # exactly one request per call
            )
        except (requests.RequestException, OSError, ValueError) as exc:
            # OSError/ValueError: socket or URL errors that requests failed to wrap
            # A refused or timed-out connect never reached the participant; anything later may
            # have taken effect before the answer was lost.
            return Transient(f"{type(exc).__name__}: {str(exc)[:200]}", status=None,
                             maybe_applied=not _never_sent(exc))
        with response:
            return classify(call.action, response)

    def _session(self, participant: str) -> requests.Session:
        if not hasattr(self._local, "sessions"):
            self._local.sessions = {}
        session: requests.Session | None = self._local.sessions.get(participant)
        if session is None:
            session = self._local.sessions[participant] = requests.Session()
            # Participant URLs are explicit config: no proxies or .netrc from the environment
            session.trust_env = False
            adapter = HTTPAdapter(pool_maxsize=self._pool_size[participant], max_retries=0)
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


def _never_sent(exc: Exception) -> bool:
    """Whether the request surely never reached the participant (no connection was made)."""
    if isinstance(exc, requests.ConnectTimeout):
        return True
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    return isinstance(exc, requests.ConnectionError) and isinstance(reason, NewConnectionError)


def _counts_as_failure(outcome: Outcome) -> bool:
    # Only what says "the service is unwell" trips the breaker: a business 4xx proves it works
    return isinstance(outcome, Transient)
