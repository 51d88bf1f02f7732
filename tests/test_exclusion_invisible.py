"""Issue 19, item 7: excluded means invisible, everywhere (DESIGN promise 3).

Replayed as the accused would notice it: an administrator the reporter excluded must get
no mail when an under-routed concern about them arrives (a non-excluded administrator
does), must see exactly the statistics everyone else sees (the figures take no viewer, so
comparing pages with a colleague shows nothing), and must find their attention list
unchanged by the case's arrival. Real app, real database (SQLite, or PostgreSQL with
``WHISTLE_TEST_DB=postgres``), real SMTP server.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select, text, update

from tests.support.factories import login, make_reviewer, submit_concern
from tests.support.webflow import all_mail_bytes, deliver_mail, sign_in
from whistle import crypto, notify, settings_of
from whistle.people import accounts, administration
from whistle.store import db
from whistle.store.models import Concern, OutboxMail


@pytest.fixture
def people(app: Flask) -> dict[str, dict[str, str]]:
    """Two reviewers (MIN_REVIEWERS 2), an administrator who also reviews and whom the
    reporter will exclude (Axel), and an administrator who does not review (Ada)."""
    return {
        "ann": make_reviewer(app, "Ann Reviewer"),
        "bob": make_reviewer(app, "Bob Reviewer"),
        "axe": make_reviewer(app, "Axel Admin, the accused", admin=True),
        "ada": make_reviewer(app, "Ada Admin", admin=True, reviews=False),
    }


def mail_to(app: Flask, email: str) -> int:
    """Every outbox row for ``email``, of any kind, sent or not."""
    with db.new_session(app) as s:
        return s.scalar(select(func.count()).select_from(OutboxMail).where(
            OutboxMail.recipient == email)) or 0


def swap_key(app: Flask, reviewer_id: str) -> None:
    """A database writer replaces a reviewer's public key: the roster check leaves them out."""
    with db.engine_for(app).begin() as conn:
        conn.execute(text("UPDATE reviewers SET public_key = :k WHERE id = :id"),
                     {"k": crypto.generate_keypair().public, "id": reviewer_id})


def without_csrf(html: str) -> str:
    """A page without its CSRF token, the one thing that differs per browser session."""
    return re.sub(r'name="csrf_token" value="[^"]+"', 'name="csrf_token" value=""', html)


def page(browser: FlaskClient, path: str) -> str:
    response = browser.get(path)
    assert response.status_code == 200, response.get_data(as_text=True)[:500]
    return without_csrf(response.get_data(as_text=True))


# -- no mail ------------------------------------------------------------------------------------


@pytest.mark.parametrize("cause", ["too_few_eligible", "roster_check"])
def test_the_excluded_administrator_gets_no_mail_about_an_under_routed_concern(
        app: Flask, client: FlaskClient, smtp: Any, people: dict[str, dict[str, str]],
        cause: str) -> None:
    deliver_mail(app)
    smtp.clear()
    axe, ada = people["axe"], people["ada"]
    if cause == "too_few_eligible":
        # Bob and Axel excluded: Ann alone is eligible, so the concern is under-routed.
        receipt = submit_concern(client, exclude_reviewers=[axe["id"], people["bob"]["id"]])
        routed = {people["ann"]["email"]}
    else:
        # Ann and Bob are two, but Cat's row no longer matches her signed roster entry:
        # the roster check leaves her out and flags the concern under-routed.
        cat = make_reviewer(app, "Cat Reviewer")
        swap_key(app, cat["id"])
        receipt = submit_concern(client, exclude_reviewers=[axe["id"]])
        routed = {people["ann"]["email"], people["bob"]["email"]}
    assert receipt["under_routed"] is True

    sent = deliver_mail(app)
    assert sent == len(routed) + 1  # the routed reviewers, and Ada's alert
    smtp.wait_for(sent)
    recipients = [r for _, rcpts in smtp.envelopes for r in rcpts]
    assert axe["email"] not in recipients and mail_to(app, axe["email"]) == 0
    assert recipients.count(ada["email"]) == 1
    by_recipient = {m["To"]: m["Subject"] for m in smtp.messages}
    assert by_recipient[ada["email"]] == notify.TEMPLATES["admin_attention"][0]
    assert {r for r in by_recipient if r != ada["email"]} == routed
    assert receipt["case_ref"].encode() not in all_mail_bytes(smtp)


def test_a_later_concern_not_about_him_still_alerts_the_same_administrator(
        app: Flask, client: FlaskClient, smtp: Any, people: dict[str, dict[str, str]]) -> None:
    """The alert is withheld per concern, not from the administrator for good."""
    deliver_mail(app)
    smtp.clear()
    submit_concern(client, exclude_reviewers=[people["axe"]["id"], people["bob"]["id"]])
    # Ann and Bob excluded: Axel (an administrator who reviews) alone is routed; under-routed.
    assert submit_concern(client, exclude_reviewers=[people["ann"]["id"],
                                                     people["bob"]["id"]])["under_routed"]
    with db.new_session(app) as s:
        alerts = sorted(s.scalars(select(OutboxMail.recipient).where(
            OutboxMail.template == "admin_attention")))
    # Ada's second alert is absorbed into her first while it is pending.
    assert alerts == sorted([people["ada"]["email"], people["axe"]["email"]])


# -- the same statistics for everyone ----------------------------------------------------------


def test_the_excluded_and_a_colleague_see_byte_identical_statistics(
        app: Flask, client: FlaskClient, people: dict[str, dict[str, str]]) -> None:
    carol = make_reviewer(app, "Carol Reviewer")
    axe, ada = people["axe"], people["ada"]
    for _ in range(6):
        submit_concern(client, category="fraud")
    ref = submit_concern(client, category="fraud",
                         exclude_reviewers=[carol["id"], axe["id"]])["case_ref"]

    # Two reviewers (one excluded, one not), and two administrators (one excluded, one not).
    pages = {who: page(sign_in(app, person), "/reviewer/stats")
             for who, person in [("carol", carol), ("ann", people["ann"]), ("axe", axe),
                                 ("ada", ada)]}
    assert pages["carol"] == pages["ann"]
    assert pages["axe"] == pages["ada"]
    for lang in ("pl", "ar"):
        assert (page(sign_in(app, carol), f"/reviewer/stats?lang={lang}")
                == page(sign_in(app, people["ann"]), f"/reviewer/stats?lang={lang}"))

    # The figures are over every case, the one about them included; nothing names it.
    main = pages["carol"][pages["carol"].index('<main id="main">'):]
    assert main == pages["ada"][pages["ada"].index('<main id="main">'):]
    assert '<dd id="total">7</dd>' in main and ref not in main
    assert "excluded" not in main.lower()


def test_statistics_take_no_viewer(app: Flask) -> None:
    """The domain function cannot depend on who looks: it is not told."""
    import inspect

    from whistle.cases import stats

    params = set(inspect.signature(stats.overview).parameters)
    assert params == {"session", "settings", "category_ids", "today"}


# -- no trace in the attention list ------------------------------------------------------------


def test_the_excluded_administrators_attention_list_does_not_change_when_the_case_arrives(
        app: Flask, client: FlaskClient, people: dict[str, dict[str, str]],
        monkeypatch: pytest.MonkeyPatch) -> None:
    # One row named, the rest counted: so the "oldest of N" line is on the page as well.
    monkeypatch.setattr(administration, "ATTENTION_SHOWN", 1)
    axe, ada, bob = people["axe"], people["ada"], people["bob"]
    for _ in range(2):  # not about Axel: Ann and Bob excluded, Axel alone routed, under-routed
        assert submit_concern(client, exclude_reviewers=[people["ann"]["id"],
                                                         bob["id"]])["under_routed"]
    axe_browser, ada_browser = sign_in(app, axe), sign_in(app, ada)
    axe_before, ada_before = page(axe_browser, "/admin/"), page(ada_browser, "/admin/")
    assert "1 oldest of 2 cases shown." in axe_before

    ref = submit_concern(client, exclude_reviewers=[axe["id"], bob["id"]])["case_ref"]
    assert page(axe_browser, "/admin/") == axe_before
    ada_after = page(ada_browser, "/admin/")
    assert ada_after != ada_before and "1 oldest of 3 cases shown." in ada_after

    # Made the oldest case, and overdue too: it still neither shows nor pushes a row out.
    with db.new_session(app) as s:
        s.execute(update(Concern).where(Concern.id == ref).values(
            created=dt.date(2020, 1, 1), overdue=True))
        s.commit()
    assert page(axe_browser, "/admin/") == axe_before
    assert ref in page(ada_browser, "/admin/")
    keys = app.extensions["whistle_keys"]
    with db.new_session(app) as s:
        seen = administration.attention(s, keys, axe["id"])
        assert seen.total == 2 and ref not in {c.id for c in seen.cases}
        assert administration.attention(s, keys, ada["id"]).total == 3


def test_disabling_a_reviewer_of_the_case_about_him_leaves_no_count_in_the_log(
        app: Flask, client: FlaskClient, people: dict[str, dict[str, str]]) -> None:
    """Axel, excluded, disables Bob, who reviews the case about Axel: the case is left with
    one reviewer. Every reviewer and administrator reads the administration log, so it must
    not count that case (a count over every case, beside Axel's own notice that names only
    the cases he may see, would tell him it exists). The same for a password reset."""
    from whistle.store.models import AdminEvent

    sent = submit_concern(client, exclude_reviewers=[people["axe"]["id"]])
    ref = sent["case_ref"]
    axel = sign_in(app, people["axe"])
    page = axel.get("/admin/").get_data(as_text=True)
    token = page.split('name="csrf_token" value="')[1].split('"')[0]
    done = axel.post(f"/admin/reviewers/{people['bob']['id']}/disable",
                     data={"csrf_token": token}, follow_redirects=True)
    assert done.status_code == 200
    home = done.get_data(as_text=True)
    assert "Disabled Bob Reviewer" in home and ref not in home
    with db.new_session(app) as s:
        assert s.get_one(Concern, ref).under_routed is True  # the case really is left short
        logged = {e.type: e.data for e in s.scalars(select(AdminEvent))}
    assert json.loads(logged["reviewer_disabled"]) == {"reviewer": people["bob"]["id"]}
    shown = axel.get("/reviewer/admin-log").get_data(as_text=True)
    assert "Account disabled" in shown and "too few reviewers" not in shown
    api = client.get("/api/v1/admin/log", headers=login(client, people["axe"])).get_json()
    assert "cases_left_short" not in json.dumps(api)
    # A password reset of Ann, who holds the case: no count of her cases either.
    with db.new_session(app) as s:
        waiting = accounts.reset_password(s, settings_of(app), people["ann"]["id"],
                                          "a long new password for ann", people["axe"]["id"],
                                          keys=app.extensions["whistle_keys"])
        assert ref in waiting
        reset = s.scalars(select(AdminEvent.data).where(
            AdminEvent.type == "password_reset")).one()
    assert json.loads(reset) == {"reviewer": people["ann"]["id"]}
    shown = axel.get("/reviewer/admin-log").get_data(as_text=True)
    assert "Password reset" in shown and "shared again" not in shown
