"""The history outlives the code: a `Started` and a `Charged` stored in their v1 shapes (the
order's fields, no `class_version`; no `cents`) are loaded, replayed and projected by today's
code through `class_version` and the upcasters, and the workflow goes on under today's code.
(tests/integration/test_legacy_store.py does the same for whole stores of every old shape.)"""
from __future__ import annotations

import json
import uuid

import pytest
from eventsourcing.persistence import StoredEvent

from application.views import AuditEntry
from domain.workflow import Workflow
from infrastructure.bootstrap import System, bootstrap
from tests.fakes import FakeParticipants, wait_until
from tests.ops import cli, settings_for

TOPIC = "domain.workflow:Workflow.Charged"
STARTED = "domain.workflow:Workflow.Started"
SUCCEEDED = "domain.workflow:Workflow.StepSucceeded"
# What v1 of the code wrote for a start and a charge: no "class_version", no "cents".
V1_STARTED = (b'{"timestamp":{"_type_":"datetime_iso","_data_":"2024-03-01T12:00:00+00:00"},'
              b'"originator_topic":"domain.workflow:Workflow","order_id":"from-2024",'
              b'"cents":4200,"skus":["sku-1"],"address":"1 Old Rd"}')
V1_CHARGED = (b'{"timestamp":{"_type_":"datetime_iso","_data_":"2024-03-01T12:00:01.500000+00:00"},'
              b'"payment_id":"pay-from-2024","attempt":2}')


def _stored_state(system: System, workflow_id: uuid.UUID, version: int,
                  topic: str = TOPIC) -> dict[str, object]:
    stored = system.workflows.recorder.select_events(workflow_id, gt=version - 1, lte=version)
    assert stored[0].topic == topic
    return dict(json.loads(stored[0].state))


def test_a_v1_charged_is_loaded_replayed_and_projected_by_todays_code(database_url: str) -> None:
    settings = settings_for(database_url)
    old = bootstrap(settings)  # the store as an earlier version left it
    wid = Workflow.create_id("order", "from-2024")
    assert wid == uuid.uuid5(uuid.UUID("6f1e7d3c-58a2-4c39-9d0e-0c1b2a3f4e5d"), "from-2024")
    old.workflows.recorder.insert_events([StoredEvent(wid, 1, STARTED, V1_STARTED),
                                          StoredEvent(wid, 2, TOPIC, V1_CHARGED)])
    old.stop(grace_s=0)

    fake = FakeParticipants()
    system = bootstrap(settings, participants=fake)
    try:
        workflow = system.workflows.load(wid)
        started, charged = list(system.workflows.events.get(wid))
        assert (workflow.version, workflow.status) == (2, "CHARGED")
        assert (workflow.definition, workflow.definition_version, workflow.key) == (
            "order", 1, "from-2024")
        assert workflow.input == {"cents": 4200, "skus": ["sku-1"], "address": "1 Old Rd"}
        assert workflow.results == {"charge": {"paymentId": "pay-from-2024"}}
        assert workflow.attempts == {"charge": 2}
        assert (charged.payment_id, charged.attempt, charged.cents) == ("pay-from-2024", 2, None)
        assert type(started).class_version == 2 and started.key == "from-2024"

        # the worker goes on from the upcast history: reserve, ship, complete
        system.start_worker()
        wait_until(lambda: (system.views.state(str(wid)) or {}).get("status") == "COMPLETED",
                   what="the old workflow to complete")
        assert fake.actions(wid) == ["reserve", "ship"]
        audit = system.views.audit(str(wid))
        assert audit[1] == AuditEntry(str(wid), 2, "Charged", "2024-03-01T12:00:01.500000Z",
                                      {"paymentId": "pay-from-2024", "attempt": 2,
                                       "cents": None})
        assert system.views.state(str(wid))["paymentId"] == "pay-from-2024"
        replayed = cli(database_url, "audit", "replay", str(wid), "--verify", "--json")
        assert replayed.exit_code == 0, replayed.output
        assert json.loads(replayed.stdout)["timeline"][1]["data"] == {
            "paymentId": "pay-from-2024", "attempt": 2, "cents": None}

        assert [(a.position, a.type) for a in audit] == [
            (1, "Started"), (2, "Charged"), (3, "Reserved"), (4, "Shipped"), (5, "Completed")]
        assert audit[0].data == {"definition": "order", "definitionVersion": 1,
                                 "key": "from-2024", "input": workflow.input}

        # today's code writes a start v2 and a step's success as StepSucceeded, named by
        # the definition (`Charged` in the audit)
        new = system.workflows.start(
            "order", "from-today",
            {"cents": 1999, "skus": ["sku-2"], "address": "2 New Rd"}).workflow_id
        wait_until(lambda: system.workflows.load(new).status == "COMPLETED",
                   what="the new workflow to complete")
        state = _stored_state(system, new, 2, SUCCEEDED)
        paid = fake.calls_for(new, action="charge")
        assert len(paid) == 1
        assert {k: v for k, v in state.items() if k != "timestamp"} == {
            "step": "charge", "name": "Charged", "status": "CHARGED", "attempt": 1,
            "result": {"paymentId": state["result"]["paymentId"]}}  # type: ignore[index]
        start = _stored_state(system, new, 1, STARTED)
        assert (start["class_version"], start["definition"], start["key"]) == (
            2, "order", "from-today")
        assert _stored_state(system, wid, 1, STARTED) == json.loads(V1_STARTED)  # unchanged
        assert _stored_state(system, wid, 2) == json.loads(V1_CHARGED)  # history unchanged
    finally:
        fake.release_all()
        system.stop(grace_s=2.0)


def test_the_event_class_keeps_its_stored_topic() -> None:
    from eventsourcing.utils import get_topic, resolve_topic

    assert get_topic(Workflow.Charged) == TOPIC
    assert resolve_topic(TOPIC) is Workflow.Charged
    assert Workflow.Charged.class_version == 2


@pytest.mark.parametrize(("name", "class_version"), [
    ("Started", 2), ("Charged", 2), ("Reserved", 1), ("Shipped", 1), ("StepFailed", 2),
    ("CompensationStarted", 2), ("Compensated", 1), ("CompensationFailed", 1), ("Failed", 1),
    ("CancelRequested", 1), ("Cancelled", 1), ("RetryRequested", 1), ("Completed", 1),
])
def test_every_topic_the_code_before_definitions_wrote_still_resolves(
        name: str, class_version: int) -> None:
    """Each topic the order saga's events were stored under, before definitions: the class it
    resolves to now, and the version it is at (a stored event without `class_version` is v1
    and is upcast from there)."""
    from eventsourcing.utils import resolve_topic

    resolved = resolve_topic(f"domain.workflow:Workflow.{name}")
    assert resolved.__qualname__ == f"Workflow.{name}"
    assert getattr(resolved, "class_version", 1) == class_version
