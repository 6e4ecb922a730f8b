"""`orchestrator audit replay`: the timeline from the events alone, and --verify catching a
served view that no longer says what the events say."""
from __future__ import annotations

import json
import uuid

from application.projection import NAME
from application.views import event_type, fold
from domain.workflow import Workflow
from infrastructure.bootstrap import System
from tests.fakes import FakeParticipants, wait_until
from tests.histories import build, trip_waiting
from tests.ops import all_states, cli, execute, projected


def _wid(order_id: str) -> str:
    return str(Workflow.create_id("order", order_id))


def test_the_timeline_of_a_compensated_workflow_in_text_and_json(
        database_url: str, ops_system: System) -> None:
    build(ops_system.workflows, 4, prefix="t")
    head = projected(ops_system)
    wid = _wid("t-1")  # the FAILED shape: charged, reserve rejected, refunded
    stored = list(ops_system.workflows.events.get(uuid.UUID(wid)))

    text = cli(database_url, "audit", "replay", wid)
    as_json = cli(database_url, "audit", "replay", "t-1", "--json")  # an order id works too

    assert text.exit_code == 0, text.output
    lines = text.stdout.splitlines()
    assert lines[0].startswith(f"workflow {wid}  order t-1  FAILED at version 6")
    assert lines[1].split() == ["TIME", "SINCE", "PREV", "EVENT", "DATA"]
    assert [line.split()[2 if i else 1] for i, line in enumerate(lines[2:])] == [
        "Started", "Charged", "StepFailed", "CompensationStarted", "Compensated", "Failed"]
    assert all(line.split()[1].startswith("+") and line.split()[1].endswith("s")
               for line in lines[3:])
    assert '"error": "rejected (422): out of stock"' in lines[4]
    doc = json.loads(as_json.stdout)
    assert doc["workflowId"] == wid and "verify" not in doc
    assert doc["state"] == fold(stored, ops_system.workflows.shape) == ops_system.views.state(wid)
    assert (doc["state"]["orderId"], doc["state"]["paymentId"]) == ("t-1", "charge-t-1")
    assert [m["type"] for m in doc["timeline"]] == [event_type(e) for e in stored] == [
        "Started", "Charged", "StepFailed", "CompensationStarted", "Compensated", "Failed"]
    assert doc["timeline"][0]["sincePreviousS"] is None
    assert all(m["sincePreviousS"] >= 0 for m in doc["timeline"][1:])
    assert doc["timeline"][0]["data"] == {
        "definition": "order", "definitionVersion": 1, "key": "t-1",
        "input": {"cents": 101, "skus": ["sku-1"], "address": "1 Main St"}}
    assert doc["timeline"][1]["data"] == {"step": "charge", "name": "Charged",
                                          "status": "CHARGED", "attempt": 1,
                                          "result": {"paymentId": "charge-t-1"}}
    # replay only reads: nothing was recorded, nothing projected anew
    assert ops_system.workflows.recorder.max_notification_id() == head
    assert ops_system.views.position(NAME) == head


def test_verify_passes_on_a_healthy_store(database_url: str, ops_system: System,
                                          ops_fake: FakeParticipants) -> None:
    build(ops_system.workflows, 8, prefix="v")
    trip = trip_waiting(ops_system.workflows, "trip-1")  # another definition, mid-way
    live = str(ops_system.workflows.start(
        "order", "live-1", {"cents": 700, "skus": ["sku"], "address": "1 Main St"}).workflow_id)
    wait_until(lambda: (ops_system.views.state(live) or {}).get("status") == "COMPLETED",
               what="the worker to finish live-1")
    projected(ops_system)
    calls = len(ops_fake.calls)

    one = cli(database_url, "audit", "replay", _wid("v-2"), "--verify")
    by_key = cli(database_url, "audit", "replay", "trip-1", "--definition", "trip", "--verify")
    every = cli(database_url, "audit", "replay", "--all", "--verify")
    as_json = cli(database_url, "audit", "replay", "--all", "--verify", "--json")

    assert one.exit_code == 0, one.output
    assert "verify: OK, the served state view matches the replay field by field" in one.stdout
    assert by_key.exit_code == 0, by_key.output
    assert by_key.stdout.startswith(f"workflow {trip.id}  trip trip-1  WAITING at version 5")
    assert "verify: OK" in by_key.stdout
    assert every.exit_code == 0, every.output
    assert "10 workflows" in every.stdout and ", 0 mismatch(es)" in every.stdout
    summary = json.loads(as_json.stdout)
    assert (summary["workflows"], summary["mismatches"]) == (10, {})
    assert len(ops_fake.calls) == calls  # replay never calls a participant


def test_verify_names_a_corrupted_view_and_the_field_and_exits_non_zero(
        database_url: str, ops_system: System) -> None:
    outcome = build(ops_system.workflows, 12, prefix="c")
    projected(ops_system)
    failed = [_wid(o) for o, status in outcome.items() if status == "FAILED"]
    victim = failed[1]
    execute(ops_system, "UPDATE workflow_state SET status = 'COMPLETED' WHERE workflow_id = ?",
            victim)

    one = cli(database_url, "audit", "replay", victim, "--verify")
    one_json = cli(database_url, "audit", "replay", victim, "--verify", "--json")
    every = cli(database_url, "audit", "replay", "--all", "--verify")
    healthy = cli(database_url, "audit", "replay", failed[0], "--verify")

    assert one.exit_code == 1
    assert "verify: MISMATCH" in one.stdout
    assert "status: replayed \"FAILED\", served \"COMPLETED\"" in one.stdout
    assert json.loads(one_json.stdout)["verify"] == {
        "ok": False, "behind": 0,
        "differences": [{"field": "status", "replayed": "FAILED", "served": "COMPLETED"}]}
    assert one_json.exit_code == 1
    assert every.exit_code == 1
    assert f"MISMATCH workflow {victim}" in every.stdout
    assert every.stdout.count("MISMATCH") == 1
    assert ", 1 mismatch(es)" in every.stdout
    assert healthy.exit_code == 0
    assert all_states(ops_system)[victim]["status"] == "COMPLETED"  # replay repaired nothing


def test_verify_names_a_field_forged_inside_the_stored_view(
        database_url: str, ops_system: System) -> None:
    build(ops_system.workflows, 4, prefix="f")
    projected(ops_system)
    victim = _wid("f-0")  # COMPLETED, charged as charge-f-0
    execute(ops_system, "UPDATE workflow_state SET view = replace(view, 'charge-f-0', "
                        "'charge-forged') WHERE workflow_id = ?", victim)

    one = cli(database_url, "audit", "replay", victim, "--verify", "--json")
    every = cli(database_url, "audit", "replay", "--all", "--verify")

    assert one.exit_code == 1 and every.exit_code == 1
    assert json.loads(one.stdout)["verify"]["differences"] == [
        {"field": "paymentId", "replayed": "charge-f-0", "served": "charge-forged"},
        {"field": "results",
         "replayed": {"charge": {"paymentId": "charge-f-0"}, "reserve": {"reservationId":
                      "reserve-f-0"}, "ship": {"shipmentId": "ship-f-0"}},
         "served": {"charge": {"paymentId": "charge-forged"}, "reserve": {"reservationId":
                    "reserve-f-0"}, "ship": {"shipmentId": "ship-f-0"}}}]
    assert f"MISMATCH workflow {victim}" in every.stdout and ", 1 mismatch(es)" in every.stdout


def test_a_view_row_that_lost_its_workflow_is_caught_by_replay_all(
        database_url: str, ops_system: System) -> None:
    build(ops_system.workflows, 4, prefix="d")
    projected(ops_system)
    gone = _wid("d-3")
    execute(ops_system, "DELETE FROM workflow_state WHERE workflow_id = ?", gone)

    every = cli(database_url, "audit", "replay", "--all", "--verify")

    assert every.exit_code == 1
    assert f"MISMATCH workflow {gone}" in every.stdout
    assert '(state view): replayed "present", served "absent"' in every.stdout


def test_unknown_workflow_and_bad_arguments(database_url: str) -> None:
    unknown = cli(database_url, "audit", "replay", str(uuid.uuid4()))
    neither = cli(database_url, "audit", "replay")

    assert unknown.exit_code == 2 and "no workflow" in unknown.output
    assert neither.exit_code == 2 and "either a WORKFLOW_ID or --all" in neither.output
