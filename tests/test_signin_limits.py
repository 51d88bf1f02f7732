"""Sign-in that neither leaks nor yields (issue 20, item 7).

One answer for every wrong email/password/one-time-code combination; a per-account
lockout with exponential back-off and a content-free mail to the account; the site-wide
limit counted; and every counter shared by all workers through the database by default.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Any

import pyotp
import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from tests.support import services
from tests.support.factories import PASSWORD, build_app, make_reviewer, submit_concern
from tests.support.probes import csrf
from tests.test_accounts import enrol_totp
from whistle import notify, ratelimit, settings_of
from whistle.store import db
from whistle.store.models import LimitHit, SigninLockout, utcnow

WRONG = "not the password at all"
LOGIN = "/api/v1/auth/login"


class Clock:
    """Time that moves only when the test says (``whistle.ratelimit.clock``)."""

    def __init__(self) -> None:
        self.now = 1_900_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(ratelimit, "clock", fake)
    return fake


def _wrong_code(totp: pyotp.TOTP) -> str:
    now = dt.datetime.now(dt.timezone.utc)
    valid = {totp.at(now + dt.timedelta(seconds=s)) for s in (-30, 0, 30)}
    return next(c for c in ("000000", "111111", "222222", "333333") if c not in valid)


def _post(client: FlaskClient, email: str, password: str, otp: str | None = None) -> Any:
    body = {"email": email, "password": password} | ({"otp": otp} if otp is not None else {})
    return client.post(LOGIN, json=body)


@pytest.mark.parametrize("app_config", [{"LOGIN_LIMIT": "100 per minute",
                                         "LOGIN_LOCKOUT_FAILURES": 100}])
def test_the_answer_is_the_same_for_any_wrong_password_and_code(app: Flask,
                                                                 client: FlaskClient) -> None:
    ann = make_reviewer(app)
    _browser, totp, _used = enrol_totp(app, ann)
    wrong_code = _wrong_code(totp)
    tries = [(ann["email"], PASSWORD, None), (ann["email"], PASSWORD, ""),
             (ann["email"], PASSWORD, wrong_code), (ann["email"], PASSWORD, "12345x"),
             (ann["email"], WRONG, None), (ann["email"], WRONG, wrong_code),
             (ann["email"], WRONG, totp.now()), ("nobody@example.org", WRONG, None),
             ("nobody@example.org", PASSWORD, wrong_code)]
    answers = {(r.status_code, r.get_data(as_text=True))
               for r in (_post(client, *t) for t in tries)}
    assert len(answers) == 1, answers
    status, body = answers.pop()
    assert status == 401 and '"invalid_credentials"' in body and "one-time code" in body
    # The sign-in page: the same sentence whether the password was right or not.
    errors = set()
    for password in (PASSWORD, WRONG):
        page = app.test_client()
        response = page.post("/reviewer/login", data={
            "csrf_token": csrf(page, "/reviewer/login"), "email": ann["email"],
            "password": password, "otp": wrong_code})
        assert response.status_code == 401
        found = re.search(r'id="login-error">([^<]*)<', response.get_data(as_text=True))
        assert found
        errors.add(found.group(1))
    assert len(errors) == 1 and "one-time code" in errors.pop()
    # The right code still signs in.
    later = totp.at(dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=30))
    assert _post(client, ann["email"], PASSWORD, later).status_code == 200


def _locked(client: FlaskClient, email: str, otp: str | None = None) -> int:
    """Asserts the right password is refused with 429; returns its Retry-After."""
    response = _post(client, email, PASSWORD, otp)
    assert response.status_code == 429, response.get_data(as_text=True)
    assert response.get_json()["error"] == "rate_limited"
    return int(response.headers["Retry-After"])


def _mails(app: Flask, smtp: services.SmtpServer, n: int) -> list[Any]:
    with db.new_session(app) as s:
        notify.deliver_pending(s, app, now=utcnow() + dt.timedelta(days=1))
    return smtp.wait_for(n)


@pytest.mark.parametrize("app_config", [{"LOGIN_LIMIT": "100 per minute",
                                         "LOGIN_LOCKOUT_FAILURES": 3,
                                         "LOGIN_LOCKOUT_SECONDS": 60}])
def test_repeated_wrong_codes_lock_the_account_with_growing_back_off_and_mail_its_owner(
        app: Flask, client: FlaskClient, clock: Clock, smtp: services.SmtpServer) -> None:
    ann, bob = make_reviewer(app), make_reviewer(app)
    ref = submit_concern(client)["case_ref"]
    _browser, totp, _used = enrol_totp(app, ann)
    wrong = _wrong_code(totp)
    smtp.clear()
    waits = []
    for _round in range(3):
        for _ in range(3):  # the password is right, the second factor is not
            assert _post(client, ann["email"], PASSWORD, wrong).status_code == 401
        waits.append(_locked(client, ann["email"], wrong))
        assert _post(client, bob["email"], PASSWORD).status_code == 200  # others unaffected
        clock.now += waits[-1] - 1
        _locked(client, ann["email"], wrong)  # still locked a second before the end
        clock.now += 1
    assert waits == [60, 120, 240]
    subject, body = notify.TEMPLATES["signin_locked"]
    mail = [m for m in _mails(app, smtp, 1) if m["Subject"] == subject]
    assert [m["To"] for m in mail] == [ann["email"]], [(m["To"], m["Subject"]) for m in mail]
    assert body.strip() in mail[0].get_content().replace("\r\n", "\n")
    assert ref not in mail[0].as_string()
    # The database keeps the count under an HMAC, never the address.
    with db.new_session(app) as s:
        keys = [r.key for r in s.scalars(select(SigninLockout))]
        keys += [r.key for r in s.scalars(select(LimitHit))]
    assert keys and not any("@" in k or ann["email"] in k for k in keys)
    # The owner signs in once the lock ends: the back-off starts again from the beginning.
    next_code = totp.at(dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=30))
    assert _post(client, ann["email"], PASSWORD, next_code).status_code == 200
    for _ in range(3):
        assert _post(client, ann["email"], WRONG).status_code == 401
    assert _locked(client, ann["email"]) == 60


@pytest.mark.parametrize("app_config", [{"LOGIN_LIMIT": "100 per minute",
                                         "LOGIN_LOCKOUT_FAILURES": 2,
                                         "LOGIN_LOCKOUT_SECONDS": 30}])
def test_an_unknown_address_locks_alike_and_nobody_is_mailed(
        app: Flask, client: FlaskClient, clock: Clock, smtp: services.SmtpServer) -> None:
    make_reviewer(app)
    smtp.clear()
    for _ in range(2):
        assert _post(client, "nobody@example.org", WRONG).status_code == 401
    assert _locked(client, "nobody@example.org") == 30
    with db.new_session(app) as s:
        assert notify.deliver_pending(s, app, now=utcnow() + dt.timedelta(days=1)).sent == 0


@pytest.mark.parametrize("app_config", [{"LOGIN_LIMIT_ALL": "3 per minute"}])
def test_the_site_wide_limit_counts_failures_across_accounts(
        app: Flask, client: FlaskClient, clock: Clock) -> None:
    people = [make_reviewer(app) for _ in range(4)]
    for person in people[:2]:
        assert _post(client, person["email"], WRONG).status_code == 401
    assert _post(client, "sprayed@example.org", WRONG).status_code == 401
    # Three failures on three addresses: the whole site now waits, right password or not.
    refused = _post(client, people[3]["email"], PASSWORD)
    assert refused.status_code == 429 and 1 <= int(refused.headers["Retry-After"]) <= 60
    clock.now += 61
    assert _post(client, people[3]["email"], PASSWORD).status_code == 200


def test_the_default_storage_is_the_database_not_each_process(app: Flask) -> None:
    assert settings_of(app).ratelimit_storage_uri == "database://"
    assert app.extensions["whistle_limiter"].in_database


def _two_apps(tmp_path: Path, database_url: str, smtp: services.SmtpServer,
              config: dict[str, Any]) -> tuple[Flask, Flask]:
    return (build_app(tmp_path, database_url, smtp, config),
            build_app(tmp_path, database_url, smtp, config))


def test_two_app_instances_on_one_database_share_every_counter(
        tmp_path: Path, database_url: str, smtp: services.SmtpServer,
        weak_kdf: dict[str, Any], clock: Clock) -> None:
    config = weak_kdf | {"STATUS_LIMIT": "4 per minute", "LOGIN_LIMIT": "2 per minute",
                         "LOGIN_LIMIT_ALL": "3 per minute", "LOGIN_LOCKOUT_FAILURES": 3}
    first, second = _two_apps(tmp_path, database_url, smtp, config)
    try:
        a, b = first.test_client(), second.test_client()
        ann, bob, cy = (make_reviewer(first) for _ in range(3))
        receipt = submit_concern(a)
        for client in (a, b, a, b):
            assert client.post("/api/v1/status", json={"token": "wrong"}).status_code == 404
        for client in (a, b):
            assert client.post("/api/v1/status", json={"token": "wrong"}).status_code == 429
            assert client.post("/api/v1/status",
                               json={"token": receipt["token"]}).status_code == 200
        # Per account: two failures in all, one on each instance.
        assert _post(a, ann["email"], WRONG).status_code == 401
        assert _post(b, ann["email"], WRONG).status_code == 401
        assert _post(a, ann["email"], PASSWORD).status_code == 429
        assert _post(b, ann["email"], PASSWORD).status_code == 429
        # The lockout: its third failure in a row (after the window passed) on the other one.
        clock.now += 61
        assert _post(b, ann["email"], WRONG).status_code == 401
        assert _post(a, ann["email"], PASSWORD).status_code == 429
        # Site-wide, in this window: ann's third and bob's two, on both instances, make three.
        assert _post(a, bob["email"], WRONG).status_code == 401
        assert _post(b, bob["email"], WRONG).status_code == 401
        assert _post(a, cy["email"], PASSWORD).status_code == 429
        assert _post(b, cy["email"], PASSWORD).status_code == 429
    finally:
        for app in (first, second):
            db.engine_for(app).dispose()


@pytest.mark.parametrize("app_config", [{"RATELIMIT_STORAGE_URI": "memory://",
                                         "LOGIN_LIMIT": "2 per minute"}])
def test_memory_storage_is_still_an_option(app: Flask, client: FlaskClient) -> None:
    ann = make_reviewer(app)
    for _ in range(2):
        assert _post(client, ann["email"], WRONG).status_code == 401
    assert _post(client, ann["email"], PASSWORD).status_code == 429
    with db.new_session(app) as s:
        assert s.scalars(select(LimitHit)).first() is None  # counted in the process

