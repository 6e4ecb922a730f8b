"""The history outlives the code: a `Charged` stored in its v1 shape (no `cents`) is loaded,
replayed and projected by today's code through `class_version` and `upcast_v1_v2`."""
from __future__ import annotations

import json
import uuid

from eventsourcing.persistence import StoredEvent

from application.views import AuditEntry
from domain.workflow import Workflow
from infrastructure.bootstrap import System, bootstrap
from tests.fakes import FakeParticipants, wait_until
from tests.ops import cli, settings_for

TOPIC = "domain.workflow:Workflow.Charged"
# What v1 of the code wrote for a charge: no "cents", no "class_version".
V1_CHARGED = (b'{"timestamp":{"_type_":"datetime_iso","_data_":"2024-03-01T12:00:01.500000+00:00"},'
              b'"payment_id":"pay-from-2024","attempt":2}')


def _stored_state(system: System, workflow_id: uuid.UUID, version: int) -> dict[str, object]:
    stored = system.workflows.recorder.select_events(workflow_id, gt=version - 1, lte=version)
    assert stored[0].topic == TOPIC
    return dict(json.loads(stored[0].state))


def test_a_v1_charged_is_loaded_replayed_and_projected_by_todays_code(database_url: str) -> None:
    settings = settings_for(database_url)
    old = bootstrap(settings)  # the store as an earlier version left it
    wid = old.workflows.start("from-2024", 4200, ["sku-1"], "1 Old Rd").workflow_id
    old.workflows.recorder.insert_events([StoredEvent(wid, 2, TOPIC, V1_CHARGED)])
    old.stop(grace_s=0)

    fake = FakeParticipants()
    system = bootstrap(settings, participants=fake)
    try:
        workflow = system.workflows.load(wid)
        charged = list(system.workflows.events.get(wid))[1]
        assert (workflow.version, workflow.status) == (2, "CHARGED")
        assert workflow.results == {"charge": "pay-from-2024"}
        assert (charged.payment_id, charged.attempt, charged.cents) == ("pay-from-2024", 2, None)

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

        # today's code writes v2, with the amount charged
        new = system.workflows.start("from-today", 1999, ["sku-2"], "2 New Rd").workflow_id
        wait_until(lambda: system.workflows.load(new).status == "COMPLETED",
                   what="the new workflow to complete")
        state = _stored_state(system, new, 2)
        assert (state["class_version"], state["cents"]) == (2, 1999)
        assert _stored_state(system, wid, 2) == json.loads(V1_CHARGED)  # history unchanged
    finally:
        fake.release_all()
        system.stop(grace_s=2.0)


def test_the_event_class_keeps_its_stored_topic() -> None:
    from eventsourcing.utils import get_topic, resolve_topic

    assert get_topic(Workflow.Charged) == TOPIC
    assert resolve_topic(TOPIC) is Workflow.Charged
    assert Workflow.Charged.class_version == 2
