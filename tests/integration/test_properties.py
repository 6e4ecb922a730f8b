"""Properties of the API's edge, by hypothesis, through the Flask app over a real SQLite store
(the worker runs, with fake participants):

- any body sent to POST /orders/{orderId}/orchestrate (any JSON value in any field, extra
  fields, deep nesting, duplicate keys, NaN, invalid UTF-8, any Unicode including lone
  surrogates and control characters, another media type) gets a 2xx or a 4xx problem document,
  never a 5xx; a body that is not strict JSON is 400; a well-formed order is accepted;
- whatever the API accepts is stored unchanged: the aggregate loaded back from the store, the
  state view and the audit trail show the cents, skus and address that were sent;
- any query of GET /workflows, GET /events and `?wait` gets a 2xx or a 4xx problem document,
  and a `wait` from 0 to 30 seconds is accepted.

Bounded: derandomized, 30 to 150 examples a test (PROPERTY_EXAMPLES=10 makes it ten times as
many), no example database; a few seconds for the module.
"""
from __future__ import annotations

import base64
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
from flask.testing import FlaskClient
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from werkzeug.test import TestResponse

from api.app import create_app
from api.openapi import STATUSES
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
EXTRA_FIELDS = st.dictionaries(PLAIN_TEXT.filter(lambda k: k not in FIELDS), PLAIN_JSON,
                               max_size=3)


@st.composite
def valid_orders(draw: st.DrawFn) -> dict[str, Any]:
    """An order that must be accepted: in range, plain text, extra fields (ignored)."""
    return {**draw(EXTRA_FIELDS), "cents": draw(VALID_CENTS), "skus": draw(VALID_SKUS),
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


SEARCH = {"status": st.sampled_from([*STATUSES, "started", ""]), "orderId": ORDER_IDS,
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


def assert_2xx_or_problem(r: TestResponse, sent: object) -> None:
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
        assert r.status_code in (200, 202), (what, r.status_code)
        assert r.mimetype == "application/json", (what, r.mimetype)


def assert_stored_as_sent(client: FlaskClient, system: System, workflow_id: str,
                          order_id: str, sent: dict[str, Any]) -> None:
    """The aggregate loaded back from the store, the state view and the audit trail's Started
    event hold exactly what was sent, and the same body again is the same order."""
    expected = {field: sent[field] for field in FIELDS}
    what = shorten(expected)
    workflow = system.workflows.load(uuid.UUID(workflow_id))
    stored = {"cents": workflow.cents, "skus": list(workflow.skus), "address": workflow.address}
    assert (workflow.order_id, stored) == (order_id, expected), what
    assert type(workflow.cents) is int, what
    state = client.get(f"/workflows/{workflow_id}").get_json()
    assert (state["workflowId"], state["orderId"]) == (workflow_id, order_id), what
    assert client.get(f"/orders/{order_id}").get_json()["workflowId"] == workflow_id, what
    started = client.get(f"/workflows/{workflow_id}/audit").get_json()["events"][0]
    assert (started["type"], started["data"]) == ("Started", {"orderId": order_id, **expected}), \
        what
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
