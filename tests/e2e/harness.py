"""Real processes for end-to-end tests: the demo participants and the orchestrator, each a
subprocess of its own speaking HTTP on loopback, so a test can kill one and keep the other."""
from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests

from tests.conftest import free_port

ORDER = {"cents": 1999, "skus": ["sku-1", "sku-2"], "address": "1 Main St"}
TERMINAL = ("COMPLETED", "FAILED", "COMPENSATION_FAILED", "CANCELLED")
PARTICIPANT_NAMES = ("PAYMENT", "INVENTORY", "SHIPPING", "FLIGHTS", "HOTELS", "CARS", "NOTIFY")
FAST = {  # quick retries so unhappy paths end in seconds
    "STEP_TIMEOUT_S": "2", "RETRY_BACKOFF_BASE_S": "0.01", "RETRY_BACKOFF_CAP_S": "0.05",
    "STEP_MAX_ATTEMPTS": "3", "COMPENSATION_MAX_ATTEMPTS": "3", "BREAKER_FAIL_MAX": "50",
    "BREAKER_RESET_S": "0.5", "LOG_FORMAT": "text",
}


def participant_urls(participants: Participants) -> dict[str, str]:
    """Every participant of the bundled definitions (order and trip) at the demo process."""
    return {f"{name}_URL": participants.url for name in PARTICIPANT_NAMES}


def wait_until(check: Callable[[], Any], timeout: float, what: str) -> Any:
    """Polls `check` until it answers truthy; fails the test naming `what` at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            answer = check()
        except requests.RequestException:
            answer = None
        if answer:
            return answer
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)


class Process:
    """A subprocess serving HTTP at `url`; its output goes to a log file for post-mortems."""

    def __init__(self, args: list[str], env: dict[str, str], cwd: Path, port: int, name: str):
        self.args, self.env, self.cwd, self.port, self.name = args, env, cwd, port, name
        self.url = f"http://127.0.0.1:{port}"
        self.log = cwd / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Process:
        out = open(self.log, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "api", *self.args], cwd=self.cwd, env=self.env,
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        wait_until(lambda: self._alive() and requests.get(f"{self.url}/health", timeout=1).ok,
                   20, f"{self.name} to answer /health (log: {self.log})")
        return self

    def _alive(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"{self.name} exited: {self.log.read_text()[-2000:]}")
        return True

    def kill(self) -> None:
        """SIGKILL to the process and its children (gunicorn's workers): a crash."""
        if self.proc and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def terminate(self, timeout: float = 20) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)


class Participants(Process):
    """The demo participants, with fault injection and effect counts."""

    def __init__(self, tmp: Path):
        port = free_port()
        super().__init__(["participants", "--port", str(port), "--db",
                          str(tmp / "participants.sqlite3")], dict(os.environ), tmp, port,
                         "participants")

    def faults(self, spec: dict[str, Any]) -> None:
        requests.post(f"{self.url}/_faults", json=spec, timeout=5).raise_for_status()

    def stats(self, order_id: str | None = None) -> dict[str, Any]:
        """Counts; for a business key (an order id, a trip id), its effects in `by_order`."""
        params = {"key": order_id} if order_id else {}
        return requests.get(f"{self.url}/_stats", params=params, timeout=5).json()

    def effects(self, key: str) -> dict[str, int]:
        """The effects applied for one business key, per action (those applied at all)."""
        return {k: v for k, v in self.stats(key)["by_order"].items() if v}


class Orchestrator(Process):
    """`orchestrator run` against the given participants, with its store under `tmp`."""

    def __init__(self, tmp: Path, participants: Participants, **env: str):
        port = free_port()
        full = {**os.environ, **FAST, "DATABASE_URL": f"sqlite:///{tmp}/var/orch.sqlite3",
                **participant_urls(participants), **env}
        super().__init__(["run", "--port", str(port)], full, tmp, port, "orchestrator")

    def start_workflow(self, definition: str, key: str, body: dict[str, Any],
                       **params: Any) -> requests.Response:
        """POST /definitions/{definition}/workflows/{key}."""
        return requests.post(f"{self.url}/definitions/{definition}/workflows/{key}",
                             json=body, params=params, timeout=40)

    def signal(self, workflow_id: str, name: str, body: dict[str, Any]) -> requests.Response:
        return requests.post(f"{self.url}/workflows/{workflow_id}/signals/{name}", json=body,
                             timeout=10)

    def put_definition(self, name: str, text: str) -> requests.Response:
        """PUT /definitions/{name} with a YAML body."""
        return requests.put(f"{self.url}/definitions/{name}", data=text.encode(),
                            headers={"Content-Type": "application/yaml"}, timeout=10)

    def until_status(self, workflow_id: str, status: str, timeout: float = 30) -> dict[str, Any]:
        """Waits until the workflow's state view has `status`; returns it."""
        return wait_until(lambda: (s := self.state(workflow_id)).get("status") == status and s,
                          timeout, f"workflow {workflow_id} to be {status}")

    def place(self, order_id: str, body: dict[str, Any] | None = None,
              **params: Any) -> requests.Response:
        return requests.post(f"{self.url}/orders/{order_id}/orchestrate",
                             json=ORDER if body is None else body, params=params, timeout=40)

    def state(self, workflow_id: str) -> dict[str, Any]:
        return requests.get(f"{self.url}/workflows/{workflow_id}", timeout=5).json()

    def finished(self, workflow_id: str, timeout: float = 30) -> dict[str, Any]:
        """Waits until the workflow is terminal and returns its state view."""
        return wait_until(
            lambda: (s := self.state(workflow_id)).get("status") in TERMINAL and s,
            timeout, f"workflow {workflow_id} to end")

    def audit_types(self, workflow_id: str) -> list[str]:
        audit = requests.get(f"{self.url}/workflows/{workflow_id}/audit", timeout=5).json()
        return [e["type"] for e in audit["events"]]


class Api(Process):
    """`orchestrator api` (gunicorn) on PostgreSQL: it serves, and runs no saga."""

    def __init__(self, tmp: Path, database_url: str, workers: int = 2, **env: str):
        port = free_port()
        full = {**os.environ, **FAST, "DATABASE_URL": database_url, **env}
        super().__init__(["api", "--port", str(port), "--workers", str(workers)], full, tmp,
                         port, f"api-{port}")


class Worker(Process):
    """`orchestrator worker`: no HTTP; ready once its heartbeat is in the database."""

    count = 0

    def __init__(self, tmp: Path, database_url: str, participants: Participants, **env: str):
        Worker.count += 1
        full = {**os.environ, **FAST, "DATABASE_URL": database_url,
                **participant_urls(participants), **env}
        super().__init__(["worker"], full, tmp, 0, f"worker-{Worker.count}")
        self.database_url = database_url

    def start(self) -> Worker:
        out = open(self.log, "ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "api", *self.args], cwd=self.cwd,
                                     env=self.env, stdout=out, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        wait_until(lambda: self._alive() and self._beating(), 20,
                   f"{self.name} to join (log: {self.log})")
        return self

    def _beating(self) -> bool:
        import psycopg

        pid = f":{self.proc.pid}:" if self.proc else "?"
        try:
            with psycopg.connect(self.database_url) as conn:
                rows = conn.execute("SELECT worker_id FROM orchestrator_workers").fetchall()
        except psycopg.errors.UndefinedTable:  # the worker has not created its tables yet
            return False
        return any(pid in r[0] for r in rows)


def live_workers(database_url: str) -> int:
    import psycopg

    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT count(*) FROM orchestrator_workers "
                           "WHERE last_seen > now() - interval '5 seconds'").fetchone()
    return int(row[0]) if row else 0
