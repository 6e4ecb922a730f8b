"""A hostile client against the running system: no bad request may hurt another, be a 5xx, or
leak a secret. Each case asserts the status, the problem document, and that nothing was
recorded (the workflow count, the participants' ledger)."""
from __future__ import annotations

import base64
import json
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from tests.e2e.harness import ORDER, Api, Orchestrator, Participants, Worker, wait_until

PADDED = "c2VjcmV0b3BzdG9rZW4xMg=="  # a plain base64 token with padding


def is_problem(r: requests.Response, status: int) -> dict[str, object]:
    assert r.status_code == status, r.text
    assert r.headers["Content-Type"] == "application/problem+json"
    body = r.json()
    assert {"type", "title", "status", "detail"} <= set(body) and body["status"] == status
    assert "Traceback" not in r.text and "<html" not in r.text.lower()
    return dict(body)


def workflow_count(url: str, **kw: object) -> int:
    r = requests.get(f"{url}/workflows?limit=500", timeout=5, **kw)  # type: ignore[arg-type]
    assert r.status_code == 200, r.text
    return len(r.json()["items"])


def post_raw(url: str, body: str | bytes, **params: str) -> requests.Response:
    return requests.post(url, data=body, params=params, timeout=10,
                         headers={"Content-Type": "application/json"})


@pytest.fixture
def production(tmp_path: Path, pg_url: str, participants: Participants) -> Iterator[Api]:
    """`orchestrator api` (gunicorn, two processes) and one worker on PostgreSQL."""
    worker = Worker(tmp_path, pg_url, participants).start()
    api = Api(tmp_path, pg_url).start()
    yield api
    api.kill()
    worker.kill()


@pytest.fixture(params=["run", "production"])
def system(request: pytest.FixtureRequest) -> Orchestrator | Api:
    """Both shapes: `orchestrator run` on SQLite, and api + worker on PostgreSQL."""
    name = "sqlite_orchestrator" if request.param == "run" else "production"
    return request.getfixturevalue(name)  # type: ignore[no-any-return]


# --- 1. one poisoned order must not fail its neighbours -------------------------------------

def test_poisoned_orders_are_refused_and_their_neighbours_all_recorded(
        system: Orchestrator | Api, participants: Participants) -> None:
    poison = [{**ORDER, "address": "\ud800"}, {**ORDER, "skus": ["ok", "\udfff"]}]

    def place(i: int) -> tuple[int, requests.Response]:
        body = ORDER if i % 2 == 0 else poison[(i // 2) % 2]
        text = json.dumps(body)  # ensure_ascii: the lone surrogate travels as \ud800
        return i, post_raw(f"{system.url}/orders/o-{i}/orchestrate", text)

    with ThreadPoolExecutor(80) as pool:
        answers = list(pool.map(place, range(80)))

    for i, r in answers:
        if i % 2 == 0:
            assert r.status_code == 202, r.text
        else:
            body = is_problem(r, 422)
            paths = [e["path"] for e in body["errors"]]  # type: ignore[attr-defined]
            assert paths == (["address"] if (i // 2) % 2 == 0 else ["skus[1]"])
    assert workflow_count(system.url) == 40
    wait_until(lambda: participants.stats()["orders"]["completed"] == 40, 60,
               "the 40 valid orders to complete")
    stats = participants.stats()
    assert stats["effects"]["charge"] == 40 and stats["duplicate_effects"] == 0


@pytest.mark.parametrize("field", ["address", "sku"])
@pytest.mark.parametrize("char", ["\x00", "\x1b", "\r", "\n", "\x7f"])
def test_control_characters_in_text_are_refused(
        sqlite_orchestrator: Orchestrator, participants: Participants, field: str,
        char: str) -> None:
    body = {**ORDER, "address": f"1 Main{char}St"} if field == "address" else {
        **ORDER, "skus": [f"sku{char}1"]}
    r = sqlite_orchestrator.place("o-ctl", body)
    problem = is_problem(r, 422)
    path = "address" if field == "address" else "skus[0]"
    assert problem["errors"] == [{"path": path, "message": "must not hold control characters"}]
    assert problem["detail"] == f"{path}: must not hold control characters"
    assert workflow_count(sqlite_orchestrator.url) == 0
    assert participants.stats()["effects"]["charge"] == 0


# --- 2. deep nesting, duplicate keys, NaN, chunked bodies ----------------------------------

DEEP = 10_000


@pytest.mark.parametrize("body", [
    "[" * DEEP + "]" * DEEP,
    "{\"a\":" * DEEP + "1" + "}" * DEEP,
    json.dumps({**ORDER, "note": 0})[:-1].replace("0", "[" * DEEP + "]" * DEEP) + "}",
    '{"cents": -5, "skus": ["a"], "address": "x", "cents": 5}',
    '{"cents": NaN, "skus": ["a"], "address": "x"}',
    b'{"cents": 5, "skus": ["a"], "address": "\xff"}',
])
def test_bodies_that_are_not_strict_json_are_400(sqlite_orchestrator: Orchestrator,
                                                 body: str | bytes) -> None:
    is_problem(post_raw(f"{sqlite_orchestrator.url}/orders/o-deep/orchestrate", body), 400)
    assert workflow_count(sqlite_orchestrator.url) == 0


def test_a_chunked_body_over_64_kib_is_413(system: Orchestrator | Api) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"cents": 5, "skus": ["a"], "address": "'
        for _ in range(70):
            yield b"x" * 1024
        yield b'"}'

    r = requests.post(f"{system.url}/orders/o-big/orchestrate", data=chunks(), timeout=10,
                      headers={"Content-Type": "application/json"})
    is_problem(r, 413)
    assert workflow_count(system.url) == 0


# --- 3, 4. query parameters: dates at the edge, cursors, repeats ----------------------------

def cursor_of(value: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


@pytest.mark.parametrize("query", [
    "createdAfter=9999-12-31T23:59:59-23:59",
    "createdBefore=0001-01-01T00:00:00%2B14:00",
    "after=" + base64.urlsafe_b64encode(b"[" * 1200 + b"]" * 1200).decode(),  # fits a URL
    "after=" + cursor_of(["2026-01-01T00:00:00.000000Z\x00", str(uuid.uuid4())]),
    "after=" + cursor_of(["2026-01-01T00:00:00.000000Z", "not-a-uuid"]),
    "after=abc%00def",
    "limit=1&limit=9999",
    "status=FAILED&status=COMPLETED",
    "orderId=",
    "orderId=..",
])
def test_bad_search_parameters_are_400_on_both_stores(system: Orchestrator | Api,
                                                      query: str) -> None:
    is_problem(requests.get(f"{system.url}/workflows?{query}", timeout=10), 400)


def test_a_repeated_wait_or_reason_is_400_and_wait_0_answers_at_once(
        sqlite_orchestrator: Orchestrator) -> None:
    url = f"{sqlite_orchestrator.url}/orders/o-w/orchestrate"
    is_problem(requests.post(f"{url}?wait=1&wait=30", json=ORDER, timeout=10), 400)
    assert workflow_count(sqlite_orchestrator.url) == 0
    r = requests.post(f"{url}?wait=0", json=ORDER, timeout=10)
    assert r.status_code == 202, r.text


@pytest.mark.parametrize("order_id", [".", "..", "..."])
def test_order_ids_made_only_of_dots_are_refused(sqlite_orchestrator: Orchestrator,
                                                 order_id: str) -> None:
    # Sent as-is: requests would normalise `..` away, so write the request line ourselves.
    with socket.create_connection(("127.0.0.1", sqlite_orchestrator.port), timeout=10) as s:
        body = json.dumps(ORDER).encode()
        s.sendall(f"POST /orders/{order_id}/orchestrate HTTP/1.1\r\nHost: x\r\n"
                  f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
                  f"Connection: close\r\n\r\n".encode() + body)
        answer = b""
        while chunk := s.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 400"), answer[:200]
    assert b"application/problem+json" in answer
    assert workflow_count(sqlite_orchestrator.url) == 0


def test_405_says_which_methods_are_allowed(sqlite_orchestrator: Orchestrator) -> None:
    r = requests.delete(f"{sqlite_orchestrator.url}/workflows", timeout=5)
    is_problem(r, 405)
    assert set(r.headers["Allow"].replace(" ", "").split(",")) >= {"GET"}


# --- 5. tokens ------------------------------------------------------------------------------

def test_a_padded_base64_token_is_the_token_and_its_secret_is_never_recorded(
        tmp_path: Path, participants: Participants) -> None:
    # A step and its undo failing: the workflow ends COMPENSATION_FAILED, for an operator.
    participants.faults({"ship": {"status": 422}, "refund": {"status": 503}})
    o = Orchestrator(tmp_path, participants, OPERATOR_TOKENS=PADDED,
                     COMPENSATION_MAX_ATTEMPTS="1").start()
    try:
        for token in ("=", "c2VjcmV0b3BzdG9rZW4xMg", "=="):
            is_problem(requests.get(f"{o.url}/workflows",
                                    headers={"Authorization": f"Bearer {token}"},
                                    timeout=5), 401)
        op = {"Authorization": f"Bearer {PADDED}"}
        r = requests.post(f"{o.url}/orders/o-t/orchestrate", json=ORDER, headers=op,
                          timeout=10)
        assert r.status_code == 202, r.text
        wid = r.json()["workflowId"]
        wait_until(lambda: requests.get(f"{o.url}/workflows/{wid}", headers=op, timeout=5)
                   .json()["status"] == "COMPENSATION_FAILED", 30, "compensation to fail")
        participants.faults({})
        r = requests.post(f"{o.url}/workflows/{wid}/retry?reason=why", headers=op,
                          timeout=10)
        assert r.status_code == 202, r.text
        audit = requests.get(f"{o.url}/workflows/{wid}/audit", headers=op, timeout=5)
        retries = [e["data"] for e in audit.json()["events"] if e["type"] == "RetryRequested"]
        assert [d["by"] for d in retries] == ["operator-1"]
        feed = requests.get(f"{o.url}/events", headers=op, timeout=5).text
        for text in (audit.text, feed, o.log.read_text()):
            assert "c2VjcmV0b3BzdG9rZW4x" not in text
    finally:
        o.kill()


def test_a_token_list_that_parses_to_a_short_token_refuses_to_start(tmp_path: Path) -> None:
    env = {"OPERATOR_TOKENS": "ops=", "DATABASE_URL": f"sqlite:///{tmp_path}/o.sqlite3",
           "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-m", "api", "run", "--port", "1"], env=env,
                          capture_output=True, timeout=30, cwd=tmp_path)
    assert done.returncode == 2
    assert b"OPERATOR_TOKENS" in done.stderr and b"Traceback" not in done.stderr
    assert b"ops=" not in done.stderr


def test_a_store_that_cannot_be_created_stops_with_the_variable_named(tmp_path: Path) -> None:
    env = {"DATABASE_URL": "sqlite:////proc/orchestrator-test/o.sqlite3",
           "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-m", "api", "run", "--port", "1"], env=env,
                          capture_output=True, timeout=30, cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert b"DATABASE_URL" in done.stderr and b"Traceback" not in done.stderr


# --- 7. ready means the store and the views answer ------------------------------------------

def test_ready_is_503_once_the_views_file_is_gone(tmp_path: Path,
                                                  sqlite_orchestrator: Orchestrator) -> None:
    assert requests.get(f"{sqlite_orchestrator.url}/ready", timeout=5).status_code == 200
    views = tmp_path / "var" / "orch.views.sqlite3"
    assert views.exists()
    for path in views.parent.glob("orch.views.sqlite3*"):
        path.unlink()
    is_problem(requests.get(f"{sqlite_orchestrator.url}/ready", timeout=5), 503)


# --- a retry that changes nothing records nothing -------------------------------------------

def test_retrying_a_running_workflow_again_and_again_records_nothing(
        sqlite_orchestrator: Orchestrator, participants: Participants) -> None:
    participants.faults({"charge": {"delay_ms": 1500}})
    wid = sqlite_orchestrator.place("o-r").json()["workflowId"]
    url = f"{sqlite_orchestrator.url}/workflows/{wid}"
    for _ in range(20):
        assert requests.post(f"{url}/retry?reason=again", timeout=5).status_code == 202
    assert sqlite_orchestrator.finished(wid)["status"] == "COMPLETED"
    assert "RetryRequested" not in sqlite_orchestrator.audit_types(wid)
