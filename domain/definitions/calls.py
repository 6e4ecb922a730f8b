"""Compiling a call (a step's `call:` or an `undo:`): its path, query and body templates.

A path must start with a literal `/`: the participant's base URL comes from the deployment,
and a definition can only name a path on it, never a host, a scheme or a whole URL (nor a
`//host` path, nor a path that an input value could choose, since every interpolated value is
URL-encoded as one segment).
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from domain.definitions.errors import Path
from domain.definitions.model import CallSpec
from domain.definitions.scope import Scope
from domain.expressions import (
    ExpressionError,
    Interpolation,
    ListTemplate,
    Literal,
    MappingTemplate,
    Template,
    compile_template,
)

Errors = list[tuple[Path, str]]
_NOT_IN_PATH = re.compile(r"[?#\\\s\x00-\x1f\x7f]")


def compile_call(raw: Mapping[str, Any], at: Path, scope: Scope, errors: Errors) -> CallSpec:
    """The call described by `raw` (method, path, query, body), its errors added to `errors`
    with their paths under `at`."""
    method = raw.get("method", "POST")
    method = method if isinstance(method, str) else "POST"
    path = _path(raw.get("path"), (*at, "path"), scope, errors)
    query_raw = raw.get("query")
    query = tuple(
        (name, compile_value(value, (*at, "query", name), scope, errors))
        for name, value in (query_raw.items() if isinstance(query_raw, Mapping) else ())
    )
    body = compile_value(raw["body"], (*at, "body"), scope, errors) if "body" in raw else None
    if method == "GET" and body is not None:
        errors.append(((*at, "body"), "a GET call has no body"))
    return CallSpec(method, path, query, body)


def compile_value(value: Any, at: Path, scope: Scope, errors: Errors) -> Template:
    """A body or query template; each string's errors are reported at that string's path."""
    if isinstance(value, Mapping):
        return MappingTemplate(tuple(
            (name, compile_value(item, (*at, name), scope, errors)) for name, item in value.items()
        ))
    if isinstance(value, list):
        return ListTemplate(tuple(
            compile_value(item, (*at, i), scope, errors) for i, item in enumerate(value)
        ))
    if not isinstance(value, str):
        return Literal(value)
    try:
        template = compile_template(value)
    except ExpressionError as error:
        errors.append((at, str(error)))
        return Literal(None)
    errors.extend((at, problem) for problem in scope.problems(template.refs()))
    return template


def _path(value: Any, at: Path, scope: Scope, errors: Errors) -> Template:
    if not isinstance(value, str):
        return Literal("")  # the language schema has said what is wrong
    try:
        template = compile_template(value, path=True)
    except ExpressionError as error:
        errors.append((at, str(error)))
        return Literal("")
    errors.extend((at, problem) for problem in scope.problems(template.refs()))
    parts = template.parts if isinstance(template, Interpolation) else ()
    start = template.leading_text if isinstance(template, Interpolation) else ""
    if not start.startswith("/"):
        errors.append((at, "must start with '/': a definition names a path, never a host or "
                           "URL (participant URLs come from the environment)"))
    elif start.startswith("//"):
        errors.append((at, "must not start with '//' (that would name a host)"))
    if _NOT_IN_PATH.search("".join(p for p in parts if isinstance(p, str))):
        errors.append((at, "no '?', '#', '\\', spaces or control characters in a path "
                           "(parameters go in query:)"))
    skeleton = "".join(p if isinstance(p, str) else "x" for p in parts)
    if any(segment in (".", "..") for segment in skeleton.split("/")):
        errors.append((at, "no '.' or '..' segments in a path"))
    return template
