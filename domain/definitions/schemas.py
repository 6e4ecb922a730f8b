"""JSON Schema (2020-12) as definitions use it: strict integers, no remote references, and
errors that name the field they are about.

jsonschema's `"type": "integer"` takes 1999.0; ours takes only an int (never a bool), so a float
never passes as an amount of cents. A missing required property or an extra one is reported by
jsonschema at the parent object; we report it at the field (`address: is required`).
"""
from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import referencing
import referencing.exceptions
from jsonschema import Draft202012Validator, ValidationError, validators
from referencing.jsonschema import DRAFT202012

from domain.definitions.errors import Path

DRAFT_2020_12 = "https://json-schema.org/draft/2020-12/schema"
MAX_MESSAGE = 300  # messages quote the instance: a 64 KiB string stays out of the answer


def _is_integer(checker: Any, value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


StrictValidator = validators.extend(
    Draft202012Validator,
    type_checker=Draft202012Validator.TYPE_CHECKER.redefine("integer", _is_integer),
)
# What a schema is checked against: the 2020-12 meta-schema, with "regex" formats asserted so
# that a bad `pattern` is refused at registration, not met while checking an input.
_META = Draft202012Validator(
    Draft202012Validator.META_SCHEMA, format_checker=Draft202012Validator.FORMAT_CHECKER,
)


def validator_for(schema: dict[str, Any]) -> Any:
    """A strict validator of `schema`. Its registry is empty and retrieves nothing: a `$ref`
    can never make us fetch a URL."""
    return StrictValidator(schema, registry=referencing.Registry())


def errors_of(validator: Any, instance: Any, prefix: Path = ()) -> Iterator[tuple[Path, str]]:
    """Every error of `instance`, as (path, message), each at the field it is about."""
    for error in validator.iter_errors(instance):
        yield from _translate(error, prefix)


def schema_errors(schema: Any, prefix: Path) -> list[tuple[Path, str]]:
    """What is wrong with `schema` as a 2020-12 JSON Schema for a definition's input: its
    meta-schema errors, a `$schema` of another draft, and references that are not local or
    lead nowhere."""
    found = list(errors_of(_META, schema, prefix))
    if found or not isinstance(schema, dict):
        return found
    declared = schema.get("$schema")
    if declared is not None and declared.rstrip("#") != DRAFT_2020_12:
        found.append(((*prefix, "$schema"), f"only {DRAFT_2020_12} is supported"))
    resolver = referencing.Registry().with_resource(
        "urn:definition:input", DRAFT202012.create_resource(schema),
    ).resolver("urn:definition:input")
    for path, ref in _references(schema, ()):
        if not ref.startswith("#"):
            found.append(((*prefix, *path), f"{ref!r}: only local references (#...) are allowed"))
            continue
        try:
            resolver.lookup(ref)
        except referencing.exceptions.Unresolvable:
            found.append(((*prefix, *path), f"{ref!r} leads nowhere in this schema"))
    return found


def _references(node: Any, path: Path) -> Iterator[tuple[Path, str]]:
    if isinstance(node, dict):
        for name, value in node.items():
            if name in ("$ref", "$dynamicRef") and isinstance(value, str):
                yield (*path, name), value
            else:
                yield from _references(value, (*path, name))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _references(value, (*path, i))


def _translate(error: ValidationError, prefix: Path) -> list[tuple[Path, str]]:
    path: Path = (*prefix, *error.absolute_path)
    kind, want = error.validator, _value(error)
    if kind == "required":
        missing = [p for p in want if error.message == f"{p!r} is a required property"]
        return [((*path, name), "is required") for name in missing[:1]] or [(path, error.message)]
    if kind == "additionalProperties" and want is False:
        extras = _extra_properties(error.instance, error.schema)
        return [((*path, name), "unknown field") for name in extras] or [(path, error.message)]
    if "propertyNames" in error.relative_schema_path and isinstance(error.instance, str):
        return [((*path, error.instance), f"is not a valid name ({_message(error)})")]
    return [(path, _message(error))]


def _message(error: ValidationError) -> str:
    """Our wording for the common cases: it says what is expected, in JSON terms, without
    quoting the value back (Python's repr of it, in jsonschema's own messages)."""
    kind, want = error.validator, _value(error)
    plural = "" if want == 1 else "s"
    match kind:
        case "type" if isinstance(want, str):
            return f"must be {'an' if want[0] in 'aeiou' else 'a'} {want}"
        case "type":
            return "must be of type " + " or ".join(map(str, want))
        case "minLength":
            return f"must be at least {want} character{plural} long"
        case "maxLength":
            return f"must be at most {want} character{plural} long"
        case "minItems":
            return f"must have at least {want} item{plural}"
        case "maxItems":
            return f"must have at most {want} item{plural}"
        case "minimum":
            return f"must be at least {want}"
        case "maximum":
            return f"must be at most {want}"
        case "exclusiveMinimum":
            return f"must be greater than {want}"
        case "exclusiveMaximum":
            return f"must be less than {want}"
        case "pattern":
            return f"must match {want}"
        case "enum":
            return _short("must be one of " + ", ".join(json.dumps(v) for v in want))
        case "const":
            return _short(f"must be {json.dumps(want)}")
    return _short(error.message)


def _value(error: ValidationError) -> Any:
    return error.validator_value  # what the failing keyword asked for: its schema value


def _extra_properties(instance: Any, schema: Any) -> list[str]:
    if not isinstance(instance, dict) or not isinstance(schema, dict):
        return []
    known = schema.get("properties") or {}
    patterns = list((schema.get("patternProperties") or {}).keys())
    return [name for name in instance if name not in known
            and not any(re.search(p, name) for p in patterns)]


def _short(message: str) -> str:
    return message if len(message) <= MAX_MESSAGE else message[:MAX_MESSAGE - 1] + "…"
