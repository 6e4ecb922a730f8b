"""A worker's own metrics port (`orchestrator worker --metrics-port`): participants are made on
their first call, so each scrape reads the breakers as they are then."""
from __future__ import annotations

import socket
import threading
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace

from application.ports import Call, Transient
from infrastructure.metrics import PrometheusMetrics, serve_metrics
from infrastructure.participants_http import HttpParticipants
from tests.conftest import free_port


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        return str(response.read().decode())


class NoContent(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def breaker_line(name: str) -> str:
    return f'orchestrator_breaker_open{{participant="{name}"}}'


def test_the_breaker_gauge_shows_participants_as_they_are_first_called() -> None:
    with socket.socket() as probe:  # nothing listens here: every call is refused
        probe.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}"
    well = ThreadingHTTPServer(("127.0.0.1", 0), NoContent)
    threading.Thread(target=well.serve_forever, args=(0.05,), daemon=True).start()
    urls = {"m_probe_a": closed, "m_probe_b": f"http://127.0.0.1:{well.server_port}"}
    participants = HttpParticipants(
        urls.get, timeout_s=1.0, breaker_fail_max=1, breaker_reset_s=60,
        bulkhead=lambda name: 2, rate_limit=lambda name: None)
    system = SimpleNamespace(participants=participants)
    port = free_port()
    server = serve_metrics(port, system)
    try:
        PrometheusMetrics().call_finished("m_probe_a", "ping", "transient", 0.01)
        before = scrape(port)
        assert breaker_line("m_probe_a") not in before  # not called yet: no breaker
        assert 'orchestrator_participant_call_seconds_count{action="ping"' in before

        outcome = participants.call(Call("m_probe_a", "ping", "wf-m", "wf-m:ping", "POST",
                                         "/ping", {}))
        assert isinstance(outcome, Transient)  # refused: the breaker (fail_max 1) opens
        participants.call(Call("m_probe_b", "ping", "wf-m", "wf-m:ping", "GET", "/ping"))

        after = scrape(port)
        assert f"{breaker_line('m_probe_a')} 1.0" in after
        assert f"{breaker_line('m_probe_b')} 0.0" in after

        system.participants = None  # a scrape before the worker has its participants
        assert "orchestrator_workflows_started_total" in scrape(port)
    finally:
        server.shutdown()
        server.server_close()
        well.shutdown()
        well.server_close()
        participants.close()
