"""Subprocesses the benchmark starts, and what /proc says about them.

Every process is started by us, stopped by its own PID (SIGTERM, then SIGKILL after a grace
period), and logs to a file in the run's temporary folder for post-mortems.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parent.parent
TICKS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    """A port nobody listens on right now (loopback)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Proc:
    """One subprocess: `python -m <module> args...`, run from the repository's root."""

    def __init__(self, name: str, module: str, args: list[str], env: dict[str, str],
                 logdir: Path) -> None:
        self.name, self.module, self.args, self.env = name, module, args, env
        self.log = logdir / f"{name}.log"
        self.popen: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.popen is not None, f"{self.name} was not started"
        return self.popen.pid

    def start(self) -> Proc:
        with open(self.log, "ab") as out:
            self.popen = subprocess.Popen(
                [sys.executable, "-m", self.module, *self.args], cwd=REPO,
                env={**os.environ, **self.env}, stdout=out, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL)
        return self

    def wait_http(self, url: str, timeout_s: float = 30.0) -> Proc:
        """Waits until `url` answers 2xx; fails with the log's tail if the process died."""
        wait_until(lambda: self._alive() and _answers(url), timeout_s, f"{self.name} at {url}")
        return self

    def _alive(self) -> bool:
        assert self.popen is not None
        if self.popen.poll() is not None:
            raise RuntimeError(f"{self.name} exited ({self.popen.returncode}): {self.tail()}")
        return True

    def tail(self, chars: int = 2000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""

    def stop(self, grace_s: float = 20.0) -> None:
        """SIGTERM, then SIGKILL if it has not ended within `grace_s`."""
        if self.popen is None or self.popen.poll() is not None:
            return
        self.popen.send_signal(signal.SIGTERM)
        try:
            self.popen.wait(grace_s)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait(10)

    def tree(self) -> list[int]:
        """This process and its descendants alive now (gunicorn's workers, say)."""
        return [self.pid, *descendants(self.pid)]


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=1).ok
    except requests.RequestException:
        return False


def wait_until(check: Callable[[], object], timeout_s: float, what: str,
               every_s: float = 0.05) -> None:
    """Polls `check` until truthy; raises TimeoutError naming `what` at the deadline."""
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout_s:.0f}s waiting for {what}")
        time.sleep(every_s)


def descendants(pid: int) -> list[int]:
    """PIDs whose parent chain leads to `pid`, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int(_stat_fields(int(entry.name))[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], list(children.get(pid, []))
    while todo:
        child = todo.pop()
        found.append(child)
        todo.extend(children.get(child, []))
    return found


def _stat_fields(pid: int) -> list[str]:
    """/proc/<pid>/stat after the command name (which may hold spaces): state is field 0."""
    raw = Path(f"/proc/{pid}/stat").read_text()
    return raw[raw.rindex(")") + 2:].split()


def cpu_seconds(pids: list[int]) -> dict[int, float]:
    """utime + stime of each process still alive, in seconds."""
    out = {}
    for pid in pids:
        try:
            fields = _stat_fields(pid)
        except OSError:
            continue
        out[pid] = (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime
    return out


def cpu_delta(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU seconds spent between two readings (a process new since `before` counts whole)."""
    return sum(t - before.get(pid, 0.0) for pid, t in after.items())


def peak_rss_mib(pid: int) -> float | None:
    """VmHWM (the resident set's high-water mark) of a live process, in MiB."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def machine_busy() -> tuple[int, int]:
    """(busy, total) jiffies of all cores since boot (idle and iowait are not busy)."""
    ticks = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    return sum(ticks) - ticks[3] - ticks[4], sum(ticks)
