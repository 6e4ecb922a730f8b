"""Waiting for the views: read-your-writes after a command, and `?wait=S` for a terminal
status. In a process that runs the projection, its writes wake the waiters; elsewhere
waiters poll the views, quickly at first."""
from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from domain.workflow import TERMINAL
from infrastructure.bootstrap import System


class ViewWaiter:
    """Blocks a request until the views show what it needs, or a deadline passes."""

    def __init__(self, system: System):
        self.system = system
        self._cv = threading.Condition()
        self._hooked = False

    def _hook(self) -> None:
        if self._hooked:
            return
        with self._cv:
            if self._hooked:
                return
            self._hooked = self.system.watch_views(self._written)

    def _written(self) -> None:
        with self._cv:
            self._cv.notify_all()

    def until(self, ready: Callable[[], Any], timeout_s: float) -> Any:
        """Returns ready()'s first truthy answer, or its last answer at the deadline."""
        self._hook()
        deadline = time.monotonic() + timeout_s
        pause = 0.002
        while True:
            answer = ready()
            left = deadline - time.monotonic()
            if answer or left <= 0:
                return answer
            with self._cv:
                self._cv.wait(min(pause, left))
            # Woken by the projection when it runs here; otherwise keep polling briskly.
            pause = min(pause * 2, 0.25 if self._hooked else 0.05)

    def caught_up(self, position: int | None, timeout_s: float = 5.0) -> bool:
        """Waits until the state views include the store up to `position`."""
        if position is None:
            return True
        views = self.system.views
        return bool(self.until(lambda: views.position("workflow_views") >= position, timeout_s))

    def terminal(self, workflow_id: str, timeout_s: float) -> dict[str, Any] | None:
        """The workflow's state view once terminal, or None at the deadline."""
        views = self.system.views

        def done() -> dict[str, Any] | None:
            state = views.state(workflow_id)
            return state if state and state["status"] in TERMINAL else None

        return self.until(done, timeout_s)
