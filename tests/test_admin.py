"""Issue 3, administration (/admin): accounts and form settings without any case content;
an excluded administrator sees no trace of the case; reviewers get 403; CSRF on every POST.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select, update

from tests.support.factories import PASSWORD, login, make_reviewer, submit_concern
from tests.support.webflow import csrf, marker, post_form, sign_in
from whistle.store import db
from whistle.store.models import Assignment, Concern, Reviewer, ReviewerSession, WrappedKey, utcnow


@pytest.fixture
def admin(app: Flask) -> dict[str, str]:
    return make_reviewer(app, "Ada Admin", admin=True, reviews=False)


@pytest.fixture
def two(app: Flask) -> list[dict[str, str]]:
    return [make_reviewer(app, "Ann Reviewer"), make_reviewer(app, "Bob Reviewer")]


ADMIN_GETS = ["/admin/", "/admin/reviewers/new", "/admin/settings"]


def admin_posts(reviewer_id: str) -> list[str]:
    return ["/admin/reviewers", f"/admin/reviewers/{reviewer_id}",
            f"/admin/reviewers/{reviewer_id}/disable", "/admin/settings"]


def test_reviewers_get_403_and_strangers_are_sent_to_sign_in(
        app: Flask, client: FlaskClient, two: list[dict[str, str]]) -> None:
    browser = sign_in(app, two[0])
    token = csrf(browser, "/reviewer/")
    for path in ADMIN_GETS + [f"/admin/reviewers/{two[1]['id']}"]:
        assert browser.get(path).status_code == 403, path
        assert client.get(path).status_code == 302, path
    for path in admin_posts(two[1]["id"]):
        response = browser.post(path, data={"csrf_token": token, "admin": "yes",
                                             "name": "Mallory", "email": "m@example.org"})
        assert response.status_code == 403, path
    with db.new_session(app) as s:
        assert s.get(Reviewer, two[1]["id"]).active  # type: ignore[union-attr]
        assert s.scalars(select(Reviewer).where(Reviewer.email == "m@example.org")).first() is None
    assert 'href="/admin/"' not in browser.get("/reviewer/").get_data(as_text=True)


def test_every_admin_post_needs_the_csrf_token(app: Flask, admin: dict[str, str],
                                               two: list[dict[str, str]]) -> None:
    browser = sign_in(app, admin)
    for path in admin_posts(two[0]["id"]):
        response = browser.post(path, data={"name": "Eve", "email": "eve@example.org",
                                            "categories": "x | X", "units": ""})
        assert response.status_code == 400, path
        assert "This form expired or did not come from Whistle" in response.get_data(True)
    with db.new_session(app) as s:
        assert s.get(Reviewer, two[0]["id"]).active  # type: ignore[union-attr]
        assert s.scalars(select(Reviewer).where(Reviewer.email == "eve@example.org")).first() \
            is None


def test_admin_enrols_a_reviewer_with_a_generated_password_shown_once_which_must_be_replaced(
        app: Flask, client: FlaskClient, admin: dict[str, str]) -> None:
    browser = sign_in(app, admin)
    response = post_form(browser, "/admin/reviewers", {
        "name": "Nia New", "email": "Nia@Example.org", "units": ["Education", "Health"],
        "independent": "yes"}, "/admin/reviewers/new")
    assert response.status_code == 201
    first = re.search(r'<code id="first-password">([^<]+)</code>', response.get_data(True))
    assert first
    password = first.group(1)
    assert password not in browser.get("/admin/").get_data(as_text=True)
    with db.new_session(app) as s:
        nia = s.scalars(select(Reviewer).where(Reviewer.email == "nia@example.org")).one()
        assert json.loads(nia.units) == ["Education", "Health"] and nia.is_independent
        assert not nia.is_admin and not nia.is_senior and nia.is_reviewer

    # The administrator knows that password: until Nia replaces it she can do nothing else.
    nia_login = {"email": "nia@example.org", "password": password}
    nia_browser = sign_in(app, nia_login)
    for path in ("/reviewer/", "/reviewer/account/totp"):
        assert nia_browser.get(path).headers["Location"].endswith("/reviewer/account")
    assert "Choose your own before you do anything else" in nia_browser.get(
        "/reviewer/account").get_data(as_text=True)
    api = login(client, nia_login)
    blocked = client.get("/api/v1/cases", headers=api)
    assert blocked.status_code == 403 and blocked.get_json()["error"] == "account_setup_required"

    changed = post_form(nia_browser, "/reviewer/account/password",
                        {"old": password, "new": "nias own long passphrase"}, "/reviewer/account")
    assert changed.status_code == 302
    nia_browser = sign_in(app, {"email": "nia@example.org",
                                "password": "nias own long passphrase"})
    assert nia_browser.get("/reviewer/").status_code == 200


def test_admin_enrols_with_a_password_they_type_and_bad_forms_keep_their_values(
        app: Flask, client: FlaskClient, admin: dict[str, str], two: list[dict[str, str]]
) -> None:
    browser = sign_in(app, admin)
    ok = post_form(browser, "/admin/reviewers", {
        "name": "Sam Senior", "email": "sam@example.org", "password": "typed by the admin!",
        "senior": "yes", "admin": "yes"}, "/admin/reviewers/new")
    assert ok.status_code == 201 and "first-password" not in ok.get_data(as_text=True)
    assert client.post("/api/v1/auth/login", json={
        "email": "sam@example.org", "password": "typed by the admin!"}).status_code == 200

    duplicate = post_form(browser, "/admin/reviewers", {
        "name": "Ann Again", "email": two[0]["email"]}, "/admin/reviewers/new")
    assert duplicate.status_code == 409 and "already enrolled" in duplicate.get_data(True)
    weak = post_form(browser, "/admin/reviewers", {
        "name": "Wes Weak", "email": "wes@example.org", "password": "short"},
        "/admin/reviewers/new")
    assert weak.status_code == 400 and 'value="Wes Weak"' in weak.get_data(as_text=True)
    admin_only = post_form(browser, "/admin/reviewers", {
        "name": "Oli Officer", "email": "oli@example.org", "admin_only": "yes"},
        "/admin/reviewers/new")
    assert admin_only.status_code == 201
    with db.new_session(app) as s:
        oli = s.scalars(select(Reviewer).where(Reviewer.email == "oli@example.org")).one()
        assert oli.is_admin and not oli.is_reviewer
    unknown_unit = post_form(browser, "/admin/reviewers", {
        "name": "Una", "email": "una@example.org", "units": ["Atlantis"]}, "/admin/reviewers/new")
    assert unknown_unit.status_code == 400


def test_admin_edits_units_senior_and_independent_without_touching_existing_cases(
        app: Flask, client: FlaskClient, admin: dict[str, str], two: list[dict[str, str]]
) -> None:
    ref = submit_concern(client)["case_ref"]
    browser = sign_in(app, admin)
    page = f"/admin/reviewers/{two[0]['id']}"
    assert "Ann Reviewer" in browser.get(page).get_data(as_text=True)
    response = post_form(browser, page, {"units": ["Health"], "senior": "yes",
                                         "is_admin": "yes", "admin": "yes"}, page)
    assert response.status_code == 302
    # The first concern sealed the roster: a grant waits for a second administrator.
    second = login(client, make_reviewer(app, "Sam Second", admin=True, reviews=False))
    [change] = client.get("/api/v1/admin/changes", headers=second).get_json()["changes"]
    assert change["subject"] == two[0]["id"]
    approved = client.post(f"/api/v1/admin/changes/{change['id']}/approve", json={},
                           headers=second)
    assert approved.status_code == 200, approved.get_data(as_text=True)
    with db.new_session(app) as s:
        ann = s.get(Reviewer, two[0]["id"])
        assert ann is not None and json.loads(ann.units) == ["Health"]
        assert ann.is_senior and not ann.is_independent
        assert not ann.is_admin  # fields the form does not offer are ignored
        assert s.get(Assignment, (ref, two[0]["id"])) is not None
    assert "Health" in browser.get("/admin/").get_data(as_text=True)
    assert browser.get("/admin/reviewers/" + "f" * 32).status_code == 404


def test_admin_disables_a_reviewer_their_sessions_end_and_short_cases_are_named(
        app: Flask, client: FlaskClient, admin: dict[str, str], two: list[dict[str, str]]
) -> None:
    ref = submit_concern(client)["case_ref"]
    ann_api = login(client, two[0])
    browser = sign_in(app, admin)
    response = post_form(browser, f"/admin/reviewers/{two[0]['id']}/disable", {}, "/admin/")
    assert response.status_code == 302
    home = browser.get("/admin/").get_data(as_text=True)
    assert "Disabled Ann Reviewer" in home and f"Case {ref} now has 1 active reviewer" in home
    attention = home[home.index('id="attention"'):home.index('id="reviewers"')]
    assert ref in attention and "too few reviewers" in attention
    assert client.get("/api/v1/cases", headers=ann_api).status_code == 401
    with db.new_session(app) as s:
        assert not list(s.scalars(select(ReviewerSession).where(
            ReviewerSession.reviewer_id == two[0]["id"])))
    # An administrator cannot lock themselves out.
    post_form(browser, f"/admin/reviewers/{admin['id']}/disable", {}, "/admin/")
    assert "you cannot disable your own account" in browser.get("/admin/").get_data(True)


def test_admin_sets_the_categories_and_units_the_form_offers(
        app: Flask, client: FlaskClient, admin: dict[str, str], two: list[dict[str, str]]
) -> None:
    browser = sign_in(app, admin)
    saved = post_form(browser, "/admin/settings", {
        "categories": "bullying | Bullying or harassment\nfraud | Fraud or theft\n",
        "units": "North school\n\nSouth clinic\nNorth school\n"}, "/admin/settings")
    assert saved.status_code == 302
    options = client.get("/api/v1/intake").get_json()
    # Each with its acknowledgement clock (issue 23): here the statutory 7 calendar days.
    assert options["categories"] == [
        {"id": "bullying", "label": "Bullying or harassment", "ack_days": 7},
        {"id": "fraud", "label": "Fraud or theft", "ack_days": 7}]
    assert options["units"] == ["North school", "South clinic"]
    form = client.get("/report").get_data(as_text=True)
    assert "Bullying or harassment" in form and "South clinic" in form
    assert submit_concern(client, category="bullying", unit="South clinic")["status"] == \
        "received"
    assert client.post("/api/v1/concerns", json={"category": "conduct",
                                                 "details": "x"}).status_code == 400

    for bad in ("no separator here", "Bad Id | Label", "a | A\na | again", ""):
        response = post_form(browser, "/admin/settings", {"categories": bad, "units": "x"},
                             "/admin/settings")
        assert response.status_code == 400, bad
    assert client.get("/api/v1/intake").get_json()["units"] == ["North school", "South clinic"]


def test_admins_hold_no_case_key_and_see_references_and_dates_only(
        app: Flask, client: FlaskClient, admin: dict[str, str]) -> None:
    details, name = marker("DETAILS"), marker("NAME")
    make_reviewer(app, "Ann Reviewer")  # one eligible reviewer: the case is under-routed
    receipt = submit_concern(client, details=details, identity={"name": name})
    ref = receipt["case_ref"]
    assert receipt["reviewer_count"] == 1
    with db.new_session(app) as s:
        assert not list(s.scalars(select(WrappedKey).where(WrappedKey.recipient_id == admin["id"])))
        assert s.get(Assignment, (ref, admin["id"])) is None
    browser = sign_in(app, admin)
    home = browser.get("/admin/").get_data(as_text=True)
    assert ref in home and "too few reviewers" in home
    assert details not in home and name not in home and "conduct" not in home
    assert browser.get(f"/reviewer/cases/{ref}").status_code == 404
    api = login(client, admin)
    assert client.get(f"/api/v1/cases/{ref}", headers=api).status_code == 404
    assert client.get("/api/v1/cases", headers=api).get_json()["total"] == 0


def test_an_excluded_admin_sees_no_trace_of_the_case_in_the_admin_view(
        app: Flask, client: FlaskClient, admin: dict[str, str]) -> None:
    accused = make_reviewer(app, "Axel Admin and reviewer", admin=True)
    make_reviewer(app, "Ann Reviewer")
    bob = make_reviewer(app, "Bob Reviewer")
    ref = submit_concern(client, exclude_reviewers=[accused["id"]])["case_ref"]
    other = submit_concern(client)["case_ref"]
    with db.new_session(app) as s:  # both cases overdue and on the attention list
        s.execute(update(Concern).values(overdue=True,
                                         acknowledge_by=utcnow().date() - dt.timedelta(days=1)))
        s.commit()

    ada_home = sign_in(app, admin).get("/admin/").get_data(as_text=True)
    assert ref in ada_home and other in ada_home
    accused_browser = sign_in(app, accused)
    axel_home = accused_browser.get("/admin/").get_data(as_text=True)
    assert ref not in axel_home and other in axel_home
    inbox = accused_browser.get("/reviewer/?status=overdue").get_data(as_text=True)
    assert ref not in inbox
    api = login(client, accused)
    listing = client.get("/api/v1/cases", headers=api).get_json()
    assert ref not in str(listing)
    assert client.get(f"/api/v1/cases/{ref}", headers=api).status_code == 404

    # Disabling a reviewer of that case does not name it to him either.
    post_form(accused_browser, f"/admin/reviewers/{bob['id']}/disable", {}, "/admin/")
    assert ref not in accused_browser.get("/admin/").get_data(as_text=True)


def test_admin_pages_follow_the_signed_in_admin_only(app: Flask, admin: dict[str, str],
                                                    two: list[dict[str, str]]) -> None:
    browser = sign_in(app, admin)
    assert browser.get("/admin/").status_code == 200
    post_form(browser, "/reviewer/logout", {}, "/admin/")
    assert browser.get("/admin/").status_code == 302
    response: Any = app.test_client().post("/reviewer/login", data={
        "email": admin["email"], "password": PASSWORD})
    assert response.status_code == 400  # no CSRF token: no sign-in
