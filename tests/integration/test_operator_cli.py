"""The shell user's commands: bulk retry (dry run and for real), export, list and show."""
from __future__ import annotations

import getpass
import json
import uuid

from api.app import create_app
from domain.workflow import Workflow
from infrastructure.bootstrap import System
from tests.fakes import FakeParticipants, wait_until
from tests.histories import build, trip_waiting
from tests.ops import all_states, cli, projected


def _fields(shown: str) -> dict[str, str]:
    """`workflows show`'s state view: field -> value as printed, in order."""
    found = {}
    for line in shown.split("\n\n")[0].splitlines():
        name, _, value = line.partition(" ")
        found[name] = value.strip()
    return found


def _statuses(system: System) -> dict[str, str]:
    return {w: s["status"] for w, s in all_states(system).items()}


def test_bulk_retry_dry_run_changes_nothing_and_the_real_one_records_who_and_why(
        database_url: str, ops_system: System, ops_fake: FakeParticipants) -> None:
    outcome = build(ops_system.workflows, 12, prefix="r")
    head = projected(ops_system)
    stuck = sorted(str(Workflow.create_id("order", o)) for o, s in outcome.items()
                   if s == "COMPENSATION_FAILED")
    before = _statuses(ops_system)

    dry = cli(database_url, "workflows", "retry", "--status", "COMPENSATION_FAILED", "--dry-run",
              "--reason", "payment is back")

    assert dry.exit_code == 0, dry.output
    assert dry.stdout.splitlines()[0].split() == ["WORKFLOW", "DEFINITION", "KEY", "RESULT"]
    assert sorted(line.split()[0] for line in dry.stdout.splitlines()[1:-1]) == stuck
    assert all(line.split()[1] == "order" and line.split()[3:] == ["would", "retry"]
               for line in dry.stdout.splitlines()[1:-1])
    assert "nothing was changed" in dry.stdout
    assert ops_system.workflows.recorder.max_notification_id() == head
    assert _statuses(ops_system) == before

    done = cli(database_url, "workflows", "retry", "--status", "COMPENSATION_FAILED",
               "--reason", "payment is back")

    by = f"cli:{getpass.getuser()}"
    assert done.exit_code == 0, done.output
    assert f"retried 3 of 3 COMPENSATION_FAILED workflow(s) as {by}: payment is back" \
        in done.stdout
    for wid in stuck:  # the worker resumes them: the refund now succeeds
        retry = [e for e in ops_system.workflows.events.get(uuid.UUID(wid))
                 if type(e).__name__ == "RetryRequested"]
        assert [(e.by, e.reason) for e in retry] == [(by, "payment is back")]
        wait_until(lambda w=wid: (ops_system.views.state(w) or {}).get("status") == "FAILED",
                   what=f"{wid} to end FAILED after the retry")
    assert {c.workflow_id for c in ops_fake.calls_for(action="refund")} == set(stuck)
    again = cli(database_url, "workflows", "retry", "--status", "COMPENSATION_FAILED",
                "--reason", "again")
    assert again.exit_code == 0 and "retried 0 of 0" in again.stdout
    finished = cli(database_url, "workflows", "retry", "--status", "COMPLETED", "--reason", "x")
    assert finished.exit_code == 2 and "COMPLETED workflows are finished" in finished.output


def test_bulk_retry_of_one_definition_leaves_the_others_alone(
        database_url: str, ops_system: System) -> None:
    build(ops_system.workflows, 4, prefix="d", shapes=("COMPENSATION_FAILED",))
    projected(ops_system)
    before = _statuses(ops_system)

    other = cli(database_url, "workflows", "retry", "--status", "COMPENSATION_FAILED",
                "--definition", "trip", "--reason", "not these")

    assert other.exit_code == 0, other.output
    assert "retried 0 of 0 COMPENSATION_FAILED workflow(s)" in other.stdout
    assert _statuses(ops_system) == before


def test_export_is_the_feed_as_json_lines_and_resumes_from_a_position(
        database_url: str, ops_system: System) -> None:
    build(ops_system.workflows, 3, prefix="e")
    head = projected(ops_system)
    client = create_app(ops_system).test_client()

    first = cli(database_url, "audit", "export", "--after", "0", "--limit", "7")
    last = json.loads(first.stdout.splitlines()[-1])["position"]
    rest = cli(database_url, "audit", "export", "--after", str(last))
    feed = client.get(f"/events?after=0&limit={head}").get_json()

    exported = [json.loads(line) for line in (first.stdout + rest.stdout).splitlines()]
    assert [e["position"] for e in exported] == list(range(1, head + 1))
    assert exported == feed["events"]  # the same mapping as GET /events
    assert set(exported[0]) == {"position", "workflowId", "type", "timestamp", "data"}
    # (the last line: a stopped system's LISTEN thread may have logged before it)
    assert first.stderr.splitlines()[-1] == "exported 7 events; resume with --after 7"
    assert rest.stderr.splitlines()[-1] == (
        f"exported {head - 7} events; resume with --after {head}")
    nothing = cli(database_url, "audit", "export", "--after", str(head))
    assert nothing.stdout == "" and f"resume with --after {head}" in nothing.stderr


def test_list_and_show_for_a_shell_user(database_url: str, ops_system: System) -> None:
    build(ops_system.workflows, 8, prefix="l")
    trip = trip_waiting(ops_system.workflows, "l-3")  # the same key, another definition
    projected(ops_system)

    listed = cli(database_url, "workflows", "list", "--status", "CANCELLED", "--limit", "5")
    trips = cli(database_url, "workflows", "list", "--definition", "trip")
    shown = cli(database_url, "workflows", "show", "l-3")
    shown_trip = cli(database_url, "workflows", "show", "l-3", "--definition", "trip")
    missing = cli(database_url, "workflows", "show", "nope")
    bad = cli(database_url, "workflows", "list", "--status", "cancelled")

    assert listed.exit_code == 0
    lines = listed.stdout.splitlines()
    assert lines[0].split() == ["WORKFLOW", "DEFINITION", "KEY", "STATUS", "CREATED",
                                "UPDATED", "VERSION", "ERROR"]
    assert sorted(line.split()[2] for line in lines[1:]) == ["l-3", "l-7"]
    assert all(line.split()[1] == "order" and line.split()[3] == "CANCELLED"
               for line in lines[1:])
    assert trips.exit_code == 0
    assert [line.split()[:4] for line in trips.stdout.splitlines()[1:]] == [
        [str(trip.id), "trip", "l-3", "WAITING"]]
    assert shown.exit_code == 0
    fields = _fields(shown.stdout)
    assert list(fields) == [
        "FIELD", "workflowId", "orderId", "status", "paymentId", "reservationId", "shipmentId",
        "error", "attempts", "createdAt", "definition", "definitionVersion", "key", "results",
        "updatedAt", "version"]
    assert fields["workflowId"] == str(Workflow.create_id("order", "l-3"))
    assert (fields["orderId"], fields["status"], fields["definition"]) == (
        "l-3", "CANCELLED", "order")
    assert fields["reservationId"] == fields["shipmentId"] == ""  # None, printed empty
    assert fields["results"] == '{"charge": {"paymentId": "charge-l-3"}}'
    assert "status             CANCELLED" in shown.stdout  # aligned to definitionVersion
    events = [line.split()[2] for line in shown.stdout.split("\n\n")[1].splitlines()[1:]]
    assert events == ["Started", "Charged", "CancelRequested", "CompensationStarted",
                      "Compensated", "Cancelled"]
    assert shown_trip.exit_code == 0, shown_trip.output
    trip_fields = _fields(shown_trip.stdout)
    assert (trip_fields["workflowId"], trip_fields["tripId"], trip_fields["status"]) == (
        str(trip.id), "l-3", "WAITING")
    assert trip_fields["flightBookingId"] == "flight-l-3" and "orderId" not in trip_fields
    trip_events = [line.split()[2]
                   for line in shown_trip.stdout.split("\n\n")[1].splitlines()[1:]]
    assert trip_events == ["Started", "FlightBooked", "HotelBooked", "StepSkipped", "Waiting"]
    assert missing.exit_code == 1 and "no order workflow for 'nope'" in missing.output
    assert bad.exit_code == 2 and "a status is A-Z, 0-9 and _" in bad.output
