"""Strict JSON, the one parser for what clients send (request bodies, definitions): no
duplicate keys (two readers could take different values), no NaN or Infinity (not JSON), and
no nesting past a limit, refused before the parser recurses into it (deep enough nesting
crashes a recursive parser)."""
from __future__ import annotations

import json
import re
from typing import Any


class NotStrictJson(ValueError):
    """The text is not strict JSON; the message says where or why."""


def loads(text: str, max_depth: int) -> Any:
    """The JSON value of `text`; raises NotStrictJson."""
    _check_depth(text, max_depth)
    try:
        return json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
    except json.JSONDecodeError as error:
        raise NotStrictJson(f"line {error.lineno}, column {error.colno}: {error.msg}") from None
    except (ValueError, RecursionError) as error:  # NotStrictJson from the hooks, big ints
        raise NotStrictJson(str(error) or "not valid JSON") from None


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise NotStrictJson(f"the key {json.dumps(key)[:100]} appears twice in one object")
        result[key] = value
    return result


def _no_constant(name: str) -> Any:
    raise NotStrictJson(f"{name} is not a JSON number")


def _check_depth(text: str, max_depth: int) -> None:
    """Brackets inside strings count too: a cheap over-estimate that no sane document
    reaches."""
    depth = 0
    for match in re.finditer(r"[\[\]{}]", text):
        depth += 1 if match.group() in "[{" else -1
        if depth > max_depth:
            raise NotStrictJson(f"nested deeper than {max_depth} levels")
