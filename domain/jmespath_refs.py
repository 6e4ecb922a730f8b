"""What a parsed JMESPath expression reads from the context, and whether its functions exist.

jmespath parses `lenght(x)` or `length(a, b)` happily and fails only when it evaluates them; and
it answers None for a field that is not there. Both are found here, from the AST, once, when a
definition is compiled. The AST is jmespath's (`ParsedResult.parsed`): plain dicts with `type`,
`children` and `value`.
"""
from __future__ import annotations

from typing import Any

from jmespath.functions import Functions

Ref = tuple[str, ...]  # a field path from the context's root, e.g. ("steps", "charge", "paymentId")

_FUNCTIONS = Functions().FUNCTION_TABLE
# AST nodes whose first child is evaluated against the current value and the rest against
# each element (or the first child's result): only the first child can refer to the root.
_LEFT_ONLY = {"projection", "value_projection", "filter_projection", "flatten", "pipe",
              "index_expression"}


def function_problem(node: dict[str, Any]) -> str | None:
    """The first unknown function or wrong argument count in the AST, or None."""
    if node.get("type") == "function_expression":
        name, args = node["value"], node["children"]
        entry = _FUNCTIONS.get(name)
        if entry is None:
            return f"unknown function {name}()"
        signature = entry["signature"]
        variadic = bool(signature) and signature[-1].get("variadic", False)
        if len(args) < len(signature) or (not variadic and len(args) > len(signature)):
            wanted = f"at least {len(signature)}" if variadic else str(len(signature))
            return f"{name}() takes {wanted} argument(s), got {len(args)}"
    for child in node.get("children", ()):
        if isinstance(child, dict) and (problem := function_problem(child)) is not None:
            return problem
    return None


def root_refs(node: dict[str, Any]) -> tuple[Ref, ...]:
    """The distinct root-relative field paths the AST reads, in order (`()` for `@`)."""
    return tuple(dict.fromkeys(_walk(node)[0]))


def _walk(node: dict[str, Any]) -> tuple[list[Ref], Ref | None]:
    """(the root-relative refs of `node`, the field path it *is* when it is a plain path).

    Only what is evaluated against the context counts: inside a projection, a filter, a pipe's
    right side or an `&expression`, fields refer to elements, not to the context."""
    kind, children = node["type"], node.get("children", [])
    if kind == "field":
        return [(node["value"],)], (node["value"],)
    if kind in ("current", "identity"):
        return [()], ()
    if kind in ("literal", "index", "slice", "expref"):
        return [], None
    if kind == "subexpression":
        refs, tail = _walk(children[0])
        for child in children[1:]:
            name = _leading_field(child) if tail is not None else None
            if tail is None or name is None:
                break
            tail = (*tail, name)
            refs = [tail]  # a plain path has exactly one ref: the longer one replaces it
            if child["type"] != "field":
                break
        plain = all(child["type"] == "field" for child in children[1:])
        return refs, tail if plain else None
    if kind in _LEFT_ONLY:
        refs, _ = _walk(children[0])
        return refs, None
    refs = [r for child in children if isinstance(child, dict) for r in _walk(child)[0]]
    return refs, None


def _leading_field(node: dict[str, Any]) -> str | None:
    """The field a chained node starts with (`skus` of `skus[0]` or `skus[*].id`), if any."""
    while node["type"] != "field":
        if node["type"] not in _LEFT_ONLY or not node.get("children"):
            return None
        node = node["children"][0]
    return str(node["value"])
