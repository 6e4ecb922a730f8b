"""The OpenAPI 3 description of the HTTP API (CONTRACT.md section 2)."""
from __future__ import annotations

from typing import Any

STATUSES = ["STARTED", "CHARGED", "RESERVED", "SHIPPED", "COMPLETED", "COMPENSATING", "FAILED",
            "COMPENSATION_FAILED", "CANCELLED"]


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _problem(description: str) -> dict[str, Any]:
    return {"description": description,
            "content": {"application/problem+json": {"schema": _ref("Problem")}}}


def _param(name: str, where: str, schema: dict[str, Any], required: bool = False,
           description: str = "") -> dict[str, Any]:
    return {"name": name, "in": where, "required": required, "schema": schema,
            "description": description}


ORDER_ID = _param("orderId", "path", {"type": "string", "pattern": "^[A-Za-z0-9._-]{1,100}$"},
                  True)
WORKFLOW_ID = _param("workflowId", "path", {"type": "string", "format": "uuid"}, True)
ERRORS = {"400": _problem("Bad input"), "401": _problem("No or unknown token"),
          "403": _problem("Operator token needed"), "404": _problem("Not found")}

SPEC: dict[str, Any] = {
    "openapi": "3.0.3",
    "info": {"title": "Saga orchestrator", "version": "1.0.0",
             "description": "Durable, auditable, compensating order workflows."},
    "components": {
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        "schemas": {
            "Order": {"type": "object", "required": ["cents", "skus", "address"], "properties": {
                "cents": {"type": "integer", "minimum": 1, "maximum": 10**12},
                "skus": {"type": "array", "minItems": 1, "maxItems": 100,
                         "items": {"type": "string", "minLength": 1, "maxLength": 100}},
                "address": {"type": "string", "minLength": 1, "maxLength": 500}}},
            "Accepted": {"type": "object", "properties": {
                "workflowId": {"type": "string"}, "orderId": {"type": "string"},
                "status": {"type": "string", "enum": STATUSES}}},
            "State": {"type": "object", "properties": {
                "workflowId": {"type": "string"}, "orderId": {"type": "string"},
                "status": {"type": "string", "enum": STATUSES},
                "paymentId": {"type": "string", "nullable": True},
                "reservationId": {"type": "string", "nullable": True},
                "shipmentId": {"type": "string", "nullable": True},
                "error": {"type": "string", "nullable": True},
                "attempts": {"type": "object", "additionalProperties": {"type": "integer"}},
                "createdAt": {"type": "string", "format": "date-time"},
                "updatedAt": {"type": "string", "format": "date-time"},
                "version": {"type": "integer"}}},
            "Event": {"type": "object", "properties": {
                "position": {"type": "integer"}, "workflowId": {"type": "string"},
                "type": {"type": "string"}, "timestamp": {"type": "string"},
                "data": {"type": "object"}}},
            "Problem": {"type": "object", "properties": {
                "type": {"type": "string"}, "title": {"type": "string"},
                "status": {"type": "integer"}, "detail": {"type": "string"}}},
        },
    },
    "security": [{"bearer": []}],
    "paths": {
        "/orders/{orderId}/orchestrate": {"post": {
            "summary": "Start an order's saga (idempotent per order id)",
            "parameters": [ORDER_ID, _param("wait", "query",
                                            {"type": "number", "minimum": 0, "maximum": 30},
                                            description="seconds to wait for a terminal status")],
            "requestBody": {"required": True,
                            "content": {"application/json": {"schema": _ref("Order")}}},
            "responses": {"202": _json(_ref("Accepted"), "Started"),
                          "200": _json(_ref("State"), "Already started, or ended within wait"),
                          "409": _problem("Started before with another body"),
                          "413": _problem("Body over 64 KiB"),
                          "415": _problem("Not application/json"),
                          "422": _problem("Invalid order"), **ERRORS}}},
        "/orders/{orderId}": {"get": {
            "summary": "The state view of the order's workflow", "parameters": [ORDER_ID],
            "responses": {"200": _json(_ref("State"), "State"), **ERRORS}}},
        "/workflows/{workflowId}": {"get": {
            "summary": "A workflow's state view", "parameters": [WORKFLOW_ID],
            "responses": {"200": _json(_ref("State"), "State"), **ERRORS}}},
        "/workflows/{workflowId}/audit": {"get": {
            "summary": "A workflow's events in order", "parameters": [WORKFLOW_ID],
            "responses": {"200": _json({"type": "object", "properties": {
                "workflowId": {"type": "string"},
                "events": {"type": "array", "items": _ref("Event")}}}, "Audit"), **ERRORS}}},
        "/workflows": {"get": {
            "summary": "Search workflows, newest first (operator)",
            "parameters": [
                _param("status", "query", {"type": "string", "enum": STATUSES}),
                _param("orderId", "query", {"type": "string"}),
                _param("createdAfter", "query", {"type": "string", "format": "date-time"}),
                _param("createdBefore", "query", {"type": "string", "format": "date-time"}),
                _param("limit", "query", {"type": "integer", "minimum": 1, "maximum": 500}),
                _param("after", "query", {"type": "string"}, description="cursor")],
            "responses": {"200": _json({"type": "object", "properties": {
                "items": {"type": "array", "items": _ref("State")},
                "next": {"type": "string", "nullable": True}}}, "A page"), **ERRORS}}},
        "/workflows/{workflowId}/retry": {"post": {
            "summary": "Resume a COMPENSATION_FAILED or stuck workflow (operator)",
            "parameters": [WORKFLOW_ID, _param("reason", "query", {"type": "string"})],
            "responses": {"202": _json({"type": "object"}, "Accepted"),
                          "409": _problem("Status does not allow it"), **ERRORS}}},
        "/workflows/{workflowId}/cancel": {"post": {
            "summary": "Cancel a running workflow: compensate, end CANCELLED (operator)",
            "parameters": [WORKFLOW_ID],
            "responses": {"202": _json({"type": "object"}, "Accepted"),
                          "409": _problem("Already terminal"), **ERRORS}}},
        "/events": {"get": {
            "summary": "Every event of every workflow in store order (operator)",
            "parameters": [_param("after", "query", {"type": "integer", "minimum": 0}),
                           _param("limit", "query", {"type": "integer", "minimum": 1,
                                                     "maximum": 1000})],
            "responses": {"200": _json({"type": "object", "properties": {
                "events": {"type": "array", "items": _ref("Event")},
                "next": {"type": "integer"}}}, "Events"), **ERRORS}}},
        "/health": {"get": {"summary": "Liveness", "security": [],
                            "responses": {"200": {"description": "Alive"}}}},
        "/ready": {"get": {"summary": "Readiness", "security": [],
                           "responses": {"200": {"description": "Store reachable"},
                                         "503": _problem("Store unreachable")}}},
        "/metrics": {"get": {"summary": "Prometheus metrics", "security": [],
                             "responses": {"200": {"description": "Text format"}}}},
        "/openapi.json": {"get": {"summary": "This document",
                                  "responses": {"200": {"description": "OpenAPI 3"}}}},
    },
}
