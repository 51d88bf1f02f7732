"""No one alone adds a reader: the insider moves of issue 18, replayed against the real app.

Given a sealed roster, one administrator tries to enrol an account they control and read
the next concerns; a proposer tries to approve their own proposal; the command line tries
to add a reader; a reviewer's old password and a copy of the database taken before a
password change try to open what came after. Each must fail, and the honest path (a
second person approves, the person chooses their own password from a mailed link) must
work. Real SQLite or PostgreSQL, real SMTP, real crypto.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from tests.support.factories import PASSWORD, login, make_reviewer, submit_concern
from tests.support.services import SmtpServer
from tests.support.webflow import deliver_mail, enrol_code, post_form, sign_in
from whistle import crypto
from whistle.cases import keys as casekeys
from whistle.store import db
from whistle.store.models import Assignment, Change, EnrolmentCode, Reviewer, WrappedKey

NEW_PASSWORD = "a password the owner chose alone"


def seal(app: Flask) -> None:
    result = app.test_cli_runner().invoke(args=["roster", "seal"])
    assert result.exit_code == 0, result.output


def propose(client: FlaskClient, admin: dict[str, str], **fields: Any) -> Any:
    body = {"name": "Puppet Account", "email": "puppet@example.org"} | fields
    return client.post("/api/v1/admin/reviewers", json=body, headers=login(client, admin))


def assigned_to(app: Flask, reviewer_id: str) -> int:
    with db.new_session(app) as s:
        return s.scalar(select(func.count()).select_from(Assignment).where(
            Assignment.reviewer_id == reviewer_id)) or 0


@pytest.fixture
def staff(app: Flask) -> dict[str, dict[str, str]]:
    """Two administrators and two reviewers, enrolled before the roster is sealed."""
    return {"ada": make_reviewer(app, "Ada Admin", admin=True, reviews=False),
            "ben": make_reviewer(app, "Ben Admin", admin=True, reviews=False),
            "cat": make_reviewer(app, "Cat Reviewer"),
            "dan": make_reviewer(app, "Dan Reviewer")}


def test_a_puppet_enrolled_by_one_administrator_cannot_sign_in_or_read_until_a_second_approves(
        app: Flask, client: FlaskClient, staff: dict[str, dict[str, str]], smtp: SmtpServer
        ) -> None:
    seal(app)
    response = propose(client, staff["ada"])
    assert response.status_code == 202, response.get_data(as_text=True)
    puppet = response.get_json()
    assert puppet["state"] == "pending"
    # The proposer knows no password for it, and any guess fails like a wrong password.
    tried = client.post("/api/v1/auth/login", json={"email": "puppet@example.org",
                                                    "password": PASSWORD})
    assert tried.status_code == 401
    # The next concerns never reach it, however many come.
    for _ in range(4):
        submit_concern(client, about_senior=True)
    assert assigned_to(app, puppet["id"]) == 0
    with db.new_session(app) as s:
        assert s.scalar(select(func.count()).select_from(WrappedKey).where(
            WrappedKey.recipient_id == puppet["id"])) == 0
    # No mail with a link went anywhere yet.
    deliver_mail(app)
    assert not any("/enrol?code=" in m.get_content() for m in smtp.messages)


def test_the_proposer_cannot_approve_their_own_proposal(
        app: Flask, client: FlaskClient, staff: dict[str, dict[str, str]]) -> None:
    seal(app)
    change_id = propose(client, staff["ada"]).get_json()["change_id"]
    own = client.post(f"/api/v1/admin/changes/{change_id}/approve",
                      headers=login(client, staff["ada"]))
    assert own.status_code == 409 and own.get_json()["error"] == "second_person_required"
    with db.new_session(app) as s:
        assert s.get_one(Change, change_id).state == "pending"
        assert s.scalars(select(Reviewer.state).where(
            Reviewer.email == "puppet@example.org")).one() == "pending"


def test_a_reviewer_cannot_approve_while_another_administrator_can(
        app: Flask, client: FlaskClient, staff: dict[str, dict[str, str]]) -> None:
    seal(app)
    change_id = propose(client, staff["ada"]).get_json()["change_id"]
    refused = client.post(f"/api/v1/admin/changes/{change_id}/approve",
                          headers=login(client, staff["cat"]))
    assert refused.status_code == 403
    listed = client.get("/api/v1/admin/changes", headers=login(client, staff["cat"]))
    assert [c["id"] for c in listed.get_json()["changes"]] == [change_id]


def test_approved_by_a_second_person_the_account_chooses_its_own_password_from_the_mail(
        app: Flask, client: FlaskClient, staff: dict[str, dict[str, str]], smtp: SmtpServer
        ) -> None:
    seal(app)
    proposed = propose(client, staff["ada"], units=[]).get_json()
    approved = client.post(f"/api/v1/admin/changes/{proposed['change_id']}/approve",
                           headers=login(client, staff["ben"]))
    assert approved.status_code == 200, approved.get_data(as_text=True)
    code = enrol_code(smtp, app, "puppet@example.org")
    # Neither administrator saw or set a password; the database holds no usable code.
    with db.new_session(app) as s:
        assert code.encode() not in b"".join(r.code_hash for r in s.scalars(
            select(EnrolmentCode)))
    page = client.get(f"/enrol?code={code}")
    assert page.status_code == 200 and "Puppet Account" in page.get_data(as_text=True)
    done = client.post("/api/v1/auth/enrol", json={"code": code, "password": NEW_PASSWORD})
    assert done.status_code == 200 and done.get_json()["reviewer"]["id"] == proposed["id"]
    again = client.post("/api/v1/auth/enrol", json={"code": code, "password": NEW_PASSWORD})
    assert again.status_code == 400 and again.get_json()["error"] == "invalid_code"
    signed = client.post("/api/v1/auth/login", json={"email": "puppet@example.org",
                                                     "password": NEW_PASSWORD})
    assert signed.status_code == 200
    # Both names are in the administration log.
    log = client.get("/api/v1/admin/log", headers=login(client, staff["cat"])).get_json()
    kinds = {(e["type"], e["actor"]) for e in log["events"]}
    assert ("change_proposed", staff["ada"]["id"]) in kinds
    assert ("change_approved", staff["ben"]["id"]) in kinds


def test_an_unknown_or_expired_enrolment_code_is_refused(
        app: Flask, client: FlaskClient, staff: dict[str, dict[str, str]], smtp: SmtpServer
        ) -> None:
    seal(app)
    proposed = propose(client, staff["ada"]).get_json()
    client.post(f"/api/v1/admin/changes/{proposed['change_id']}/approve",
                headers=login(client, staff["ben"]))
    code = enrol_code(smtp, app, "puppet@example.org")
    for wrong in ("x" * 32, 5, None, ""):
        answer = client.post("/api/v1/auth/enrol", json={"code": wrong, "password": NEW_PASSWORD})
        assert answer.status_code == 400 and answer.get_json()["error"] == "invalid_code"
    with db.new_session(app) as s:
        row = s.scalars(select(EnrolmentCode)).one()
        row.expires = dt.datetime(2000, 1, 1)
        s.commit()
    late = client.post("/api/v1/auth/enrol", json={"code": code, "password": NEW_PASSWORD})
    assert late.status_code == 400 and late.get_json()["error"] == "invalid_code"


def test_with_a_single_administrator_a_reviewer_is_the_second_person(
        app: Flask, client: FlaskClient) -> None:
    only = make_reviewer(app, "Only Admin", admin=True, reviews=False)
    cat = make_reviewer(app, "Cat Reviewer")
    make_reviewer(app, "Dan Reviewer")
    seal(app)
    change_id = propose(client, only).get_json()["change_id"]
    assert client.post(f"/api/v1/admin/changes/{change_id}/approve",
                       headers=login(client, only)).status_code == 409
    assert client.post(f"/api/v1/admin/changes/{change_id}/approve",
                       headers=login(client, cat)).status_code == 200


def test_the_command_line_only_proposes_after_sealing(
        app: Flask, client: FlaskClient, staff: dict[str, dict[str, str]]) -> None:
    seal(app)
    result = app.test_cli_runner().invoke(
        args=["reviewer", "add", "--name", "Shell Friend", "--email", "shell@example.org",
              "--password-stdin"], input=PASSWORD + "\n")
    assert result.exit_code == 0, result.output
    new_id = result.output.strip().splitlines()[-1]
    with db.new_session(app) as s:
        account = s.get_one(Reviewer, new_id)
        assert account.state == "pending" and not account.active and account.public_key == b""
    assert client.post("/api/v1/auth/login", json={"email": "shell@example.org",
                                                   "password": PASSWORD}).status_code == 401
    submit_concern(client)
    assert assigned_to(app, new_id) == 0
    pending = client.get("/api/v1/admin/changes", headers=login(client, staff["ada"]))
    assert [c["subject"] for c in pending.get_json()["changes"]] == [new_id]


def test_a_second_administrator_approves_on_the_web_page(
        app: Flask, staff: dict[str, dict[str, str]], smtp: SmtpServer) -> None:
    seal(app)
    ada = sign_in(app, staff["ada"])
    proposed = post_form(ada, "/admin/reviewers", {"name": "Web Person",
                                                   "email": "web@example.org"},
                         "/admin/reviewers/new")
    assert proposed.status_code == 202, proposed.get_data(as_text=True)
    page = ada.get("/reviewer/changes").get_data(as_text=True)
    assert "Web Person" in page and "/approve" not in page  # not offered to the proposer
    ben = sign_in(app, staff["ben"])
    with db.new_session(app) as s:
        change_id = s.scalars(select(Change.id)).one()
    post_form(ben, f"/reviewer/changes/{change_id}/approve", {}, "/reviewer/changes")
    assert enrol_code(smtp, app, "web@example.org")


def test_a_password_change_rotates_the_key_pair_so_an_old_backup_opens_nothing_new(
        app: Flask, client: FlaskClient, staff: dict[str, dict[str, str]]) -> None:
    cat = staff["cat"]
    before = submit_concern(client)["case_ref"]
    with db.new_session(app) as s:  # a backup taken before the change
        old = s.get_one(Reviewer, cat["id"])
        backup = (old.locked_private_key, old.password_check, old.public_key)
    changed = client.post("/api/v1/me/password", headers=login(client, cat),
                          json={"password": cat["password"], "new_password": NEW_PASSWORD})
    assert changed.status_code == 200, changed.get_data(as_text=True)
    assert changed.get_json()["fingerprint"] != crypto.digest(backup[2]).hex()
    published = {r["id"]: r["fingerprint"]
                 for r in client.get("/api/v1/roster").get_json()["reviewers"]}
    assert published[cat["id"]] == changed.get_json()["fingerprint"]
    after = submit_concern(client)["case_ref"]
    old_private = crypto.unlock_private_key(backup[0], cat["password"], backup[1])
    with db.new_session(app) as s:
        for case_ref in (before, after):
            held = casekeys.held_keys(s, case_ref, "reviewer", cat["id"])
            assert held, case_ref
            with pytest.raises(crypto.CryptoError):
                casekeys.unwrap_found(held, case_ref, "reviewer", cat["id"], old_private)
    # The owner still reads both, with the new password only.
    headers = login(client, cat | {"password": NEW_PASSWORD})
    for case_ref in (before, after):
        assert client.get(f"/api/v1/cases/{case_ref}", headers=headers).status_code == 200
    assert client.post("/api/v1/auth/login", json={"email": cat["email"],
                                                   "password": cat["password"]}
                       ).status_code == 401


def test_a_password_reset_needs_two_people_and_the_owner_chooses_the_new_password(
        app: Flask, client: FlaskClient, staff: dict[str, dict[str, str]], smtp: SmtpServer
        ) -> None:
    seal(app)
    cat = staff["cat"]
    old_headers = login(client, cat)
    result = app.test_cli_runner().invoke(args=["reviewer", "reset-password", cat["id"]])
    assert result.exit_code == 0, result.output
    # Nothing happened yet: the old password and session still work.
    assert client.get("/api/v1/cases", headers=old_headers).status_code == 200
    with db.new_session(app) as s:
        change_id = s.scalars(select(Change.id).where(Change.subject == cat["id"])).one()
    assert client.post(f"/api/v1/admin/changes/{change_id}/approve",
                       headers=login(client, cat)).status_code == 409  # the account itself
    assert client.post(f"/api/v1/admin/changes/{change_id}/approve",
                       headers=login(client, staff["ada"])).status_code == 200
    assert client.get("/api/v1/cases", headers=old_headers).status_code == 401
    code = enrol_code(smtp, app, cat["email"])
    assert client.post("/api/v1/auth/enrol", json={"code": code, "password": NEW_PASSWORD}
                       ).status_code == 200
    assert client.post("/api/v1/auth/login", json={"email": cat["email"],
                                                   "password": NEW_PASSWORD}
                       ).status_code == 200


def test_every_reviewer_sees_roster_changes_until_they_say_they_saw_them(
        app: Flask, client: FlaskClient, staff: dict[str, dict[str, str]]) -> None:
    seal(app)
    propose(client, staff["ada"], name="Newly Proposed", email="new@example.org")
    dan = sign_in(app, staff["dan"])
    page = dan.get("/reviewer/").get_data(as_text=True)
    assert 'id="roster-notices"' in page and "Newly Proposed" in page
    post_form(dan, "/reviewer/roster-seen", {}, "/reviewer/")
    assert 'id="roster-notices"' not in dan.get("/reviewer/").get_data(as_text=True)
