"""Serving the demo participants: a threaded werkzeug server, stopped cleanly on SIGTERM."""
from __future__ import annotations

import logging
import signal
import threading
from typing import Any

from flask import Flask
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from demo.app import STORE, create_participants_app

logger = logging.getLogger(__name__)


class _QuietRequestHandler(WSGIRequestHandler):
    """Logs errors but not every request: benchmarks send thousands of calls."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass


def make_participants_server(host: str, port: int, db_path: str,
                             faults: dict[str, Any] | None = None) -> BaseWSGIServer:
    """A threaded werkzeug server of the demo participants, bound but not yet serving: run
    `serve_forever()` (in a thread if you like) and stop it with `shutdown()`. Port 0 picks
    a free port (see `server_port`)."""
    app = create_participants_app(db_path, faults)
    try:
        return make_server(host, port, app, threaded=True, request_handler=_QuietRequestHandler)
    except BaseException:  # werkzeug exits (SystemExit) when the port is taken
        app.extensions[STORE].close()
        raise


def serve_participants(host: str, port: int, db_path: str,
                       faults: dict[str, Any] | None = None) -> None:
    """Serves the demo participants until Ctrl-C or SIGTERM, then closes cleanly."""
    server = make_participants_server(host, port, db_path, faults)
    previous = None
    if threading.current_thread() is threading.main_thread():
        # SIGTERM ends serve_forever the way Ctrl-C does, so the finally block runs.
        previous = signal.signal(signal.SIGTERM, _interrupt)
    logger.info("demo participants on http://%s:%d (records in %s)", host, server.server_port,
                db_path)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        close_participants_server(server)
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def close_participants_server(server: BaseWSGIServer) -> None:
    """Releases the port and the records file of a server that has stopped serving."""
    server.server_close()
    if isinstance(server.app, Flask):
        server.app.extensions[STORE].close()


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt
