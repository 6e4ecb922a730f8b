"""The demo's table against the bundled definitions: every call of order.yaml and trip.yaml,
rendered by the definitions' own compiler, is served by the demo under the call's name and
answers what the step keeps; its undos undo it. A row that contradicts itself fails early."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from application.definitions_files import compile_definition_text
from demo.app import STORE, create_participants_app
from demo.routes import ACTIONS, FLOWS, Flow, Route, check_flows, check_routes
from domain.definitions import Definition, RenderedCall, Step, Wait
from domain.expressions import make_context

BUNDLED = Path(__file__).resolve().parents[2] / "definitions"
DATES = {"depart": "2030-06-01", "return": "2030-06-08"}
INPUTS = {  # (definition, a valid start body)
    "order": ("order", {"cents": 1999, "skus": ["sku-1", "sku-2"], "address": "1 Main St"}),
    "trip with a car, approved": ("trip", {"from": "LHR", "to": "JFK", "dates": DATES,
                                           "cents": 250_000, "car": True}),
    "trip, no car": ("trip", {"travellerId": "tr-1", "from": "LHR", "to": "JFK",
                              "dates": DATES, "travellers": 2, "cents": 40_000}),
}
APPROVAL = {"by": "ann"}  # the body of a wait step's signal


def definition(name: str) -> Definition:
    return compile_definition_text((BUNDLED / f"{name}.yaml").read_text(encoding="utf-8"))


@pytest.fixture
def client(tmp_path: Path) -> Iterator[FlaskClient]:
    app = create_participants_app(str(tmp_path / "demo.sqlite3"), faults={})
    yield app.test_client()
    app.extensions[STORE].close()


def send(client: FlaskClient, call: RenderedCall, key: str) -> Any:
    """Sends one rendered call as the orchestrator would; the answer's JSON, which must be
    a 2xx."""
    answer = client.open(call.target, method=call.method, json=call.body,
                         headers={"Idempotency-Key": key, "X-Workflow-Id": "wf"})
    assert 200 <= answer.status_code < 300, (call, answer.get_json())
    return answer.get_json()


def run(client: FlaskClient, flow: Definition, key: str, start: dict[str, Any],
        last: int | None = None) -> tuple[list[Step], dict[str, Any]]:
    """Runs the definition's steps (before index `last`) against the demo, as the orchestrator
    would; the steps done, and the context's `steps` (kept values, signal bodies)."""
    steps: dict[str, Any] = {}
    done: list[Step] = []
    for step in flow.flat_steps[:last]:
        context = make_context(input=start, key=key, workflow_id=f"wf-{key}", steps=steps)
        if not step.applies(context):
            continue
        if isinstance(step, Wait):
            steps[step.name] = APPROVAL
            continue
        context["idempotencyKey"] = f"wf-{key}:{step.name}"
        kept = step.extract(send(client, step.call.render(context), context["idempotencyKey"]))
        assert not Step.unkept(kept), (step.name, kept)
        steps[step.name] = kept
        done.append(step)
    return done, steps


def undo(client: FlaskClient, done: list[Step], steps: dict[str, Any], key: str) -> None:
    """Undoes the done steps in reverse, as a compensation does."""
    for step in reversed(done):
        if step.undo is None:
            continue
        context = make_context(input={}, key=key, workflow_id=f"wf-{key}", steps=steps,
                               idempotency_key=f"wf-{key}:{step.undo.name}", reason="failed")
        send(client, step.undo.call.render(context), context["idempotencyKey"])


def stats(client: FlaskClient, key: str) -> dict[str, Any]:
    return client.get("/_stats", query_string={"key": key}).get_json()


@pytest.mark.parametrize("case", INPUTS)
def test_every_call_of_a_bundled_definition_is_served(client: FlaskClient, case: str) -> None:
    name, start = INPUTS[case]
    flow = definition(name)
    assert set(flow.calls) <= set(ACTIONS)  # the demo's actions are the definition's calls
    done, _ = run(client, flow, "k-1", start)
    served = stats(client, "k-1")
    assert {a: n for a, n in served["by_order"].items() if n} == {s.name: 1 for s in done}
    assert served["orders"] == {"completed": 1, "compensated": 0, "partial": 0}
    assert served["duplicate_effects"] == 0
    undoable = [step for step in flow.flat_steps if isinstance(step, Step) and step.undo]
    # Everything up to the last step with an undo, then undone: a compensated workflow.
    half, kept = run(client, flow, "k-2", start, last=flow.flat_steps.index(undoable[-1]) + 1)
    undo(client, half, kept, "k-2")
    served = stats(client, "k-2")
    undone = {s.undo.name: 1 for s in half if s.undo}
    assert {a: n for a, n in served["by_order"].items() if n} == {
        **{s.name: 1 for s in half}, **undone}
    assert served["orders"] == {"completed": 1, "compensated": 1, "partial": 0}
    assert served["duplicate_effects"] == 0


def test_the_flows_are_the_bundled_definitions() -> None:
    for flow in FLOWS:
        steps = [s for s in definition(flow.name).flat_steps if isinstance(s, Step)]
        assert set(flow.steps) == {s.name for s in steps if s.when is None}
        assert set(flow.optional) == {s.name for s in steps if s.when is not None}


def forward(action: str, path: str = "/things", **fields: Any) -> Route:
    return Route("POST", path, action, "thingId", "done", **{"id_prefix": "thg", **fields})


@pytest.mark.parametrize(("rows", "named"), [
    ((forward("make"), forward("make")), "'make': the action name is taken"),
    ((forward("make", "/things/{thingId}"),), "'make': a forward call has an id_prefix"),
    ((forward("make", id_prefix=""),), "'make': a forward call has an id_prefix"),
    ((forward("make"), Route("POST", "/things/cancel", "unmake", "thingId", "undone",
                             undoes="make")), "'unmake': an undo names its {thingId}"),
    ((forward("make"), Route("POST", "/things/{otherId}/cancel", "unmake", "thingId",
                             "undone", undoes="make")), "'unmake': an undo names"),
    ((Route("POST", "/things/{thingId}/cancel", "unmake", "thingId", "undone",
            undoes="make"),), "'unmake': undoes 'make', which is no forward call"),
])
def test_a_row_that_contradicts_itself_is_refused(rows: tuple[Route, ...], named: str) -> None:
    with pytest.raises(ValueError, match=named.replace("{", r"\{").replace("}", r"\}")):
        check_routes(rows)


def test_a_flow_names_forward_calls_only() -> None:
    with pytest.raises(ValueError, match="'refund' is no forward call"):
        check_flows([Flow("order", ("charge", "refund"))], ACTIONS)
    with pytest.raises(ValueError, match="'nope' is no forward call"):
        check_flows([Flow("trip", ("flight",), optional=("nope",))], ACTIONS)
