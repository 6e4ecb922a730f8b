"""Waiting for the views: read-your-writes after a command, and `?wait=S` for a terminal
status. One thread serves every waiting request: after each write to the views (told by the
projection in this process, or by PostgreSQL NOTIFY from another) it looks up all that is
awaited in one query, instead of each request polling on its own."""
from __future__ import annotations

import threading
from typing import Any

from domain.workflow import TERMINAL
from infrastructure.bootstrap import System


class _Wait:
    def __init__(self) -> None:
        self.done = threading.Event()
        self.state: dict[str, Any] | None = None


class ViewWaiter:
    """Blocks a request until the views show what it needs, or a deadline passes."""

    POLL_S = {"here": 1.0, "notified": 0.25, "unknown": 0.02}  # a safety net, or the way

    def __init__(self, system: System):
        self.system, self.poll_s = system, 0.05
        self._lock = threading.Lock()
        self._workflows: dict[str, list[_Wait]] = {}
        self._positions: list[tuple[int, threading.Event]] = []
        self._wakeup = threading.Event()
        self._thread: threading.Thread | None = None

    def terminal(self, workflow_id: str, timeout_s: float) -> dict[str, Any] | None:
        """The workflow's state view once terminal, or None at the deadline."""
        wait = _Wait()
        with self._lock:
            self._workflows.setdefault(workflow_id, []).append(wait)
        self._ensure_running()
        try:
            wait.done.wait(timeout_s)
            return wait.state
        finally:
            with self._lock:
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

    def _written(self, position: int | None, states: list[dict[str, Any]] | None) -> None:
        if position is None or states is None:  # written elsewhere: read it back
            self._wakeup.set()
            return
        # The projection says what it wrote: no need to read it back.
        self._resolve({s["workflowId"]: s for s in states})
        with self._lock:
            for reached, done in self._positions:
                if position >= reached:
                    done.set()

    def _run(self) -> None:
        while True:
            self._wakeup.wait(self.poll_s)
            self._wakeup.clear()
            with self._lock:
                wanted = list(self._workflows)
                positions = list(self._positions)
            try:
                if positions:
                    reached = self.system.views.position("workflow_views")
                    for position, done in positions:
                        if reached >= position:
                            done.set()
                if wanted:
                    self._resolve(self.system.views.states(wanted))
            except Exception:  # noqa: BLE001 - the store is down: waiters time out, we retry
                self._wakeup.wait(0.5)

    def _resolve(self, states: dict[str, dict[str, Any]]) -> None:
        with self._lock:
            for wid, state in states.items():
                if state["status"] in TERMINAL:
                    for wait in self._workflows.get(wid, []):
                        wait.state = state
                        wait.done.set()
