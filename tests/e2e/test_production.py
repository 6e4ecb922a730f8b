"""The production shape on PostgreSQL: API and workers as separate processes, crashes and
stops survived, access by bearer tokens."""
from __future__ import annotations

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.e2e.harness import ORDER, TERMINAL, Api, Participants, Worker, wait_until


def place(api: Api, order_id: str, **kw: Any) -> requests.Response:
    return requests.post(f"{api.url}/orders/{order_id}/orchestrate", json=ORDER, timeout=40,
                         **kw)


def finished(api: Api, wid: str, timeout: float = 60, **kw: Any) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        state = requests.get(f"{api.url}/workflows/{wid}", timeout=5, **kw).json()
        return state if state.get("status") in TERMINAL else None
    return wait_until(check, timeout, f"workflow {wid} to end")


def test_kill_9_of_a_worker_among_two_mid_flight_loses_nothing(
        tmp_path: Path, pg_url: str, participants: Participants) -> None:
    participants.faults({a: {"delay_ms": 150} for a in ("charge", "reserve", "ship")})
    workers = [Worker(tmp_path, pg_url, participants).start() for _ in range(2)]
    api = Api(tmp_path, pg_url).start()
    try:
        with ThreadPoolExecutor(16) as pool:
            ids = list(pool.map(lambda i: place(api, f"k-{i}").json()["workflowId"],
                                range(100)))
        wait_until(lambda: participants.stats()["effects"]["reserve"] >= 20, 30,
                   "the saga to be under way")
        workers[0].kill()
        assert participants.stats()["orders"]["completed"] < 100, "killed too late"
        for wid in ids:
            assert finished(api, wid, timeout=90)["status"] == "COMPLETED"
        stats = participants.stats()
        assert stats["duplicate_effects"] == 0
        assert stats["effects"]["charge"] == stats["effects"]["ship"] == 100
        assert stats["orders"]["completed"] == 100
    finally:
        for process in (api, *workers):
            process.kill()


def test_a_worker_stopped_with_sigterm_finishes_its_calls_and_exits_0(
        tmp_path: Path, pg_url: str, participants: Participants) -> None:
    participants.faults({"charge": {"delay_ms": 800}})
    worker = Worker(tmp_path, pg_url, participants).start()
    api = Api(tmp_path, pg_url).start()
    successor: Worker | None = None
    try:
        wid = place(api, "sigterm").json()["workflowId"]
        wait_until(lambda: participants.stats()["calls"]["charge"] >= 1, 10, "the charge")
        assert worker.terminate() == 0
        assert participants.stats("sigterm")["by_order"]["charge"] == 1
        state = requests.get(f"{api.url}/workflows/{wid}", timeout=5).json()
        assert state["paymentId"] and state["status"] == "CHARGED"  # recorded before exit
        participants.faults({})
        successor = Worker(tmp_path, pg_url, participants).start()
        assert finished(api, wid)["status"] == "COMPLETED"
        assert participants.stats("sigterm")["by_order"]["charge"] == 1
    finally:
        api.kill()
        if successor is not None:
            successor.kill()


def test_waiting_requests_on_the_api_are_answered_as_the_worker_ends_their_workflows(
        tmp_path: Path, pg_url: str, participants: Participants) -> None:
    """The API process learns of the worker's writes by NOTIFY, which names the workflows
    ended; a wait that begins after its workflow ended is answered too."""
    participants.faults({"ship": {"delay_ms": 100}})
    worker = Worker(tmp_path, pg_url, participants).start()
    api = Api(tmp_path, pg_url).start()
    try:
        with ThreadPoolExecutor(12) as pool:
            answers = list(pool.map(lambda i: place(api, f"w-{i}", params={"wait": 30}),
                                    range(24)))
        assert [(a.status_code, a.json()["status"]) for a in answers] == [
            (200, "COMPLETED")] * 24
        again = place(api, "w-0", params={"wait": 30})  # ended before this wait began
        assert (again.status_code, again.json()["status"]) == (200, "COMPLETED")
        assert again.json()["workflowId"] == answers[0].json()["workflowId"]
        stats = participants.stats()
        assert stats["effects"]["charge"] == stats["effects"]["ship"] == 24
        assert stats["duplicate_effects"] == 0
    finally:
        api.kill()
        worker.kill()


def test_the_api_killed_mid_request_then_a_retry_gets_the_same_workflow(
        tmp_path: Path, pg_url: str, participants: Participants) -> None:
    participants.faults({"ship": {"delay_ms": 3000}})
    worker = Worker(tmp_path, pg_url, participants).start()
    first = Api(tmp_path, pg_url).start()
    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(place, first, "killed", params={"wait": 20})
        wait_until(lambda: participants.stats()["calls"]["ship"] >= 1, 20, "the order to ship")
        first.kill()
        with pytest.raises(requests.RequestException):
            pending.result()
    second = Api(tmp_path, pg_url).start()
    try:
        again = place(second, "killed")
        assert again.status_code == 200
        listed = requests.get(f"{second.url}/workflows", params={"orderId": "killed"},
                              timeout=5).json()["items"]
        assert [s["workflowId"] for s in listed] == [again.json()["workflowId"]]
        assert finished(second, again.json()["workflowId"])["status"] == "COMPLETED"
        assert participants.stats("killed")["by_order"]["charge"] == 1
    finally:
        second.kill()
        worker.kill()


def test_bearer_tokens_guard_every_endpoint_but_health_ready_and_metrics(
        tmp_path: Path, pg_url: str, participants: Participants) -> None:
    client, operator = "c-secret-0123456789", "op-secret-0123456789"
    worker = Worker(tmp_path, pg_url, participants).start()
    api = Api(tmp_path, pg_url, API_TOKENS=client, OPERATOR_TOKENS=operator).start()
    as_client = {"headers": {"Authorization": f"Bearer {client}"}}
    as_operator = {"headers": {"Authorization": f"Bearer {operator}"}}
    try:
        for path in ("/health", "/ready", "/metrics"):
            assert requests.get(f"{api.url}{path}", timeout=5).status_code == 200
        for kw in ({}, {"headers": {"Authorization": "Bearer nope"}},
                   {"headers": {"Authorization": client}}):
            r = place(api, "guarded", **kw)
            assert r.status_code == 401
            assert r.headers["Content-Type"] == "application/problem+json"
        assert requests.get(f"{api.url}/workflows", timeout=5).status_code == 401

        r = place(api, "guarded", **as_client)
        assert r.status_code == 202
        wid = r.json()["workflowId"]
        assert finished(api, wid, **as_client)["status"] == "COMPLETED"
        assert requests.get(f"{api.url}/workflows/{wid}/audit", timeout=5,
                            **as_client).status_code == 200
        for method, path in (("get", "/workflows"), ("get", "/events"),
                             ("post", f"/workflows/{wid}/retry"),
                             ("post", f"/workflows/{wid}/cancel")):
            r = requests.request(method, f"{api.url}{path}", timeout=5, **as_client)
            assert r.status_code == 403, path
            assert r.headers["Content-Type"] == "application/problem+json"
        assert requests.get(f"{api.url}/workflows", timeout=5, **as_operator).status_code == 200
        events = requests.get(f"{api.url}/events", timeout=5, **as_operator).json()
        assert [e["type"] for e in events["events"]][:2] == ["Started", "Charged"]
        assert requests.post(f"{api.url}/workflows/{wid}/cancel", timeout=5,
                             **as_operator).status_code == 409  # completed: too late
    finally:
        api.kill()
        worker.kill()
    logs = "".join(p.log.read_text() for p in (api, worker))
    assert client not in logs and operator not in logs


def test_the_api_refuses_a_public_address_without_tokens(tmp_path: Path, pg_url: str) -> None:
    env = {**Api(tmp_path, pg_url).env}
    env.pop("API_TOKENS", None)
    env.pop("OPERATOR_TOKENS", None)
    env.pop("ALLOW_ANONYMOUS", None)
    refused = subprocess.run([sys.executable, "-m", "api", "api", "--host", "0.0.0.0",
                              "--port", "1"], env=env, capture_output=True, timeout=30)
    assert refused.returncode != 0
    assert b"ALLOW_ANONYMOUS" in refused.stderr and b"API_TOKENS" in refused.stderr


def test_the_database_url_password_never_reaches_a_log_line(
        tmp_path: Path, pg_url: str, participants: Participants) -> None:
    with_password = pg_url.replace("root@", "root:hunter2-pw@")  # trust auth ignores it
    worker = Worker(tmp_path, with_password, participants).start()
    assert worker.terminate() == 0
    log = worker.log.read_text()
    assert "hunter2-pw" not in log
    assert "root:***@" in log


def test_worker_logs_are_json_lines_with_workflow_and_trace_ids_and_it_has_metrics(
        tmp_path: Path, pg_url: str, participants: Participants) -> None:
    import json

    from tests.conftest import free_port

    participants.faults({"reserve": {"status": 503, "count": 1}})
    port = free_port()
    worker = Worker(tmp_path, pg_url, participants, LOG_FORMAT="json")
    worker.args += ["--metrics-port", str(port)]
    worker.start()
    api = Api(tmp_path, pg_url).start()
    try:
        wid = place(api, "logged").json()["workflowId"]
        assert finished(api, wid)["status"] == "COMPLETED"
        done = 'orchestrator_workflows_finished_total{status="COMPLETED"} 1.0'
        scraped = wait_until(  # the worker counts just after the view shows it
            lambda: done in (text := requests.get(f"http://127.0.0.1:{port}/metrics",
                                                  timeout=5).text) and text, 5, done)
        assert 'orchestrator_participant_call_seconds_count{action="reserve",' in scraped
        assert 'orchestrator_retries_total{action="reserve"} 1.0' in scraped
        assert 'orchestrator_breaker_open{participant="inventory"} 0.0' in scraped
        api_metrics = requests.get(f"{api.url}/metrics", timeout=5).text
        assert "orchestrator_workflows_started_total" in api_metrics
        assert 'orchestrator_projection_lag_events{projection="workflow_views"}' in api_metrics
    finally:
        api.kill()
        assert worker.terminate() == 0
    lines = [json.loads(line) for line in worker.log.read_text().splitlines()
             if line.startswith("{")]
    about = [line for line in lines if line.get("workflow_id") == wid]
    assert {line["msg"] for line in about} >= {"workflow COMPLETED"}
    assert any(line["level"] == "warning" and line.get("action") == "reserve" for line in about)
    assert all(line["trace_id"] == wid.replace("-", "") for line in about)


def test_many_processes_starting_at_once_on_an_empty_database_race_on_no_table(
        tmp_path: Path, pg_url: str) -> None:
    env = {**Api(tmp_path, pg_url).env}
    starts = [subprocess.Popen([sys.executable, "-m", "api", "db", "init"], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
              for _ in range(4)]
    results = [p.communicate(timeout=60) for p in starts]
    assert [p.returncode for p in starts] == [0, 0, 0, 0], results
    assert all(b"tables ready" in out for out, _ in results)
