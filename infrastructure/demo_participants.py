"""The demo Payment, Inventory and Shipping services (CONTRACT.md section 1) on one port.

Every action is idempotent by its `Idempotency-Key` header (or the body's `idempotencyKey`):
the same key for the same action answers the stored original and applies nothing twice. The
records live in a SQLite file (demo_participants_store), so a restart loses nothing. Faults
are injected per action (demo_participants_faults) from `PARTICIPANT_FAULTS` at start or
`POST /_faults` at runtime. A stored answer is replayed before faults are considered; a call
that got a fault without `apply` stored nothing, so its retry is processed anew.

`GET /_stats`, `GET|POST /_faults`, `POST /_reset` and `GET /health` serve tests and demos.
"""
from __future__ import annotations

import json
import logging
import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Iterable
from typing import Any

from flask import Flask, Response, request
from werkzeug.exceptions import HTTPException
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from infrastructure.demo_participants_faults import (
    Fault,
    FaultInjector,
    FaultSpecError,
    faults_from_environ,
)
from infrastructure.demo_participants_store import (
    ACTIONS,
    Answer,
    ParticipantStore,
    UnknownReference,
)

logger = logging.getLogger(__name__)

TRACKED_HEADERS = ("Idempotency-Key", "X-Workflow-Id", "traceparent")


class CallCounters:
    """In-memory call, replay and missing-header counts (effects are counted from SQLite)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        """Zeroes every count."""
        with self._lock:
            self._calls = Counter({action: 0 for action in ACTIONS})
            self._replays = Counter({action: 0 for action in ACTIONS})
            self._missing = Counter({header: 0 for header in TRACKED_HEADERS})

    def call(self, action: str, missing_headers: Iterable[str]) -> None:
        """Counts one call of `action` and the tracked headers it lacked."""
        with self._lock:
            self._calls[action] += 1
            self._missing.update(missing_headers)

    def replay(self, action: str) -> None:
        """Counts one call answered from a stored answer."""
        with self._lock:
            self._replays[action] += 1

    def snapshot(self) -> dict[str, Any]:
        """The counts as plain dicts."""
        with self._lock:
            return {"calls": dict(self._calls), "replays": dict(self._replays),
                    "missing_headers": dict(self._missing)}


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


def _forward_body(action: str) -> dict[str, Any]:
    """The validated body of a charge, reserve or ship call."""
    body = _body_object(required=True)

    def bad(field: str, what: str) -> ProblemError:
        return ProblemError(400, "Bad Request", f"{action}: {field} must be {what}")

    if not isinstance(body.get("orderId"), str) or not body["orderId"]:
        raise bad("orderId", "a non-empty string")
    if not isinstance(body.get("idempotencyKey", ""), str):
        raise bad("idempotencyKey", "a string")
    cents, skus, address = body.get("cents"), body.get("skus"), body.get("address")
    if action == "charge" and (isinstance(cents, bool) or not isinstance(cents, int)
                               or cents <= 0):
        raise bad("cents", "a positive integer")
    if action == "reserve" and (not isinstance(skus, list) or not skus or not all(
            isinstance(sku, str) and sku for sku in skus)):
        raise bad("skus", "a non-empty list of non-empty strings")
    if action == "ship" and (not isinstance(address, str) or not address):
        raise bad("address", "a non-empty string")
    return body


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
    app.extensions["demo_participants_store"] = store

    def handle(action: str, ref: str | None = None) -> Response:
        counters.call(action, [h for h in TRACKED_HEADERS if not request.headers.get(h)])
        forward = ACTIONS[action].undoes is None
        body = _forward_body(action) if forward else _body_object(required=False)
        key = request.headers.get("Idempotency-Key") or body.get("idempotencyKey") or None
        stored = store.stored_answer(action, key) if key else None
        if stored is not None:  # replays come before faults: the effect already happened
            return reply(action, stored)
        fault = injector.draw(action)
        if fault is not None and fault.delay_s:
            time.sleep(fault.delay_s)
        if fault is not None and fault.status is not None and not fault.apply:
            return fault_reply(action, fault)
        answer = store.apply(action, key, order_id=body.get("orderId"), ref=ref,
                             detail=request.args.get("reason"))
        if fault is not None and fault.status is not None:
            return fault_reply(action, fault)  # applied, but the answer is "lost"
        return reply(action, answer)

    def reply(action: str, answer: Answer) -> Response:
        if answer.replayed:
            counters.replay(action)
            return _json(answer.status, answer.body, {"Idempotent-Replayed": "true"})
        return _json(answer.status, answer.body)

    def fault_reply(action: str, fault: Fault) -> Response:
        headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else None
        # A type of its own, so a log reader can tell an injected fault from a real one.
        title = "Business rejection" if fault.business else "Injected fault"
        return _problem(int(fault.status or 503), title, f"{action}: injected fault", headers,
                        kind="urn:demo-participants:injected-fault")

    routes = [("/payments/charge", "charge"), ("/payments/<ref>/refund", "refund"),
              ("/inventory/reservations", "reserve"),
              ("/inventory/reservations/<ref>/release", "release"),
              ("/shipments", "ship"), ("/shipments/<ref>/cancel", "cancel")]
    for rule, action in routes:
        app.add_url_rule(rule, action, lambda action=action, **kw: handle(action, **kw),
                         methods=["POST"])

    @app.get("/_stats")
    def stats() -> Response:
        return _json(200, {**counters.snapshot(),
                           **store.effect_stats(request.args.get("orderId"))})

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


class _QuietRequestHandler(WSGIRequestHandler):
    """Logs errors but not every request: benchmarks send thousands of calls."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass


def make_participants_server(host: str, port: int, db_path: str,
                             faults: dict[str, Any] | None = None) -> BaseWSGIServer:
    """A threaded werkzeug server of the demo participants, bound but not yet serving: run
    `serve_forever()` (in a thread if you like) and stop it with `shutdown()`. Port 0 picks
    a free port (see `server_port`)."""
    app = create_participants_app(db_path, faults)
    try:
        return make_server(host, port, app, threaded=True, request_handler=_QuietRequestHandler)
    except BaseException:  # werkzeug exits (SystemExit) when the port is taken
        app.extensions["demo_participants_store"].close()
        raise


def serve_participants(host: str, port: int, db_path: str,
                       faults: dict[str, Any] | None = None) -> None:
    """Serves the demo participants until Ctrl-C or SIGTERM, then closes cleanly."""
    server = make_participants_server(host, port, db_path, faults)
    previous = None
    if threading.current_thread() is threading.main_thread():
        # SIGTERM ends serve_forever the way Ctrl-C does, so the finally block runs.
        previous = signal.signal(signal.SIGTERM, _interrupt)
    logger.info("demo participants on http://%s:%d (records in %s)", host, server.server_port,
                db_path)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        close_participants_server(server)
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def close_participants_server(server: BaseWSGIServer) -> None:
    """Releases the port and the records file of a server that has stopped serving."""
    server.server_close()
    if isinstance(server.app, Flask):
        server.app.extensions["demo_participants_store"].close()


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt
