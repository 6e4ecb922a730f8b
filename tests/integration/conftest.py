"""Fixtures of the operations tests: each runs on a SQLite file and on PostgreSQL."""
from __future__ import annotations

from collections.abc import Iterator

import pytest

from infrastructure.bootstrap import System, bootstrap
from tests.fakes import FakeParticipants
from tests.ops import settings_for


@pytest.fixture
def ops_fake() -> FakeParticipants:
    return FakeParticipants()


@pytest.fixture
def ops_system(database_url: str, ops_fake: FakeParticipants) -> Iterator[System]:
    """The worker (orchestrator and projection) over `database_url`, with fake participants."""
    system = bootstrap(settings_for(database_url), participants=ops_fake).start_worker()
    try:
        yield system
    finally:
        ops_fake.release_all()
        system.stop(grace_s=2.0)
