"""Serving the API with gunicorn: several processes, each building its own app after the fork
(connections and pools must never cross a fork)."""
from __future__ import annotations

import os
import shutil
import tempfile
from typing import Any

from gunicorn.app.base import BaseApplication

from api.gunicorn_worker import BufferingThreadWorker
from infrastructure.settings import Settings

THREADS = 64  # request threads per process: most may wait (?wait), the rest serve
# `?wait` requests that may wait at once per process: the other threads stay free for every
# other request (health checks, reads, commands), however many clients wait. A waiting thread
# costs no CPU (one thread of the process reads for all waiters); a client declined a wait
# polls instead, and its polls cost the API more than the wait would have.
MAX_WAITING = THREADS - 16
_METRICS_DIR = "PROMETHEUS_MULTIPROC_DIR"


class _Gunicorn(BaseApplication):
    def __init__(self, settings: Settings, options: dict[str, Any]):
        self.settings, self.options = settings, options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        from api.app import create_app
        from infrastructure.bootstrap import bootstrap

        return create_app(bootstrap(self.settings, serves_requests=True),
                          max_waiting=MAX_WAITING)


def serve(settings: Settings, host: str, port: int, workers: int) -> None:
    """Runs gunicorn in the foreground until SIGTERM or SIGINT. The processes share their
    metrics through PROMETHEUS_MULTIPROC_DIR; unless the environment names one, a folder of
    this run's own is made, and removed when it stops."""
    made = None
    if not os.environ.get(_METRICS_DIR):
        made = os.environ[_METRICS_DIR] = tempfile.mkdtemp(prefix="orch-metrics-")
    master = os.getpid()
    try:
        _Gunicorn(settings, {
            "bind": f"{host}:{port}", "workers": workers,
            "worker_class": BufferingThreadWorker, "threads": THREADS, "timeout": 60,
            "graceful_timeout": 10, "accesslog": None, "loglevel": "warning",
        }).run()
    finally:
        # gunicorn's workers are forks that leave through this frame too: only the master,
        # once every worker is gone, removes the folder.
        if made is not None and os.getpid() == master:
            os.environ.pop(_METRICS_DIR, None)
            shutil.rmtree(made, ignore_errors=True)
