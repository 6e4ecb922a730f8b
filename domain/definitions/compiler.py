"""`compile_definition`: a parsed document in, a `Definition` out, or every error with its path.

One pass after the language schema: each step is checked and compiled where it stands, knowing
which steps come before it (what its expressions may read), so nothing is compiled twice and
every error is reported, never only the first.
"""
from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from domain.definitions.calls import Errors, compile_call
from domain.definitions.canonical import json_problems, sha256_of
from domain.definitions.errors import DefinitionError, DefinitionInvalid, Path, collect, format_path
from domain.definitions.language import (
    HOST_WORDS,
    LANGUAGE_SCHEMA,
    RESERVED_EVENTS,
    RESERVED_STATUSES,
    VIEW_FIELDS,
)
from domain.definitions.model import Definition, Node, Parallel, ParticipantSpec, Step, Undo, Wait
from domain.definitions.schemas import errors_of, schema_errors, validator_for
from domain.definitions.scope import ANY_FIELD, Scope
from domain.expressions import Expression, ExpressionError, compile_expression

_LANGUAGE = validator_for(LANGUAGE_SCHEMA)
_SAME_TIME = "runs at the same time (same parallel group)"
_ITSELF = "is this step itself: what it keeps exists once it has succeeded"
Kept = frozenset[str] | None


def compile_definition(document: Any) -> Definition:
    """Validates a parsed definition document and compiles it. Raises DefinitionInvalid with
    every error and its path (`steps[1].undo.path: unknown step 'chrage'`)."""
    if not isinstance(document, Mapping):
        raise DefinitionInvalid([DefinitionError(
            "(document)", "a definition is a mapping (a JSON object) at the top level")])
    problems = json_problems(document)
    if problems:
        raise DefinitionInvalid(collect(problems))
    return _Compiler(document).definition()


class _Compiler:
    def __init__(self, document: Mapping[str, Any]) -> None:
        self.doc = document
        self.errors: Errors = [_hint_hosts(path, message)
                               for path, message in errors_of(_LANGUAGE, document)]
        self.known = _known_steps(document.get("steps"))
        self.call_names: dict[str, Path] = {}
        self.signal_names: dict[str, Path] = {}
        self.events: dict[str, Path] = {}
        self.kept_by: dict[str, str] = {}  # kept name -> the step that keeps it

    def definition(self) -> Definition:
        doc = self.doc
        key = doc.get("key")
        if isinstance(key, str) and key in VIEW_FIELDS:
            self.errors.append((("key",), f"'{key}' is a field of the state view"))
        schema = doc.get("input")
        if isinstance(schema, dict):
            self.errors.extend(schema_errors(schema, ("input",)))
        participants = {
            name: ParticipantSpec(name, spec.get("bulkhead"), spec.get("rate_limit"))
            for name, spec in _mapping(doc.get("participants")).items() if isinstance(spec, dict)
        }
        steps = self._steps(participants, _closed_fields(schema))
        if self.errors:
            raise DefinitionInvalid(collect(self.errors))
        document = copy.deepcopy(dict(doc))  # ours alone: the caller may change theirs
        return Definition(
            name=document["name"], description=document.get("description", ""),
            key=document["key"], input_schema=document["input"], participants=participants,
            steps=steps, deadline_s=document.get("deadline_s"), sha256=sha256_of(document),
            document=document, input_validator=validator_for(document["input"]),
        )

    def _steps(self, participants: Mapping[str, ParticipantSpec],
               fields: frozenset[str] | None) -> tuple[Node, ...]:
        entries = self.doc.get("steps")
        done: dict[str, Kept] = {}  # the steps before the current one, with what they keep
        nodes: list[Node] = []
        for i, entry in enumerate(entries if isinstance(entries, list) else ()):
            if not isinstance(entry, dict):
                continue
            if "parallel" in entry:
                raws = [b for b in _list(entry["parallel"]) if isinstance(b, dict)]
                names = [b["name"] for b in raws if isinstance(b.get("name"), str)]
                branches = tuple(
                    self._step(raw, ("steps", i, "parallel", j), done,
                               {n: _SAME_TIME for n in names if n != raw.get("name")},
                               participants, fields)
                    for j, raw in enumerate(_list(entry["parallel"])) if isinstance(raw, dict)
                )
                nodes.append(Parallel(branches))
            elif "wait" in entry:
                nodes.append(self._wait(entry, ("steps", i), done, fields))
            else:
                nodes.append(self._step(entry, ("steps", i), done, {}, participants, fields))
            last = nodes[-1]
            for node in last.branches if isinstance(last, Parallel) else (last,):
                if isinstance(node.name, str):  # else the language schema has said so
                    done[node.name] = self.known.get(node.name, frozenset())
        return tuple(nodes)

    def _scope(self, done: Mapping[str, Kept], own: Any, hidden: Mapping[str, str],
               in_undo: bool, fields: frozenset[str] | None) -> Scope:
        why = {name: "comes later" for name in self.known if name not in done}
        why.update(hidden)
        visible = dict(done)
        if isinstance(own, str):
            if in_undo:
                visible[own] = self.known.get(own, frozenset())
                why.pop(own, None)
            else:
                why[own] = _ITSELF
        return Scope(visible, why, in_undo, fields)

    def _step(self, raw: Mapping[str, Any], at: Path, done: Mapping[str, Kept],
              hidden: Mapping[str, str], participants: Mapping[str, ParticipantSpec],
              fields: frozenset[str] | None) -> Step:
        name = raw.get("name")
        self._unique(self.call_names, name, (*at, "name"), "call name")
        participant = raw.get("participant")
        if isinstance(participant, str) and participant not in participants:
            declared = ", ".join(participants) or "none"
            self.errors.append(((*at, "participant"),
                                f"unknown participant '{participant}' (declared: {declared})"))
        forward = self._scope(done, name, hidden, False, fields)
        call = compile_call(_mapping(raw.get("call")), (*at, "call"), forward, self.errors)
        undo = None
        if isinstance(raw.get("undo"), dict):
            u, u_at = raw["undo"], (*at, "undo")
            self._unique(self.call_names, u.get("name"), (*u_at, "name"), "call name")
            self._backoff(u, u_at)
            backward = self._scope(done, name, hidden, True, fields)
            undo = Undo(_at(u, "name"), compile_call(u, u_at, backward, self.errors),
                        _at(u, "attempts"), _at(u, "timeout_s"), _at(u, "backoff_base_s"),
                        _at(u, "backoff_cap_s"))
        self._labels(raw, at)
        self._backoff(raw, at)
        # Were a field of the wrong type, an error is recorded and this Step never leaves.
        return Step(
            name=_at(raw, "name"), participant=_at(raw, "participant"), call=call,
            keep=self._keep(raw, at), event=_at(raw, "event"), status=_at(raw, "status"),
            timeout_s=_at(raw, "timeout_s"), attempts=_at(raw, "attempts"),
            backoff_base_s=_at(raw, "backoff_base_s"), backoff_cap_s=_at(raw, "backoff_cap_s"),
            undo=undo, when=self._when(raw, at, forward),
        )

    def _wait(self, raw: Mapping[str, Any], at: Path, done: Mapping[str, Kept],
              fields: frozenset[str] | None) -> Wait:
        name = raw.get("name")
        self._unique(self.call_names, name, (*at, "name"), "call name")
        spec = _mapping(raw.get("wait"))
        signal, reject = _at(spec, "signal"), _at(spec, "reject")
        if isinstance(signal, str) and signal == reject:
            self.errors.append(((*at, "wait", "reject"), "must differ from signal"))
        else:
            self._unique(self.signal_names, signal, (*at, "wait", "signal"), "signal")
            self._unique(self.signal_names, reject, (*at, "wait", "reject"), "signal")
        self._labels(raw, at)
        scope = self._scope(done, name, {}, False, fields)
        return Wait(_at(raw, "name"), signal, reject, _at(spec, "timeout_s"),
                    _at(raw, "event"), _at(raw, "status"), self._when(raw, at, scope))

    def _when(self, raw: Mapping[str, Any], at: Path, scope: Scope) -> Expression | None:
        text = raw.get("when")
        if not isinstance(text, str):
            return None
        if text.lstrip().startswith("${"):
            self.errors.append(((*at, "when"), "a bare JMESPath expression, without ${...}"))
            return None
        try:
            expression = compile_expression(text)
        except ExpressionError as error:
            self.errors.append(((*at, "when"), str(error)))
            return None
        self.errors.extend(((*at, "when"), p) for p in scope.problems(expression.refs()))
        return expression

    def _keep(self, raw: Mapping[str, Any], at: Path) -> dict[str, Expression]:
        keep: dict[str, Expression] = {}
        for name, text in _mapping(raw.get("keep")).items():
            here = (*at, "keep", name)
            if name in VIEW_FIELDS:
                self.errors.append((here, f"'{name}' is a field of the state view"))
            elif name == self.doc.get("key"):
                self.errors.append((here, f"'{name}' is the definition's key"))
            elif name in self.kept_by:
                self.errors.append((here, f"'{name}' is already kept by step "
                                          f"'{self.kept_by[name]}'"))
            else:
                self.kept_by[name] = str(raw.get("name"))
            if isinstance(text, str):
                try:
                    keep[name] = compile_expression(text)
                except ExpressionError as error:
                    self.errors.append((here, str(error)))
        return keep

    def _labels(self, raw: Mapping[str, Any], at: Path) -> None:
        event, status = raw.get("event"), raw.get("status")
        if isinstance(event, str) and event in RESERVED_EVENTS:
            self.errors.append(((*at, "event"), f"'{event}' is one of the interpreter's events"))
        else:
            self._unique(self.events, event, (*at, "event"), "event")
        if isinstance(status, str) and status in RESERVED_STATUSES:
            self.errors.append(((*at, "status"), f"'{status}' is one of the interpreter's "
                                                 "statuses"))

    def _backoff(self, raw: Mapping[str, Any], at: Path) -> None:
        base, cap = _at(raw, "backoff_base_s"), _at(raw, "backoff_cap_s")
        if _number(base) and _number(cap) and cap < base:
            self.errors.append(((*at, "backoff_cap_s"), "is below backoff_base_s"))

    def _unique(self, seen: dict[str, Path], name: Any, at: Path, what: str) -> None:
        if not isinstance(name, str):
            return
        if name in seen:
            self.errors.append((at, f"duplicate {what} '{name}' (first at "
                                    f"{format_path(seen[name])})"))
        else:
            seen[name] = at


def _known_steps(entries: Any) -> dict[str, Kept]:
    """Every step and wait name in the document, with its kept names (ANY_FIELD for a wait):
    what an expression may name at all, before we know where it stands."""
    known: dict[str, Kept] = {}
    for entry in entries if isinstance(entries, list) else ():
        if not isinstance(entry, dict):
            continue
        for step in _list(entry.get("parallel")) if "parallel" in entry else [entry]:
            if isinstance(step, dict) and isinstance(step.get("name"), str):
                wait = "wait" in step
                known.setdefault(step["name"], ANY_FIELD if wait else
                                 frozenset(_mapping(step.get("keep"))))
    return known


def _closed_fields(schema: Any) -> frozenset[str] | None:
    """The input's property names when its schema allows no others (then `input.X` is
    checked), else None."""
    if not isinstance(schema, dict) or schema.get("additionalProperties") is not False:
        return None
    properties = schema.get("properties")
    if not isinstance(properties, dict) or schema.get("patternProperties"):
        return None
    return frozenset(properties)


def _hint_hosts(path: Path, message: str) -> tuple[Path, str]:
    if message == "unknown field" and path and path[-1] in HOST_WORDS:
        return path, ("not allowed: a definition names no host; participant URLs come from "
                      "the environment (<NAME>_URL)")
    return path, message


def _at(raw: Mapping[str, Any], name: str) -> Any:
    return raw.get(name)


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
