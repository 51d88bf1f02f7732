"""An intake operator reviews, administers and approves nothing (issue 24), so it reaches
nothing but its own form, its account and the routes about one case (which answer 404, as to
anyone not assigned). Every other signed-in route is walked from ``app.url_map`` as the
operator: each answers 403 and changes nothing, while a reviewer reaches the same routes."""

from __future__ import annotations

from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from tests.support.factories import login, make_operator, make_reviewer, submit_concern
from tests.support.probes import Snapshot, build_paths, csrf, html_login
from tests.support.webflow import enrol_code, post_form, sign_in
from whistle.store import db
from whistle.store.models import Change, Reviewer
from whistle.web import access

_ARGS = {"case_ref": "0" * 28, "reviewer_id": "0" * 32, "agency_id": "0" * 32,
         "erasure_id": "0" * 32, "referral_id": "0" * 32, "request_id": "0" * 32,
         "decision": "approve"}


def _outside_scope(app: Flask, method: str, api: bool) -> list[str]:
    """Every signed-in route outside the operator's scope that takes ``method``."""
    adapter = app.url_map.bind("localhost")
    out = []
    for path in build_paths(app, method, api, _ARGS):
        endpoint = adapter.match(path, method=method)[0]
        rule = next(r for r in app.url_map.iter_rules() if r.endpoint == endpoint)
        if (access.protected(path, endpoint) and endpoint not in access.OPERATOR_SCOPE
                and "<case_ref>" not in rule.rule):
            out.append(path)
    return out


def test_an_operator_reaches_no_api_route_but_its_own(app: Flask, client: FlaskClient) -> None:
    reviewer = make_reviewer(app, "Ann Reviewer", admin=True)
    make_reviewer(app, "Bob Reviewer")
    operator = make_operator(app, "Olga Operator")
    submit_concern(client)
    op, ann = login(client, operator), login(client, reviewer)
    # What a reviewer reads, the operator does not: the administration log, pending changes,
    # the list of reviewers, checkpoints.
    for path in ("/api/v1/admin/log", "/api/v1/admin/changes", "/api/v1/reviewers"):
        assert client.get(path, headers=ann).status_code == 200, path
    walked = set()
    snapshot = Snapshot(app)
    for method in ("GET", "POST", "PUT", "DELETE"):
        for path in _outside_scope(app, method, api=True):
            answer = client.open(path, method=method, json={}, headers=op)
            assert answer.status_code == 403, (method, path, answer.get_data(as_text=True))
            assert answer.get_json()["error"] == "forbidden", (method, path)
            walked.add((method, path))
    snapshot.assert_unchanged("an operator's refused API calls")
    # The walk reached the routes it claims to.
    assert {("GET", "/api/v1/admin/log"), ("GET", "/api/v1/admin/changes"),
            ("GET", "/api/v1/reviewers"), ("POST", "/api/v1/admin/reviewers"),
            ("POST", f"/api/v1/admin/changes/{'0' * 32}/approve")} <= walked, sorted(walked)
    # Its own routes still answer: its identity, the (empty) list of cases, one case (404).
    me = client.get("/api/v1/me", headers=op)
    assert me.status_code == 200, me.get_data(as_text=True)
    assert client.get("/api/v1/cases", headers=op).get_json()["cases"] == []
    assert client.get(f"/api/v1/cases/{'0' * 28}", headers=op).status_code == 404


def test_an_operator_sees_no_reviewer_page_and_its_home_is_the_form(
        app: Flask, client: FlaskClient) -> None:
    make_reviewer(app, "Ann Reviewer", admin=True)
    reviewer = make_reviewer(app, "Bob Reviewer")
    operator = make_operator(app, "Olga Operator")
    submit_concern(client)
    browser = html_login(app, operator)
    home = browser.get("/reviewer/")
    assert home.status_code == 302 and home.headers["Location"].endswith("/operator")
    form = browser.get("/operator")
    assert form.status_code == 200 and 'action="/operator/concerns"' in form.get_data(as_text=True)
    # Its account page offers its own form, not the reviewers' pages.
    account = browser.get("/reviewer/account").get_data(as_text=True)
    assert 'href="/operator"' in account and 'href="/reviewer/stats"' not in account
    token = csrf(browser, "/operator")
    gets = _outside_scope(app, "GET", api=False)
    assert {"/reviewer/admin-log", "/reviewer/changes", "/reviewer/stats"} <= set(gets)
    snapshot = Snapshot(app)
    for path in gets:
        answer = browser.get(path)
        assert answer.status_code == 403, (path, answer.status_code)
    for path in _outside_scope(app, "POST", api=False):
        answer = browser.post(path, data={"csrf_token": token})
        assert answer.status_code == 403, (path, answer.status_code)
    snapshot.assert_unchanged("an operator's refused pages")
    # A reviewer reaches the same pages.
    other = html_login(app, reviewer)
    for path in ("/reviewer/admin-log", "/reviewer/changes", "/reviewer/stats"):
        assert other.get(path).status_code == 200, path


def test_operator_scope_names_only_routes_that_exist(app: Flask) -> None:
    endpoints: set[Any] = {rule.endpoint for rule in app.url_map.iter_rules()}
    assert access.OPERATOR_SCOPE <= endpoints, access.OPERATOR_SCOPE - endpoints


def test_administrators_enrol_an_operator_on_the_web_page_and_a_second_one_approves(
        app: Flask, client: FlaskClient, smtp: Any) -> None:
    ada = make_reviewer(app, "Ada Admin", admin=True)
    ben = make_reviewer(app, "Ben Admin", admin=True)
    browser = sign_in(app, ada)
    form = browser.get("/admin/reviewers/new").get_data(as_text=True)
    assert 'name="operator"' in form
    # Before the roster seals (one person setting up), the operator is enrolled at once.
    def enrol(name: str, email: str, **roles: str) -> Any:
        return post_form(browser, "/admin/reviewers", {"name": name, "email": email} | roles,
                         "/admin/reviewers/new")

    made = enrol("Olga Early", "early@example.org", operator="yes")
    assert made.status_code == 201, made.get_data(as_text=True)
    with db.new_session(app) as s:
        early = s.scalars(select(Reviewer).where(Reviewer.email == "early@example.org")).one()
        assert early.is_operator and not early.is_reviewer and not early.is_admin
    # An operator with another role is refused, with the words kept, and nothing is stored.
    snapshot = Snapshot(app)
    mixed = enrol("Mixed Roles", "mixed@example.org", operator="yes", admin="yes")
    assert mixed.status_code == 400, mixed.status_code
    assert "no other role" in mixed.get_data(as_text=True)
    assert 'value="Mixed Roles"' in mixed.get_data(as_text=True)
    snapshot.assert_unchanged("an operator with another role")
    # After sealing, it is a proposal that the proposer cannot approve and a second one can.
    submit_concern(client)
    proposed = enrol("Olga Later", "later@example.org", operator="yes")
    assert proposed.status_code == 202, proposed.get_data(as_text=True)
    with db.new_session(app) as s:
        later = s.scalars(select(Reviewer).where(Reviewer.email == "later@example.org")).one()
        assert later.state == "pending" and later.is_operator and not later.is_reviewer
        change_id = s.scalars(select(Change.id).where(Change.subject == later.id)).one()
    own = client.post(f"/api/v1/admin/changes/{change_id}/approve", headers=login(client, ada))
    assert own.status_code == 409
    second = sign_in(app, ben)
    post_form(second, f"/reviewer/changes/{change_id}/approve", {}, "/reviewer/changes")
    assert enrol_code(smtp, app, "later@example.org")
    with db.new_session(app) as s:
        assert s.get_one(Reviewer, later.id).state != "pending"


def test_every_route_about_one_case_answers_404_to_the_operator_who_filed_it(
        app: Flask, client: FlaskClient) -> None:
    """The operator's own filing, on every route that names a case (API and pages, every
    method, every other id a well-formed unknown one): 404, and nothing changes."""
    make_reviewer(app, "Ann Reviewer")
    make_reviewer(app, "Bob Reviewer")
    operator = make_operator(app, "Olga Operator")
    op = login(client, operator)
    filed = client.post("/api/v1/operator/concerns", headers=op, json={
        "category": "conduct", "details": "Taken by phone.", "channel": "phone"})
    assert filed.status_code == 201, filed.get_data(as_text=True)
    ref = filed.get_json()["case_ref"]
    browser = html_login(app, operator)
    token = csrf(browser, "/operator")
    args = _ARGS | {"case_ref": ref}
    snapshot = Snapshot(app)
    walked = 0
    for api in (True, False):
        for method in ("GET", "POST", "PUT", "DELETE"):
            for path in build_paths(app, method, api, args):
                if ref not in path:
                    continue
                if api:
                    answer = client.open(path, method=method, json={}, headers=op)
                else:
                    answer = browser.open(path, method=method, data={"csrf_token": token})
                assert answer.status_code == 404, (method, path, answer.status_code)
                walked += 1
    snapshot.assert_unchanged("an operator on its own filing's routes")
    assert walked >= 30, walked


def test_an_operators_web_filing_keeps_the_reporters_choices(
        app: Flask, client: FlaskClient) -> None:
    """What the reporter asks for on the phone, the operator's form carries: whom they
    exclude, their name (sealed apart), "about a senior person" (an independent reviewer),
    and whom it is about (never routed to that person)."""
    ann = make_reviewer(app, "Ann Reviewer")
    bob = make_reviewer(app, "Bob Reviewer")
    ind = make_reviewer(app, "Ida Independent", independent=True)
    pat = make_reviewer(app, "Pat Smith", email="pat.smith@example.org", senior=True)
    operator = make_operator(app, "Olga Operator")
    browser = html_login(app, operator)
    form = browser.get("/operator").get_data(as_text=True)
    assert 'name="about_email"' in form and 'name="escrow"' not in form
    filed = post_form(browser, "/operator/concerns", {
        "channel": "phone", "category": "conduct", "details": "The caller said: Pat did it.",
        "exclude_reviewers": [bob["id"]], "about_senior": "yes", "identity": "named",
        "name": "Rae Reporter", "about_email": "Pat.Smith@example.org", "about_name": "Pat",
        "idempotency_key": "cd" * 16}, "/operator")
    assert filed.status_code == 201, filed.get_data(as_text=True)[:800]
    with db.new_session(app) as s:
        from whistle.store.models import Assignment, Concern

        concern = s.scalars(select(Concern)).one()
        assigned = set(s.scalars(select(Assignment.reviewer_id).where(
            Assignment.concern_id == concern.id)))
    assert bob["id"] not in assigned and pat["id"] not in assigned
    assert ind["id"] in assigned and assigned <= {ann["id"], ind["id"]}
    seen = client.get(f"/api/v1/cases/{concern.id}", headers=login(client, ind)).get_json()
    assert seen["about"]["email"] == "pat.smith@example.org" and seen["about_senior"] is True
    assert seen["identity"] is None and seen["identity_provided"] is True  # sealed apart
    assert seen["channel"] == "phone"
