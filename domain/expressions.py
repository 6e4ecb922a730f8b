"""Expressions and templates of workflow definitions: JMESPath, compiled once, evaluated purely.

A *template* is any JSON value whose strings may hold `${<JMESPath>}` pieces, evaluated over the
context `{input, key, workflowId, idempotencyKey, reason, steps}` (see `make_context`):

- a string that is exactly one `${...}` takes the value's type: `"${input.cents}"` is an int;
- text around pieces interpolates the *text form* of each value (`text_of`): a string as it is,
  anything else as compact JSON (`12`, `true`, `null`, `["a","b"]`);
- in a *path* (`compile_template(..., path=True)`) every interpolated value is URL-encoded as
  one segment (`/`, `?`, `#`, spaces and non-ASCII are escaped; a value of `.` or `..` becomes
  `%2E`/`%2E%2E`), and the result is always a string;
- mappings and lists render their values recursively (keys are literal);
- `$${` writes a literal `${`.

A value that is missing (an absent key, a skipped step) is None: a whole-value template renders
None (JSON null), interpolated text renders `null`. A JMESPath runtime type error (`length` of a
number, say) also evaluates to None: evaluation never raises, so the aggregate that renders a
call stays total. Nothing here reads a clock, does I/O or draws a random number, and
`jmespath.compile` runs only when a template or expression is compiled, never when it renders.
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import quote

import jmespath
from jmespath import exceptions as jmespath_errors

from domain.jmespath_refs import Ref, function_problem, root_refs

ROOTS = ("input", "key", "workflowId", "idempotencyKey", "reason", "steps")


class ExpressionError(ValueError):
    """A template or JMESPath expression that does not compile; the message says why."""


def make_context(
    *, input: Any, key: str, workflow_id: str, idempotency_key: str | None = None,
    reason: str | None = None, steps: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The context expressions are evaluated over. `steps` maps a call step to its kept values
    (`{kept name: value}`) and a wait step to the body of the signal that released it."""
    return {"input": input, "key": key, "workflowId": workflow_id,
            "idempotencyKey": idempotency_key, "reason": reason, "steps": dict(steps or {})}


def text_of(value: Any) -> str:
    """A value's text form in interpolation: a string as it is, anything else compact JSON."""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def truthy(value: Any) -> bool:
    """JMESPath truth: null, false, "", [] and {} are false; everything else (0 too) is true."""
    return not (value is None or value is False or value in ("", [], {}))


def encode_segment(value: Any) -> str:
    """One path segment: the value's text form, percent-encoded so it stays one segment."""
    encoded = quote(text_of(value), safe="")
    # "." and ".." segments would be resolved away by a server: keep them literal data.
    return encoded.replace(".", "%2E") if encoded in (".", "..") else encoded


@dataclass(frozen=True, eq=False)
class Expression:
    """A compiled JMESPath expression and the context fields it refers to."""

    text: str
    _compiled: Any = field(repr=False)
    _refs: tuple[Ref, ...] = field(repr=False)

    def search(self, data: Any) -> Any:
        """The value at `data`; None for a missing value or a runtime type error."""
        try:
            return self._compiled.search(data)
        except jmespath_errors.JMESPathError:
            return None

    def refs(self) -> tuple[Ref, ...]:
        """The root-relative field paths it reads (`()` for the whole context, `@`)."""
        return self._refs


def compile_expression(text: str) -> Expression:
    """Compiles a bare JMESPath expression (a `when:` or a `keep:` entry). Unknown functions
    and wrong argument counts are refused here, not found at run time."""
    try:
        compiled = jmespath.compile(text)
    except jmespath_errors.JMESPathError as error:
        raise ExpressionError(_jmespath_message(error)) from None
    problem = function_problem(compiled.parsed)
    if problem is not None:
        raise ExpressionError(problem)
    return Expression(text, compiled, root_refs(compiled.parsed))


class Template(Protocol):
    """A compiled template: render it over a context; list what it refers to."""

    def render(self, context: Mapping[str, Any]) -> Any:
        """The rendered JSON value."""
        ...

    def refs(self) -> tuple[Ref, ...]:
        """The root-relative field paths its expressions read."""
        ...


@dataclass(frozen=True)
class Literal:
    """A value with no `${...}` in it (a scalar; containers are Mapping/ListTemplate)."""

    value: Any

    def render(self, context: Mapping[str, Any]) -> Any:
        return self.value

    def refs(self) -> tuple[Ref, ...]:
        return ()


@dataclass(frozen=True)
class Whole:
    """A string that is exactly one `${...}`: renders to the value itself, of any type."""

    expression: Expression

    def render(self, context: Mapping[str, Any]) -> Any:
        return _detach(self.expression.search(context))

    def refs(self) -> tuple[Ref, ...]:
        return self.expression.refs()


@dataclass(frozen=True)
class Interpolation:
    """Text with `${...}` pieces; `encode` percent-encodes each piece's value (paths)."""

    parts: tuple[str | Expression, ...]
    encode: bool

    def render(self, context: Mapping[str, Any]) -> str:
        form = encode_segment if self.encode else text_of
        return "".join(p if isinstance(p, str) else form(p.search(context)) for p in self.parts)

    def refs(self) -> tuple[Ref, ...]:
        return tuple(r for p in self.parts if isinstance(p, Expression) for r in p.refs())

    @property
    def leading_text(self) -> str:
        """The literal text before the first `${...}` (the whole text if there is none)."""
        first = self.parts[0] if self.parts else ""
        return first if isinstance(first, str) else ""


@dataclass(frozen=True)
class MappingTemplate:
    """A mapping whose values are templates (keys are literal)."""

    items: tuple[tuple[str, Template], ...]

    def render(self, context: Mapping[str, Any]) -> dict[str, Any]:
        return {name: template.render(context) for name, template in self.items}

    def refs(self) -> tuple[Ref, ...]:
        return tuple(r for _, template in self.items for r in template.refs())


@dataclass(frozen=True)
class ListTemplate:
    """A list whose items are templates."""

    items: tuple[Template, ...]

    def render(self, context: Mapping[str, Any]) -> list[Any]:
        return [template.render(context) for template in self.items]

    def refs(self) -> tuple[Ref, ...]:
        return tuple(r for template in self.items for r in template.refs())


def compile_template(value: Any, *, path: bool = False) -> Template:
    """Compiles a JSON value's `${...}` pieces once. `path=True`: a URL path, whose pieces are
    URL-encoded and which always renders to a string. Raises ExpressionError."""
    if isinstance(value, Mapping):
        return MappingTemplate(tuple((str(k), compile_template(v)) for k, v in value.items()))
    if isinstance(value, list):
        return ListTemplate(tuple(compile_template(v) for v in value))
    if not isinstance(value, str):
        return Literal(value)
    parts = tuple(_parts(value))
    if not path and len(parts) == 1 and isinstance(parts[0], Expression):
        return Whole(parts[0])
    if not path and all(isinstance(p, str) for p in parts):
        return Literal("".join(p for p in parts if isinstance(p, str)))
    return Interpolation(parts, encode=path)


def _parts(text: str) -> list[str | Expression]:
    """Splits text into literal pieces and compiled `${...}` expressions."""
    parts: list[str | Expression] = []
    literal: list[str] = []
    i = 0
    while i < len(text):
        if text.startswith("$${", i):
            literal.append("${")
            i += 3
        elif text.startswith("${", i):
            end = _closing_brace(text, i + 2)
            source = text[i + 2:end].strip()
            if not source:
                raise ExpressionError(f"empty expression at character {i + 1}")
            try:
                expression = compile_expression(source)
            except ExpressionError as error:
                raise ExpressionError(f"${{{source}}}: {error}") from None
            if literal:
                parts.append("".join(literal))
                literal = []
            parts.append(expression)
            i = end + 1
        else:
            literal.append(text[i])
            i += 1
    if literal or not parts:
        parts.append("".join(literal))
    return parts


def _closing_brace(text: str, start: int) -> int:
    """The index of the `}` that closes a `${` whose expression starts at `start`: braces of a
    multi-select hash and anything quoted (`'raw'`, `"field"`, `` `literal` ``) do not count."""
    depth, quote_char, i = 0, "", start
    while i < len(text):
        c = text[i]
        if quote_char:
            if c == "\\":
                i += 1
            elif c == quote_char:
                quote_char = ""
        elif c in "'\"`":
            quote_char = c
        elif c == "{":
            depth += 1
        elif c == "}":
            if depth == 0:
                return i
            depth -= 1
        i += 1
    raise ExpressionError(f"unterminated ${{ at character {start - 1}")


def _detach(value: Any) -> Any:
    """A copy of a container value, so a rendered body never aliases the context."""
    if isinstance(value, dict):
        return {k: _detach(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_detach(v) for v in value]
    return value


def _jmespath_message(error: jmespath_errors.JMESPathError) -> str:
    # jmespath's own text spans lines with a caret under the column: say it on one line.
    if isinstance(error, jmespath_errors.IncompleteExpressionError):
        return "bad JMESPath: incomplete expression"
    if isinstance(error, jmespath_errors.LexerError):
        return f"bad JMESPath: {error.message} at column {error.lexer_position}"
    if isinstance(error, jmespath_errors.ParseError):
        hint = " (a number literal needs backticks: `5`)" if error.token_type == "NUMBER" else ""
        return f"bad JMESPath: {error.msg} at column {error.lex_position}{hint}"
    return f"bad JMESPath: {str(error).splitlines()[0] if str(error) else type(error).__name__}"
