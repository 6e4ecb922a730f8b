"""The OpenAPI description built from definitions: each input schema said in OpenAPI 3.0's
dialect, admitting no less than the definition does, and each definition's paths."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from api.openapi import PLAIN_TEXT, build_spec, component_name, openapi_schema
from application.definitions_files import compile_definition_text
from domain.definitions import Definition

BUNDLED = Path(__file__).resolve().parents[2] / "definitions"


def bundled() -> list[Definition]:
    return [compile_definition_text(p.read_text(encoding="utf-8"))
            for p in sorted(BUNDLED.glob("*.yaml"))]


def renamed(definition: Definition, name: str) -> Definition:
    document = {**definition.document, "name": name}
    return compile_definition_text(json.dumps(document))


def test_each_definition_has_its_input_schema_and_its_paths() -> None:
    spec = build_spec(bundled())
    schemas, paths = spec["components"]["schemas"], spec["paths"]
    assert {"OrderInput", "TripInput"} <= set(schemas)
    for name, component in (("order", "OrderInput"), ("trip", "TripInput")):
        start = paths[f"/definitions/{name}/workflows/{{key}}"]["post"]
        body = start["requestBody"]["content"]["application/json"]["schema"]
        assert body == {"$ref": f"#/components/schemas/{component}"}
        assert {"200", "202", "404", "409", "422"} <= set(start["responses"])
        assert "get" in paths[f"/definitions/{name}/workflows/{{key}}"]
    order_body = paths["/orders/{orderId}/orchestrate"]["post"]["requestBody"]
    assert order_body["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/OrderInput"}
    assert schemas["OrderInput"]["properties"]["address"]["pattern"] == PLAIN_TEXT
    assert "enum" not in schemas["State"]["properties"]["status"]
    assert set(paths["/definitions/{name}"]) == {"get", "put"}


def test_the_description_follows_the_registered_definitions() -> None:
    order = bundled()[0]
    spec = build_spec([order, renamed(order, "car-hire")])
    assert "CarHireInput" in spec["components"]["schemas"]
    assert "/definitions/car-hire/workflows/{key}" in spec["paths"]
    assert "/definitions/trip/workflows/{key}" not in spec["paths"]
    without_order = build_spec([renamed(order, "other")])
    assert without_order["paths"]["/orders/{orderId}/orchestrate"]["post"]["requestBody"][
        "content"]["application/json"]["schema"] == {"type": "object"}


def test_component_names_and_their_collisions() -> None:
    assert component_name("order") == "OrderInput"
    assert component_name("car-hire") == "CarHireInput"
    order = bundled()[0]
    twins = build_spec([renamed(order, "ab-c"), renamed(order, "ab--c")])
    # by name, "ab--c" comes first and takes the PascalCase name
    assert {"AbCInput", "ab-c.Input"} <= set(twins["components"]["schemas"])


@pytest.mark.parametrize(("schema", "said"), [
    ({"type": ["string", "null"]}, {"type": "string", "nullable": True,
                                    "pattern": PLAIN_TEXT}),
    ({"const": 5}, {"enum": [5]}),
    ({"type": "number", "exclusiveMinimum": 0}, {"type": "number", "minimum": 0,
                                                 "exclusiveMinimum": True}),
    ({"type": "string", "pattern": "^[A-Z]{3}$"}, {"type": "string", "pattern": "^[A-Z]{3}$"}),
    ({"type": "string", "enum": ["a"]}, {"type": "string", "enum": ["a"]}),
    ({"$ref": "#/$defs/money"}, {"$ref": "#/components/schemas/XInput.money"}),
    ({"$ref": "#"}, {"$ref": "#/components/schemas/XInput"}),
    ({"prefixItems": [{"type": "integer"}], "type": "array"}, {"type": "array"}),
    (True, {}),
    (False, {"not": {}}),
])
def test_a_2020_12_schema_in_openapi_3_0(schema: Any, said: dict[str, Any]) -> None:
    assert openapi_schema(schema, "XInput") == said


@pytest.mark.parametrize("value", [
    {"cents": 5, "skus": ["a"], "address": "x"},
    {"from": "LHR", "to": "JFK", "dates": {"depart": "2030-01-01", "return": "2030-01-02"},
     "cents": 1, "car": True, "travellers": 9, "travellerId": "t"},
])
def test_what_a_definition_takes_its_description_takes_too(value: dict[str, Any]) -> None:
    spec = build_spec(bundled())
    for definition in bundled():
        if definition.check_input(value):
            continue
        schema = spec["components"]["schemas"][component_name(definition.name)]
        jsonschema.Draft4Validator(schema).validate(value)  # 3.0's schemas are draft 4's
