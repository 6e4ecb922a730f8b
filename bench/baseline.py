"""The bare baseline: the saga as plain `requests` calls, nothing durable, no retries.

The physical limit the orchestrator is measured against: the same three participant calls per
order, with the same headers and idempotency keys, from a thread pool in this process.
"""
from __future__ import annotations

import secrets
import threading
from typing import Any

import requests

from bench.driver import ORDER


class Rejected(Exception):
    """The participant answered something other than 2xx."""


class BareSaga:
    """charge -> reserve -> ship against one base URL; undoes what succeeded on a failure."""

    def __init__(self, base_url: str, timeout_s: float = 5.0) -> None:
        self.base, self.timeout_s = base_url.rstrip("/"), timeout_s
        self.local = threading.local()

    def _post(self, wf: str, action: str, path: str,
              body: dict[str, Any] | None = None) -> dict[str, Any]:
        if not hasattr(self.local, "session"):
            self.local.session = requests.Session()
        key = f"{wf}:{action}"
        headers = {"Idempotency-Key": key, "X-Workflow-Id": wf,
                   "traceparent": f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-01"}
        if body is not None:
            body = {**body, "idempotencyKey": key}
        r = self.local.session.post(self.base + path, json=body, headers=headers,
                                    timeout=self.timeout_s)
        if r.status_code >= 300:
            raise Rejected(f"{action} -> {r.status_code}")
        result: dict[str, Any] = r.json()
        return result

    def run(self, order_id: str) -> str:
        """One order, start to end; returns its terminal status."""
        wf, undo = order_id, []
        try:
            pay = self._post(wf, "charge", "/payments/charge",
                             {"orderId": order_id, "cents": ORDER["cents"]})["paymentId"]
            undo.append((f"/payments/{pay}/refund?reason=saga-failed", "refund"))
            res = self._post(wf, "reserve", "/inventory/reservations",
                             {"orderId": order_id, "skus": ORDER["skus"]})["reservationId"]
            undo.append((f"/inventory/reservations/{res}/release", "release"))
            self._post(wf, "ship", "/shipments",
                       {"orderId": order_id, "address": ORDER["address"]})
            return "COMPLETED"
        except (Rejected, requests.RequestException):
            try:
                for path, action in reversed(undo):
                    self._post(wf, action, path)
            except (Rejected, requests.RequestException):
                return "COMPENSATION_FAILED"
            return "FAILED"
