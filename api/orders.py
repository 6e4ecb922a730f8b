"""Placing orders: POST /orders/{orderId}/orchestrate, and GET /orders/{orderId}."""
from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify
from werkzeug.routing import PathConverter

from api import requests_parsing as parse
from api.errors import Problem
from infrastructure import metrics

bp = Blueprint("orders", __name__)
ORDER = "order"  # the definition these endpoints start and read: sections 1-3 of the API


class _AnyPath(PathConverter):
    """Werkzeug's path converter but for line breaks: an id holding one is a 400 for bad
    input, not a 404 for an unknown URL."""

    regex = "(?s:[^/].*?)"


class _OrderPath(_AnyPath):
    """As _AnyPath, less the `.../orchestrate` of the POST route: a GET there is a 405."""

    regex = r"(?s:(?!.*/orchestrate\Z)[^/].*?)"


bp.record_once(lambda state: state.app.url_map.converters.update(
    any_path=_AnyPath, order_path=_OrderPath))


@bp.post("/orders/<any_path:raw_order_id>/orchestrate")
def orchestrate(raw_order_id: str) -> tuple[Response, int] | Response:
    """Starts the order's saga (or finds it: same body, same workflow) and answers at once, or
    with ?wait=S once it ends."""
    order_id = parse.order_id(raw_order_id)
    args = parse.query({"wait"})
    wait = parse.number(args, "wait", 0, 30)
    body = parse.json_object()
    system, waiter = current_app.extensions["system"], current_app.extensions["waiter"]
    started = system.workflows.start(ORDER, order_id, body)
    wid = str(started.workflow_id)
    if started.created:
        metrics.STARTED.inc()
    if wait:
        state = waiter.terminal(wid, wait)
        if state is not None:
            return jsonify(state), 200
    waiter.caught_up(started.position)
    state = system.views.state(wid)
    summary = {"workflowId": wid, "orderId": order_id,
               "status": state["status"] if state else "STARTED"}
    response = jsonify(summary)
    response.status_code = 202 if started.created else 200
    response.headers["Location"] = f"/workflows/{wid}"
    return response


@bp.get("/orders/<order_path:raw_order_id>")
def by_order(raw_order_id: str) -> Response:
    """The state view of the order's workflow."""
    order_id = parse.order_id(raw_order_id)
    parse.query(set())
    state = current_app.extensions["system"].views.state_by_key(ORDER, order_id)
    if state is None:
        raise Problem(404, "not-found", "Not found", f"no workflow for order {order_id}")
    return jsonify(state)
