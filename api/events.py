"""The audit feed for downstream systems: every event of every workflow, in store order."""
from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify

from api import requests_parsing as parse
from application.views import AuditEntry

bp = Blueprint("events", __name__)


@bp.get("/events")
def feed() -> Response:
    """Events after `after` (exclusive), at most `limit`; resume from `next`."""
    args = parse.query({"after", "limit"})
    after = int(parse.number(args, "after", 0, 2**62, integer=True) or 0)
    limit = int(parse.number(args, "limit", 1, 1000, integer=True) or 100)
    workflows = current_app.extensions["system"].workflows
    notes = workflows.recorder.select_notifications(start=after + 1, limit=limit)
    events = []
    for n in notes:
        entry = AuditEntry.of(workflows.mapper.to_domain_event(n))
        events.append({"position": n.id, "workflowId": entry.workflow_id, "type": entry.type,
                       "timestamp": entry.timestamp, "data": entry.data})
    return jsonify({"events": events, "next": notes[-1].id if notes else after})
