"""Fakes of the participants (the only thing our tests fake) and a polling wait helper.

`FakeParticipants` implements the `Participants` port the way a well-behaved service would:
it records every rendered call, answers from a per-action script (`call.action`: a step's or
an undo's name), and, like the real services, returns the original result for a repeated
Idempotency-Key once an action has succeeded.
"""
from __future__ import annotations

import itertools
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TypeVar

from application.ports import Call, Outcome, Succeeded

T = TypeVar("T")

# What a success of each bundled step carries, as the definitions' `keep:` reads it: the
# order's (definitions/order.yaml) and the trip's (definitions/trip.yaml). Any other call
# (an undo, a step of a test's own definition) answers {} unless scripted.
RESULT_KEY = {
    "charge": "paymentId", "reserve": "reservationId", "ship": "shipmentId",
    "flight": "bookingId", "hotel": "bookingId", "car": "bookingId",
    "confirm": "notificationId",
}
ID_PREFIX = {"charge": "pay", "reserve": "res", "ship": "shp", "flight": "flt",
             "hotel": "htl", "car": "car", "confirm": "ntf"}


@dataclass(frozen=True)
class Made:
    """One call the fake received, when (time.monotonic()) and what it answered."""

    call: Call
    at: float
    outcome: Outcome | None = None


class FakeParticipants:
    """Records calls and answers them per action: first from `script()`, then with the sticky
    answer of `always()`, else with success (fresh ids as RESULT_KEY and ID_PREFIX say:
    `pay-<n>`, `res-<n>`, `shp-<n>`, `flt-<n>`, ...; {} for any other call).
    `block(action)` holds that action's calls until `release(action)`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._made: list[Made] = []
        self._scripts: dict[str, deque[Outcome]] = defaultdict(deque)
        self._always: dict[str, Outcome] = {}
        self._gates: dict[str, threading.Event] = {}
        self._arrived: dict[str, threading.Semaphore] = {}
        self._held: set[threading.Event] = set()
        self._by_key: dict[str, Succeeded] = {}  # what a key's first success answered
        self._ids: dict[str, itertools.count[int]] = defaultdict(lambda: itertools.count(1))

    # --- scripting ------------------------------------------------------------------------------

    def script(self, action: str, outcomes: Iterable[Outcome]) -> None:
        """Answers the next calls of `action` with `outcomes`, in order, one each."""
        with self._lock:
            self._scripts[action].extend(outcomes)

    def always(self, action: str, outcome: Outcome | None) -> None:
        """Answers every call of `action` (once its script is used up) with `outcome`;
        None goes back to the default success."""
        with self._lock:
            if outcome is None:
                self._always.pop(action, None)
            else:
                self._always[action] = outcome

    def block(self, action: str) -> None:
        """Holds every call of `action` that arrives from now on, until `release(action)`."""
        with self._lock:
            self._gates[action] = threading.Event()
            self._arrived[action] = threading.Semaphore(0)

    def wait_blocked(self, action: str, count: int = 1, timeout: float = 10.0) -> None:
        """Waits until `count` calls of the blocked `action` are being held."""
        deadline = time.monotonic() + timeout
        for _ in range(count):
            if not self._arrived[action].acquire(timeout=max(0.0, deadline - time.monotonic())):
                raise AssertionError(f"fewer than {count} {action} calls arrived in {timeout}s")

    def release(self, action: str) -> None:
        """Lets the held calls of `action` (and later ones) go on."""
        with self._lock:
            gate = self._gates.pop(action, None)
        if gate is not None:
            gate.set()

    def release_all(self) -> None:
        """Lets every held call go on (a teardown must: pool threads are joined at exit)."""
        with self._lock:
            gates = [*self._gates.values(), *self._held]
            self._gates.clear()
        for gate in gates:
            gate.set()

    # --- the port -------------------------------------------------------------------------------

    def call(self, call: Call) -> Outcome:
        """Records the call, holds it while its action is blocked, then answers it."""
        with self._lock:
            index = len(self._made)
            self._made.append(Made(call, time.monotonic()))
            gate = self._gates.get(call.action)
            if gate is not None:
                self._held.add(gate)
                self._arrived[call.action].release()
        if gate is not None:
            gate.wait()
        with self._lock:
            outcome = self._answer(call)
            self._made[index] = Made(call, self._made[index].at, outcome)
        return outcome

    def _answer(self, call: Call) -> Outcome:
        earlier = self._by_key.get(call.idempotency_key)
        if earlier is not None:
            return earlier  # a repeated key gets the original result, as the contract says
        queue = self._scripts[call.action]
        if queue:
            outcome = queue.popleft()
        elif call.action in self._always:
            outcome = self._always[call.action]
        elif call.action in RESULT_KEY:
            n = next(self._ids[call.action])
            outcome = Succeeded({RESULT_KEY[call.action]: f"{ID_PREFIX[call.action]}-{n}"})
        else:
            outcome = Succeeded({})
        if isinstance(outcome, Succeeded):
            self._by_key[call.idempotency_key] = outcome
        return outcome

    # --- what happened ----------------------------------------------------------------------------

    @property
    def made(self) -> list[Made]:
        """Every call so far, in arrival order."""
        with self._lock:
            return list(self._made)

    @property
    def calls(self) -> list[Call]:
        with self._lock:
            return [m.call for m in self._made]

    def calls_for(self, workflow_id: object = None, action: str | None = None) -> list[Call]:
        """The calls of one workflow and/or one action."""
        return [
            c for c in self.calls
            if (workflow_id is None or c.workflow_id == str(workflow_id))
            and (action is None or c.action == action)
        ]

    def actions(self, workflow_id: object = None) -> list[str]:
        """The actions called, in order (of one workflow, if given)."""
        return [c.action for c in self.calls_for(workflow_id)]


def wait_until(predicate: Callable[[], T | None], timeout: float = 10.0, interval: float = 0.01,
               what: str = "condition") -> T:
    """Polls `predicate` until it returns something truthy and returns that; fails the test
    with `what` when `timeout` seconds pass first."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)
