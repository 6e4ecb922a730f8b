"""How the operators' commands print: aligned tables, timelines, verdicts and progress bars.

Nothing here reads a store; each function takes what the application layer returned.
"""
from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict
from typing import Any

import click

from application.audit import Difference, Replay, Verdict


def compact(value: Any) -> str:
    """A value as one line of JSON (strings bare)."""
    if isinstance(value, str):
        return value
    return json.dumps(value, default=str, sort_keys=True)


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Columns padded to their widest cell."""
    cells = [[str(h) for h in headers],
             *[["" if c is None else compact(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
                     for row in cells)


def timeline_text(replay: Replay) -> str:
    """The replayed state's headline and the timeline, one event per line."""
    state = replay.state or {}
    head = (f"workflow {replay.workflow_id}  {state.get('definition')} {state.get('key')}  "
            f"{state.get('status')} at version {state.get('version')}")
    rows = [(m.timestamp, "" if m.since_previous_s is None else f"+{m.since_previous_s:.3f}s",
             m.type, compact(m.data)) for m in replay.timeline]
    return head + "\n" + table(("TIME", "SINCE PREV", "EVENT", "DATA"), rows)


def differences_text(differences: Sequence[Difference]) -> str:
    """One indented line per differing field."""
    return "\n".join(f"  {d.field}: replayed {compact_repr(d.replayed)}, "
                     f"served {compact_repr(d.served)}" for d in differences)


def verdict_text(verdict: Verdict) -> str:
    """What --verify found for one workflow."""
    if verdict.ok and verdict.behind:
        return (f"verify: OK up to the served version; the projection has {verdict.behind} "
                "more event(s) to go")
    if verdict.ok:
        return "verify: OK, the served state view matches the replay field by field"
    return "verify: MISMATCH\n" + differences_text(verdict.differences)


def replay_json(replay: Replay, verdict: Verdict | None) -> str:
    """The replay (and the verdict) as one JSON document."""
    doc: dict[str, Any] = {
        "workflowId": replay.workflow_id, "state": replay.state,
        "timeline": [{"version": m.version, "timestamp": m.timestamp, "type": m.type,
                      "data": m.data, "sincePreviousS": m.since_previous_s}
                     for m in replay.timeline],
    }
    if verdict is not None:
        doc["verify"] = {"ok": verdict.ok, "behind": verdict.behind,
                         "differences": [asdict(d) for d in verdict.differences]}
    return json.dumps(doc, indent=2, default=str)


def state_text(state: dict[str, Any]) -> str:
    """A state view as `field  value` lines, in its own order."""
    return table(("FIELD", "VALUE"), list(state.items()))


def compact_repr(value: Any) -> str:
    return json.dumps(value, default=str, sort_keys=True)


@contextmanager
def progress(label: str, total: int) -> Iterator[Callable[[int, int, str | None], None]]:
    """A progress bar on stderr, with the time left; yields `advance(reached, total, note)`,
    where `note` (a rate, say) is shown beside the bar."""
    with click.progressbar(length=max(total, 1), label=label, file=sys.stderr, show_eta=True,
                           show_pos=True, item_show_func=lambda s: s) as bar:

        def advance(reached: int, new_total: int, note: str | None = None) -> None:
            bar.length = max(bar.length or 0, new_total, 1)  # the head moves on meanwhile
            bar.update(max(0, reached - bar.pos), note)

        yield advance
