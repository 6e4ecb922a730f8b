"""Parsing what a request carries: ids, JSON bodies and query parameters. Each helper raises a
Problem that names what is wrong, so a view stays a few lines long.

Hostile input stops here: a body that is not strict JSON (duplicate keys, NaN, nesting past
MAX_DEPTH, invalid UTF-8), a repeated or control-character query parameter, a time outside
the calendar. Each is a 4xx, never a 5xx further in."""
from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from typing import Any

from flask import request
from werkzeug.exceptions import RequestEntityTooLarge

from api.errors import Problem
from application import strict_json
from application.workflows import CONTROL
from domain.definitions import language
from domain.definitions.language import MAX_DEPTH as DEFINITION_MAX_DEPTH

ORDER_ID = re.compile(r"[A-Za-z0-9._-]{1,100}")
# Names as the definition language defines them.
DEFINITION_NAME = re.compile(language.DEFINITION_NAME)
SIGNAL_NAME = re.compile(language.STEP_NAME)
STATUS_NAME = re.compile(language.STATUS_NAME)
DEFINITION_TYPES = ("application/json", "application/yaml", "text/yaml")
MAX_DEPTH = 32  # far more than any order needs; deep enough nesting crashes a parser


def order_id(raw: str) -> str:
    """The order id of the path: a key (see `key`), under the order saga's own name."""
    if not _is_key(raw):
        raise Problem(400, "invalid-order-id", "Invalid order id",
                      "an order id is 1 to 100 characters of A-Z a-z 0-9 . _ -, "
                      "not only dots")
    return raw


def key(raw: str) -> str:
    """A workflow's business key, in a path or a query: as an order id (it is one for the
    order saga): 1..100 of A-Z a-z 0-9 . _ - and not only dots."""
    if not _is_key(raw):
        raise Problem(400, "invalid-key", "Invalid key",
                      "a key is 1 to 100 characters of A-Z a-z 0-9 . _ -, not only dots")
    return raw


def _is_key(raw: str) -> bool:
    """1..100 of A-Z a-z 0-9 . _ - and not only dots (`..` would read as a path step to any
    proxy or log reader)."""
    return bool(ORDER_ID.fullmatch(raw)) and bool(raw.strip("."))


def definition_name(raw: str) -> str:
    """A definition's name in a path: [a-z][a-z0-9-]{0,62}, as the language requires."""
    if not DEFINITION_NAME.fullmatch(raw):
        raise Problem(400, "invalid-definition-name", "Invalid definition name",
                      "a definition's name is a-z, then up to 62 of a-z 0-9 -")
    return raw


def signal_name(raw: str) -> str:
    """A signal's name in a path: [a-z][a-z0-9_]{0,62}, as the language requires."""
    if not SIGNAL_NAME.fullmatch(raw):
        raise Problem(400, "invalid-signal-name", "Invalid signal name",
                      "a signal's name is a-z, then up to 62 of a-z 0-9 _")
    return raw


def workflow_id(raw: str) -> uuid.UUID:
    try:
        return uuid.UUID(raw)
    except ValueError:
        raise Problem(404, "not-found", "Not found", "no such workflow") from None


def json_object(slug: str = "invalid-input", title: str = "Invalid input") -> dict[str, Any]:
    """The body as a JSON object; 415 for another media type, 413 past the size limit (also
    when sent chunked), 400 for anything that is not strict JSON, 422 (`slug`) for JSON that
    is not an object."""
    if not request.is_json:
        raise Problem(415, "unsupported-media-type", "Unsupported media type",
                      "send the body as application/json")
    body = parse_json(_body())
    if not isinstance(body, dict):
        raise Problem(422, slug, title, "the body must be a JSON object",
                      errors=[{"path": "(body)", "message": "must be a JSON object"}])
    return body


def definition_text() -> tuple[str, Any]:
    """A definition document's body: ("json", the strict JSON value) for application/json,
    ("yaml", its text) for application/yaml or text/yaml; 415 for another media type, 413
    past the size limit, 400 for a body that is not UTF-8 or not strict JSON."""
    kind = request.mimetype
    if kind not in DEFINITION_TYPES:
        raise Problem(415, "unsupported-media-type", "Unsupported media type",
                      "send the definition as application/yaml, text/yaml or application/json")
    raw = _body()
    if kind == "application/json":  # as deep as the definition language allows
        return "json", parse_json(raw, max_depth=DEFINITION_MAX_DEPTH + 1)
    try:
        return "yaml", raw.decode("utf-8")
    except UnicodeDecodeError:
        raise Problem(400, "malformed-yaml", "Malformed YAML",
                      "the body is not UTF-8 text") from None


def _body() -> bytes:
    """The raw body; 413 at once when Content-Length says too much, and also when a chunked
    body (no Content-Length) reaches the limit: the stream stops there, silently."""
    raw = request.get_data(cache=True)
    limit = request.max_content_length
    if limit is not None and len(raw) >= limit:
        raise RequestEntityTooLarge()
    return raw


def parse_json(raw: bytes, max_depth: int = MAX_DEPTH) -> Any:
    """Strict JSON (application.strict_json) in UTF-8, or a 400 that says what is wrong."""
    try:
        return strict_json.loads(raw.decode("utf-8"), max_depth)
    except UnicodeDecodeError:
        raise Problem(400, "malformed-json", "Malformed JSON",
                      "the body is not UTF-8") from None
    except strict_json.NotStrictJson as e:
        raise Problem(400, "malformed-json", "Malformed JSON",
                      f"the body is not strict JSON: {e}") from None


def query(allowed: set[str]) -> dict[str, str]:
    """The query parameters, refusing any this endpoint does not know, any given twice (the
    first or the last could win, depending on who reads) and control characters."""
    unknown = set(request.args) - allowed
    if unknown:
        raise Problem(400, "unknown-parameter", "Unknown query parameter",
                      f"unknown query parameter(s): {', '.join(sorted(unknown))[:200]}")
    for name in request.args:
        values = request.args.getlist(name)
        if len(values) > 1:
            raise Problem(400, "invalid-parameter", "Invalid query parameter",
                          f"{name} is given {len(values)} times; give it once")
        if CONTROL.search(values[0]):
            raise Problem(400, "invalid-parameter", "Invalid query parameter",
                          f"{name} holds a control character")
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
    if value is None or not low <= value <= high:  # NaN fails the comparison too
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
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        # A time at the calendar's edge with an offset falls outside it in UTC.
        return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    except (ValueError, OverflowError):
        raise Problem(400, "invalid-parameter", "Invalid query parameter",
                      f"{name} must be an ISO 8601 time between years 1 and 9999") from None
