"""The order saga end to end: real processes, real HTTP, effects counted at the participants."""
from __future__ import annotations

from pathlib import Path

import pytest
import requests

from tests.conftest import free_port
from tests.e2e.harness import ORDER, Orchestrator, Participants, wait_until

FORWARD = ("charge", "reserve", "ship")
UNDO = {"charge": "refund", "reserve": "release", "ship": "cancel"}


def effects(participants: Participants, order_id: str) -> dict[str, int]:
    return {k: v for k, v in participants.stats(order_id)["by_order"].items() if v}


def test_happy_path_charges_reserves_ships_once_and_records_every_step(
        orchestrator: Orchestrator, participants: Participants) -> None:
    r = orchestrator.place("o-1")
    assert r.status_code == 202
    wid = r.json()["workflowId"]
    assert r.headers["Location"] == f"/workflows/{wid}"
    assert r.json() == {"workflowId": wid, "orderId": "o-1", "status": "STARTED"} or \
        r.json()["status"] in ("CHARGED", "RESERVED", "SHIPPED", "COMPLETED")
    state = orchestrator.finished(wid)
    assert state["status"] == "COMPLETED"
    assert state["paymentId"] and state["reservationId"] and state["shipmentId"]
    assert state["attempts"] == {"charge": 1, "reserve": 1, "ship": 1}
    assert orchestrator.audit_types(wid) == [
        "Started", "Charged", "Reserved", "Shipped", "Completed"]
    assert effects(participants, "o-1") == {"charge": 1, "reserve": 1, "ship": 1}
    stats = participants.stats()
    assert stats["missing_headers"] == {"Idempotency-Key": 0, "X-Workflow-Id": 0,
                                        "traceparent": 0}
    by_order = requests.get(f"{orchestrator.url}/orders/o-1", timeout=5).json()
    assert by_order == state


@pytest.mark.parametrize("failing", FORWARD)
def test_a_rejection_compensates_exactly_the_earlier_steps_in_reverse(
        orchestrator: Orchestrator, participants: Participants, failing: str) -> None:
    participants.faults({failing: {"status": 422}})
    wid = orchestrator.place(f"o-{failing}").json()["workflowId"]
    state = orchestrator.finished(wid)
    assert state["status"] == "FAILED"
    assert failing in state["error"]
    done = FORWARD[:FORWARD.index(failing)]
    expected = {step: 1 for step in done} | {UNDO[step]: 1 for step in done}
    assert effects(participants, f"o-{failing}") == expected
    assert state["attempts"][failing] == 1  # a business rejection is not retried
    compensated = [e for e in requests.get(
        f"{orchestrator.url}/workflows/{wid}/audit", timeout=5).json()["events"]
        if e["type"] == "Compensated"]
    assert [e["data"]["step"] for e in compensated] == list(reversed(done))


def test_transient_faults_are_retried_with_one_key_and_no_double_effect(
        orchestrator: Orchestrator, participants: Participants) -> None:
    participants.faults({
        "charge": {"status": 503, "count": 2},
        "reserve": {"status": 429, "count": 1, "retry_after": 0},
        "ship": {"status": 500, "apply": True, "count": 1},  # applied, but the answer is lost
    })
    wid = orchestrator.place("o-flaky").json()["workflowId"]
    state = orchestrator.finished(wid)
    assert state["status"] == "COMPLETED"
    assert state["attempts"] == {"charge": 3, "reserve": 2, "ship": 2}
    assert effects(participants, "o-flaky") == {"charge": 1, "reserve": 1, "ship": 1}
    assert participants.stats()["duplicate_effects"] == 0
    assert orchestrator.audit_types(wid).count("StepFailed") == 4


def test_a_compensation_that_keeps_failing_waits_for_an_operator_retry(
        orchestrator: Orchestrator, participants: Participants) -> None:
    participants.faults({"ship": {"status": 422}, "refund": {"status": 500}})
    wid = orchestrator.place("o-stuck").json()["workflowId"]
    state = orchestrator.finished(wid)
    assert state["status"] == "COMPENSATION_FAILED"
    assert state["attempts"]["refund"] == 3
    assert effects(participants, "o-stuck") == {"charge": 1, "reserve": 1, "release": 1}

    participants.faults({})
    r = requests.post(f"{orchestrator.url}/workflows/{wid}/retry", timeout=5)
    assert r.status_code == 202
    state = wait_until(lambda: (s := orchestrator.state(wid))["status"] == "FAILED" and s,
                       20, "the retried compensation to finish")
    assert effects(participants, "o-stuck") == {
        "charge": 1, "reserve": 1, "release": 1, "refund": 1}
    assert "RetryRequested" in orchestrator.audit_types(wid)
    again = requests.post(f"{orchestrator.url}/workflows/{wid}/retry", timeout=5)
    assert again.status_code == 409
    assert again.headers["Content-Type"] == "application/problem+json"


def test_cancel_compensates_a_running_workflow_and_ends_cancelled(
        orchestrator: Orchestrator, participants: Participants) -> None:
    participants.faults({"ship": {"delay_ms": 1500}})
    wid = orchestrator.place("o-cancel").json()["workflowId"]
    wait_until(lambda: orchestrator.state(wid).get("status") == "RESERVED", 10,
               "the order to be reserved")
    r = requests.post(f"{orchestrator.url}/workflows/{wid}/cancel", timeout=5)
    assert r.status_code == 202
    state = orchestrator.finished(wid)
    assert state["status"] == "CANCELLED"
    done = effects(participants, "o-cancel")
    # the shipment was in flight when the cancel came: it is recorded, then undone too
    assert done == {"charge": 1, "reserve": 1, "ship": 1, "cancel": 1, "release": 1,
                    "refund": 1}
    assert orchestrator.audit_types(wid)[-1] == "Cancelled"
    assert requests.post(f"{orchestrator.url}/workflows/{wid}/cancel",
                         timeout=5).status_code == 409


def test_the_same_order_twice_is_one_workflow_and_a_different_body_conflicts(
        orchestrator: Orchestrator, participants: Participants) -> None:
    first = orchestrator.place("o-twice")
    second = orchestrator.place("o-twice")
    assert first.status_code == 202 and second.status_code == 200
    assert first.json()["workflowId"] == second.json()["workflowId"]
    conflict = orchestrator.place("o-twice", {**ORDER, "cents": 1})
    assert conflict.status_code == 409
    assert conflict.headers["Content-Type"] == "application/problem+json"
    orchestrator.finished(first.json()["workflowId"])
    assert effects(participants, "o-twice") == {"charge": 1, "reserve": 1, "ship": 1}
    listed = requests.get(f"{orchestrator.url}/workflows", params={"orderId": "o-twice"},
                          timeout=5).json()
    assert len(listed["items"]) == 1


def test_wait_answers_with_the_terminal_state(orchestrator: Orchestrator) -> None:
    r = orchestrator.place("o-wait", wait=10)
    assert r.status_code == 200
    assert r.json()["status"] == "COMPLETED"


def test_operations_endpoints(orchestrator: Orchestrator) -> None:
    assert requests.get(f"{orchestrator.url}/health", timeout=5).status_code == 200
    assert requests.get(f"{orchestrator.url}/ready", timeout=5).status_code == 200
    spec = requests.get(f"{orchestrator.url}/openapi.json", timeout=5).json()
    assert spec["openapi"].startswith("3.") and "/orders/{orderId}/orchestrate" in spec["paths"]
    orchestrator.place("o-metrics", wait=10)
    metrics = requests.get(f"{orchestrator.url}/metrics", timeout=5)
    assert 'orchestrator_workflows_finished_total{status="COMPLETED"}' in metrics.text


def test_a_participant_that_is_down_fails_its_step_after_retries_and_compensates(
        tmp_path: Path, participants: Participants) -> None:
    down = f"http://127.0.0.1:{free_port()}"  # nothing listens: every call is refused
    o = Orchestrator(tmp_path, participants, SHIPPING_URL=down).start()
    try:
        wid = o.place("o-down").json()["workflowId"]
        state = o.finished(wid)
        assert state["status"] == "FAILED"
        assert state["attempts"]["ship"] == 3  # STEP_MAX_ATTEMPTS in the test settings
        assert effects(participants, "o-down") == {
            "charge": 1, "reserve": 1, "release": 1, "refund": 1}
    finally:
        o.kill()
