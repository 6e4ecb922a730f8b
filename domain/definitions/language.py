"""The definition language itself, as a JSON Schema (2020-12), and the names and bounds in it.

The schema holds everything that is a matter of shape; what needs the whole document (do the
referenced participants and steps exist, are names unique) is checked by the compiler.
"""
from __future__ import annotations

from typing import Any

DEFINITION_NAME = r"^[a-z][a-z0-9-]{0,62}$"
STEP_NAME = r"^[a-z][a-z0-9_]{0,62}$"  # steps, undos, waits, signals and participants
FIELD_NAME = r"^[a-z][A-Za-z0-9_]{0,62}$"  # `key` and kept names: state-view fields
EVENT_NAME = r"^[A-Z][A-Za-z0-9]{0,62}$"
STATUS_NAME = r"^[A-Z][A-Z0-9_]{0,62}$"
QUERY_NAME = r"^[A-Za-z0-9_.~-]{1,100}$"
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")

MAX_CALL_TIMEOUT_S = 300
MAX_ATTEMPTS = 100
MAX_BACKOFF_S = 3600
MAX_WAIT_S = 30 * 86400
MAX_DEADLINE_S = 365 * 86400
MAX_STEPS = 100
MAX_BRANCHES = 20
MAX_DEPTH = 64  # nesting of the whole document

# The state view's own fields: neither `key:` nor a kept name may shadow one of them.
VIEW_FIELDS = frozenset({
    "workflowId", "status", "error", "attempts", "createdAt", "updatedAt", "version",
    "definition", "definitionVersion", "key", "results",
})
# Statuses and event names the interpreter gives itself; a step may not claim one.
RESERVED_STATUSES = frozenset({
    "STARTED", "WAITING", "COMPLETED", "COMPENSATING", "FAILED", "COMPENSATION_FAILED",
    "CANCELLED",
})
RESERVED_EVENTS = frozenset({
    "Started", "Completed", "StepFailed", "StepSkipped", "CompensationStarted", "Compensated",
    "CompensationFailed", "Failed", "CancelRequested", "Cancelled", "RetryRequested",
    "Signalled", "Waiting", "StepSucceeded",
})
# Fields that would name a host: refused with a reason rather than as merely unknown.
HOST_WORDS = frozenset({"url", "base_url", "baseUrl", "host", "hostname", "scheme", "port"})


def _name(pattern: str) -> dict[str, Any]:
    return {"type": "string", "pattern": pattern}


def _number(maximum: float, integer: bool = False) -> dict[str, Any]:
    if integer:
        return {"type": "integer", "minimum": 1, "maximum": maximum}
    return {"type": "number", "exclusiveMinimum": 0, "maximum": maximum}


_CALL = {
    "method": {"enum": list(METHODS)},
    "path": {"type": "string", "minLength": 1, "maxLength": 2000},
    "query": {
        "type": "object",
        "propertyNames": {"pattern": QUERY_NAME},
        "additionalProperties": {"type": ["string", "number", "boolean"]},
    },
    "body": {},
}
_RETRY = {
    "timeout_s": _number(MAX_CALL_TIMEOUT_S),
    "attempts": _number(MAX_ATTEMPTS, integer=True),
    "backoff_base_s": _number(MAX_BACKOFF_S),
    "backoff_cap_s": _number(MAX_BACKOFF_S),
}
_STEP_COMMON = {
    "name": _name(STEP_NAME),
    "event": _name(EVENT_NAME),
    "status": _name(STATUS_NAME),
    "when": {"type": "string", "minLength": 1, "maxLength": 2000},
}

LANGUAGE_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "additionalProperties": False,
    "required": ["name", "key", "input", "steps"],
    "properties": {
        "name": _name(DEFINITION_NAME),
        "description": {"type": "string", "maxLength": 2000},
        "key": _name(FIELD_NAME),
        "input": {"type": "object"},  # a JSON Schema itself: checked against its meta-schema
        "participants": {
            "type": "object",
            "propertyNames": {"pattern": STEP_NAME},
            "additionalProperties": {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    "bulkhead": {"type": "integer", "minimum": 1, "maximum": 1024},
                    "rate_limit": _number(100_000),
                },
            },
        },
        "steps": {
            "type": "array", "minItems": 1, "maxItems": MAX_STEPS,
            "items": {"$ref": "#/$defs/entry"},
        },
        "deadline_s": _number(MAX_DEADLINE_S),
    },
    "$defs": {
        # The kind of an entry is told by its fields, so that errors come from that kind's
        # schema alone (a oneOf would only say "not valid under any").
        "entry": {
            "if": {"type": "object", "required": ["parallel"]},
            "then": {"$ref": "#/$defs/parallel"},
            "else": {
                "if": {"type": "object", "required": ["wait"]},
                "then": {"$ref": "#/$defs/wait"},
                "else": {"$ref": "#/$defs/step"},
            },
        },
        "step": {
            "type": "object",
            "additionalProperties": False,
            "required": ["name", "participant", "call"],
            "properties": {
                **_STEP_COMMON,
                "participant": _name(STEP_NAME),
                "call": {
                    "type": "object", "additionalProperties": False, "required": ["path"],
                    "properties": _CALL,
                },
                "keep": {
                    "type": "object",
                    "propertyNames": {"pattern": FIELD_NAME},
                    "additionalProperties": {"type": "string", "minLength": 1, "maxLength": 2000},
                },
                **_RETRY,
                "undo": {
                    "type": "object", "additionalProperties": False,
                    "required": ["name", "path"],
                    "properties": {"name": _name(STEP_NAME), **_CALL, **_RETRY},
                },
            },
        },
        "wait": {
            "type": "object",
            "additionalProperties": False,
            "required": ["name", "wait"],
            "properties": {
                **_STEP_COMMON,
                "wait": {
                    "type": "object", "additionalProperties": False,
                    "required": ["signal", "reject", "timeout_s"],
                    "properties": {
                        "signal": _name(STEP_NAME),
                        "reject": _name(STEP_NAME),
                        "timeout_s": _number(MAX_WAIT_S),
                    },
                },
            },
        },
        "parallel": {
            "type": "object",
            "additionalProperties": False,
            "required": ["parallel"],
            "properties": {
                "parallel": {
                    "type": "array", "minItems": 2, "maxItems": MAX_BRANCHES,
                    "items": {"$ref": "#/$defs/step"},
                },
            },
        },
    },
}
