"""Bearer tokens through the Flask app: who may do what, and who a retry records."""
from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from api.app import create_app
from infrastructure.bootstrap import System, bootstrap
from infrastructure.settings import load

ORDER = {"cents": 100, "skus": ["a"], "address": "1 Main St"}


@pytest.fixture
def system(tmp_path: Path) -> Iterator[System]:
    settings = load({"DATABASE_URL": f"sqlite:///{tmp_path}/o.sqlite3",
                     "API_TOKENS": "shop:c-123-0123456789ab,c-456-0123456789ab",
                     "OPERATOR_TOKENS": "alice:op-789-0123456789ab"})
    built = bootstrap(settings)  # no worker: workflows stay where they are
    yield built
    built.views.close()
    built.workflows.close()
    built.definitions.close()


@pytest.fixture
def client(system: System) -> FlaskClient:
    return create_app(system).test_client()


def bearer(token: str) -> dict[str, Any]:
    return {"headers": {"Authorization": f"Bearer {token}"}}


def test_tokens_are_named_and_bare_ones_numbered(system: System) -> None:
    assert system.settings.api_tokens == (("shop", "c-123-0123456789ab"),
                                          ("client-2", "c-456-0123456789ab"))
    assert system.settings.operator_tokens == (("alice", "op-789-0123456789ab"),)


def test_no_token_or_an_unknown_one_is_401_and_a_client_on_operator_endpoints_403(
        client: FlaskClient) -> None:
    for kw in ({}, bearer("c-999"),
               {"headers": {"Authorization": "Basic c-123-0123456789ab"}}):
        r = client.post("/orders/o-1/orchestrate", json=ORDER, **kw)
        assert r.status_code == 401 and r.mimetype == "application/problem+json"
    placed = client.post("/orders/o-1/orchestrate", json=ORDER, **bearer("c-456-0123456789ab"))
    assert placed.status_code == 202
    for path in ("/workflows", "/events"):
        r = client.get(path, **bearer("c-123-0123456789ab"))
        assert r.status_code == 403 and r.mimetype == "application/problem+json"
    assert client.get("/health").status_code == 200
    assert client.get("/workflows", **bearer("op-789-0123456789ab")).status_code == 200


def test_a_retry_records_the_operators_token_name_and_reason(
        client: FlaskClient, system: System) -> None:
    wid = client.post("/orders/o-2/orchestrate", json=ORDER,
                      **bearer("c-123-0123456789ab")).get_json()["workflowId"]
    # The charge failed once and waits for its next attempt: a retry has something to do.
    system.workflows.change(uuid.UUID(wid), lambda w: w.fail(
        system.workflows.definition_of(w), "charge", 1, "503: busy", retryable=True,
        uncertain=True, max_attempts=5, retry_at=1e12))
    r = client.post(f"/workflows/{wid}/retry?reason=stuck%20since%20noon",
                    **bearer("op-789-0123456789ab"))
    assert r.status_code == 202
    events = list(system.workflows.events.get(uuid.UUID(wid)))
    retry = events[-1]
    assert type(retry).__name__ == "RetryRequested"
    assert (retry.by, retry.reason) == ("alice", "stuck since noon")
    assert "op-789-0123456789ab" not in repr(events)


TRIP = {"from": "LHR", "to": "JFK", "dates": {"depart": "2030-06-01", "return": "2030-06-08"},
        "cents": 250_000}
CLIENT, OPERATOR = bearer("c-123-0123456789ab"), bearer("op-789-0123456789ab")


def test_clients_start_read_and_signal_workflows_and_read_definitions(
        client: FlaskClient) -> None:
    started = client.post("/definitions/trip/workflows/t-1", json=TRIP, **CLIENT)
    assert started.status_code == 202, started.get_data(as_text=True)
    wid = started.get_json()["workflowId"]
    assert client.post(f"/workflows/{wid}/signals/approve", json={"by": "ann"},
                       **CLIENT).status_code == 202
    for path in ("/definitions", "/definitions/trip", "/definitions/trip?version=1",
                 "/openapi.json"):
        assert client.get(path, **CLIENT).status_code == 200, path
    assert client.get("/definitions/trip/workflows/t-1", **CLIENT).status_code in (200, 404)
    for path in ("/definitions", "/definitions/trip/workflows/t-1",
                 f"/workflows/{wid}/signals/approve"):
        r = client.get(path) if path == "/definitions" else client.post(path, json={})
        assert r.status_code == 401 and r.mimetype == "application/problem+json", path


def test_only_an_operator_registers_a_definition(client: FlaskClient, system: System) -> None:
    document = dict(system.definitions.get("trip").definition.document)
    changed = json.dumps({**document, "description": "a new version"})
    for kw in ({}, CLIENT):
        r = client.put("/definitions/trip", data=changed, content_type="application/json", **kw)
        assert r.status_code in (401, 403) and r.mimetype == "application/problem+json"
    assert system.definitions.get("trip").version == 1
    r = client.put("/definitions/trip", data=changed, content_type="application/json",
                   **OPERATOR)
    assert r.status_code == 201 and r.get_json()["version"] == 2
    assert system.definitions.get("trip").version == 2
