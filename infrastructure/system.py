"""What a process runs once built: the application, the views and, in a worker, the
orchestrator and the projection, with the shards and the projection it holds."""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from application.definitions import Definitions
from application.follower import Follower
from application.health import WorkerReport
from application.orchestrator import Metrics, Orchestrator, RetryPolicy
from application.ports import Participants
from application.projection import WorkflowProjection
from application.views import ViewsWritten
from application.workflows import Workflows
from infrastructure.recent_calls import RecentCalls
from infrastructure.settings import Settings
from infrastructure.views_sql import SqlViews

log = logging.getLogger("orchestrator.system")


class Coordinator(Protocol):
    """Decides which shards, and whether the projection, this worker holds (cluster.py)."""

    def start(self) -> None:
        """Starts taking what is this worker's, now and as workers come and go."""

    def stop(self) -> None:
        """Gives up what it holds."""


@dataclass
class System:
    """What a process runs: the application, the views and, in a worker, the readers.

    A worker drives only the shards it holds and runs the projection only while it holds
    that too; a coordinator (infrastructure/cluster.py) decides, so that several workers can
    share one database without two of them driving one workflow."""

    settings: Settings
    workflows: Workflows
    definitions: Definitions
    views: SqlViews
    policy: RetryPolicy
    make_participants: Callable[[System], Participants]
    participants: Participants | None = None
    metrics: Metrics | None = None
    orchestrator: Orchestrator | None = None
    projection: WorkflowProjection | None = None
    followers: dict[str, Follower] = field(default_factory=dict)
    coordinator: Coordinator | None = None
    recent: RecentCalls | None = None  # this worker's calls of the last minutes (health page)
    _stop: threading.Event = field(default_factory=threading.Event)
    _checkpointer: threading.Thread | None = None
    _wakeups: list[threading.Event] = field(default_factory=list)  # of the running readers
    _save_listener: Any = None  # the one PostgreSQL LISTEN for other processes' saves
    _hooked: bool = False

    def start_worker(self) -> System:
        """Starts the orchestrator and the projection for whatever this worker comes to hold
        (a standby holds nothing until another worker goes away)."""
        from infrastructure.cluster import build_coordinator

        participants = self.participants = self.participants or self.make_participants(self)
        self.recent = RecentCalls(self.metrics)
        self.orchestrator = Orchestrator(
            self.workflows, self.definitions, participants, self.policy,
            bulkhead=self.bulkhead, metrics=self.recent, shards=self.settings.shards)
        self.projection = WorkflowProjection(self.views, self.workflows.mapper,
                                             self.workflows.shape)
        self.followers["orchestrator"] = Follower(
            "orchestrator", self.workflows.recorder, self.orchestrator.handle,
            self._orchestrator_start, self._wakeup()).start()
        self._checkpointer = threading.Thread(
            target=self._checkpoint, name="checkpoint", daemon=True)
        self._checkpointer.start()
        self.coordinator = build_coordinator(self)
        self.coordinator.start()
        return self

    def bulkhead(self, participant: str) -> int:
        """How many calls to the participant may be in flight at once: its
        <NAME>_BULKHEAD_SIZE, else what a definition asks for it, else BULKHEAD_SIZE."""
        explicit = self.settings.bulkheads.get(participant)
        asked = self._asked(participant, "bulkhead")
        return explicit or (int(asked) if asked else self.settings.bulkhead_size)

    def rate_limit(self, participant: str) -> float | None:
        """Calls per second to the participant: its <NAME>_RATE_LIMIT, else what a definition
        asks for it, else none."""
        return self.settings.rate_limits.get(participant) or self._asked(participant,
                                                                          "rate_limit")

    def _asked(self, participant: str, what: str) -> float | None:
        """The least that the latest versions of the definitions calling the participant ask
        for (a bulkhead or a rate limit is a limit: the strictest holds)."""
        asked = [float(getattr(spec, what)) for name in self.definitions.names()
                 if (spec := self.definitions.get(name).definition.participants.get(participant))
                 is not None and getattr(spec, what) is not None]
        return min(asked) if asked else None

    # --- what the coordinator calls -----------------------------------------------------------

    def take_shard(self, shard: int) -> None:
        """Starts driving a shard from where its last holder recorded it was."""
        assert self.orchestrator is not None
        resume = self.views.position(shard_name(shard))
        head = self.event_head()
        self.orchestrator.acquire(shard, resume, head)
        self.followers["orchestrator"].rewind(resume)

    def give_up_shard(self, shard: int, grace_s: float = 5.0) -> None:
        """Records the shard's position, stops driving it and lets its drives finish."""
        assert self.orchestrator is not None
        position = self.orchestrator.positions().get(shard)
        if position is not None:
            self.views.set_position(shard_name(shard), position)
        self.orchestrator.release(shard)
        deadline = time.monotonic() + grace_s
        while self.orchestrator.busy_in(shard) and time.monotonic() < deadline:
            time.sleep(0.02)

    def start_projection(self) -> None:
        assert self.projection is not None
        if "projection" not in self.followers:
            self.followers["projection"] = Follower(
                "projection", self.workflows.recorder, self.projection.process,
                self.projection.position, self._wakeup()).start()

    def stop_projection(self) -> None:
        follower = self.followers.pop("projection", None)
        if follower is not None:
            follower.stop()
            self._wakeups.remove(follower.wakeup)

    def reachable(self) -> bool:
        """Whether the event store and the views answer now (quickly: for /ready)."""
        try:
            if self.settings.is_postgres:
                import psycopg

                with psycopg.connect(self.settings.database_url, connect_timeout=2) as conn:
                    conn.execute("SELECT 1")
            else:
                self.workflows.recorder.max_notification_id()
            self.views.ping()
        except Exception:  # noqa: BLE001 - whatever the driver raises, the answer is "no"
            return False
        return True

    def event_head(self) -> int:
        """The event store's last position (0 when empty)."""
        return self.workflows.recorder.max_notification_id() or 0

    def worker_reports(self) -> list[WorkerReport]:
        """The workers seen lately, with what each holds and sees (the health page)."""
        from infrastructure.health import worker_reports

        return worker_reports(self)

    def watch_views(self, callback: Callable[[ViewsWritten], None]) -> str:
        """Calls `callback(notice)` after each write to the views, whichever process makes it:
        with the states written when this process wrote them ("here"), with the workflows
        ended when told by PostgreSQL ("notified"); "unknown" where neither can be (poll)."""
        if self.projection is not None:  # the projection runs in this process
            self.projection.listeners.append(
                lambda position, states: callback(ViewsWritten(position, states)))
            return "here"
        if self.settings.is_postgres:
            from infrastructure.pg_listen import Listener
            from infrastructure.views_postgres import CHANNEL, read_notice

            Listener(self.settings.database_url, CHANNEL,
                     lambda payload: callback(read_notice(payload))).start()
            return "notified"
        return "unknown"

    # --- inside -------------------------------------------------------------------------------

    def _orchestrator_start(self) -> int:
        assert self.orchestrator is not None
        owned = self.orchestrator.owned()
        if not owned:  # a standby reads from the head; taking a shard rewinds it
            return self.event_head()
        return min(self.views.position(shard_name(k)) for k in owned)

    def _wakeup(self) -> threading.Event:
        """A new reader's wake-up, set by every save: this process's at once, another
        process's through one PostgreSQL LISTEN shared by all readers (a projection that
        stops and starts again, as leadership comes and goes, adds no connection)."""
        if not self._hooked:
            self._hooked = True
            self.workflows.add_listener(self._wake_readers)
            if self.settings.is_postgres:
                from infrastructure.pg_listen import Listener

                channel = self.workflows.recorder.channel_name  # type: ignore[attr-defined]
                self._save_listener = Listener(
                    self.settings.database_url, channel,
                    lambda _payload: self._wake_readers()).start()
        event = threading.Event()
        self._wakeups.append(event)
        return event

    def _wake_readers(self) -> None:
        for event in list(self._wakeups):
            event.set()

    def _checkpoint(self) -> None:
        """Writes where each held shard may resume, twice a second while it moves."""
        last: dict[int, int] = {}
        while not self._stop.wait(0.5):
            self._save_positions(last)

    def _save_positions(self, last: dict[int, int]) -> None:
        assert self.orchestrator is not None
        moved = {shard: position for shard, position in self.orchestrator.positions().items()
                 if last.get(shard) != position}
        if not moved:
            return
        try:  # one transaction for all the shards that moved
            self.views.set_positions({shard_name(k): p for k, p in moved.items()})
            last.update(moved)
        except Exception:
            log.exception("could not record the shards' positions")

    def stop(self, grace_s: float = 10.0) -> bool:
        """Stops taking calls, lets those in flight finish (up to `grace_s`), records the
        positions, and closes the stores. Returns whether everything in flight finished."""
        finished = True
        if self.orchestrator is not None:
            finished = self.orchestrator.stop(grace_s)
        for follower in self.followers.values():
            follower.stop()
        self._stop.set()
        if self._checkpointer is not None:
            self._checkpointer.join(timeout=2)
        if self.orchestrator is not None:
            try:
                self._save_positions({})
            except Exception:
                log.exception("could not record the final positions")
        if self.coordinator is not None:
            self.coordinator.stop()
        if self._save_listener is not None:
            self._save_listener.stop()
        self.views.close()
        self.workflows.close()
        self.definitions.close()
        return finished


def shard_name(shard: int) -> str:
    """The orchestrator's position for one shard, among the views' positions."""
    return f"orchestrator:{shard}"
