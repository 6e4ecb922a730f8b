"""What the console shows of one workflow: each step's state, and a timeline of its calls.

Pure and deterministic: every time comes from the audit trail or from an explicit `now`, never
from a clock, so the same trail draws the same picture.

The events record when an attempt ended (its outcome's event), never when it began, so a
bar's start is derived: an attempt starts when its call became due, that is at the timestamp of
the event after which it was due. For a first forward attempt that is the event that settled
what came before it (`Started` for the first step; the same event for every branch of a
parallel group); for a retry, its `retryAt` (never before the failure's own timestamp), or an
operator's `RetryRequested` if that came first; for an undo, or a doubtful step asked again,
the event after which compensation reached it. A bar therefore includes any time the call
spent queued (bulkhead, rate limit, a driver picking it up), not only the participant's time.
"""
from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from application.views import AuditEntry, iso
from domain.definitions import Definition, Parallel, Step, Wait
from domain.workflow import LEGACY_UNDO_OF, TERMINAL, Workflow

STATES = ("done", "skipped", "running", "waiting", "failed", "undone", "doubt", "owed",
          "pending")
KINDS = ("call", "undo", "backoff", "wait")
OUTCOMES = ("ok", "retry", "failed", "doubt", "running", "signalled", "timeout", "waiting")
MARKS = ("signal", "retry", "cancel", "started", "ended")

# The order saga's successes from before definitions name no step in their data: their class
# says which (the audit type is the class name).
_LEGACY_STEPS = {cls.__name__: cls.step
                 for cls in (Workflow.Charged, Workflow.Reserved, Workflow.Shipped)}
_ENDS = {"Completed": "COMPLETED", "Failed": "FAILED", "Cancelled": "CANCELLED",
         "CompensationFailed": "COMPENSATION_FAILED"}


@dataclass(frozen=True)
class Bar:
    """A stretch of time in a step's lane: an attempt of its call or undo, the backoff before a
    retry, or a wait for a signal. `detail` is what a tooltip lists, in order."""

    lane: str
    kind: str  # one of KINDS
    start: datetime
    end: datetime
    outcome: str  # one of OUTCOMES
    attempt: int
    label: str
    detail: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Mark:
    """An instant across every lane: a signal, an operator's request, the start or the end."""

    at: datetime
    kind: str  # one of MARKS
    label: str
    detail: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Timeline:
    """One workflow's calls over time; `lanes` are the steps with a bar, in definition order."""

    start: datetime
    end: datetime
    lanes: tuple[str, ...]
    bars: tuple[Bar, ...]
    marks: tuple[Mark, ...]


def step_states(definition: Definition, entries: Sequence[AuditEntry],
                status: str) -> dict[str, str]:
    """Each step's state (one of STATES), waits and parallel branches included, in the
    definition's order. `status` is the workflow's (its state view's)."""
    run = _Run(definition)
    for entry in entries:
        run.apply(entry)
    forward = status not in TERMINAL and status != "COMPENSATING"
    owing = status in ("COMPENSATING", "COMPENSATION_FAILED")
    current = {s.name for s in run.current()} if forward else set()
    states: dict[str, str] = {}
    for step in definition.flat_steps:
        name = step.name
        if name in run.skipped:
            states[name] = "skipped"
        elif name in run.undone:
            states[name] = "undone"
        elif (owing and isinstance(step, Step) and step.undo is not None
              and (name in run.results or name in run.uncertain)):
            states[name] = "owed"
        elif name in current:  # between retries too, even after an uncertain attempt
            states[name] = "waiting" if isinstance(step, Wait) else "running"
        elif name in run.uncertain:
            states[name] = "doubt"
        elif name in run.results:
            states[name] = "done"
        elif name in run.gave_up:
            states[name] = "failed"
        else:
            states[name] = "pending"
    return states


def timeline(definition: Definition, entries: Sequence[AuditEntry], now: datetime) -> Timeline:
    """The bars and marks of a workflow's trail; `now` ends what is still under way (a call,
    a wait) while the workflow has not ended."""
    return _Builder(definition, entries).build(now)


def parse_time(text: str) -> datetime:
    """An audit timestamp (`2026-12-02T17:44:07.123456Z`, or with an offset) as aware UTC."""
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


# --- folding the trail ---------------------------------------------------------------------------

def _kind(entry: AuditEntry) -> str:
    """The entry's event: "succeeded" for a step's success whatever its audit name (`Charged`),
    the event's class name otherwise."""
    if "result" in entry.data and "step" in entry.data:
        return "succeeded"
    if entry.type in _LEGACY_STEPS and "step" not in entry.data:
        return "succeeded"
    return entry.type


def _step_of(entry: AuditEntry) -> str:
    data = entry.data
    if data.get("step"):
        return str(data["step"])
    if entry.type in _LEGACY_STEPS:
        return _LEGACY_STEPS[entry.type]
    action = str(data.get("action", ""))
    return LEGACY_UNDO_OF.get(action, action)  # a StepFailed v1 named only its action


def _doubtful(entry: AuditEntry) -> list[str]:
    found = entry.data.get("doubtful")  # v1: one step's name or None
    if not found:
        return []
    return [found] if isinstance(found, str) else [str(s) for s in found]


@dataclass
class _Run:
    """What the trail says so far, folded as the aggregate folds it (without its clock)."""

    definition: Definition
    phase: str = "forward"  # "forward", "compensating", or the terminal status
    results: set[str] = field(default_factory=set)
    skipped: set[str] = field(default_factory=set)
    failed: set[str] = field(default_factory=set)  # forward steps failed for good
    gave_up: set[str] = field(default_factory=set)  # a step's own call's last attempt failed
    undone: set[str] = field(default_factory=set)
    uncertain: list[str] = field(default_factory=list)
    attempts: dict[str, int] = field(default_factory=dict)  # call -> attempts recorded

    def apply(self, entry: AuditEntry) -> None:
        kind, data = _kind(entry), entry.data
        if kind == "succeeded":
            step = _step_of(entry)
            self.results.add(step)
            if step in self.uncertain:
                self.uncertain.remove(step)
            self._attempted(step, data.get("attempt"))
        elif kind == "StepSkipped":
            self.skipped.add(str(data["step"]))
        elif kind == "StepFailed":
            action, step = str(data["action"]), _step_of(entry)
            self._attempted(action, data.get("attempt"))
            if action == step and step not in self.results:
                if data.get("uncertain") and step not in self.uncertain:
                    self.uncertain.append(step)
                elif not data.get("retryable") and step in self.uncertain:
                    self.uncertain.remove(step)  # a "no" under the same key settles a doubt
                if data.get("retryAt") is None:
                    self.gave_up.add(step)
                    if self.phase == "forward":
                        self.failed.add(step)
        elif kind == "CompensationStarted":
            self.phase = "compensating"
            self.uncertain += [s for s in _doubtful(entry) if s not in self.uncertain]
        elif kind == "Compensated":
            self.undone.add(str(data["step"]))
            self._attempted(str(data["action"]), data.get("attempt"))
        elif kind == "RetryRequested" and self.phase == "COMPENSATION_FAILED":
            self.phase = "compensating"
        elif kind in _ENDS:
            self.phase = _ENDS[kind]

    def _attempted(self, action: str, attempt: Any) -> None:
        if isinstance(attempt, int) and attempt:
            self.attempts[action] = max(attempt, self.attempts.get(action, 0))

    @property
    def ended(self) -> bool:
        return self.phase in TERMINAL

    def settled(self, step: str) -> bool:
        return step in self.results or step in self.skipped or step in self.failed

    def current(self) -> list[Step | Wait]:
        """The forward steps due now: the first node's unsettled branches (a `when` that says
        no is recorded as StepSkipped at once, so it need not be evaluated here)."""
        if self.phase != "forward":
            return []
        for node in self.definition.steps:
            branches = node.branches if isinstance(node, Parallel) else (node,)
            pending = [b for b in branches if not self.settled(b.name)]
            if pending:
                return pending
            if any(b.name in self.failed for b in branches):
                return []  # the workflow turns to compensation next
        return []

    def owed(self) -> tuple[Step, str] | None:
        """The next call compensation makes (the step, the call's name): the undo of the last
        step done, or the step itself asked again when it is in doubt."""
        if self.phase != "compensating":
            return None
        for step in reversed(self.definition.flat_steps):
            if not isinstance(step, Step) or step.undo is None or step.name in self.undone:
                continue
            if step.name in self.results:
                return step, step.undo.name
            if step.name in self.uncertain:
                return step, step.name
        return None


# --- the timeline ------------------------------------------------------------------------------

@dataclass
class _Due:
    """A call that is due (or will be, after a backoff) and has no outcome yet."""

    start: datetime
    undo: bool = False
    backoff_from: datetime | None = None  # the failure the retry follows
    error: str | None = None  # that failure's
    live: bool = True  # False once the workflow left it behind (compensation, its end)


@dataclass
class _Open:
    """A wait under way: since when, for which signals."""

    start: datetime
    signal: str
    reject: str


class _Builder:
    """Walks the trail once, keeping what is due and since when."""

    def __init__(self, definition: Definition, entries: Sequence[AuditEntry]) -> None:
        self.definition, self.entries = definition, entries
        self.run = _Run(definition)
        self.bars: list[Bar] = []
        self.marks: list[Mark] = []
        self.due: dict[str, _Due] = {}
        self.waits: dict[str, _Open] = {}
        self.waited: set[str] = set()  # waits whose bar is drawn
        workflow_id = entries[0].workflow_id if entries else ""
        self.workflow_id = workflow_id
        self.trace = _trace_id(workflow_id)

    def build(self, now: datetime) -> Timeline:
        previous: datetime | None = None
        for entry in self.entries:
            at = parse_time(entry.timestamp)
            self._record(entry, at, previous or at)
            self.run.apply(entry)
            self._schedule(at)
            previous = at
        if not self.run.ended:
            self._under_way(now if previous is None else max(now, previous))
        start = parse_time(self.entries[0].timestamp) if self.entries else now
        ends = [b.end for b in self.bars] + [m.at for m in self.marks]
        if previous is not None:
            ends.append(previous)
        if not self.run.ended:
            ends.append(now)
        order = [s.name for s in self.definition.flat_steps]
        used = list(dict.fromkeys(b.lane for b in self.bars))
        lanes = [s for s in order if s in used] + [s for s in used if s not in order]
        return Timeline(start, max([start, *ends]), tuple(lanes), tuple(self.bars),
                        tuple(self.marks))

    # --- one entry -----------------------------------------------------------------------

    def _record(self, entry: AuditEntry, at: datetime, previous: datetime) -> None:
        kind, data = _kind(entry), entry.data
        if kind == "succeeded":
            step = _step_of(entry)
            if step in self.waits or isinstance(self._node(step), Wait):
                self._close_wait(step, at, "signalled")
            else:
                self._outcome(step, step, _int(data.get("attempt")), "ok", None, at, previous)
        elif kind == "StepFailed":
            self._failed(entry, at, previous)
        elif kind == "Compensated":
            self._outcome(str(data["action"]), str(data["step"]), _int(data.get("attempt")),
                          "ok", None, at, previous)
        elif kind == "StepSkipped":
            # it looked due between the event that settled its predecessor and this one
            self.due.pop(str(data["step"]), None)
        elif kind == "Waiting":
            step = str(data["step"])
            wait = self._node(step)
            reject = wait.reject if isinstance(wait, Wait) else ""
            self.waits[step] = _Open(at, str(data.get("signal", "")), reject)
        elif kind == "Signalled":
            self._signalled(entry, at)
        elif kind == "CompensationStarted":
            self._compensating(entry, at)
        elif kind == "RetryRequested":
            for due in self.due.values():  # the operator's retry does not wait for a backoff
                if due.live and due.start > at:
                    due.start = at
            self._mark(at, "retry", f"retry by {data.get('by', '?')}",
                       ("by", data.get("by")), ("reason", data.get("reason")))
        elif kind == "CancelRequested":
            self._mark(at, "cancel", f"cancel by {data.get('by', '?')}", ("by", data.get("by")))
        elif kind == "Started":
            self._mark(at, "started", "started",
                       ("definition", f"{data.get('definition', '?')} "
                                      f"v{data.get('definitionVersion', '?')}"),
                       ("key", data.get("key")))
        elif kind in _ENDS:
            status = _ENDS[kind]
            self._leave_behind(at)
            for step in list(self.waits):
                self._close_wait(step, at, "failed", status.lower())
            self._mark(at, "ended", status.lower().replace("_", " "), ("status", status),
                       ("error", data.get("error")))

    def _failed(self, entry: AuditEntry, at: datetime, previous: datetime) -> None:
        data = entry.data
        action, step = str(data["action"]), _step_of(entry)
        error = str(data.get("error", ""))
        if action == step and isinstance(self._node(step), Wait):
            # a wait gives up: its reject signal closed the bar already, else it timed out
            self._close_wait(step, at, "timeout", error)
            return
        retry_at = data.get("retryAt")
        outcome = ("retry" if retry_at is not None
                   else "doubt" if data.get("uncertain") else "failed")
        attempt = _int(data.get("attempt"))
        self._outcome(action, step, attempt, outcome, error, at, previous)
        if retry_at is not None:
            retry = datetime.fromtimestamp(float(retry_at), at.tzinfo)
            self.due[action] = _Due(max(at, retry), action != step, at, error)

    def _signalled(self, entry: AuditEntry, at: datetime) -> None:
        signal = str(entry.data.get("signal", ""))
        for step, wait in list(self.waits.items()):
            if signal == wait.signal:
                self._close_wait(step, at, "signalled")
            elif signal == wait.reject:
                self._close_wait(step, at, "failed", f"rejected by signal {signal!r}")
        body = json.dumps(entry.data.get("body"), sort_keys=True, ensure_ascii=False)
        self._mark(at, "signal", f"signal {signal}", ("signal", signal),
                   ("body", body if len(body) <= 200 else body[:199] + "…"))

    def _compensating(self, entry: AuditEntry, at: datetime) -> None:
        """Forward calls stop: those in flight are in doubt (asked again if they have an
        undo), backoffs end here, waits end here."""
        doubtful = _doubtful(entry)
        error = entry.data.get("error")
        for action, due in self.due.items():
            if not due.live or due.undo:
                continue
            if due.backoff_from is not None:
                self._backoff(action, due, min(due.start, at))
            elif action in doubtful:
                self._bar(action, action, "call", due.start, at, "doubt",
                          self.run.attempts.get(action, 0) + 1,
                          f"in flight when compensation started: {error}")
            due.live = False
        for step in list(self.waits):
            self._close_wait(step, at, "failed", str(error))

    def _leave_behind(self, at: datetime) -> None:
        for action, due in self.due.items():
            if due.live and due.backoff_from is not None:
                self._backoff(action, due, min(due.start, at))
            due.live = False

    def _schedule(self, at: datetime) -> None:
        """What became due after this entry, due from its timestamp."""
        actions = [(s.name, False) for s in self.run.current() if isinstance(s, Step)]
        owed = self.run.owed()
        if owed is not None:
            actions.append((owed[1], owed[1] != owed[0].name))
        for action, undo in actions:
            due = self.due.get(action)
            if due is None or not due.live:
                self.due[action] = _Due(at, undo)

    def _under_way(self, now: datetime) -> None:
        for action, due in self.due.items():
            if not due.live:
                continue
            if due.backoff_from is not None:
                self._backoff(action, due, due.start)  # may end after now: the retry's time
            if due.start <= now:
                kind = "undo" if due.undo else "call"
                self._bar(action, self._step_of_call(action), kind, due.start, now, "running",
                          self.run.attempts.get(action, 0) + 1, None)
        for step, wait in self.waits.items():
            self._wait_bar(step, wait, now, "waiting", None)

    # --- bars and marks ------------------------------------------------------------------

    def _outcome(self, action: str, step: str, attempt: int, outcome: str, error: str | None,
                 at: datetime, previous: datetime) -> None:
        due = self.due.pop(action, None)
        if due is not None and due.backoff_from is not None:
            self._backoff(action, due, min(due.start, at))
        # no record of when it became due (a late outcome, a trail the fold cannot follow):
        # it was due at the latest after the entry before its outcome
        start = min(due.start, at) if due is not None else previous
        kind = "call" if action == step else "undo"
        self._bar(action, step, kind, start, at, outcome, attempt, error)

    def _backoff(self, action: str, due: _Due, end: datetime) -> None:
        assert due.backoff_from is not None
        attempt = self.run.attempts.get(action, 0) + 1
        self._bar(action, self._step_of_call(action), "backoff", due.backoff_from,
                  max(end, due.backoff_from), "retry", attempt, due.error,
                  label=f"{action}: backoff before attempt {attempt}")
        due.backoff_from = None

    def _close_wait(self, step: str, at: datetime, outcome: str, error: str | None = None) -> None:
        wait = self.waits.pop(step, None)
        if wait is None:
            if outcome != "signalled" or step in self.waited:
                return
            # its signal came before the wait began: the wait took no time
            node = self._node(step)
            wait = _Open(at, node.signal if isinstance(node, Wait) else "", "")
        self._wait_bar(step, wait, at, outcome, error)

    def _wait_bar(self, step: str, wait: _Open, end: datetime, outcome: str,
                  error: str | None) -> None:
        self.waited.add(step)
        detail = [("action", step), ("attempt", "1"), ("outcome", outcome)]
        if error:
            detail.append(("error", error))
        detail += [("started", iso(wait.start)), ("ended", iso(end)),
                   ("duration", _seconds(wait.start, end)), ("signal", wait.signal),
                   ("trace id", self.trace)]
        self.bars.append(Bar(step, "wait", wait.start, end, outcome, 1,
                             f"{step} waits for {wait.signal}: {outcome}", tuple(detail)))

    def _bar(self, action: str, step: str, kind: str, start: datetime, end: datetime,
             outcome: str, attempt: int, error: str | None, label: str | None = None) -> None:
        detail = [("action", action), ("attempt", str(attempt)), ("outcome", outcome)]
        if error:
            detail.append(("error", error))
        detail += [("started", iso(start)), ("ended", iso(end)),
                   ("duration", _seconds(start, end)),
                   ("idempotency key", f"{self.workflow_id}:{action}"),
                   ("trace id", self.trace)]
        if label is None:
            what = action if kind == "call" else f"{action} (undo of {step})"
            label = f"{what} attempt {attempt}: {outcome}"
        self.bars.append(Bar(step, kind, start, end, outcome, attempt, label, tuple(detail)))

    def _mark(self, at: datetime, kind: str, label: str, *detail: tuple[str, Any]) -> None:
        lines = tuple((k, str(v)) for k, v in detail if v is not None)
        self.marks.append(Mark(at, kind, label, (*lines, ("at", iso(at)))))

    def _step_of_call(self, action: str) -> str:
        found = self.definition.calls.get(action)
        return found[0].name if found is not None else LEGACY_UNDO_OF.get(action, action)

    def _node(self, name: str) -> Step | Wait | None:
        try:
            return self.definition.step(name)
        except KeyError:
            return None


def _trace_id(workflow_id: str) -> str:
    try:
        return uuid.UUID(workflow_id).hex
    except ValueError:
        return ""


def _int(value: Any) -> int:
    return value if isinstance(value, int) else 0


def _seconds(start: datetime, end: datetime) -> str:
    return f"{(end - start).total_seconds():.3f} s"
