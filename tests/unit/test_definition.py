"""Workflow definitions: the bundled ones compile and say what today's saga does; every broken
document is refused with every error at its path; canonical JSON; input checks; the loader."""
from __future__ import annotations

import contextlib
import copy
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from application.definitions_files import compile_definition_text, load_definition_text
from domain.definitions import (
    Definition,
    DefinitionError,
    DefinitionInvalid,
    Parallel,
    Step,
    Wait,
    canonical_json,
    compile_definition,
)
from domain.expressions import make_context

BUNDLED = Path(__file__).resolve().parents[2] / "definitions"
DELETE = object()


def bundled(name: str) -> dict[str, Any]:
    return load_definition_text((BUNDLED / f"{name}.yaml").read_text(encoding="utf-8"))


def edited(document: dict[str, Any], *edits: tuple[tuple[str | int, ...], Any]) -> dict[str, Any]:
    """A copy of `document` with each (path, value) set (DELETE removes it)."""
    doc = copy.deepcopy(document)
    for path, value in edits:
        parent: Any = doc
        for part in path[:-1]:
            parent = parent[part]
        if value is DELETE:
            del parent[path[-1]]
        elif isinstance(parent, list) and path[-1] == len(parent):
            parent.append(value)
        else:
            parent[path[-1]] = value
    return doc


def errors_of(document: Any) -> list[DefinitionError]:
    with pytest.raises(DefinitionInvalid) as refused:
        compile_definition(document)
    return refused.value.errors


@pytest.fixture(scope="module")
def order() -> Definition:
    return compile_definition(bundled("order"))


@pytest.fixture(scope="module")
def trip() -> Definition:
    return compile_definition(bundled("trip"))


# --- the bundled definitions ----------------------------------------------------------------

@pytest.mark.parametrize("name", ["order", "trip"])
def test_every_bundled_file_compiles(name: str) -> None:
    definition = compile_definition_text((BUNDLED / f"{name}.yaml").read_text(encoding="utf-8"))
    assert definition.name == name
    assert len(definition.sha256) == 64


def test_the_order_makes_todays_calls(order: Definition) -> None:
    """Exactly the calls, bodies and keys the hard-coded saga makes, and nothing else."""
    assert [s.name for s in order.flat_steps] == ["charge", "reserve", "ship"]
    assert order.key == "orderId" and order.deadline_s is None
    steps = {"charge": {"paymentId": "pay 1/2"}, "reserve": {"reservationId": "r-1"},
             "ship": {"shipmentId": "s-1"}}
    made = {}
    for name, (step, is_undo) in order.calls.items():
        ctx = make_context(input={"cents": 1250, "skus": ["a", "b"], "address": "1 Main St"},
                           key="o-1", workflow_id="w-1", idempotency_key=f"w-1:{name}",
                           reason="cancelled", steps=steps)
        spec = step.undo.call if is_undo and step.undo else step.call
        call = spec.render(ctx)
        made[name] = (order.participant_of(name), call.method, call.target, call.body)
    assert made == {
        "charge": ("payment", "POST", "/payments/charge",
                   {"orderId": "o-1", "cents": 1250, "idempotencyKey": "w-1:charge"}),
        "refund": ("payment", "POST", "/payments/pay%201%2F2/refund?reason=cancelled", None),
        "reserve": ("inventory", "POST", "/inventory/reservations",
                    {"orderId": "o-1", "skus": ["a", "b"], "idempotencyKey": "w-1:reserve"}),
        "release": ("inventory", "POST", "/inventory/reservations/r-1/release", None),
        "ship": ("shipping", "POST", "/shipments",
                 {"orderId": "o-1", "address": "1 Main St", "idempotencyKey": "w-1:ship"}),
        "cancel": ("shipping", "POST", "/shipments/s-1/cancel", None),
    }


def test_the_order_declares_its_facts(order: Definition) -> None:
    charge = order.step("charge")
    assert isinstance(charge, Step)
    # No per-step limits: the deployment's STEP_* and COMPENSATION_* settings apply.
    assert (charge.event, charge.status, charge.timeout_s, charge.attempts) == \
        ("Charged", "CHARGED", None, None)
    assert charge.undo is not None and charge.undo.attempts is None
    assert order.kept_names == ("paymentId", "reservationId", "shipmentId")
    assert order.step_of_undo("release").name == "reserve"
    assert order.participants["shipping"].bulkhead is None
    assert order.participants["shipping"].rate_limit is None
    assert charge.extract({"paymentId": "p-1", "status": "ok"}) == {"paymentId": "p-1"}
    assert Step.unkept(charge.extract({"status": "ok"})) == ("paymentId",)
    with pytest.raises(KeyError):
        order.step_of_undo("charge")
    with pytest.raises(KeyError):
        order.participant_of("teleport")


def test_a_refund_without_a_reason_leaves_the_parameter_out(order: Definition) -> None:
    refund = order.step_of_undo("refund").undo
    assert refund is not None
    ctx = make_context(input={}, key="o-1", workflow_id="w", steps={"charge": {"paymentId": "p"}})
    assert refund.call.render(ctx).target == "/payments/p/refund"


def test_the_trip_is_a_saga_with_every_shape(trip: Definition) -> None:
    first, car, approval, charge, confirm = trip.steps
    assert isinstance(first, Parallel)
    assert [b.name for b in first.branches] == ["flight", "hotel"]
    assert [b.participant for b in first.branches] == ["flights", "hotels"]
    assert all(b.undo is not None for b in first.branches)
    assert isinstance(car, Step) and car.participant == "cars" and car.undo is not None
    assert isinstance(approval, Wait)
    assert (approval.signal, approval.reject, approval.timeout_s) == ("approve", "deny", 3600)
    assert isinstance(charge, Step) and charge.undo is not None and charge.undo.name == "refund"
    assert isinstance(confirm, Step) and confirm.undo is None and confirm.participant == "notify"
    assert trip.key == "tripId" and trip.deadline_s == 7200
    assert trip.signals["deny"] == (approval, True)
    assert trip.participant_of("cancel_hotel") == "hotels"
    assert "notificationId" in trip.kept_names

    def runs(step: Step | Wait, **input: Any) -> bool:
        return step.applies(make_context(input=input, key="t-1", workflow_id="w"))

    assert runs(car, car=True) and not runs(car, car=False) and not runs(car)
    assert runs(approval, cents=100001) and not runs(approval, cents=100000)


def test_the_trip_cancels_a_booking_by_its_id(trip: Definition) -> None:
    flight = trip.step("flight")
    assert isinstance(flight, Step) and flight.undo is not None
    ctx = make_context(input={}, key="t-1", workflow_id="w",
                       steps={"flight": flight.extract({"bookingId": "F/9"})})
    assert flight.undo.call.render(ctx).target == "/flights/bookings/F%2F9/cancel"


# --- every error, at its path -----------------------------------------------------------------

ORDER = load_definition_text((BUNDLED / "order.yaml").read_text(encoding="utf-8"))
UNDO_PATH = ("steps", 0, "undo", "path")
BROKEN = [
    # the document's shape
    ("name", [(("name",), "Order")], "name", "must match"),
    ("name missing", [(("name",), DELETE)], "name", "is required"),
    ("unknown top field", [(("version",), 2)], "version", "unknown field"),
    ("misspelt undo", [(("steps", 1, "udno"), {})], "steps[1].udno", "unknown field"),
    ("no steps", [(("steps",), [])], "steps", "at least 1 item"),
    ("call name", [(("steps", 1, "undo", "name"), "Release")], "steps[1].undo.name",
     "must match"),
    ("method", [(("steps", 0, "call", "method"), "TRACE")], "steps[0].call.method", "one of"),
    ("float attempts", [(("steps", 0, "attempts"), 3.0)], "steps[0].attempts", "integer"),
    ("bool attempts", [(("steps", 0, "attempts"), True)], "steps[0].attempts", "integer"),
    ("zero timeout", [(("steps", 0, "timeout_s"), 0)], "steps[0].timeout_s", "greater than 0"),
    ("huge timeout", [(("steps", 0, "timeout_s"), 301)], "steps[0].timeout_s", "at most 300"),
    ("many attempts", [(("steps", 0, "undo", "attempts"), 101)], "steps[0].undo.attempts",
     "at most 100"),
    ("backoff", [(("steps", 0, "backoff_base_s"), 2), (("steps", 0, "backoff_cap_s"), 1)],
     "steps[0].backoff_cap_s", "below backoff_base_s"),
    ("deadline", [(("deadline_s",), -1)], "deadline_s", "greater than 0"),
    ("kept name", [(("steps", 0, "keep", "Payment-Id"), "paymentId")],
     "steps[0].keep.Payment-Id", "not a valid name"),
    ("bulkhead", [(("participants", "payment"), {"bulkhead": 0})],
     "participants.payment.bulkhead", "at least 1"),
    # no host, ever
    ("participant url", [(("participants", "payment"), {"url": "http://evil"})],
     "participants.payment.url", "participant URLs come from the environment"),
    ("absolute url", [(UNDO_PATH, "https://evil.example/x")], "steps[0].undo.path",
     "must start with '/'"),
    ("scheme-relative", [(UNDO_PATH, "//evil.example/x")], "steps[0].undo.path", "'//'"),
    ("path from input", [(UNDO_PATH, "${input.address}")], "steps[0].undo.path",
     "must start with '/'"),
    ("query in path", [(UNDO_PATH, "/payments/x?reason=1")], "steps[0].undo.path", "query:"),
    ("dot segment", [(UNDO_PATH, "/payments/../admin")], "steps[0].undo.path", "'..'"),
    # names
    ("duplicate call", [(("steps", 1, "undo", "name"), "refund")], "steps[1].undo.name",
     "duplicate call name 'refund' (first at steps[0].undo.name)"),
    ("undo named as a step", [(("steps", 0, "undo", "name"), "ship")], "steps[2].name",
     "duplicate call name 'ship'"),
    ("kept twice", [(("steps", 1, "keep", "paymentId"), "x")], "steps[1].keep.paymentId",
     "already kept by step 'charge'"),
    ("kept view field", [(("steps", 1, "keep", "status"), "x")], "steps[1].keep.status",
     "field of the state view"),
    ("kept key", [(("steps", 1, "keep", "orderId"), "x")], "steps[1].keep.orderId",
     "the definition's key"),
    ("key view field", [(("key",), "version")], "key", "field of the state view"),
    ("event twice", [(("steps", 1, "event"), "Charged")], "steps[1].event",
     "duplicate event 'Charged'"),
    ("reserved event", [(("steps", 1, "event"), "Failed")], "steps[1].event", "interpreter's"),
    ("reserved status", [(("steps", 1, "status"), "WAITING")], "steps[1].status", "interpreter's"),
    ("participant", [(("steps", 1, "participant"), "inventroy")], "steps[1].participant",
     "unknown participant 'inventroy'"),
    # expressions and what they refer to
    ("unknown step", [(UNDO_PATH, "/payments/${steps.chrage.paymentId}/refund")],
     "steps[0].undo.path", "unknown step 'chrage'"),
    ("later step", [(("steps", 0, "call", "body", "x"), "${steps.ship.shipmentId}")],
     "steps[0].call.body.x", "step 'ship' comes later"),
    ("itself", [(("steps", 0, "call", "body", "x"), "${steps.charge.paymentId}")],
     "steps[0].call.body.x", "this step itself"),
    ("kept name", [(("steps", 1, "call", "body", "p"), "${steps.charge.paymentID}")],
     "steps[1].call.body.p", "keeps no 'paymentID' (it keeps paymentId)"),
    ("unknown root", [(("steps", 1, "call", "body", "p"), "${inptu.cents}")],
     "steps[1].call.body.p", "unknown name 'inptu'"),
    ("unknown input", [(("steps", 1, "call", "body", "p"), "${input.cnets}")],
     "steps[1].call.body.p", "input has no property 'cnets'"),
    ("reason forward", [(("steps", 1, "call", "body", "p"), "${reason}")],
     "steps[1].call.body.p", "only known in an undo"),
    ("bare steps", [(("steps", 1, "call", "body", "p"), "${steps}")],
     "steps[1].call.body.p", "name a step"),
    ("whole context", [(("steps", 1, "call", "body", "p"), "${@}")],
     "steps[1].call.body.p", "whole context"),
    ("query", [(("steps", 0, "undo", "query", "reason"), "${resaon}")],
     "steps[0].undo.query.reason", "unknown name 'resaon'"),
    ("nested body", [(("steps", 2, "call", "body", "lines"), [{"a": "${input.x.}"}])],
     "steps[2].call.body.lines[0].a", "bad JMESPath"),
    ("unterminated", [(("steps", 2, "call", "body", "address"), "${input.address")],
     "steps[2].call.body.address", "unterminated"),
    ("bad keep", [(("steps", 0, "keep", "paymentId"), "paymentId[")],
     "steps[0].keep.paymentId", "bad JMESPath"),
    ("unknown function", [(("steps", 0, "keep", "paymentId"), "frist(ids)")],
     "steps[0].keep.paymentId", "unknown function frist()"),
    ("when", [(("steps", 1, "when"), "input.cents > 5")], "steps[1].when", "backticks"),
    ("when template", [(("steps", 1, "when"), "${input.cents}")], "steps[1].when", "bare"),
    ("when later", [(("steps", 1, "when"), "steps.ship.shipmentId")], "steps[1].when",
     "comes later"),
    ("GET body", [(("steps", 0, "call", "method"), "GET")], "steps[0].call.body", "no body"),
    # the input schema
    ("input type", [(("input", "properties", "cents", "type"), "integr")],
     "input.properties.cents.type", "not valid"),
    ("input regex", [(("input", "properties", "address", "pattern"), "(")],
     "input.properties.address.pattern", "regex"),
    ("remote ref", [(("input", "properties", "address"), {"$ref": "https://evil/s.json"})],
     "input.properties.address.$ref", "only local references"),
    ("dangling ref", [(("input", "properties", "address"), {"$ref": "#/$defs/nope"})],
     "input.properties.address.$ref", "leads nowhere"),
    ("other draft", [(("input", "$schema"), "http://json-schema.org/draft-07/schema#")],
     "input.$schema", "2020-12"),
    # waits and parallel groups
    ("wait same signals", [(("steps", 3), {"name": "ok", "wait": {
        "signal": "go", "reject": "go", "timeout_s": 5}})], "steps[3].wait.reject", "differ"),
    ("wait timeout", [(("steps", 3), {"name": "ok", "wait": {"signal": "go", "reject": "no"}})],
     "steps[3].wait.timeout_s", "is required"),
    ("wait too long", [(("steps", 3), {"name": "ok", "wait": {
        "signal": "go", "reject": "no", "timeout_s": 10**9}})], "steps[3].wait.timeout_s",
     "at most"),
    ("one branch", [(("steps", 3), {"parallel": [{"name": "x", "participant": "payment",
                                                   "call": {"path": "/x"}}]})],
     "steps[3].parallel", "at least 2 items"),
    ("sibling", [(("steps", 3), {"parallel": [
        {"name": "x", "participant": "payment", "call": {"path": "/x"}, "keep": {"xid": "id"}},
        {"name": "y", "participant": "payment", "call": {"path": "/y/${steps.x.xid}"}}]})],
     "steps[3].parallel[1].call.path", "runs at the same time"),
]


@pytest.mark.parametrize("edits, path, fragment", [b[1:] for b in BROKEN],
                         ids=[b[0] for b in BROKEN])
def test_a_broken_definition_is_refused_at_the_path(
        edits: list[tuple[tuple[str | int, ...], Any]], path: str, fragment: str) -> None:
    errors = errors_of(edited(ORDER, *edits))
    assert len(errors) == 1, errors
    assert errors[0].path == path
    assert fragment in errors[0].message, errors[0].message


def test_every_error_is_reported_at_once() -> None:
    errors = errors_of(edited(
        ORDER,
        (("name",), "Order"),
        (("steps", 1, "participant"), "inventroy"),
        (("steps", 1, "undo", "path"), "/inventory/reservations/${steps.reserv.id}/release"),
    ))
    assert [str(e) for e in errors] == [
        "name: must match ^[a-z][a-z0-9-]{0,62}$",
        "steps[1].participant: unknown participant 'inventroy' (declared: payment, inventory, "
        "shipping)",
        "steps[1].undo.path: unknown step 'reserv'",
    ]


def test_the_refusal_says_how_many_and_which() -> None:
    with pytest.raises(DefinitionInvalid, match=r"2 errors: key: is required; name: is required"):
        compile_definition(edited(ORDER, (("name",), DELETE), (("key",), DELETE)))


def test_an_undo_may_read_its_own_step_and_a_wait_any_field_of_its_signal() -> None:
    doc = edited(ORDER, (("steps", 1), {"name": "approval", "wait": {
        "signal": "approve", "reject": "deny", "timeout_s": 60}}),
        (("steps", 2, "call", "body", "by"), "${steps.approval.by}"))
    definition = compile_definition(doc)
    assert definition.signals["approve"][0].name == "approval"


@pytest.mark.parametrize("document, path, fragment", [
    ([1, 2], "(document)", "mapping"),
    ({"name": float("nan")}, "name", "not a JSON number"),
    ({1: "x"}, '["1"]', "key must be a string"),
    ({"name": {"x"}}, "name", "set is not a JSON value"),
])
def test_what_is_not_json_is_refused_first(document: Any, path: str, fragment: str) -> None:
    errors = errors_of(document)
    assert [e.path for e in errors] == [path] and fragment in errors[0].message


def test_nesting_is_bounded() -> None:
    deep: dict[str, Any] = {}
    node = deep
    for _ in range(100):
        node["x"] = {}
        node = node["x"]
    errors = errors_of(edited(ORDER, (("steps", 0, "call", "body"), deep)))
    assert len(errors) == 1 and "nested deeper than 64 levels" in errors[0].message


# --- canonical JSON and SHA-256 --------------------------------------------------------------

def test_canonical_json_sorts_keys_drops_whitespace_and_keeps_unicode() -> None:
    assert canonical_json({"b": [1, {"d": 2, "c": "ü"}], "a": None}) == \
        '{"a":null,"b":[1,{"c":"ü","d":2}]}'


def test_the_sha256_ignores_key_order_and_formatting(order: Definition) -> None:
    reordered = dict(reversed(list(ORDER.items())))
    as_json = json.dumps(reordered, indent=4)
    again = compile_definition_text(as_json)
    assert again.sha256 == order.sha256 == hashlib.sha256(
        canonical_json(ORDER).encode("utf-8")).hexdigest()
    assert again == order
    changed = compile_definition(edited(ORDER, (("description",), "Another.")))
    assert changed.sha256 != order.sha256 and changed != order


def test_the_definition_keeps_its_own_copy_of_the_document() -> None:
    doc = copy.deepcopy(ORDER)
    definition = compile_definition(doc)
    doc["steps"][0]["call"]["path"] = "/elsewhere"
    doc["input"]["properties"]["cents"]["minimum"] = 0
    assert definition.document["steps"][0]["call"]["path"] == "/payments/charge"
    assert definition.check_input({"cents": 0, "skus": ["a"], "address": "x"})
    assert list(definition.document) == list(ORDER)  # the author's order, for display


# --- input checks ------------------------------------------------------------------------------

GOOD = {"cents": 1999, "skus": ["a"], "address": "1 Main St"}


@pytest.mark.parametrize("body, expected", [
    (GOOD, []),
    ({**GOOD, "cents": 1999.0}, [("cents", "must be an integer")]),
    ({**GOOD, "cents": True}, [("cents", "must be an integer")]),
    ({**GOOD, "cents": 0}, [("cents", "must be at least 1")]),
    ({**GOOD, "cents": 10**12 + 1}, [("cents", "must be at most 1000000000000")]),
    ({**GOOD, "skus": ["a", "b", "c", 4]}, [("skus[3]", "must be a string")]),
    ({**GOOD, "skus": []}, [("skus", "must have at least 1 item")]),
    ({**GOOD, "address": ""}, [("address", "must be at least 1 character long")]),
    ({"cents": 1, "skus": ["a"]}, [("address", "is required")]),
    ({**GOOD, "coupon": "X"}, [("coupon", "unknown field")]),
    ({"cents": "1", "skus": "a", "extra": 1},
     [("address", "is required"), ("cents", "must be an integer"), ("extra", "unknown field"),
      ("skus", "must be an array")]),
    ([GOOD], [("(input)", "must be an object")]),
])
def test_an_input_is_checked_against_the_schema(
        order: Definition, body: Any, expected: list[tuple[str, str]]) -> None:
    assert [(e.path, e.message) for e in order.check_input(body)] == expected


def test_a_long_value_is_not_echoed(order: Definition) -> None:
    errors = order.check_input({**GOOD, "address": "x" * 100_000})
    assert errors == [DefinitionError("address", "must be at most 500 characters long")]
    assert errors[0].as_dict() == {"path": "address",
                                   "message": "must be at most 500 characters long"}


# --- the loader ----------------------------------------------------------------------------------

def test_json_is_read_as_json() -> None:
    assert load_definition_text('\ufeff {"a": 1e3, "b": [true, null]}') == \
        {"a": 1000.0, "b": [True, None]}


def test_yaml_booleans_and_dates_are_json_like() -> None:
    assert load_definition_text("on: yes\nno: off\nt: true\nd: 2026-01-02\n") == \
        {"on": "yes", "no": "off", "t": True, "d": "2026-01-02"}


@pytest.mark.parametrize("text, fragment", [
    ("", "empty document"),
    ("- a\n- b\n", "top level must be a mapping"),
    ("just text", "top level must be a mapping"),
    ("a: 1\nb: 2\na: 3\n", "line 3: duplicate key 'a' (first at line 1)"),
    ('{"a": 1, "a": 2}', 'the key "a" appears twice in one object'),
    ("a: &x [1, 2]\nb: *x\n", "anchors and aliases"),
    ("a: &x\n  b: *x\n", "anchors and aliases"),
    ("base: &b {x: 1}\nc:\n  <<: *b\n", "merge keys"),
    ("a: !!python/object/apply:os.system [ls]\n", "tag tag:yaml.org,2002:python"),
    ("a: !!binary aGk=\n", "tag tag:yaml.org,2002:binary"),
    ("1: a\n", "line 1: a key must be a string"),
    ("a: .nan\n", ".nan is not a JSON number"),
    ('{"a": Infinity}', "Infinity is not a JSON number"),
    ("a: [1, 2\n", "line 2"),
    ('{"a": }', "line 1, column 7"),
    ("a: 1\n---\nb: 2\n", "another document"),
    ("a:" + " [" * 80 + " ]" * 80 + "\n", "nested deeper than 64 levels"),
])
def test_the_loader_refuses(text: str, fragment: str) -> None:
    with pytest.raises(DefinitionInvalid) as refused:
        load_definition_text(text)
    messages = [e.message for e in refused.value.errors]
    assert {e.path for e in refused.value.errors} == {"(document)"}
    assert any(fragment in m for m in messages), messages


def test_the_loader_reports_every_duplicate() -> None:
    with pytest.raises(DefinitionInvalid) as refused:
        load_definition_text("a: 1\na: 2\nb:\n  c: 1\n  c: 2\n")
    assert [e.message for e in refused.value.errors] == [
        "line 2: duplicate key 'a' (first at line 1)",
        "line 5: duplicate key 'c' (first at line 4)",
    ]


# --- whatever the document, an answer and never a crash ------------------------------------------

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20) | st.sampled_from(["${key}", "${steps.charge.paymentId}", "/x", "${"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=3),
    max_leaves=8,
)


def _places(node: Any, path: tuple[str | int, ...] = ()) -> list[tuple[str | int, ...]]:
    found = [path] if path else []
    items = node.items() if isinstance(node, dict) else enumerate(node) \
        if isinstance(node, list) else ()
    for name, child in items:
        found += _places(child, (*path, name))
    return found


PLACES = _places(bundled("trip"))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(PLACES), JSON_VALUES | st.just(DELETE)), max_size=3))
def test_any_edit_compiles_or_is_refused_with_paths(
        edits: list[tuple[tuple[str | int, ...], Any]]) -> None:
    doc = bundled("trip")
    for path, value in edits:
        with contextlib.suppress(KeyError, IndexError, TypeError):
            doc = edited(doc, (path, value))  # unless an earlier edit removed the place
    try:
        compile_definition(doc)
    except DefinitionInvalid as refused:
        assert refused.errors and all(e.path and e.message for e in refused.errors)
