"""What `GET /_stats` reports: call counts kept in memory, and the effect ledger's summary.

An effect belongs to a business key (an orderId or a tripId; an undo to the key of what it
undoes). Per key, the ledger is walked in order to count duplicate effects and to judge the
outcome against the flows of demo.routes: `completed` when it applied every step of a flow
once (and any optional one at most once), `compensated` when everything it applied was undone,
`partial` otherwise (still in flight, or left half done).
"""
from __future__ import annotations

import threading
from collections import Counter, defaultdict
from collections.abc import Iterable
from typing import Any

from demo.routes import ACTIONS, FLOWS
from demo.store import Effect

TRACKED_HEADERS = ("Idempotency-Key", "X-Workflow-Id", "traceparent")


class CallCounters:
    """In-memory call, replay and missing-header counts (effects are counted from SQLite)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        """Zeroes every count."""
        with self._lock:
            self._calls = Counter({action: 0 for action in ACTIONS})
            self._replays = Counter({action: 0 for action in ACTIONS})
            self._missing = Counter({header: 0 for header in TRACKED_HEADERS})

    def call(self, action: str, missing_headers: Iterable[str]) -> None:
        """Counts one call of `action` and the tracked headers it lacked."""
        with self._lock:
            self._calls[action] += 1
            self._missing.update(missing_headers)

    def replay(self, action: str) -> None:
        """Counts one call answered from a stored answer."""
        with self._lock:
            self._replays[action] += 1

    def snapshot(self) -> dict[str, Any]:
        """The counts as plain dicts."""
        with self._lock:
            return {"calls": dict(self._calls), "replays": dict(self._replays),
                    "missing_headers": dict(self._missing)}


def effect_stats(effects: Iterable[Effect], key: str | None = None) -> dict[str, Any]:
    """Applied effects per action, duplicate effects, business keys by outcome (`orders`, the
    name it had when every key was an order) and, for `key`, that key's effects per action
    (`by_order`, likewise)."""
    counts = Counter({action: 0 for action in ACTIONS})
    history: dict[str, list[Effect]] = defaultdict(list)
    for effect in effects:
        counts[effect.action] += 1
        history[effect.key].append(effect)
    duplicates = 0
    outcomes = Counter({"completed": 0, "compensated": 0, "partial": 0})
    for events in history.values():
        key_duplicates, net = _walk(events)
        duplicates += key_duplicates
        outcomes[_outcome(net)] += 1
    stats: dict[str, Any] = {"effects": dict(counts), "duplicate_effects": duplicates,
                             "orders": dict(outcomes)}
    if key is not None:
        per_action = Counter({action: 0 for action in ACTIONS})
        per_action.update(effect.action for effect in history.get(key, []))
        stats["by_order"] = dict(per_action)
    return stats


def _walk(events: list[Effect]) -> tuple[int, dict[str, int]]:
    """Walks one key's effects in order: counts duplicates (a forward action applied while an
    earlier one is still outstanding, or a resource undone twice) and returns the net number
    of outstanding effects per forward action it applied."""
    outstanding: Counter[str] = Counter()
    undone: set[str] = set()
    duplicates = 0
    for effect in events:
        forward = ACTIONS[effect.action].undoes
        if forward is None:
            duplicates += outstanding[effect.action] > 0
            outstanding[effect.action] += 1
        elif effect.ref in undone or outstanding[forward] == 0:
            duplicates += 1
        else:
            undone.add(effect.ref)
            outstanding[forward] -= 1
    return duplicates, dict(outstanding)


def _outcome(net: dict[str, int]) -> str:
    """completed, compensated or partial, for one key's net outstanding effects."""
    if all(n == 0 for n in net.values()):
        return "compensated"
    for flow in FLOWS:
        if (net.keys() <= {*flow.steps, *flow.optional}
                and all(net.get(step) == 1 for step in flow.steps)
                and all(net.get(step, 0) <= 1 for step in flow.optional)):
            return "completed"
    return "partial"

