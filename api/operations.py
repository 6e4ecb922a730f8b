"""Liveness, readiness, metrics and the OpenAPI description."""
from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify

from api.errors import Problem
from api.openapi import build_spec
from infrastructure import metrics

bp = Blueprint("operations", __name__)


@bp.get("/health")
def health() -> Response:
    """200 while the process is alive."""
    return jsonify({"status": "ok"})


@bp.get("/ready")
def ready() -> Response:
    """200 when the event store and the views can be reached, else 503."""
    if not current_app.extensions["system"].reachable():
        raise Problem(503, "not-ready", "Not ready", "the event store cannot be reached")
    return jsonify({"status": "ready"})


@bp.get("/metrics")
def prometheus() -> Response:
    """Prometheus text format."""
    system = current_app.extensions["system"]

    def refresh() -> None:
        head = system.event_head()
        metrics.set_lag("workflow_views", head - system.views.position("workflow_views"))
        participants = system.participants
        if participants is not None and hasattr(participants, "breaker_states"):
            metrics.set_breakers(participants.breaker_states())

    body, content_type = metrics.render(refresh)
    return Response(body, content_type=content_type)


@bp.get("/openapi.json")
def openapi() -> Response:
    """The OpenAPI 3 description of this API, with the definitions registered now (each
    one's input schema, and its paths)."""
    definitions = current_app.extensions["system"].definitions
    return jsonify(build_spec(definitions.get(name).definition for name in definitions.names()))
