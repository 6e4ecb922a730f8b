"""The SQL views, one set of tests run against SQLite (a file) and PostgreSQL (when reachable)."""
from __future__ import annotations

import base64
import json
import sqlite3
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from application.views import AuditEntry, Search
from infrastructure.views_sql import SqliteViews, SqlViews
from tests.legacy import OLD_VIEW_TABLES, OLD_VIEWS, old_view_rows

NAME = "workflow_views"
Execute = Callable[[str, tuple[Any, ...]], list[tuple[Any, ...]]]  # on the views' database


def at(minute: int, micro: int = 0) -> str:
    """A timestamp in the views' fixed-width form, minutes after a fixed start."""
    return f"2030-01-01T10:{minute:02d}:00.{micro:06d}Z"


def state(order_id: str, created: str, status: str = "STARTED", version: int = 1,
          workflow_id: str | None = None, **fields: Any) -> dict[str, Any]:
    """An order's state view, as evolve shapes it."""
    view: dict[str, Any] = {
        "workflowId": workflow_id or str(uuid.uuid4()), "orderId": order_id, "status": status,
        "paymentId": None, "reservationId": None, "shipmentId": None, "error": None,
        "attempts": {}, "createdAt": created, "definition": "order", "definitionVersion": 1,
        "key": order_id, "results": {}, "updatedAt": created, "version": version,
    }
    view.update(fields)
    return view


def trip(trip_id: str, created: str, status: str = "STARTED", **fields: Any) -> dict[str, Any]:
    """A trip's state view: another key name, other kept names."""
    view: dict[str, Any] = {
        "workflowId": str(uuid.uuid4()), "tripId": trip_id, "status": status,
        "flightBookingId": None, "hotelBookingId": None, "error": None, "attempts": {},
        "createdAt": created, "definition": "trip", "definitionVersion": 2, "key": trip_id,
        "results": {}, "updatedAt": created, "version": 1,
    }
    view.update(fields)
    return view


def entry(workflow_id: str, position: int, kind: str = "Started",
          data: dict[str, Any] | None = None) -> AuditEntry:
    return AuditEntry(workflow_id, position, kind, at(0, position), data or {})


def every_page(views: SqlViews, query: Search) -> list[list[dict[str, Any]]]:
    pages, after = [], None
    for _ in range(100):
        page = views.search(Search(**{**query.__dict__, "after": after}))
        pages.append(page.items)
        if page.next is None:
            return pages
        after = page.next
    raise AssertionError("paging did not end")


class ViewsContract:
    """What every WorkflowViews implementation must do; subclasses supply `views`."""

    @pytest.fixture
    def views(self) -> Iterator[SqlViews]:  # pragma: no cover - overridden
        raise NotImplementedError
        yield

    # --- state and position -------------------------------------------------------------------

    def test_written_states_are_read_back_by_id_and_by_key(self, views: SqlViews) -> None:
        first = state("o-1", at(1), status="CHARGED", paymentId="pay-1",
                      attempts={"charge": 2}, version=2,
                      results={"charge": {"paymentId": "pay-1"}})
        second = state("o-2", at(2), status="COMPENSATION_FAILED", error="refund: 503: down")
        third = trip("o-2", at(3), status="WAITING", hotelBookingId="h-1",
                     results={"hotel": {"hotelBookingId": "h-1"}, "approval": {"by": "x"}})

        views.write(NAME, [first, second, third], [], position=7)

        assert views.state(first["workflowId"]) == first
        assert list(views.state(first["workflowId"]) or {}) == list(first)  # in its order
        assert views.state_by_key("order", "o-2") == second
        assert views.state_by_key("trip", "o-2") == third
        assert views.states([first["workflowId"], second["workflowId"], "nope"]) == {
            first["workflowId"]: first, second["workflowId"]: second}
        assert views.position(NAME) == 7

    def test_unknown_workflow_key_and_reader(self, views: SqlViews) -> None:
        views.write(NAME, [state("o-1", at(1))], [], position=1)

        assert views.state(str(uuid.uuid4())) is None
        assert views.state_by_key("order", "never") is None
        assert views.state_by_key("trip", "o-1") is None  # a key is a definition's own
        assert views.states([]) == {}
        assert views.audit(str(uuid.uuid4())) == []
        assert views.position("nobody") == 0

    def test_the_columns_searches_filter_by_are_what_is_served(
            self, views: SqlViews, execute: Execute) -> None:
        row = state("o-1", at(1), status="COMPLETED")
        views.write(NAME, [row], [], position=1)

        execute("UPDATE workflow_state SET status = ? WHERE workflow_id = ?",
                ("FAILED", row["workflowId"]))

        drifted = {**row, "status": "FAILED"}
        assert views.state(row["workflowId"]) == drifted
        assert views.search(Search(status="FAILED")).items == [drifted]
        assert views.search(Search(status="COMPLETED")).items == []

    def test_a_later_write_replaces_the_state_and_moves_the_position(
            self, views: SqlViews) -> None:
        start = state("o-1", at(1))
        views.write(NAME, [start], [], position=1)
        done = {**start, "status": "COMPLETED", "shipmentId": "shp-1", "version": 5,
                "updatedAt": at(3), "attempts": {"charge": 1, "reserve": 1, "ship": 1},
                "results": {"ship": {"shipmentId": "shp-1"}}}

        views.write(NAME, [done], [], position=5)

        assert views.state(start["workflowId"]) == done
        assert views.position(NAME) == 5

    def test_positions_are_kept_per_reader(self, views: SqlViews) -> None:
        views.set_position("orchestrator", 3)
        views.write(NAME, [], [], position=9)
        views.set_position("orchestrator", 4)

        assert (views.position("orchestrator"), views.position(NAME)) == (4, 9)

    def test_many_states_are_read_in_one_call(self, views: SqlViews) -> None:
        many = [state(f"o-{i}", at(i % 60)) for i in range(1100)]  # more than one chunk of ids
        views.write(NAME, many, [], position=1100)

        found = views.states(s["workflowId"] for s in many)

        assert found == {s["workflowId"]: s for s in many}

    def test_a_failing_write_leaves_nothing_behind(self, views: SqlViews) -> None:
        views.write(NAME, [], [], position=1)
        good = state("o-1", at(1))
        no_position: Any = None  # NOT NULL in both schemas: fails after the state is written
        broken = AuditEntry(good["workflowId"], no_position, "Started", at(1), {})

        with pytest.raises(Exception):  # noqa: B017 - each driver has its own IntegrityError
            views.write(NAME, [good], [broken], position=2)

        assert views.state(good["workflowId"]) is None
        assert views.position(NAME) == 1

    # --- audit ------------------------------------------------------------------------------------

    def test_audit_is_in_order_and_idempotent_on_a_replayed_batch(self, views: SqlViews) -> None:
        wid = str(uuid.uuid4())
        batch = [entry(wid, 1, "Started", {"definition": "order", "definitionVersion": 1,
                                           "key": "o-1", "input": {"skus": ["a", "b"],
                                                                   "cents": 5}}),
                 entry(wid, 2, "Charged", {"step": "charge", "name": "Charged",
                                           "status": "CHARGED", "attempt": 1,
                                           "result": {"paymentId": "pay-1"}})]
        later = [entry(wid, 3, "StepFailed", {"action": "reserve", "step": "reserve",
                                              "retryAt": 1.5, "uncertain": True,
                                              "error": None})]

        views.write(NAME, [], list(reversed(batch)), position=2)
        views.write(NAME, [], batch, position=2)  # a crash replays the batch
        views.write(NAME, [], batch + later, position=3)

        assert views.audit(wid) == batch + later
        assert views.audit(str(uuid.uuid4())) == []

    # --- search ---------------------------------------------------------------------------------

    @pytest.fixture
    def seeded(self, views: SqlViews) -> list[dict[str, Any]]:
        """Twelve workflows a minute apart, statuses in turn, order ids o-0 .. o-11."""
        statuses = ["COMPLETED", "FAILED", "STARTED"]
        rows = [state(f"o-{i}", at(i), status=statuses[i % 3]) for i in range(12)]
        views.write(NAME, rows, [], position=12)
        return rows

    def test_search_without_filters_is_newest_first(
            self, views: SqlViews, seeded: list[dict[str, Any]]) -> None:
        page = views.search(Search())

        assert page.items == list(reversed(seeded))
        assert page.next is None

    def test_search_by_status(self, views: SqlViews, seeded: list[dict[str, Any]]) -> None:
        page = views.search(Search(status="FAILED"))

        assert [s["orderId"] for s in page.items] == ["o-10", "o-7", "o-4", "o-1"]
        assert views.search(Search(status="CANCELLED")).items == []

    def test_search_by_key(self, views: SqlViews, seeded: list[dict[str, Any]]) -> None:
        assert views.search(Search(definition="order", key="o-5")).items == [seeded[5]]
        assert views.search(Search(key="o-5")).items == [seeded[5]]
        assert views.search(Search(definition="order", key="o-5",
                                   status="COMPLETED")).items == []
        assert views.search(Search(definition="trip", key="o-5")).items == []

    def test_search_by_definition(self, views: SqlViews, seeded: list[dict[str, Any]]) -> None:
        trips = [trip(f"o-{i}", at(i, 1), status="COMPLETED" if i % 2 else "WAITING")
                 for i in range(3, 6)]
        views.write(NAME, trips, [], position=15)

        assert views.search(Search(definition="trip")).items == list(reversed(trips))
        assert views.search(Search(definition="trip", status="COMPLETED")).items == [
            trips[2], trips[0]]
        assert views.search(Search(definition="order")).items == list(reversed(seeded))
        assert views.search(Search(key="o-4")).items == [trips[1], seeded[4]]
        assert views.search(Search(definition="nothing")).items == []
        everything = every_page(views, Search(limit=5))
        assert [s for p in everything for s in p] == sorted(
            [*seeded, *trips], key=lambda s: s["createdAt"], reverse=True)

    def test_search_by_creation_time_excludes_both_bounds(
            self, views: SqlViews, seeded: list[dict[str, Any]]) -> None:
        page = views.search(Search(created_after=at(3), created_before=at(7)))
        assert [s["orderId"] for s in page.items] == ["o-6", "o-5", "o-4"]

        after = views.search(Search(created_after=at(9, 1)))
        assert [s["orderId"] for s in after.items] == ["o-11", "o-10"]
        before = views.search(Search(created_before=at(1), status="COMPLETED"))
        assert [s["orderId"] for s in before.items] == ["o-0"]

    def test_paging_with_a_cursor_has_no_duplicates_and_no_gaps(self, views: SqlViews) -> None:
        # Ties on createdAt must page cleanly too: three workflows a minute, 25 in all.
        rows = [state(f"o-{i}", at(i // 3), status="COMPLETED" if i % 4 else "FAILED")
                for i in range(25)]
        views.write(NAME, rows, [], position=25)
        newest_first = sorted(rows, key=lambda s: (s["createdAt"], s["workflowId"]),
                              reverse=True)

        pages = every_page(views, Search(limit=4))

        assert [len(p) for p in pages] == [4, 4, 4, 4, 4, 4, 1]
        assert [s for p in pages for s in p] == newest_first
        completed = every_page(views, Search(status="COMPLETED", limit=5))
        assert [s for p in completed for s in p] == [
            s for s in newest_first if s["status"] == "COMPLETED"]

    def test_the_last_full_page_has_no_next(self, views: SqlViews,
                                            seeded: list[dict[str, Any]]) -> None:
        first = views.search(Search(limit=6))
        second = views.search(Search(limit=6, after=first.next))

        assert first.next is not None and len(first.items) == 6
        assert second.items == list(reversed(seeded[:6])) and second.next is None

    @pytest.mark.parametrize("cursor", [
        "not a cursor!",
        base64.urlsafe_b64encode(b"{}").decode(),
        base64.urlsafe_b64encode(b"[1, 2]").decode(),
        base64.urlsafe_b64encode(b'["a", "b", "c"]').decode(),
        "",
    ])
    def test_a_cursor_we_did_not_hand_out_is_a_value_error(
            self, views: SqlViews, cursor: str) -> None:
        with pytest.raises(ValueError):
            views.search(Search(after=cursor))

    def test_ping(self, views: SqlViews) -> None:
        views.ping()

    # --- the views of before definitions ------------------------------------------------------

    def test_views_from_before_definitions_are_dropped_with_their_position_only(
            self, open_views: Callable[[], SqlViews], execute: Execute) -> None:
        for statement in OLD_VIEW_TABLES:  # as the code before definitions created them
            execute(statement, ())
        old = OLD_VIEWS["legacy-done"]
        execute("INSERT INTO workflow_state VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                old_view_rows(old))
        execute("INSERT INTO workflow_audit VALUES (?, ?, ?, ?, ?)",
                (old["workflowId"], 1, "Started", old["createdAt"],
                 json.dumps({"orderId": "legacy-done"})))
        for name, position in ((NAME, 6), ("orchestrator:0", 4)):
            execute("INSERT INTO view_positions VALUES (?, ?)", (name, position))

        views = open_views()
        try:
            assert views.position(NAME) == 0  # the projection builds them anew from the events
            assert views.position("orchestrator:0") == 4  # the orchestrator's: kept
            assert views.state(old["workflowId"]) is None
            assert views.audit(old["workflowId"]) == []
            row = state("legacy-done", at(1), workflow_id=old["workflowId"])
            views.write(NAME, [row], [entry(row["workflowId"], 1)], position=1)
            assert views.state_by_key("order", "legacy-done") == row
            views.ping()
        finally:
            views.close()
        columns = {r[0] for r in execute(COLUMNS[views.dialect], ())}
        assert "order_id" not in columns and {"definition", "key", "view"} <= columns
        again = open_views()  # a second start finds nothing to drop
        try:
            assert again.state(row["workflowId"]) == row and again.position(NAME) == 1
        finally:
            again.close()


COLUMNS = {
    "sqlite": "SELECT name FROM pragma_table_info('workflow_state')",
    "postgres": "SELECT column_name FROM information_schema.columns "
                "WHERE table_schema = current_schema() AND table_name = 'workflow_state'",
}


class TestSqliteViews(ViewsContract):
    @pytest.fixture
    def open_views(self, tmp_path: Path) -> Callable[[], SqlViews]:
        return lambda: SqliteViews(str(tmp_path / "views.sqlite3"))

    @pytest.fixture
    def views(self, open_views: Callable[[], SqlViews]) -> Iterator[SqlViews]:
        views = open_views()
        yield views
        views.close()

    @pytest.fixture
    def execute(self, tmp_path: Path) -> Execute:
        def run(statement: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
            conn = sqlite3.connect(tmp_path / "views.sqlite3")
            try:
                with conn:  # a transaction, committed
                    return conn.execute(statement, params).fetchall()
            finally:
                conn.close()

        return run

    def test_the_views_survive_a_reopen(self, tmp_path: Path) -> None:
        path = str(tmp_path / "again.sqlite3")
        row = state("o-1", at(1))
        SqliteViews(path).write(NAME, [row], [entry(row["workflowId"], 1)], position=1)

        reopened = SqliteViews(path)

        assert reopened.state(row["workflowId"]) == row
        assert reopened.position(NAME) == 1


@pytest.mark.postgres
class TestPostgresViews(ViewsContract):
    @pytest.fixture
    def open_views(self, pg_url: str) -> Callable[[], SqlViews]:
        from infrastructure.views_postgres import PostgresViews

        return lambda: PostgresViews(pg_url)

    @pytest.fixture
    def views(self, open_views: Callable[[], SqlViews]) -> Iterator[SqlViews]:
        views = open_views()
        yield views
        views.close()

    @pytest.fixture
    def execute(self, pg_url: str) -> Execute:
        import psycopg

        def run(statement: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
            with psycopg.connect(pg_url, autocommit=True) as conn:
                cur = conn.execute(statement.replace("?", "%s"), params)
                return list(cur.fetchall()) if cur.description else []

        return run
