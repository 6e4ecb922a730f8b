"""The console's drawings: well-formed SVG that says what the saga and the timeline say (one
node per step with its state, one bar per attempt), accessible, escaped, and the same bytes for
the same input."""
from __future__ import annotations

import dataclasses
import xml.etree.ElementTree as ET
from datetime import timedelta

import pytest

from console import svg
from console.saga import Bar, Mark, Timeline, step_states, timeline
from domain.definitions import Definition, compile_definition
from tests.histories import ORDER, answer, order, settle
from tests.unit.test_console_saga import (
    TRIP,
    at,
    booked_and_waiting,
    entries,
    epoch,
)

NS = {"s": "http://www.w3.org/2000/svg"}


def parse(text: str) -> ET.Element:
    root = ET.fromstring(text)  # raises on anything not well-formed
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    return root


def accessible(root: ET.Element) -> None:
    """role="img", labelled by its own title and description, and a legend."""
    assert root.get("role") == "img"
    assert root.get("viewBox", "").startswith("0 0 ")
    title, desc = root.find("s:title", NS), root.find("s:desc", NS)
    assert title is not None and title.text and desc is not None and desc.text
    assert (root.get("aria-labelledby") or "").split() == [title.get("id"), desc.get("id")]
    assert root.findall(".//s:g[@class='legend']/s:g", NS)


def steps(root: ET.Element) -> dict[str, ET.Element]:
    return {g.get("data-step", ""): g for g in root.iter("{http://www.w3.org/2000/svg}g")
            if "step" in (g.get("class") or "").split()}


def retried_then_refused() -> Timeline:
    """The charge fails once (5xx: retried after a backoff), then for good with an error that
    carries markup; the order fails."""
    workflow = order("svg-1")
    answer(workflow, ok=False, retryable=True, error="503: busy", retry_at=epoch(2))
    answer(workflow, ok=False, error="rejected (422): <script>alert('x')</script> & co")
    settle(workflow)
    return timeline(ORDER, entries(workflow, [0, 1, 3, 3, 3]), at(5))


# --- the diagram -------------------------------------------------------------------------

def test_the_diagram_has_one_node_per_step_with_its_state() -> None:
    workflow = booked_and_waiting()
    states = step_states(TRIP, entries(workflow), "WAITING")
    root = parse(svg.diagram(TRIP, states))
    accessible(root)
    nodes = steps(root)
    assert list(nodes) == ["flight", "hotel", "car", "approval", "charge", "confirm"]
    for name, node in nodes.items():
        assert node.get("data-state") == states[name]
        assert f"state-{states[name]}" in (node.get("class") or "").split()
        assert node.get("tabindex") == "0"
        title = node.find("s:title", NS)
        assert title is not None and title.text == f"{name}: {states[name]}"


def test_the_diagram_shows_waits_conditions_undos_and_the_parallel_group() -> None:
    root = parse(svg.diagram(TRIP, {}))
    nodes = steps(root)
    assert {n.get("data-state") for n in nodes.values()} == {"pending"}
    approval = nodes["approval"]
    assert approval.find("s:polygon", NS) is not None  # a wait has its own shape
    texts = ["".join(t.itertext()) for t in approval.iter("{http://www.w3.org/2000/svg}text")]
    assert "signal: approve" in texts
    car = nodes["car"]
    assert car.find("s:rect", NS).get("stroke-dasharray")  # type: ignore[union-attr]
    assert "when: input.car" in ["".join(t.itertext()) for t in car.iter(
        "{http://www.w3.org/2000/svg}text")]
    assert "undo: cancel_car" in ["".join(t.itertext()) for t in car.iter(
        "{http://www.w3.org/2000/svg}text")]
    assert len(root.findall(".//s:g[@class='parallel']", NS)) == 1
    flight, hotel = nodes["flight"].find("s:rect", NS), nodes["hotel"].find("s:rect", NS)
    assert flight is not None and hotel is not None
    assert flight.get("x") == hotel.get("x") and flight.get("y") != hotel.get("y")  # stacked


def test_the_diagram_escapes_what_a_definition_says() -> None:
    document = {
        "name": "odd", "description": "x", "key": "oddId",
        "input": {"type": "object"}, "participants": {"p": {}},
        "steps": [{"name": "first", "participant": "p", "when": "input.a < input.b",
                   "call": {"path": "/x"}}]}
    odd: Definition = compile_definition(document)
    text = svg.diagram(odd, {"first": "done"})
    assert "input.a &lt; input.b" in text
    assert steps(parse(text))["first"].get("data-state") == "done"


# --- the timeline ------------------------------------------------------------------------

def test_the_timeline_has_one_rect_per_bar_with_its_kind_and_outcome() -> None:
    tl = retried_then_refused()
    root = parse(svg.timeline(tl))
    accessible(root)
    rects = [r for r in root.iter("{http://www.w3.org/2000/svg}rect")
             if "bar" in (r.get("class") or "").split()]
    assert len(rects) == len(tl.bars) == 3
    for rect, bar in zip(rects, tl.bars, strict=True):
        assert rect.get("class") == f"bar kind-{bar.kind} outcome-{bar.outcome}"
        assert (rect.get("data-lane"), rect.get("data-kind"), rect.get("data-outcome"),
                rect.get("data-attempt")) == (bar.lane, bar.kind, bar.outcome, str(bar.attempt))
        assert rect.get("tabindex") == "0"
        assert float(rect.get("width", 0)) >= 2
        title = rect.find("s:title", NS)
        assert title is not None and title.text is not None
        assert title.text.splitlines()[0] == bar.label
        assert f"outcome: {bar.outcome}" in title.text.splitlines()
    assert [(r.get("data-kind"), r.get("data-outcome")) for r in rects] == [
        ("call", "retry"), ("backoff", "retry"), ("call", "failed")]


def test_an_error_with_markup_is_escaped() -> None:
    text = svg.timeline(retried_then_refused())
    assert "<script>" not in text
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; co" in text
    root = parse(text)
    titles = [t.text or "" for t in root.iter("{http://www.w3.org/2000/svg}title")]
    assert any("<script>alert('x')</script> & co" in t for t in titles)  # as text, once parsed


def test_lanes_and_a_time_axis_in_seconds() -> None:
    tl = retried_then_refused()  # 3 s long
    root = parse(svg.timeline(tl))
    texts = ["".join(t.itertext()) for t in root.iter("{http://www.w3.org/2000/svg}text")]
    assert [t for t in texts if t.endswith(" s")] == ["0 s", "0.5 s", "1 s", "1.5 s", "2 s",
                                                      "2.5 s", "3 s"]
    lanes = root.findall(".//s:g[@class='lane']", NS)
    assert [g.get("data-lane") for g in lanes] == ["charge"]


def test_ticks_take_1_2_5_steps() -> None:
    base = Timeline(at(0), at(0), (), (), ())
    for seconds, expected in ((0.04, "0.005 s"), (7, "1 s"), (30, "5 s"), (3600, "500 s")):
        root = parse(svg.timeline(dataclasses.replace(base, end=at(seconds))))
        labels = [t.text for t in root.iter("{http://www.w3.org/2000/svg}text")
                  if (t.text or "").endswith(" s")]
        assert labels[0] == "0 s" and labels[1] == expected, labels


def test_a_zero_length_bar_is_still_visible_and_marks_have_a_line_and_a_triangle() -> None:
    bar = Bar("charge", "call", at(0), at(0), "ok", 1, "charge attempt 1: ok", ())
    mark = Mark(at(1), "signal", "signal approve", (("signal", "approve"),))
    root = parse(svg.timeline(Timeline(at(0), at(60), ("charge",), (bar,), (mark,))))
    rect = root.find(".//s:rect[@data-kind='call']", NS)
    assert rect is not None and float(rect.get("width", 0)) == 2.0
    marks = root.findall(".//s:g[@data-kind='signal']", NS)
    assert len(marks) == 1
    assert marks[0].find("s:line", NS) is not None
    assert marks[0].find("s:polygon", NS) is not None
    title = marks[0].find("s:title", NS)
    assert title is not None and title.text == "signal approve\nsignal: approve"


def test_undo_and_wait_bars_have_their_own_colours() -> None:
    workflow = order("svg-2")
    answer(workflow)
    workflow.request_cancel()
    answer(workflow)
    settle(workflow)
    text = svg.timeline(timeline(ORDER, entries(workflow), at(9)))
    root = parse(text)
    call = root.find(".//s:rect[@data-kind='call']", NS)
    undo = root.find(".//s:rect[@data-kind='undo']", NS)
    assert call is not None and undo is not None and call.get("fill") != undo.get("fill")

    waiting = booked_and_waiting()
    root = parse(svg.timeline(timeline(TRIP, entries(waiting), at(60))))
    wait = root.find(".//s:rect[@data-kind='wait']", NS)
    assert wait is not None and wait.get("data-outcome") == "waiting"


def test_the_same_input_draws_the_same_bytes() -> None:
    tl = retried_then_refused()
    assert svg.timeline(tl) == svg.timeline(retried_then_refused())
    states = step_states(ORDER, [], "STARTED")
    assert svg.diagram(ORDER, states) == svg.diagram(ORDER, dict(states))
    points = [("17:44", 3, 1), ("17:45", 0, 2)]
    assert svg.per_minute(points) == svg.per_minute(list(points))


def test_two_drawings_on_one_page_do_not_share_ids() -> None:
    one = parse(svg.diagram(ORDER, {"charge": "done"}))
    other = parse(svg.diagram(ORDER, {"charge": "failed"}))
    assert one.get("aria-labelledby") != other.get("aria-labelledby")


# --- per minute --------------------------------------------------------------------------

def test_per_minute_draws_two_series_an_axis_and_a_legend() -> None:
    points = [(f"17:{m:02d}", m % 4, m % 3) for m in range(40, 50)]
    root = parse(svg.per_minute(points))
    accessible(root)
    bars = [r for r in root.iter("{http://www.w3.org/2000/svg}rect")
            if "bar" in (r.get("class") or "").split()]
    assert len(bars) == 2 * len(points)
    started = [int(r.get("data-value", -1)) for r in bars if r.get("data-series") == "started"]
    assert started == [p[1] for p in points]
    assert {r.get("data-minute") for r in bars} == {p[0] for p in points}
    heights = {(r.get("data-series"), r.get("data-value")): float(r.get("height", 0))
               for r in bars}
    assert heights[("started", "0")] == 0 and heights[("started", "3")] > heights[
        ("started", "1")]
    legend = "".join(root.find(".//s:g[@class='legend']", NS).itertext())  # type: ignore[union-attr]
    assert "started" in legend and "finished" in legend


@pytest.mark.parametrize("points", [[], [("00:00", 0, 0)]])
def test_per_minute_with_nothing_to_show_is_still_a_chart(
        points: list[tuple[str, int, int]]) -> None:
    accessible(parse(svg.per_minute(points)))


def test_a_long_step_name_is_cut_and_kept_whole_in_a_title() -> None:
    long = "a" * 60
    bar = Bar(long, "call", at(0), at(1), "ok", 1, "x", ())
    root = parse(svg.timeline(Timeline(at(0), at(0) + timedelta(seconds=1), (long,), (bar,),
                                       ())))
    label = root.find(".//s:text[@class='lane-label']", NS)
    assert label is not None and "".join(label.itertext()).endswith("…")
    assert label.find("s:title", NS) is not None
