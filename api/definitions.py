"""Workflow definitions: the registry (list, show, apply a new version) and the workflows of any
definition (start one for a key, read it by its key)."""
from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, current_app, jsonify

from api import requests_parsing as parse
from api.errors import Problem
from api.orders import install_converters, start
from application.definitions import DefinitionNotFound, Version
from application.definitions_files import load_definition_text
from domain.definitions import DefinitionError, DefinitionInvalid, compile_definition

bp = Blueprint("definitions", __name__)
bp.record_once(install_converters)


def _definitions() -> Any:
    return current_app.extensions["system"].definitions


def _described(version: Version) -> dict[str, Any]:
    return {"version": version.version, "sha256": version.sha256,
            "registeredAt": version.registered_at}


@bp.post("/definitions/<raw_name>/workflows/<any_path:raw_key>")
def start_workflow(raw_name: str, raw_key: str) -> tuple[Response, int] | Response:
    """Starts the definition's workflow for the key (its latest version), as an order's."""
    name, key = parse.definition_name(raw_name), parse.key(raw_key)
    return start(name, key, {"definition": name, "key": key})


@bp.get("/definitions/<raw_name>/workflows/<any_path:raw_key>")
def by_key(raw_name: str, raw_key: str) -> Response:
    """The state view of the definition's workflow for the key."""
    name, key = parse.definition_name(raw_name), parse.key(raw_key)
    parse.query(set())
    state = current_app.extensions["system"].views.state_by_key(name, key)
    if state is None:
        raise Problem(404, "not-found", "Not found", f"no {name} workflow for key {key}")
    return jsonify(state)


@bp.get("/definitions")
def listing() -> Response:
    """Every definition: its name, latest version and description."""
    parse.query(set())
    definitions = _definitions()
    items = []
    for name in definitions.names():
        latest = definitions.get(name)
        items.append({"name": name, "version": latest.version,
                      "description": latest.definition.description})
    return jsonify({"items": items})


@bp.get("/definitions/<raw_name>")
def show(raw_name: str) -> Response:
    """One version of a definition (the latest by default), its document, and every version."""
    name = parse.definition_name(raw_name)
    args = parse.query({"version"})
    number = parse.number(args, "version", 1, 2**31, integer=True)
    versions = _definitions().versions(name)
    if number is not None and number > len(versions):
        raise DefinitionNotFound(name, int(number))
    chosen: Version = versions[-1 if number is None else int(number) - 1]
    return jsonify({"name": name, **_described(chosen),
                    "definition": chosen.definition.document,
                    "versions": [_described(v) for v in versions]})


@bp.put("/definitions/<raw_name>")
def apply(raw_name: str) -> tuple[Response, int]:
    """Registers the body (YAML or JSON) as the definition's next version (operator): 201 a
    new version, 200 when it is the latest already, 422 with every error (nothing registered)."""
    name = parse.definition_name(raw_name)
    parse.query(set())
    kind, value = parse.definition_text()
    document = load_definition_text(value) if kind == "yaml" else value
    _named(document, name)
    definitions = _definitions()
    done = definitions.register(document)
    response = jsonify({"name": name, **_described(definitions.get(name, done.version))})
    response.headers["Location"] = f"/definitions/{name}?version={done.version}"
    return response, 201 if done.created else 200


def _named(document: Any, name: str) -> None:
    """Refuses a document that is not an object, holds text that cannot be stored (a lone
    surrogate: valid as a JSON escape, but no UTF-8 can carry it) or does not carry the path's
    name, with every other error it has (so that one answer lists them all)."""
    if not isinstance(document, dict):
        raise DefinitionInvalid([DefinitionError(
            "(document)", "the top level must be a mapping (a JSON object)")])
    if document.get("name") == name:
        return
    errors = [DefinitionError("name", f"must be {name!r}, the name in the path")]
    try:
        compile_definition(document)
    except DefinitionInvalid as e:
        errors += e.errors
    raise DefinitionInvalid(errors)
