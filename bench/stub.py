"""A fast participant stub: Payment, Inventory and Shipping of the contract on one port.

    python -m bench.stub --port 8701 --latency-ms 20

Every call waits `--latency-ms` (asyncio.sleep, so calls overlap), then answers. The same
Idempotency-Key for the same action returns the stored answer and applies nothing twice.
It counts calls, replays and applied effects per action, duplicate effects (an order charged,
reserved or shipped more than once without being undone in between), and the time it spent on
each order's calls (the participants' own time, which the benchmark subtracts from latency).

    GET  /_stats            the counters and this process's CPU seconds
    GET  /_orders?prefix=P  {orderId: seconds spent in its calls} for the orders starting with P
"""
from __future__ import annotations

import argparse
import asyncio
import itertools
import time
from collections import Counter, defaultdict
from typing import Any

from aiohttp import web

FORWARD = {"charge": "paymentId", "reserve": "reservationId", "ship": "shipmentId"}
UNDO = {"charge": "refund", "reserve": "release", "ship": "cancel"}
UNDONE = {"refund": "refunded", "release": "released", "cancel": "cancelled"}
Answer = tuple[int, dict[str, Any]]


class Ledger:
    """What the participants applied and answered; no await inside, so one key applies once."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.replays: Counter[str] = Counter()
        self.effects: Counter[str] = Counter()
        self.answers: dict[tuple[str, str], Answer] = {}
        self.owner: dict[str, str] = {}  # paymentId / reservationId / shipmentId -> orderId
        self.orders: defaultdict[str, Counter[str]] = defaultdict(Counter)
        self.seconds: defaultdict[str, float] = defaultdict(float)  # orderId -> time in calls
        self.missing_key = 0
        self.serial = itertools.count(1)

    def apply(self, action: str, key: str | None, order: str | None,
              ref: str | None) -> tuple[Answer, bool]:
        """The answer to one call, and whether it was a replay of a stored one."""
        if key and (action, key) in self.answers:
            self.replays[action] += 1
            return self.answers[(action, key)], True
        if action in FORWARD:
            if not order:
                return (422, {"title": "orderId missing", "status": 422}), False
            ref = f"{action}-{next(self.serial)}"
            self.owner[ref] = order
            answer: Answer = (201, {"orderId": order, FORWARD[action]: ref, "status": "ok"})
        else:
            order = self.owner.get(ref or "")
            if order is None:
                return (404, {"title": f"unknown id {ref}", "status": 404}), False
            answer = (200, {"orderId": order, "id": ref, "status": UNDONE[action]})
        self.effects[action] += 1
        self.orders[order][action] += 1
        if key:
            self.answers[(action, key)] = answer
        return answer, False

    def order_of(self, body: dict[str, Any], ref: str | None) -> str | None:
        return body.get("orderId") or self.owner.get(ref or "")

    def stats(self) -> dict[str, Any]:
        duplicates, outcomes = 0, Counter[str]()
        for done in self.orders.values():
            for step, undo in UNDO.items():
                duplicates += max(0, done[step] - done[undo] - 1) + max(0, done[undo] - done[step])
            net = [done[step] - done[undo] for step, undo in UNDO.items()]
            outcomes["completed" if net == [1, 1, 1] else
                     "compensated" if net == [0, 0, 0] else "partial"] += 1
        return {"calls": dict(self.calls), "replays": dict(self.replays),
                "effects": dict(self.effects), "duplicates": duplicates,
                "orders": dict(outcomes), "missing_key": self.missing_key,
                "cpu_s": time.process_time()}


def make_app(latency_s: float) -> web.Application:
    """The aiohttp application: the six participant calls and the two counters' endpoints."""
    ledger = Ledger()

    def route(action: str) -> Any:
        async def handler(request: web.Request) -> web.Response:
            started = time.perf_counter()
            ledger.calls[action] += 1
            key = request.headers.get("Idempotency-Key")
            ledger.missing_key += key is None
            body = await request.json() if request.can_read_body else {}
            ref = request.match_info.get("id")
            if latency_s:
                await asyncio.sleep(latency_s)
            (status, result), replayed = ledger.apply(action, key, body.get("orderId"), ref)
            order = ledger.order_of(body, ref)
            if order:
                ledger.seconds[order] += time.perf_counter() - started
            headers = {"Idempotent-Replayed": "true"} if replayed else None
            return web.json_response(result, status=status, headers=headers)
        return handler

    async def stats(_: web.Request) -> web.Response:
        return web.json_response(ledger.stats())

    async def orders(request: web.Request) -> web.Response:
        prefix = request.query.get("prefix", "")
        return web.json_response(
            {o: s for o, s in ledger.seconds.items() if o.startswith(prefix)})

    app = web.Application()
    app.add_routes([
        web.post("/payments/charge", route("charge")),
        web.post("/payments/{id}/refund", route("refund")),
        web.post("/inventory/reservations", route("reserve")),
        web.post("/inventory/reservations/{id}/release", route("release")),
        web.post("/shipments", route("ship")),
        web.post("/shipments/{id}/cancel", route("cancel")),
        web.get("/_stats", stats),
        web.get("/_orders", orders),
    ])
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8701)
    parser.add_argument("--latency-ms", type=float, default=0.0)
    args = parser.parse_args()
    web.run_app(make_app(args.latency_ms / 1000), host=args.host, port=args.port,
                access_log=None, print=None, backlog=1024)


if __name__ == "__main__":
    main()
