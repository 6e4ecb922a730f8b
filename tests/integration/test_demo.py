"""The demo participants over real HTTP: a threaded werkzeug server on a free port, `requests`.

The order's calls (payments, inventory, shipments), then the trip's (flights, hotels, cars,
notifications). test_demo_routes.py sends every call of the bundled definitions."""
from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from demo.app import create_participants_app
from demo.faults import FaultSpecError, faults_from_environ
from demo.routes import ACTIONS
from demo.server import close_participants_server, make_participants_server

TIMEOUT = 5  # seconds; every request gets an explicit timeout
# Spelled out rather than read from demo.routes, so a call that goes missing fails a test.
ALL_ACTIONS = ("charge", "refund", "reserve", "release", "ship", "cancel",
               "flight", "cancel_flight", "hotel", "cancel_hotel", "car", "cancel_car", "confirm")
NONE = dict.fromkeys(ALL_ACTIONS, 0)
DATES = {"depart": "2030-06-01", "return": "2030-06-08"}
# action -> (path, body but its tripId and idempotencyKey), as trip.yaml sends them
BOOKINGS: dict[str, tuple[str, dict[str, Any]]] = {
    "flight": ("/flights/bookings", {"travellerId": None, "from": "LHR", "to": "JFK", **DATES,
                                     "travellers": 2}),
    "hotel": ("/hotels/bookings", {"travellerId": "tr-1", "city": "JFK",
                                   "checkIn": DATES["depart"], "checkOut": DATES["return"],
                                   "guests": 2}),
    "car": ("/cars/bookings", {"travellerId": None, "pickUp": "JFK", "from": DATES["depart"],
                               "until": DATES["return"]}),
}


class Participants:
    """A running demo participants server and a few helpers to call it."""

    def __init__(self, db_path: Path, faults: dict[str, Any] | None = None) -> None:
        self.server = make_participants_server("127.0.0.1", 0, str(db_path), faults or {})
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        # A short poll interval: shutdown() waits for one poll, and every test stops a server.
        self._thread = threading.Thread(target=self.server.serve_forever, args=(0.02,),
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        close_participants_server(self.server)

    def post(self, path: str, body: Any = None, key: str | None = None,
             headers: dict[str, str] | None = None, **kwargs: Any) -> requests.Response:
        sent = {"X-Workflow-Id": "wf-1", "traceparent": TRACEPARENT, **(headers or {})}
        if key is not None:
            sent["Idempotency-Key"] = key
        return requests.post(self.url + path, json=body, headers=sent, timeout=TIMEOUT, **kwargs)

    def get(self, path: str, **params: str) -> requests.Response:
        return requests.get(self.url + path, params=params, timeout=TIMEOUT)

    def stats(self, **params: str) -> dict[str, Any]:
        return self.get("/_stats", **params).json()

    def set_faults(self, faults: Any) -> requests.Response:
        return requests.post(self.url + "/_faults", json=faults, timeout=TIMEOUT)

    def charge(self, order: str = "o-1", key: str | None = "k-charge",
               **kwargs: Any) -> requests.Response:
        body = {"orderId": order, "cents": 1250, "idempotencyKey": key or ""}
        return self.post("/payments/charge", body, key=key, **kwargs)

    def reserve(self, order: str = "o-1", key: str = "k-reserve") -> requests.Response:
        body = {"orderId": order, "skus": ["sku-1", "sku-2"], "idempotencyKey": key}
        return self.post("/inventory/reservations", body, key=key)

    def ship(self, order: str = "o-1", key: str = "k-ship") -> requests.Response:
        body = {"orderId": order, "address": "1 Main St", "idempotencyKey": key}
        return self.post("/shipments", body, key=key)

    def book(self, action: str, trip: str = "t-1", key: str | None = None) -> requests.Response:
        """A flight, hotel or car booking for `trip` (key: `k-<action>` unless given)."""
        path, fields = BOOKINGS[action]
        key = key or f"k-{action}"
        return self.post(path, {"tripId": trip, **fields, "idempotencyKey": key}, key=key)

    def cancel(self, action: str, booking: str, key: str | None = None) -> requests.Response:
        """Cancels a flight, hotel or car booking."""
        return self.post(f"{BOOKINGS[action][0]}/{booking}/cancel", key=key or f"k-un{action}")

    def confirm(self, trip: str = "t-1", key: str = "k-confirm",
                **fields: Any) -> requests.Response:
        body = {"tripId": trip, "travellerId": None, "flight": "flt_1", "hotel": "htl_1",
                "car": None, "payment": "pay_1", "approvedBy": None, "idempotencyKey": key,
                **fields}
        return self.post("/notifications", body, key=key)


TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Callable[..., Participants]]:
    running: list[Participants] = []

    def _start(faults: dict[str, Any] | None = None) -> Participants:
        participants = Participants(tmp_path / "participants.sqlite3", faults)
        running.append(participants)
        return participants

    yield _start
    for participants in running:
        participants.stop()


@pytest.fixture
def svc(start: Callable[..., Participants]) -> Participants:
    return start()


def assert_problem(response: requests.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"] == "application/problem+json"
    problem = response.json()
    assert {"type", "title", "status", "detail"} <= problem.keys()
    assert problem["status"] == status
    return problem


# Happy paths


def test_health(svc: Participants) -> None:
    assert svc.get("/health").status_code == 200


def test_charge_and_refund(svc: Participants) -> None:
    charged = svc.charge()
    assert charged.status_code == 201
    body = charged.json()
    assert body["orderId"] == "o-1" and body["status"] == "charged" and body["paymentId"]
    refunded = svc.post(f"/payments/{body['paymentId']}/refund", key="k-refund",
                        params={"reason": "reserve failed"})
    assert refunded.status_code == 200
    assert refunded.json() == {"paymentId": body["paymentId"], "status": "refunded"}


def test_reserve_and_release(svc: Participants) -> None:
    reserved = svc.reserve()
    assert reserved.status_code == 201
    assert reserved.json()["status"] == "reserved"
    reservation = reserved.json()["reservationId"]
    released = svc.post(f"/inventory/reservations/{reservation}/release", key="k-release")
    assert released.status_code == 200
    assert released.json() == {"reservationId": reservation, "status": "released"}


def test_ship_and_cancel(svc: Participants) -> None:
    shipped = svc.ship()
    assert shipped.status_code == 201
    assert shipped.json()["status"] == "shipped"
    shipment = shipped.json()["shipmentId"]
    cancelled = svc.post(f"/shipments/{shipment}/cancel", key="k-cancel")
    assert cancelled.status_code == 200
    assert cancelled.json() == {"shipmentId": shipment, "status": "cancelled"}


def test_stats_count_orders_by_outcome(svc: Participants) -> None:
    svc.charge("done", "c1"), svc.reserve("done", "r1"), svc.ship("done", "s1")
    payment = svc.charge("undone", "c2").json()["paymentId"]
    svc.post(f"/payments/{payment}/refund", key="f2")
    svc.charge("half", "c3")
    stats = svc.stats(orderId="done")
    assert stats["orders"] == {"completed": 1, "compensated": 1, "partial": 1}
    assert stats["effects"] == {**NONE, "charge": 3, "refund": 1, "reserve": 1, "release": 0,
                                "ship": 1, "cancel": 0}
    assert stats["by_order"] == {**NONE, "charge": 1, "refund": 0, "reserve": 1, "release": 0,
                                 "ship": 1, "cancel": 0}
    assert stats["calls"]["charge"] == 3 and stats["duplicate_effects"] == 0
    assert stats["missing_headers"] == {"Idempotency-Key": 0, "X-Workflow-Id": 0,
                                        "traceparent": 0}
    assert "by_order" not in svc.stats()


def test_stats_count_duplicate_effects_and_missing_headers(svc: Participants) -> None:
    payment = svc.charge("o-1", "c1").json()["paymentId"]
    svc.charge("o-1", "c2")  # charged again without a refund in between
    for key in ("f1", "f2"):  # the same payment refunded twice
        svc.post(f"/payments/{payment}/refund", key=key)
    requests.post(svc.url + "/inventory/reservations", json={"orderId": "o-2", "skus": ["a"]},
                  timeout=TIMEOUT)
    stats = svc.stats()
    assert stats["duplicate_effects"] == 2
    assert stats["missing_headers"] == {"Idempotency-Key": 1, "X-Workflow-Id": 1,
                                        "traceparent": 1}


def test_reset_forgets_records_and_faults(svc: Participants) -> None:
    svc.charge()
    svc.set_faults({"charge": {"status": 503}})
    assert svc.post("/_reset").status_code == 200
    assert svc.get("/_faults").json() == {}
    assert svc.stats()["effects"]["charge"] == 0
    assert svc.charge().status_code == 201


# Idempotency


def test_replay_returns_the_original_answer_and_applies_once(svc: Participants) -> None:
    first, second = svc.charge(), svc.charge()
    assert second.status_code == 201 and second.json() == first.json()
    assert second.headers.get("Idempotent-Replayed") == "true"
    stats = svc.stats()
    assert stats["effects"]["charge"] == 1
    assert stats["replays"]["charge"] == 1 and stats["calls"]["charge"] == 2


def test_body_key_is_used_without_the_header(svc: Participants) -> None:
    body = {"orderId": "o-1", "skus": ["a"], "idempotencyKey": "body-key"}
    first = svc.post("/inventory/reservations", body)
    second = svc.post("/inventory/reservations", body)
    assert second.json() == first.json()
    assert svc.stats()["effects"]["reserve"] == 1
    assert svc.stats()["missing_headers"]["Idempotency-Key"] == 2


def test_one_key_for_different_actions_is_two_actions(svc: Participants) -> None:
    svc.charge(key="same"), svc.reserve(key="same")
    assert svc.stats()["effects"] == {**NONE, "charge": 1, "refund": 0, "reserve": 1,
                                     "release": 0, "ship": 0, "cancel": 0}


def test_concurrent_calls_with_one_key_apply_once(start: Callable[..., Participants]) -> None:
    # The delay holds every call past the replay check, so they race in the transaction.
    svc = start({"charge": {"delay_ms": 200}})
    barrier = threading.Barrier(8)
    answers: list[requests.Response] = []

    def call() -> None:
        barrier.wait()
        answers.append(svc.charge(key="one-key"))

    threads = [threading.Thread(target=call) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert {a.status_code for a in answers} == {201}
    assert len({a.json()["paymentId"] for a in answers}) == 1
    assert svc.stats()["effects"]["charge"] == 1


def test_a_restart_keeps_records_and_replays(start: Callable[..., Participants]) -> None:
    before = start()
    payment = before.charge().json()["paymentId"]
    before.stop()
    after = start()
    replayed = after.charge()
    assert replayed.json()["paymentId"] == payment
    assert replayed.headers.get("Idempotent-Replayed") == "true"
    assert after.post(f"/payments/{payment}/refund", key="k-refund").status_code == 200
    assert after.stats()["effects"]["charge"] == 1
    assert after.stats()["orders"]["compensated"] == 1


# Fault injection


def test_status_fault_answers_a_problem_and_applies_nothing(svc: Participants) -> None:
    assert svc.set_faults({"charge": {"status": 503}}).status_code == 200
    assert_problem(svc.charge(), 503)
    assert svc.stats()["effects"]["charge"] == 0
    svc.set_faults({})
    assert svc.charge().status_code == 201  # the same key, processed anew
    assert svc.stats()["effects"]["charge"] == 1


def test_business_fault_status(svc: Participants) -> None:
    svc.set_faults({"reserve": {"status": 422}})
    problem = assert_problem(svc.reserve(), 422)
    assert problem["type"] == "urn:demo-participants:injected-fault"


def test_rate_zero_never_fires_and_rate_one_always_does(svc: Participants) -> None:
    svc.set_faults({"ship": {"status": 500, "rate": 0}})
    assert [svc.ship(key=f"s{i}").status_code for i in range(5)] == [201] * 5
    svc.set_faults({"ship": {"status": 500, "rate": 1}})
    assert [svc.ship(key=f"t{i}").status_code for i in range(5)] == [500] * 5


def test_count_fires_on_the_first_calls_only(svc: Participants) -> None:
    payment = svc.charge().json()["paymentId"]
    svc.set_faults({"refund": {"status": 500, "count": 2}})
    codes = [svc.post(f"/payments/{payment}/refund", key="k-refund").status_code
             for _ in range(3)]
    assert codes == [500, 500, 200]
    assert svc.stats()["effects"]["refund"] == 1


def test_delay_ms_delays_the_answer(svc: Participants) -> None:
    svc.set_faults({"reserve": {"delay_ms": 300}})
    began = time.monotonic()
    answer = svc.reserve()
    assert time.monotonic() - began >= 0.3
    assert answer.status_code == 201  # a delay alone is a slow success


def test_apply_does_the_effect_then_loses_the_answer(svc: Participants) -> None:
    svc.set_faults({"charge": {"status": 500, "apply": True}})
    assert_problem(svc.charge(), 500)
    assert svc.stats()["effects"]["charge"] == 1
    retried = svc.charge()  # replays come before faults
    assert retried.status_code == 201
    assert svc.stats()["effects"]["charge"] == 1


def test_retry_after_header(svc: Participants) -> None:
    svc.set_faults({"charge": {"status": 429, "retry_after": 1}})
    answer = svc.charge()
    assert_problem(answer, 429)
    assert answer.headers["Retry-After"] == "1"


def test_faults_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PARTICIPANT_FAULTS", '{"cancel": {"status": 503}}')
    app = create_participants_app(str(tmp_path / "env.sqlite3"))
    assert app.test_client().get("/_faults").get_json() == {"cancel": {"status": 503}}
    monkeypatch.setenv("PARTICIPANT_FAULTS", '{"cancel": {"sttus": 503}}')
    with pytest.raises(FaultSpecError, match=r"faults\.cancel\.sttus"):
        create_participants_app(str(tmp_path / "env.sqlite3"))


@pytest.mark.parametrize(("spec", "named"), [
    ([], "JSON object"),
    ({"pay": {"status": 503}}, "'pay'"),
    ({"charge": {"statuss": 503}}, "faults.charge.statuss"),
    ({"charge": {"status": "503"}}, "faults.charge.status"),
    ({"charge": {"status": 200}}, "faults.charge.status"),
    ({"charge": {"rate": 1.5}}, "faults.charge.rate"),
    ({"charge": {"count": True}}, "faults.charge.count"),
    ({"charge": {"apply": 1}}, "faults.charge.apply"),
    ({"charge": {"delay_ms": -1}}, "faults.charge.delay_ms"),
    ({"charge": {"retry_after": 0.5}}, "faults.charge.retry_after"),
])
def test_bad_faults_spec_is_a_400(svc: Participants, spec: Any, named: str) -> None:
    svc.set_faults({"ship": {"status": 503}})
    assert named in assert_problem(svc.set_faults(spec), 400)["detail"]
    assert svc.get("/_faults").json() == {"ship": {"status": 503}}  # the old faults stay


def test_bad_faults_in_the_environment_name_the_field() -> None:
    with pytest.raises(ValueError, match=r"PARTICIPANT_FAULTS: faults\.ship\.rate"):
        faults_from_environ({"PARTICIPANT_FAULTS": '{"ship": {"rate": "often"}}'})
    with pytest.raises(ValueError, match="not valid JSON"):
        faults_from_environ({"PARTICIPANT_FAULTS": "{nope"})


# Bad requests


@pytest.mark.parametrize(("path", "body"), [
    ("/payments/charge", None),
    ("/payments/charge", ["not", "an", "object"]),
    ("/payments/charge", {"cents": 100}),
    ("/payments/charge", {"orderId": "o-1", "cents": "100"}),
    ("/payments/charge", {"orderId": "o-1", "cents": True}),
    ("/payments/charge", {"orderId": "o-1", "cents": 0}),
    ("/inventory/reservations", {"orderId": "o-1", "skus": []}),
    ("/inventory/reservations", {"orderId": "o-1", "skus": [3]}),
    ("/shipments", {"orderId": "o-1", "address": ""}),
    ("/shipments", {"orderId": "o-1", "address": "x", "idempotencyKey": 7}),
])
def test_bad_body_is_a_400_problem(svc: Participants, path: str, body: Any) -> None:
    assert_problem(svc.post(path, body, key="k"), 400)
    assert set(svc.stats()["effects"].values()) == {0}


def test_malformed_json_is_a_400_problem(svc: Participants) -> None:
    answer = svc.post("/payments/charge", data="{oops", key="k",
                      headers={"Content-Type": "application/json"})
    assert_problem(answer, 400)


def test_a_body_over_64_kib_is_a_413_problem(svc: Participants) -> None:
    body = {"orderId": "o-1", "cents": 1, "pad": "x" * 70_000}
    assert_problem(svc.post("/payments/charge", body, key="k"), 413)


@pytest.mark.parametrize("path", ["/payments/pay_nope/refund",
                                  "/inventory/reservations/res_nope/release",
                                  "/shipments/shp_nope/cancel"])
def test_unknown_ids_are_a_404_problem(svc: Participants, path: str) -> None:
    assert_problem(svc.post(path, key="k"), 404)


def test_an_id_of_another_kind_is_unknown(svc: Participants) -> None:
    reservation = svc.reserve().json()["reservationId"]
    assert_problem(svc.post(f"/payments/{reservation}/refund", key="k"), 404)


def test_unknown_routes_and_methods_are_problems(svc: Participants) -> None:
    assert_problem(svc.get("/nope"), 404)
    assert_problem(svc.get("/payments/charge"), 405)


# The trip's calls (definitions/trip.yaml)


def test_every_call_has_its_action_and_a_fault(svc: Participants) -> None:
    assert tuple(ACTIONS) == ALL_ACTIONS
    spec = {action: {"status": 503, "rate": 0} for action in ALL_ACTIONS}
    assert svc.set_faults(spec).json() == spec
    stats = svc.stats()
    assert stats["effects"] == stats["calls"] == stats["replays"] == NONE


@pytest.mark.parametrize(("action", "prefix"), [("flight", "flt_"), ("hotel", "htl_"),
                                                ("car", "car_")])
def test_a_booking_and_its_cancel(svc: Participants, action: str, prefix: str) -> None:
    booked = svc.book(action)
    assert booked.status_code == 201
    booking = booked.json()["bookingId"]
    assert booking.startswith(prefix)
    assert booked.json() == {"tripId": "t-1", "bookingId": booking, "status": "booked"}
    cancelled = svc.cancel(action, booking)
    assert cancelled.status_code == 200
    assert cancelled.json() == {"bookingId": booking, "status": "cancelled"}
    assert svc.stats(key="t-1")["by_order"] == {**NONE, action: 1, f"cancel_{action}": 1}


def test_confirm_answers_a_notification(svc: Participants) -> None:
    sent = svc.confirm()
    assert sent.status_code == 201
    notification = sent.json()["notificationId"]
    assert notification.startswith("ntf_")
    assert sent.json() == {"tripId": "t-1", "notificationId": notification, "status": "sent"}
    assert svc.stats()["effects"]["confirm"] == 1


def test_a_trip_call_replays_its_original_answer(svc: Participants) -> None:
    first, second = svc.book("hotel"), svc.book("hotel")
    assert second.status_code == 201 and second.json() == first.json()
    assert second.headers.get("Idempotent-Replayed") == "true"
    booking = first.json()["bookingId"]
    undone, again = svc.cancel("hotel", booking), svc.cancel("hotel", booking)
    assert again.status_code == 200 and again.json() == undone.json()
    assert again.headers.get("Idempotent-Replayed") == "true"
    stats = svc.stats()
    assert stats["effects"] == {**NONE, "hotel": 1, "cancel_hotel": 1}
    assert stats["replays"] == {**NONE, "hotel": 1, "cancel_hotel": 1}
    assert stats["calls"] == {**NONE, "hotel": 2, "cancel_hotel": 2}
    assert stats["duplicate_effects"] == 0


def test_a_fault_on_a_trip_action(svc: Participants) -> None:
    svc.set_faults({"flight": {"status": 503, "count": 1}})
    problem = assert_problem(svc.book("flight"), 503)
    assert problem["type"] == "urn:demo-participants:injected-fault"
    assert problem["detail"] == "flight: injected fault"
    assert svc.stats()["effects"]["flight"] == 0
    booking = svc.book("flight").json()["bookingId"]  # the same key, processed anew
    svc.set_faults({"cancel_flight": {"status": 500, "apply": True}})
    assert_problem(svc.cancel("flight", booking), 500)  # applied; the answer is lost
    retried = svc.cancel("flight", booking)
    assert retried.status_code == 200 and retried.headers.get("Idempotent-Replayed") == "true"
    assert svc.stats()["effects"] == {**NONE, "flight": 1, "cancel_flight": 1}


def test_a_business_fault_on_a_trip_action(svc: Participants) -> None:
    svc.set_faults({"car": {"business": True}})
    assert assert_problem(svc.book("car"), 422)["title"] == "Business rejection"
    assert svc.stats()["effects"]["car"] == 0


def test_stats_by_trip_id(svc: Participants) -> None:
    # A whole trip: flight, hotel, car, its charge (orderId is the trip's key, as in
    # trip.yaml) and the confirmation.
    for action in ("flight", "hotel", "car"):
        svc.book(action, "t-done", f"d-{action}")
    svc.charge("t-done", "d-charge")
    svc.confirm("t-done", "d-confirm")
    # Booked, then undone: each cancel belongs to the trip of the booking it cancels.
    for action in ("flight", "hotel"):
        booking = svc.book(action, "t-undone", f"u-{action}").json()["bookingId"]
        svc.cancel(action, booking, f"u-cancel-{action}")
    svc.book("flight", "t-half", "h-flight")
    svc.charge("o-done", "o-charge"), svc.reserve("o-done", "o-reserve")
    svc.ship("o-done", "o-ship")
    stats = svc.stats(key="t-done")
    assert stats["by_order"] == {**NONE, "flight": 1, "hotel": 1, "car": 1, "charge": 1,
                                 "confirm": 1}
    assert stats["orders"] == {"completed": 2, "compensated": 1, "partial": 1}
    assert stats["duplicate_effects"] == 0
    assert svc.stats(orderId="t-undone")["by_order"] == {
        **NONE, "flight": 1, "cancel_flight": 1, "hotel": 1, "cancel_hotel": 1}
    assert svc.stats(key="t-half", orderId="t-half")["by_order"] == {**NONE, "flight": 1}
    assert_problem(svc.get("/_stats", key="t-half", orderId="o-done"), 400)


def test_a_trip_without_its_car_is_completed_and_two_flights_are_not(svc: Participants) -> None:
    for action in ("flight", "hotel"):
        svc.book(action, "t-1", f"a-{action}")
    svc.charge("t-1", "a-charge"), svc.confirm("t-1", "a-confirm")
    assert svc.stats()["orders"] == {"completed": 1, "compensated": 0, "partial": 0}
    svc.book("flight", "t-1", "b-flight")  # booked again without a cancel in between
    stats = svc.stats()
    assert stats["orders"] == {"completed": 0, "compensated": 0, "partial": 1}
    assert stats["duplicate_effects"] == 1


@pytest.mark.parametrize(("action", "change", "named"), [
    ("flight", {"tripId": None}, "flight: tripId must be a non-empty string"),
    ("flight", {"tripId": ""}, "flight: tripId must be a non-empty string"),
    ("flight", {"from": "lhr"}, "flight: from must be a three-letter airport code"),
    ("flight", {"depart": "1 June"}, "flight: depart must be a date YYYY-MM-DD"),
    ("flight", {"travellers": 0}, "flight: travellers must be a positive integer"),
    ("hotel", {"guests": True}, "hotel: guests must be a positive integer"),
    ("hotel", {"idempotencyKey": 7}, "hotel: idempotencyKey must be a string"),
    ("car", {"until": None}, "car: until must be a date YYYY-MM-DD"),
])
def test_a_bad_trip_body_is_a_400_naming_the_field(svc: Participants, action: str,
                                                   change: dict[str, Any], named: str) -> None:
    path, fields = BOOKINGS[action]
    body = {"tripId": "t-1", **fields, **change}
    assert assert_problem(svc.post(path, body, key="k"), 400)["detail"] == named
    assert svc.stats()["effects"] == NONE


def test_a_confirmation_needs_what_it_confirms(svc: Participants) -> None:
    detail = assert_problem(svc.confirm(payment=""), 400)["detail"]
    assert detail == "confirm: payment must be a non-empty string"
    assert svc.confirm(car="car_1", approvedBy="ann").status_code == 201  # optional fields


def test_a_booking_of_another_kind_is_unknown(svc: Participants) -> None:
    hotel = svc.book("hotel").json()["bookingId"]
    problem = assert_problem(svc.cancel("flight", hotel), 404)
    assert problem["detail"] == f"cancel_flight: no bookingId {hotel!r}"
    assert_problem(svc.post("/cars/bookings/car_nope/cancel", key="k"), 404)
    assert svc.stats()["effects"] == {**NONE, "hotel": 1}
