"""Waiting for the views: read-your-writes after a command, and `?wait=S` for a terminal
status. One thread serves every waiting request, instead of each request polling on its own:
each write to the views is told to it (by the projection in this process, with the states it
wrote; by PostgreSQL NOTIFY from another, with the workflows it ended), and it reads back only
what a notice did not say: the state of a request that has just begun to wait, of a workflow
told ended, or, after a notice that said nothing (or none in a while), all that is awaited.

A waiting request still holds one of the server's request threads, so at most `max_waiting`
requests of a process wait for a terminal status at once; past that bound `terminal` answers
None at once (the caller answers as if the wait had expired) and the response gets a
`Retry-After` hint, so that waiters can never take the threads that other requests need."""
from __future__ import annotations

import threading
from typing import Any

from flask import Flask, Response, current_app, g, has_app_context

from application.views import ViewsWritten
from domain.workflow import TERMINAL
from infrastructure.bootstrap import System


class _Wait:
    def __init__(self) -> None:
        self.done = threading.Event()
        self.state: dict[str, Any] | None = None


RETRY_AFTER_S = 1  # a declined waiter may poll again soon: waits end, and free slots, all the time
_DECLINED = "wait_declined"


class ViewWaiter:
    """Blocks a request until the views show what it needs, or a deadline passes."""

    POLL_S = {"here": 1.0, "notified": 0.25, "unknown": 0.02}  # a safety net, or the way

    def __init__(self, system: System, max_waiting: int | None = None):
        """`max_waiting` bounds the requests waiting in `terminal` at once (None: no bound,
        for a server without a pool of request threads to starve)."""
        if max_waiting is not None and max_waiting < 0:
            raise ValueError(f"max_waiting must be >= 0, got {max_waiting}")
        self.system, self.poll_s, self.max_waiting = system, 0.05, max_waiting
        self._waiting = 0
        self._lock = threading.Lock()
        self._workflows: dict[str, list[_Wait]] = {}
        self._unread: set[str] = set()  # awaited workflows no read or notice has covered yet
        self._read_all = False  # a notice that said nothing: any awaited state may have moved
        self._positions: list[tuple[int, threading.Event]] = []
        self._wakeup = threading.Event()
        self._thread: threading.Thread | None = None

    def terminal(self, workflow_id: str, timeout_s: float) -> dict[str, Any] | None:
        """The workflow's state view once terminal, or None at the deadline; None at once
        when `max_waiting` requests are waiting already."""
        wait = _Wait()
        with self._lock:
            full = self.max_waiting is not None and self._waiting >= self.max_waiting
            if not full:
                self._waiting += 1
                self._workflows.setdefault(workflow_id, []).append(wait)
                self._unread.add(workflow_id)  # it may have ended before it was awaited
        if full:
            if has_app_context():
                setattr(g, _DECLINED, True)
            return None
        self._ensure_running()
        try:
            wait.done.wait(timeout_s)
            return wait.state
        finally:
            with self._lock:
                self._waiting -= 1
                waits = self._workflows.get(workflow_id, [])
                if wait in waits:
                    waits.remove(wait)
                if not waits:
                    self._workflows.pop(workflow_id, None)

    def caught_up(self, position: int | None, timeout_s: float = 5.0) -> bool:
        """Waits until the state views include the store up to `position`."""
        if position is None:
            return True
        done = threading.Event()
        entry = (position, done)
        with self._lock:
            self._positions.append(entry)
        self._ensure_running()
        try:
            return done.wait(timeout_s)
        finally:
            with self._lock:
                if entry in self._positions:
                    self._positions.remove(entry)

    def _ensure_running(self) -> None:
        self._wakeup.set()
        if self._thread is not None:
            return
        with self._lock:
            if self._thread is None:
                self.poll_s = self.POLL_S[self.system.watch_views(self._written)]
                self._thread = threading.Thread(target=self._run, name="view-waiter",
                                                daemon=True)
                self._thread.start()

    def _written(self, notice: ViewsWritten) -> None:
        if notice.position is not None:
            self._reached(notice.position)
        if notice.states is not None:  # the projection says what it wrote: no read back
            self._resolve({s["workflowId"]: s for s in notice.states})
            return
        with self._lock:
            if notice.ended is None:
                self._read_all = True
            else:  # read back only the awaited ones it ended
                ended = [w for w in notice.ended if w in self._workflows]
                if not ended:
                    return
                self._unread.update(ended)
        self._wakeup.set()

    def _reached(self, position: int) -> None:
        with self._lock:
            for reached, done in self._positions:
                if position >= reached:
                    done.set()

    def _run(self) -> None:
        while True:
            told = self._wakeup.wait(self.poll_s)
            self._wakeup.clear()
            with self._lock:
                if not told:  # nothing told in a while: the safety net reads everything
                    self._read_all = True
                wanted = list(self._workflows) if self._read_all else [
                    w for w in self._unread if w in self._workflows]
                self._unread.clear()
                self._read_all = False
                pending = any(not done.is_set() for _, done in self._positions)
            try:
                if pending:
                    self._reached(self.system.views.position("workflow_views"))
                if wanted:
                    self._resolve(self.system.views.states(wanted))
            except Exception:  # noqa: BLE001 - the store is down: waiters time out, we retry
                with self._lock:
                    self._read_all = True
                self._wakeup.wait(0.5)

    def _resolve(self, states: dict[str, dict[str, Any]]) -> None:
        with self._lock:
            for wid, state in states.items():
                if state["status"] in TERMINAL:
                    for wait in self._workflows.get(wid, []):
                        wait.state = state
                        wait.done.set()


def seen(position: int | None) -> None:
    """Returns once this app's views include the store up to `position`, or after the
    waiter's few seconds: a command's answer reads its own write, as a start's does, so that
    whoever reads the workflow next (a client, the console's page) sees what was asked."""
    current_app.extensions["waiter"].caught_up(position)


def install_waiter(app: Flask, system: System, max_waiting: int | None) -> ViewWaiter:
    """Gives `app` a ViewWaiter (app.extensions["waiter"]) bounded by `max_waiting`, and a
    `Retry-After` on every 202 answered early because that bound was reached."""
    waiter = ViewWaiter(system, max_waiting)
    app.extensions["waiter"] = waiter

    @app.after_request
    def _retry_after(response: Response) -> Response:
        if response.status_code == 202 and g.get(_DECLINED):
            response.headers.setdefault("Retry-After", str(RETRY_AFTER_S))
        return response

    return waiter
