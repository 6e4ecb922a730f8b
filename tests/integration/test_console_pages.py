"""The console's pages and access through Flask's test client, over a real system (the real
projection, on SQLite and on PostgreSQL) and stored histories: sign-in, sessions, CSRF, roles,
what each page shows, and what each form records."""
from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from flask.testing import FlaskClient

from api.app import create_app
from infrastructure.bootstrap import System, bootstrap
from tests import histories
from tests.fakes import FakeParticipants
from tests.ops import projected, settings_for

CLIENT = "client-token-0123456789abcdef"
OPERATOR = "operator-token-0123456789abcdef"


@pytest.fixture
def system(database_url: str) -> Iterator[System]:
    settings = settings_for(database_url)
    settings = type(settings)(**{**vars(settings), "api_tokens": (("shop", CLIENT),),
                                 "operator_tokens": (("alice", OPERATOR),)})
    fake = FakeParticipants()
    built = bootstrap(settings, participants=fake).start_worker()
    try:
        yield built
    finally:
        fake.release_all()
        built.stop(grace_s=2.0)


@pytest.fixture
def stored(system: System) -> dict[str, str]:
    """One workflow of each shape, by shape: completed, failed, stuck, cancelled."""
    shapes = {"completed": histories.completed, "failed": histories.failed,
              "stuck": histories.compensation_failed, "cancelled": histories.cancelled}
    found = {}
    for shape, finish in shapes.items():
        workflow = histories.order(f"page-{shape}")
        finish(workflow)
        system.workflows.save(workflow)
        found[shape] = str(workflow.id)
    projected(system)
    return found


def client_of(system: System) -> FlaskClient:
    return create_app(system).test_client()


def csrf(page: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found, "the page has no CSRF field"
    return found.group(1)


def signed_in(system: System, token: str) -> FlaskClient:
    client = client_of(system)
    form = client.get("/console/login").get_data(as_text=True)
    answer = client.post("/console/login", data={"csrf": csrf(form), "token": token,
                                                 "next": "/console/"})
    assert answer.status_code == 302 and answer.headers["Location"] == "/console/"
    return client


def stored_events(system: System, wid: str) -> list[Any]:
    """The workflow's events as stored (the views may not have them yet)."""
    return list(system.workflows.repository.event_store.get(uuid.UUID(wid)))


def types(system: System, wid: str) -> list[str]:
    return [e.type for e in system.views.audit(wid)]


@pytest.mark.parametrize("accept,status", [("text/html,*/*;q=0.8", 302),
                                           ("application/json", 404), ("*/*", 404)])
def test_the_root_sends_a_browser_to_the_console_and_an_api_client_a_problem(
        system: System, accept: str, status: int) -> None:
    answer = client_of(system).get("/", headers={"Accept": accept})
    assert answer.status_code == status
    if status == 302:
        assert answer.headers["Location"] == "/console/"
    else:
        assert answer.mimetype == "application/problem+json"


def test_pages_ask_for_a_sign_in_and_the_session_cookie_is_strict(system: System) -> None:
    client = client_of(system)
    first = client.get("/console/workflows/" + str(uuid.uuid4()))
    assert first.status_code == 302 and first.headers["Location"].startswith("/console/login")
    form = client.get("/console/login").get_data(as_text=True)
    refused = client.post("/console/login", data={"token": OPERATOR})  # no CSRF token
    assert refused.status_code == 403
    wrong = client.post("/console/login", data={"csrf": csrf(form), "token": CLIENT + "x"})
    assert wrong.status_code == 401 and "not known" in wrong.get_data(as_text=True)
    ok = client.post("/console/login", data={"csrf": csrf(form), "token": OPERATOR})
    assert ok.status_code == 302
    cookie = ok.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Secure" not in cookie
    assert OPERATOR not in cookie  # the token is never in the cookie
    page = client.get("/console/")
    assert "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]
    assert page.headers["Cache-Control"] == "no-store"
    secure = client_of(system)
    page = secure.get("/console/login", base_url="https://console.example")
    answer = secure.post("/console/login", base_url="https://console.example",
                         data={"csrf": csrf(page.get_data(as_text=True)), "token": OPERATOR})
    assert "Secure" in answer.headers["Set-Cookie"]


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example/console/",
                                    "/api-elsewhere", "/console/\\evil"])
def test_a_sign_in_never_sends_the_browser_to_another_site(system: System, target: str) -> None:
    client = client_of(system)
    form = client.get("/console/login").get_data(as_text=True)
    answer = client.post("/console/login", data={"csrf": csrf(form), "token": OPERATOR,
                                                 "next": target})
    assert answer.headers["Location"] == "/console/"


def test_signing_out_ends_the_session_even_for_a_copied_cookie(system: System) -> None:
    client = signed_in(system, OPERATOR)
    cookie = client.get_cookie("console")
    assert cookie is not None
    page = client.get("/console/").get_data(as_text=True)
    assert client.post("/console/logout", data={"csrf": csrf(page)}).status_code == 302
    thief = client_of(system)
    thief.set_cookie("console", cookie.value)
    assert thief.get("/console/").status_code == 302


def test_the_list_counts_filters_and_pages(system: System, stored: dict[str, str]) -> None:
    client = signed_in(system, CLIENT)
    page = client.get("/console/").get_data(as_text=True)
    for wid in stored.values():
        assert f'data-workflow="{wid}"' in page
    assert re.search(r'data-status="FAILED">FAILED <b>1</b>', page)
    assert re.search(r'data-status="COMPENSATION_FAILED">COMPENSATION_FAILED <b>1</b>', page)
    failed = client.get("/console/?status=FAILED").get_data(as_text=True)
    assert re.findall(r'data-workflow="([^"]+)"', failed) == [stored["failed"]]
    by_key = client.get("/console/?key=page-stuck&definition=order").get_data(as_text=True)
    assert re.findall(r'data-workflow="([^"]+)"', by_key) == [stored["stuck"]]
    later = client.get("/console/?from=2999-01-01T00:00").get_data(as_text=True)
    assert "No workflow matches." in later
    bad = client.get("/console/?status=<script>")
    assert bad.status_code == 400 and "<script>" not in bad.get_data(as_text=True)
    assert client.get("/console/?after=bm90LWEtY3Vyc29y").status_code == 400


def test_a_workflow_page_shows_its_saga_timeline_calls_and_events(
        system: System, stored: dict[str, str]) -> None:
    client = signed_in(system, OPERATOR)
    wid = stored["stuck"]
    page = client.get(f"/console/workflows/{wid}").get_data(as_text=True)
    assert 'data-step="charge" data-state="owed"' in page
    assert 'data-step="reserve" data-state="failed"' in page
    assert 'data-step="ship" data-state="pending"' in page
    assert f"{wid}:charge" in page and uuid.UUID(wid).hex in page  # key and trace id
    assert 'id="retry-form"' in page and 'id="cancel-form"' not in page
    for kind in types(system, wid):
        assert f'data-type="{kind}"' in page
    done = client.get(f"/console/workflows/{stored['completed']}").get_data(as_text=True)
    assert 'id="retry-form"' not in done and 'data-live="' not in done
    missing = client.get(f"/console/workflows/{uuid.uuid4()}")
    assert missing.status_code == 404 and "text/html" in missing.content_type


def test_an_operator_retries_with_a_reason_and_a_client_cannot(
        system: System, stored: dict[str, str]) -> None:
    wid = stored["stuck"]
    reader = signed_in(system, CLIENT)
    page = reader.get(f"/console/workflows/{wid}").get_data(as_text=True)
    assert 'id="retry-form"' not in page
    refused = reader.post(f"/console/workflows/{wid}/retry",
                          data={"csrf": csrf(page), "reason": "no"})
    assert refused.status_code == 403
    assert "RetryRequested" not in types(system, wid)

    operator = signed_in(system, OPERATOR)
    page = operator.get(f"/console/workflows/{wid}").get_data(as_text=True)
    answer = operator.post(f"/console/workflows/{wid}/retry",
                           data={"csrf": csrf(page), "reason": "refunds are back"})
    assert answer.status_code == 302 and answer.headers["Location"].endswith(wid)
    retry = [e for e in stored_events(system, wid) if type(e).__name__ == "RetryRequested"]
    assert [(e.by, e.reason) for e in retry] == [("alice", "refunds are back")]
    shown = operator.get(f"/console/workflows/{wid}").get_data(as_text=True)
    assert "Retry accepted." in shown


def test_bulk_cancel_says_what_it_could_not_do(system: System, stored: dict[str, str]) -> None:
    operator = signed_in(system, OPERATOR)
    page = operator.get("/console/").get_data(as_text=True)
    answer = operator.post("/console/workflows/bulk", follow_redirects=True, data={
        "csrf": csrf(page), "action": "cancel", "reason": "",
        "id": [stored["completed"], "not-an-id"], "back": "/console/?status=COMPLETED"})
    text = answer.get_data(as_text=True)
    assert "Cancel accepted for 0 workflow(s)." in text
    assert f"{stored['completed']}: not allowed while COMPLETED" in text
    assert "not-an-id: not a workflow id" in text


def test_a_forged_form_without_the_csrf_token_changes_nothing(
        system: System, stored: dict[str, str]) -> None:
    operator = signed_in(system, OPERATOR)
    wid = stored["stuck"]
    for data in ({"reason": "x"}, {"reason": "x", "csrf": "guess"}):
        assert operator.post(f"/console/workflows/{wid}/retry", data=data).status_code == 403
    assert "RetryRequested" not in [type(e).__name__ for e in stored_events(system, wid)]


def test_definitions_show_versions_counts_and_what_changed(
        system: System, stored: dict[str, str]) -> None:
    document: dict[str, Any] = dict(histories.ORDER.document)
    changed = {**document, "description": "The order saga, described anew."}
    system.definitions.register(changed)
    client = signed_in(system, CLIENT)
    listing = client.get("/console/definitions").get_data(as_text=True)
    assert 'data-definition="order"' in listing and 'data-definition="trip"' in listing
    page = client.get("/console/definitions/order").get_data(as_text=True)
    assert 'data-version="2"' in page and 'data-version="1"' in page
    assert re.search(r'data-version="1".*?data-status="FAILED">FAILED 1', page, re.S)
    assert '<span class="add">+description: The order saga, described anew.</span>' in page
    assert 'data-step="charge"' in page
    assert client.get("/console/definitions/order?version=9").status_code == 400
    assert client.get("/console/definitions/nope").status_code == 404
