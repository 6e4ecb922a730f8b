"""Workflows: the state view, the audit trail, search, signals to a waiting step, and the
operator's retry and cancel."""
from __future__ import annotations

from dataclasses import asdict
from typing import Any

from flask import Blueprint, Response, current_app, g, jsonify

from api import requests_parsing as parse
from api.errors import Problem
from api.orders import ORDER
from api.waiting import seen
from application.views import Search
from domain.workflow import TERMINAL

bp = Blueprint("workflows", __name__)
FIXED_STATUSES = ("STARTED", "WAITING", "COMPENSATING", *TERMINAL)


def _system() -> Any:
    return current_app.extensions["system"]


@bp.get("/workflows/<raw_id>")
def state(raw_id: str) -> Response:
    """One workflow's state view."""
    wid = str(parse.workflow_id(raw_id))
    parse.query(set())
    view = _system().views.state(wid)
    if view is None:
        raise Problem(404, "not-found", "Not found", f"no workflow {wid}")
    return jsonify(view)


@bp.get("/workflows/<raw_id>/audit")
def audit(raw_id: str) -> Response:
    """Every event of the workflow, in order, with its data."""
    wid = str(parse.workflow_id(raw_id))
    parse.query(set())
    entries = _system().views.audit(wid)
    if not entries:
        raise Problem(404, "not-found", "Not found", f"no workflow {wid}")
    events = [{k: v for k, v in asdict(e).items() if k != "workflow_id"} for e in entries]
    return jsonify({"workflowId": wid, "events": events})


@bp.get("/workflows")
def search() -> Response:
    """State views filtered by status, definition, key (or order) and creation time, newest
    first, by pages."""
    args = parse.query({"status", "definition", "key", "orderId", "createdAfter",
                        "createdBefore", "limit", "after"})
    status = args.get("status")
    if status is not None and not parse.STATUS_NAME.fullmatch(status):
        raise Problem(400, "invalid-parameter", "Invalid query parameter",
                      f"status must be one of {', '.join(FIXED_STATUSES)} or a step's status "
                      "(A-Z, 0-9 and _)")
    definition, key = args.get("definition"), args.get("key")
    if definition is not None and not parse.DEFINITION_NAME.fullmatch(definition):
        raise Problem(400, "invalid-parameter", "Invalid query parameter",
                      "definition must be a definition's name")
    if "orderId" in args:  # the order saga's own filter: its definition and key
        if definition not in (None, ORDER) or key is not None:
            raise Problem(400, "invalid-parameter", "Invalid query parameter",
                          "orderId goes with neither key nor another definition")
        definition, key = ORDER, parse.order_id(args["orderId"])
    elif key is not None:
        key = parse.key(key)
    limit = parse.number(args, "limit", 1, 500, integer=True)
    query = Search(status=status, definition=definition, key=key,
                   created_after=parse.timestamp(args, "createdAfter"),
                   created_before=parse.timestamp(args, "createdBefore"),
                   limit=int(limit or 50), after=args.get("after"))
    try:
        page = _system().views.search(query)
    except ValueError as e:
        raise Problem(400, "invalid-parameter", "Invalid query parameter", f"after: {e}") from None
    return jsonify({"items": page.items, "next": page.next})


@bp.post("/workflows/<raw_id>/retry")
def retry(raw_id: str) -> tuple[Response, int]:
    """Resumes a COMPENSATION_FAILED or stuck workflow; 409 when its status forbids it."""
    wid = parse.workflow_id(raw_id)
    args = parse.query({"reason"})
    seen(_system().workflows.retry(wid, by=g.caller,
                                    reason=args.get("reason", "operator retry")[:500]))
    return jsonify({"workflowId": str(wid), "accepted": "retry"}), 202


@bp.post("/workflows/<raw_id>/cancel")
def cancel(raw_id: str) -> tuple[Response, int]:
    """Asks a running workflow to compensate and end CANCELLED; 409 once it is terminal."""
    wid = parse.workflow_id(raw_id)
    parse.query(set())
    seen(_system().workflows.cancel(wid))
    return jsonify({"workflowId": str(wid), "accepted": "cancel"}), 202


@bp.post("/workflows/<raw_id>/signals/<raw_signal>")
def signal(raw_id: str, raw_signal: str) -> tuple[Response, int]:
    """Delivers a signal (its body a JSON object) to the workflow's wait step, now or when the
    step comes; the same signal again records nothing. 409 once the workflow is terminal or
    the wait is over, 422 for a signal its definition does not know."""
    wid = parse.workflow_id(raw_id)
    name = parse.signal_name(raw_signal)
    parse.query(set())
    body = parse.json_object()
    seen(_system().workflows.signal(wid, name, body))
    return jsonify({"workflowId": str(wid), "accepted": "signal", "signal": name}), 202
