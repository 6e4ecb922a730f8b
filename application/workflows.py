"""The Workflows application: the commands that start, record, cancel and retry workflows.

It takes and returns primitives and UUIDs. Library errors are turned into our own here, at the
boundary, so that nothing above it needs to know the event store.
"""
from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from eventsourcing.application import AggregateNotFoundError, Application, ProcessingEvent
from eventsourcing.persistence import IntegrityError, Recording

from application.batching import SaveBatcher
from application.definitions import Definitions
from application.views import Shape
from domain.definitions import Definition
from domain.workflow import InvalidTransition, Workflow

CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


class InvalidInput(ValueError):
    """A start's input breaks its definition's schema (or holds text no reader takes the same
    way); nothing was recorded. `errors` holds each (path, message)."""

    def __init__(self, errors: list[tuple[str, str]]):
        super().__init__("; ".join(f"{path}: {message}" for path, message in errors[:5]))
        self.errors = errors


class WorkflowNotFound(LookupError):
    """No workflow has this id."""

    def __init__(self, workflow_id: uuid.UUID | str):
        super().__init__(f"no workflow {workflow_id}")
        self.workflow_id = workflow_id


class StartConflict(Exception):
    """The key was started before with a different input."""

    def __init__(self, definition: str, key: str, workflow_id: uuid.UUID):
        super().__init__(f"{definition} {key} was already started with a different input")
        self.definition, self.key, self.workflow_id = definition, key, workflow_id


@dataclass(frozen=True)
class Started:
    """What a start did: the workflow, whether this call created it, and its store position."""

    workflow_id: uuid.UUID
    created: bool
    position: int | None


def check_input(definition: Definition, value: Any) -> list[tuple[str, str]]:
    """Every error of a start's input: its definition's schema, then text that every reader
    takes the same way: encodable as UTF-8 (a lone surrogate is valid JSON but cannot be stored
    or sent on) and free of control characters (a terminal, a log line or a participant would
    misread a NUL, an ESC or a line break)."""
    errors = [(e.path, e.message) for e in definition.check_input(value)]
    return errors + list(_text_errors(value, ""))


def _text_errors(value: Any, path: str) -> Iterator[tuple[str, str]]:
    if isinstance(value, str):
        if CONTROL.search(value):
            yield path or "(input)", "must not hold control characters"
        else:
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                yield path or "(input)", "must be valid Unicode text (no lone surrogates)"
    elif isinstance(value, dict):
        for key, item in value.items():
            inner = f"{path}.{key}" if path else str(key)
            yield from _text_errors(key, inner)
            yield from _text_errors(item, inner)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _text_errors(item, f"{path}[{i}]")


class Workflows(Application[uuid.UUID]):
    """Stores Workflow aggregates; every change goes through one of these commands."""

    name = "Workflows"  # pinned: the PostgreSQL table names derive from it

    def __init__(self, env: dict[str, str] | None = None,
                 definitions: Definitions | None = None) -> None:
        super().__init__(env)
        self.definitions = definitions
        self._listeners: list[Callable[[], None]] = []
        self._batcher = SaveBatcher(self._save_events)

    def save(self, *objs: Any, **kwargs: Any) -> list[Recording[uuid.UUID]]:
        """Saves one aggregate together with those other threads are saving (group commit)."""
        if len(objs) == 1 and not kwargs and isinstance(objs[0], Workflow):
            return self._batcher.save(objs[0])
        return super().save(*objs, **kwargs)

    def _save_events(self, *events: Any) -> list[Recording[uuid.UUID]]:
        """Application.save for events in hand (the batcher's). The library's save asks of
        each object whether it is an event, through a runtime-checked Protocol: 6% of a busy
        `orchestrator run`'s CPU (py-spy). These are events; the Workflows take no snapshots."""
        processing: ProcessingEvent[uuid.UUID] = ProcessingEvent()
        processing.events.extend(events)
        recordings = self._record(processing)
        self._notify(recordings)
        return recordings

    def close(self) -> None:
        self._batcher.close()
        super().close()

    def start(self, definition: str, key: str, input: Any) -> Started:
        """Starts a workflow of the definition's latest version for `key`, or finds the one
        the key already has (same input). Raises DefinitionNotFound, InvalidInput or
        StartConflict; nothing is recorded then."""
        assert self.definitions is not None, "Workflows was built without its definitions"
        latest = self.definitions.get(definition)
        errors = check_input(latest.definition, input)
        if errors:
            raise InvalidInput(errors)
        workflow = Workflow(definition=definition, definition_version=latest.version, key=key,
                            input=input)
        try:
            recordings = self.save(workflow)
        except IntegrityError:
            existing = self.load(workflow.id)
            if not existing.same_start(definition, input):
                raise StartConflict(definition, key, existing.id) from None
            return Started(existing.id, created=False, position=None)
        return Started(workflow.id, created=True, position=_last_position(recordings))

    def definition_of(self, workflow: Workflow) -> Definition:
        """The compiled definition the workflow is pinned to."""
        assert self.definitions is not None, "Workflows was built without its definitions"
        return self.definitions.get(workflow.definition, workflow.definition_version).definition

    def shape(self, name: str, version: int) -> Shape:
        """What the state views of a definition version look like (see application.views)."""
        assert self.definitions is not None, "Workflows was built without its definitions"
        return self.definitions.shape(name, version)

    def signal(self, workflow_id: uuid.UUID, name: str, body: dict[str, Any]) -> int | None:
        """Delivers a signal to the workflow's wait (kept if it comes early; recorded once).
        Its body's text is held to the rules of a start's input (InvalidInput)."""
        errors = list(_text_errors(body, ""))
        if errors:
            raise InvalidInput(errors)
        return self.change(workflow_id, lambda w: w.signal(self.definition_of(w), name, body))

    def load(self, workflow_id: uuid.UUID) -> Workflow:
        """The workflow as recorded now."""
        try:
            return self.repository.get(workflow_id)
        except AggregateNotFoundError:
            raise WorkflowNotFound(workflow_id) from None

    def cancel(self, workflow_id: uuid.UUID) -> int | None:
        """Asks a running workflow to compensate and end CANCELLED."""
        return self.change(workflow_id, Workflow.request_cancel)

    def retry(self, workflow_id: uuid.UUID, by: str, reason: str) -> int | None:
        """Resumes a COMPENSATION_FAILED (or stuck) workflow where it stopped."""
        return self.change(workflow_id, lambda w: w.request_retry(by=by, reason=reason))

    def change(self, workflow_id: uuid.UUID, command: Callable[[Workflow], Any]) -> int | None:
        """Applies `command` to the latest version, again on a concurrent write (the worker may
        record an outcome between our read and our write). Returns the last store position."""
        for _ in range(20):
            workflow = self.load(workflow_id)
            command(workflow)
            try:
                return _last_position(self.save(workflow))
            except IntegrityError:
                continue
        raise InvalidTransition(workflow_id, "busy", "record a change under contention")

    def record(self, workflow: Workflow) -> list[Recording[uuid.UUID]]:
        """Saves what the worker decided; IntegrityError means someone wrote first."""
        return self.save(workflow)

    def add_listener(self, listener: Callable[[], None]) -> None:
        """`listener()` is called after every save: it wakes this process's followers at once."""
        self._listeners.append(listener)

    def _notify(self, recordings: list[Recording[uuid.UUID]]) -> None:
        for listener in self._listeners:
            listener()


def _last_position(recordings: list[Recording[uuid.UUID]]) -> int | None:
    return recordings[-1].notification.id if recordings else None
