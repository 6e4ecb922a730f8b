"""HttpParticipants against a real, scripted HTTP server (werkzeug, threaded, a free port)."""
from __future__ import annotations

import json
import re
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import pytest
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from application.ports import Call, Outcome, Rejected, Succeeded, Transient, Unavailable
from infrastructure.participants_http import HttpParticipants

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
TRACEPARENT_FORMAT = re.compile(r"^00-[0-9a-f]{32}-[0-9a-f]{16}-01$")
IDS = {"charge": "paymentId", "reserve": "reservationId", "ship": "shipmentId"}
ARGS: dict[str, dict[str, Any]] = {
    "charge": {"orderId": "o-1", "cents": 1250},
    "refund": {"paymentId": "pay/1 x", "reason": "customer asked & left"},
    "reserve": {"orderId": "o-1", "skus": ["sku-1", "sku-2"]},
    "release": {"reservationId": "res?1"},
    "ship": {"orderId": "o-1", "address": "1 Main St"},
    "cancel": {"shipmentId": "shp#1"},
}


class ScriptedServer:
    """A threaded HTTP server whose answers the test scripts; it records every request."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.handler: Callable[[Request], Response] = ok
        self.release = threading.Event()  # ends every scripted delay at teardown
        self.in_flight: Counter[str] = Counter()
        self.max_in_flight: Counter[str] = Counter()
        self._lock = threading.Lock()
        self.server = make_server("127.0.0.1", 0, self._app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        # A short poll interval: shutdown() waits for one poll
        self._thread = threading.Thread(target=self.server.serve_forever, args=(0.02,),
                                        daemon=True)
        self._thread.start()

    def _app(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        area = request.path.split("/")[1]
        with self._lock:
            self.requests.append({
                "method": request.method, "uri": environ["RAW_URI"],
                "headers": dict(request.headers), "body": request.get_data(),
            })
            self.in_flight[area] += 1
            self.max_in_flight[area] = max(self.max_in_flight[area], self.in_flight[area])
        try:
            return self.handler(request)(environ, start_response)
        finally:
            with self._lock:
                self.in_flight[area] -= 1

    def hits(self, area: str) -> int:
        return sum(1 for r in self.requests if r["uri"].startswith(f"/{area}"))

    def delayed(self, seconds: float, then: Callable[[Request], Response] | None = None
                ) -> Callable[[Request], Response]:
        def handler(request: Request) -> Response:
            self.release.wait(seconds)
            return (then or ok)(request)
        return handler

    def stop(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


def ok(request: Request) -> Response:
    """A plausible success for any action: the id the contract promises, for the steps."""
    for action, path in (("charge", "/payments/charge"), ("reserve", "/inventory/reservations"),
                         ("ship", "/shipments")):
        if request.path == path:
            return answer(201, {IDS[action]: f"{action}-1", "status": "OK"})
    return answer(204)


def answer(status: int, body: Any = None, headers: dict[str, str] | None = None,
           text: str | None = None) -> Response:
    if body is not None:
        text = json.dumps(body)
    mimetype = "application/json" if body is not None else "text/plain"
    return Response(text or "", status=status, headers=headers, mimetype=mimetype)


def always(response_status: int, body: Any = None, **kw: Any) -> Callable[[Request], Response]:
    return lambda request: answer(response_status, body, **kw)


def call(action: str, traceparent: str | None = TRACEPARENT, **args: Any) -> Call:
    return Call(action=action, workflow_id="wf-1", idempotency_key=f"wf-1:{action}",
                args={**ARGS[action], **args}, traceparent=traceparent)


@pytest.fixture
def server() -> Iterator[ScriptedServer]:
    running = ScriptedServer()
    yield running
    running.stop()


@pytest.fixture
def make(server: ScriptedServer) -> Iterator[Callable[..., HttpParticipants]]:
    made: list[HttpParticipants] = []

    def make(**overrides: Any) -> HttpParticipants:
        settings: dict[str, Any] = {"timeout_s": 2.0, "breaker_fail_max": 3,
                                    "breaker_reset_s": 0.2, **overrides}
        urls = settings.pop("urls", dict.fromkeys(("payment", "inventory", "shipping"),
                                                  server.url + "/"))
        made.append(HttpParticipants(urls, **settings))
        return made[-1]

    yield make
    for participants in made:
        participants.close()


@pytest.mark.parametrize(("action", "uri", "body"), [
    ("charge", "/payments/charge",
     {"orderId": "o-1", "cents": 1250, "idempotencyKey": "wf-1:charge"}),
    ("refund", "/payments/pay%2F1%20x/refund?reason=customer+asked+%26+left", None),
    ("reserve", "/inventory/reservations",
     {"orderId": "o-1", "skus": ["sku-1", "sku-2"], "idempotencyKey": "wf-1:reserve"}),
    ("release", "/inventory/reservations/res%3F1/release", None),
    ("ship", "/shipments",
     {"orderId": "o-1", "address": "1 Main St", "idempotencyKey": "wf-1:ship"}),
    ("cancel", "/shipments/shp%231/cancel", None),
])
def test_each_action_sends_the_contracts_request(
    make: Callable[..., HttpParticipants], server: ScriptedServer,
    action: str, uri: str, body: Any,
) -> None:
    outcome = make().call(call(action))

    assert isinstance(outcome, Succeeded)
    (seen,) = server.requests
    assert (seen["method"], seen["uri"]) == ("POST", uri)
    headers = seen["headers"]
    assert headers["Idempotency-Key"] == f"wf-1:{action}"
    assert headers["X-Workflow-Id"] == "wf-1"
    assert headers["Traceparent"] == TRACEPARENT
    if body is None:
        assert seen["body"] == b"" and "Content-Type" not in headers
    else:
        assert json.loads(seen["body"]) == body
        assert headers["Content-Type"] == "application/json"


def test_a_traceparent_is_generated_when_none_or_a_malformed_one_is_given(
    make: Callable[..., HttpParticipants], server: ScriptedServer,
) -> None:
    participants = make()
    participants.call(call("charge", traceparent=None))
    participants.call(call("charge", traceparent="nonsense"))

    generated = [r["headers"]["Traceparent"] for r in server.requests]
    assert all(TRACEPARENT_FORMAT.match(t) for t in generated), generated
    assert generated[0] != generated[1]


def test_success_carries_the_body_or_an_empty_result(
    make: Callable[..., HttpParticipants], server: ScriptedServer,
) -> None:
    participants = make()
    assert participants.call(call("charge")) == Succeeded(
        {"paymentId": "charge-1", "status": "OK"})
    server.handler = always(200, text="<html>done</html>")
    assert participants.call(call("refund")) == Succeeded({})
    server.handler = always(200, ["not", "an", "object"])
    assert participants.call(call("release")) == Succeeded({})


@pytest.mark.parametrize("action", ["charge", "reserve", "ship"])
def test_a_2xx_without_the_expected_id_is_transient(
    make: Callable[..., HttpParticipants], server: ScriptedServer, action: str,
) -> None:
    server.handler = always(200, {"status": "OK"})
    outcome = make().call(call(action))
    assert isinstance(outcome, Transient) and IDS[action] in outcome.detail


def test_a_business_4xx_is_rejected_and_never_trips_the_breaker(
    make: Callable[..., HttpParticipants], server: ScriptedServer,
) -> None:
    server.handler = always(422, {"type": "about:blank", "title": "Unprocessable",
                                  "status": 422, "detail": "card declined"})
    participants = make(breaker_fail_max=3)

    outcomes = [participants.call(call("charge")) for _ in range(10)]

    assert outcomes == [Rejected(422, "card declined")] * 10
    assert server.hits("payments") == 10
    assert participants.breaker_states()["payment"] == "closed"


def test_a_rejection_without_a_problem_document_keeps_the_start_of_the_body(
    make: Callable[..., HttpParticipants], server: ScriptedServer,
) -> None:
    server.handler = always(400, text="x" * 500)
    assert make().call(call("reserve")) == Rejected(400, "x" * 200)


@pytest.mark.parametrize("status", [408, 409, 429, 500, 503])
def test_retryable_statuses_are_transient(
    make: Callable[..., HttpParticipants], server: ScriptedServer, status: int,
) -> None:
    server.handler = always(status, {"title": "busy"})
    # a 5xx, or a 409 (the same key still in progress), may hide an effect; 408/429 do not
    assert make().call(call("ship")) == Transient(
        "busy", status=status, retry_after=None, maybe_applied=status >= 500 or status == 409)


def test_retry_after_in_seconds_and_as_an_http_date(
    make: Callable[..., HttpParticipants], server: ScriptedServer,
) -> None:
    participants = make(breaker_fail_max=10)
    server.handler = always(429, headers={"Retry-After": "2"})
    outcome = participants.call(call("charge"))
    assert isinstance(outcome, Transient) and outcome.retry_after == 2

    later = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    server.handler = always(503, headers={"Retry-After": later})
    outcome = participants.call(call("charge"))
    assert isinstance(outcome, Transient) and outcome.retry_after is not None
    assert 27 <= outcome.retry_after <= 30

    for unusable, expected in (("Wed, 21 Oct 2015 07:28:00 GMT", 0.0), ("soon", None)):
        server.handler = always(503, headers={"Retry-After": unusable})
        outcome = participants.call(call("charge"))
        assert isinstance(outcome, Transient) and outcome.retry_after == expected


def test_no_answer_within_the_timeout_is_transient(
    make: Callable[..., HttpParticipants], server: ScriptedServer,
) -> None:
    server.handler = server.delayed(5)
    started = time.monotonic()
    outcome = make(timeout_s=0.2).call(call("charge"))
    elapsed = time.monotonic() - started

    assert isinstance(outcome, Transient) and outcome.status is None
    assert "Timeout" in outcome.detail
    assert outcome.maybe_applied  # the request was sent: it may have been applied
    assert elapsed < 1.0


def test_a_refused_connection_is_transient(make: Callable[..., HttpParticipants]) -> None:
    with socket.socket() as probe:  # a port that was free a moment ago: nothing listens there
        probe.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}"
    urls = {"payment": closed, "inventory": closed, "shipping": closed}

    outcome = make(urls=urls).call(call("reserve"))

    assert isinstance(outcome, Transient) and outcome.status is None
    assert outcome.detail.startswith("ConnectionError")
    assert not outcome.maybe_applied  # nothing was sent, so there is nothing to undo


def wait_for(condition: Callable[[], bool], within_s: float = 2.0) -> float:
    """Polls `condition`; returns the seconds it took."""
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < within_s, "condition not reached in time"
        time.sleep(0.01)
    return time.monotonic() - started


def test_the_breaker_opens_after_fail_max_transient_failures_and_recloses_after_a_trial(
    make: Callable[..., HttpParticipants], server: ScriptedServer,
) -> None:
    unwell = always(503)
    server.handler = lambda r: unwell(r) if r.path.startswith("/payments") else ok(r)
    participants = make(breaker_fail_max=3, breaker_reset_s=0.2)

    failures = [participants.call(call("charge")) for _ in range(3)]
    opened = time.monotonic()
    refused = participants.call(call("charge"))

    assert all(isinstance(o, Transient) and o.status == 503 for o in failures)
    assert isinstance(refused, Unavailable) and 0.05 <= refused.retry_in <= 0.2
    assert server.hits("payments") == 3  # the refused call never reached the server
    assert participants.breaker_states() == {
        "payment": "open", "inventory": "closed", "shipping": "closed"}
    assert isinstance(participants.call(call("reserve")), Succeeded)  # others unaffected

    wait_for(lambda: participants.breaker_states()["payment"] == "half-open")
    assert time.monotonic() - opened >= 0.15
    server.handler = ok
    assert isinstance(participants.call(call("charge")), Succeeded)
    assert participants.breaker_states()["payment"] == "closed"
    assert server.hits("payments") == 4


def test_half_open_lets_one_trial_through_and_a_failed_trial_reopens(
    make: Callable[..., HttpParticipants], server: ScriptedServer,
) -> None:
    server.handler = always(500)
    participants = make(breaker_fail_max=1, breaker_reset_s=0.2)
    participants.call(call("ship"))
    wait_for(lambda: participants.breaker_states()["shipping"] == "half-open")

    server.handler = server.delayed(0.3, then=always(500))
    with ThreadPoolExecutor(1) as pool:
        trial = pool.submit(participants.call, call("ship"))
        wait_for(lambda: server.in_flight["shipments"] == 1)
        second = participants.call(call("ship"))
        assert isinstance(second, Unavailable) and "trial" in second.detail
        assert isinstance(trial.result(), Transient)
    assert participants.breaker_states()["shipping"] == "open"
    assert server.hits("shipments") == 2


def test_a_slow_participant_fills_only_its_own_bulkhead(
    make: Callable[..., HttpParticipants], server: ScriptedServer,
) -> None:
    slow = server.delayed(5)
    server.handler = lambda r: slow(r) if r.path.startswith("/shipments") else ok(r)
    participants = make(pool_size={"shipping": 2, "payment": 2, "inventory": 2})

    with ThreadPoolExecutor(4) as pool:
        ships = [pool.submit(participants.call, call("ship")) for _ in range(4)]
        wait_for(lambda: server.in_flight["shipments"] == 2)
        started = time.monotonic()
        charged = participants.call(call("charge"))
        elapsed = time.monotonic() - started
        time.sleep(0.05)  # the two waiting ship calls must still be held back
        assert server.max_in_flight["shipments"] == 2
        server.release.set()
        outcomes = [ship.result() for ship in ships]

    assert isinstance(charged, Succeeded) and elapsed < 0.5
    assert all(isinstance(o, Succeeded) for o in outcomes)
    assert server.max_in_flight["shipments"] == 2 and server.hits("shipments") == 4


def test_a_rate_limited_participant_answers_unavailable_without_calling(
    make: Callable[..., HttpParticipants], server: ScriptedServer,
) -> None:
    participants = make(rate_limit={"payment": 5, "inventory": None})

    outcomes: list[Outcome] = [participants.call(call("charge")) for _ in range(8)]

    assert all(isinstance(o, Succeeded) for o in outcomes[:5])
    for refused in outcomes[5:]:
        assert isinstance(refused, Unavailable) and refused.detail == "rate limited"
        assert 0 < refused.retry_in <= 0.2
    assert server.hits("payments") == 5
    assert all(isinstance(participants.call(call("reserve")), Succeeded) for _ in range(8))


def test_unknown_actions_are_a_programming_error(make: Callable[..., HttpParticipants]) -> None:
    participants = make()
    assert participants.participant_of("refund") == "payment"
    assert participants.participant_of("release") == "inventory"
    assert participants.participant_of("cancel") == "shipping"
    with pytest.raises(ValueError, match="unknown action"):
        participants.participant_of("teleport")
    with pytest.raises(ValueError, match="unknown action"):
        participants.call(Call("teleport", "wf-1", "wf-1:teleport", {}))
