"""axe-core on the pages the later issues added (issue 21: "zero serious or critical findings
on every page, including the new ones"): receipts (/verify), a held concern's status page
(escrow), the token-change page of an operator-issued token, the operator's form, the case's
referrals page, the agencies page, and a named case's identity section. Each page is also
checked to be the page meant (a redirect to sign-in would pass axe and prove nothing)."""

from __future__ import annotations

from typing import Any

from flask import Flask
from flask.testing import FlaskClient

from tests.support.factories import login, make_operator, make_reviewer
from tests.test_accessibility import browser, live, serious_violations, sign_in  # noqa: F401


def _status_page(page: Any, base: str, token: str) -> None:
    page.goto(f"{base}/status")
    page.fill("#token", token)
    page.click("button[type=submit]")
    page.wait_for_load_state("load")  # the status page itself, not the form still showing


def test_the_new_reporter_pages_have_no_serious_findings(
        app: Flask, client: FlaskClient, live: str, browser: Any) -> None:  # noqa: F811
    make_reviewer(app, "Ann Reviewer", admin=True), make_reviewer(app, "Bob Reviewer")
    operator = make_operator(app, "Olga Operator")
    held = client.post("/api/v1/concerns", json={
        "category": "conduct", "details": "Held until someone else speaks.",
        "about": {"email": "pat.smith@example.org"}, "escrow": True}).get_json()
    assert held["status"] == "escrowed"
    by_phone = client.post("/api/v1/operator/concerns", headers=login(client, operator), json={
        "category": "conduct", "details": "Taken by phone.", "channel": "phone"}).get_json()
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    found: dict[str, list[str]] = {}
    for lang in ("en", "ar"):
        page.goto(f"{live}/verify?lang={lang}")
        assert page.locator("textarea").count() >= 1
        found[f"verify {lang}"] = serious_violations(page)
    _status_page(page, live, held["token"])
    assert "held" in page.content().lower()
    found["held status"] = serious_violations(page)
    _status_page(page, live, by_phone["token"])
    assert page.locator("form[action$='/status/token']").count() >= 1, page.content()[:500]
    found["token change"] = serious_violations(page)
    assert {name: v for name, v in found.items() if v} == {}


def test_the_new_reviewer_operator_and_admin_pages_have_no_serious_findings(
        app: Flask, client: FlaskClient, live: str, browser: Any) -> None:  # noqa: F811
    ann = make_reviewer(app, "Ann Reviewer", admin=True)
    make_reviewer(app, "Bob Reviewer")
    operator = make_operator(app, "Olga Operator")
    named = client.post("/api/v1/concerns", json={
        "category": "conduct", "details": "A named concern.",
        "identity": {"name": "Rae Reporter", "role": "Nurse"}}).get_json()
    assert named["status"] == "received" and named["reviewer_count"] >= 2
    ref = named["case_ref"]
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    found: dict[str, list[str]] = {}
    sign_in(page, live, operator)
    page.goto(f"{live}/operator")
    assert page.url.endswith("/operator") and page.locator("input[name=channel]").count() == 4
    found["operator form"] = serious_violations(page)
    page.context.clear_cookies()
    sign_in(page, live, ann)
    for path in (f"/reviewer/cases/{ref}", f"/reviewer/cases/{ref}/referrals", "/admin/agencies",
                 f"/reviewer/cases/{ref}?lang=pl"):
        page.goto(f"{live}{path}")
        assert page.url.endswith(path), (path, page.url)
        found[path] = serious_violations(page)
    page.goto(f"{live}/reviewer/cases/{ref}")
    assert "Rae Reporter" not in page.content()  # sealed apart until two agree (issue 22)
    assert {name: v for name, v in found.items() if v} == {}


def test_the_confirmation_changes_roster_and_identity_pages_have_no_serious_findings(
        app: Flask, client: FlaskClient, live: str, browser: Any) -> None:  # noqa: F811
    """The pages a consequential action passes through (issue 21: disable, step off), pending
    changes, the public roster, the enrolment form, and the status page's "give my name"
    form: each reached as a user reaches it, checked to be that page, then run through axe."""
    ann = make_reviewer(app, "Ann Reviewer", admin=True)
    make_reviewer(app, "Bob Reviewer")
    sent = client.post("/api/v1/concerns", json={
        "category": "conduct", "details": "An anonymous concern."}).get_json()
    ref = sent["case_ref"]
    assert sent["reviewer_count"] == 2  # Ann is one of its two reviewers
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    found: dict[str, list[str]] = {}
    for path in ("/roster", "/roster?lang=ar"):
        page.goto(f"{live}{path}")
        assert page.url.endswith(path) and "Ann Reviewer" in page.content()
        found[path] = serious_violations(page)
    _status_page(page, live, sent["token"])
    assert page.locator("form[action$='/status/identity']").count() == 1
    page.locator("#identity summary").click()  # open the form, as a reporter would
    assert page.locator("#later-name").is_visible()
    found["give my name"] = serious_violations(page)

    sign_in(page, live, ann)
    page.goto(f"{live}/admin/reviewers/new")
    assert page.locator("#operator").count() == 1
    found["enrol a reviewer"] = serious_violations(page)
    page.goto(f"{live}/admin/")
    page.locator("form[action$='/disable'] button").first.click()
    page.wait_for_url("**/disable")
    assert page.locator("input[name=step][value=ask]").count() == 0  # the question itself
    found["confirm disable"] = serious_violations(page)
    page.goto(f"{live}/reviewer/changes")
    assert page.url.endswith("/reviewer/changes")
    found["changes"] = serious_violations(page)
    page.goto(f"{live}/reviewer/cases/{ref}")
    page.fill("#recuse-reason", "I know the person.")
    page.locator("form:has(#recuse-reason) button[type=submit]").click()
    page.wait_for_url("**/recuse")
    found["confirm step off"] = serious_violations(page)
    assert {name: v for name, v in found.items() if v} == {}
