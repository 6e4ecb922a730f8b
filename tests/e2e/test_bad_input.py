"""Every bad input of the contract gets a 4xx problem document and changes nothing."""
from __future__ import annotations

import pytest
import requests

from tests.e2e.harness import ORDER, Orchestrator

BAD_BODIES = [
    ({**ORDER, "cents": 0}, 422),
    ({**ORDER, "cents": -5}, 422),
    ({**ORDER, "cents": 10**12 + 1}, 422),
    ({**ORDER, "cents": "12"}, 422),
    ({**ORDER, "cents": 12.5}, 422),
    ({**ORDER, "cents": True}, 422),
    ({k: v for k, v in ORDER.items() if k != "cents"}, 422),
    ({k: v for k, v in ORDER.items() if k != "skus"}, 422),
    ({k: v for k, v in ORDER.items() if k != "address"}, 422),
    ({**ORDER, "skus": []}, 422),
    ({**ORDER, "skus": [f"s{i}" for i in range(101)]}, 422),
    ({**ORDER, "skus": "sku-1"}, 422),
    ({**ORDER, "skus": [1, 2]}, 422),
    ({**ORDER, "address": ""}, 422),
    ({**ORDER, "address": "x" * 501}, 422),
    ([ORDER], 422),
]


def _is_problem(r: requests.Response, status: int) -> None:
    assert r.status_code == status, r.text
    assert r.headers["Content-Type"] == "application/problem+json"
    body = r.json()
    assert {"type", "title", "status", "detail"} <= set(body)
    assert body["status"] == status
    assert "Traceback" not in r.text and "<html" not in r.text.lower()


def _nothing_started(o: Orchestrator) -> None:
    listed = requests.get(f"{o.url}/workflows", timeout=5).json()
    assert listed["items"] == []


@pytest.mark.parametrize(("body", "status"), BAD_BODIES)
def test_bad_bodies(sqlite_orchestrator: Orchestrator, body: object, status: int) -> None:
    _is_problem(sqlite_orchestrator.place("o-bad", body), status)
    _nothing_started(sqlite_orchestrator)
    assert requests.get(f"{sqlite_orchestrator.url}/orders/o-bad", timeout=5).status_code == 404


def test_malformed_json_wrong_type_and_oversized_bodies(sqlite_orchestrator: Orchestrator) -> None:
    url = f"{sqlite_orchestrator.url}/orders/o-bad/orchestrate"
    _is_problem(requests.post(url, data="{not json", timeout=5,
                              headers={"Content-Type": "application/json"}), 400)
    _is_problem(requests.post(url, data="cents=1", timeout=5,
                              headers={"Content-Type": "application/x-www-form-urlencoded"}), 415)
    big = {**ORDER, "address": "x" * 400, "padding": "y" * (65 * 1024)}
    _is_problem(requests.post(url, json=big, timeout=5), 413)
    _nothing_started(sqlite_orchestrator)


@pytest.mark.parametrize("order_id", ["a" * 101, "has space", "semi;colon", "slash/inside"])
def test_bad_order_ids(sqlite_orchestrator: Orchestrator, order_id: str) -> None:
    _is_problem(sqlite_orchestrator.place(order_id), 400)
    _nothing_started(sqlite_orchestrator)


@pytest.mark.parametrize("query", ["wait=-1", "wait=31", "wait=abc", "wait=nan", "bogus=1"])
def test_bad_query_parameters(sqlite_orchestrator: Orchestrator, query: str) -> None:
    r = requests.post(f"{sqlite_orchestrator.url}/orders/o-q/orchestrate?{query}", json=ORDER,
                      timeout=5)
    _is_problem(r, 400)
    _nothing_started(sqlite_orchestrator)


@pytest.mark.parametrize("query", ["status=nope", "status=A%20B", "definition=Order",
                                   "key=..", "orderId=o-1&key=o-1", "limit=0", "limit=x",
                                   "createdAfter=yesterday",
                                   "after=%%%", "orderId=bad%20id", "unknown=1"])
def test_bad_search_parameters(sqlite_orchestrator: Orchestrator, query: str) -> None:
    _is_problem(requests.get(f"{sqlite_orchestrator.url}/workflows?{query}", timeout=5), 400)


def test_unknown_things_are_404_problems(sqlite_orchestrator: Orchestrator) -> None:
    for path in ("/workflows/not-a-uuid", "/workflows/00000000-0000-0000-0000-000000000000",
                 "/workflows/00000000-0000-0000-0000-000000000000/audit", "/orders/nope",
                 "/no/such/path"):
        _is_problem(requests.get(f"{sqlite_orchestrator.url}{path}", timeout=5), 404)
    for action in ("retry", "cancel"):
        _is_problem(requests.post(
            f"{sqlite_orchestrator.url}/workflows/00000000-0000-0000-0000-000000000000/{action}",
            timeout=5), 404)
    _is_problem(requests.delete(f"{sqlite_orchestrator.url}/health", timeout=5), 405)


def test_bad_input_to_the_definitions_endpoints_changes_nothing(
        sqlite_orchestrator: Orchestrator) -> None:
    """Starts, signals and registrations under the same rules: every refusal a problem
    document, no workflow started and no version registered."""
    url = sqlite_orchestrator.url
    trip = {"from": "LHR", "to": "JFK", "dates": {"depart": "2030-06-01",
                                                  "return": "2030-06-08"}, "cents": 500}
    json_type = {"Content-Type": "application/json"}
    yaml_type = {"Content-Type": "application/yaml"}
    cases: list[tuple[str, str, dict[str, object], int]] = [
        ("POST", "/definitions/trip/workflows/...", {"json": trip}, 400),
        ("POST", "/definitions/trip/workflows/a%0Ab", {"json": trip}, 400),
        ("POST", "/definitions/trip/workflows/" + "k" * 101, {"json": trip}, 400),
        ("POST", "/definitions/Trip/workflows/k", {"json": trip}, 400),
        ("POST", "/definitions/nope/workflows/k", {"json": trip}, 404),
        ("POST", "/definitions/trip/workflows/k?wait=1&wait=2", {"json": trip}, 400),
        ("POST", "/definitions/trip/workflows/k?wait=31", {"json": trip}, 400),
        ("POST", "/definitions/trip/workflows/k", {"json": {**trip, "cents": 0}}, 422),
        ("POST", "/definitions/trip/workflows/k", {"json": {**trip, "to": "J\x00K"}}, 422),
        ("POST", "/definitions/trip/workflows/k", {"data": "{", "headers": json_type}, 400),
        ("POST", "/definitions/trip/workflows/k", {"data": "x", "headers": {}}, 415),
        ("GET", "/definitions/trip/workflows/k?x=1", {}, 400),
        ("GET", "/definitions/trip?version=0", {}, 400),
        ("GET", "/definitions/trip?version=x", {}, 400),
        ("GET", "/definitions/trip?version=1&version=1", {}, 400),
        ("GET", "/definitions/trip?version=9", {}, 404),
        ("GET", "/definitions/nope", {}, 404),
        ("GET", "/definitions?x=1", {}, 400),
        ("PUT", "/definitions/trip", {"data": "name: trip", "headers": {
            "Content-Type": "text/plain"}}, 415),
        ("PUT", "/definitions/trip?x=1", {"data": "name: trip", "headers": yaml_type}, 400),
        ("PUT", "/definitions/trip", {"data": "a: &x [1]\nb: *x\n", "headers": yaml_type},
         422),
        ("PUT", "/definitions/trip", {"data": "name: trip\nname: trip\n",
                                      "headers": yaml_type}, 422),
        ("PUT", "/definitions/trip", {"data": b"name: \xff", "headers": yaml_type}, 400),
        ("PUT", "/definitions/trip", {"data": '{"name": "trip", "name": "trip"}',
                                      "headers": json_type}, 400),
        ("PUT", "/definitions/trip", {"data": "x" * (65 * 1024), "headers": yaml_type}, 413),
        ("PUT", "/definitions/trip", {"data": "name: trip\n", "headers": yaml_type}, 422),
        ("PUT", "/definitions/order", {"data": "name: trip\n", "headers": yaml_type}, 422),
        ("POST", "/workflows/00000000-0000-0000-0000-000000000000/signals/approve",
         {"json": {}}, 404),
        ("POST", "/workflows/00000000-0000-0000-0000-000000000000/signals/Approve",
         {"json": {}}, 400),
        ("POST", "/workflows/00000000-0000-0000-0000-000000000000/signals/approve",
         {"data": "[]", "headers": json_type}, 422),
        ("POST", "/workflows/00000000-0000-0000-0000-000000000000/signals/approve",
         {"data": '{"a": 1, "a": 2}', "headers": json_type}, 400),
        ("POST", "/workflows/00000000-0000-0000-0000-000000000000/signals/approve",
         {"data": "{}", "headers": {"Content-Type": "text/plain"}}, 415),
    ]
    for method, path, kw, status in cases:
        r = requests.request(method, f"{url}{path}", timeout=10, **kw)  # type: ignore[arg-type]
        assert r.status_code == status, (method, path, r.status_code, r.text)
        _is_problem(r, status)
    _nothing_started(sqlite_orchestrator)
    listed = requests.get(f"{url}/definitions", timeout=5).json()["items"]
    assert {(d["name"], d["version"]) for d in listed} == {("order", 1), ("trip", 1)}
