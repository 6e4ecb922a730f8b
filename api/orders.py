"""Placing orders: POST /orders/{orderId}/orchestrate, and GET /orders/{orderId}; and the start
of a workflow as every start endpoint answers it (`start`, shared with api.definitions)."""
from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, current_app, jsonify
from werkzeug.routing import PathConverter

from api import requests_parsing as parse
from api.errors import Problem
from infrastructure import metrics

bp = Blueprint("orders", __name__)
ORDER = "order"  # the definition these endpoints start and read: sections 1-3 of the API


class AnyPath(PathConverter):
    """Werkzeug's path converter but for line breaks: an id holding one is a 400 for bad
    input, not a 404 for an unknown URL."""

    regex = "(?s:[^/].*?)"


class _OrderPath(AnyPath):
    """As AnyPath, less the `.../orchestrate` of the POST route: a GET there is a 405."""

    regex = r"(?s:(?!.*/orchestrate\Z)[^/].*?)"


def install_converters(state: Any) -> None:
    """Adds the converters to the app's URL map (any blueprint that routes with them)."""
    state.app.url_map.converters.update(any_path=AnyPath, order_path=_OrderPath)


bp.record_once(install_converters)


def start(definition: str, key: str, identity: dict[str, Any]) -> tuple[Response, int] | Response:
    """Starts the definition's workflow for `key` with the request's body as its input (or
    finds it: same input, same workflow) and answers at once, or with ?wait=S once it ends.

    202 (created) or 200 (found) with `identity` (the workflow's names for the caller), the
    status and Location; 200 with the state view when it ended within the wait. The answer
    reads its own write: the state views include the start before it is sent."""
    args = parse.query({"wait"})
    wait = parse.number(args, "wait", 0, 30)
    body = parse.json_object()
    system, waiter = current_app.extensions["system"], current_app.extensions["waiter"]
    started = system.workflows.start(definition, key, body)
    wid = str(started.workflow_id)
    if started.created:
        metrics.STARTED.inc()
    if wait:
        state = waiter.terminal(wid, wait)
        if state is not None:
            return jsonify(state), 200
    waiter.caught_up(started.position)
    state = system.views.state(wid)
    response = jsonify({"workflowId": wid, **identity,
                        "status": state["status"] if state else "STARTED"})
    response.status_code = 202 if started.created else 200
    response.headers["Location"] = f"/workflows/{wid}"
    return response


@bp.post("/orders/<any_path:raw_order_id>/orchestrate")
def orchestrate(raw_order_id: str) -> tuple[Response, int] | Response:
    """Starts the order's saga (or finds it: same body, same workflow) and answers at once, or
    with ?wait=S once it ends."""
    order_id = parse.order_id(raw_order_id)
    return start(ORDER, order_id, {"orderId": order_id})


@bp.get("/orders/<order_path:raw_order_id>")
def by_order(raw_order_id: str) -> Response:
    """The state view of the order's workflow."""
    order_id = parse.order_id(raw_order_id)
    parse.query(set())
    state = current_app.extensions["system"].views.state_by_key(ORDER, order_id)
    if state is None:
        raise Problem(404, "not-found", "Not found", f"no workflow for order {order_id}")
    return jsonify(state)
