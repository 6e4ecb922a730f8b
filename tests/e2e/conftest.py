"""Fixtures that start the real processes: participants and the orchestrator."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.harness import Orchestrator, Participants


@pytest.fixture
def participants(tmp_path: Path) -> Iterator[Participants]:
    p = Participants(tmp_path).start()
    yield p
    p.kill()


@pytest.fixture
def orchestrator(tmp_path: Path, participants: Participants,
                 database_url: str) -> Iterator[Orchestrator]:
    o = Orchestrator(tmp_path, participants, DATABASE_URL=database_url).start()
    yield o
    o.kill()


@pytest.fixture
def sqlite_orchestrator(tmp_path: Path, participants: Participants) -> Iterator[Orchestrator]:
    """For checks of the HTTP surface, where the store makes no difference."""
    o = Orchestrator(tmp_path, participants).start()
    yield o
    o.kill()
