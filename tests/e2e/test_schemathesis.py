"""The running system against its own OpenAPI description, by schemathesis.

`orchestrator run` (SQLite) and the demo participants run as real processes, twice: without
tokens, and with API_TOKENS and OPERATOR_TOKENS set (the requests then carry the operator's
token). For every operation of /openapi.json schemathesis sends its examples, boundary and
negative cases (the coverage phase), random valid and invalid requests (fuzzing), and TRACE and
OPTIONS to its path. Every answer must be: no 5xx; a documented status with the documented
media type, headers and body; a 4xx for what the description calls invalid, a 2xx (or 404,
409) for what it calls valid; 405 with a true `Allow` for a method the path does not have.
With tokens, a request without one or with a made-up one must be 401.

The description is built from the registered definitions; here from the bundled ones, as the
running system registers them at start, and the served document must be exactly it.

Bounded: a fixed seed, derandomized, SCHEMATHESIS_MAX_EXAMPLES (15) random cases per operation
(the coverage phase's cases are a fixed set), a `wait` cut to 0.2 s; the module takes about
a minute. A longer hunt
(SCHEMATHESIS_SEED=N for another seed):

    SCHEMATHESIS_MAX_EXAMPLES=1000 .venv/bin/pytest tests/e2e/test_schemathesis.py
"""
from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

schemathesis = pytest.importorskip(
    "schemathesis", reason="schemathesis is not installed (pip install -e '.[test]')")

from schemathesis import BaseSchema, Case, CheckFunction, Config  # noqa: E402
from schemathesis.specs.openapi.checks import positive_data_acceptance  # noqa: E402

from api.openapi import build_spec  # noqa: E402
from application.definitions_files import compile_definition_text  # noqa: E402
from tests.e2e.harness import Orchestrator, Participants  # noqa: E402

# Bare tokens, long enough for any token syntax: no `=`, `:` or `,` in them.
OPERATOR_TOKEN = "optoken0123456789abcdefXYZ"
CLIENT_TOKEN = "cltoken0123456789abcdefXYZ"
SEED = int(os.environ.get("SCHEMATHESIS_SEED", "20261202"))
MAX_EXAMPLES = int(os.environ.get("SCHEMATHESIS_MAX_EXAMPLES", "15"))


def _config(tokens: bool) -> Config:
    """Schemathesis's settings for one run, as its `schemathesis.toml` would hold them."""
    settings: dict[str, Any] = {
        "seed": SEED,
        "request-timeout": 40,  # `?wait` may take up to 30 s
        "generation": {"max-examples": MAX_EXAMPLES, "deterministic": True,
                       "database": "none"},
    }
    if tokens:
        settings["headers"] = {"Authorization": f"Bearer {OPERATOR_TOKEN}"}
    else:
        # No tokens configured: the description's bearer scheme is not enforced, so nothing is
        # to be learnt from leaving the header out or sending a made-up one.
        settings["generation"]["with-security-parameters"] = False
        settings["checks"] = {"ignored_auth": {"enabled": False},
                              "missing_required_header": {"enabled": False}}
    return Config.from_dict(settings)


# Built as /openapi.json builds it, from the bundled definitions (the fixtures check that the
# served document is this one): pytest needs the operations at collection time, before any
# server runs.
BUNDLED = Path(__file__).resolve().parents[2] / "definitions"
SPEC = build_spec(compile_definition_text(path.read_text(encoding="utf-8"))
                  for path in sorted(BUNDLED.glob("*.yaml")))
WITHOUT_TOKENS: BaseSchema = schemathesis.openapi.from_dict(SPEC, config=_config(tokens=False))
WITH_TOKENS: BaseSchema = schemathesis.openapi.from_dict(SPEC, config=_config(tokens=True))


def _serve(tmp: Path, **env: str) -> Iterator[str]:
    """Starts the participants and `orchestrator run`; yields the API's base URL."""
    participants = Participants(tmp)
    orchestrator = Orchestrator(tmp, participants, **env)
    try:
        participants.start()
        orchestrator.start()
        headers = ({"Authorization": f"Bearer {OPERATOR_TOKEN}"} if env.get("OPERATOR_TOKENS")
                   else {})
        served = requests.get(f"{orchestrator.url}/openapi.json", headers=headers, timeout=5)
        assert served.status_code == 200, served.text
        assert served.json() == json.loads(json.dumps(SPEC)), "/openapi.json is not api.openapi"
        yield orchestrator.url
    finally:
        orchestrator.kill()
        participants.kill()


@pytest.fixture(scope="module")
def system_without_tokens(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    yield from _serve(tmp_path_factory.mktemp("schemathesis-without-tokens"),
                      API_TOKENS="", OPERATOR_TOKENS="")


@pytest.fixture(scope="module")
def system_with_tokens(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    yield from _serve(tmp_path_factory.mktemp("schemathesis-with-tokens"),
                      API_TOKENS=CLIENT_TOKEN, OPERATOR_TOKENS=OPERATOR_TOKEN)


CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
WAIT_AT_MOST_S = 0.2  # a trip above the approval amount waits for a signal that never comes


def _call_and_validate(case: Case, base_url: str) -> None:
    excluded: list[CheckFunction] = []
    path = case.operation.path
    if path == "/workflows" and "after" in (case.query or {}):
        # A cursor is opaque: only one this API handed out is valid, and no schema can tell
        # which strings those are. Any other is a documented 400.
        excluded.append(positive_data_acceptance)
    if path == "/definitions/{name}" and case.method == "PUT":
        # What makes a definition valid (its steps name participants and steps that exist,
        # its expressions parse) is beyond a schema: a document that fits `type: object` is
        # a documented 422, with its errors.
        excluded.append(positive_data_acceptance)
    if path.endswith("/signals/{signal}") and CONTROL.search(
            json.dumps(case.body, ensure_ascii=False, default=str)):
        # A signal's body is any object, but no key or text in it may hold a control
        # character (a documented 422); OpenAPI 3.0 has no way to say so of keys.
        excluded.append(positive_data_acceptance)
    wait = (case.query or {}).get("wait")
    if isinstance(wait, (int, float)) and not isinstance(wait, bool) and wait > WAIT_AT_MOST_S:
        # Still a valid wait; only shorter, so that the module stays within seconds.
        case.query = {**(case.query or {}), "wait": WAIT_AT_MOST_S}
    case.call_and_validate(base_url=base_url, excluded_checks=excluded)


@WITHOUT_TOKENS.parametrize()
def test_without_tokens(case: Case, system_without_tokens: str) -> None:
    _call_and_validate(case, system_without_tokens)


@WITH_TOKENS.parametrize()
def test_with_an_operator_token(case: Case, system_with_tokens: str) -> None:
    _call_and_validate(case, system_with_tokens)
