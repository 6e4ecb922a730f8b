"""Definitions end to end: real processes, real HTTP, effects counted at the participants.

The trip (definitions/trip.yaml) walked through as the README does: flight and hotel at once,
a car when asked for, a branch rejected, an approval and a denial by signal, a wait that times
out (a version of the trip with a short timeout, registered while the system runs). A signal
sent twice is recorded once. The order's fourth step: a new version applied with
`orchestrator definitions apply` while the system runs; a workflow started before keeps its
version. A version PUT through `orchestrator api` is the one a separate worker runs. And
kill -9 of `orchestrator run` while the trip's parallel branches are in flight and while trips
wait for their signal: after a restart each finishes, no effect applied twice. About 25 s.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.e2e.harness import TERMINAL, Api, Orchestrator, Participants, Worker, wait_until

ROOT = Path(__file__).resolve().parents[2]
TRIP_YAML = (ROOT / "definitions" / "trip.yaml").read_text(encoding="utf-8")
ORDER_YAML = (ROOT / "definitions" / "order.yaml").read_text(encoding="utf-8")
DATES = {"depart": "2030-06-01", "return": "2030-06-08"}
TRIP = {"travellerId": "tr-1", "from": "LHR", "to": "JFK", "dates": DATES, "travellers": 2,
        "cents": 40_000}  # under the approval amount (100000)
BIG = {**TRIP, "cents": 250_000}  # waits for an approver
BOOKED = {"flight": 1, "hotel": 1, "charge": 1, "confirm": 1}
# The order with a fourth step, as the README adds it: a confirmation through the demo's
# notification service (the trip's `/notifications`, whose body names the trip's fields).
FOURTH_STEP = """\
  - name: confirm                 # tell the customer; nothing to undo
    participant: notify
    call:
      path: /notifications
      body: {tripId: "${key}", flight: "${steps.ship.shipmentId}",
             hotel: "${steps.reserve.reservationId}", payment: "${steps.charge.paymentId}",
             idempotencyKey: "${idempotencyKey}"}
    keep: {notificationId: notificationId}
    event: Confirmed
    status: CONFIRMED
"""
ORDER_V2 = ORDER_YAML.replace("  shipping: {}", "  shipping: {}\n  notify: {}", 1) + FOURTH_STEP


@pytest.fixture(scope="module")
def trip_system(tmp_path_factory: pytest.TempPathFactory
                ) -> Iterator[tuple[Orchestrator, Participants]]:
    """One `orchestrator run` (SQLite) and its participants for the walkthroughs; each test
    uses keys of its own and clears the faults it set."""
    tmp = tmp_path_factory.mktemp("trips")
    participants = Participants(tmp).start()
    orchestrator = Orchestrator(tmp, participants).start()
    try:
        yield orchestrator, participants
    finally:
        orchestrator.kill()
        participants.kill()


@pytest.fixture
def trips(trip_system: tuple[Orchestrator, Participants]
          ) -> Iterator[tuple[Orchestrator, Participants]]:
    yield trip_system
    trip_system[1].faults({})


def audit(o: Orchestrator, wid: str) -> list[dict[str, Any]]:
    return list(requests.get(f"{o.url}/workflows/{wid}/audit", timeout=5).json()["events"])


def started(o: Orchestrator, key: str, body: dict[str, Any], **params: Any) -> str:
    r = o.start_workflow("trip", key, body, **params)
    assert r.status_code in (200, 202), r.text
    return str(r.json()["workflowId"])


# --- the trip's walkthroughs --------------------------------------------------------------------

def test_a_trip_books_flight_and_hotel_at_once_and_completes_each_effect_once(
        trips: tuple[Orchestrator, Participants]) -> None:
    o, participants = trips
    # The flight, first in the definition, answers 0.8 s late: the hotel, after it in the
    # list, is booked first only because both calls were made at once.
    participants.faults({"flight": {"delay_ms": 800}})
    r = o.start_workflow("trip", "t-happy", TRIP)
    assert r.status_code == 202, r.text
    wid = r.json()["workflowId"]
    assert r.headers["Location"] == f"/workflows/{wid}"
    assert r.json() == {"workflowId": wid, "definition": "trip", "key": "t-happy",
                        "status": r.json()["status"]}
    state = o.finished(wid)
    assert state["status"] == "COMPLETED"
    assert (state["definition"], state["definitionVersion"], state["key"], state["tripId"]) == (
        "trip", 1, "t-happy", "t-happy")
    assert state["flightBookingId"] and state["hotelBookingId"] and state["paymentId"]
    assert state["carBookingId"] is None and "approval" not in state["results"]
    assert participants.effects("t-happy") == BOOKED
    types = [e["type"] for e in audit(o, wid)]
    assert types.index("HotelBooked") < types.index("FlightBooked")
    assert types[-3:] == ["Charged", "Confirmed", "Completed"]
    assert types.count("StepSkipped") == 2  # no car asked for; under the approval amount
    by_key = requests.get(f"{o.url}/definitions/trip/workflows/t-happy", timeout=5)
    assert by_key.status_code == 200 and by_key.json() == state
    again = o.start_workflow("trip", "t-happy", TRIP)
    assert again.status_code == 200 and again.json()["workflowId"] == wid
    assert o.start_workflow("trip", "t-happy", {**TRIP, "cents": 1}).status_code == 409
    listed = requests.get(f"{o.url}/workflows", params={"definition": "trip", "key": "t-happy"},
                          timeout=5).json()["items"]
    assert [s["workflowId"] for s in listed] == [wid]


def test_a_car_is_booked_when_asked_for(trips: tuple[Orchestrator, Participants]) -> None:
    o, participants = trips
    r = o.start_workflow("trip", "t-car", {**TRIP, "car": True}, wait=20)
    assert r.status_code == 200 and r.json()["status"] == "COMPLETED", r.text
    assert r.json()["carBookingId"]
    assert participants.effects("t-car") == {**BOOKED, "car": 1}


def test_a_rejected_branch_lets_the_other_finish_then_undoes_it(
        trips: tuple[Orchestrator, Participants]) -> None:
    o, participants = trips
    participants.faults({"hotel": {"status": 422}, "flight": {"delay_ms": 300}})
    state = o.finished(started(o, "t-nohotel", TRIP))
    assert state["status"] == "FAILED" and "hotel" in state["error"]
    assert participants.effects("t-nohotel") == {"flight": 1, "cancel_flight": 1}
    assert participants.stats()["duplicate_effects"] == 0


def test_an_approval_by_signal_completes_the_trip(
        trips: tuple[Orchestrator, Participants]) -> None:
    o, participants = trips
    wid = started(o, "t-approve", BIG)
    waiting = o.until_status(wid, "WAITING")
    assert waiting["flightBookingId"] and waiting["hotelBookingId"]
    assert participants.effects("t-approve") == {"flight": 1, "hotel": 1}
    r = o.signal(wid, "approve", {"by": "ann"})
    assert r.status_code == 202, r.text
    assert r.json() == {"workflowId": wid, "accepted": "signal", "signal": "approve"}
    state = o.finished(wid)
    assert state["status"] == "COMPLETED"
    assert state["results"]["approval"] == {"by": "ann"}
    assert participants.effects("t-approve") == BOOKED
    assert "Approved" in [e["type"] for e in audit(o, wid)]


def test_a_denial_undoes_the_bookings(trips: tuple[Orchestrator, Participants]) -> None:
    o, participants = trips
    wid = started(o, "t-deny", BIG)
    o.until_status(wid, "WAITING")
    assert o.signal(wid, "deny", {"by": "bob", "why": "too dear"}).status_code == 202
    state = o.finished(wid)
    assert state["status"] == "FAILED" and "deny" in state["error"]
    assert participants.effects("t-deny") == {"flight": 1, "hotel": 1, "cancel_flight": 1,
                                              "cancel_hotel": 1}
    late = o.signal(wid, "approve", {"by": "ann"})  # the workflow is over
    assert late.status_code == 409 and late.headers["Content-Type"] == "application/problem+json"


def test_a_signal_sent_twice_is_recorded_once(trips: tuple[Orchestrator, Participants]) -> None:
    o, participants = trips
    participants.faults({"flight": {"delay_ms": 700}})
    wid = started(o, "t-twice", BIG)
    # Both arrive while the flight is still being booked: kept for the wait step, once.
    answers = [o.signal(wid, "approve", {"by": "ann"}) for _ in range(2)]
    assert [a.status_code for a in answers] == [202, 202], [a.text for a in answers]
    state = o.finished(wid)
    assert state["status"] == "COMPLETED" and state["results"]["approval"] == {"by": "ann"}
    assert [e["type"] for e in audit(o, wid)].count("Signalled") == 1
    assert participants.effects("t-twice") == BOOKED
    unknown = o.signal(wid, "approval", {})
    assert unknown.status_code == 409  # terminal first; an unknown name on a running one: 422
    assert o.signal(wid, "Approve!", {}).status_code == 400
    assert o.signal("5b1e0f0e-0000-4000-8000-000000000000", "approve", {}).status_code == 404


def test_an_unknown_signal_is_422_and_a_skipped_wait_takes_none(
        trips: tuple[Orchestrator, Participants]) -> None:
    o, participants = trips
    participants.faults({"flight": {"delay_ms": 1000}})
    wid = started(o, "t-unknown", TRIP)
    unknown = o.signal(wid, "approval", {})
    assert unknown.status_code == 422, unknown.text
    assert unknown.headers["Content-Type"] == "application/problem+json"
    assert o.finished(wid)["status"] == "COMPLETED"
    # under the approval amount, the wait was skipped: nothing can be approved any more
    small = started(o, "t-small", TRIP, wait=20)
    assert o.signal(small, "approve", {"by": "ann"}).status_code == 409


def test_a_wait_that_times_out_undoes_the_bookings(
        trips: tuple[Orchestrator, Participants]) -> None:
    """A copy of trip.yaml whose approval waits 1 s, registered as version 2 while the system
    runs; the original registered again afterwards (version 3)."""
    o, participants = trips
    quick = TRIP_YAML.replace("timeout_s: 3600", "timeout_s: 1")
    assert quick != TRIP_YAML
    bad = o.put_definition("trip", quick.replace("${steps.flight.flightBookingId}/cancel",
                                                 "${steps.fligth.flightBookingId}/cancel"))
    assert bad.status_code == 422
    assert {"path": "steps[0].parallel[0].undo.path",
            "message": "unknown step 'fligth'"} in bad.json()["errors"]
    assert requests.get(f"{o.url}/definitions/trip", timeout=5).json()["version"] == 1
    put = o.put_definition("trip", quick)
    assert put.status_code == 201, put.text
    assert put.json()["version"] == 2 and put.headers["Location"] == "/definitions/trip?version=2"
    assert o.put_definition("trip", quick).status_code == 200  # unchanged
    try:
        wid = started(o, "t-timeout", BIG)
        state = o.finished(wid, timeout=20)
        assert state["status"] == "FAILED" and state["definitionVersion"] == 2
        assert "no signal 'approve' within 1 s" in state["error"]
        assert participants.effects("t-timeout") == {
            "flight": 1, "hotel": 1, "cancel_flight": 1, "cancel_hotel": 1}
    finally:
        restored = o.put_definition("trip", TRIP_YAML)
        assert restored.status_code == 201 and restored.json()["version"] == 3
    shown = requests.get(f"{o.url}/definitions/trip", params={"version": 2}, timeout=5).json()
    assert shown["definition"]["steps"][2]["wait"]["timeout_s"] == 1
    assert [v["version"] for v in shown["versions"]] == [1, 2, 3]
    assert shown["versions"][0]["sha256"] == shown["versions"][2]["sha256"]


# --- a new version while the system runs --------------------------------------------------------

def test_a_fourth_step_is_one_file_applied_while_the_system_runs(
        tmp_path: Path, participants: Participants, orchestrator: Orchestrator,
        database_url: str) -> None:
    o = orchestrator
    participants.faults({"charge": {"delay_ms": 1000}})
    before = o.place("o-before").json()["workflowId"]
    wait_until(lambda: participants.stats()["calls"]["charge"] >= 1, 10, "the first charge")
    path = tmp_path / "order.yaml"
    path.write_text(ORDER_V2, encoding="utf-8")
    applied = subprocess.run(
        [sys.executable, "-m", "api", "definitions", "apply", str(path)], cwd=tmp_path,
        env={**os.environ, "DATABASE_URL": database_url}, capture_output=True, text=True,
        timeout=60)
    assert applied.returncode == 0, applied.stderr
    assert applied.stdout.strip() == "order  version 2"
    participants.faults({})
    after = o.place("o-after", wait=20)
    assert after.status_code == 200, after.text
    new = after.json()
    assert (new["status"], new["definitionVersion"]) == ("COMPLETED", 2)
    assert new["notificationId"] and new["results"]["confirm"]
    old = o.finished(before)
    assert (old["status"], old["definitionVersion"]) == ("COMPLETED", 1)
    assert "notificationId" not in old and "confirm" not in old["results"]
    assert o.audit_types(before)[-1] == "Completed" and "Confirmed" not in o.audit_types(before)
    assert o.audit_types(new["workflowId"])[-2:] == ["Confirmed", "Completed"]
    assert participants.effects("o-before") == {"charge": 1, "reserve": 1, "ship": 1}
    assert participants.effects("o-after") == {"charge": 1, "reserve": 1, "ship": 1,
                                               "confirm": 1}
    listed = requests.get(f"{o.url}/definitions", timeout=5).json()["items"]
    assert {(d["name"], d["version"]) for d in listed} == {("order", 2), ("trip", 1)}
    spec = requests.get(f"{o.url}/openapi.json", timeout=5).json()
    assert "/definitions/order/workflows/{key}" in spec["paths"]
    assert spec["components"]["schemas"]["OrderInput"]["required"] == ["cents", "skus", "address"]


def test_the_production_shape_runs_the_version_one_api_process_registered(
        tmp_path: Path, pg_url: str, participants: Participants) -> None:
    """`orchestrator api` (gunicorn) and a worker on PostgreSQL: a version PUT through the API
    is the one the worker runs; a signal sent through the API reaches the worker's workflow.

    One API process: every process applies DEFINITIONS_DIR when it starts, so a second one
    still starting when the PUT lands would register the bundled trip again, as version 3."""
    worker = Worker(tmp_path, pg_url, participants).start()
    api = Api(tmp_path, pg_url, workers=1).start()
    try:
        quick = TRIP_YAML.replace("timeout_s: 3600", "timeout_s: 1")
        put = requests.put(f"{api.url}/definitions/trip", data=quick.encode(), timeout=10,
                           headers={"Content-Type": "text/yaml"})
        assert put.status_code == 201 and put.json()["version"] == 2, put.text

        def start(key: str) -> str:
            r = requests.post(f"{api.url}/definitions/trip/workflows/{key}", json=BIG,
                              timeout=10)
            assert r.status_code == 202, r.text
            return str(r.json()["workflowId"])

        def state(wid: str) -> dict[str, Any]:
            return dict(requests.get(f"{api.url}/workflows/{wid}", timeout=5).json())

        approved, timed_out = start("p-approve"), start("p-timeout")
        for wid in (approved, timed_out):
            assert state(wid)["definitionVersion"] == 2
        assert requests.post(f"{api.url}/workflows/{approved}/signals/approve",
                             json={"by": "ann"}, timeout=5).status_code == 202
        ended = {wid: wait_until(lambda w=wid: (s := state(w))["status"] in TERMINAL and s, 30,
                                 f"{wid} to end") for wid in (approved, timed_out)}
        assert ended[approved]["status"] == "COMPLETED"
        assert ended[timed_out]["status"] == "FAILED"
        assert participants.effects("p-approve") == BOOKED
        assert participants.effects("p-timeout") == {"flight": 1, "hotel": 1,
                                                     "cancel_flight": 1, "cancel_hotel": 1}
    finally:
        api.kill()
        worker.kill()


# --- crashes ------------------------------------------------------------------------------------

def test_kill_9_while_branches_are_in_flight_and_trips_wait_then_each_finishes_once(
        tmp_path: Path, participants: Participants, database_url: str) -> None:
    first = Orchestrator(tmp_path, participants, DATABASE_URL=database_url).start()
    waiting = [started(first, f"t-wait-{i}", BIG) for i in range(3)]
    for wid in waiting:
        first.until_status(wid, "WAITING")
    participants.faults({"flight": {"delay_ms": 1500}, "hotel": {"delay_ms": 1500}})
    flying = [started(first, f"t-fly-{i}", TRIP) for i in range(4)]
    wait_until(lambda: participants.stats()["calls"]["hotel"] >= 3 + 4, 20,
               "the branches to be called")
    first.kill()  # mid-call: the participants finish and apply them, nobody records them
    assert participants.stats()["orders"]["completed"] == 0, "killed too late"
    participants.faults({})

    second = Orchestrator(tmp_path, participants, DATABASE_URL=database_url).start()
    try:
        for wid in flying:
            assert second.finished(wid, timeout=60)["status"] == "COMPLETED"
        for wid in waiting:
            assert second.state(wid)["status"] == "WAITING"
            assert second.signal(wid, "approve", {"by": "ann"}).status_code == 202
        for wid in waiting:
            assert second.finished(wid, timeout=60)["status"] == "COMPLETED"
        for key in [*(f"t-wait-{i}" for i in range(3)), *(f"t-fly-{i}" for i in range(4))]:
            assert participants.effects(key) == BOOKED, key
        stats = participants.stats()
        assert stats["duplicate_effects"] == 0 and stats["orders"]["completed"] == 7
        # the calls in flight at the kill were made again, under the same keys
        assert stats["calls"]["flight"] >= 3 + 2 * 4 and stats["calls"]["hotel"] >= 3 + 2 * 4
    finally:
        second.kill()


def test_the_trip_s_state_view_survives_a_restart_unchanged(
        tmp_path: Path, participants: Participants) -> None:
    """A restart re-applies the bundled definitions: nothing new is registered, and a
    workflow's view, audit and version stay what they were."""
    first = Orchestrator(tmp_path, participants).start()
    wid = started(first, "t-restart", TRIP, wait=20)
    view, trail = first.state(wid), audit(first, wid)
    first.terminate()
    time.sleep(0.1)
    second = Orchestrator(tmp_path, participants).start()
    try:
        assert second.state(wid) == view and audit(second, wid) == trail
        versions = requests.get(f"{second.url}/definitions/trip", timeout=5).json()["versions"]
        assert len(versions) == 1
    finally:
        second.kill()
