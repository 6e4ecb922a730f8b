"""Definition documents as text (a file's content, a PUT body): YAML or JSON in, a plain dict out.

Here rather than in the domain because parsing a text format is how definitions travel, not
what they mean: the domain stays stdlib, jmespath and jsonschema, and the CLI (`definitions
apply FILE`) and the API (`PUT /definitions/{name}`) both reach this through the application.
Reading files is the caller's business: this takes text.

What is refused, as DefinitionInvalid at `(document)` with the line where it is known:
- anything but a mapping at the top level; more than one document;
- duplicate keys (a YAML parser would silently keep the last one), keys that are not strings,
  merge keys (`<<`);
- anchors and aliases (`&a`, `*a`): one alias can stand for a billion nodes;
- tags other than YAML's plain JSON types (no `!!python/...`, `!!binary`, `!!set`), NaN and
  infinities; nesting deeper than MAX_DEPTH levels; text over MAX_TEXT characters.

YAML is read as JSON-compatible YAML 1.2 would be: only `true`/`false` are booleans (`on`,
`yes` and `no` stay strings) and dates stay strings. Text that starts with `{` is parsed as
JSON, because YAML 1.1 reads some JSON differently (`1e5` is a string there).
"""
from __future__ import annotations

import re
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from application import strict_json
from domain.definitions import Definition, DefinitionError, DefinitionInvalid, compile_definition
from domain.definitions.language import MAX_DEPTH

MAX_TEXT = 1_000_000
_TAG = "tag:yaml.org,2002:"
_SCALARS = {f"{_TAG}{t}" for t in ("str", "int", "float", "bool", "null")}
_NOT_A_NUMBER = re.compile(r"^[-+]?\.(?:inf|Inf|INF|nan|NaN|NAN)$")


def _json_like_resolvers() -> dict[Any, list[tuple[str, re.Pattern[str]]]]:
    table: dict[Any, list[tuple[str, re.Pattern[str]]]] = {}
    for first, entries in yaml.SafeLoader.yaml_implicit_resolvers.items():
        kept = [(t, rx) for t, rx in entries if t not in (f"{_TAG}bool", f"{_TAG}timestamp")]
        if kept:
            table[first] = kept
    boolean = re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$")
    for first in "tTfF":
        table.setdefault(first, []).append((f"{_TAG}bool", boolean))
    return table


# libyaml's parser when the wheel has it (about 10x faster), the pure-Python one otherwise
_Base: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _DefinitionLoader(_Base):
    """A safe loader that checks the composed node graph before building anything from it."""

    yaml_implicit_resolvers = _json_like_resolvers()

    def construct_document(self, node: Node) -> Any:
        problems = _node_problems(node)
        if problems:
            raise DefinitionInvalid([DefinitionError("(document)", p) for p in problems])
        return super().construct_document(node)


def load_definition_text(text: str) -> dict[str, Any]:
    """The document in `text` (YAML, or JSON), as a plain dict. Raises DefinitionInvalid."""
    if len(text) > MAX_TEXT:
        raise _invalid(f"longer than {MAX_TEXT} characters")
    try:
        document = _json(text) if text.lstrip("\ufeff \t\r\n").startswith("{") else _yaml(text)
    except RecursionError:
        raise _invalid(f"nested deeper than {MAX_DEPTH} levels") from None
    if document is None:
        raise _invalid("empty document")
    if not isinstance(document, dict):
        raise _invalid("the top level must be a mapping (a JSON object)")
    return document


def compile_definition_text(text: str) -> Definition:
    """Loads and compiles a definition's text in one go. Raises DefinitionInvalid."""
    return compile_definition(load_definition_text(text))


def _yaml(text: str) -> Any:
    try:
        return yaml.load(text, Loader=_DefinitionLoader)  # a SafeLoader: plain data only
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        what = "; ".join(p for p in (error.context, error.problem) if p)
        raise _invalid(f"{where}{what}") from None
    except yaml.YAMLError as error:
        raise _invalid(f"not YAML: {error}") from None


def _json(text: str) -> Any:
    try:
        return strict_json.loads(text.lstrip("\ufeff"), MAX_DEPTH)
    except strict_json.NotStrictJson as error:
        raise _invalid(str(error)) from None


def _node_problems(root: Node) -> list[str]:
    """Everything the loader refuses in a composed document, each with its line. Iterative,
    and each node is visited once: an alias is seen as a node met a second time."""
    problems: list[str] = []
    seen: set[int] = set()
    stack: list[tuple[Node, int]] = [(root, 0)]
    while stack:
        node, depth = stack.pop()
        line = f"line {node.start_mark.line + 1}: "
        if id(node) in seen:
            problems.append(line + "anchors and aliases (&name, *name) are not allowed")
            continue
        seen.add(id(node))
        if depth > MAX_DEPTH:
            problems.append(line + f"nested deeper than {MAX_DEPTH} levels")
        elif isinstance(node, ScalarNode):
            if node.tag not in _SCALARS:
                problems.append(line + f"the tag {node.tag} is not allowed")
            elif node.tag == f"{_TAG}float" and _NOT_A_NUMBER.match(node.value):
                problems.append(line + f"{node.value} is not a JSON number")
        elif isinstance(node, SequenceNode):
            if node.tag != f"{_TAG}seq":
                problems.append(line + f"the tag {node.tag} is not allowed")
            stack.extend((item, depth + 1) for item in reversed(node.value))
        elif isinstance(node, MappingNode):
            if node.tag != f"{_TAG}map":
                problems.append(line + f"the tag {node.tag} is not allowed")
            problems.extend(_key_problems(node))  # keys are strings or refused there
            stack.extend((value, depth + 1) for _, value in reversed(node.value))
    return problems


def _key_problems(node: MappingNode) -> list[str]:
    problems: list[str] = []
    first_line: dict[str, int] = {}
    for key, _ in node.value:
        line = key.start_mark.line + 1
        if key.tag == f"{_TAG}merge":
            problems.append(f"line {line}: merge keys (<<) are not allowed")
        elif not isinstance(key, ScalarNode) or key.tag != f"{_TAG}str":
            problems.append(f"line {line}: a key must be a string")
        elif key.value in first_line:
            problems.append(f"line {line}: duplicate key {key.value!r} "
                            f"(first at line {first_line[key.value]})")
        else:
            first_line[key.value] = line
    return problems


def _invalid(message: str) -> DefinitionInvalid:
    return DefinitionInvalid([DefinitionError("(document)", message)])
