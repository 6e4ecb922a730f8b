"""The OpenAPI 3 description of the HTTP API, served at GET /openapi.json.

It says what the code does, answer by answer: every status an operation can give (the 4xx of
bad input, 401/403 when tokens are configured, 405 where a malformed id reaches another route,
408/414/431 from the HTTP server, 503 while the store is down), each with its media type,
headers and body. `tests/e2e/test_schemathesis.py` holds the running system to it.
"""
from __future__ import annotations

from typing import Any

STATUSES = ["STARTED", "CHARGED", "RESERVED", "SHIPPED", "COMPLETED", "COMPENSATING", "FAILED",
            "COMPENSATION_FAILED", "CANCELLED"]

# Text that every reader takes the same way: no C0 or C1 control character.
PLAIN_TEXT = r"^[^\u0000-\u001f\u007f-\u009f]*$"
# 1..100 of A-Z a-z 0-9 . _ - (with minLength/maxLength), not only dots.
ORDER_ID_PATTERN = r"^[.]*[A-Za-z0-9_-][A-Za-z0-9._-]*$"
MAX_EVENT_POSITION = 2**62


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str,
          headers: dict[str, Any] | None = None) -> dict[str, Any]:
    answer: dict[str, Any] = {"description": description,
                              "content": {"application/json": {"schema": schema}}}
    if headers:
        answer["headers"] = headers
    return answer


def _problem(description: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    answer: dict[str, Any] = {
        "description": description,
        "content": {"application/problem+json": {"schema": _ref("Problem")}}}
    if headers:
        answer["headers"] = headers
    return answer


def _header(description: str, required: bool = True) -> dict[str, Any]:
    return {"description": description, "required": required, "schema": {"type": "string"}}


def _param(name: str, where: str, schema: dict[str, Any], required: bool = False,
           description: str = "") -> dict[str, Any]:
    return {"name": name, "in": where, "required": required, "schema": schema,
            "description": description}


ORDER_ID_SCHEMA = {"type": "string", "minLength": 1, "maxLength": 100,
                   "pattern": ORDER_ID_PATTERN}
ORDER_ID = _param("orderId", "path", ORDER_ID_SCHEMA, True,
                  "1 to 100 characters of A-Z a-z 0-9 . _ -, not only dots")
WORKFLOW_ID = _param("workflowId", "path", {"type": "string", "format": "uuid"}, True,
                     "anything else is 404")

# Answers an operation gives by what it is rather than by what it does.
SERVER = {  # the HTTP server refuses these before the app sees them; any operation
    "408": _problem("The request's head or body took too long to arrive (`orchestrator api`)"),
    "414": _problem("Request line (URI) too long"),
    "431": _problem("Request header fields too large, or too many"),
}
BAD_INPUT = {"400": _problem("Bad input: an unknown, repeated or invalid query parameter, a "
                             "bad id, or a value the store cannot take")}
TOKEN = {"401": _problem("No or unknown bearer token (when tokens are configured)",
                         headers={"WWW-Authenticate": _header("Bearer realm")})}
OPERATOR = {"403": _problem("A client token on an operator endpoint")}
STORE = {"503": _problem("The event store or the views cannot be reached; retry shortly")}
NOT_FOUND = {"404": _problem("No such workflow or order")}
# An empty id (`/workflows//retry`) leaves a path another route has, without this method.
EMPTY_ID = {"405": _problem("An empty id: the path is another route's, which has no such method",
                            headers={"Allow": _header("the methods of that route")})}


def _answers(own: dict[str, Any], *groups: dict[str, Any]) -> dict[str, Any]:
    """The responses of one operation: its own, the groups' and the server's, by status."""
    merged = dict(own)
    for group in (*groups, SERVER):
        merged.update(group)
    return dict(sorted(merged.items()))


STATE: dict[str, Any] = {
    "type": "object",
    "required": ["workflowId", "orderId", "status", "paymentId", "reservationId", "shipmentId",
                 "error", "attempts", "createdAt", "updatedAt", "version"],
    "properties": {
        "workflowId": {"type": "string", "format": "uuid"},
        "orderId": {"type": "string"},
        "status": {"type": "string", "enum": STATUSES},
        "paymentId": {"type": "string", "nullable": True},
        "reservationId": {"type": "string", "nullable": True},
        "shipmentId": {"type": "string", "nullable": True},
        "error": {"type": "string", "nullable": True},
        "attempts": {"type": "object", "additionalProperties": {"type": "integer"}},
        "createdAt": {"type": "string", "format": "date-time"},
        "updatedAt": {"type": "string", "format": "date-time"},
        "version": {"type": "integer", "minimum": 1}}}

AUDIT_EVENT: dict[str, Any] = {
    "type": "object", "required": ["position", "type", "timestamp", "data"],
    "properties": {"position": {"type": "integer", "minimum": 1}, "type": {"type": "string"},
                   "timestamp": {"type": "string", "format": "date-time"},
                   "data": {"type": "object"}}}

SPEC: dict[str, Any] = {
    "openapi": "3.0.3",
    "info": {"title": "Saga orchestrator", "version": "1.0.0",
             "description": "Durable, auditable, compensating order workflows. Every error is "
                            "an application/problem+json document (RFC 9457); a method a path "
                            "does not have is 405 with `Allow`. With API_TOKENS or "
                            "OPERATOR_TOKENS set, all but /health, /ready and /metrics need a "
                            "bearer token."},
    "components": {
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        "schemas": {
            "Order": {"type": "object", "required": ["cents", "skus", "address"], "properties": {
                "cents": {"type": "integer", "minimum": 1, "maximum": 10**12},
                "skus": {"type": "array", "minItems": 1, "maxItems": 100,
                         "items": {"type": "string", "minLength": 1, "maxLength": 100,
                                   "pattern": PLAIN_TEXT}},
                "address": {"type": "string", "minLength": 1, "maxLength": 500,
                            "pattern": PLAIN_TEXT}}},
            "Accepted": {"type": "object", "required": ["workflowId", "orderId", "status"],
                         "properties": {
                             "workflowId": {"type": "string", "format": "uuid"},
                             "orderId": {"type": "string"},
                             "status": {"type": "string", "enum": STATUSES}}},
            "State": STATE,
            "AuditEvent": AUDIT_EVENT,
            "FeedEvent": {**AUDIT_EVENT, "required": [*AUDIT_EVENT["required"], "workflowId"],
                          "properties": {**AUDIT_EVENT["properties"],
                                         "workflowId": {"type": "string", "format": "uuid"}}},
            "CommandAccepted": {"type": "object", "required": ["workflowId", "accepted"],
                                "properties": {
                                    "workflowId": {"type": "string", "format": "uuid"},
                                    "accepted": {"type": "string", "enum": ["retry", "cancel"]}}},
            "Problem": {"type": "object", "required": ["type", "title", "status", "detail"],
                        "properties": {
                            "type": {"type": "string"}, "title": {"type": "string"},
                            "status": {"type": "integer", "minimum": 400, "maximum": 599},
                            "detail": {"type": "string"},
                            "workflowId": {"type": "string"},
                            "workflowStatus": {"type": "string", "enum": STATUSES},
                            "errors": {"type": "array", "items": {
                                "type": "object", "required": ["path", "message"],
                                "properties": {"path": {"type": "string"},
                                               "message": {"type": "string"}}}}}},
        },
    },
    "security": [{"bearer": []}],
    "paths": {
        "/orders/{orderId}/orchestrate": {"post": {
            "summary": "Start an order's saga (idempotent per order id)",
            "parameters": [ORDER_ID, _param(
                "wait", "query", {"type": "number", "minimum": 0, "maximum": 30},
                description="seconds to wait for a terminal status; 0 waits not at all")],
            "requestBody": {"required": True,
                            "content": {"application/json": {"schema": _ref("Order")}}},
            "responses": _answers({
                "202": _json(_ref("Accepted"), "Started (and, with `wait`, not ended in time)",
                             headers={"Location": _header("/workflows/{workflowId}"),
                                      "Retry-After": _header(
                                          "seconds; when the `wait` was declined because too "
                                          "many requests wait already", required=False)}),
                "200": _json({"anyOf": [_ref("State"), _ref("Accepted")]},
                             "Started before with the same body (the summary, with Location), "
                             "or ended within `wait` (the state view)",
                             headers={"Location": _header("/workflows/{workflowId}",
                                                          required=False)}),
                "409": _problem("Started before with another body"),
                "413": _problem("Body over 64 KiB"),
                "415": _problem("Not application/json"),
                "422": _problem("Invalid order: a field missing, of the wrong type or out of "
                                "range")},
                BAD_INPUT, TOKEN, EMPTY_ID, STORE)}},
        "/orders/{orderId}": {"get": {
            "summary": "The state view of the order's workflow", "parameters": [ORDER_ID],
            "responses": _answers({"200": _json(_ref("State"), "State")},
                                  BAD_INPUT, TOKEN, NOT_FOUND, STORE)}},
        "/workflows/{workflowId}": {"get": {
            "summary": "A workflow's state view", "parameters": [WORKFLOW_ID],
            "responses": _answers({
                "200": _json(_ref("State"), "State"),
                "405": _problem("The id holds a slash and names a POST route (`x/retry`)",
                                headers={"Allow": _header("the methods of that route")})},
                BAD_INPUT, TOKEN, NOT_FOUND, STORE)}},
        "/workflows/{workflowId}/audit": {"get": {
            "summary": "A workflow's events in order", "parameters": [WORKFLOW_ID],
            "responses": _answers({"200": _json(
                {"type": "object", "required": ["workflowId", "events"], "properties": {
                    "workflowId": {"type": "string", "format": "uuid"},
                    "events": {"type": "array", "minItems": 1,
                               "items": _ref("AuditEvent")}}}, "Audit")},
                BAD_INPUT, TOKEN, NOT_FOUND, STORE)}},
        "/workflows": {"get": {
            "summary": "Search workflows, newest first (operator)",
            "parameters": [
                _param("status", "query", {"type": "string", "enum": STATUSES}),
                _param("orderId", "query", ORDER_ID_SCHEMA,
                       description="1 to 100 characters of A-Z a-z 0-9 . _ -, not only dots"),
                _param("createdAfter", "query", {"type": "string", "format": "date-time"},
                       description="ISO 8601, in years 1 to 9999 once in UTC"),
                _param("createdBefore", "query", {"type": "string", "format": "date-time"},
                       description="ISO 8601, in years 1 to 9999 once in UTC"),
                _param("limit", "query", {"type": "integer", "minimum": 1, "maximum": 500}),
                _param("after", "query",
                       {"type": "string", "minLength": 1, "pattern": "^[A-Za-z0-9_-]+$"},
                       description="the `next` of an earlier page; any other value is 400")],
            "responses": _answers({"200": _json(
                {"type": "object", "required": ["items", "next"], "properties": {
                    "items": {"type": "array", "items": _ref("State")},
                    "next": {"type": "string", "nullable": True}}}, "A page")},
                BAD_INPUT, TOKEN, OPERATOR, STORE)}},
        "/workflows/{workflowId}/retry": {"post": {
            "summary": "Resume a COMPENSATION_FAILED or stuck workflow (operator)",
            "parameters": [WORKFLOW_ID, _param(
                "reason", "query", {"type": "string", "pattern": PLAIN_TEXT},
                description="recorded with the retry (its first 500 characters)")],
            "responses": _answers({"202": _json(_ref("CommandAccepted"), "Accepted"),
                                   "409": _problem("Status does not allow it")},
                                  BAD_INPUT, TOKEN, OPERATOR, NOT_FOUND, EMPTY_ID, STORE)}},
        "/workflows/{workflowId}/cancel": {"post": {
            "summary": "Cancel a running workflow: compensate, end CANCELLED (operator)",
            "parameters": [WORKFLOW_ID],
            "responses": _answers({"202": _json(_ref("CommandAccepted"), "Accepted"),
                                   "409": _problem("Already terminal")},
                                  BAD_INPUT, TOKEN, OPERATOR, NOT_FOUND, EMPTY_ID, STORE)}},
        "/events": {"get": {
            "summary": "Every event of every workflow in store order (operator)",
            "parameters": [
                _param("after", "query",
                       {"type": "integer", "minimum": 0, "maximum": MAX_EVENT_POSITION},
                       description="a store position; the events after it"),
                _param("limit", "query", {"type": "integer", "minimum": 1, "maximum": 1000})],
            "responses": _answers({"200": _json(
                {"type": "object", "required": ["events", "next"], "properties": {
                    "events": {"type": "array", "items": _ref("FeedEvent")},
                    "next": {"type": "integer", "minimum": 0,
                             "maximum": MAX_EVENT_POSITION}}}, "Events")},
                BAD_INPUT, TOKEN, OPERATOR, STORE)}},
        "/health": {"get": {
            "summary": "Liveness", "security": [],
            "responses": _answers({"200": _json(
                {"type": "object", "required": ["status"],
                 "properties": {"status": {"type": "string", "enum": ["ok"]}}}, "Alive")})}},
        "/ready": {"get": {
            "summary": "Readiness", "security": [],
            "responses": _answers({
                "200": _json({"type": "object", "required": ["status"],
                              "properties": {"status": {"type": "string", "enum": ["ready"]}}},
                             "Store reachable"),
                "503": _problem("Store unreachable")})}},
        "/metrics": {"get": {
            "summary": "Prometheus metrics", "security": [],
            "responses": _answers({
                "200": {"description": "Prometheus text format",
                        "content": {"text/plain": {"schema": {"type": "string"}}}}},
                STORE)}},
        "/openapi.json": {"get": {
            "summary": "This document",
            "responses": _answers({"200": _json({"type": "object"}, "OpenAPI 3")}, TOKEN)}},
    },
}
