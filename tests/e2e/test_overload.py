"""Overload and hostile clients against the real servers: `orchestrator api` (gunicorn) and
`orchestrator run` (werkzeug). No wall-clock thresholds: each check is a condition with a
deadline, and the bounds in play come from the same constants the servers use."""
from __future__ import annotations

import contextlib
import json
import select
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from api.gunicorn_worker import BODY_TIMEOUT_S, HEAD_TIMEOUT_S
from api.limits import MAX_BODY
from api.serve import MAX_WAITING, THREADS
from tests.e2e.harness import ORDER, Api, Orchestrator, Participants, Process, Worker, wait_until

API_WORKERS = 2  # processes of `orchestrator api`, as in production


@pytest.fixture(params=["run", "api"])
def server(request: pytest.FixtureRequest, tmp_path: Path,
           participants: Participants) -> Iterator[Process]:
    """Each of the two servers: `orchestrator run` (SQLite), `orchestrator api` (PostgreSQL)."""
    process: Process
    if request.param == "run":
        process = Orchestrator(tmp_path, participants)
    else:
        process = Api(tmp_path, request.getfixturevalue("pg_url"), workers=API_WORKERS)
    process.start()
    yield process
    process.kill()


def exchange(port: int, data: bytes, deadline_s: float = 5.0
             ) -> tuple[int, dict[str, str], bytes, bool]:
    """Sends `data` on a new connection and reads until the server hangs up or `deadline_s`
    passes: the status, the headers (lower-case names), the body, and whether it hung up."""
    received, closed = b"", False
    with socket.create_connection(("127.0.0.1", port), timeout=deadline_s) as sock:
        with contextlib.suppress(OSError):  # answered and hung up before taking it all
            sock.sendall(data)
        end = time.monotonic() + deadline_s
        while (left := end - time.monotonic()) > 0:
            sock.settimeout(left)
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                break
            except ConnectionResetError:
                closed = True
                break
            if not chunk:
                closed = True
                break
            received += chunk
    status, headers, body = parse_answer(received)
    return status, headers, body, closed


def parse_answer(received: bytes) -> tuple[int, dict[str, str], bytes]:
    """An HTTP/1.1 answer's status, headers (lower-case names) and body."""
    head, _, body = received.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    assert lines[0].startswith("HTTP/1."), received[:200]
    headers = {name.strip().lower(): value.strip()
               for name, _, value in (line.partition(":") for line in lines[1:])}
    return int(lines[0].split()[1]), headers, body


def assert_problem(status: int, headers: dict[str, str], body: bytes, expected: int) -> None:
    assert status == expected, body[:300]
    assert headers["content-type"] == "application/problem+json", headers
    document = json.loads(body)
    assert document["status"] == expected
    assert {"type", "title", "detail"} <= document.keys()


def test_waiting_requests_past_the_bound_get_202_at_once_and_the_api_stays_responsive(
        tmp_path: Path, pg_url: str, participants: Participants) -> None:
    participants.faults({"charge": {"delay_ms": 60_000}})  # nothing ends during the test
    worker = Worker(tmp_path, pg_url, participants, STEP_TIMEOUT_S="90").start()
    api = Api(tmp_path, pg_url, workers=API_WORKERS).start()
    held_at_most = API_WORKERS * MAX_WAITING
    waiters, wait_s = held_at_most + 24, 10

    def place(i: int) -> requests.Response:
        return requests.post(f"{api.url}/orders/w-{i}/orchestrate", params={"wait": wait_s},
                             json=ORDER, timeout=wait_s + 20)

    try:
        with ThreadPoolExecutor(waiters) as pool:
            futures = [pool.submit(place, i) for i in range(waiters)]

            def answered() -> list[Future[requests.Response]]:
                return [f for f in futures if f.done()]

            # those past the bound answer as if their wait had expired, long before it does
            wait_until(lambda: len(answered()) >= waiters - held_at_most, wait_s / 2,
                       "the waiters past the bound to be answered")
            early = [f.result() for f in answered()]
            assert all(r.status_code == 202 for r in early), [r.text for r in early]
            assert all(r.headers.get("Retry-After") for r in early)
            held = [f for f in futures if not f.done()]
            assert MAX_WAITING <= len(held) <= held_at_most

            # while they wait, every other request is served
            assert requests.get(f"{api.url}/health", timeout=5).status_code == 200
            wid = early[0].json()["workflowId"]
            state = requests.get(f"{api.url}/workflows/{wid}", timeout=5)
            assert state.status_code == 200 and state.json()["workflowId"] == wid
            other = requests.post(f"{api.url}/orders/not-waiting/orchestrate", json=ORDER,
                                  timeout=5)
            assert other.status_code == 202
            assert not all(f.done() for f in held), "the waiters were not held meanwhile"

            answers = [f.result() for f in futures]
        assert all(r.status_code == 202 for r in answers)  # the waits expired: still running
        waited = [r for r in answers if not r.headers.get("Retry-After")]
        assert MAX_WAITING <= len(waited) <= held_at_most
    finally:
        api.kill()
        worker.kill()


class Trickler:
    """Sockets that send a prefix, then `filler` one byte at a time every `every_s`, on a
    thread of their own (bounded by `until_s`), and note when the server hangs up on each."""

    def __init__(self, port: int, prefixes: list[bytes], filler: bytes, every_s: float,
                 until_s: float):
        self.socks = [socket.create_connection(("127.0.0.1", port), timeout=5)
                      for _ in prefixes]
        for sock, prefix in zip(self.socks, prefixes, strict=True):
            sock.sendall(prefix)
        self.pending = [bytearray(filler) for _ in prefixes]
        self.received = [b""] * len(prefixes)
        self.closed_at: list[float | None] = [None] * len(prefixes)
        self.rounds, self.every_s = 0, every_s
        self.started = time.monotonic()
        self.deadline = self.started + until_s
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while time.monotonic() < self.deadline and None in self.closed_at:
            for i, sock in enumerate(self.socks):
                if self.closed_at[i] is None and self.pending[i]:
                    with contextlib.suppress(OSError):  # hung up: the read below notes it
                        sock.send(self.pending[i][:1])
                        del self.pending[i][:1]
            readable, _, _ = select.select(
                [s for i, s in enumerate(self.socks) if self.closed_at[i] is None], [], [],
                self.every_s)
            for sock in readable:
                i = self.socks.index(sock)
                try:
                    chunk = sock.recv(65536)
                except OSError:
                    chunk = b""
                if chunk:
                    self.received[i] += chunk
                else:
                    self.closed_at[i] = time.monotonic() - self.started
            self.rounds += 1

    def close(self) -> None:
        self.deadline = 0
        self.thread.join(10)
        for sock in self.socks:
            sock.close()


def test_slow_clients_cannot_hold_the_api_s_threads_and_are_cut_off(
        tmp_path: Path, pg_url: str) -> None:
    api = Api(tmp_path, pg_url, workers=API_WORKERS).start()
    per_kind = API_WORKERS * THREADS + 8  # either kind alone is more than all the threads
    heads = [b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "] * per_kind  # never ends
    bodies = [(f"POST /orders/slow-{i}/orchestrate HTTP/1.1\r\nHost: 127.0.0.1\r\n"
               "Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n").encode()
              for i in range(per_kind)]
    trickler = Trickler(api.port, heads + bodies, b"a" * 1000, every_s=0.25,
                        until_s=HEAD_TIMEOUT_S + BODY_TIMEOUT_S + 5)
    try:
        # the slow heads and bodies are still being sent, one byte a quarter second
        wait_until(lambda: trickler.rounds >= 4, 5, "the slow clients to be under way")
        assert requests.get(f"{api.url}/health", timeout=5).status_code == 200
        assert requests.get(f"{api.url}/workflows", timeout=5).status_code == 200
        assert trickler.closed_at.count(None) == 2 * per_kind, "cut off too soon"

        # each is cut off at its deadline, however steadily it trickles
        wait_until(lambda: None not in trickler.closed_at[:per_kind], HEAD_TIMEOUT_S + 3,
                   "the server to hang up on every slow head")
        wait_until(lambda: None not in trickler.closed_at, BODY_TIMEOUT_S + 3,
                   "the server to hang up on every slow body")
        for received in trickler.received:
            status, headers, body = parse_answer(received)
            assert_problem(status, headers, body, 408)
        assert requests.get(f"{api.url}/health", timeout=5).status_code == 200
    finally:
        trickler.close()
        api.kill()


def test_a_request_line_or_header_too_large_is_a_problem_document(server: Process) -> None:
    huge = 70_000  # past gunicorn's limits and werkzeug's (64 KiB a line)
    status, headers, body, _ = exchange(
        server.port, b"GET /" + b"a" * huge + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    assert_problem(status, headers, body, 414)
    status, headers, body, _ = exchange(
        server.port, b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"b" * huge
        + b"\r\n\r\n")
    assert_problem(status, headers, body, 431)
    assert requests.get(f"{server.url}/health", timeout=5).status_code == 200


def test_after_a_413_the_server_hangs_up_promptly(server: Process) -> None:
    body = b'{"cents": 1, "skus": ["a"], "address": "' + b"x" * MAX_BODY + b'"}'
    head = (f"POST /orders/too-big/orchestrate HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode()
    # the client sent it all and waits for the server to hang up, as HTTP/1.1 says it will
    status, headers, answer, closed = exchange(server.port, head + body, deadline_s=3)
    assert_problem(status, headers, answer, 413)
    assert headers.get("connection", "").lower() == "close"
    assert closed, "the connection stayed open after the 413"


def test_the_api_removes_the_metrics_folder_it_made_and_only_that(
        tmp_path: Path, pg_url: str) -> None:
    temp = tmp_path / "tmp"
    given = tmp_path / "metrics-given"
    temp.mkdir()
    given.mkdir()
    for metrics_dir in (None, given):
        api = Api(tmp_path, pg_url, workers=API_WORKERS, TMPDIR=str(temp))
        api.env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        if metrics_dir is not None:
            api.env["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
        api.start()
        try:
            assert requests.get(f"{api.url}/metrics", timeout=5).status_code == 200
            made = list(temp.glob("orch-metrics-*"))
            assert len(made) == (1 if metrics_dir is None else 0)
            assert api.terminate() == 0  # SIGTERM: gunicorn's clean stop
        finally:
            api.kill()  # only if it is still running
        assert not list(temp.glob("orch-metrics-*"))
    assert given.is_dir() and any(given.iterdir())  # the user's folder, and what is in it, stay
