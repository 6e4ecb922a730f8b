"""`orchestrator definitions check|apply|list|show`, in process, on SQLite and PostgreSQL."""
from __future__ import annotations

import json
from pathlib import Path

import yaml
from click.testing import CliRunner, Result

from api.cli import main

BUNDLED = Path(__file__).resolve().parents[2] / "definitions"
ORDER_YAML = (BUNDLED / "order.yaml").read_text(encoding="utf-8")


def run(url: str, *args: str) -> Result:
    return CliRunner().invoke(main, list(args), env={"DATABASE_URL": url, "LOG_FORMAT": "text"})


def files(tmp: Path) -> tuple[Path, Path, Path]:
    order, changed, bad = tmp / "order.yaml", tmp / "order-v2.yaml", tmp / "bad.yaml"
    order.write_text(ORDER_YAML, encoding="utf-8")
    changed.write_text(ORDER_YAML.replace("description: Charge,", "description: v2. Charge,"),
                       encoding="utf-8")
    bad.write_text(ORDER_YAML.replace("${steps.charge.paymentId}/refund",
                                      "${steps.chrage.paymentId}/refund")
                   .replace("participant: shipping", "participant: shiping"), encoding="utf-8")
    return order, changed, bad


def test_check_names_every_error_with_its_path_and_needs_no_database(tmp_path: Path) -> None:
    order, changed, bad = files(tmp_path)
    ok = run("postgresql://nobody@127.0.0.1:1/none", "definitions", "check", str(order),
             str(BUNDLED / "trip.yaml"))
    assert ok.exit_code == 0, ok.output
    assert ok.output.splitlines() == [
        f"{order}: order is valid (3 steps; participants payment, inventory, shipping)",
        f"{BUNDLED / 'trip.yaml'}: trip is valid (6 steps; participants flights, hotels, cars, "
        "payment, notify)"]
    refused = run("sqlite:///unused", "definitions", "check", str(bad), str(changed))
    assert refused.exit_code == 1
    assert f"{bad}: steps[0].undo.path: unknown step 'chrage'" in refused.output
    assert f"{bad}: steps[2].participant: unknown participant 'shiping'" in refused.output
    assert f"{changed}: order is valid" in refused.output
    lone = tmp_path / "lone.json"  # a JSON escape no UTF-8 can carry: neither hashed nor stored
    lone.write_text(json.dumps({**yaml.safe_load(ORDER_YAML), "description": "a \ud800"}),
                    encoding="utf-8")
    unstorable = run("sqlite:///unused", "definitions", "check", str(lone))
    assert unstorable.exit_code == 1
    assert unstorable.output == (f"{lone}: description: must be valid Unicode text "
                                 "(no lone surrogates)\n")


def test_apply_registers_versions_once_and_nothing_when_a_file_is_invalid(
        tmp_path: Path, database_url: str) -> None:
    order, changed, bad = files(tmp_path)
    first = run(database_url, "definitions", "apply", str(order), str(BUNDLED / "trip.yaml"))
    assert first.exit_code == 0, first.output
    assert first.output.splitlines() == ["order  version 1", "trip  version 1"]
    again = run(database_url, "definitions", "apply", str(order))
    assert again.output.splitlines() == ["order  version 1  unchanged"]
    refused = run(database_url, "definitions", "apply", str(changed), str(bad))
    assert refused.exit_code == 1
    assert "unknown step 'chrage'" in refused.output
    assert "nothing was registered" in refused.output
    assert run(database_url, "definitions", "apply", str(changed)).output.splitlines() == [
        "order  version 2"]

    listed = run(database_url, "definitions", "list")
    assert listed.exit_code == 0
    assert listed.output.splitlines()[0].split() == ["NAME", "VERSION", "DESCRIPTION"]
    assert listed.output.splitlines()[1].startswith("order  2        v2. Charge,")
    assert listed.output.splitlines()[2].startswith("trip   1")

    shown = run(database_url, "definitions", "show", "order")
    assert shown.exit_code == 0, shown.output
    assert shown.output.startswith("definition order  version 2 of 2  sha256 ")
    document = yaml.safe_load(shown.output.split("\n\n", 2)[2])
    assert document["description"].startswith("v2.") and len(document["steps"]) == 3
    old = json.loads(run(database_url, "definitions", "show", "order", "--version", "1",
                         "--json").output)
    assert old["version"] == 1 and old["definition"]["description"].startswith("Charge,")
    assert [v["version"] for v in old["versions"]] == [1, 2]
    missing = run(database_url, "definitions", "show", "nope")
    assert missing.exit_code == 1 and "no definition nope" in missing.output
    too_far = run(database_url, "definitions", "show", "order", "--version", "3")
    assert too_far.exit_code == 1 and "it has 2" in too_far.output
