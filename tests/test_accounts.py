"""Issue 3, reviewer accounts: first-run setup, password change, sessions, two-factor sign-in."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pyotp
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select, update

from tests.support.factories import PASSWORD, database_bytes, login, make_reviewer, submit_concern
from tests.support.probes import Snapshot
from tests.support.webflow import csrf, post_form, sign_in
from whistle import settings_of
from whistle.people import sessions
from whistle.store import db
from whistle.store.models import Concern, Reviewer, ReviewerSession, utcnow


def sessions_of(app: Flask, reviewer_id: str) -> int:
    with db.new_session(app) as s:
        return s.scalar(select(func.count()).select_from(ReviewerSession).where(
            ReviewerSession.reviewer_id == reviewer_id)) or 0


def setup_code(app: Flask, tmp_path: Path) -> str:
    result = app.test_cli_runner().invoke(args=[
        "init", "--recovery-out", str(tmp_path / "unused-recovery.txt")])
    assert result.exit_code == 0, result.output
    found = re.search(r"One-time setup code for /setup .*: ([0-9a-f]{6}(?:-[0-9a-f]{6}){3})",
                      result.output)
    assert found, result.output
    return found.group(1)


# -- 9. first-run setup ----------------------------------------------------------


def test_first_run_setup_enrols_the_first_admin_once_and_then_is_gone(
        app: Flask, client: FlaskClient, tmp_path: Path) -> None:
    assert client.get("/setup").status_code == 404  # no code issued yet
    code = setup_code(app, tmp_path)
    assert client.get("/setup").status_code == 200
    form = {"name": "Ada Admin", "email": "ada@example.org", "password": "ada's own passphrase",
            "r1_name": "Ann Reviewer", "r1_email": "ann@example.org",
            "r2_name": "Ida Independent", "r2_email": "ida@example.org",
            "r2_password": "set for ida at setup", "r2_independent": "yes"}

    wrong = post_form(client, "/setup", form | {"code": "000000-000000-000000-000000"}, "/setup")
    assert wrong.status_code == 403 and "wrong or was already used" in wrong.get_data(True)
    # A mistake in the form does not use the code up.
    weak = post_form(client, "/setup", form | {"code": code, "password": "short"}, "/setup")
    assert weak.status_code == 400 and "12 characters" in weak.get_data(as_text=True)
    twice = post_form(client, "/setup", form | {"code": code, "r1_email": "ada@example.org"},
                      "/setup")
    assert twice.status_code == 400

    done = post_form(client, "/setup", form | {"code": code.upper()}, "/setup")
    assert done.status_code == 201, done.get_data(as_text=True)
    html = done.get_data(as_text=True)
    generated = re.search(r"Ann Reviewer &lt;ann@example.org&gt;: first password, shown only "
                          r"now: <code>([^<]+)</code>", html)
    assert generated and "ida@example.org&gt;: first" not in html
    with db.new_session(app) as s:
        people = {r.email: r for r in s.scalars(select(Reviewer))}
    assert people["ada@example.org"].is_admin and not people["ada@example.org"].is_reviewer
    assert people["ida@example.org"].is_independent and not people["ida@example.org"].is_admin
    assert set(people) == {"ada@example.org", "ann@example.org", "ida@example.org"}

    # Gone: the page, the form and the code.
    assert client.get("/setup").status_code == 404
    assert post_form(client, "/setup", form | {"code": code}, "/status").status_code == 404
    admin = sign_in(app, {"email": "ada@example.org", "password": "ada's own passphrase"})
    assert admin.get("/admin/").status_code == 200
    # Reviewers enrolled at setup replace the password the administrator chose.
    ann = sign_in(app, {"email": "ann@example.org", "password": generated.group(1)})
    assert ann.get("/reviewer/").headers["Location"].endswith("/reviewer/account")


def test_setup_is_404_once_any_administrator_exists(app: Flask, client: FlaskClient,
                                                    tmp_path: Path) -> None:
    setup_code(app, tmp_path)
    make_reviewer(app, admin=True)
    assert client.get("/setup").status_code == 404
    assert client.get("/setup/").status_code == 404
    result = app.test_cli_runner().invoke(args=[
        "init", "--recovery-out", str(tmp_path / "unused-recovery.txt")])
    assert "setup code" not in result.output


# -- 10. passwords and sessions --------------------------------------------------


def test_changing_the_password_relocks_the_key_and_every_case_still_opens(
        app: Flask, client: FlaskClient) -> None:
    ann, _ = make_reviewer(app), make_reviewer(app)
    receipt = submit_concern(client, details="Still readable after the change")
    other_session = login(client, ann)
    browser = sign_in(app, ann)
    wrong = post_form(browser, "/reviewer/account/password",
                      {"old": "not my password at all", "new": "a brand new passphrase"},
                      "/reviewer/account")
    assert wrong.status_code == 400 and "wrong email or password" in wrong.get_data(True)
    short = post_form(browser, "/reviewer/account/password",
                      {"old": PASSWORD, "new": "short"}, "/reviewer/account")
    assert short.status_code == 400

    changed = post_form(browser, "/reviewer/account/password",
                        {"old": PASSWORD, "new": "a brand new passphrase"}, "/reviewer/account")
    assert changed.status_code == 302
    # issue 21: the server-side strength meter rides along ("a brand new passphrase": 4 of 4)
    assert changed.headers["Location"].endswith("/reviewer/login?changed=password&strength=4")
    assert sessions_of(app, ann["id"]) == 0  # every session ended, the API one too
    assert client.get("/api/v1/cases", headers=other_session).status_code == 401
    old = client.post("/api/v1/auth/login", json={"email": ann["email"], "password": PASSWORD})
    assert old.status_code == 401
    headers = login(client, ann | {"password": "a brand new passphrase"})
    case = client.get(f"/api/v1/cases/{receipt['case_ref']}", headers=headers).get_json()
    assert case["details"] == "Still readable after the change"


def test_sessions_end_after_inactivity_and_the_row_is_deleted(app: Flask,
                                                              client: FlaskClient) -> None:
    ann = make_reviewer(app)
    headers = login(client, ann)
    browser = sign_in(app, ann)
    assert sessions_of(app, ann["id"]) == 2
    idle = app.config["SESSION_IDLE_MINUTES"]
    with db.new_session(app) as s:
        s.execute(update(ReviewerSession).values(
            last_seen=utcnow() - dt.timedelta(minutes=idle + 1)))
        s.commit()
    assert client.get("/api/v1/cases", headers=headers).status_code == 401
    assert browser.get("/reviewer/").headers["Location"].endswith("/reviewer/login")
    assert sessions_of(app, ann["id"]) == 0


def test_a_session_in_use_stays_alive_and_one_past_its_lifetime_ends(
        app: Flask, client: FlaskClient) -> None:
    ann = make_reviewer(app)
    with db.new_session(app) as s:
        secret, _ = sessions.login(s, settings_of(app), ann["email"], PASSWORD)
    start = utcnow()
    with db.new_session(app) as s:
        for minutes in range(0, 6 * 60, 20):  # busy all afternoon, never idle for long
            assert sessions.authenticate(s, settings_of(app), secret,
                                       start + dt.timedelta(minutes=minutes)) is not None
        late = start + dt.timedelta(hours=app.config["SESSION_MAX_HOURS"], minutes=1)
        assert sessions.authenticate(s, settings_of(app), secret, late) is None
    assert sessions_of(app, ann["id"]) == 0


def test_signing_out_of_the_pages_deletes_the_session_row(app: Flask) -> None:
    ann = make_reviewer(app)
    browser = sign_in(app, ann)
    assert sessions_of(app, ann["id"]) == 1
    response = post_form(browser, "/reviewer/logout", {}, "/reviewer/")
    assert response.status_code == 302
    assert sessions_of(app, ann["id"]) == 0
    assert browser.get("/reviewer/").status_code == 302


# -- 10. two-factor sign-in ------------------------------------------------------


def enrol_totp(app: Flask, reviewer: dict[str, str]) -> tuple[FlaskClient, pyotp.TOTP, str]:
    browser = sign_in(app, reviewer)
    page = browser.get("/reviewer/account/totp").get_data(as_text=True)
    secret = re.search(r'<code id="totp-secret">([A-Z2-7]+)</code>', page)
    assert secret
    totp = pyotp.TOTP(secret.group(1))
    code = totp.now()
    response = post_form(browser, "/reviewer/account/totp",
                         {"password": reviewer["password"], "otp": code}, "/reviewer/account/totp")
    assert response.status_code == 302, response.get_data(as_text=True)
    return browser, totp, code


def test_totp_enrolment_shows_the_secret_and_uri_and_needs_the_password(
        app: Flask, client: FlaskClient) -> None:
    ann = make_reviewer(app, email="ann@example.org")
    browser = sign_in(app, ann)
    page = browser.get("/reviewer/account/totp").get_data(as_text=True)
    secret = re.search(r'<code id="totp-secret">([A-Z2-7]+)</code>', page)
    uri = re.search(r'<code id="totp-uri">([^<]+)</code>', page)
    assert secret and uri
    assert uri.group(1).startswith("otpauth://totp/Whistle:ann%40example.org?secret="
                                   + secret.group(1))
    assert re.findall(r'(?:src|href)="(https?:)?//', page) == []  # no external QR service
    # Reloading keeps the same pending secret (it lives in this browser's session).
    assert secret.group(1) in browser.get("/reviewer/account/totp").get_data(as_text=True)
    totp = pyotp.TOTP(secret.group(1))
    no_password = post_form(browser, "/reviewer/account/totp",
                            {"password": "guessing at it", "otp": totp.now()},
                            "/reviewer/account/totp")
    assert no_password.status_code == 400 and "wrong password" in no_password.get_data(True)
    bad_code = post_form(browser, "/reviewer/account/totp",
                         {"password": PASSWORD, "otp": "000000" if totp.now() != "000000"
                          else "111111"}, "/reviewer/account/totp")
    assert bad_code.status_code == 400
    with db.new_session(app) as s:
        assert s.get(Reviewer, ann["id"]).totp_secret_ct is None  # type: ignore[union-attr]
    assert secret.group(1).encode() not in database_bytes(app)


def test_with_totp_on_sign_in_needs_a_fresh_code_and_no_code_works_twice(
        app: Flask, client: FlaskClient) -> None:
    ann = make_reviewer(app)
    browser, totp, used_at_enrolment = enrol_totp(app, ann)
    assert "On: you sign in with a code" in browser.get("/reviewer/account").get_data(True)
    body = {"email": ann["email"], "password": PASSWORD}

    missing = client.post("/api/v1/auth/login", json=body)
    # The same answer as for a wrong password (issue 20): a missing code says nothing.
    assert missing.status_code == 401 and missing.get_json()["error"] == "invalid_credentials"
    replayed = client.post("/api/v1/auth/login", json=body | {"otp": used_at_enrolment})
    assert replayed.status_code == 401
    next_code = totp.at(dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=30))
    assert client.post("/api/v1/auth/login", json=body | {"otp": next_code}).status_code == 200
    again = client.post("/api/v1/auth/login", json=body | {"otp": next_code})
    assert again.status_code == 401

    page_login = app.test_client()
    no_code = post_form(page_login, "/reviewer/login", body, "/reviewer/login")
    assert no_code.status_code == 401 and "one-time code" in no_code.get_data(as_text=True)


def test_turning_totp_off_needs_the_password_and_a_current_code(app: Flask,
                                                                client: FlaskClient) -> None:
    ann = make_reviewer(app)
    browser, totp, _ = enrol_totp(app, ann)
    later = totp.at(dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=30))
    refused = post_form(browser, "/reviewer/account/totp/disable",
                        {"password": "not the password", "otp": later}, "/reviewer/account/totp")
    assert refused.status_code == 400
    off = post_form(browser, "/reviewer/account/totp/disable",
                    {"password": PASSWORD, "otp": later}, "/reviewer/account/totp")
    assert off.status_code == 302
    assert client.post("/api/v1/auth/login", json={"email": ann["email"],
                                                   "password": PASSWORD}).status_code == 200


def test_required_totp_sends_a_signed_in_reviewer_to_enrol_before_anything_else(
        app: Flask, client: FlaskClient) -> None:
    app.extensions["whistle_settings"] = settings_of(app).replace(require_totp=True)
    ann = make_reviewer(app, admin=True)
    make_reviewer(app)
    ref = submit_concern(client)["case_ref"]
    browser = sign_in(app, ann)
    for path in ("/reviewer/", f"/reviewer/cases/{ref}", "/reviewer/account", "/admin/"):
        response = browser.get(path)
        assert response.status_code == 302 and response.headers["Location"].endswith(
            "/reviewer/account/totp"), path
    token = csrf(browser, "/reviewer/account/totp")
    # Every form a signed-in reviewer could post is turned away before its view runs:
    # redirected to enrol, and nothing at all changed (not only the case's status).
    before = Snapshot(app)
    for path, data in ((f"/reviewer/cases/{ref}/transition", {"to": "acknowledged"}),
                       (f"/reviewer/cases/{ref}/message", {"body": "hello"}),
                       (f"/reviewer/cases/{ref}/recuse", {"reason": "I know them"}),
                       ("/reviewer/account/password", {"old": PASSWORD,
                                                       "new": "an entirely new passphrase"})):
        moved = browser.post(path, data={"csrf_token": token} | data)
        assert moved.status_code == 302, path
        assert moved.headers["Location"].endswith("/reviewer/account/totp"), path
        before.assert_unchanged(path)
    with db.new_session(app) as s:
        assert s.scalar(select(Concern.status).where(Concern.id == ref)) == "received"
    assert "required here" in browser.get("/reviewer/account/totp").get_data(as_text=True)
    api = login(client, ann)
    blocked = client.get("/api/v1/cases", headers=api)
    assert blocked.status_code == 403 and blocked.get_json()["error"] == "account_setup_required"

    browser, totp, _ = enrol_totp(app, ann)
    assert browser.get("/reviewer/").status_code == 200
    assert browser.get("/admin/").status_code == 200
    later = totp.at(dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=30))
    kept = post_form(browser, "/reviewer/account/totp/disable",
                     {"password": PASSWORD, "otp": later}, "/reviewer/")
    assert kept.status_code == 400 and "cannot be turned off" in kept.get_data(as_text=True)
