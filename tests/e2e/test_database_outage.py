"""PostgreSQL restarted under load: the API says so (503) while it is down, then everything
recovers by itself and no workflow is lost or stuck."""
from __future__ import annotations

import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from tests.e2e.harness import Api, Participants, Worker, wait_until
from tests.e2e.test_production import finished, place


def _cluster() -> list[str]:
    versions = sorted(p.name for p in Path("/etc/postgresql").glob("*")) if Path(
        "/etc/postgresql").is_dir() else []
    if not shutil.which("pg_ctlcluster") or not versions:
        pytest.skip("needs a local PostgreSQL cluster managed by pg_ctlcluster")
    return ["pg_ctlcluster", "--skip-systemctl-redirect", versions[-1], "main"]


def test_postgres_restarted_under_load(
        tmp_path: Path, pg_url: str, participants: Participants) -> None:
    cluster = _cluster()
    participants.faults({a: {"delay_ms": 100} for a in ("charge", "reserve", "ship")})
    worker = Worker(tmp_path, pg_url, participants).start()
    api = Api(tmp_path, pg_url).start()
    try:
        with ThreadPoolExecutor(8) as pool:
            ids = list(pool.map(lambda i: place(api, f"pg-{i}").json()["workflowId"],
                                range(30)))
        subprocess.run([*cluster, "stop", "-m", "fast"], check=True, timeout=60)
        try:
            ready = wait_until(  # a Response is falsy when not ok: wrap it
                lambda: (r := requests.get(f"{api.url}/ready", timeout=30)).status_code == 503
                and [r], 30, "/ready to say 503")[0]
            assert ready.headers["Content-Type"] == "application/problem+json"
            refused = place(api, "during-outage")
            assert refused.status_code == 503
            assert refused.headers["Content-Type"] == "application/problem+json"
        finally:
            subprocess.run([*cluster, "start"], check=True, timeout=60)
        wait_until(lambda: requests.get(f"{api.url}/ready", timeout=30).status_code == 200,
                   60, "/ready to recover")
        for wid in ids:
            assert finished(api, wid, timeout=90)["status"] == "COMPLETED"
        after = place(api, "after-outage")
        assert after.status_code in (200, 202)
        assert finished(api, after.json()["workflowId"])["status"] == "COMPLETED"
        stats = participants.stats()
        assert stats["duplicate_effects"] == 0
        assert stats["orders"]["completed"] == len(ids) + 1
    finally:
        api.kill()
        worker.kill()
