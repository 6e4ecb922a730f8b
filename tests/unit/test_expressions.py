"""Templates and JMESPath expressions: types kept, interpolation, URL-encoded paths, what they
refer to, and compile-once (rendering never parses)."""
from __future__ import annotations

from typing import Any

import jmespath
import jmespath.parser
import pytest

from domain.expressions import (
    ExpressionError,
    compile_expression,
    compile_template,
    encode_segment,
    make_context,
    text_of,
    truthy,
)


@pytest.fixture
def context() -> dict[str, Any]:
    return make_context(
        input={"cents": 1250, "skus": ["a", "b"], "address": "1 Main St", "car": False,
               "price": 19.5, "nested": {"x": 1}},
        key="o-1", workflow_id="w-1", idempotency_key="w-1:charge", reason="failed",
        steps={"charge": {"paymentId": "p/1?x#y"}, "approval": {"by": "alice"}},
    )


def test_the_context_has_every_root() -> None:
    ctx = make_context(input={}, key="k", workflow_id="w")
    assert ctx == {"input": {}, "key": "k", "workflowId": "w", "idempotencyKey": None,
                   "reason": None, "steps": {}}


# --- a whole-value template takes the value's type ---------------------------------------------

@pytest.mark.parametrize("source, expected", [
    ("${input.cents}", 1250),
    ("${input.price}", 19.5),
    ("${input.skus}", ["a", "b"]),
    ("${input.nested}", {"x": 1}),
    ("${input.car}", False),
    ("${key}", "o-1"),
    ("${input.missing}", None),
    ("${steps.ship.shipmentId}", None),  # a step that has not run: None, not an error
    ("${length(input.skus)}", 2),
    ("${ input.cents }", 1250),  # spaces around the expression do not make it text
])
def test_a_whole_template_keeps_the_type(source: str, expected: Any,
                                         context: dict[str, Any]) -> None:
    assert compile_template(source).render(context) == expected
    assert type(compile_template(source).render(context)) is type(expected)


def test_a_rendered_value_does_not_alias_the_context(context: dict[str, Any]) -> None:
    skus = compile_template("${input.skus}").render(context)
    skus.append("c")
    assert context["input"]["skus"] == ["a", "b"]


# --- text around interpolates ------------------------------------------------------------------

@pytest.mark.parametrize("source, expected", [
    ("order ${key}", "order o-1"),
    ("${key}-${input.cents}", "o-1-1250"),
    ("skus: ${input.skus}", 'skus: ["a","b"]'),  # non-strings: compact JSON
    ("car=${input.car}", "car=false"),
    ("price ${input.price}", "price 19.5"),
    ("nested ${input.nested}", 'nested {"x":1}'),
    ("gone: ${input.missing}", "gone: null"),  # missing: null
    ("cost $${input.cents}", "cost ${input.cents}"),  # $${ is a literal ${
    ("just text", "just text"),
    ("", ""),
    ("ids ${{a: key, b: '}'}}", 'ids {"a":"o-1","b":"}"}'),  # braces inside don't close it
])
def test_text_around_interpolates(source: str, expected: str, context: dict[str, Any]) -> None:
    assert compile_template(source).render(context) == expected


def test_text_of_is_the_string_or_compact_json() -> None:
    assert [text_of(v) for v in ("é", 1, 1.5, True, None, ["ü"])] == \
        ["é", "1", "1.5", "true", "null", '["ü"]']


# --- paths: every interpolated value is one URL-encoded segment ---------------------------------

@pytest.mark.parametrize("value, segment", [
    ("p-1", "p-1"),
    ("a/b", "a%2Fb"),
    ("a?b=1", "a%3Fb%3D1"),
    ("a#b", "a%23b"),
    ("a b", "a%20b"),
    ("ünï€", "%C3%BCn%C3%AF%E2%82%AC"),
    ("%41", "%2541"),
    (".", "%2E"),
    ("..", "%2E%2E"),
    ("...", "..."),
    (12, "12"),
    (None, "null"),
])
def test_a_path_encodes_each_value(value: Any, segment: str) -> None:
    ctx = make_context(input={"v": value}, key="k", workflow_id="w")
    assert compile_template("/x/${input.v}/y", path=True).render(ctx) == f"/x/{segment}/y"
    assert encode_segment(value) == segment


def test_a_path_is_always_text(context: dict[str, Any]) -> None:
    assert compile_template("/payments/${steps.charge.paymentId}/refund", path=True).render(
        context) == "/payments/p%2F1%3Fx%23y/refund"
    assert compile_template("${input.cents}", path=True).render(context) == "1250"
    assert compile_template("/plain", path=True).render(context) == "/plain"


def test_outside_paths_nothing_is_encoded(context: dict[str, Any]) -> None:
    assert compile_template("id ${steps.charge.paymentId}").render(context) == "id p/1?x#y"


# --- containers render recursively --------------------------------------------------------------

def test_mappings_and_lists_render_recursively(context: dict[str, Any]) -> None:
    template = compile_template({
        "orderId": "${key}", "cents": "${input.cents}", "fixed": 3, "flag": True, "none": None,
        "lines": [{"sku": "${input.skus[0]}"}, "${input.skus[1]}", "n=${input.cents}"],
        "${key}": "keys are literal",
    })
    assert template.render(context) == {
        "orderId": "o-1", "cents": 1250, "fixed": 3, "flag": True, "none": None,
        "lines": [{"sku": "a"}, "b", "n=1250"], "${key}": "keys are literal",
    }


def test_rendering_is_deterministic(context: dict[str, Any]) -> None:
    template = compile_template({"a": "${input.skus}", "b": "x${workflowId}"})
    assert template.render(context) == template.render(context)


# --- expressions --------------------------------------------------------------------------------

@pytest.mark.parametrize("value, expected", [
    (None, False), (False, False), ("", False), ([], False), ({}, False),
    (0, True), (True, True), ("x", True), ([0], True), ({"a": None}, True),
])
def test_truth_is_jmespath_truth(value: Any, expected: bool) -> None:
    assert truthy(value) is expected


def test_a_comparison_needs_backticks(context: dict[str, Any]) -> None:
    assert compile_expression("input.cents > `1000`").search(context) is True
    with pytest.raises(ExpressionError, match="backticks"):
        compile_expression("input.cents > 1000")


def test_a_runtime_type_error_is_none_not_an_exception(context: dict[str, Any]) -> None:
    assert compile_expression("length(input.cents)").search(context) is None
    assert compile_template("${abs(key)}").render(context) is None


@pytest.mark.parametrize("source, refs", [
    ("input.cents", [("input", "cents")]),
    ("steps.charge.paymentId", [("steps", "charge", "paymentId")]),
    ('steps."charge".paymentId', [("steps", "charge", "paymentId")]),
    ("input.cents > `100000`", [("input", "cents")]),
    ("input.car && key", [("input", "car"), ("key",)]),
    ("length(input.skus)", [("input", "skus")]),
    ("input.skus[0]", [("input", "skus")]),
    ("input.skus[*].id", [("input", "skus")]),
    ("input.lines[?qty > input.min]", [("input", "lines")]),  # the filter reads elements
    ("sort_by(input.lines, &price)", [("input", "lines")]),
    ("{a: input.a, b: reason}", [("input", "a"), ("reason",)]),
    ("input | cents", [("input",)]),
    ("@", [()]),
    ("@.input.x", [("input", "x")]),
    ("`1`", []),
])
def test_refs_are_what_is_read_from_the_context(source: str, refs: list[tuple[str, ...]]) -> None:
    assert list(compile_expression(source).refs()) == refs


def test_a_template_lists_the_refs_of_all_its_pieces() -> None:
    template = compile_template({"a": "${key}/${input.x}", "b": ["${steps.s.k}"]})
    assert list(template.refs()) == [("key",), ("input", "x"), ("steps", "s", "k")]


@pytest.mark.parametrize("source, fragment", [
    ("${input.cents", "unterminated ${"),
    ("x ${}", "empty expression"),
    ("${input.}", "bad JMESPath"),
    ("${input..cents}", "bad JMESPath"),
    ("${a-b}", "bad JMESPath"),
    ("${lenght(input.skus)}", "unknown function lenght()"),
    ("${length(input.skus, key)}", "length() takes 1 argument(s), got 2"),
    ("${merge()}", "merge() takes at least 1 argument(s), got 0"),
])
def test_bad_templates_are_refused_when_compiled(source: str, fragment: str) -> None:
    with pytest.raises(ExpressionError) as caught:
        compile_template(source)
    assert fragment in str(caught.value)


# --- compile once ------------------------------------------------------------------------------

def test_rendering_never_parses(monkeypatch: pytest.MonkeyPatch, context: dict[str, Any]) -> None:
    template = compile_template({"p": "/x/${key}", "c": "${input.cents}", "l": ["${reason}"]})
    path = compile_template("/payments/${steps.charge.paymentId}/refund", path=True)
    when = compile_expression("input.cents > `100`")

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("parsed at render time")

    monkeypatch.setattr(jmespath, "compile", refuse)
    monkeypatch.setattr(jmespath.parser.Parser, "parse", refuse)
    assert template.render(context) == {"p": "/x/o-1", "c": 1250, "l": ["failed"]}
    assert path.render(context) == "/payments/p%2F1%3Fx%23y/refund"
    assert when.search(context) is True
