"""Passwords easy to guess are refused everywhere a password is chosen, and the rating is said
without JavaScript (issue 21: a password strength meter from a maintained package, zxcvbn).

A reviewer's password locks their private key: with a stolen database it is guessed offline,
so "password1234" must never lock a key. A refused change changes nothing: the key pair and
every session stay as they were."""

from __future__ import annotations

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from tests.support.factories import PASSWORD, login, make_reviewer
from tests.support.webflow import post_form, sign_in
from whistle.people import strength
from whistle.store import db
from whistle.store.models import Reviewer

WEAK = ["password1234", "aaaaaaaaaaaa", "qwertyuiop12", "changeme12345"]


def _public_key(app: Flask, reviewer_id: str) -> bytes:
    with db.new_session(app) as s:
        return s.scalars(select(Reviewer.public_key).where(Reviewer.id == reviewer_id)).one()


def test_the_rating_refuses_common_repeated_and_personal_passwords() -> None:
    for weak in WEAK:
        assert strength.rate(weak).score < strength.WEAKEST_ACCEPTED, weak
    assert strength.rate(PASSWORD).score == 4
    # The account's own name counts as an easy guess: the same password, rated twice.
    assert strength.rate("kowalczykzofia").score >= strength.WEAKEST_ACCEPTED
    assert strength.rate("kowalczykzofia", ("Zofia Kowalczyk", "zofia@example.org")
                         ).score < strength.WEAKEST_ACCEPTED


def test_the_api_refuses_an_easy_password_and_changes_nothing(app: Flask,
                                                              client: FlaskClient) -> None:
    ann = make_reviewer(app)
    headers = login(client, ann)
    before = _public_key(app, ann["id"])
    for weak in WEAK:
        answer = client.post("/api/v1/me/password", headers=headers,
                             json={"password": PASSWORD, "new_password": weak})
        assert answer.status_code == 400, weak
        assert answer.get_json()["error"] == "weak_password"
        assert answer.get_json()["field"] == "password"
    assert _public_key(app, ann["id"]) == before  # no new key pair
    assert client.get("/api/v1/me", headers=headers).status_code == 200  # still signed in
    for weak in WEAK:  # the old password still opens the account, the weak ones never do
        refused = client.post("/api/v1/auth/login",
                              json={"email": ann["email"], "password": weak})
        assert refused.status_code == 401
    changed = client.post("/api/v1/me/password", headers=headers,
                          json={"password": PASSWORD, "new_password": "violet kettle under moss"})
    assert changed.status_code == 200
    assert changed.get_json()["strength"] == {"score": 4, "label": "strong"}
    assert _public_key(app, ann["id"]) != before


def test_a_personal_password_is_refused_for_that_account_only(app: Flask,
                                                             client: FlaskClient) -> None:
    zofia = make_reviewer(app, "Zofia Kowalczyk", "zofia.k@example.org")
    other = make_reviewer(app, "Piotr Nowak")
    refused = client.post("/api/v1/me/password", headers=login(client, zofia),
                          json={"password": PASSWORD, "new_password": "kowalczykzofia"})
    assert refused.status_code == 400 and refused.get_json()["error"] == "weak_password"
    accepted = client.post("/api/v1/me/password", headers=login(client, other),
                           json={"password": PASSWORD, "new_password": "kowalczykzofia"})
    assert accepted.status_code == 200


def test_the_page_says_why_in_the_readers_language_and_rates_the_new_one(app: Flask) -> None:
    ann = make_reviewer(app)
    browser = sign_in(app, ann)
    refused = post_form(browser, "/reviewer/account/password",
                        {"old": PASSWORD, "new": "password1234", "new2": "password1234"},
                        "/reviewer/account")
    assert refused.status_code == 400
    assert "this password is easy to guess" in refused.get_data(as_text=True)
    polish = post_form(browser, "/reviewer/account/password?lang=pl",
                       {"old": PASSWORD, "new": "password1234", "new2": "password1234"},
                       "/reviewer/account?lang=pl")
    assert "To hasło łatwo odgadnąć" in polish.get_data(as_text=True)
    changed = post_form(browser, "/reviewer/account/password",
                        {"old": PASSWORD, "new": "violet kettle under moss",
                         "new2": "violet kettle under moss"}, "/reviewer/account")
    assert changed.status_code == 302
    page = browser.get(changed.headers["Location"]).get_data(as_text=True)
    assert "Its strength: strong (4 of 4)." in page
