"""The process application: reacts to each recorded event by driving the workflow's next call.

It never blocks the event pipeline on a participant. `handle()` only books the workflow for a
drive; a drive asks the aggregate what is due, makes the call on that participant's own bounded
pool (its bulkhead), records the outcome as events and asks again. Waits between retries are
timers, not sleeping threads.

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
from dataclasses import dataclass
from typing import Any, Protocol

from eventsourcing.persistence import IntegrityError

from application.ports import Call, Outcome, Participants, Rejected, Succeeded, Transient
from application.timers import Timers
from application.workflows import WorkflowNotFound, Workflows
from domain.workflow import RESULT_KEY, STEPS, Due, Workflow

log = logging.getLogger("orchestrator")
Apply = Callable[[Workflow], None]


@dataclass(frozen=True)
class RetryPolicy:
    """How many attempts a step and a compensation get, and how long to wait between them:
    `backoff(attempt, retry_after)` gives the seconds before attempt + 1."""

    step_max_attempts: int
    compensation_max_attempts: int
    backoff: Callable[[int, float | None], float]


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


class Orchestrator:
    """Drives every workflow whose events it is handed, one drive per workflow at a time."""

    name = "orchestrator"

    def __init__(
        self, workflows: Workflows, participants: Participants, policy: RetryPolicy,
        bulkheads: dict[str, int], metrics: Metrics | None = None,
        clock: Callable[[], float] = time.time, loaders: int = 4, shards: int = 16,
    ) -> None:
        self.workflows, self.participants, self.policy = workflows, participants, policy
        self.metrics = metrics or NoMetrics()
        self.clock = clock
        self.pools = {
            name: ThreadPoolExecutor(size, thread_name_prefix=f"call-{name}")
            for name, size in bulkheads.items()
        }
        self.loader = ThreadPoolExecutor(loaders, thread_name_prefix="drive")
        self.timers = Timers()
        self._lock = threading.Lock()
        self._busy: set[uuid.UUID] = set()  # a drive is under way
        self._again: set[uuid.UUID] = set()  # something new arrived during that drive
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
                self.drive(wid, n if new else None)

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
            return sum(1 for wid in self._busy if self.shard_of(wid) == shard)

    def drive(self, workflow_id: uuid.UUID, first: Any = None) -> None:
        """Starts a drive of the workflow unless one is under way (then it runs again after)."""
        with self._lock:
            if self._stopping or self.shard_of(workflow_id) not in self._owned:
                return
            if workflow_id in self._busy:
                self._again.add(workflow_id)
                return
            self._busy.add(workflow_id)
        self.loader.submit(self._guard, workflow_id, self._load_and_go, workflow_id, first)

    def busy(self) -> int:
        """How many workflows have a drive under way."""
        with self._lock:
            return len(self._busy)

    def stop(self, grace_s: float = 10.0) -> bool:
        """Takes no new calls and waits up to `grace_s` for the ones in flight to be recorded.
        Returns whether everything in flight finished."""
        with self._lock:
            self._stopping = True
        self.timers.stop()
        deadline = time.monotonic() + grace_s
        while self.busy() and time.monotonic() < deadline:
            time.sleep(0.02)
        done = self.busy() == 0
        for pool in [self.loader, *self.pools.values()]:
            pool.shutdown(wait=done, cancel_futures=True)
        return done

    # --- a drive ----------------------------------------------------------------------------

    def _guard(self, workflow_id: uuid.UUID, work: Callable[..., None], *args: Any) -> None:
        """Runs one piece of a drive; an unexpected error (a database outage, say) ends this
        drive and books another one a little later, so no workflow is left behind."""
        try:
            work(*args)
        except Exception:
            with self._lock:
                stopping = self._stopping
                self._doubtful.add(workflow_id)
                # What we wrote no longer tells what is left to do: a replay must drive it.
                self._known.pop(workflow_id, None)
            if stopping:  # the stores closed under a call abandoned at the end of the grace
                log.info("drive abandoned at stop", extra={"workflow_id": str(workflow_id)})
            else:
                log.exception("drive failed; retrying", extra={"workflow_id": str(workflow_id)})
            self._end(workflow_id, finished=None, retry_in=1.0)

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
            self._end(workflow_id, finished=None)
            return
        with self._lock:
            # Not driven here before (a restart), or a drive here died mid-call: a call may be
            # in flight or done unrecorded, as far as we can tell.
            fresh = workflow_id not in self._known or workflow_id in self._doubtful
            self._doubtful.discard(workflow_id)
        self._settle(workflow, None, fresh)

    def _settle(self, workflow: Workflow, apply: Apply | None, fresh: bool = False) -> None:
        """Applies an outcome, takes the transitions that follow, records them, then makes the
        next call or waits. A concurrent writer (a cancel, a retry) makes us re-apply the
        outcome to the newest version: outcomes are idempotent on the aggregate."""
        for _ in range(20):
            was_terminal = workflow.is_terminal
            if apply is not None:
                apply(workflow)
            due = workflow.advance(fresh)
            if not workflow.pending_events:
                break
            # Known before it is written: its notification may reach handle() before the
            # save returns here, and must not book a second drive of what we drive already.
            self._remember(workflow.id, workflow.version)
            try:
                self.workflows.record(workflow)
                break
            except IntegrityError:
                workflow = self.workflows.load(workflow.id)
        else:
            raise RuntimeError(f"workflow {workflow.id}: could not record under contention")
        wid = workflow.id
        self._remember(wid, workflow.version)
        if due is None:
            if workflow.is_terminal and not was_terminal:  # it ended in this drive
                self.metrics.workflow_finished(workflow.status)
                log.info("workflow %s", workflow.status, extra=_context(wid))
            self._end(wid, finished=workflow.status)
            return
        wait = (due.not_before or 0) - self.clock()
        if wait > 0:
            self._end(wid, finished=None, retry_in=wait)
            return
        with self._lock:
            stopping = self._stopping
        if stopping:
            self._end(wid, finished=None)
            return
        pool = self.pools[self.participants.participant_of(due.action)]
        pool.submit(self._guard, wid, self._call, workflow, due)

    def _call(self, workflow: Workflow, due: Due) -> None:
        wid = workflow.id
        call = Call(
            action=due.action, workflow_id=str(wid), idempotency_key=f"{wid}:{due.action}",
            args=due.args, traceparent=f"00-{_context(wid)['trace_id']}-{uuid.uuid4().hex[:16]}-01",
        )
        started = time.monotonic()
        outcome = self.participants.call(call)
        self.metrics.call_finished(
            self.participants.participant_of(due.action), due.action,
            type(outcome).__name__.lower(), time.monotonic() - started,
        )
        if not isinstance(outcome, Succeeded):
            log.warning("%s attempt %d: %s", due.action, due.attempt, outcome,
                        extra=_context(wid, action=due.action))
        apply = self._applier(due, outcome)
        if apply is None:  # no call was made (breaker open, rate limited): wait, then again
            self._end(wid, finished=None, retry_in=getattr(outcome, "retry_in", 1.0))
            return
        self._settle(workflow, apply)

    def _applier(self, due: Due, outcome: Outcome) -> Apply | None:
        action, attempt = due.action, due.attempt
        limit = (
            self.policy.compensation_max_attempts if due.compensating
            else self.policy.step_max_attempts
        )
        if isinstance(outcome, Succeeded):
            result_id = outcome.result.get(RESULT_KEY[action]) if action in STEPS else None
            if action in STEPS and not isinstance(result_id, str):
                outcome = Transient(f"2xx without {RESULT_KEY[action]}", status=500)
            else:
                return lambda w: w.succeed(action, attempt, result_id)
        if isinstance(outcome, Rejected):
            error = f"rejected ({outcome.status}): {outcome.detail}"
            return lambda w: w.fail(action, attempt, error, False, False, limit, None)
        if isinstance(outcome, Transient):
            transient = outcome
            uncertain = transient.maybe_applied
            error = transient.detail if transient.status is None else (
                f"{transient.status}: {transient.detail}")

            def fail(w: Workflow) -> None:
                delay = self.policy.backoff(w.budget.get(action, 0) + 1, transient.retry_after)
                w.fail(action, attempt, error, True, uncertain, limit, self.clock() + delay)

            return fail
        return None

    # --- bookkeeping ------------------------------------------------------------------------

    def _remember(self, workflow_id: uuid.UUID, version: int) -> None:
        with self._lock:
            self._known[workflow_id] = version
            self._known.move_to_end(workflow_id)
            while len(self._known) > 100_000:
                self._known.popitem(last=False)

    def _end(self, workflow_id: uuid.UUID, finished: str | None, retry_in: float = 0) -> None:
        """Ends a drive: forgets a finished workflow, or books its next drive."""
        with self._lock:
            self._busy.discard(workflow_id)
            again = workflow_id in self._again
            self._again.discard(workflow_id)
            if finished is not None:
                self._running.pop(workflow_id, None)
        if retry_in > 0:
            self.timers.call_later(retry_in, lambda: self.drive(workflow_id))
        if again:
            self.drive(workflow_id)


def _context(workflow_id: uuid.UUID, **more: str) -> dict[str, str]:
    """What a log line about a workflow carries: its id, and its trace id (derived from the
    id, so every call of one workflow shares one trace)."""
    return {"workflow_id": str(workflow_id), "trace_id": workflow_id.hex, **more}
