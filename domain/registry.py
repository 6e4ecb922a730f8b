"""The versions of one definition, as an aggregate: registering is an event, so every process
on every host finds every version in the event store, and a version once registered never
changes. A workflow names the version it started on; that version is its for ever.
"""
from __future__ import annotations

import uuid
from typing import Any

from eventsourcing.domain import Aggregate, event

NAMESPACE = uuid.UUID("0b5d1c2e-7a44-4f0e-9a51-3c8e2d7f6a10")


class DefinitionVersions(Aggregate):
    """Every version of one definition name, in order: version N is the Nth registered."""

    @staticmethod
    def create_id(name: str) -> uuid.UUID:
        return uuid.uuid5(NAMESPACE, name)

    @event("Created")
    def __init__(self, name: str) -> None:
        self.name = name
        self.versions: list[tuple[str, dict[str, Any]]] = []  # (sha256, document), from v1

    @property
    def latest(self) -> int:
        """The newest version's number (0 before any)."""
        return len(self.versions)

    def register(self, sha256: str, document: dict[str, Any]) -> int | None:
        """Registers the document as the next version; None when it is the latest already
        (identical content changes nothing)."""
        if self.versions and self.versions[-1][0] == sha256:
            return None
        self.registered(version=self.latest + 1, sha256=sha256, document=document)
        return self.latest

    @event("Registered")
    def registered(self, version: int, sha256: str, document: dict[str, Any]) -> None:
        self.versions.append((sha256, document))
