"""Group commit: a conflict in a batch costs only the writer who lost the race."""
from __future__ import annotations

import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import pytest
from eventsourcing.persistence import IntegrityError

from application.definitions import Definitions
from application.workflows import Workflows
from domain.workflow import Workflow
from infrastructure.bootstrap import BUNDLED, apply_definitions
from tests.fakes import wait_until

ORDER: dict[str, Any] = {"cents": 100, "skus": ["a"], "address": "1 Main St"}


def order(key: str, **changes: Any) -> Workflow:
    return Workflow(definition="order", definition_version=1, key=key,
                    input={**ORDER, **changes})


def workflows_on(env: dict[str, str]) -> Workflows:
    definitions = Definitions(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})
    apply_definitions(definitions, BUNDLED)
    return Workflows(env=env, definitions=definitions)


def test_a_conflict_in_a_batch_keeps_the_other_writers_events() -> None:
    workflows = workflows_on({"PERSISTENCE_MODULE": "eventsourcing.popo"})
    try:
        first = workflows.start("order", "o-1", ORDER).workflow_id
        stale = workflows.load(first)
        fresh = workflows.load(first)
        fresh.request_cancel()
        workflows.record(fresh)  # stale is now one version behind
        stale.request_cancel()
        newcomer = order("o-2")
        lost, kept = Future[list[Any]](), Future[list[Any]]()

        # The two saves arrive together: one transaction, which the stale one makes fail.
        workflows._batcher._commit([(stale, lost), (newcomer, kept)])

        with pytest.raises(IntegrityError):
            lost.result()
        assert [r.domain_event.originator_id for r in kept.result()] == [newcomer.id]
        assert workflows.load(newcomer.id).key == "o-2"
    finally:
        workflows.close()


def test_an_event_that_cannot_be_encoded_fails_only_its_own_save(tmp_path: Any) -> None:
    """A lone surrogate slipped past validation: its writer gets the error, its batch
    neighbours are saved and told so truthfully."""
    workflows = workflows_on({"PERSISTENCE_MODULE": "eventsourcing.sqlite",
                              "SQLITE_DBNAME": str(tmp_path / "store.sqlite3")})
    try:
        poisoned = order("o-bad", address="\ud800")
        valid = order("o-good")
        lost, kept = Future[list[Any]](), Future[list[Any]]()

        workflows._batcher._commit([(poisoned, lost), (valid, kept)])

        with pytest.raises(UnicodeEncodeError):
            lost.result()
        assert [r.domain_event.originator_id for r in kept.result()] == [valid.id]
        assert workflows.load(valid.id).key == "o-good"
        assert workflows.recorder.max_notification_id() == 1  # nothing of the poisoned one
    finally:
        workflows.close()


def test_saves_that_arrive_together_are_committed_together() -> None:
    """Group commit: while one transaction is under way the next saves queue, and go to the
    store in one transaction; each writer is answered with its own recordings."""
    workflows = workflows_on({"PERSISTENCE_MODULE": "eventsourcing.popo"})
    batches: list[set[Any]] = []
    gate = threading.Event()
    save_many = workflows._batcher.save_many

    def held_save_many(*events: Any) -> list[Any]:
        batches.append({e.originator_id for e in events})
        gate.wait(5)
        return save_many(*events)

    workflows._batcher.save_many = held_save_many
    try:
        with ThreadPoolExecutor(10) as pool:
            first = pool.submit(workflows.start, "order", "o-0", ORDER)
            wait_until(lambda: batches, 5, what="the first transaction")
            rest = [pool.submit(workflows.start, "order", f"o-{i}", ORDER) for i in range(1, 10)]
            wait_until(lambda: len(workflows._batcher._queue) == 9, 5, what="nine queued saves")
            gate.set()
            started = [first.result(5), *(f.result(5) for f in rest)]

        assert [len(b) for b in batches] == [1, 9]  # two transactions for ten saves
        assert batches[1] == {s.workflow_id for s in started[1:]}
        assert all(s.created and s.position for s in started)
        assert len({s.position for s in started}) == 10
    finally:
        gate.set()
        workflows.close()
