"""Fixtures of the operations tests: each runs on a SQLite file and on PostgreSQL."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from infrastructure.bootstrap import System, bootstrap
from tests.fakes import FakeParticipants
from tests.ops import settings_for


@pytest.fixture(params=["sqlite", "postgres"])
def ops_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh database: a SQLite file, or a PostgreSQL database of its own."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/ops.sqlite3"
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture
def ops_fake() -> FakeParticipants:
    return FakeParticipants()


@pytest.fixture
def ops_system(ops_url: str, ops_fake: FakeParticipants) -> Iterator[System]:
    """The worker (orchestrator and projection) over `ops_url`, with fake participants."""
    system = bootstrap(settings_for(ops_url), participants=ops_fake).start_worker()
    try:
        yield system
    finally:
        ops_fake.release_all()
        system.stop(grace_s=2.0)
