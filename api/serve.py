"""Serving the API with gunicorn: several processes, each building its own app after the fork
(connections and pools must never cross a fork)."""
from __future__ import annotations

import os
import tempfile
from typing import Any

from gunicorn.app.base import BaseApplication

from infrastructure.settings import Settings


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

        return create_app(bootstrap(self.settings, serves_requests=True))


def serve(settings: Settings, host: str, port: int, workers: int) -> None:
    """Runs gunicorn in the foreground until SIGTERM or SIGINT."""
    os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", tempfile.mkdtemp(prefix="orch-metrics-"))
    _Gunicorn(settings, {
        "bind": f"{host}:{port}", "workers": workers, "worker_class": "gthread",
        "threads": 16, "timeout": 60, "graceful_timeout": 10, "accesslog": None,
        "loglevel": "warning",
    }).run()
