"""The one place where exceptions become HTTP answers: RFC 9457 problem documents, never an
HTML page or a stack trace."""
from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, json
from werkzeug.exceptions import HTTPException

from application.definitions import DefinitionNotFound
from application.workflows import InvalidInput, StartConflict, WorkflowNotFound
from domain.definitions import DefinitionInvalid
from domain.workflow import InvalidTransition, UnknownSignal

log = logging.getLogger("orchestrator.api")


class Problem(Exception):
    """An answer that is not a success: its status, a short slug and a human detail."""

    def __init__(self, status: int, slug: str, title: str, detail: str, **extra: Any):
        super().__init__(detail)
        self.status, self.slug, self.title, self.detail, self.extra = (
            status, slug, title, detail, extra)


def problem_response(status: int, slug: str, title: str, detail: str,
                     **extra: Any) -> Response:
    body = {"type": f"/problems/{slug}", "title": title, "status": status, "detail": detail,
            **extra}
    response = Response(json.dumps(body), status=status, mimetype="application/problem+json")
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="orchestrator"'
    return response


def register(app: Flask) -> None:
    """Installs the handlers that turn every error into a problem document."""

    @app.errorhandler(Problem)
    def _problem(e: Problem) -> Response:
        return problem_response(e.status, e.slug, e.title, e.detail, **e.extra)

    @app.errorhandler(InvalidInput)
    def _invalid(e: InvalidInput) -> Response:
        return problem_response(422, "invalid-input", "Invalid input", str(e),
                                errors=[{"path": p, "message": m} for p, m in e.errors])

    @app.errorhandler(DefinitionInvalid)
    def _invalid_definition(e: DefinitionInvalid) -> Response:
        return problem_response(422, "invalid-definition", "Invalid definition",
                                f"{len(e.errors)} error(s); nothing was registered",
                                errors=[x.as_dict() for x in e.errors])

    @app.errorhandler(StartConflict)
    def _conflict(e: StartConflict) -> Response:
        return problem_response(409, "start-conflict", "Already started differently",
                                str(e), workflowId=str(e.workflow_id))

    @app.errorhandler(DefinitionNotFound)
    def _no_definition(e: DefinitionNotFound) -> Response:
        return problem_response(404, "not-found", "Not found", str(e))

    @app.errorhandler(UnknownSignal)
    def _unknown_signal(e: UnknownSignal) -> Response:
        return problem_response(422, "unknown-signal", "Unknown signal", str(e))

    @app.errorhandler(WorkflowNotFound)
    def _not_found(e: WorkflowNotFound) -> Response:
        return problem_response(404, "not-found", "Not found", str(e))

    @app.errorhandler(InvalidTransition)
    def _transition(e: InvalidTransition) -> Response:
        return problem_response(409, "invalid-transition", "Not allowed in this status",
                                str(e), workflowStatus=e.status)

    @app.errorhandler(HTTPException)
    def _http(e: HTTPException) -> Response:
        code = e.code or 500
        response = problem_response(code, (e.name or "error").lower().replace(" ", "-"),
                                    e.name or "Error", e.description or e.name or "")
        for name, value in e.get_headers():  # Allow on a 405, Retry-After, ...
            if name.lower() != "content-type":
                response.headers[name] = value
        if code == 413:  # the rest of an oversized body is not worth reading: hang up
            response.headers["Connection"] = "close"
        return response

    @app.errorhandler(Exception)
    def _unexpected(e: Exception) -> Response:
        kind = _store_error(e)
        if kind == "unavailable":
            log.warning("store unavailable: %s", type(e).__name__)
            return problem_response(503, "store-unavailable", "Service unavailable",
                                    "the event store cannot be reached; try again shortly")
        if kind == "data":
            # The store refused a value (a NUL in text, a number out of range): the input's
            # fault, and nothing was written.
            log.warning("store refused a value: %s", type(e).__name__)
            return problem_response(400, "invalid-input", "Invalid input",
                                    "the request holds a value the store cannot take")
        log.exception("unhandled error")
        return problem_response(500, "internal-error", "Internal error",
                                "the server failed to handle this request")


def _store_error(e: Exception) -> str | None:
    """"unavailable" when the store cannot be reached (or is busy past its timeout), "data"
    when it refused a value, else None. By name: the API knows no driver."""
    names = {c.__name__ for c in type(e).__mro__}
    if "DataError" in names:
        return "data"
    if names & {"OperationalError", "InterfaceError", "PoolTimeout"}:
        return "unavailable"
    return None
