"""A real browser (Debian's Chromium through Playwright) against the real server (gunicorn).

* A reporter with JavaScript disabled sends a concern, sees the token once,
  checks the status and replies, loading nothing from any other origin.
* Two reviewers: one signs in, opens the case, messages the reporter and
  proposes closure; the other confirms it.
* A reporter's XSS payload runs nowhere on the reviewer's page, with
  JavaScript enabled there (a dialog handler and a window flag watch for it).

Screenshots of the key pages go to test-artifacts/ (gitignored).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import need
from tests.support import server, services
from tests.support.factories import PASSWORD

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
XSS = ('<script>window.__xss = "script"; alert("script")</script>'
       '<img src=x onerror="window.__xss = \'img\'; alert(\'img\')">'
       '"><svg onload="window.__xss = \'svg\'"> {{7*7}}')


@pytest.fixture
def site(tmp_path: Path, database_url: str) -> Iterator[dict[str, Any]]:
    instance = server.new_instance(tmp_path / "instance", database_url)
    ids = {who: instance.add_reviewer(f"{who.title()} Reviewer", f"{who}@example.org", PASSWORD)
           for who in ("ann", "bob")}
    with server.gunicorn_server(instance, workers=2) as srv:
        yield {"server": srv, "base": srv.base_url, "ids": ids}


@pytest.fixture
def browser() -> Iterator[Any]:
    try:
        cm = services.chromium()
        launched = cm.__enter__()
    except services.ComponentMissing as exc:
        need("chromium", exc)
    try:
        yield launched
    finally:
        cm.__exit__(None, None, None)


def shot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def watch_origins(page: Any, base: str) -> list[str]:
    """Every URL the page asks for that is not on our origin."""
    foreign: list[str] = []
    page.on("request", lambda r: None if r.url.startswith(base) or r.url.startswith("data:")
            else foreign.append(r.url))
    return foreign


def send_concern(page: Any, base: str, details: str) -> str:
    page.goto(f"{base}/report")
    page.select_option("#category", "conduct")
    page.fill("#details", details)
    page.locator("form[action$='/report'] button[type=submit]:not([name=step])").first.click()
    page.wait_for_selector(".token-line")
    return str(page.inner_text(".token-line")).strip()


def sign_in(context: Any, base: str, who: str) -> Any:
    page = context.new_page()
    page.goto(f"{base}/reviewer/login")
    page.fill("#email", f"{who}@example.org")
    page.fill("#password", PASSWORD)
    page.locator("form[action$='/reviewer/login'] button[type=submit]").click()
    page.wait_for_url(re.compile(r".*/reviewer/?$"))
    return page


def open_case(page: Any, base: str, case_ref: str) -> None:
    page.goto(f"{base}/reviewer/")
    page.click(f"a[href$='/reviewer/cases/{case_ref}']")
    page.wait_for_selector("#details")


def case_ref_of(page: Any) -> str:
    found = re.search(r"WH(-[0-9A-Z]{4}){7}", page.content())
    assert found, "no case reference on the page"
    return found.group(0)


def test_reporter_journey_without_javascript(site: dict[str, Any], browser: Any) -> None:
    base = site["base"]
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    foreign = watch_origins(page, base)

    token = send_concern(page, base, "The ward rota was falsified last week.")
    words = token.split()
    assert len(words) == 12
    assert "Write these 12 words down" in page.content()
    shot(page, "reporter-token")
    case_ref = case_ref_of(page)

    page.goto(f"{base}/status")
    page.fill("#token", "-".join(words).upper())  # any case, dashes: still accepted
    page.locator("form[action$='/status'] button[type=submit]").first.click()
    page.wait_for_selector("#body")
    assert case_ref in page.content() and "received" in page.inner_text("main").lower()
    shot(page, "reporter-status")
    # The token is not shown again (it only travels back in hidden form fields).
    assert " ".join(words) not in page.inner_text("body")

    page.fill("#body", "One more thing: it happened twice.")
    page.locator("form:has(#body) button[type=submit]").click()
    page.wait_for_selector("#body")
    assert "it happened twice" in page.inner_text("main")
    shot(page, "reporter-reply")

    cookies = context.cookies()
    assert all(c["expires"] == -1 for c in cookies), cookies  # session cookies only
    assert all(c["httpOnly"] and c["sameSite"] == "Strict" for c in cookies)
    assert foreign == []
    context.close()


def test_reviewer_journey_two_reviewers_close_a_case(site: dict[str, Any], browser: Any) -> None:
    base = site["base"]
    reporter = browser.new_context(java_script_enabled=False).new_page()
    token = send_concern(reporter, base, "A manager shouts at pupils.")
    case_ref = case_ref_of(reporter)

    ann_context = browser.new_context(java_script_enabled=False)
    ann = sign_in(ann_context, base, "ann")
    foreign = watch_origins(ann, base)
    assert case_ref in ann.content()
    shot(ann, "reviewer-inbox")
    open_case(ann, base, case_ref)
    assert "A manager shouts at pupils." in ann.inner_text("#details")
    ann.fill("#msg-body", "Thank you. We are looking into it.")
    ann.locator("form:has(#msg-body) button[type=submit]").click()
    ann.wait_for_load_state("load")
    ann.wait_for_selector("#details")
    assert "We are looking into it." in ann.inner_text("main")
    ann.select_option("#outcome", "substantiated")
    ann.fill("#feedback", "We found that it happened and acted.")
    ann.locator("form.propose button[type=submit]").click()
    ann.locator("#confirm-form button[type=submit]").click()  # asked once more (issue 21)
    ann.wait_for_selector("#details")
    assert "closure proposed" in ann.inner_text("main").lower().replace("_", " ")
    assert ann.locator("form:has(input[name=to][value=closed]) button").count() == 0
    shot(ann, "reviewer-proposed")

    bob = sign_in(browser.new_context(java_script_enabled=True), base, "bob")
    open_case(bob, base, case_ref)
    bob.locator("form:has(input[name=to][value=closed]) button[type=submit]").click()
    bob.locator("#confirm-form button[type=submit]").click()  # asked once more (issue 21)
    bob.wait_for_selector("#details")
    shot(bob, "reviewer-closed")
    srv: server.Server = site["server"]
    status, signed = srv.json("POST", "/api/v1/auth/login",
                              {"email": "bob@example.org", "password": PASSWORD})
    status, case = srv.json("GET", f"/api/v1/cases/{case_ref}", None,
                            {"Authorization": "Bearer " + signed["access_token"]})
    assert status == 200 and case["status"] == "closed"

    reporter.goto(f"{base}/status")
    reporter.fill("#token", token)
    reporter.locator("form[action$='/status'] button[type=submit]").first.click()
    reporter.wait_for_load_state("load")
    reporter.wait_for_selector("main")
    text = reporter.inner_text("main")
    assert "We are looking into it." in text and "We found that it happened and acted." in text
    shot(reporter, "reporter-after-closure")
    assert foreign == []


def test_a_reporters_xss_payload_does_not_run_on_the_reviewers_page(
        site: dict[str, Any], browser: Any) -> None:
    base = site["base"]
    srv: server.Server = site["server"]
    status, receipt = srv.json("POST", "/api/v1/concerns", {
        "category": "conduct", "details": XSS,
        "identity": {"name": XSS[:200].replace("\n", " "), "contact": "x\" onmouseover=\"a",
                     "release": "to_reviewers"}})  # shown on the page at once (issue 22)
    assert status == 201, receipt
    status, _ = srv.json("POST", "/api/v1/status/messages",
                         {"token": receipt["token"], "body": XSS})
    assert status == 201

    context = browser.new_context(java_script_enabled=True)
    page = sign_in(context, base, "ann")
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    console: list[str] = []
    page.on("console", lambda m: console.append(m.text))
    open_case(page, base, receipt["case_ref"])
    page.wait_for_timeout(500)
    page.hover("#details")
    assert page.evaluate("typeof window.__xss") == "undefined"
    assert dialogs == []
    assert XSS in page.inner_text("#details")  # shown, as text
    assert page.locator("#details script, #details img, #details svg").count() == 0
    assert page.evaluate("document.querySelectorAll('script').length") == 0
    shot(page, "reviewer-xss-inert")
    context.close()
