"""Definitions registered in the event store and read back, on SQLite and PostgreSQL: versions,
identical content, the latest seen by every process, nothing registered on an error."""
from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from application.definitions import DefinitionNotFound, Definitions
from domain.definitions import DefinitionInvalid
from infrastructure.bootstrap import definitions_env, store_env
from infrastructure.settings import load

ORDER: dict[str, Any] = yaml.safe_load(
    (Path(__file__).resolve().parents[2] / "definitions" / "order.yaml").read_text())


@pytest.fixture
def env(database_url: str) -> dict[str, str]:
    settings = load({"DATABASE_URL": database_url})
    return definitions_env(settings, store_env(settings))


@pytest.fixture
def registry(env: dict[str, str]) -> Iterator[Definitions]:
    app = Definitions(env=env)
    yield app
    app.close()


def with_fourth_step() -> dict[str, Any]:
    document = copy.deepcopy(ORDER)
    document["participants"]["notify"] = {}
    document["steps"].append({"name": "notify", "participant": "notify",
                              "call": {"path": "/notifications", "body": {"orderId": "${key}"}},
                              "event": "Notified"})
    return document


def test_a_definition_registers_as_version_1_and_reads_back_compiled(
        registry: Definitions) -> None:
    done = registry.register(ORDER)
    assert (done.name, done.version, done.created) == ("order", 1, True)
    latest = registry.get("order")
    assert latest.version == 1 and latest.definition.name == "order"
    assert [s.name for s in latest.definition.flat_steps] == ["charge", "reserve", "ship"]
    assert len(latest.sha256) == 64 and latest.registered_at.endswith("Z")
    assert registry.names() == ["order"]


def test_identical_content_changes_nothing_and_a_change_is_the_next_version(
        registry: Definitions) -> None:
    registry.register(ORDER)
    again = registry.register(copy.deepcopy(ORDER))
    assert (again.version, again.created) == (1, False)
    changed = registry.register(with_fourth_step())
    assert (changed.version, changed.created) == (2, True)
    assert [v.version for v in registry.versions("order")] == [1, 2]
    assert len(registry.get("order", 1).definition.flat_steps) == 3  # v1 stays what it was
    assert len(registry.get("order").definition.flat_steps) == 4


def test_a_version_registered_by_another_process_is_the_latest_for_every_process(
        registry: Definitions, env: dict[str, str]) -> None:
    registry.register(ORDER)
    assert registry.get("order").version == 1  # known, and cached
    other = Definitions(env=env)
    try:
        other.register(with_fourth_step())
    finally:
        other.close()
    assert registry.get("order").version == 2


def test_an_invalid_definition_registers_nothing(registry: Definitions) -> None:
    broken = copy.deepcopy(ORDER)
    broken["steps"][1]["undo"]["path"] = "/inventory/${steps.chrage.paymentId}/release"
    with pytest.raises(DefinitionInvalid) as refused:
        registry.register(broken)
    assert any(e.path == "steps[1].undo.path" for e in refused.value.errors)
    assert registry.names() == []
    with pytest.raises(DefinitionNotFound):
        registry.get("order")


def test_an_unknown_version_is_not_found(registry: Definitions) -> None:
    registry.register(ORDER)
    with pytest.raises(DefinitionNotFound):
        registry.get("order", 2)
    with pytest.raises(DefinitionNotFound):
        registry.get("trip")


def test_a_process_starting_does_not_undo_a_version_registered_since(
        registry: Definitions, tmp_path: Path) -> None:
    """The folder applied at start holds version 1; version 2 came by PUT. A process that
    starts afterwards leaves version 2 the latest."""
    from infrastructure.bootstrap import apply_definitions

    folder = tmp_path / "definitions"
    folder.mkdir()
    (folder / "order.yaml").write_text(yaml.safe_dump(ORDER))
    assert [r.version for r in apply_definitions(registry, folder)] == [1]
    registry.register(with_fourth_step())

    again = apply_definitions(registry, folder)

    assert [(r.version, r.created) for r in again] == [(1, False)]
    assert registry.get("order").version == 2
    assert registry.register(ORDER).version == 3  # an explicit apply still goes back
