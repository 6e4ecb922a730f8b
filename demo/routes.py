"""Every call the demo participants serve, as one table: the calls of the bundled definitions.

A `Route` is one call a definition makes (definitions/order.yaml, definitions/trip.yaml): its
method and path, its action name (the definition's call name, which also names its faults and
its counts in `/_stats`), what it creates or undoes, the body fields it requires and how its
answer looks. The service (demo.app) has no code per action: it reads this table, so a new call
is a new row. `FLOWS` says which forward calls a finished order or trip applied, for the
outcomes in `/_stats`.
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from demo.fields import IDEMPOTENCY_KEY, Field, airport, date, positive, text, texts

_PLACEHOLDER = re.compile(r"\{([A-Za-z]\w*)\}")


@dataclass(frozen=True)
class Route:
    """One call: a forward call creates a resource of its own, an undo (`undoes` set) undoes
    one of its forward call's, named in the path by `{<id_field>}`."""

    method: str
    path: str  # `{name}` placeholders, as in the definitions
    action: str  # the definition's call name
    id_field: str  # the resource's id in the answer: paymentId, bookingId, ...
    done: str  # the answer's "status"
    undoes: str | None = None
    id_prefix: str = ""  # forward calls: ids are <id_prefix>_<hex>
    key_field: str = "orderId"  # forward calls: the body field naming the business key
    requires: tuple[Field, ...] = ()  # forward calls: checked after the key field
    echo_key: bool = False  # the answer names the business key too

    @property
    def forward(self) -> bool:
        """Whether the call creates a resource (rather than undoing one)."""
        return self.undoes is None

    @property
    def http_status(self) -> int:
        """201 for a forward call (it created something), 200 for an undo."""
        return 201 if self.forward else 200

    @property
    def rule(self) -> str:
        """The path as a werkzeug URL rule (`/payments/<paymentId>/refund`)."""
        return _PLACEHOLDER.sub(r"<\1>", self.path)

    def answer(self, ref: str, key: str) -> dict[str, Any]:
        """The success answer about resource `ref` of business key `key`."""
        body = {self.id_field: ref, "status": self.done}
        return {self.key_field: key, **body} if self.echo_key else body

    def body_problem(self, body: Mapping[str, Any]) -> str | None:
        """What is wrong with a forward call's body, naming the field; None when nothing is.
        Fields are checked in order: the key field, idempotencyKey, then `requires`."""
        for field in (text(self.key_field), IDEMPOTENCY_KEY, *self.requires):
            if field.optional and field.name not in body:
                continue
            if not field.check(body.get(field.name)):
                return f"{self.action}: {field.name} must be {field.what}"
        return None


@dataclass(frozen=True)
class Flow:
    """A process the demo serves: the forward calls a finished one applied once each, and
    those it may skip (a step with `when:`)."""

    name: str
    steps: tuple[str, ...]
    optional: tuple[str, ...] = ()


ROUTES: tuple[Route, ...] = (
    # order (definitions/order.yaml); the charge and refund serve the trip too
    Route("POST", "/payments/charge", "charge", "paymentId", "charged", id_prefix="pay",
          requires=(positive("cents"),), echo_key=True),
    Route("POST", "/payments/{paymentId}/refund", "refund", "paymentId", "refunded",
          undoes="charge"),
    Route("POST", "/inventory/reservations", "reserve", "reservationId", "reserved",
          id_prefix="res", requires=(texts("skus"),)),
    Route("POST", "/inventory/reservations/{reservationId}/release", "release",
          "reservationId", "released", undoes="reserve"),
    Route("POST", "/shipments", "ship", "shipmentId", "shipped", id_prefix="shp",
          requires=(text("address"),)),
    Route("POST", "/shipments/{shipmentId}/cancel", "cancel", "shipmentId", "cancelled",
          undoes="ship"),
    # trip (definitions/trip.yaml); travellerId may be null there, so it is not required
    Route("POST", "/flights/bookings", "flight", "bookingId", "booked", id_prefix="flt",
          key_field="tripId", echo_key=True,
          requires=(airport("from"), airport("to"), date("depart"), date("return"),
                    positive("travellers"))),
    Route("POST", "/flights/bookings/{bookingId}/cancel", "cancel_flight", "bookingId",
          "cancelled", undoes="flight"),
    Route("POST", "/hotels/bookings", "hotel", "bookingId", "booked", id_prefix="htl",
          key_field="tripId", echo_key=True,
          requires=(text("city"), date("checkIn"), date("checkOut"), positive("guests"))),
    Route("POST", "/hotels/bookings/{bookingId}/cancel", "cancel_hotel", "bookingId",
          "cancelled", undoes="hotel"),
    Route("POST", "/cars/bookings", "car", "bookingId", "booked", id_prefix="car",
          key_field="tripId", echo_key=True,
          requires=(text("pickUp"), date("from"), date("until"))),
    Route("POST", "/cars/bookings/{bookingId}/cancel", "cancel_car", "bookingId", "cancelled",
          undoes="car"),
    # car and approvedBy may be null (a trip without a car, or below the approval limit)
    Route("POST", "/notifications", "confirm", "notificationId", "sent", id_prefix="ntf",
          key_field="tripId", echo_key=True,
          requires=(text("flight"), text("hotel"), text("payment"))),
)

FLOWS: tuple[Flow, ...] = (
    Flow("order", ("charge", "reserve", "ship")),
    Flow("trip", ("flight", "hotel", "charge", "confirm"), optional=("car",)),
)


def check_routes(routes: Iterable[Route]) -> dict[str, Route]:
    """The routes by action name; raises ValueError when a row contradicts itself, so a bad
    new row fails at import rather than on its first call."""
    by_action: dict[str, Route] = {}
    for route in routes:
        where = f"route {route.action!r}"
        if route.action in by_action:
            raise ValueError(f"{where}: the action name is taken")
        names = _PLACEHOLDER.findall(route.path)
        if route.forward and (names or not route.id_prefix):
            raise ValueError(f"{where}: a forward call has an id_prefix and no {{id}} in its "
                             "path")
        if not route.forward and names != [route.id_field]:
            raise ValueError(f"{where}: an undo names its {{{route.id_field}}} in its path")
        by_action[route.action] = route
    for route in by_action.values():
        undone = by_action.get(route.undoes or "")
        if route.undoes is not None and (undone is None or not undone.forward):
            raise ValueError(f"route {route.action!r}: undoes {route.undoes!r}, which is no "
                             "forward call")
    return by_action


def check_flows(flows: Iterable[Flow], actions: Mapping[str, Route]) -> None:
    """Raises ValueError when a flow names a call that is no forward call of `actions`."""
    for flow in flows:
        for name in (*flow.steps, *flow.optional):
            if name not in actions or not actions[name].forward:
                raise ValueError(f"flow {flow.name!r}: {name!r} is no forward call")


ACTIONS: dict[str, Route] = check_routes(ROUTES)
FORWARD_ACTIONS: tuple[str, ...] = tuple(a for a, r in ACTIONS.items() if r.forward)
check_flows(FLOWS, ACTIONS)
