"""The OpenAPI 3 description of the HTTP API, served at GET /openapi.json.

It says what the code does, answer by answer: every status an operation can give (the 4xx of
bad input, 401/403 when tokens are configured, 405 where a malformed id reaches another route,
408/414/431 from the HTTP server, 503 while the store is down), each with its media type,
headers and body. `tests/e2e/test_schemathesis.py` holds the running system to it.

The description is built from the registered definitions (`build_spec`), per request: each
definition's input schema is `components.schemas.<Name>Input` (its JSON Schema 2020-12 said in
OpenAPI 3.0's dialect, `openapi_schema`), and each definition has paths of its own,
`/definitions/<name>/workflows/{key}`, whose start takes that schema as its body. Statuses are
no enum: a definition names its own.
"""
from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache
from typing import Any

from domain.definitions import Definition
from domain.definitions.language import STATUS_NAME

# The statuses every workflow may have; a definition's steps add their own.
FIXED_STATUSES = ["STARTED", "WAITING", "COMPLETED", "COMPENSATING", "FAILED",
                  "COMPENSATION_FAILED", "CANCELLED"]
STATUS_PATTERN = STATUS_NAME  # as the definition language names statuses
DEFINITION_NAME_PATTERN = r"^[a-z][a-z0-9-]{0,62}$"
SIGNAL_NAME_PATTERN = r"^[a-z][a-z0-9_]{0,62}$"

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
KEY_SCHEMA = ORDER_ID_SCHEMA  # a workflow's key is written as an order id is
KEY = _param("key", "path", KEY_SCHEMA, True,
             "the business key: 1 to 100 characters of A-Z a-z 0-9 . _ -, not only dots")
DEFINITION_NAME_SCHEMA = {"type": "string", "pattern": DEFINITION_NAME_PATTERN}
DEFINITION_NAME = _param("name", "path", DEFINITION_NAME_SCHEMA, True,
                         "a definition's name: a-z, then up to 62 of a-z 0-9 -")
WAIT = _param("wait", "query", {"type": "number", "minimum": 0, "maximum": 30},
              description="seconds to wait for a terminal status; 0 waits not at all")

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
NO_DEFINITION = {"404": _problem("No such definition (or version)")}
# An empty id (`/workflows//retry`) leaves a path another route has, without this method.
EMPTY_ID = {"405": _problem("An empty id: the path is another route's, which has no such method",
                            headers={"Allow": _header("the methods of that route")})}


def _answers(own: dict[str, Any], *groups: dict[str, Any]) -> dict[str, Any]:
    """The responses of one operation: its own, the groups' and the server's, by status."""
    merged = dict(own)
    for group in (*groups, SERVER):
        merged.update(group)
    return dict(sorted(merged.items()))



def _nullable_string() -> dict[str, Any]:
    return {"type": "string", "nullable": True}


STATE: dict[str, Any] = {
    "type": "object",
    "description": "A workflow's state view. Besides these fields it has one per kept name of "
                   "its definition (null until kept) and its key under the definition's name "
                   "for it (`orderId`).",
    "required": ["workflowId", "status", "error", "attempts", "createdAt", "updatedAt",
                 "version", "definition", "definitionVersion", "key", "results"],
    "properties": {
        "workflowId": {"type": "string", "format": "uuid"},
        "status": {"type": "string", "pattern": STATUS_PATTERN,
                   "description": f"{', '.join(FIXED_STATUSES)}, or a step's own status"},
        "error": _nullable_string(),
        "attempts": {"type": "object", "additionalProperties": {"type": "integer"}},
        "createdAt": {"type": "string", "format": "date-time"},
        "updatedAt": {"type": "string", "format": "date-time"},
        "version": {"type": "integer", "minimum": 1},
        "definition": {"type": "string", "pattern": DEFINITION_NAME_PATTERN},
        "definitionVersion": {"type": "integer", "minimum": 1},
        "key": {"type": "string"},
        "results": {"type": "object", "description": "per step, what it kept; per wait step, "
                                                     "its signal's body"}}}

AUDIT_EVENT: dict[str, Any] = {
    "type": "object", "required": ["position", "type", "timestamp", "data"],
    "properties": {"position": {"type": "integer", "minimum": 1}, "type": {"type": "string"},
                   "timestamp": {"type": "string", "format": "date-time"},
                   "data": {"type": "object"}}}

DEFINITION_VERSION: dict[str, Any] = {
    "type": "object", "required": ["version", "sha256", "registeredAt"],
    "properties": {"version": {"type": "integer", "minimum": 1},
                   "sha256": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
                   "registeredAt": {"type": "string", "format": "date-time"}}}

STATIC_SCHEMAS: dict[str, Any] = {
    "Accepted": {"type": "object", "required": ["workflowId", "orderId", "status"],
                 "properties": {
                     "workflowId": {"type": "string", "format": "uuid"},
                     "orderId": {"type": "string"},
                     "status": {"type": "string", "pattern": STATUS_PATTERN}}},
    "WorkflowStarted": {"type": "object", "required": ["workflowId", "definition", "key", "status"],
                        "properties": {
                            "workflowId": {"type": "string", "format": "uuid"},
                            "definition": {"type": "string", "pattern": DEFINITION_NAME_PATTERN},
                            "key": {"type": "string"},
                            "status": {"type": "string", "pattern": STATUS_PATTERN}}},
    "State": STATE,
    "AuditEvent": AUDIT_EVENT,
    "FeedEvent": {**AUDIT_EVENT, "required": [*AUDIT_EVENT["required"], "workflowId"],
                  "properties": {**AUDIT_EVENT["properties"],
                                 "workflowId": {"type": "string", "format": "uuid"}}},
    "CommandAccepted": {"type": "object", "required": ["workflowId", "accepted"],
                        "properties": {
                            "workflowId": {"type": "string", "format": "uuid"},
                            "accepted": {"type": "string", "enum": ["retry", "cancel", "signal"]},
                            "signal": {"type": "string", "pattern": SIGNAL_NAME_PATTERN}}},
    "DefinitionSummary": {"type": "object", "required": ["name", "version", "description"],
                          "properties": {
                              "name": {"type": "string", "pattern": DEFINITION_NAME_PATTERN},
                              "version": {"type": "integer", "minimum": 1},
                              "description": {"type": "string"}}},
    "DefinitionVersion": DEFINITION_VERSION,
    "Registered": {**DEFINITION_VERSION, "required": ["name", *DEFINITION_VERSION["required"]],
                   "properties": {"name": {"type": "string", "pattern": DEFINITION_NAME_PATTERN},
                                  **DEFINITION_VERSION["properties"]}},
    "Definition": {
        "type": "object",
        "required": ["name", *DEFINITION_VERSION["required"], "definition", "versions"],
        "properties": {"name": {"type": "string", "pattern": DEFINITION_NAME_PATTERN},
                       **DEFINITION_VERSION["properties"],
                       "definition": {"type": "object",
                                      "description": "the document, as registered"},
                       "versions": {"type": "array", "minItems": 1,
                                    "items": _ref("DefinitionVersion")}}},
    "Problem": {"type": "object", "required": ["type", "title", "status", "detail"],
                "properties": {
                    "type": {"type": "string"}, "title": {"type": "string"},
                    "status": {"type": "integer", "minimum": 400, "maximum": 599},
                    "detail": {"type": "string"},
                    "workflowId": {"type": "string"},
                    "workflowStatus": {"type": "string"},
                    "errors": {"type": "array", "items": {
                        "type": "object", "required": ["path", "message"],
                        "properties": {"path": {"type": "string"},
                                       "message": {"type": "string"}}}}}},
}

INFO = {"title": "Saga orchestrator", "version": "1.0.0",
        "description": "Durable, auditable, compensating workflows, each run by a definition "
                       "(the `order` saga is one). Every error is an application/problem+json "
                       "document (RFC 9457); a method a path does not have is 405 with "
                       "`Allow`. With API_TOKENS or OPERATOR_TOKENS set, all but /health, "
                       "/ready and /metrics need a bearer token. Each registered definition's "
                       "input schema is `components.schemas.<Name>Input`, and the body of "
                       "`POST /definitions/<name>/workflows/{key}`."}

STARTED_ANSWERS = {
    "200": _json({"anyOf": [_ref("State"), _ref("Accepted"), _ref("WorkflowStarted")]},
                 "Started before with the same body (the summary, with Location), or ended "
                 "within `wait` (the state view)",
                 headers={"Location": _header("/workflows/{workflowId}", required=False)}),
    "409": _problem("Started before with another body"),
    "413": _problem("Body over 64 KiB"),
    "415": _problem("Not application/json"),
    "422": _problem("The body breaks the definition's input schema: `errors` names each field "
                    "(`skus[1]`) and what is wrong"),
}


def _started(summary: str) -> dict[str, Any]:
    return {"202": _json(_ref(summary), "Started (and, with `wait`, not ended in time)",
                         headers={"Location": _header("/workflows/{workflowId}"),
                                  "Retry-After": _header(
                                      "seconds; when the `wait` was declined because too many "
                                      "requests wait already", required=False)})}


def _start(summary: str, body: dict[str, Any], what: str,
           params: list[dict[str, Any]]) -> dict[str, Any]:
    return {"summary": what, "parameters": [*params, WAIT],
            "requestBody": {"required": True, "content": {"application/json": {"schema": body}}},
            "responses": _answers({**_started(summary), **STARTED_ANSWERS},
                                  BAD_INPUT, TOKEN, NO_DEFINITION, STORE)}


def _read(params: list[dict[str, Any]], state: dict[str, Any], what: str) -> dict[str, Any]:
    return {"summary": what, "parameters": params,
            "responses": _answers({"200": _json(state, "State")},
                                  BAD_INPUT, TOKEN, NOT_FOUND, STORE)}


# --- a definition's input schema in OpenAPI 3.0's dialect -------------------------------------

_SAME = {"title", "description", "default", "multipleOf", "maximum", "minimum", "maxLength",
         "minLength", "pattern", "maxItems", "minItems", "uniqueItems", "maxProperties",
         "minProperties", "required", "enum", "format"}


def component_name(name: str) -> str:
    """`order` -> `OrderInput`, `car-hire` -> `CarHireInput`."""
    return "".join(part[:1].upper() + part[1:] for part in name.split("-")) + "Input"


def openapi_schema(schema: Any, component: str) -> dict[str, Any]:
    """A JSON Schema 2020-12 (a definition's input) as an OpenAPI 3.0 schema object that
    admits no less: what 3.0 cannot say is left out (the API checks the real schema; a 422
    names what breaks it). `$ref`s to the schema's `$defs` point at `<component>.<def>`,
    which `definition_components` adds. A string with neither pattern nor enum gets
    PLAIN_TEXT's: the API refuses control characters in any input text."""
    if schema is False:
        return {"not": {}}
    if not isinstance(schema, dict):  # True, or what no schema is
        return {}
    out: dict[str, Any] = {}
    for name, value in schema.items():
        if name in _SAME:
            out[name] = value
        elif name == "type":
            types = value if isinstance(value, list) else [value]
            if "null" in types:
                out["nullable"] = True
            types = [t for t in types if t != "null"]
            if len(types) == 1:
                out["type"] = types[0]
        elif name == "const":
            out["enum"] = [value]
        elif name in ("items", "not", "additionalProperties"):
            out[name] = value if isinstance(value, bool) and name == "additionalProperties" \
                else openapi_schema(value, component)
        elif name in ("allOf", "anyOf", "oneOf") and isinstance(value, list):
            out[name] = [openapi_schema(item, component) for item in value]
        elif name == "properties" and isinstance(value, dict):
            out[name] = {k: openapi_schema(v, component) for k, v in value.items()}
        elif name == "$ref" and isinstance(value, str):
            return {"$ref": _ref_of(value, component)}
    for bound, flag in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        if isinstance(schema.get(bound), (int, float)) and not isinstance(schema[bound], bool):
            out[flag], out[bound] = schema[bound], True
    if out.get("type") == "string" and "pattern" not in out and "enum" not in out:
        out["pattern"] = PLAIN_TEXT
    return out


def _ref_of(ref: str, component: str) -> str:
    if ref == "#":
        return f"#/components/schemas/{component}"
    match = re.fullmatch(r"#/(?:\$defs|definitions)/([A-Za-z0-9._-]+)", ref)
    if match:
        return f"#/components/schemas/{component}.{match.group(1)}"
    return "#/components/schemas/Anything"  # a pointer elsewhere: admit anything


def definition_components(definition: Definition, component: str) -> dict[str, Any]:
    """The definition's input schema, and each of its `$defs`, as components."""
    schema = dict(definition.input_schema)
    found = {component: {**openapi_schema(schema, component),
                         "description": f"The input of a `{definition.name}` workflow"}}
    for group in ("$defs", "definitions"):
        for name, sub in (schema.get(group) or {}).items():
            if re.fullmatch(r"[A-Za-z0-9._-]+", name):
                found[f"{component}.{name}"] = openapi_schema(sub, component)
    return found


# --- the whole description --------------------------------------------------------------------

def build_spec(definitions: Iterable[Definition]) -> dict[str, Any]:
    """The OpenAPI description of the API with these definitions registered (their latest
    versions)."""
    return _build(tuple(sorted(definitions, key=lambda d: d.name)))


@lru_cache(maxsize=16)
def _build(definitions: tuple[Definition, ...]) -> dict[str, Any]:
    schemas: dict[str, Any] = {**STATIC_SCHEMAS, "Anything": {}}
    per_definition: dict[str, Any] = {}
    inputs: dict[str, str] = {}
    for definition in definitions:
        component = component_name(definition.name)
        if component in schemas:  # `a-b` and `aB` would share one: fall back to the name
            component = f"{definition.name}.Input"
        inputs[definition.name] = component
        schemas.update(definition_components(definition, component))
        path = f"/definitions/{definition.name}/workflows/{{key}}"
        state = {"allOf": [_ref("State"), {
            "type": "object", "required": [definition.key],
            "properties": {definition.key: {"type": "string"}}}]}
        per_definition[path] = {
            "post": _start("WorkflowStarted", _ref(component),
                           f"Start a `{definition.name}` workflow: {definition.description} "
                           "(idempotent per key; the body is its input)", [KEY]),
            "get": _read([KEY], state, f"The state view of a `{definition.name}` workflow"),
        }
    order_input = _ref(inputs["order"]) if "order" in inputs else {"type": "object"}
    paths: dict[str, Any] = {
        "/orders/{orderId}/orchestrate": {"post": _start(
            "Accepted", order_input, "Start an order's saga (idempotent per order id)",
            [ORDER_ID]) | {"responses": _answers(
                {**_started("Accepted"), **STARTED_ANSWERS},
                BAD_INPUT, TOKEN, EMPTY_ID, NO_DEFINITION, STORE)}},
        "/orders/{orderId}": {"get": _read(
            [ORDER_ID], _ref("State"), "The state view of the order's workflow")},
        "/definitions": {"get": {
            "summary": "Every definition: its name, latest version and description",
            "responses": _answers({"200": _json(
                {"type": "object", "required": ["items"], "properties": {
                    "items": {"type": "array", "items": _ref("DefinitionSummary")}}},
                "The definitions")}, BAD_INPUT, TOKEN, STORE)}},
        "/definitions/{name}": {
            "get": {
                "summary": "A version of a definition (the latest by default) and every "
                           "version's number, hash and time",
                "parameters": [DEFINITION_NAME, _param(
                    "version", "query", {"type": "integer", "minimum": 1,
                                         "maximum": 2**31})],
                "responses": _answers({"200": _json(_ref("Definition"), "The definition")},
                                      BAD_INPUT, TOKEN, NO_DEFINITION, STORE)},
            "put": {
                "summary": "Register a definition's next version (operator); the body is a "
                           "definition document, YAML or JSON, whose `name` is the path's",
                "parameters": [DEFINITION_NAME],
                "requestBody": {"required": True, "content": {
                    media: {"schema": {"type": "object"}}
                    for media in ("application/json", "application/yaml", "text/yaml")}},
                "responses": _answers({
                    "201": _json(_ref("Registered"), "A new version",
                                 headers={"Location": _header("/definitions/{name}?version=N")}),
                    "200": _json(_ref("Registered"), "Unchanged: the latest version has this "
                                 "content", headers={"Location": _header(
                                     "/definitions/{name}?version=N")}),
                    "413": _problem("Body over 64 KiB"),
                    "415": _problem("Not application/yaml, text/yaml or application/json"),
                    "422": _problem("Not a valid definition: `errors` lists every error with "
                                    "its path (`steps[1].undo.path`); nothing was registered")},
                    BAD_INPUT, TOKEN, OPERATOR, STORE)}},
        "/definitions/{name}/workflows/{key}": {
            "post": _start("WorkflowStarted", {"type": "object", "description": (
                "the input: `components.schemas.<Name>Input` of the definition, as on its "
                "own path")}, "Start a workflow of a definition (idempotent per key)",
                [DEFINITION_NAME, KEY]),
            "get": _read([DEFINITION_NAME, KEY], _ref("State"),
                         "The state view of a definition's workflow by its key")},
        **per_definition,
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
        "/workflows/{workflowId}/signals/{signal}": {"post": {
            "summary": "Send a signal to a workflow's wait step (now, or kept for when the "
                       "step comes); the same signal again records nothing",
            "parameters": [WORKFLOW_ID, _param(
                "signal", "path", {"type": "string", "pattern": SIGNAL_NAME_PATTERN}, True,
                "a signal the definition's wait steps take")],
            "requestBody": {"required": True, "content": {"application/json": {"schema": {
                "type": "object",
                "description": "kept as the wait step's result; no key or text in it may hold "
                               "a control character or a lone surrogate (422)"}}}},
            "responses": _answers({
                "202": _json(_ref("CommandAccepted"), "Accepted"),
                "409": _problem("The workflow is terminal, or the wait is over"),
                "413": _problem("Body over 64 KiB"),
                "415": _problem("Not application/json"),
                "422": _problem("A signal the definition does not take, or a body that is not "
                                "an object or holds text no reader takes the same way")},
                BAD_INPUT, TOKEN, NOT_FOUND, STORE)}},
        "/workflows": {"get": {
            "summary": "Search workflows, newest first (operator)",
            "parameters": [
                _param("status", "query", {"type": "string", "pattern": STATUS_PATTERN},
                       description=f"{', '.join(FIXED_STATUSES)}, or a step's status"),
                _param("definition", "query", DEFINITION_NAME_SCHEMA),
                _param("key", "query", KEY_SCHEMA,
                       description="1 to 100 characters of A-Z a-z 0-9 . _ -, not only dots"),
                _param("orderId", "query", ORDER_ID_SCHEMA,
                       description="the order saga's key: definition `order`, this key; not "
                                   "with `key` or another definition (400)"),
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
            "responses": _answers({"200": _json({"type": "object"}, "OpenAPI 3")},
                                  TOKEN, STORE)}},
    }
    return {
        "openapi": "3.0.3",
        "info": INFO,
        "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
                       "schemas": schemas},
        "security": [{"bearer": []}],
        "paths": paths,
    }
