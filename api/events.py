"""The audit feed for downstream systems: every event of every workflow, in store order."""
from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify

from api import requests_parsing as parse
from application.feed import events_after

bp = Blueprint("events", __name__)


@bp.get("/events")
def feed() -> Response:
    """Events after `after` (exclusive), at most `limit`; resume from `next`."""
    args = parse.query({"after", "limit"})
    after = int(parse.number(args, "after", 0, 2**62, integer=True) or 0)
    limit = int(parse.number(args, "limit", 1, 1000, integer=True) or 100)
    page = events_after(current_app.extensions["system"].workflows, after, limit)
    return jsonify({"events": page.events, "next": page.next})
