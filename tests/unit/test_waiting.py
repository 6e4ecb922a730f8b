"""The one thread that answers waiting requests: what each kind of notice makes it read."""
from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Any

from api.waiting import ViewWaiter
from application.views import ViewsWritten
from infrastructure.views_postgres import PAYLOAD_MAX, notice_payload, read_notice


class Views:
    """The state views, as the test sets them; records each read."""

    def __init__(self) -> None:
        self.rows: dict[str, dict[str, Any]] = {}
        self.reads: list[set[str]] = []
        self.read = threading.Event()

    def states(self, ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        wanted = set(ids)
        self.reads.append(wanted)
        self.read.set()
        return {w: self.rows[w] for w in wanted if w in self.rows}

    def position(self, name: str) -> int:
        return 0


class System:
    """What the waiter needs of the system: the views, and who tells it of writes."""

    def __init__(self) -> None:
        self.views = Views()
        self.tell: Callable[[ViewsWritten], None] = lambda notice: None

    def watch_views(self, callback: Callable[[ViewsWritten], None]) -> str:
        self.tell = callback
        return "notified"


def new_waiter(system: System) -> ViewWaiter:
    waiter = ViewWaiter(system)  # type: ignore[arg-type]
    waiter.POLL_S = {"notified": 60.0}  # no safety-net read during a test: only notices
    return waiter


def state(wid: str, status: str) -> dict[str, Any]:
    return {"workflowId": wid, "status": status}


def waiting(waiter: ViewWaiter, wid: str) -> tuple[threading.Thread, list[Any]]:
    answer: list[Any] = []
    thread = threading.Thread(target=lambda: answer.append(waiter.terminal(wid, 10)))
    thread.start()
    return thread, answer


def settled(system: System, reads: int) -> None:
    """Waits until the waiter has made `reads` reads."""
    for _ in range(500):
        if len(system.views.reads) >= reads:
            return
        system.views.read.wait(0.01)
        system.views.read.clear()
    raise AssertionError(f"{len(system.views.reads)} reads, not {reads}")


def test_a_notice_naming_an_ended_workflow_answers_its_waiters_reading_only_it() -> None:
    system = System()
    system.views.rows = {"a": state("a", "CHARGED"), "b": state("b", "RESERVED")}
    waiter = new_waiter(system)
    first, answer_a = waiting(waiter, "a")
    settled(system, 1)
    second, answer_b = waiting(waiter, "b")
    settled(system, 2)
    assert system.views.reads[:2] == [{"a"}, {"b"}]  # each new waiter's own state, once

    system.views.rows["a"] = state("a", "COMPLETED")
    system.tell(ViewsWritten(position=7, ended=["a", "elsewhere"]))
    first.join(5)
    assert answer_a == [state("a", "COMPLETED")]
    assert system.views.reads[2] == {"a"}

    system.views.rows["b"] = state("b", "FAILED")
    system.tell(ViewsWritten())  # a notice that says nothing: everything awaited is read
    second.join(5)
    assert answer_b == [state("b", "FAILED")]
    assert system.views.reads[3] == {"b"}


def test_a_notice_with_the_states_written_answers_without_a_read() -> None:
    system = System()
    system.views.rows = {"a": state("a", "CHARGED")}
    waiter = new_waiter(system)
    thread, answer = waiting(waiter, "a")
    settled(system, 1)
    system.tell(ViewsWritten(position=3, states=[state("a", "COMPLETED")]))
    thread.join(5)
    assert answer == [state("a", "COMPLETED")] and len(system.views.reads) == 1


def test_the_notify_payload_names_the_ended_workflows_and_stays_under_postgres_limit() -> None:
    states = [state("a", "COMPLETED"), state("b", "CHARGED"), state("c", "FAILED")]
    assert read_notice(notice_payload(12, states)) == ViewsWritten(position=12, ended=["a", "c"])
    many = [state(f"{i:036d}", "COMPLETED") for i in range(500)]
    assert notice_payload(13, many) == ""  # too long: it names none, and all is read back
    assert len(notice_payload(13, many[:PAYLOAD_MAX // 50])) <= PAYLOAD_MAX
    assert read_notice(notice_payload(None, None)) == ViewsWritten()
    assert read_notice(None) == ViewsWritten()
