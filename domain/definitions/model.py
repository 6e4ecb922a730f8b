"""A compiled workflow definition: frozen values the interpreter reads, never a document.

Everything is compiled once (`compile_definition`): JMESPath expressions, templates, the input
schema's validator. Optional retry settings are None where the definition leaves them to the
deployment (STEP_TIMEOUT_S, STEP_MAX_ATTEMPTS, COMPENSATION_MAX_ATTEMPTS, RETRY_BACKOFF_*).
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Union
from urllib.parse import urlencode

from domain.definitions.errors import DefinitionError, collect
from domain.definitions.schemas import errors_of
from domain.expressions import Expression, Template, text_of, truthy


@dataclass(frozen=True)
class ParticipantSpec:
    """A participant the definition calls. Its base URL comes from the environment
    (`<NAME>_URL`), never from here; `bulkhead` and `rate_limit` (calls per second) are
    optional per-participant limits."""

    name: str
    bulkhead: int | None = None
    rate_limit: float | None = None


@dataclass(frozen=True)
class RenderedCall:
    """A call with every expression evaluated: what goes to the participant."""

    method: str
    path: str
    query: tuple[tuple[str, str], ...]
    body: Any  # None: no body (and no Content-Type)

    @property
    def target(self) -> str:
        """The path with its query string (`/payments/p%2F1/refund?reason=failed`)."""
        return f"{self.path}?{urlencode(self.query)}" if self.query else self.path


@dataclass(frozen=True)
class CallSpec:
    """How to make a call: method, path (URL-encoding template), query and body templates."""

    method: str
    path: Template
    query: tuple[tuple[str, Template], ...] = ()
    body: Template | None = None

    def render(self, context: Mapping[str, Any]) -> RenderedCall:
        """The call for this context. A query parameter whose value is missing (None) is left
        out; others take their text form (`text_of`)."""
        query = tuple(
            (name, text_of(value)) for name, template in self.query
            if (value := template.render(context)) is not None
        )
        body = self.body.render(context) if self.body is not None else None
        return RenderedCall(self.method, str(self.path.render(context)), query, body)


@dataclass(frozen=True)
class Undo:
    """The compensation of a step: its own call name (key `<workflowId>:<name>`), call and
    retry settings. It goes to the step's participant."""

    name: str
    call: CallSpec
    attempts: int | None = None
    timeout_s: float | None = None
    backoff_base_s: float | None = None
    backoff_cap_s: float | None = None


@dataclass(frozen=True)
class Step:
    """A participant call, what to keep of its 2xx body, and how to undo it (if at all)."""

    name: str
    participant: str
    call: CallSpec
    keep: Mapping[str, Expression] = field(default_factory=dict)
    event: str | None = None
    status: str | None = None
    timeout_s: float | None = None
    attempts: int | None = None
    backoff_base_s: float | None = None
    backoff_cap_s: float | None = None
    undo: Undo | None = None
    when: Expression | None = None

    def applies(self, context: Mapping[str, Any]) -> bool:
        """Whether the step runs (its `when` is JMESPath-truthy, or it has none)."""
        return self.when is None or truthy(self.when.search(context))

    def extract(self, body: Any) -> dict[str, Any]:
        """The kept values of a 2xx body (None where an expression finds nothing)."""
        return {name: expression.search(body) for name, expression in self.keep.items()}

    @staticmethod
    def unkept(kept: Mapping[str, Any]) -> tuple[str, ...]:
        """The kept names whose value is empty (None, "", [] or {}): a success without them
        is not a success the workflow can build on."""
        return tuple(name for name, value in kept.items() if value in (None, "", [], {}))


@dataclass(frozen=True)
class Wait:
    """A pause until signal `signal` (success; its body becomes `steps.<name>`) or `reject`
    (failure for good); `timeout_s` without either is a failure too."""

    name: str
    signal: str
    reject: str
    timeout_s: float
    event: str | None = None
    status: str | None = None
    when: Expression | None = None

    def applies(self, context: Mapping[str, Any]) -> bool:
        """Whether the wait happens (its `when` is JMESPath-truthy, or it has none)."""
        return self.when is None or truthy(self.when.search(context))


@dataclass(frozen=True)
class Parallel:
    """Steps run at once; the group succeeds when every branch does."""

    branches: tuple[Step, ...]


Node = Union[Step, Parallel, Wait]


@dataclass(frozen=True, eq=False)
class Definition:
    """A compiled, validated definition. Equal definitions have the same SHA-256.

    Frozen; the lookups below are computed on first use and cached."""

    name: str
    description: str
    key: str
    input_schema: Mapping[str, Any]
    participants: Mapping[str, ParticipantSpec]
    steps: tuple[Node, ...]
    deadline_s: float | None
    sha256: str
    document: Mapping[str, Any]
    input_validator: Any = field(repr=False)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Definition) and other.sha256 == self.sha256

    def __hash__(self) -> int:
        return hash(self.sha256)

    def check_input(self, value: Any) -> list[DefinitionError]:
        """Every error of a start body against the input schema (paths like `cents` or
        `skus[3]`; `(input)` for the body itself); [] when it is valid. `integer` takes only
        ints (never 1999.0 or true); `format` is an annotation, not checked (2020-12's
        default)."""
        return collect(errors_of(self.input_validator, value), root="(input)")

    # --- lookups the interpreter needs ---------------------------------------------------------

    @cached_property
    def flat_steps(self) -> tuple[Step | Wait, ...]:
        """Every step and wait in order, parallel branches in place."""
        return tuple(s for node in self.steps
                     for s in (node.branches if isinstance(node, Parallel) else (node,)))

    @cached_property
    def calls(self) -> Mapping[str, tuple[Step, bool]]:
        """Every call name (steps' and undos') -> (its step, whether it is the undo)."""
        found: dict[str, tuple[Step, bool]] = {}
        for step in self.flat_steps:
            if isinstance(step, Step):
                found[step.name] = (step, False)
                if step.undo is not None:
                    found[step.undo.name] = (step, True)
        return found

    @cached_property
    def _by_name(self) -> Mapping[str, Step | Wait]:
        return {step.name: step for step in self.flat_steps}

    def step(self, name: str) -> Step | Wait:
        """The step or wait called `name` (KeyError if there is none)."""
        return self._by_name[name]

    def step_of_undo(self, undo_name: str) -> Step:
        """The step that `undo_name` compensates (KeyError if it is no undo)."""
        step, is_undo = self.calls[undo_name]
        if not is_undo:
            raise KeyError(undo_name)
        return step

    def participant_of(self, call_name: str) -> str:
        """The participant that serves a call (a step's or an undo's)."""
        return self.calls[call_name][0].participant

    @cached_property
    def signals(self) -> Mapping[str, tuple[Wait, bool]]:
        """Every signal name -> (its wait, whether it rejects)."""
        found: dict[str, tuple[Wait, bool]] = {}
        for step in self.flat_steps:
            if isinstance(step, Wait):
                found[step.signal] = (step, False)
                found[step.reject] = (step, True)
        return found

    @cached_property
    def kept_names(self) -> tuple[str, ...]:
        """Every kept name in step order: one top-level field each in the state view."""
        return tuple(name for step in self.flat_steps if isinstance(step, Step)
                     for name in step.keep)
