"""Legal holds on the reviewer pages (issue 23): what the API does (``test_retention.py``),
a reviewer can do without it. One assigned reviewer proposes, a different one approves; the
proposer cannot approve their own proposal, a reviewer not assigned gets 404, and a refused
form changes nothing."""

from __future__ import annotations

from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from tests.support.factories import get_json, make_reviewer, submit_concern
from tests.support.probes import Snapshot
from tests.support.webflow import post_form, sign_in
from whistle.store import db
from whistle.store.models import Assignment, AuditEvent


def _page(browser: FlaskClient, ref: str) -> str:
    response = browser.get(f"/reviewer/cases/{ref}/referrals")
    assert response.status_code == 200, response.status_code
    return response.get_data(as_text=True)


def _hold(client: FlaskClient, reviewer: dict[str, str], ref: str) -> dict[str, Any]:
    return get_json(client, reviewer, f"/api/v1/cases/{ref}/hold")


def test_two_reviewers_place_and_lift_a_hold_on_the_case_page(
        app: Flask, client: FlaskClient) -> None:
    ann, bob = make_reviewer(app, "Ann Reviewer"), make_reviewer(app, "Bob Reviewer")
    ref = submit_concern(client)["case_ref"]
    with db.new_session(app) as s:
        assigned = set(s.scalars(select(Assignment.reviewer_id).where(
            Assignment.concern_id == ref)))
    assert assigned == {ann["id"], bob["id"]}
    a, b = sign_in(app, ann), sign_in(app, bob)
    form = f"/reviewer/cases/{ref}/referrals"
    assert 'href="/reviewer/cases/' in a.get(f"/reviewer/cases/{ref}").get_data(as_text=True)
    page = _page(a, ref)
    title = page.split("<title>", 1)[1].split("</title>", 1)[0]
    assert "<" not in title and "Legal hold" not in title  # the page's own title, no more
    assert "Not on hold." in page and 'action="/reviewer/cases/' + ref + '/hold"' in page

    # No reason: refused, nothing stored.
    snapshot = Snapshot(app)
    post_form(a, f"/reviewer/cases/{ref}/hold", {"action": "place", "reason": ""}, form)
    snapshot.assert_unchanged("a hold without a reason")

    post_form(a, f"/reviewer/cases/{ref}/hold",
              {"action": "place", "reason": "Employment tribunal claim"}, form)
    page = _page(a, ref)
    assert "Placing a hold" in page and "Ann Reviewer" in page
    assert f"/reviewer/cases/{ref}/hold/approve" not in page  # not offered to the proposer
    # The proposer posts the approval anyway: refused, still pending.
    snapshot = Snapshot(app)
    post_form(a, f"/reviewer/cases/{ref}/hold/approve", {}, form)
    snapshot.assert_unchanged("the proposer approving their own hold")
    assert _hold(client, ann, ref)["on_hold"] is False

    assert f"/reviewer/cases/{ref}/hold/approve" in _page(b, ref)
    post_form(b, f"/reviewer/cases/{ref}/hold/approve", {}, form)
    assert _hold(client, ann, ref)["on_hold"] is True
    assert "On hold since" in _page(a, ref)

    # Lifting it takes two as well.
    post_form(b, f"/reviewer/cases/{ref}/hold", {"action": "lift"}, form)
    assert _hold(client, ann, ref)["on_hold"] is True
    assert "Lifting the hold" in _page(a, ref)
    post_form(a, f"/reviewer/cases/{ref}/hold/approve", {}, form)
    assert _hold(client, ann, ref)["on_hold"] is False
    with db.new_session(app) as s:
        kinds = [e.type for e in s.scalars(select(AuditEvent).where(
            AuditEvent.concern_id == ref).order_by(AuditEvent.seq))]
    assert [k for k in kinds if k.startswith("hold")] == [
        "hold_proposed", "hold_placed", "hold_lift_proposed", "hold_lifted"]


def test_a_reviewer_not_assigned_gets_404_and_changes_nothing(
        app: Flask, client: FlaskClient) -> None:
    make_reviewer(app, "Ann Reviewer")
    make_reviewer(app, "Bob Reviewer")
    ref = submit_concern(client)["case_ref"]
    outsider = make_reviewer(app, "Oscar Outsider")  # after routing: not assigned
    o = sign_in(app, outsider)
    token = o.get("/reviewer/").get_data(as_text=True).split('name="csrf_token" value="')[1]
    token = token.split('"')[0]
    snapshot = Snapshot(app)
    for path, data in ((f"/reviewer/cases/{ref}/hold", {"action": "place", "reason": "x"}),
                       (f"/reviewer/cases/{ref}/hold/approve", {}),
                       (f"/reviewer/cases/{ref}/hold/reject", {})):
        answer = o.post(path, data=data | {"csrf_token": token})
        assert answer.status_code == 404, (path, answer.status_code)
    assert o.get(f"/reviewer/cases/{ref}/referrals").status_code == 404
    snapshot.assert_unchanged("an outsider's hold forms")
