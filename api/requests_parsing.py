"""Parsing what a request carries: ids, JSON bodies and query parameters. Each helper raises a
Problem that names what is wrong, so a view stays a few lines long."""
from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from typing import Any

from flask import request

from api.errors import Problem

ORDER_ID = re.compile(r"[A-Za-z0-9._-]{1,100}")


def order_id(raw: str) -> str:
    if not ORDER_ID.fullmatch(raw):
        raise Problem(400, "invalid-order-id", "Invalid order id",
                      "an order id is 1 to 100 characters of A-Z a-z 0-9 . _ -")
    return raw


def workflow_id(raw: str) -> uuid.UUID:
    try:
        return uuid.UUID(raw)
    except ValueError:
        raise Problem(404, "not-found", "Not found", f"no workflow {raw[:100]}") from None


def json_object() -> dict[str, Any]:
    """The body as a JSON object; 415 for another media type, 400 for malformed JSON."""
    if not request.is_json:
        raise Problem(415, "unsupported-media-type", "Unsupported media type",
                      "send the body as application/json")
    body = request.get_json(silent=True)
    if body is None:
        raise Problem(400, "malformed-json", "Malformed JSON", "the body is not valid JSON")
    if not isinstance(body, dict):
        raise Problem(422, "invalid-order", "Invalid order", "the body must be a JSON object")
    return body


def query(allowed: set[str]) -> dict[str, str]:
    """The query parameters, refusing any this endpoint does not know."""
    unknown = set(request.args) - allowed
    if unknown:
        raise Problem(400, "unknown-parameter", "Unknown query parameter",
                      f"unknown query parameter(s): {', '.join(sorted(unknown))[:200]}")
    return {k: request.args[k] for k in request.args}


def number(args: dict[str, str], name: str, low: float, high: float,
           integer: bool = False) -> float | None:
    if name not in args:
        return None
    raw = args[name]
    try:
        value = int(raw) if integer else float(raw)
    except ValueError:
        value = None
    if value is None or not low <= value <= high or (not integer and value <= 0):
        kind = "an integer" if integer else "a number"
        raise Problem(400, "invalid-parameter", "Invalid query parameter",
                      f"{name} must be {kind} in {low:g}..{high:g}")
    return value


def timestamp(args: dict[str, str], name: str) -> str | None:
    """An ISO 8601 time as the views store it (UTC, fixed width)."""
    if name not in args:
        return None
    try:
        moment = datetime.fromisoformat(args[name].replace("Z", "+00:00"))
    except ValueError:
        raise Problem(400, "invalid-parameter", "Invalid query parameter",
                      f"{name} must be an ISO 8601 time") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
