"""The process application: reacts to each recorded event by driving the workflow's next calls.

It never blocks the event pipeline on a participant. `handle()` only books the workflow for a
drive; a drive asks the aggregate what is due (several calls at once in a parallel group),
starts each call (the participants port makes it without holding a thread of ours, within the
participant's bulkhead), and when an outcome comes back a drive thread records it as events
and asks again. The drive threads are a fixed few, however many calls are in flight: they
only read and write the store, and their concurrent writes share commits (group commit).
Waits between retries, a wait's timeout and a deadline are timers, not sleeping threads. The
engine knows no step by name: the aggregate renders every call from the definition it is
pinned to.

Crash safety: calls are at-least-once and carry a stable idempotency key; recording is
exactly-once because the aggregate refuses stale or repeated outcomes and the store refuses a
second write at one version. The position this process reports as done never passes a
workflow that is still running, so after a restart every unfinished workflow is driven again.
"""
from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Protocol

from eventsourcing.persistence import IntegrityError

from application.definitions import Definitions
from application.ports import Call, Outcome, Participants, Rejected, Succeeded, Transient
from application.timers import Timers
from application.workflows import WorkflowNotFound, Workflows
from domain.definitions import Definition, Step
from domain.workflow import Due, Plan, Workflow

log = logging.getLogger("orchestrator")
DRIVERS = 32  # drive threads: enough writers at once for group commit to fill its batches
Apply = Callable[[Workflow], None]


@dataclass(frozen=True)
class RetryPolicy:
    """The deployment's attempts and backoff, for steps whose definition does not say:
    `backoff(attempt, retry_after, base_s, cap_s)` gives the seconds before attempt + 1
    (base_s and cap_s None: the deployment's)."""

    step_max_attempts: int
    compensation_max_attempts: int
    backoff: Callable[[int, float | None, float | None, float | None], float]


class Metrics(Protocol):
    """What the orchestrator reports; infrastructure decides where it goes."""

    def call_finished(self, participant: str, action: str, outcome: str, seconds: float) -> None:
        """One participant call, its outcome class and its duration."""

    def workflow_finished(self, status: str) -> None:
        """A workflow reached a terminal status."""


class NoMetrics:
    """Reports nothing."""

    def call_finished(self, participant: str, action: str, outcome: str, seconds: float) -> None:
        pass

    def workflow_finished(self, status: str) -> None:
        pass


@dataclass
class _Drive:
    """A workflow being driven here: its latest version, its calls in flight, and what came
    back that is not recorded yet. One thread at a time settles it (`settling`)."""

    workflow: Workflow | None = None
    definition: Definition | None = None
    inflight: set[str] = field(default_factory=set)
    outcomes: list[Apply] = field(default_factory=list)
    held: dict[str, float] = field(default_factory=dict)  # call -> not before (no call made)
    settling: bool = True
    stale: bool = False  # someone else wrote: read it again before the next decision
    timer: float | None = None  # when a look is booked already


class Orchestrator:
    """Drives every workflow whose events it is handed, one settling thread per workflow."""

    name = "orchestrator"

    def __init__(
        self, workflows: Workflows, definitions: Definitions, participants: Participants,
        policy: RetryPolicy, bulkhead: Callable[[str], int], metrics: Metrics | None = None,
        clock: Callable[[], float] = time.time, drivers: int = DRIVERS, shards: int = 16,
    ) -> None:
        self.workflows, self.definitions = workflows, definitions
        self.participants, self.policy, self.bulkhead = participants, policy, bulkhead
        # The port's non-blocking form, when it has one (see ports.Participants), found once
        self._start_call: Callable[[Call, Callable[[Outcome], None]], None] | None = getattr(
            participants, "start", None)
        self.metrics = metrics or NoMetrics()
        self.clock = clock
        # A port that can only block (a test's fake) gets a pool per participant: its bulkhead
        self.pools: dict[str, ThreadPoolExecutor] = {}
        self.drivers = ThreadPoolExecutor(drivers, thread_name_prefix="drive")
        self.timers = Timers()
        self._lock = threading.Lock()
        self._drives: dict[uuid.UUID, _Drive] = {}
        self._known: OrderedDict[uuid.UUID, int] = OrderedDict()  # versions we wrote ourselves
        self._doubtful: set[uuid.UUID] = set()  # a drive died after its call: outcome unknown
        self._running: dict[uuid.UUID, int] = {}  # unfinished workflow -> first position seen
        self._handled = 0
        self._stopping = False
        self.shards = shards
        self._owned: set[int] = set()  # the shards this process drives; others, elsewhere
        self._catching_up: dict[int, tuple[int, int]] = {}  # shard -> (from, until) positions
        self._cursor = 0  # the last position handed to handle(): moves back on a rewind
        self._replayed_up_to = 0  # events up to here are old news: replays after a restart

    # --- the event side ---------------------------------------------------------------------

    def handle(self, notifications: Sequence[Any]) -> None:
        """Books a drive for each workflow of ours that an event (not one we wrote) concerns."""
        latest = {n.originator_id: n for n in notifications}  # one drive per workflow
        for n in notifications:
            wid = n.originator_id
            with self._lock:
                self._handled, self._cursor = max(self._handled, n.id), n.id
                if self.shard_of(wid) not in self._owned:
                    continue
                if self._known.get(wid, 0) >= n.originator_version:
                    continue
                self._running.setdefault(wid, n.id)
            if latest[wid] is n:
                # A fresh Started is the workflow's only event; a replayed one rarely is.
                new = n.originator_version == 1 and n.id > self._replayed_up_to
                self.drive(wid, n if new else None, reload=True)

    def shard_of(self, workflow_id: uuid.UUID) -> int:
        """Workflows are spread over shards; one worker at a time drives a shard."""
        return workflow_id.int % self.shards

    def acquire(self, shard: int, resume_from: int, head: int = 0) -> None:
        """Starts driving the shard. Its events since `resume_from` must be handed to handle()
        again (the caller rewinds the follower); until they have been, the shard's position
        stays at `resume_from`. `head` is the store's last position now."""
        with self._lock:
            self._owned.add(shard)
            self._replayed_up_to = max(self._replayed_up_to, self._handled, head)
            if resume_from < self._handled:
                self._catching_up[shard] = (resume_from, self._handled)

    def release(self, shard: int) -> None:
        """Stops driving the shard; drives under way finish (see busy_in)."""
        with self._lock:
            self._owned.discard(shard)
            self._catching_up.pop(shard, None)
            for wid in [w for w in self._running if self.shard_of(w) == shard]:
                del self._running[wid]
            # Another worker may drive these now; if the shard comes back, drive them afresh.
            for wid in [w for w in self._known if self.shard_of(w) == shard]:
                del self._known[wid]

    def owned(self) -> set[int]:
        with self._lock:
            return set(self._owned)

    def positions(self) -> dict[int, int]:
        """Per owned shard, the last position such that every workflow of the shard with an
        event at or before it is finished or driven from a later event: where a restart of
        that shard may resume."""
        with self._lock:
            if not self._handled:
                return {}
            lowest = {k: self._handled for k in self._owned}
            for shard, (start, until) in list(self._catching_up.items()):
                if self._cursor >= until:
                    del self._catching_up[shard]
                else:
                    lowest[shard] = start
            for wid, first in self._running.items():
                shard = self.shard_of(wid)
                if shard in lowest:
                    lowest[shard] = min(lowest[shard], first - 1)
            return lowest

    def busy_in(self, shard: int) -> int:
        """How many drives of the shard are under way."""
        with self._lock:
            return sum(1 for wid in self._drives if self.shard_of(wid) == shard)

    def busy(self) -> int:
        """How many workflows have a drive under way."""
        with self._lock:
            return len(self._drives)

    def drive(self, workflow_id: uuid.UUID, first: Any = None, reload: bool = False) -> None:
        """Starts a drive of the workflow, or has the one under way look again (reading the
        workflow anew first when `reload`: someone else wrote)."""
        with self._lock:
            if self._stopping or self.shard_of(workflow_id) not in self._owned:
                return
            current = self._drives.get(workflow_id)
            if current is not None:
                current.stale = current.stale or reload
                if current.settling:
                    return  # the settling thread looks again before it lets go
                current.settling = True
                work: Callable[..., None] = self._settle
                args: tuple[Any, ...] = (workflow_id,)
            else:
                self._drives[workflow_id] = _Drive()
                work, args = self._load_and_go, (workflow_id, first)
        self.drivers.submit(self._guard, workflow_id, work, *args)

    def stop(self, grace_s: float = 10.0) -> bool:
        """Takes no new calls and waits up to `grace_s` for the ones in flight to be recorded.
        Returns whether everything in flight finished."""
        with self._lock:
            self._stopping = True
        self.timers.stop()
        deadline = time.monotonic() + grace_s
        while self._inflight() and time.monotonic() < deadline:
            time.sleep(0.02)
        done = not self._inflight()
        with self._lock:
            pools = [self.drivers, *self.pools.values()]
        for pool in pools:
            pool.shutdown(wait=done, cancel_futures=True)
        return done

    def _inflight(self) -> int:
        with self._lock:
            return sum(len(d.inflight) + d.settling for d in self._drives.values())

    # --- a drive ----------------------------------------------------------------------------

    def _guard(self, workflow_id: uuid.UUID, work: Callable[..., None], *args: Any) -> None:
        """Runs one piece of a drive; an unexpected error (a database outage, say) ends this
        drive and books another one a little later, so no workflow is left behind."""
        try:
            work(*args)
        except Exception:
            with self._lock:
                stopping = self._stopping
                self._drives.pop(workflow_id, None)
                self._doubtful.add(workflow_id)
                # What we wrote no longer tells what is left to do: a replay must drive it.
                self._known.pop(workflow_id, None)
            if stopping:  # the stores closed under a call abandoned at the end of the grace
                log.info("drive abandoned at stop", extra={"workflow_id": str(workflow_id)})
                return
            log.exception("drive failed; retrying", extra={"workflow_id": str(workflow_id)})
            self.timers.call_later(1.0, lambda: self.drive(workflow_id))

    def _load_and_go(self, workflow_id: uuid.UUID, first: Any = None) -> None:
        try:
            if first is not None:
                # A new workflow: its one event is in hand, so skip reading it back. Were
                # there a newer event, our first save would conflict and reload.
                started: Any = self.workflows.mapper.to_domain_event(first)
                workflow = started.mutate(None)
            else:
                workflow = self.workflows.load(workflow_id)
        except WorkflowNotFound:
            self._end(workflow_id)
            return
        with self._lock:
            # Not driven here before (a restart), or a drive here died mid-call: a call may be
            # in flight or done unrecorded, as far as we can tell.
            fresh = workflow_id not in self._known or workflow_id in self._doubtful
            self._doubtful.discard(workflow_id)
            drive = self._drives[workflow_id]
            drive.workflow, drive.stale = workflow, False
        drive.definition = self.definitions.get(
            workflow.definition, workflow.definition_version).definition
        self._settle(workflow_id, fresh)

    def _settle(self, workflow_id: uuid.UUID, fresh: bool = False) -> None:
        """Records what came back, takes the transitions that follow, then makes the calls
        that are due and not in flight, or books a look for later. Runs on one thread per
        drive at a time; outcomes that arrive meanwhile are taken in the next round."""
        was_terminal: bool | None = None  # as this settle found it (for the metric)
        while True:
            with self._lock:
                drive = self._drives[workflow_id]
                applies, drive.outcomes = drive.outcomes, []
                stale, drive.stale = drive.stale, False
                # In the same breath as the outcomes: a call that comes back is taken out of
                # `inflight` and its outcome added at once (in _call), so each call is either
                # applied in this round or known to be in flight. Read apart, a call could be
                # neither, and a cancel meanwhile would undo nothing of its effect.
                inflight = set(drive.inflight)
            assert drive.workflow is not None and drive.definition is not None
            workflow = self.workflows.load(workflow_id) if stale else drive.workflow
            if was_terminal is None:
                was_terminal = workflow.is_terminal
            workflow, plan = self._record(workflow, drive.definition, applies, fresh, inflight)
            fresh = False
            drive.workflow = workflow
            now = self.clock()
            with self._lock:
                if drive.outcomes or drive.stale:
                    continue  # more came back while we wrote: another round
                calls, later = self._split(drive, plan, now)
                drive.inflight.update(due.action for due in calls)
                ended = not drive.inflight
                if ended and plan.wake_at is not None:
                    # A wait's timeout or the deadline: looked at when nothing is in flight
                    # (a call's answer brings the next decision anyway).
                    later = plan.wake_at if later is None else min(later, plan.wake_at)
                if later is not None and later == drive.timer:
                    later = None  # already booked
                drive.timer = later if later is not None else drive.timer
                if ended:
                    del self._drives[workflow_id]
                    if workflow.is_terminal:
                        self._running.pop(workflow_id, None)
                    # Nothing is in flight: the next drive here knows all there is, even if
                    # this one wrote nothing (its calls waited unmade: no URL, a breaker). Not
                    # a restart's doubt, which would ask such a step again before undoing.
                    self._remember_locked(workflow_id, workflow.version)
                else:
                    drive.settling = False
            break
        if ended and workflow.is_terminal and not was_terminal:  # it ended in this drive
            self.metrics.workflow_finished(workflow.status)
            log.info("workflow %s", workflow.status, extra=_context(workflow_id))
        if later is not None:
            self.timers.call_later(later - now, partial(self._wake, workflow_id, later))
        for due in calls:
            self._start(workflow_id, due, drive.definition)

    def _wake(self, workflow_id: uuid.UUID, at: float) -> None:
        """A booked look comes due. It is no longer booked: were it taken while the drive is
        settling (and so not looked at by this call), the settling round books it again
        rather than take it for still pending, and the workflow is never left unwatched."""
        with self._lock:
            current = self._drives.get(workflow_id)
            if current is not None and current.timer == at:
                current.timer = None
        self.drive(workflow_id)

    def _split(self, drive: _Drive, plan: Plan, now: float) -> tuple[list[Due], float | None]:
        """The calls to make now, and when the earliest of the others comes due (after a
        backoff, or a breaker's or rate limit's wait). Called under the lock."""
        if self._stopping:
            return [], None
        calls: list[Due] = []
        times: list[float] = []
        for due in plan.dues:
            if due.action in drive.inflight:
                continue
            at = max(due.not_before or 0.0, drive.held.get(due.action, 0.0))
            if at <= now:
                drive.held.pop(due.action, None)
                calls.append(due)
            else:
                times.append(at)
        return calls, min(times) if times else None

    def _record(self, workflow: Workflow, definition: Definition, applies: list[Apply],
                fresh: bool, inflight: set[str]) -> tuple[Workflow, Plan]:
        """Applies the outcomes, advances and saves; on a concurrent writer (a cancel, a
        retry, a signal) it re-applies them to the newest version: outcomes are idempotent on
        the aggregate."""
        for _ in range(20):
            for apply in applies:
                apply(workflow)
            plan = workflow.advance(definition, self.clock(), fresh, inflight)
            if not workflow.pending_events:
                return workflow, plan
            # Known before it is written: its notification may reach handle() before the
            # save returns here, and must not book a second drive of what we drive already.
            self._remember(workflow.id, workflow.version)
            try:
                self.workflows.record(workflow)
            except IntegrityError:
                workflow = self.workflows.load(workflow.id)
                continue
            self._remember(workflow.id, workflow.version)
            return workflow, plan
        raise RuntimeError(f"workflow {workflow.id}: could not record under contention")

    def _start(self, workflow_id: uuid.UUID, due: Due, definition: Definition) -> None:
        """Starts the call; its outcome comes back to `_returned`, on whatever thread the
        port answers on."""
        call = Call(
            participant=due.participant, action=due.action, workflow_id=str(workflow_id),
            idempotency_key=f"{workflow_id}:{due.action}", method=due.call.method,
            path=due.call.target, body=due.call.body, timeout_s=due.timeout_s,
            traceparent=(f"00-{_context(workflow_id)['trace_id']}-"
                         f"{uuid.uuid4().hex[:16]}-01"),
        )
        returned = partial(self._guard, workflow_id, self._returned, workflow_id, due,
                           definition, time.monotonic())
        if self._start_call is not None:
            self._start_call(call, returned)
        else:
            self._pool(due.participant).submit(
                self._guard, workflow_id, lambda: returned(self.participants.call(call)))

    def _returned(self, workflow_id: uuid.UUID, due: Due, definition: Definition,
                  started: float, outcome: Outcome) -> None:
        """Books the outcome on the drive, and has a drive thread settle it unless one is
        settling already. Quick: it may run on the port's event loop."""
        self.metrics.call_finished(due.participant, due.action, type(outcome).__name__.lower(),
                                   time.monotonic() - started)
        if not isinstance(outcome, Succeeded):
            log.warning("%s attempt %d: %s", due.action, due.attempt, outcome,
                        extra=_context(workflow_id, action=due.action))
        apply = self._applier(due, outcome, definition)
        with self._lock:
            drive = self._drives.get(workflow_id)
            if drive is None:  # the drive was dropped (an error): the next one asks again
                return
            drive.inflight.discard(due.action)
            if apply is None:  # no call was made (breaker open, rate limited): wait, then again
                drive.held[due.action] = self.clock() + getattr(outcome, "retry_in", 1.0)
            else:
                drive.outcomes.append(apply)
            if drive.settling:
                return  # the settling thread takes it in its next round
            drive.settling = True
        self.drivers.submit(self._guard, workflow_id, self._settle, workflow_id)

    def _applier(self, due: Due, outcome: Outcome, definition: Definition) -> Apply | None:
        action, attempt = due.action, due.attempt
        limit = due.max_attempts or (
            self.policy.compensation_max_attempts if due.compensating
            else self.policy.step_max_attempts)
        if isinstance(outcome, Succeeded):
            kept = due.keeps.extract(outcome.result) if due.keeps is not None else {}
            missing = Step.unkept(kept)
            if not missing:
                return lambda w: w.succeed(definition, action, attempt, kept)
            # A participant bug: the effect may have happened, so retry (same key) to learn it
            outcome = Transient(f"2xx without {', '.join(missing)}", status=500)
        if isinstance(outcome, Rejected):
            error = f"rejected ({outcome.status}): {outcome.detail}"
            return lambda w: w.fail(definition, action, attempt, error, False, False, limit,
                                    None)
        if isinstance(outcome, Transient):
            transient = outcome
            error = transient.detail if transient.status is None else (
                f"{transient.status}: {transient.detail}")

            def fail(w: Workflow) -> None:
                delay = self.policy.backoff(w.budget.get(action, 0) + 1, transient.retry_after,
                                            due.backoff_base_s, due.backoff_cap_s)
                w.fail(definition, action, attempt, error, True, transient.maybe_applied, limit,
                       self.clock() + delay)

            return fail
        return None

    # --- bookkeeping ------------------------------------------------------------------------

    def _pool(self, participant: str) -> ThreadPoolExecutor:
        with self._lock:
            pool = self.pools.get(participant)
        if pool is not None:
            return pool
        # Outside the lock: the size may be read from the definitions' store, and every
        # handle() and drive waits on this lock.
        size = self.bulkhead(participant)
        with self._lock:
            pool = self.pools.get(participant)
            if pool is None:
                pool = self.pools[participant] = ThreadPoolExecutor(
                    size, thread_name_prefix=f"call-{participant}")
            return pool

    def _remember(self, workflow_id: uuid.UUID, version: int) -> None:
        with self._lock:
            self._remember_locked(workflow_id, version)

    def _remember_locked(self, workflow_id: uuid.UUID, version: int) -> None:
        if self.shard_of(workflow_id) not in self._owned:
            # A drive that ends after its shard was let go (release() forgot the shard's
            # workflows): were it remembered, the replay when the shard comes back would skip
            # it, and the look it booked for later would find the shard not ours then.
            self._known.pop(workflow_id, None)
            return
        self._known[workflow_id] = max(version, self._known.get(workflow_id, 0))
        self._known.move_to_end(workflow_id)
        while len(self._known) > 100_000:
            self._known.popitem(last=False)

    def _end(self, workflow_id: uuid.UUID) -> None:
        with self._lock:
            self._drives.pop(workflow_id, None)
            self._running.pop(workflow_id, None)


def _context(workflow_id: uuid.UUID, **more: str) -> dict[str, str]:
    """What a log line about a workflow carries: its id, and its trace id (derived from the
    id, so every call of one workflow shares one trace)."""
    return {"workflow_id": str(workflow_id), "trace_id": workflow_id.hex, **more}
