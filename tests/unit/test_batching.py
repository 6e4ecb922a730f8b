"""Group commit: a conflict in a batch costs only the writer who lost the race."""
from __future__ import annotations

from concurrent.futures import Future
from typing import Any

import pytest
from eventsourcing.persistence import IntegrityError

from application.workflows import Workflows
from domain.workflow import Workflow

ORDER: dict[str, Any] = {"cents": 100, "skus": ["a"], "address": "1 Main St"}


def test_a_conflict_in_a_batch_keeps_the_other_writers_events() -> None:
    workflows = Workflows(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})
    try:
        first = workflows.start("o-1", **ORDER).workflow_id
        stale = workflows.load(first)
        fresh = workflows.load(first)
        fresh.request_cancel()
        workflows.record(fresh)  # stale is now one version behind
        stale.request_cancel()
        newcomer = Workflow(order_id="o-2", **ORDER)
        lost, kept = Future[list[Any]](), Future[list[Any]]()

        # The two saves arrive together: one transaction, which the stale one makes fail.
        workflows._batcher._commit([(stale, lost), (newcomer, kept)])

        with pytest.raises(IntegrityError):
            lost.result()
        assert [r.domain_event.originator_id for r in kept.result()] == [newcomer.id]
        assert workflows.load(newcomer.id).order_id == "o-2"
    finally:
        workflows.close()


def test_an_event_that_cannot_be_encoded_fails_only_its_own_save(tmp_path: Any) -> None:
    """A lone surrogate slipped past validation: its writer gets the error, its batch
    neighbours are saved and told so truthfully."""
    workflows = Workflows(env={"PERSISTENCE_MODULE": "eventsourcing.sqlite",
                               "SQLITE_DBNAME": str(tmp_path / "store.sqlite3")})
    try:
        poisoned = Workflow(order_id="o-bad", cents=1, skus=["a"], address="\ud800")
        valid = Workflow(order_id="o-good", **ORDER)
        lost, kept = Future[list[Any]](), Future[list[Any]]()

        workflows._batcher._commit([(poisoned, lost), (valid, kept)])

        with pytest.raises(UnicodeEncodeError):
            lost.result()
        assert [r.domain_event.originator_id for r in kept.result()] == [valid.id]
        assert workflows.load(valid.id).order_id == "o-good"
        assert workflows.recorder.max_notification_id() == 1  # nothing of the poisoned one
    finally:
        workflows.close()
