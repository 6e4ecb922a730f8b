"""The console in a real browser (Debian's headless Chromium), against `orchestrator run` and
the demo participants started by the test, with client and operator tokens configured.

What an operator does, checked where a user would check it: in the page, in the API's audit,
and in the effects counted at the participants. Each test ends with a screenshot."""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests

from tests.e2e import browser
from tests.e2e.harness import ORDER, Orchestrator, Participants, wait_until

CLIENT = "client-token-0123456789abcdef"
OPERATOR = "operator-token-0123456789abcdef"
DATES = {"depart": "2030-06-01", "return": "2030-06-08"}


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Participants, Orchestrator]]:
    browser.require_browser()
    tmp = tmp_path_factory.mktemp("console")
    participants = Participants(tmp).start()
    orchestrator = Orchestrator(tmp, participants, API_TOKENS=f"shop:{CLIENT}",
                                OPERATOR_TOKENS=f"alice:{OPERATOR}").start()
    yield participants, orchestrator
    orchestrator.kill()
    participants.kill()


@pytest.fixture
def participants(system: tuple[Participants, Orchestrator]) -> Iterator[Participants]:
    system[0].faults({})
    yield system[0]
    system[0].faults({})


@pytest.fixture
def orchestrator(system: tuple[Participants, Orchestrator]) -> Orchestrator:
    return system[1]


@pytest.fixture
def driver(request: pytest.FixtureRequest) -> Iterator[Any]:
    browser.require_browser()
    d = browser.start()
    yield d
    try:
        browser.screenshot(d, request.node.name)
    finally:
        d.quit()


def api(orchestrator: Orchestrator, method: str, path: str, token: str = OPERATOR,
        **kw: Any) -> requests.Response:
    return requests.request(method, orchestrator.url + path, timeout=30,
                            headers={"Authorization": f"Bearer {token}"}, **kw)


def start_order(orchestrator: Orchestrator, key: str) -> str:
    answer = api(orchestrator, "POST", f"/orders/{key}/orchestrate", json=ORDER)
    assert answer.status_code in (200, 201, 202), answer.text
    return str(answer.json()["workflowId"])


def until_status(orchestrator: Orchestrator, wid: str, status: str) -> dict[str, Any]:
    return wait_until(
        lambda: (s := api(orchestrator, "GET", f"/workflows/{wid}").json())["status"] == status
        and s, 30, f"{wid} to be {status}")


def audit(orchestrator: Orchestrator, wid: str) -> list[dict[str, Any]]:
    return list(api(orchestrator, "GET", f"/workflows/{wid}/audit").json()["events"])


def sign_in(driver: Any, orchestrator: Orchestrator, token: str) -> None:
    from selenium.webdriver.common.by import By

    driver.get(orchestrator.url + "/")
    browser.until(driver, lambda d: "/console/login" in d.current_url, what="the sign-in form")
    driver.find_element(By.ID, "token").send_keys(token)
    driver.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
    browser.until(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "table.list"),
                  what="the workflow list")


def stuck_order(participants: Participants, orchestrator: Orchestrator, key: str) -> str:
    """An order whose shipment is refused and whose refund keeps failing: COMPENSATION_FAILED
    (the faults stay on until the test mends them)."""
    participants.faults({"ship": {"status": 422}, "refund": {"status": 500}})
    wid = start_order(orchestrator, key)
    until_status(orchestrator, wid, "COMPENSATION_FAILED")
    return wid


def waiting_trip(orchestrator: Orchestrator, key: str) -> str:
    """A trip above the approval amount, once it waits for its approver."""
    trip = {"from": "LIS", "to": "NRT", "dates": DATES, "cents": 250_000}
    answer = api(orchestrator, "POST", f"/definitions/trip/workflows/{key}", json=trip)
    wid = str(answer.json()["workflowId"])
    until_status(orchestrator, wid, "WAITING")
    return wid


def open_as_operator(driver: Any, orchestrator: Orchestrator, wid: str) -> None:
    sign_in(driver, orchestrator, OPERATOR)
    driver.get(f"{orchestrator.url}/console/workflows/{wid}")


def state_of(driver: Any, step: str) -> str:
    from selenium.webdriver.common.by import By

    return str(browser.until(driver, lambda d: d.find_element(
        By.CSS_SELECTOR, f"#diagram g.step[data-step='{step}']").get_attribute("data-state"),
        what=f"the diagram's {step}"))


def test_a_failed_order_shows_its_undone_step_and_its_compensation_bar(
        driver: Any, participants: Participants, orchestrator: Orchestrator) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    participants.faults({"reserve": {"status": 422}})
    wid = start_order(orchestrator, "console-failed-1")
    until_status(orchestrator, wid, "FAILED")
    sign_in(driver, orchestrator, OPERATOR)

    Select(driver.find_element(By.ID, "f-status")).select_by_visible_text("FAILED")
    driver.find_element(By.CSS_SELECTOR, "form.filters button[type=submit]").click()
    # The URL changes when the filtered page commits, before its rows may be there.
    rows = browser.until(driver, lambda d: "status=FAILED" in d.current_url and d.find_elements(
        By.CSS_SELECTOR, "table.list tbody tr[data-workflow]"), what="the filtered list")
    assert rows and {r.get_attribute("data-status") for r in rows} == {"FAILED"}
    browser.screenshot(driver, "workflows-filtered")
    browser.act(driver, lambda d: d.find_element(By.CSS_SELECTOR,
                                                 f"tr[data-workflow='{wid}'] a").click())

    browser.until(driver, lambda d: d.find_elements(By.ID, "diagram"), what="the workflow")
    assert browser.until(driver, lambda d: d.find_element(By.ID, "status").text) == "FAILED"
    assert state_of(driver, "charge") == "undone"
    assert state_of(driver, "reserve") == "failed"
    assert state_of(driver, "ship") == "pending"
    undo = driver.find_elements(By.CSS_SELECTOR, "#timeline rect[data-kind='undo']")
    assert [(b.get_attribute("data-lane"), b.get_attribute("data-outcome")) for b in undo] == [
        ("charge", "ok")]
    assert driver.find_element(By.CSS_SELECTOR, "tr[data-action='refund']")
    assert participants.effects("console-failed-1") == {"charge": 1, "refund": 1}


def test_an_operator_retries_a_failed_compensation_from_the_page(
        driver: Any, participants: Participants, orchestrator: Orchestrator) -> None:
    from selenium.webdriver.common.by import By

    wid = stuck_order(participants, orchestrator, "console-stuck-1")
    open_as_operator(driver, orchestrator, wid)
    assert state_of(driver, "charge") == "owed"
    assert state_of(driver, "reserve") == "undone"
    browser.screenshot(driver, "workflow-compensation-failed")

    participants.faults({})  # the payment service is mended
    def retry(d: Any) -> None:
        d.find_element(By.ID, "retry-reason").send_keys("refunds are back (INC-42)")
        d.find_element(By.CSS_SELECTOR, "#retry-form button").click()

    browser.act(driver, retry, "the retry")
    browser.until(driver, lambda d: "Retry accepted" in d.find_element(By.CLASS_NAME,
                                                                        "flashes").text,
                  what="the retry's confirmation")
    browser.until(driver, lambda d: d.find_element(By.ID, "status").text == "FAILED",
                  what="the page to show FAILED without a reload")
    assert state_of(driver, "charge") == "undone"
    retry = [e for e in audit(orchestrator, wid) if e["type"] == "RetryRequested"]
    assert [(e["data"]["by"], e["data"]["reason"]) for e in retry] == [
        ("alice", "refunds are back (INC-42)")]
    assert participants.effects("console-stuck-1") == {
        "charge": 1, "reserve": 1, "release": 1, "refund": 1}


def test_an_operator_approves_a_waiting_trip_from_the_page(
        driver: Any, participants: Participants, orchestrator: Orchestrator) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    wid = waiting_trip(orchestrator, "console-trip-1")
    open_as_operator(driver, orchestrator, wid)
    assert state_of(driver, "approval") == "waiting"
    assert state_of(driver, "flight") == state_of(driver, "hotel") == "done"
    assert state_of(driver, "car") == "skipped"

    def approve(d: Any) -> None:
        Select(d.find_element(By.ID, "signal-name")).select_by_visible_text("approve")
        d.find_element(By.CSS_SELECTOR, "#signal-form button").click()

    browser.act(driver, approve, "the approval")
    browser.until(driver, lambda d: d.find_element(By.ID, "status").text == "COMPLETED",
                  what="the trip to complete")
    assert state_of(driver, "approval") == "done"
    browser.screenshot(driver, "workflow-trip")
    signalled = [e["data"] for e in audit(orchestrator, wid) if e["type"] == "Signalled"]
    assert signalled == [{"signal": "approve", "body": {"by": "alice"}}]
    assert participants.effects("console-trip-1") == {
        "flight": 1, "hotel": 1, "charge": 1, "confirm": 1}


def test_a_client_token_reads_and_finds_no_action(
        driver: Any, participants: Participants, orchestrator: Orchestrator) -> None:
    from selenium.webdriver.common.by import By

    wid = stuck_order(participants, orchestrator, "console-client-1")
    sign_in(driver, orchestrator, CLIENT)
    assert not driver.find_elements(By.CSS_SELECTOR, "input[name=id], fieldset.bulk")
    driver.get(f"{orchestrator.url}/console/workflows/{wid}")
    assert browser.until(driver, lambda d: d.find_element(By.ID, "status").text,
                         ) == "COMPENSATION_FAILED"
    assert not driver.find_elements(By.CSS_SELECTOR, "form.action, #retry-form")
    assert "shop" in driver.find_element(By.CLASS_NAME, "who").text

    # Even with the page's own CSRF token, a client's POST is refused.
    cookies = {c["name"]: c["value"] for c in driver.get_cookies()}
    forged = requests.post(f"{orchestrator.url}/console/workflows/{wid}/retry", timeout=10,
                           cookies=cookies, allow_redirects=False,
                           data={"csrf": _csrf(driver), "reason": "x"})
    assert forged.status_code == 403
    assert "RetryRequested" not in [e["type"] for e in audit(orchestrator, wid)]


def _csrf(driver: Any) -> str:
    from selenium.webdriver.common.by import By

    return str(driver.find_element(By.CSS_SELECTOR, "input[name=csrf]").get_attribute("value"))


def test_a_post_without_the_csrf_token_is_refused_and_changes_nothing(
        driver: Any, participants: Participants, orchestrator: Orchestrator) -> None:
    from selenium.webdriver.common.by import By

    wid = waiting_trip(orchestrator, "console-csrf-1")
    open_as_operator(driver, orchestrator, wid)
    cookies = {c["name"]: c["value"] for c in driver.get_cookies()}
    for data in ({}, {"csrf": "not-the-token"}):
        forged = requests.post(f"{orchestrator.url}/console/workflows/{wid}/cancel",
                               cookies=cookies, data=data, timeout=10, allow_redirects=False)
        assert forged.status_code == 403
    # Another site's page cannot send the cookie at all (SameSite=Strict) ...
    console_cookie = next(c for c in driver.get_cookies() if c["name"] == "console")
    assert console_cookie["sameSite"] == "Strict" and console_cookie["httpOnly"]
    # ... and the token itself is in no URL the browser visited.
    assert OPERATOR not in driver.current_url
    assert "CancelRequested" not in [e["type"] for e in audit(orchestrator, wid)]
    assert api(orchestrator, "GET", f"/workflows/{wid}").json()["status"] == "WAITING"
    # The real form, with its token, works: the bookings are undone.
    browser.act(driver, lambda d: d.find_element(By.CSS_SELECTOR, "#cancel-form button").click())
    browser.until(driver, lambda d: d.find_element(By.ID, "status").text == "CANCELLED",
                  what="the cancel to end CANCELLED")
    assert participants.effects("console-csrf-1") == {
        "flight": 1, "hotel": 1, "cancel_flight": 1, "cancel_hotel": 1}


def test_signing_out_ends_the_session(driver: Any, orchestrator: Orchestrator) -> None:
    from selenium.webdriver.common.by import By

    sign_in(driver, orchestrator, OPERATOR)
    kept = {c["name"]: c["value"] for c in driver.get_cookies()}
    driver.find_element(By.CSS_SELECTOR, ".who button").click()
    browser.until(driver, lambda d: "/console/login" in d.current_url, what="the sign-in form")
    driver.get(f"{orchestrator.url}/console/")
    assert "/console/login" in driver.current_url
    # A wrong token is told so, and gets no session.
    driver.find_element(By.ID, "token").send_keys("wrong-token-0123456789abcdef")
    driver.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
    # The click submits a form: the answer is a new page, waited for, not the old one read.
    assert "not known" in browser.until(
        driver, lambda d: d.find_element(By.CSS_SELECTOR, "[role=alert]").text,
        what="the refusal")
    # A copy of the cookie taken before signing out opens nothing either.
    page = requests.get(f"{orchestrator.url}/console/", cookies=kept, timeout=10,
                        allow_redirects=False)
    assert page.status_code == 302 and "/console/login" in page.headers["Location"]


def test_the_tour_definitions_health_and_a_phone(
        driver: Any, participants: Participants, orchestrator: Orchestrator) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    wid = start_order(orchestrator, "console-tour-1")
    until_status(orchestrator, wid, "COMPLETED")
    sign_in(driver, orchestrator, OPERATOR)
    browser.screenshot(driver, "workflows")

    driver.get(f"{orchestrator.url}/console/definitions")
    driver.find_element(By.LINK_TEXT, "trip").click()
    steps = browser.until(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "g.step"),
                          what="the trip's diagram")
    assert {s.get_attribute("data-step") for s in steps} >= {
        "flight", "hotel", "car", "approval", "charge", "confirm"}
    browser.screenshot(driver, "definition-trip")

    driver.get(f"{orchestrator.url}/console/health")
    payment = driver.find_element(By.CSS_SELECTOR, "tr[data-participant='payment']")
    assert payment.find_element(By.CSS_SELECTOR, "[data-breaker]").text == "closed"
    browser.screenshot(driver, "health")

    # The keyboard reaches a timeline bar, and its detail is read out.
    driver.get(f"{orchestrator.url}/console/workflows/{wid}")
    body = driver.find_element(By.TAG_NAME, "body")
    body.send_keys(Keys.TAB)  # the skip link comes first
    assert driver.switch_to.active_element.text == "Skip to content"
    bar = driver.find_element(By.CSS_SELECTOR, "#timeline rect[data-lane='charge']")
    driver.execute_script("arguments[0].focus()", bar)
    browser.until(driver, lambda d: "charge" in d.find_element(By.ID, "bar-detail").text,
                  what="the bar's detail")
    assert wid in driver.find_element(By.ID, "bar-detail").text  # its idempotency key
    browser.screenshot(driver, "workflow-completed")

    driver.set_window_size(390, 844)  # a phone
    driver.get(f"{orchestrator.url}/console/")
    wide = driver.execute_script(
        "return document.documentElement.scrollWidth > window.innerWidth + 1")
    assert not wide, "the list page scrolls sideways at phone width"

