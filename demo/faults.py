"""Fault injection for the demo participants: which call of which action fails, and how.

A spec maps an action (a call name of demo.routes: charge, refund, reserve, release, ship,
cancel, flight, cancel_flight, hotel, cancel_hotel, car, cancel_car, confirm) to fields:
`status` answers a problem document of that status instead of the result (503 when only
`apply`, `retry_after` or `business` ask for a failed answer, 422 with `business`); `rate` is
the chance per call (default 1); `count` fires only on the first N calls of the action after
the faults were set; `delay_ms` (alias `timeout_ms`) sleeps before answering, and alone makes
a slow success; `apply` does the effect first and then answers the fault (a lost response);
`retry_after` sends a Retry-After header of that many seconds; `business` only labels the
problem document. The aliases keep specs written for the shared stub participants working.
"""
from __future__ import annotations

import copy
import json
import random
import threading
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from demo.routes import ACTIONS

_NUMBER_FIELDS = {"rate": (0, 1), "delay_ms": (0, 600_000), "timeout_ms": (0, 600_000)}
_INT_FIELDS = {"status": (400, 599), "count": (0, 10**9), "retry_after": (0, 86_400)}
_BOOL_FIELDS = {"apply", "business"}
_FAILING_FIELDS = {"status", "apply", "retry_after", "business"}


class FaultSpecError(ValueError):
    """A faults spec that cannot be used; the message names the action and field."""


@dataclass(frozen=True)
class Fault:
    """One action's validated fault."""

    status: int | None  # None: the call answers normally, after any delay
    rate: float = 1.0
    count: int | None = None
    delay_s: float = 0.0
    apply: bool = False
    retry_after: int | None = None
    business: bool = False


def parse_faults(spec: Any) -> dict[str, Fault]:
    """Validates a faults spec (action -> fields); raises FaultSpecError naming the bad field."""
    if not isinstance(spec, dict):
        raise FaultSpecError("faults must be a JSON object of action -> fault fields")
    faults = {}
    for action, fields in spec.items():
        if action not in ACTIONS:
            raise FaultSpecError(f"faults: unknown action {action!r}; actions are "
                                 f"{list(ACTIONS)}")
        if not isinstance(fields, dict):
            raise FaultSpecError(f"faults.{action} must be an object of fault fields")
        for name, value in fields.items():
            _check_field(f"faults.{action}.{name}", name, value)
        failing = _FAILING_FIELDS & fields.keys()
        default_status = 422 if fields.get("business") else 503
        faults[action] = Fault(
            status=fields.get("status", default_status) if failing else None,
            rate=float(fields.get("rate", 1)), count=fields.get("count"),
            delay_s=float(fields.get("delay_ms", fields.get("timeout_ms")) or 0) / 1000,
            apply=fields.get("apply", False), retry_after=fields.get("retry_after"),
            business=fields.get("business", False))
    return faults


def _check_field(where: str, name: str, value: Any) -> None:
    if name in _BOOL_FIELDS:
        if not isinstance(value, bool):
            raise FaultSpecError(f"{where} must be true or false, got {value!r}")
        return
    bounds = _NUMBER_FIELDS.get(name) or _INT_FIELDS.get(name)
    if bounds is None:
        known = sorted([*_NUMBER_FIELDS, *_INT_FIELDS, *_BOOL_FIELDS])
        raise FaultSpecError(f"{where}: unknown field; fields are {known}")
    kinds = (int,) if name in _INT_FIELDS else (int, float)
    # bool is an int in Python, but `"count": true` is a mistake worth naming.
    if isinstance(value, bool) or not isinstance(value, kinds) or not (
            bounds[0] <= value <= bounds[1]):
        kind = "an integer" if name in _INT_FIELDS else "a number"
        raise FaultSpecError(f"{where} must be {kind} in {bounds[0]}..{bounds[1]}, "
                             f"got {value!r}")


def faults_from_environ(environ: Mapping[str, str]) -> dict[str, Any]:
    """The faults spec in `PARTICIPANT_FAULTS` (JSON), validated; {} when unset or blank."""
    text = environ.get("PARTICIPANT_FAULTS", "").strip()
    if not text:
        return {}
    try:
        spec = json.loads(text)
    except ValueError as error:
        raise FaultSpecError(f"PARTICIPANT_FAULTS is not valid JSON: {error}") from None
    try:
        parse_faults(spec)
    except FaultSpecError as error:
        raise FaultSpecError(f"PARTICIPANT_FAULTS: {error}") from None
    return spec


class FaultInjector:
    """The current faults, and how many calls of each action they have seen since set."""

    def __init__(self, spec: Any, rng: random.Random | None = None) -> None:
        """Starts with `spec` (FaultSpecError when bad); `rng` decides `rate` draws."""
        self._lock = threading.Lock()
        self._random = rng or random.Random()
        self.replace(spec)

    def replace(self, spec: Any) -> None:
        """Replaces every fault; a bad spec raises FaultSpecError and leaves the old ones."""
        faults = parse_faults(spec)
        with self._lock:
            self._spec, self._faults, self._seen = copy.deepcopy(spec), faults, Counter[str]()

    def spec(self) -> dict[str, Any]:
        """The faults as they were set."""
        with self._lock:
            return copy.deepcopy(self._spec)

    def draw(self, action: str) -> Fault | None:
        """The fault this call of `action` gets, if any. `count` counts calls, not firings,
        so {"count": 2, "rate": 0.5} can only fire on the first two calls."""
        with self._lock:
            fault = self._faults.get(action)
            if fault is None:
                return None
            self._seen[action] += 1
            if fault.count is not None and self._seen[action] > fault.count:
                return None
            return fault if self._random.random() < fault.rate else None
