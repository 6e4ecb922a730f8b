"""The demo participants' HTTP service: every call of demo.routes' table on one port.

There is no code per action: each route of the table is served by one handler that validates
the body's required fields (400 naming the field), answers a repeated Idempotency-Key (header,
or the body's `idempotencyKey`) with the stored original, draws the action's fault
(demo.faults: `PARTICIPANT_FAULTS` at start, `POST /_faults` at runtime) and applies the effect
once (demo.store, a SQLite file, so a restart loses nothing). A stored answer is replayed before
faults are considered; a call that got a fault without `apply` stored nothing, so its retry is
processed anew.

`GET /_stats[?orderId=K|?key=K]`, `GET|POST /_faults`, `POST /_reset` and `GET /health` serve
tests and demos.
"""
from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from typing import Any

from flask import Flask, Response, request
from werkzeug.exceptions import HTTPException

from demo.faults import Fault, FaultInjector, FaultSpecError, faults_from_environ
from demo.routes import ROUTES, Route
from demo.stats import TRACKED_HEADERS, CallCounters, effect_stats
from demo.store import Answer, ParticipantStore, UnknownReference

logger = logging.getLogger(__name__)

STORE = "demo_participants_store"  # the app.extensions entry of its ParticipantStore


class ProblemError(Exception):
    """An answer of `status` with an application/problem+json document."""

    def __init__(self, status: int, title: str, detail: str,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status, self.title, self.detail, self.headers = status, title, detail, headers


def _problem(status: int, title: str, detail: str, headers: dict[str, str] | None = None,
             kind: str = "about:blank") -> Response:
    body = {"type": kind, "title": title, "status": status, "detail": detail}
    return Response(json.dumps(body), status=status, headers=headers,
                    mimetype="application/problem+json")


def _json(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(json.dumps(body), status=status, headers=headers, mimetype="application/json")


def _body_object(required: bool) -> dict[str, Any]:
    # force=True: curl sends form content types by default, and the body is ours to judge.
    body = request.get_json(force=True, silent=True)
    if isinstance(body, dict):
        return body
    if required or request.get_data():
        raise ProblemError(400, "Bad Request", "the body must be a JSON object")
    return {}


def _selected_key() -> str | None:
    """The business key `_stats` reports on: `?key=`, or `?orderId=` as before trips."""
    key, order_id = request.args.get("key"), request.args.get("orderId")
    if key is not None and order_id is not None and key != order_id:
        raise ProblemError(400, "Bad Request", "_stats: give key or orderId, not two keys")
    return key if key is not None else order_id


def _fault_reply(action: str, fault: Fault) -> Response:
    headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else None
    # A type of its own, so a log reader can tell an injected fault from a real one.
    title = "Business rejection" if fault.business else "Injected fault"
    return _problem(int(fault.status or 503), title, f"{action}: injected fault", headers,
                    kind="urn:demo-participants:injected-fault")


def create_participants_app(db_path: str, faults: dict[str, Any] | None = None) -> Flask:
    """Builds the demo participants' WSGI app over the SQLite file at `db_path`.

    `faults` is the initial faults spec; None reads `PARTICIPANT_FAULTS` from the environment.
    Raises FaultSpecError (a ValueError) naming the bad field of a bad spec."""
    spec = faults_from_environ(os.environ) if faults is None else faults
    injector = FaultInjector(spec)  # validates before anything opens the database
    store = ParticipantStore(db_path)
    counters = CallCounters()
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = 64 * 1024
    app.extensions[STORE] = store

    def handle(route: Route, params: dict[str, str]) -> Response:
        counters.call(route.action, [h for h in TRACKED_HEADERS if not request.headers.get(h)])
        body = _body_object(required=route.forward)
        problem = route.body_problem(body) if route.forward else None
        if problem is not None:
            raise ProblemError(400, "Bad Request", problem)
        key = request.headers.get("Idempotency-Key") or body.get("idempotencyKey") or None
        stored = store.stored_answer(route.action, key) if key else None
        if stored is not None:  # replays come before faults: the effect already happened
            return reply(route.action, stored)
        fault = injector.draw(route.action)
        if fault is not None and fault.delay_s:
            time.sleep(fault.delay_s)
        if fault is not None and fault.status is not None and not fault.apply:
            return _fault_reply(route.action, fault)
        answer = store.apply(route, key, business_key=body.get(route.key_field),
                             ref=params.get(route.id_field), detail=request.args.get("reason"))
        if fault is not None and fault.status is not None:
            return _fault_reply(route.action, fault)  # applied, but the answer is "lost"
        return reply(route.action, answer)

    def reply(action: str, answer: Answer) -> Response:
        if answer.replayed:
            counters.replay(action)
            return _json(answer.status, answer.body, {"Idempotent-Replayed": "true"})
        return _json(answer.status, answer.body)

    def view_of(route: Route) -> Callable[..., Response]:
        return lambda **params: handle(route, params)

    for route in ROUTES:
        app.add_url_rule(route.rule, route.action, view_of(route), methods=[route.method])

    @app.get("/_stats")
    def stats() -> Response:
        return _json(200, {**counters.snapshot(), **effect_stats(store.effects(),
                                                                 _selected_key())})

    @app.route("/_faults", methods=["GET", "POST"])
    def faults_view() -> Response:
        if request.method == "POST":
            try:
                injector.replace(_body_object(required=True))
            except FaultSpecError as error:
                raise ProblemError(400, "Bad faults spec", str(error)) from None
        return _json(200, injector.spec())

    @app.post("/_reset")
    def reset() -> Response:
        store.clear()
        injector.replace({})
        counters.reset()
        return _json(200, {})

    @app.get("/health")
    def health() -> Response:
        return _json(200, {"status": "ok"})

    @app.errorhandler(Exception)
    def on_error(error: Exception) -> Response:
        # Every error is a problem document, never Flask's HTML page or a stack trace.
        if isinstance(error, ProblemError):
            return _problem(error.status, error.title, error.detail, error.headers)
        if isinstance(error, UnknownReference):
            return _problem(404, "Not Found", str(error))
        if isinstance(error, HTTPException):
            return _problem(error.code or 500, error.name, error.description or error.name)
        logger.exception("demo participants: unexpected error")
        return _problem(500, "Internal Server Error", "unexpected error; see the server log")

    return app
