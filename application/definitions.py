"""The Definitions application: registers definitions as versions in the event store and hands
out each version compiled, once per process.

A version is immutable, so its compiled form is cached for ever; the latest version is read
from the store on each ask, so a version registered by any process is the one the next start
takes.
"""
from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass
from typing import Any

from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.persistence import IntegrityError

from application.views import Shape, iso
from domain.definitions import Definition, compile_definition
from domain.registry import DefinitionVersions


class DefinitionNotFound(LookupError):
    """No definition has this name (or this version)."""

    def __init__(self, name: str, version: int | None = None):
        what = name if version is None else f"{name} version {version}"
        super().__init__(f"no definition {what}")
        self.name, self.version = name, version


@dataclass(frozen=True)
class Version:
    """One registered version: compiled, with its number, hash and registration time."""

    definition: Definition
    version: int
    sha256: str
    registered_at: str


@dataclass(frozen=True)
class Registration:
    """What `register` did: the version it is now, and whether this call added it."""

    name: str
    version: int
    created: bool


class Definitions(Application[uuid.UUID]):
    """Every definition and its versions."""

    name = "Definitions"  # pinned: the PostgreSQL table names derive from it

    def __init__(self, env: dict[str, str] | None = None) -> None:
        super().__init__(env)
        self._compiled: dict[tuple[str, int], Version] = {}
        self._latest: dict[str, tuple[int, int]] = {}  # name -> (store head, latest version)
        self._lock = threading.Lock()

    def register(self, document: dict[str, Any], known: bool = False) -> Registration:
        """Validates and registers the document as its name's next version (identical content
        again changes nothing). With `known`, content that is any version already changes
        nothing either: what a process applies from its folder at start must not undo a
        version registered since (by PUT or `definitions apply`). Raises DefinitionInvalid with
        every error; then nothing is registered."""
        definition = compile_definition(document)
        for _ in range(20):  # another process may register the same name at the same time
            history = self._history(definition.name) or DefinitionVersions(definition.name)
            shas = [sha for sha, _ in history.versions]
            if known and definition.sha256 in shas:
                return Registration(definition.name, shas.index(definition.sha256) + 1, False)
            version = history.register(definition.sha256, dict(definition.document))
            if version is None:
                return Registration(definition.name, history.latest, created=False)
            try:
                self.save(history)
            except IntegrityError:
                continue
            return Registration(definition.name, version, created=True)
        raise RuntimeError(f"could not register {definition.name} under contention")

    def get(self, name: str, version: int | None = None) -> Version:
        """The version asked for (the latest by default), compiled. The latest is known again
        without reading the definition while the store has no new event (one cheap query)."""
        if version is None:
            head = self.recorder.max_notification_id() or 0
            with self._lock:
                seen = self._latest.get(name)
            if seen is not None and seen[0] == head:
                version = seen[1]
        if version is not None:
            with self._lock:
                found = self._compiled.get((name, version))
            if found is not None:
                return found
        history = self._history(name)
        if history is None or history.latest == 0:
            raise DefinitionNotFound(name)
        number = history.latest if version is None else version
        if not 1 <= number <= history.latest:
            raise DefinitionNotFound(name, version)
        with self._lock:
            found = self._compiled.get((name, number))
        if found is None:
            found = self._compile(history, number)
        if version is None:
            with self._lock:  # the head read above is no later than this history
                self._latest[name] = (head, number)
        return found

    def shape(self, name: str, version: int) -> Shape:
        """What the state views of workflows on this version look like (for the views;
        readers that fold many events wrap this in application.views.cached)."""
        return Shape.of(self.get(name, version).definition)

    def versions(self, name: str) -> list[Version]:
        """Every version of the definition, oldest first."""
        history = self._history(name)
        if history is None or history.latest == 0:
            raise DefinitionNotFound(name)
        return [self.get(name, n) for n in range(1, history.latest + 1)]

    def names(self) -> list[str]:
        """Every definition's name, sorted."""
        found = set()
        for note in self.recorder.select_notifications(start=1, limit=1_000_000):
            event = self.mapper.to_domain_event(note)
            if isinstance(event, DefinitionVersions.Created):
                found.add(event.name)  # type: ignore[attr-defined]
        return sorted(found)

    def _history(self, name: str) -> DefinitionVersions | None:
        try:
            history: Any = self.repository.get(DefinitionVersions.create_id(name))
        except AggregateNotFoundError:
            return None
        assert isinstance(history, DefinitionVersions)
        return history

    def _compile(self, history: DefinitionVersions, number: int) -> Version:
        sha256, document = history.versions[number - 1]
        events: list[Any] = [e for e in self.events.get(history.id)
                             if getattr(e, "version", None) == number]
        registered_at = iso(events[0].timestamp) if events else ""
        definition = compile_definition(document)
        if definition.sha256 != sha256:  # the compiler's canonical form must never drift
            raise RuntimeError(f"{history.name} v{number}: stored hash does not match")
        found = Version(definition, number, sha256, registered_at)
        with self._lock:
            self._compiled[(history.name, number)] = found
        return found

