"""The system under test as the user runs it: `orchestrator run`, or `orchestrator api` (gunicorn)
with one or more `orchestrator worker` processes, its participants pointed at the stub."""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from bench.backends import Backend
from bench.procs import Proc, free_port, peak_rss_mib


@dataclass(frozen=True)
class Shape:
    """How the system is laid out in processes."""

    label: str
    workers: int = 0  # 0: everything in one `orchestrator run` process

    @property
    def split(self) -> bool:
        return self.workers > 0


RUN = Shape("run")
API_1W = Shape("api+1 worker", 1)
API_2W = Shape("api+2 workers", 2)


class SystemUnderTest:
    """Starts the processes of a shape on a backend, and stops them by their PIDs."""

    def __init__(self, shape: Shape, backend: Backend, stub_url: str, logdir: Path,
                 tag: str, extra_env: dict[str, str] | None = None) -> None:
        self.shape, self.backend = shape, backend
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        env = {"DATABASE_URL": backend.url, "PAYMENT_URL": stub_url,
               "INVENTORY_URL": stub_url, "SHIPPING_URL": stub_url, "LOG_FORMAT": "text",
               **(extra_env or {})}
        if shape.split:
            self.api: Proc | None = Proc(f"{tag}-api", "api", ["api", "--port", str(port)],
                                         env, logdir)
            self.workers = [Proc(f"{tag}-worker{i}", "api", ["worker"], env, logdir)
                            for i in range(shape.workers)]
        else:
            self.api = None
            self.workers = [Proc(f"{tag}-run", "api", ["run", "--port", str(port)], env, logdir)]

    @property
    def procs(self) -> list[Proc]:
        return [*self.workers, *([self.api] if self.api else [])]

    def start(self) -> SystemUnderTest:
        for worker in self.workers:
            worker.start()
        if self.api is not None:
            self.api.start()
        front = self.api or self.workers[0]
        front.wait_http(f"{self.url}/ready", timeout_s=60)
        if self.shape.workers > 1:
            time.sleep(2.5)  # a heartbeat or two, so that the workers have shared the shards
        return self

    def pids(self) -> list[int]:
        """Every process of the system (gunicorn's workers included)."""
        return [pid for proc in self.procs for pid in proc.tree()]

    def pids_by_role(self) -> dict[str, list[int]]:
        """The processes of each role: "worker" (every worker, or `orchestrator run`) and,
        when split, "api" (gunicorn's master and its workers)."""
        out = {"worker": [pid for w in self.workers for pid in w.tree()]}
        if self.api is not None:
            out["api"] = self.api.tree()
        return out

    def peak_rss_mib(self) -> dict[str, float | None]:
        """VmHWM per role: the worker (largest of them) and, when split, the API processes."""
        out: dict[str, float | None] = {
            "worker": max((peak_rss_mib(w.pid) or 0.0) for w in self.workers)}
        if self.api is not None:
            out["api"] = sum((peak_rss_mib(pid) or 0.0) for pid in self.api.tree())
        return out

    def stop(self) -> None:
        for proc in self.procs[::-1]:
            proc.stop()

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.tail()}" for p in self.procs)
