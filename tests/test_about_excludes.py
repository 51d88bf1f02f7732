"""A concern that says whom it is about (issue 25) never reaches that person, and a linked
concern stays invisible to whoever its reporter excluded (DESIGN promise 3).

Replayed as the person named would try it: Pat reviews concerns, and a reporter names Pat
(in another spelling of the address) without thinking to exclude Pat; the concern is never
routed to Pat, Pat cannot open it or be brought in by a share, and no mail goes to Pat. And
a reviewer excluded from one concern about someone, who reviews a second concern about the
same person, is not told that the second one matched another.
"""

from __future__ import annotations

from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from tests.support.factories import login, make_reviewer, submit_concern
from whistle.store import db
from whistle.store.models import Assignment, OutboxMail, WrappedKey


def _assigned(app: Flask, ref: str) -> set[str]:
    with db.new_session(app) as s:
        return set(s.scalars(select(Assignment.reviewer_id).where(Assignment.concern_id == ref)))


def test_the_person_a_concern_names_never_receives_it(app: Flask, client: FlaskClient) -> None:
    pat = make_reviewer(app, "Pat Smith", email="pat.smith@example.org")
    ann, bob = make_reviewer(app, "Ann Reviewer"), make_reviewer(app, "Bob Reviewer")
    sent = submit_concern(client, details="Pat shouts at the children.",
                          about={"email": "  Pat.Smith@EXAMPLE.org "})
    ref = sent["case_ref"]
    assert sent["reviewer_count"] == 2
    assert _assigned(app, ref) == {ann["id"], bob["id"]}
    with db.new_session(app) as s:
        assert not s.scalar(select(func.count()).select_from(WrappedKey).where(
            WrappedKey.concern_id == ref, WrappedKey.recipient_id == pat["id"]))
        assert not s.scalar(select(func.count()).select_from(OutboxMail).where(
            OutboxMail.recipient == pat["email"]))
    headers = login(client, pat)
    assert client.get(f"/api/v1/cases/{ref}", headers=headers).status_code == 404
    assert client.get("/api/v1/cases", headers=headers).get_json()["cases"] == []
    # Nobody can bring Pat in: Pat counts as excluded from the case.
    proposed = client.post(f"/api/v1/cases/{ref}/reviewers", json={"reviewer_id": pat["id"]},
                           headers=login(client, ann))
    assert proposed.status_code == 409 and proposed.get_json()["error"] == "excluded"


def test_the_only_other_reviewer_being_the_person_named_leaves_the_case_short(
        app: Flask, client: FlaskClient) -> None:
    pat = make_reviewer(app, "Pat Smith", email="pat.smith@example.org")
    ann = make_reviewer(app, "Ann Reviewer")
    sent = submit_concern(client, about={"email": "pat.smith@example.org"})
    assert sent["reviewer_count"] == 1 and _assigned(app, sent["case_ref"]) == {ann["id"]}
    assert pat["id"] not in _assigned(app, sent["case_ref"])


def test_a_reviewer_excluded_from_one_concern_is_not_told_another_matched_it(
        app: Flask, client: FlaskClient) -> None:
    ann, bob = make_reviewer(app, "Ann Reviewer"), make_reviewer(app, "Bob Reviewer")
    rex = make_reviewer(app, "Rex Reviewer")
    about: dict[str, Any] = {"email": "sam.jones@example.org"}
    first = submit_concern(client, about=about, exclude_reviewers=[rex["id"]])["case_ref"]
    assert _assigned(app, first) == {ann["id"], bob["id"]}
    second = submit_concern(client, about=about, exclude_reviewers=[ann["id"]])["case_ref"]
    assert _assigned(app, second) == {bob["id"], rex["id"]}
    seen_by_bob = client.get(f"/api/v1/cases/{second}", headers=login(client, bob)).get_json()
    assert seen_by_bob["matched"] is True and seen_by_bob["linked"] == [first]
    seen_by_rex = client.get(f"/api/v1/cases/{second}", headers=login(client, rex)).get_json()
    assert seen_by_rex["matched"] is False and seen_by_rex["linked"] == []
    assert seen_by_rex["about"]["email"] == "sam.jones@example.org"  # the case itself, whole
