"""HttpParticipants against a real, scripted HTTP server (werkzeug, threaded, a free port).

The calls are the order definition's own, rendered as the orchestrator renders them: the client
knows no action by name, it makes whatever call it is handed."""
from __future__ import annotations

import json
import logging
import re
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from application.ports import Call, Outcome, Rejected, Succeeded, Transient, Unavailable
from domain.definitions import compile_definition
from infrastructure.participants_http import HttpParticipants

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
TRACEPARENT_FORMAT = re.compile(r"^00-[0-9a-f]{32}-[0-9a-f]{16}-01$")
IDS = {"charge": "paymentId", "reserve": "reservationId", "ship": "shipmentId"}
BUNDLED = Path(__file__).resolve().parents[2] / "definitions"
ORDER = compile_definition(yaml.safe_load((BUNDLED / "order.yaml").read_text("utf-8")))
# What the order definition's expressions see: ids holding '/', '?', '#' and a space, and a
# reason holding '&', which the rendering must URL-encode.
CONTEXT: dict[str, Any] = {
    "input": {"cents": 1250, "skus": ["sku-1", "sku-2"], "address": "1 Main St"},
    "key": "o-1", "workflowId": "wf-1", "reason": "customer asked & left",
    "steps": {"charge": {"paymentId": "pay/1 x"}, "reserve": {"reservationId": "res?1"},
              "ship": {"shipmentId": "shp#1"}},
}
PARTICIPANTS = ("payment", "inventory", "shipping")


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


def call(action: str, traceparent: str | None = TRACEPARENT, timeout_s: float | None = None,
         **context: Any) -> Call:
    """The order definition's call `action` (a step's or an undo's), rendered for workflow
    wf-1 as the orchestrator renders it."""
    step, is_undo = ORDER.calls[action]
    spec = step.undo.call if is_undo and step.undo is not None else step.call
    key = f"wf-1:{action}"
    rendered = spec.render({**CONTEXT, "idempotencyKey": key, **context})
    return Call(participant=step.participant, action=action, workflow_id="wf-1",
                idempotency_key=key, method=rendered.method, path=rendered.target,
                body=rendered.body, timeout_s=timeout_s, traceparent=traceparent)


@pytest.fixture
def server() -> Iterator[ScriptedServer]:
    running = ScriptedServer()
    yield running
    running.stop()


@pytest.fixture
def make(server: ScriptedServer) -> Iterator[Callable[..., HttpParticipants]]:
    """HttpParticipants as bootstrap builds them: `urls` (participant -> base URL, default:
    the order's three on the scripted server), `bulkheads` and `rate_limits` per participant
    (default 32 and none), `unconfigured` as the metric's hook."""
    made: list[HttpParticipants] = []

    def make(urls: dict[str, str] | None = None, bulkheads: dict[str, int] | None = None,
             rate_limits: dict[str, float] | None = None, **overrides: Any) -> HttpParticipants:
        found = dict.fromkeys(PARTICIPANTS, server.url + "/") if urls is None else urls
        settings: dict[str, Any] = {
            "timeout_s": 2.0, "breaker_fail_max": 3, "breaker_reset_s": 0.2,
            "bulkhead": lambda p: (bulkheads or {}).get(p, 32),
            "rate_limit": lambda p: (rate_limits or {}).get(p), **overrides}
        made.append(HttpParticipants(found.get, **settings))
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


def test_success_carries_the_json_body_or_none(
    make: Callable[..., HttpParticipants], server: ScriptedServer,
) -> None:
    participants = make()
    assert participants.call(call("charge")) == Succeeded(
        {"paymentId": "charge-1", "status": "OK"})
    server.handler = always(200, text="<html>done</html>")
    assert participants.call(call("refund")) == Succeeded(None)
    server.handler = always(204)
    assert participants.call(call("cancel")) == Succeeded(None)
    server.handler = always(200, ["not", "an", "object"])
    assert participants.call(call("release")) == Succeeded(["not", "an", "object"])


@pytest.mark.parametrize("action", ["charge", "reserve", "ship"])
def test_a_2xx_is_a_success_whatever_it_carries(
    make: Callable[..., HttpParticipants], server: ScriptedServer, action: str,
) -> None:
    """What a success must carry is the step's business (its `keep:`), checked by the
    orchestrator: a 2xx without the id is retried there (test_orchestrator)."""
    server.handler = always(200, {"status": "OK"})
    assert make().call(call(action)) == Succeeded({"status": "OK"})


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


@pytest.mark.parametrize(("default_s", "step_s"), [(0.2, None), (30.0, 0.2)])
def test_no_answer_within_the_timeout_is_transient(
    make: Callable[..., HttpParticipants], server: ScriptedServer, default_s: float,
    step_s: float | None,
) -> None:
    """The deployment's timeout (STEP_TIMEOUT_S), or the step's own `timeout_s`, which wins."""
    server.handler = server.delayed(5)
    started = time.monotonic()
    outcome = make(timeout_s=default_s).call(call("charge", timeout_s=step_s))
    elapsed = time.monotonic() - started

    assert isinstance(outcome, Transient) and outcome.status is None
    assert "Timeout" in outcome.detail
    assert outcome.maybe_applied  # the request was sent: it may have been applied
    assert 0.15 <= elapsed < 1.0
    assert server.hits("payments") == 1


def test_a_step_timeout_longer_than_the_default_is_waited_for(
    make: Callable[..., HttpParticipants], server: ScriptedServer,
) -> None:
    server.handler = server.delayed(0.4)
    assert isinstance(make(timeout_s=0.1).call(call("charge", timeout_s=2.0)), Succeeded)


def test_a_refused_connection_is_transient(make: Callable[..., HttpParticipants]) -> None:
    with socket.socket() as probe:  # a port that was free a moment ago: nothing listens there
        probe.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}"
    urls = dict.fromkeys(PARTICIPANTS, closed)

    outcome = make(urls=urls).call(call("reserve"))

    assert isinstance(outcome, Transient) and outcome.status is None
    assert "connect" in outcome.detail.lower()
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
    assert participants.breaker_states() == {"payment": "open"}  # made on its first call
    assert isinstance(participants.call(call("reserve")), Succeeded)  # others unaffected
    assert participants.breaker_states() == {"payment": "open", "inventory": "closed"}

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
    participants = make(bulkheads={"shipping": 2, "payment": 2, "inventory": 2})

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
    participants = make(rate_limits={"payment": 5})

    outcomes: list[Outcome] = [participants.call(call("charge")) for _ in range(8)]

    assert all(isinstance(o, Succeeded) for o in outcomes[:5])
    for refused in outcomes[5:]:
        assert isinstance(refused, Unavailable) and refused.detail == "rate limited"
        assert 0 < refused.retry_in <= 0.2
    assert server.hits("payments") == 5
    assert all(isinstance(participants.call(call("reserve")), Succeeded) for _ in range(8))


# --- the call as rendered: method, path, query, body ------------------------------------------


@pytest.mark.parametrize("method", ["GET", "PUT", "PATCH", "DELETE"])
def test_the_method_is_the_calls_own(
    make: Callable[..., HttpParticipants], server: ScriptedServer, method: str,
) -> None:
    body = None if method == "GET" else {"note": "x"}
    outcome = make().call(replace(call("charge"), method=method, body=body))

    assert isinstance(outcome, Succeeded)
    (seen,) = server.requests
    assert (seen["method"], seen["uri"]) == (method, "/payments/charge")
    if body is None:
        assert seen["body"] == b"" and "Content-Type" not in seen["headers"]
    else:
        assert json.loads(seen["body"]) == body


LOOKUP = """
name: lookup
description: A GET with a query, then a PUT with a body.
key: customerId
input: {type: object, properties: {tier: {type: string}}}
participants: {crm: {}}
steps:
  - name: find
    participant: crm
    call:
      method: GET
      path: "/customers/${key}"
      query: {tier: "${input.tier}", missing: "${input.nothing}"}
    keep: {found: id}
  - name: tag
    participant: crm
    call: {method: PUT, path: "/customers/${key}/tags", body: {tags: ["${input.tier}"]}}
"""


def test_a_definitions_get_and_put_are_sent_as_rendered(
    make: Callable[..., HttpParticipants], server: ScriptedServer,
) -> None:
    lookup = compile_definition(yaml.safe_load(LOOKUP))
    context = {"input": {"tier": "gold & up"}, "key": "c/1?#", "workflowId": "wf-2",
               "idempotencyKey": "wf-2:find", "reason": "failed", "steps": {}}
    participants = make(urls={"crm": server.url})

    for name in ("find", "tag"):
        rendered = lookup.calls[name][0].call.render(context)
        participants.call(Call("crm", name, "wf-2", f"wf-2:{name}", rendered.method,
                               rendered.target, rendered.body))

    get, put = server.requests
    assert (get["method"], get["uri"], get["body"]) == (
        "GET", "/customers/c%2F1%3F%23?tier=gold+%26+up", b"")  # no value: no parameter
    assert "Content-Type" not in get["headers"]
    assert (put["method"], put["uri"]) == ("PUT", "/customers/c%2F1%3F%23/tags")
    assert json.loads(put["body"]) == {"tags": ["gold & up"]}
    assert put["headers"]["Content-Type"] == "application/json"
    assert [r["headers"]["Idempotency-Key"] for r in server.requests] == ["wf-2:find",
                                                                         "wf-2:tag"]


@pytest.mark.parametrize(("status", "headers"), [
    (503, {}), (500, {}), (307, {"Location": "/elsewhere"}), (302, {"Location": "/x"}),
])
def test_exactly_one_request_per_call(
    make: Callable[..., HttpParticipants], server: ScriptedServer, status: int,
    headers: dict[str, str],
) -> None:
    """No retry below us (urllib3) and no redirect followed: the orchestrator counts attempts,
    and a participant must never see a call the orchestrator does not know it made."""
    server.handler = always(status, headers=headers)
    outcome = make(breaker_fail_max=10).call(call("charge"))

    assert isinstance(outcome, Transient) and outcome.status == status
    assert len(server.requests) == 1


# --- limits, read once per participant ---------------------------------------------------------


def test_each_participants_limits_are_read_on_its_first_call_only(
    make: Callable[..., HttpParticipants], server: ScriptedServer,
) -> None:
    asked: list[str] = []

    def bulkhead(participant: str) -> int:
        asked.append(participant)
        return 4

    participants = make(bulkhead=bulkhead)
    for action in ("charge", "charge", "reserve", "refund", "release", "charge"):
        assert isinstance(participants.call(call(action)), Succeeded)
    assert asked == ["payment", "inventory"]


def test_limits_that_cannot_be_read_make_the_call_wait_not_fail(
    make: Callable[..., HttpParticipants], server: ScriptedServer,
) -> None:
    """The limits may come from the definitions' store: while it is down, no call is made and
    nothing is cached, so the next attempt reads them again."""
    down = [True]

    def bulkhead(participant: str) -> int:
        if down[0]:
            raise ConnectionError("store down")
        return 4

    participants = make(bulkhead=bulkhead)
    refused = participants.call(call("charge"))
    assert isinstance(refused, Unavailable) and refused.retry_in > 0
    assert server.requests == [] and participants.breaker_states() == {}

    down[0] = False
    assert isinstance(participants.call(call("charge")), Succeeded)


# --- a participant with no URL ---------------------------------------------------------------


def test_a_participant_with_no_url_is_unavailable_and_proceeds_once_configured(
    make: Callable[..., HttpParticipants], server: ScriptedServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    urls: dict[str, str] = {}
    counted: list[str] = []
    participants = make(urls=urls, unconfigured=counted.append)
    flight = Call("flights", "flight", "wf-3", "wf-3:flight", "POST", "/flights/bookings",
                  {"tripId": "t-1"})

    with caplog.at_level(logging.ERROR, logger="orchestrator.participants"):
        outcomes = [participants.call(flight) for _ in range(3)]

    for outcome in outcomes:  # the step waits: no attempt is used up, nothing fails
        assert isinstance(outcome, Unavailable) and "FLIGHTS_URL" in outcome.detail
        assert outcome.retry_in >= 1
    assert counted == ["flights"] * 3  # every call counts...
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1  # ...but a waiting crowd logs once
    assert "FLIGHTS_URL" in errors[0].getMessage()
    assert (errors[0].participant, errors[0].workflow_id) == ("flights", "wf-3")  # type: ignore[attr-defined]
    assert server.requests == [] and participants.breaker_states() == {}

    urls["flights"] = server.url  # a deploy sets FLIGHTS_URL (and restarts)
    assert isinstance(participants.call(flight), Succeeded)
    (seen,) = server.requests
    assert (seen["uri"], seen["headers"]["Idempotency-Key"]) == ("/flights/bookings",
                                                                 "wf-3:flight")
    assert participants.breaker_states() == {"flights": "closed"}


def test_bootstrap_wires_the_urls_and_the_unconfigured_metric(
    server: ScriptedServer, tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    from prometheus_client import REGISTRY

    from infrastructure.bootstrap import bootstrap
    from infrastructure.settings import load

    system = bootstrap(load({"DATABASE_URL": f"sqlite:///{tmp_path}/o.sqlite3",
                             "HOTELS_URL": server.url, "PAYMENT_URL": server.url + "/"}))
    participants: Any = system.make_participants(system)
    metric = "orchestrator_participant_unconfigured_total"

    def count() -> float:
        return REGISTRY.get_sample_value(metric, {"participant": "flights"}) or 0.0

    before = count()
    try:
        with caplog.at_level(logging.ERROR, logger="orchestrator.participants"):
            refused = participants.call(Call("flights", "flight", "wf-4", "wf-4:flight",
                                             "POST", "/flights/bookings", {}))
            assert isinstance(participants.call(call("charge")), Succeeded)
            assert isinstance(participants.call(Call(
                "hotels", "hotel", "wf-4", "wf-4:hotel", "POST", "/hotels/bookings", {})),
                Succeeded)
    finally:
        participants.close()
        system.stop()

    assert isinstance(refused, Unavailable) and "FLIGHTS_URL" in refused.detail
    assert count() == before + 1
    assert any("FLIGHTS_URL" in r.getMessage() for r in caplog.records)
    assert [r["uri"] for r in server.requests] == ["/payments/charge", "/hotels/bookings"]


def test_calls_after_close_are_made_on_a_new_loop(
    make: Callable[..., HttpParticipants], server: ScriptedServer,
) -> None:
    """Two calls at once through a bulkhead of one, before and after close(): the second
    waits for the slot each time (the wait binds the bulkhead to the running loop)."""
    server.handler = server.delayed(0.2)
    participants = make(bulkheads={"payment": 1})

    def two_at_once() -> list[Outcome]:
        with ThreadPoolExecutor(2) as pool:
            return list(pool.map(participants.call, [call("charge"), call("refund")]))

    assert all(isinstance(o, Succeeded) for o in two_at_once())
    participants.close()
    assert all(isinstance(o, Succeeded) for o in two_at_once())
    assert server.hits("payments") == 4
