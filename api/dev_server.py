"""The server of `orchestrator run`: werkzeug's threaded server (a thread per connection, on
127.0.0.1), with its own errors as problem documents and prompt hang-ups.

- Errors werkzeug answers before the app (414 request line too long, 431 header fields too
  large, 400 bad request line, ...) come from http.server's `send_error`, an HTML page: here
  they are problem+json like every other error.
- After an answer werkzeug reads and drops whatever the client still sends, with a read that
  only returns at 10 MB or end of stream: after a 413 a client that waits for the server to
  hang up waited as long as it cared to. Once the app's answer is written, the connection's
  reads time out after DRAIN_IDLE_S of silence, so the hang-up follows promptly.
- IDLE_TIMEOUT_S bounds any silence on a connection (before or inside a request): each
  connection has a thread of its own, so slow clients starve no one, but silent ones would
  keep their threads for ever.
"""
from __future__ import annotations

import socket
from collections.abc import Iterable, Iterator
from typing import Any

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from api.wire_problems import problem_json, title_of

IDLE_TIMEOUT_S = 10.0
DRAIN_IDLE_S = 0.2
# `?wait` requests waiting at once: with a thread per connection there is no pool to starve,
# so this only caps the threads parked in waits.
MAX_WAITING = 64


class ProblemRequestHandler(WSGIRequestHandler):
    """werkzeug's handler, with http.server's own error answers as problem documents."""

    timeout = IDLE_TIMEOUT_S  # socketserver sets it on each connection

    def send_error(self, code: int, message: str | None = None,
                   explain: str | None = None) -> None:
        """As http.server's, with a problem document for a body (always closes)."""
        short, long = self.responses.get(code, (title_of(code), title_of(code)))
        self.log_error("code %d, message %s", code, message or short)
        self.send_response(code, message)
        self.send_header("Connection", "close")
        body = b""
        if code >= 200 and code not in (204, 205, 304):
            body = problem_json(code, explain or message or long)
            self.send_header("Content-Type", "application/problem+json")
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD" and body:
            self.wfile.write(body)


class _DrainBriefly:
    """Once the app's answer has been iterated (so written), makes the connection's reads
    time out soon: what werkzeug then drains is what the client had already sent."""

    def __init__(self, app: Any):
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        return _ThenShortReads(self.app(environ, start_response), environ.get("werkzeug.socket"))


class _ThenShortReads:
    def __init__(self, body: Iterable[bytes], sock: socket.socket | None):
        self.body, self.sock, self.closed = body, sock, False

    def __iter__(self) -> Iterator[bytes]:
        try:
            yield from self.body
        finally:
            self.close()  # now: werkzeug skips it when its drain times out
        if self.sock is not None:
            self.sock.settimeout(DRAIN_IDLE_S)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        close = getattr(self.body, "close", None)
        if close is not None:
            close()


def make_dev_server(host: str, port: int, app: Any) -> BaseWSGIServer:
    """A threaded werkzeug server for `app` on host:port (not started)."""
    return make_server(host, port, _DrainBriefly(app), threaded=True,
                       request_handler=ProblemRequestHandler)
