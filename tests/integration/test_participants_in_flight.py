"""Many calls in flight hold sockets, not threads: HttpParticipants against a participant that
answers nothing until every call has arrived (an asyncio server on one thread of its own)."""
from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from aiohttp import web

from application.ports import Call, Outcome, Succeeded
from infrastructure.participants_http import HttpParticipants

CALLS = 500


class HeldParticipant:
    """Holds every call until `open_at` of them are in flight at once (or until `open()`),
    then answers them all; counts the calls, and the most in flight at once."""

    def __init__(self) -> None:
        self.in_flight = self.most = self.arrived = 0
        self.open_at = CALLS
        self.loop = asyncio.new_event_loop()
        self.gate: asyncio.Event | None = None
        started = threading.Event()
        self.thread = threading.Thread(target=self._serve, args=(started,), daemon=True)
        self.thread.start()
        assert started.wait(10), "the participant did not start"

    def _serve(self, started: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)
        self.gate = asyncio.Event()
        app = web.Application()
        app.router.add_post("/payments/charge", self._charge)
        runner = web.AppRunner(app, access_log=None)
        self.loop.run_until_complete(runner.setup())
        site = web.TCPSite(runner, "127.0.0.1", 0, backlog=CALLS * 2)
        self.loop.run_until_complete(site.start())
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.runner = runner
        started.set()
        self.loop.run_forever()

    async def _charge(self, request: web.Request) -> web.Response:
        assert self.gate is not None
        self.arrived += 1
        self.in_flight += 1
        self.most = max(self.most, self.in_flight)
        if self.in_flight >= self.open_at:
            self.gate.set()
        try:
            await asyncio.wait_for(self.gate.wait(), 30)
        finally:
            self.in_flight -= 1
        return web.json_response({"paymentId": request.headers["Idempotency-Key"]}, status=201)

    def open(self) -> None:
        assert self.gate is not None
        self.loop.call_soon_threadsafe(self.gate.set)

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@pytest.fixture
def participant() -> Iterator[HeldParticipant]:
    held = HeldParticipant()
    yield held
    held.stop()


def charge(i: int) -> Call:
    return Call(participant="payment", action="charge", workflow_id=f"wf-{i}",
                idempotency_key=f"wf-{i}:charge", method="POST", path="/payments/charge",
                body={"orderId": f"o-{i}", "cents": 1}, timeout_s=30)


def make(url: str, bulkhead: int) -> HttpParticipants:
    return HttpParticipants(lambda name: url, timeout_s=30, breaker_fail_max=5,
                            breaker_reset_s=1, bulkhead=lambda name: bulkhead,
                            rate_limit=lambda name: None)


def start_all(participants: HttpParticipants, n: int) -> tuple[list[Outcome], threading.Event]:
    outcomes: list[Outcome] = []
    lock, done = threading.Lock(), threading.Event()

    def came_back(outcome: Outcome) -> None:
        with lock:
            outcomes.append(outcome)
            if len(outcomes) == n:
                done.set()

    for i in range(n):
        participants.start(charge(i), came_back)
    return outcomes, done


def test_hundreds_of_calls_are_in_flight_at_once_on_one_thread(
        participant: HeldParticipant) -> None:
    participants = make(f"http://127.0.0.1:{participant.port}", bulkhead=CALLS)
    before = threading.active_count()
    try:
        outcomes, done = start_all(participants, CALLS)
        # The participant answers only once all of them are there at the same time.
        assert done.wait(60), f"{len(outcomes)} of {CALLS} came back"
        assert participant.most == CALLS
        assert all(isinstance(o, Succeeded) for o in outcomes)
        assert sorted(o.result["paymentId"] for o in outcomes  # type: ignore[union-attr]
                      ) == sorted(f"wf-{i}:charge" for i in range(CALLS))
        # ... and they took one thread of ours: the event loop's.
        assert threading.active_count() <= before + 1
    finally:
        participants.close()


def test_calls_past_the_bulkhead_wait_for_a_slot_and_are_made_then(
        participant: HeldParticipant) -> None:
    """The bulkhead holds 10; 30 calls are started. The participant sees 10 and no more until
    it answers them; then the 20 that waited for a slot are made, none of them refused."""
    participant.open_at = 10**9  # held until the test opens the gate
    participants = make(f"http://127.0.0.1:{participant.port}", bulkhead=10)
    try:
        outcomes, done = start_all(participants, 30)
        wait_until(lambda: participant.in_flight == 10)
        assert not done.wait(0.3)  # nothing came back while the participant held them...
        assert participant.arrived == 10  # ... and nothing past the bulkhead was sent
        participant.open()
        assert done.wait(60), f"{len(outcomes)} of 30 came back"
        assert all(isinstance(o, Succeeded) for o in outcomes)
        assert participant.arrived == 30 and participant.most == 10
    finally:
        participants.close()


def wait_until(condition: Any, within_s: float = 30) -> None:
    deadline = time.monotonic() + within_s
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.01)
