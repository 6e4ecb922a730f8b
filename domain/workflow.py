"""The Workflow aggregate: one run of a definition, its events, and the rules of what comes next.

Pure: no clocks (the time comes in as an argument), no I/O. The aggregate folds its events on
its own; to decide what is due it is handed the compiled definition it is pinned to (its name
and version are in `Started`). It says which calls are due (several at once in a parallel
group), which compensations are owed, when to look again (a wait's timeout, the deadline) and
which transitions are legal; the process application only asks it and records what the
participants answered.

Event classes and their module path are a stored contract: rename nothing; change a field with
`class_version` and an upcaster. The order saga's events from before definitions existed
(`Charged`, `Reserved`, `Shipped`, and the first versions of `Started`, `StepFailed` and
`CompensationStarted`) still load: each folds into the same state as its generic successor.
"""
from __future__ import annotations

import uuid
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

from eventsourcing.domain import Aggregate, event

from domain.definitions import Definition, Parallel, RenderedCall, Step, Wait

TERMINAL = ("COMPLETED", "FAILED", "COMPENSATION_FAILED", "CANCELLED")
RETRYABLE = ("COMPENSATION_FAILED",)
NAMESPACE = uuid.UUID("6f1e7d3c-58a2-4c39-9d0e-0c1b2a3f4e5d")

# The order saga ran before definitions existed: its workflows were created by order id alone,
# and its first events name its steps' undos. These are the only facts of one definition that
# the engine knows, and only so that a store written then keeps working.
LEGACY = "order"
LEGACY_UNDO_OF = {"refund": "charge", "release": "reserve", "cancel": "ship"}


class InvalidTransition(Exception):
    """The workflow's status does not allow what was asked."""

    def __init__(self, workflow_id: uuid.UUID, status: str, what: str):
        super().__init__(f"workflow {workflow_id} is {status}: cannot {what}")
        self.workflow_id, self.status, self.what = workflow_id, status, what


class UnknownSignal(ValueError):
    """No wait of the workflow's definition takes this signal."""

    def __init__(self, workflow_id: uuid.UUID, signal: str, known: list[str]):
        super().__init__(f"workflow {workflow_id} takes no signal {signal!r} "
                         f"(its definition waits for: {', '.join(known) or 'none'})")
        self.workflow_id, self.signal = workflow_id, signal


@dataclass(frozen=True)
class Due:
    """A participant call the workflow needs now (or not before `not_before`, epoch seconds).

    `action` is the call's name (a step's or an undo's; the idempotency key is
    `<workflowId>:<action>`); the limits are the step's own, None where the definition leaves
    them to the deployment's settings."""

    action: str
    step: str
    participant: str
    attempt: int
    call: RenderedCall
    not_before: float | None
    compensating: bool
    timeout_s: float | None = None
    max_attempts: int | None = None
    backoff_base_s: float | None = None
    backoff_cap_s: float | None = None
    keeps: Step | None = field(default=None, compare=False)  # what a 2xx must yield


@dataclass(frozen=True)
class Plan:
    """What the workflow needs: the calls due (now or later), and when to look at it again
    although nothing happened (a wait's timeout, the deadline); None when never."""

    dues: tuple[Due, ...] = ()
    wake_at: float | None = None


class Workflow(Aggregate):
    """One run of a definition: its steps in order, parallel groups at once, waits for
    signals; on a failure for good, what succeeded is undone in reverse."""

    @staticmethod
    def create_id(definition: str, key: str) -> uuid.UUID:
        """The same definition and key always map to the same workflow: a start is idempotent.
        The order saga's ids predate definitions, and stay what they were."""
        return uuid.uuid5(NAMESPACE, key if definition == LEGACY else f"{definition}/{key}")

    class Started(Aggregate.Created):
        """v2: the definition (name and version) and its input; v1 was the order saga's."""

        definition: str
        definition_version: int
        key: str
        input: dict[str, Any]

        class_version = 2

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state["definition"], state["definition_version"] = LEGACY, 1
            state["key"] = state.pop("order_id")
            state["input"] = {k: state.pop(k) for k in ("cents", "skus", "address")}

    @event(Started)
    def __init__(self, definition: str, definition_version: int, key: str,
                 input: dict[str, Any]) -> None:
        self.definition, self.definition_version = definition, definition_version
        self.key, self.input = key, input
        self.status = "STARTED"
        self.results: dict[str, Any] = {}  # step -> kept values; a wait -> its signal's body
        self.skipped: list[str] = []  # steps whose `when` said no
        self.failed: dict[str, str] = {}  # steps that failed for good -> why
        self.undone: list[str] = []  # compensated steps, in order
        self.attempts: dict[str, int] = {}  # call -> attempts made, for the record
        self.budget: dict[str, int] = {}  # call -> attempts since the last operator retry
        self.uncertain: list[str] = []  # steps whose last attempt may have taken effect
        self.retry_at: dict[str, float] = {}  # call -> not before (epoch seconds)
        self.waits: dict[str, float] = {}  # wait under way -> its timeout (epoch seconds)
        self.signals: dict[str, Any] = {}  # signal received -> its body
        self.progress = "STARTED"  # the last step's status: what WAITING returns to
        self.error: str | None = None
        self.reason: str | None = None  # why compensating: "failed" or "cancelled"
        self.cancel_requested = False

    # --- what comes next -------------------------------------------------------------------

    def same_start(self, definition: str, input: dict[str, Any]) -> bool:
        """Whether a repeated start asks for exactly what this workflow was started with."""
        return self.definition == definition and self.input == input

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL

    @property
    def running(self) -> bool:
        """Going forward: not compensating, not ended."""
        return self.status not in TERMINAL and self.status != "COMPENSATING"

    def advance(self, definition: Definition, now: float, fresh: bool = False,
                inflight: Collection[str] = ()) -> Plan:
        """Takes every transition that needs no call, then says what is due.

        A cancel or the deadline may come while calls are in flight (`inflight`, the calls
        the caller has made and not heard back from): those steps are treated as possibly
        done, so that compensation asks them again under the same key before undoing
        anything. `fresh` says the caller cannot know what an earlier driver (one that crashed
        or stopped) had in flight: every step that was due is treated so."""
        while not self.is_terminal:
            if self.status == "COMPENSATING":
                plan = self._compensation(definition)
            elif self.cancel_requested:
                self.compensation_started(
                    reason="cancelled", error="cancelled by client",
                    doubtful=self._in_flight(definition, fresh, inflight))
                continue
            elif (deadline := self._deadline(definition)) is not None and now >= deadline:
                self.compensation_started(
                    reason="failed", error="deadline exceeded",
                    doubtful=self._in_flight(definition, fresh, inflight))
                continue
            else:
                plan = self._forward(definition, now)
            if plan is not None:
                return plan
        return Plan()

    def _forward(self, d: Definition, now: float) -> Plan | None:
        """The next forward step's plan, or None after recording a transition."""
        context = self.context("")
        for node in d.steps:
            if isinstance(node, Parallel):
                pending = [b for b in node.branches if not self._settled(b.name)]
                for branch in pending:
                    if not branch.applies(context):
                        self.step_skipped(step=branch.name)
                        return None
                if pending:  # a failed branch's siblings are let finish before undoing
                    return Plan(tuple(self._due(d, b, b.name) for b in pending),
                                self._deadline(d))
                failed = [b.name for b in node.branches if b.name in self.failed]
                if failed:
                    self.compensation_started(reason="failed", error=self.failed[failed[0]],
                                              doubtful=[])
                    return None
                continue
            if node.name in self.failed:
                self.compensation_started(reason="failed", error=self.failed[node.name],
                                          doubtful=[])
                return None
            if self._settled(node.name):
                continue
            if not node.applies(context):
                self.step_skipped(step=node.name)
                return None
            if isinstance(node, Wait):
                return self._wait(d, node, now)
            return Plan((self._due(d, node, node.name),), self._deadline(d))
        self.completed()
        return None

    def _wait(self, d: Definition, wait: Wait, now: float) -> Plan | None:
        if wait.reject in self.signals:
            self._give_up(wait.name, f"rejected by signal {wait.reject!r}")
            return None
        if wait.signal in self.signals:
            self.step_succeeded(step=wait.name, name=wait.event or "Signalled",
                                status=wait.status or self.progress, attempt=0,
                                result=self.signals[wait.signal])
            return None
        until = self.waits.get(wait.name)
        if until is None:
            self.waiting(step=wait.name, signal=wait.signal, until=now + wait.timeout_s)
            return None
        if now >= until:
            self._give_up(wait.name, f"no signal {wait.signal!r} within {wait.timeout_s:g} s")
            return None
        deadline = self._deadline(d)
        return Plan((), until if deadline is None else min(until, deadline))

    def _give_up(self, step: str, error: str) -> None:
        self.step_failed(action=step, step=step, attempt=1, error=error, retryable=False,
                         uncertain=False, retry_at=None)

    def _compensation(self, d: Definition) -> Plan | None:
        step = self._next_to_undo(d)
        if step is None:
            if self.reason == "cancelled":
                self.cancelled()
            else:
                self.failed_(error=self.error)
            return None
        assert step.undo is not None
        if step.name in self.results:
            return Plan((self._due(d, step, step.undo.name),))
        # The step's last attempt may have taken effect and we hold nothing to undo it with:
        # ask again under the same key, which returns the original result.
        return Plan((self._due(d, step, step.name),))

    def _next_to_undo(self, d: Definition) -> Step | None:
        for step in reversed(d.flat_steps):
            if not isinstance(step, Step) or step.undo is None or step.name in self.undone:
                continue
            if step.name in self.results or step.name in self.uncertain:
                return step
        return None

    def _siblings_pending(self, d: Definition, step: str) -> bool:
        for node in d.steps:
            if isinstance(node, Parallel) and any(b.name == step for b in node.branches):
                return any(not self._settled(b.name) for b in node.branches)
        return False

    def _settled(self, step: str) -> bool:
        return step in self.results or step in self.skipped or step in self.failed

    def _in_flight(self, d: Definition, fresh: bool, inflight: Collection[str]) -> list[str]:
        return [s for s in self._current(d) if fresh or s in inflight]

    def _current(self, d: Definition) -> list[str]:
        """The forward steps that may have a call in flight now (none is recorded yet)."""
        context = self.context("")
        for node in d.steps:
            branches = node.branches if isinstance(node, Parallel) else (node,)
            pending = [b for b in branches if not self._settled(b.name)]
            if pending:
                return [b.name for b in pending if isinstance(b, Step) and b.applies(context)]
        return []

    def _deadline(self, d: Definition) -> float | None:
        if d.deadline_s is None:
            return None
        return float(self.created_on.timestamp()) + d.deadline_s

    def _due(self, d: Definition, step: Step, action: str) -> Due:
        undo = step.undo if step.undo is not None and action == step.undo.name else None
        spec = undo or step
        call = spec.call.render(self.context(action))
        return Due(
            action=action, step=step.name, participant=step.participant,
            attempt=self.attempts.get(action, 0) + 1,
            call=call,
            not_before=self.retry_at.get(action), compensating=not self.running,
            timeout_s=spec.timeout_s, max_attempts=spec.attempts,
            backoff_base_s=spec.backoff_base_s, backoff_cap_s=spec.backoff_cap_s,
            keeps=step if undo is None else None,
        )

    def context(self, action: str) -> dict[str, Any]:
        """What a definition's expressions see."""
        return {"input": self.input, "key": self.key, "workflowId": str(self.id),
                "idempotencyKey": f"{self.id}:{action}", "reason": self.reason or "failed",
                "steps": self.results}

    # --- outcomes of calls -----------------------------------------------------------------

    def succeed(self, d: Definition, action: str, attempt: int, kept: dict[str, Any]) -> None:
        """Records a call that succeeded. A stale or repeated outcome changes nothing."""
        step, is_undo = d.calls[action]
        if is_undo:
            if step.name in self.undone or self.status != "COMPENSATING":
                return
            self.compensated(step=step.name, action=action, attempt=attempt)
            return
        if step.name in self.results or self.is_terminal:
            return
        missing = Step.unkept(kept) if step.keep else ()
        if missing or set(kept) != set(step.keep):
            raise ValueError(f"{action} succeeded without {', '.join(missing or step.keep)}")
        self.step_succeeded(step=step.name, name=step.event or "StepSucceeded",
                            status=step.status, attempt=attempt, result=kept)

    def fail(
        self, d: Definition, action: str, attempt: int, error: str, retryable: bool,
        uncertain: bool, max_attempts: int, retry_at: float | None,
    ) -> None:
        """Records a failed attempt. When it was the last one allowed, the saga turns: a
        forward step fails for good (the next advance compensates, once its parallel siblings
        have finished), a compensation ends COMPENSATION_FAILED."""
        if self.is_terminal or attempt <= self.attempts.get(action, 0):
            return  # an outcome that another attempt already overtook
        step = d.calls[action][0].name
        gives_up = not retryable or self.budget.get(action, 0) + 1 >= max_attempts
        self.step_failed(
            action=action, step=step, attempt=attempt, error=error, retryable=retryable,
            uncertain=uncertain, retry_at=None if gives_up else retry_at,
        )
        if not gives_up:
            return
        if self.running:
            if not self._siblings_pending(d, step):  # a failed branch's siblings finish first
                self.compensation_started(reason="failed", error=self.failed[step], doubtful=[])
            return
        if action == step and step not in self.uncertain:
            return  # a clear "no" to a doubtful step: nothing was applied, nothing to undo
        self.compensation_failed(action=action, error=f"{action}: {error}")

    # --- requests from clients and operators -------------------------------------------------

    def request_cancel(self) -> None:
        """A client's cancellation: honoured at the next decision, never mid-call."""
        if self.is_terminal:
            raise InvalidTransition(self.id, self.status, "cancel")
        if not self.cancel_requested:
            self.cancel_requested_(by="client")

    def request_retry(self, by: str, reason: str) -> None:
        """An operator's retry: resumes a COMPENSATION_FAILED or a stuck running workflow.
        Like a cancel, one that would change nothing records nothing."""
        if self.status in TERMINAL and self.status not in RETRYABLE:
            raise InvalidTransition(self.id, self.status, "retry")
        if self.status not in RETRYABLE and not self.budget and not self.retry_at:
            return  # nothing spent, nothing waited for: a retry would change nothing
        self.retry_requested(by=by, reason=reason)

    def signal(self, d: Definition, name: str, body: dict[str, Any]) -> None:
        """A signal for a wait (now or later: one that comes early is kept for its step). The
        same signal again records nothing; one for a wait that is over, or after the other
        answer to the same wait, is refused."""
        if self.is_terminal:
            raise InvalidTransition(self.id, self.status, f"take signal {name}")
        if name not in d.signals:
            raise UnknownSignal(self.id, name, sorted(d.signals))
        if name in self.signals:
            return
        wait, rejects = d.signals[name]
        other = wait.signal if rejects else wait.reject
        if other in self.signals or self._settled(wait.name) or not self.running:
            raise InvalidTransition(self.id, self.status,
                                    f"take signal {name}: the wait {wait.name} is over")
        self.signalled(signal=name, body=body)

    # --- events ---------------------------------------------------------------------------

    class StepSucceeded(Aggregate.Event):
        """A step's call succeeded (or a wait's signal came). `name` is the definition's
        name for it (the audit shows it: `Charged`), `result` what it kept."""

        step: str
        name: str
        status: str | None
        attempt: int
        result: Any

    @event(StepSucceeded)
    def step_succeeded(self, step: str, name: str, status: str | None, attempt: int,
                       result: Any) -> None:
        self._step_done(step, result, attempt, status)

    def _step_done(self, step: str, result: Any, attempt: int, status: str | None) -> None:
        self.results[step] = result
        if attempt:
            self.attempts[step] = max(attempt, self.attempts.get(step, 0))
        if step in self.uncertain:
            self.uncertain.remove(step)
        self.retry_at.pop(step, None)
        self.waits.pop(step, None)
        if self.running and status:
            self.status = self.progress = status

    @event("StepSkipped")
    def step_skipped(self, step: str) -> None:
        self.skipped.append(step)

    @event("Waiting")
    def waiting(self, step: str, signal: str, until: float) -> None:
        self.waits[step] = until
        self.status = "WAITING"

    @event("Signalled")
    def signalled(self, signal: str, body: dict[str, Any]) -> None:
        self.signals[signal] = body

    @event("Completed")
    def completed(self) -> None:
        self.status = "COMPLETED"

    class StepFailed(Aggregate.Event):
        """An attempt failed. v2 names the step the call belongs to (its own name, or the
        step an undo compensates); `retry_at` None means no other attempt will follow."""

        action: str
        step: str
        attempt: int
        error: str
        retryable: bool
        uncertain: bool
        retry_at: float | None

        class_version = 2

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state["step"] = LEGACY_UNDO_OF.get(state["action"], state["action"])

    @event(StepFailed)
    def step_failed(self, action: str, step: str, attempt: int, error: str, retryable: bool,
                    uncertain: bool, retry_at: float | None) -> None:
        self.attempts[action] = attempt
        self.budget[action] = self.budget.get(action, 0) + 1
        if action == step and step not in self.results:
            if uncertain and step not in self.uncertain:
                self.uncertain.append(step)
            elif not retryable and step in self.uncertain:
                # A rejection under the same key settles an earlier doubt: had that call taken
                # effect, the participant would have answered with its stored result.
                self.uncertain.remove(step)
            if retry_at is None and self.running:
                self.failed[step] = f"{action}: {error}"
        if retry_at is None:
            self.retry_at.pop(action, None)
        else:
            self.retry_at[action] = retry_at
        self.error = f"{action}: {error}"

    class CompensationStarted(Aggregate.Event):
        """Undoing begins. v2: `doubtful` lists every step that may have taken effect
        unrecorded (a parallel group can have several); v1 held one or None."""

        reason: str
        error: str | None
        doubtful: list[str]

        class_version = 2

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state["doubtful"] = [state["doubtful"]] if state.get("doubtful") else []

    @event(CompensationStarted)
    def compensation_started(self, reason: str, error: str | None, doubtful: list[str]) -> None:
        self.status, self.reason, self.error = "COMPENSATING", reason, error
        self.retry_at, self.budget = {}, {}
        self.waits = {}
        for step in doubtful:
            if step not in self.uncertain:
                self.uncertain.append(step)

    @event("Compensated")
    def compensated(self, step: str, action: str, attempt: int) -> None:
        self.undone.append(step)
        self.attempts[action] = max(attempt, self.attempts.get(action, 0))
        self.retry_at.pop(action, None)

    @event("CompensationFailed")
    def compensation_failed(self, action: str, error: str) -> None:
        self.status, self.error, self.retry_at = "COMPENSATION_FAILED", error, {}

    @event("Failed")
    def failed_(self, error: str | None) -> None:
        self.status = "FAILED"

    @event("CancelRequested")
    def cancel_requested_(self, by: str) -> None:
        self.cancel_requested = True

    @event("Cancelled")
    def cancelled(self) -> None:
        self.status = "CANCELLED"

    @event("RetryRequested")
    def retry_requested(self, by: str, reason: str) -> None:
        if self.status == "COMPENSATION_FAILED":
            self.status = "COMPENSATING"
        self.budget, self.retry_at = {}, {}

    # --- the order saga's events from before definitions (read, never written) ------------------

    class _LegacyStep(Aggregate.Event):
        """A step of the order saga as recorded before definitions: it folds as the
        StepSucceeded it would be now."""

        attempt: int
        step = status = ""
        kept_as = ""  # the kept name its id goes by

        @property
        def result(self) -> dict[str, Any]:
            return {self.kept_as: getattr(self, _snake(self.kept_as))}

        def apply(self, aggregate: Any) -> None:
            aggregate._step_done(self.step, self.result, self.attempt, self.status)

    class Charged(_LegacyStep):
        """Its topic stays `domain.workflow:Workflow.Charged`. v2 added `cents`; a v1 event
        did not record it: it reads as None, never a guess."""

        payment_id: str
        cents: int | None
        step, status, kept_as = "charge", "CHARGED", "paymentId"

        class_version = 2

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state["cents"] = None

    class Reserved(_LegacyStep):
        reservation_id: str
        step, status, kept_as = "reserve", "RESERVED", "reservationId"

    class Shipped(_LegacyStep):
        shipment_id: str
        step, status, kept_as = "ship", "SHIPPED", "shipmentId"


def _snake(name: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in name)
