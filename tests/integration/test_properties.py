"""Properties of the API's edge, by hypothesis, through the Flask app over a real SQLite store
(the worker runs, with fake participants):

- any body sent to POST /orders/{orderId}/orchestrate (any JSON value in any field, extra
  fields, deep nesting, duplicate keys, NaN, invalid UTF-8, any Unicode including lone
  surrogates and control characters, another media type) gets a 2xx or a 4xx problem document,
  never a 5xx; a body that is not strict JSON is 400; a well-formed order is accepted;
- whatever the API accepts is stored unchanged: the aggregate loaded back from the store, the
  state view and the audit trail show the cents, skus and address that were sent;
- any query of GET /workflows, GET /events and `?wait` gets a 2xx or a 4xx problem document,
  and a `wait` from 0 to 30 seconds is accepted;
- any body sent to PUT /definitions/{name} (a definition document changed in one to three
  places, as JSON or YAML, or anything else) gets a 2xx or a 4xx problem document; a 4xx
  registers nothing, a 2xx registers what the answer says;
- any body sent as a signal gets a 2xx or a 4xx problem document: a plain JSON object is taken
  (202, or 409 once the wait is over), text with a control character or a lone surrogate is 422;
- any definition name and key in a start's path is taken or 400.

Bounded: derandomized, 30 to 150 examples a test (PROPERTY_EXAMPLES=10 makes it ten times as
many), no example database; a few seconds for the module.
"""
from __future__ import annotations

import base64
import copy
import itertools
import json
import math
import os
import re
import urllib.parse
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from pathlib import Path
from typing import Any

import pytest
import yaml
from flask.testing import FlaskClient
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from werkzeug.test import TestResponse

from api.app import create_app
from api.errors import Problem
from api.openapi import FIXED_STATUSES
from api.requests_parsing import parse_json
from infrastructure.bootstrap import System, bootstrap
from tests.fakes import FakeParticipants
from tests.ops import settings_for

SCALE = float(os.environ.get("PROPERTY_EXAMPLES", "1"))


def bounded(examples: int) -> settings:
    return settings(max_examples=max(1, int(examples * SCALE)), deadline=None, derandomize=True,
                    database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    """One system for all examples; each order has an id of its own."""
    tmp: Path = tmp_path_factory.mktemp("properties")
    fake = FakeParticipants()
    built = bootstrap(settings_for(f"sqlite:///{tmp}/orch.sqlite3"),
                      participants=fake).start_worker()
    try:
        yield built
    finally:
        fake.release_all()
        built.stop(grace_s=2.0)


@pytest.fixture(scope="module")
def client(system: System) -> FlaskClient:
    return create_app(system).test_client()


_ids = itertools.count(1)


def new_order_id() -> str:
    return f"prop-{next(_ids)}"


# --- bodies --------------------------------------------------------------------------------------

# Worth trying in text: C0 and C1 controls, line and paragraph separators, lone surrogates
# (valid as JSON escapes, not as UTF-8), a BOM, a right-to-left override, a combining accent,
# astral-plane characters, quotes and escapes.
NASTY = st.sampled_from(["\x00", "\x1b", "\n", "\r", "\t", "\x7f", "\x85", "\x9f", "\u2028",
                         "\u2029", "\ud800", "\udfff", "\ufeff", "\u202e", "e\u0301",
                         "\U0001f600", "\U0010ffff", '"', "\\", "/", "%00", "'; --"])
ANY_TEXT = st.lists(st.one_of(NASTY, st.characters()), max_size=30).map("".join)
# Text the API must take: no control character (Cc), no lone surrogate (Cs).
PLAIN_CHAR = st.characters(exclude_categories=("Cc", "Cs"))
PLAIN_TEXT = st.text(PLAIN_CHAR, min_size=1, max_size=40)
EDGE_LENGTHS = st.sampled_from([0, 1, 99, 100, 101, 499, 500, 501, 5000]).map(lambda n: "x" * n)

JSON_SCALARS = (st.none() | st.booleans() | st.integers() | st.floats() | ANY_TEXT
                | st.sampled_from([0, -1, 1, 10**12, 10**12 + 1, 2**63, 2**64, -(2**63) - 1,
                                   1.0, 1.5, 1e300, -0.0, "", "1"]))
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(ANY_TEXT, inner, max_size=4),
    max_leaves=12)
# Plain keys and finite values: what any JSON reader takes the same way.
PLAIN_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**6), 10**6)
    | st.floats(allow_nan=False, allow_infinity=False) | PLAIN_TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(PLAIN_TEXT, inner, max_size=3),
    max_leaves=6)

FIELDS = ("cents", "skus", "address")
VALID_CENTS = st.integers(1, 10**12)
VALID_SKUS = st.lists(st.one_of(PLAIN_TEXT, st.just("x" * 100)), min_size=1, max_size=100)
VALID_ADDRESS = st.one_of(st.text(PLAIN_CHAR, min_size=1, max_size=500), st.just("x" * 500))


@st.composite
def valid_orders(draw: st.DrawFn) -> dict[str, Any]:
    """An order that must be accepted: in range, plain text, no other field (the order's
    input schema has `additionalProperties: false`)."""
    return {"cents": draw(VALID_CENTS), "skus": draw(VALID_SKUS),
            "address": draw(VALID_ADDRESS)}


@st.composite
def hostile_orders(draw: st.DrawFn) -> dict[str, Any]:
    """A valid order with one to three things changed: a field replaced by anything JSON can
    hold, a field left out, a character worth trying slipped into a text, an extra field of
    any kind."""
    order = draw(valid_orders())
    for _ in range(draw(st.integers(1, 3))):
        field = draw(st.sampled_from(FIELDS))
        change = draw(st.sampled_from(["replace", "drop", "slip", "slip", "extra"]))
        if change == "replace":
            order[field] = draw(st.one_of(JSON_VALUES, ANY_TEXT, EDGE_LENGTHS, st.lists(
                st.one_of(ANY_TEXT, EDGE_LENGTHS, JSON_VALUES), max_size=3)))
        elif change == "drop":
            order.pop(field, None)
        elif change == "slip":
            order = slip(draw, order)
        else:
            order[draw(ANY_TEXT)] = draw(JSON_VALUES)
    return order


def slip(draw: st.DrawFn, order: dict[str, Any],
         chars: st.SearchStrategy[str] = NASTY) -> dict[str, Any]:
    """The order with one of `chars` put into its address or one of its skus."""
    texts: list[tuple[str, int | None]] = []
    if isinstance(order.get("address"), str):
        texts.append(("address", None))
    if isinstance(order.get("skus"), list):
        texts += [("skus", i) for i, s in enumerate(order["skus"]) if isinstance(s, str)]
    if not texts:
        return order
    field, index = draw(st.sampled_from(texts))
    text = order[field] if index is None else order[field][index]
    at = draw(st.integers(0, len(text)))
    changed = text[:at] + draw(chars) + text[at:]
    if index is None:
        return {**order, field: changed}
    return {**order, field: [*order[field][:index], changed, *order[field][index + 1:]]}


@st.composite
def unreadable_texts(draw: st.DrawFn) -> dict[str, Any]:
    """A valid order with a control character or a lone surrogate in a sku or the address."""
    return slip(draw, draw(valid_orders()), st.characters(categories=["Cc", "Cs"]))


def encode(body: Any, ascii_only: bool = True) -> bytes:
    """JSON text: every non-ASCII character escaped (a lone surrogate becomes `\\ud800`, valid
    JSON), or UTF-8 (a lone surrogate becomes bytes that are not UTF-8). NaN as `NaN`."""
    if ascii_only:
        return json.dumps(body).encode()
    return json.dumps(body, ensure_ascii=False).encode("utf-8", "surrogatepass")


@st.composite
def not_strict_json(draw: st.DrawFn) -> bytes:
    """An order whose text is not strict JSON: a key given twice (two readers could take
    different values), NaN or Infinity, a lone surrogate as raw bytes (not UTF-8), cut short."""
    order = draw(valid_orders())
    text = encode(order)
    kind = draw(st.sampled_from(["duplicate", "constant", "not-utf-8", "truncated"]))
    if kind == "duplicate":  # the same value again, or another
        key = draw(st.sampled_from(sorted(order)))
        again = encode(draw(st.one_of(st.just(order[key]), PLAIN_JSON)))
        return text[:-1] + b", " + encode(key) + b": " + again + b"}"
    if kind == "constant":
        field = draw(st.sampled_from(["cents", "extra"]))
        return encode({**order, field: draw(st.sampled_from([math.nan, math.inf, -math.inf]))})
    if kind == "not-utf-8":
        at = draw(st.integers(0, len(order["address"])))
        lone = draw(st.sampled_from(["\ud800", "\udfff"]))
        return encode({**order, "address": order["address"][:at] + lone + order["address"][at:]},
                      ascii_only=False)
    return text[:draw(st.integers(0, len(text) - 1))]


@st.composite
def odd_bodies(draw: st.DrawFn) -> bytes:
    """Nesting deep in any field, or bytes that need not be JSON at all."""
    if draw(st.booleans()):
        return draw(st.binary(max_size=200))
    depth = draw(st.sampled_from([31, 32, 33, 100, 1000, 5000, 30_000]))
    field = draw(st.sampled_from([*FIELDS, "extra"]))
    nested = b"[" * depth + b"1" + b"]" * depth
    return encode(draw(valid_orders()))[:-1] + b", " + encode(field) + b": " + nested + b"}"


BODIES = st.one_of(
    st.builds(encode, st.one_of(valid_orders(), hostile_orders(), JSON_VALUES), st.booleans()),
    not_strict_json(), odd_bodies())
CONTENT_TYPES = st.sampled_from(["application/json", "application/json; charset=utf-8",
                                 "application/merge-patch+json", "text/plain", None])

# --- queries -------------------------------------------------------------------------------------

# Any text (sent as UTF-8; a lone surrogate as the bytes it would be), numbers written every
# way, times at the calendar's edges, cursors that decode to anything.
OFFSETS: st.SearchStrategy[tzinfo | None] = st.one_of(
    st.none(), st.just(UTC),
    st.integers(-1439, 1439).map(lambda m: timezone(timedelta(minutes=m))))
FIRST, LAST = datetime(1, 1, 1), datetime(9999, 12, 31, 23, 59, 59, 999999)
MOMENTS = st.one_of(  # anywhere, or within a day of either end of the calendar
    st.datetimes(min_value=FIRST, max_value=LAST),
    st.integers(0, 86_400_000_000).map(lambda us: FIRST + timedelta(microseconds=us)),
    st.integers(0, 86_400_000_000).map(lambda us: LAST - timedelta(microseconds=us)))
TIMES = st.one_of(
    st.builds(lambda moment, offset: moment.replace(tzinfo=offset).isoformat(), MOMENTS,
              OFFSETS),
    st.sampled_from(["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00",
                     "0001-01-01T00:00:00Z", "9999-12-31T23:59:59.999999Z",
                     "0000-01-01T00:00:00", "2026-02-30T00:00:00Z", "2026-01-01T24:00:00Z",
                     "2026-01-01T23:59:60Z", "2026-01-01", "yesterday",
                     "2026-01-01T00:00:00+25:00"]))
NUMBERS = st.one_of(st.integers().map(str), st.floats().map(repr),
                    st.sampled_from(["", " 1", "1 ", "+1", "-0", "1_0", "0x10", "1e3", "1e400",
                                     "nan", "inf", "-inf", "\u0663", "\uff11", str(2**62),
                                     str(2**62 + 1), str(2**63), str(10**30)]))


def cursor_of(value: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


CURSORS = st.one_of(st.builds(cursor_of, st.tuples(TIMES, st.uuids().map(str))),
                    st.builds(cursor_of, JSON_VALUES),
                    st.builds(cursor_of, st.lists(ANY_TEXT, min_size=2, max_size=2)),
                    st.sampled_from([cursor_of(["\x00", "\x00"]), "%%%", "===="]))
ORDER_IDS = st.one_of(st.from_regex(r"[A-Za-z0-9._-]{1,100}", fullmatch=True),
                      st.sampled_from(["", ".", "..", "prop-1", "a" * 101, "a b", "a/b"]))
ANY_VALUE = st.one_of(ANY_TEXT, NUMBERS, TIMES, CURSORS)


def in_range(low: int, high: int) -> st.SearchStrategy[str]:
    return st.one_of(st.integers(low, high).map(str), st.sampled_from([str(low), str(high)]),
                     NUMBERS)


STATUSES = [*FIXED_STATUSES, "CHARGED", "RESERVED", "SHIPPED", "FLIGHT_BOOKED"]
SEARCH = {"status": st.sampled_from([*STATUSES, "started", ""]), "orderId": ORDER_IDS,
          "definition": st.sampled_from(["order", "trip", "nope", "Order", ""]), "key": ORDER_IDS,
          "createdAfter": TIMES, "createdBefore": TIMES, "limit": in_range(1, 500),
          "after": CURSORS}
EVENTS = {"after": in_range(0, 2**62), "limit": in_range(1, 1000)}
WAIT = {"wait": NUMBERS}


RARELY = st.sampled_from([False] * 9 + [True])  # hypothesis favours the first


@st.composite
def queries(draw: st.DrawFn, parameters: dict[str, st.SearchStrategy[str]]) -> str:
    """A query string: known parameters, mostly with values of their kind (so that they reach
    the store), sometimes any; now and then one given twice, or one the endpoint does not
    know."""
    pairs: list[tuple[str, str]] = []
    for name in draw(st.lists(st.sampled_from(sorted(parameters)), unique=True)):
        anything: bool = draw(RARELY)
        pairs.append((name, draw(ANY_VALUE if anything else parameters[name])))
    if draw(RARELY) and pairs:
        pairs.append(draw(st.sampled_from(pairs)))
    if draw(RARELY):
        pairs.append((draw(st.sampled_from(["bogus", "", "a b"])), draw(ANY_VALUE)))
    return query_string(draw(st.permutations(pairs)))


def query_string(pairs: list[tuple[str, str]]) -> str:
    def quote(text: str) -> str:
        return urllib.parse.quote(text.encode("utf-8", "surrogatepass"), safe="")
    return "&".join(f"{quote(name)}={quote(value)}" for name, value in pairs)


# --- checks --------------------------------------------------------------------------------------

def post_order(client: FlaskClient, order_id: str, body: bytes,
               content_type: str | None = "application/json", query: str = "") -> TestResponse:
    headers = {"Content-Type": content_type} if content_type else {}
    return client.post(f"/orders/{order_id}/orchestrate{query}", data=body, headers=headers)


def shorten(sent: object, limit: int = 600) -> str:
    text = repr(sent)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def assert_2xx_or_problem(r: TestResponse, sent: object,
                          ok: tuple[int, ...] = (200, 202)) -> None:
    """A 2xx, or a 4xx problem document; never a 5xx. What was sent goes into the message:
    with schemathesis's pytest plugin loaded, hypothesis prints a failing example blank."""
    event(f"status {r.status_code}")
    what = f"{r.request.method} {r.request.path} with {shorten(sent)}"
    assert r.status_code < 500, (what, r.status_code, r.get_data(as_text=True)[:500])
    if r.status_code >= 400:
        assert r.mimetype == "application/problem+json", (what, r.status_code, r.mimetype)
        problem = json.loads(r.get_data())
        assert {"type", "title", "status", "detail"} <= set(problem), (what, problem)
        assert problem["status"] == r.status_code, (what, problem)
    else:
        assert r.status_code in ok, (what, r.status_code)
        assert r.mimetype == "application/json", (what, r.mimetype)


def assert_stored_as_sent(client: FlaskClient, system: System, workflow_id: str,
                          order_id: str, sent: dict[str, Any]) -> None:
    """The aggregate loaded back from the store, the state view and the audit trail's Started
    event hold exactly what was sent, and the same body again is the same order."""
    expected = {field: sent[field] for field in FIELDS}
    what = shorten(expected)
    workflow = system.workflows.load(uuid.UUID(workflow_id))
    assert (workflow.definition, workflow.key, workflow.input) == ("order", order_id, sent), what
    assert type(workflow.input["cents"]) is int, what
    state = client.get(f"/workflows/{workflow_id}").get_json()
    assert (state["workflowId"], state["orderId"]) == (workflow_id, order_id), what
    assert client.get(f"/orders/{order_id}").get_json()["workflowId"] == workflow_id, what
    started = client.get(f"/workflows/{workflow_id}/audit").get_json()["events"][0]
    assert started["type"] == "Started", what
    assert (started["data"]["key"], started["data"]["input"]) == (order_id, expected), what
    again = post_order(client, order_id, encode(sent))
    assert again.status_code == 200, (what, again.get_data(as_text=True)[:300])
    assert again.get_json()["workflowId"] == workflow_id, what


# --- properties ----------------------------------------------------------------------------------

@bounded(150)
@given(body=BODIES, content_type=CONTENT_TYPES)
def test_any_body_gets_a_2xx_or_a_problem_document_never_a_5xx(
        client: FlaskClient, body: bytes, content_type: str | None) -> None:
    assert_2xx_or_problem(post_order(client, new_order_id(), body, content_type),
                          (content_type, body))


@bounded(60)
@given(body=not_strict_json())
def test_a_body_that_is_not_strict_json_is_400(client: FlaskClient, body: bytes) -> None:
    r = post_order(client, new_order_id(), body)
    assert_2xx_or_problem(r, body)
    assert r.status_code == 400, (shorten(body), r.status_code)


@bounded(60)
@given(bad=unreadable_texts())
def test_text_with_a_control_character_or_a_lone_surrogate_is_422(
        client: FlaskClient, bad: dict[str, Any]) -> None:
    """Every reader must take a sku or an address the same way: no C0 or C1 control (a NUL, an
    ESC, a line break), no lone surrogate (valid as a JSON escape, but no UTF-8 can carry it)."""
    r = post_order(client, new_order_id(), encode(bad))
    assert_2xx_or_problem(r, bad)
    assert r.status_code == 422, (shorten(bad), r.status_code)


@bounded(60)
@given(order=valid_orders(), ascii_only=st.booleans())
def test_a_well_formed_order_is_accepted_and_stored_unchanged(
        client: FlaskClient, system: System, order: dict[str, Any], ascii_only: bool) -> None:
    order_id = new_order_id()
    r = post_order(client, order_id, encode(order, ascii_only))
    assert r.status_code == 202, (shorten(order), r.get_data(as_text=True)[:500])
    assert_stored_as_sent(client, system, r.get_json()["workflowId"], order_id, order)


@bounded(150)
@given(order=hostile_orders())
def test_whatever_is_accepted_is_stored_unchanged(
        client: FlaskClient, system: System, order: dict[str, Any]) -> None:
    order_id, body = new_order_id(), encode(order)
    r = post_order(client, order_id, body)
    assert_2xx_or_problem(r, body)
    if r.status_code == 202:
        # What was sent is what its JSON text says: two escaped halves of a surrogate pair
        # are one character to any JSON reader.
        assert_stored_as_sent(client, system, r.get_json()["workflowId"], order_id,
                              json.loads(body))


VALID_ORDER_ID = re.compile(r"[A-Za-z0-9._-]{1,100}")
ORDER_ID_TEXT = st.one_of(  # not empty: `/orders//orchestrate` is another route's path (405)
    ORDER_IDS.filter(bool),
    st.lists(st.one_of(NASTY, st.sampled_from("/?#&%+ .a-"), st.characters()), min_size=1,
             max_size=60).map("".join))


@bounded(100)
@given(order_id=ORDER_ID_TEXT)
def test_an_order_id_is_taken_or_400(client: FlaskClient, order_id: str) -> None:
    """Every character of the path's order id percent-encoded (a lone surrogate as the bytes it
    would be): 1 to 100 of A-Z a-z 0-9 . _ -, not only dots, is taken (202, or 200 or 409 when
    an earlier example used it); anything else is 400, whatever route the decoded path looks
    like."""
    quoted = urllib.parse.quote(order_id.encode("utf-8", "surrogatepass"), safe="")
    valid = bool(VALID_ORDER_ID.fullmatch(order_id)) and order_id.strip(".") != ""
    posted = post_order(client, quoted, encode(ORDER))
    read = client.get(f"/orders/{quoted}")
    assert_2xx_or_problem(posted, order_id)
    assert_2xx_or_problem(read, order_id)
    if valid:
        assert posted.status_code in (200, 202, 409), (order_id, posted.get_data(as_text=True))
        assert read.status_code == 200, (order_id, read.get_data(as_text=True))
    else:
        assert posted.status_code == 400, (order_id, posted.get_data(as_text=True))
        assert read.status_code == 400, (order_id, read.get_data(as_text=True))


@bounded(120)
@given(query=queries(SEARCH))
def test_any_search_gets_a_2xx_or_a_problem_document_never_a_5xx(
        client: FlaskClient, query: str) -> None:
    assert_2xx_or_problem(client.get(f"/workflows?{query}"), query)


@bounded(60)
@given(bound=st.sampled_from(["createdAfter", "createdBefore"]), moment=MOMENTS, offset=OFFSETS)
def test_a_time_is_a_search_bound_if_it_is_in_the_calendar_in_utc(
        client: FlaskClient, bound: str, moment: datetime, offset: tzinfo | None) -> None:
    """ISO 8601 with or without an offset: 200 when the instant falls in years 1 to 9999 in
    UTC, else 400 (`0001-01-01T00:00:00+01:00` is in year 0)."""
    text = moment.replace(tzinfo=offset).isoformat()
    r = client.get(f"/workflows?{query_string([(bound, text)])}")
    assert_2xx_or_problem(r, text)
    try:
        moment.replace(tzinfo=offset or UTC).astimezone(UTC)
        in_calendar = True
    except OverflowError:
        in_calendar = False
    assert r.status_code == (200 if in_calendar else 400), (text, r.get_data(as_text=True))


@bounded(60)
@given(query=queries(EVENTS))
def test_any_events_query_gets_a_2xx_or_a_problem_document_never_a_5xx(
        client: FlaskClient, query: str) -> None:
    assert_2xx_or_problem(client.get(f"/events?{query}"), query)


@bounded(40)
@given(query=queries(WAIT))
def test_any_wait_gets_a_2xx_or_a_problem_document(client: FlaskClient, query: str) -> None:
    assert_2xx_or_problem(post_order(client, new_order_id(), encode(ORDER), query=f"?{query}"),
                          query)


ORDER = {"cents": 100, "skus": ["a"], "address": "1 Main St"}


@bounded(30)
@given(wait=st.one_of(st.integers(0, 30).map(str), st.floats(0, 30).map(repr),
                      st.sampled_from(["0", "0.0", "30", "30.0", "0.001", "1e-3"])))
def test_a_wait_from_0_to_30_seconds_is_accepted(client: FlaskClient, wait: str) -> None:
    r = post_order(client, new_order_id(), encode(ORDER), query=f"?wait={wait}")
    assert r.status_code in (200, 202), (wait, r.get_data(as_text=True)[:300])


# --- definitions and signals ---------------------------------------------------------------------

BUNDLED = Path(__file__).resolve().parents[2] / "definitions"
ORDER_DOCUMENT = {**yaml.safe_load((BUNDLED / "order.yaml").read_text(encoding="utf-8")),
                  "name": "prop-def"}  # a name of its own: the order stays what it is
DEFINITION_TYPES = st.sampled_from(["application/json", "application/yaml", "text/yaml",
                                    "application/yaml; charset=utf-8", "text/plain", None])


def leaves(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every path into a document (a JSON value), containers included."""
    yield path
    if isinstance(value, dict):
        for k, v in value.items():
            yield from leaves(v, (*path, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from leaves(v, (*path, i))


@st.composite
def changed_definitions(draw: st.DrawFn) -> Any:
    """The order's document (renamed) with one to three things changed: a part replaced by
    anything JSON can hold, a key dropped, a character worth trying slipped into a text."""
    document: Any = copy.deepcopy(ORDER_DOCUMENT)
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(list(leaves(document))))
        if not path:
            continue
        parent = document
        for part in path[:-1]:
            parent = parent[part]
        change = draw(st.sampled_from(["replace", "drop", "slip"]))
        if change == "replace":
            parent[path[-1]] = draw(JSON_VALUES)
        elif change == "drop" and isinstance(parent, dict):
            del parent[path[-1]]
        elif isinstance(parent[path[-1]], str):
            text = parent[path[-1]]
            at = draw(st.integers(0, len(text)))
            parent[path[-1]] = text[:at] + draw(NASTY) + text[at:]
    return document


@st.composite
def definition_bodies(draw: st.DrawFn) -> tuple[bytes, str | None]:
    content_type = draw(DEFINITION_TYPES)
    kind = draw(st.sampled_from(["document", "document", "document", "value", "odd"]))
    if kind == "odd":
        return draw(odd_bodies()), content_type
    document = draw(changed_definitions()) if kind == "document" else draw(JSON_VALUES)
    if content_type and "yaml" in content_type and draw(st.booleans()):
        try:
            return yaml.safe_dump(document, allow_unicode=True).encode(
                "utf-8", "surrogatepass"), content_type
        except yaml.YAMLError:
            pass
    return encode(document, draw(st.booleans())), content_type


def latest(client: FlaskClient, name: str) -> int:
    r = client.get(f"/definitions/{name}")
    return int(r.get_json()["version"]) if r.status_code == 200 else 0


@bounded(120)
@given(sent=definition_bodies())
def test_any_definition_body_gets_a_2xx_or_a_problem_and_a_4xx_registers_nothing(
        client: FlaskClient, sent: tuple[bytes, str | None]) -> None:
    body, content_type = sent
    before = latest(client, "prop-def")
    headers = {"Content-Type": content_type} if content_type else {}
    r = client.put("/definitions/prop-def", data=body, headers=headers)
    assert_2xx_or_problem(r, sent, ok=(200, 201))
    if r.status_code >= 400:
        assert latest(client, "prop-def") == before, (shorten(sent), r.get_data(as_text=True))
        if r.status_code == 422:
            errors = r.get_json()["errors"]
            assert errors and all(e["path"] and e["message"] for e in errors), errors
    else:
        assert r.status_code in (200, 201)
        assert r.get_json()["version"] == latest(client, "prop-def") == before + (
            r.status_code == 201)


def test_the_order_s_own_document_is_registered_once(client: FlaskClient) -> None:
    text = json.dumps({**ORDER_DOCUMENT, "name": "prop-same"})
    first = client.put("/definitions/prop-same", data=text, content_type="application/json")
    again = client.put("/definitions/prop-same", data=text, content_type="application/json")
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.get_json() == again.get_json()


TRIP = {"from": "LHR", "to": "JFK", "dates": {"depart": "2030-06-01", "return": "2030-06-08"},
        "cents": 250_000}
SIGNAL_BODIES = st.one_of(
    st.builds(encode, st.one_of(st.dictionaries(PLAIN_TEXT, PLAIN_JSON, max_size=3),
                                st.dictionaries(ANY_TEXT, JSON_VALUES, max_size=3),
                                JSON_VALUES), st.booleans()),
    not_strict_json(), odd_bodies())


def plain(value: Any) -> bool:
    """No control character and no lone surrogate in any key or text."""
    if isinstance(value, str):
        return not re.search(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]", value)
    if isinstance(value, dict):
        return all(plain(k) and plain(v) for k, v in value.items())
    if isinstance(value, list):
        return all(map(plain, value))
    return True


@bounded(60)
@given(body=SIGNAL_BODIES, name=st.sampled_from(["approve", "deny", "approval", "Approve"]))
def test_any_signal_gets_a_2xx_or_a_problem_document(client: FlaskClient, body: bytes,
                                                     name: str) -> None:
    key = new_order_id()
    started = client.post(f"/definitions/trip/workflows/{key}", json=TRIP)
    assert started.status_code == 202, started.get_data(as_text=True)
    r = client.post(f"/workflows/{started.get_json()['workflowId']}/signals/{name}", data=body,
                    headers={"Content-Type": "application/json"})
    assert_2xx_or_problem(r, (name, body))
    what = (name, shorten(body), r.get_data(as_text=True)[:300])
    if name == "Approve":
        assert r.status_code == 400, what
        return
    try:
        sent = parse_json(body)  # as strictly as the API reads it
    except Problem:
        assert r.status_code == 400, what
        return
    if not isinstance(sent, dict) or not plain(sent):
        assert r.status_code == 422, what
    else:  # the trip has just started: its wait is still to come
        assert r.status_code == (422 if name == "approval" else 202), what


VALID_NAME = re.compile(r"[a-z][a-z0-9-]{0,62}")
PATH_TEXT = st.one_of(
    st.sampled_from(["trip", "order", "nope", "Trip", "a" * 63, "a" * 64, "-a", "a_b", ""]),
    st.lists(st.one_of(NASTY, st.sampled_from("/?#&%+ .a-_Z9"), st.characters()), min_size=1,
             max_size=40).map("".join))


@bounded(100)
@given(name=PATH_TEXT, key=ORDER_ID_TEXT)
def test_a_definition_name_and_a_key_are_taken_or_400(client: FlaskClient, name: str,
                                                      key: str) -> None:
    def quote(text: str) -> str:
        return urllib.parse.quote(text.encode("utf-8", "surrogatepass"), safe="")

    path = f"/definitions/{quote(name)}/workflows/{quote(key)}"
    posted = client.post(path, json=TRIP)
    read = client.get(path)
    if "//" in f"/{name}/workflows/{key}/":
        # an empty path segment once decoded: the router redirects to the path without it
        assert posted.status_code < 500 and read.status_code < 500
        return
    assert_2xx_or_problem(posted, (name, key))
    assert_2xx_or_problem(read, (name, key))
    valid_name = bool(VALID_NAME.fullmatch(name))
    valid_key = bool(VALID_ORDER_ID.fullmatch(key)) and key.strip(".") != ""
    if not name or "/" in name:
        assert posted.status_code in (400, 404, 405), (name, posted.get_data(as_text=True))
    elif not (valid_name and valid_key):
        assert posted.status_code == 400, (name, key, posted.get_data(as_text=True))
    elif name != "trip":
        assert (posted.status_code, read.status_code) == (404, 404) or name == "order"
    else:
        assert posted.status_code in (200, 202, 409), (key, posted.get_data(as_text=True))
