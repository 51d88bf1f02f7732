"""The administration log: every change to accounts, routing and the report form is a
link in one hash chain, with who made it; editing or deleting a link is detected by
``audit verify`` and shown on /reviewer/admin-log; the log holds no secret and no email address."""

from __future__ import annotations

import json
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import delete, select, update

from tests.support.factories import PASSWORD, make_reviewer, submit_concern
from tests.support.webflow import csrf, post_form, sign_in
from whistle.people import adminlog
from whistle.store import db
from whistle.store.models import AdminEvent


@pytest.fixture
def admin(app: Flask) -> dict[str, str]:
    return make_reviewer(app, "Ada Admin", admin=True, reviews=False)


def events(app: Flask) -> list[tuple[str, str, dict[str, Any]]]:
    with db.new_session(app) as s:
        return [(e.type, e.actor, json.loads(e.data))
                for e in s.scalars(select(AdminEvent).order_by(AdminEvent.seq))]


def test_each_change_an_administrator_makes_is_logged_with_who_made_it(
        app: Flask, client: FlaskClient, admin: dict[str, str]) -> None:
    ann = make_reviewer(app, "Ann Reviewer", units=["Education"])
    make_reviewer(app, "Bob Reviewer")
    before = len(events(app))
    browser = sign_in(app, admin)

    # Account changes while the roster is open (the first concern seals it: after that
    # they are proposals for a second person, tests/test_roster.py and the approvals tests).
    post_form(browser, "/admin/reviewers", {"name": "Nia New", "email": "nia@example.org",
                                            "units": ["Health"], "senior": "yes"},
              "/admin/reviewers/new")
    page = f"/admin/reviewers/{ann['id']}"
    post_form(browser, page, {"units": ["Health"], "independent": "yes"}, page)
    post_form(browser, page, {"units": ["Health"], "independent": "yes"}, page)  # no change
    with db.new_session(app) as s:
        nia = s.scalars(select(AdminEvent.data).where(
            AdminEvent.type == "reviewer_enrolled").order_by(AdminEvent.seq.desc())).first()
    submit_concern(client, exclude_reviewers=[json.loads(nia or "{}")["reviewer"]])
    post_form(browser, "/admin/settings", {
        "categories": "conduct | Conduct\nbullying | Bullying",
        "units": "Education\nHealth\nNorth school", "advice": "Call the union: 0100 000"},
        "/admin/settings")
    post_form(browser, f"/admin/reviewers/{ann['id']}/disable", {}, "/admin/")

    everything = events(app)[before:]
    # Each change to a roster entry is followed by the instance's signature over the new
    # entry (whistle.people.roster); the sealing at the first concern is logged too.
    assert [d["reviewer"] for t, _a, d in everything if t == "roster_entry_signed"] == [
        d["reviewer"] for t, _a, d in everything
        if t in ("reviewer_enrolled", "reviewer_changed", "reviewer_disabled")]
    assert [(t, d) for t, _a, d in everything if t == "roster_sealed"] == [
        ("roster_sealed", {"by": "first_concern"})]
    logged = [e for e in everything if e[0] not in ("roster_entry_signed", "roster_sealed")]
    assert [(t, a) for t, a, _d in logged] == [
        ("reviewer_enrolled", admin["id"]), ("reviewer_changed", admin["id"]),
        ("form_options_changed", admin["id"]), ("advice_changed", admin["id"]),
        ("reviewer_disabled", admin["id"])]
    enrolled, changed, form, advice, disabled = (d for _t, _a, d in logged)
    assert enrolled["roles"] == ["reviewer", "senior"] and enrolled["units"] == ["Health"]
    assert changed == {"reviewer": ann["id"],
                       "before": {"units": ["Education"], "senior": False, "independent": False},
                       "after": {"units": ["Health"], "senior": False, "independent": True}}
    assert {"id": "bullying", "label": "Bullying"} in form["after"]["categories"]
    assert "North school" in form["after"]["units"] and "North school" not in form["before"]["units"]
    assert advice == {"characters": len("Call the union: 0100 000")}
    assert disabled == {"reviewer": ann["id"]}  # no count of cases (an excluded reader)

    shown = browser.get("/reviewer/admin-log").get_data(as_text=True)
    assert "The chain of" in shown and "is intact" in shown
    assert "Ann Reviewer: units added: Health; units removed: Education; independent: no -&gt; yes" \
        in shown
    assert "categories added: bullying; categories removed: safeguarding" in shown
    assert "relabelled: conduct: Conduct of a colleague or manager -&gt; Conduct" in shown
    assert "Account disabled" in shown
    assert "Ada Admin" in shown  # the actor, by name


def test_the_command_line_and_first_run_setup_are_named_as_actors(app: Flask) -> None:
    runner = app.test_cli_runner()
    result = runner.invoke(args=["reviewer", "add", "--name", "Cli Person", "--email",
                                 "cli@example.org", "--password-stdin"], input=PASSWORD + "\n")
    assert result.exit_code == 0, result.output
    rid = result.output.strip().splitlines()[-1]
    result = runner.invoke(args=["reviewer", "reset-password", rid, "--password-stdin"],
                           input="another long password\n")
    assert result.exit_code == 0, result.output
    assert runner.invoke(args=["reviewer", "disable", rid]).exit_code == 0
    assert [(t, a) for t, a, _d in events(app) if t != "roster_entry_signed"][-3:] == [
        ("reviewer_enrolled", adminlog.OPERATOR), ("password_reset", adminlog.OPERATOR),
        ("reviewer_disabled", adminlog.OPERATOR)]


def test_the_log_holds_no_password_key_or_email_address(
        app: Flask, admin: dict[str, str]) -> None:
    browser = sign_in(app, admin)
    post_form(browser, "/admin/reviewers", {"name": "Nia New", "email": "nia@example.org",
                                            "password": "a chosen first password"},
              "/admin/reviewers/new")
    with db.new_session(app) as s:
        raw = " ".join(e.data for e in s.scalars(select(AdminEvent)))
    assert raw and "@" not in raw and "password" not in raw.replace("password_", "")
    assert "a chosen first password" not in raw and "key" not in raw


def test_audit_verify_and_the_log_page_detect_an_edited_or_deleted_event(
        app: Flask, admin: dict[str, str]) -> None:
    for n in range(3):
        make_reviewer(app, f"Reviewer {n}")
    runner = app.test_cli_runner()
    ok = runner.invoke(args=["audit", "verify"])
    # Four enrolments, each followed by the signature over the new roster entry.
    assert ok.exit_code == 0 and "ok: 8 administration log events verified" in ok.output

    with db.new_session(app) as s:  # an administrator covering their tracks
        s.execute(update(AdminEvent).where(AdminEvent.seq == 2).values(
            data=json.dumps({"reviewer": "someone else", "roles": [], "units": []})))
        s.commit()
    broken = runner.invoke(args=["audit", "verify"])
    assert broken.exit_code == 1
    assert "BROKEN: administration log event 2: event altered" in broken.output
    page = sign_in(app, admin).get("/reviewer/admin-log").get_data(as_text=True)
    assert 'id="log-broken"' in page and "event 2" in page

    with db.new_session(app) as s:
        s.execute(delete(AdminEvent).where(AdminEvent.seq == 2))
        s.commit()
    gone = runner.invoke(args=["audit", "verify"])
    assert gone.exit_code == 1 and "administration log event 3: expected event 2" in gone.output


def test_every_reviewer_can_read_the_log_and_strangers_cannot(
        app: Flask, client: FlaskClient, admin: dict[str, str]) -> None:
    reviewer = make_reviewer(app, "Ann Reviewer")
    browser = sign_in(app, admin)
    post_form(browser, f"/admin/reviewers/{reviewer['id']}", {"units": ["Health"]},
              f"/admin/reviewers/{reviewer['id']}")
    assert client.get("/reviewer/admin-log").status_code == 302  # to sign in
    shown = sign_in(app, reviewer).get("/reviewer/admin-log")
    assert shown.status_code == 200
    assert "Routing of a reviewer changed" in shown.get_data(as_text=True)
    assert 'href="/reviewer/admin-log"' in sign_in(app, reviewer).get("/reviewer/").get_data(True)


def test_concurrent_changes_each_get_their_own_link(app: Flask, admin: dict[str, str]) -> None:
    """Administrators saving at the same moment (threads here, workers or machines in
    production): two transactions must never both append link n+1 (on PostgreSQL a lock
    orders them; on SQLite the write lock does)."""
    from concurrent.futures import ThreadPoolExecutor

    browsers = [sign_in(app, admin) for _ in range(6)]
    tokens = [csrf(b, "/admin/reviewers/new") for b in browsers]

    def enrol(n: int) -> int:
        return browsers[n].post("/admin/reviewers", data={
            "csrf_token": tokens[n], "name": f"Parallel {n}",
            "email": f"p{n}@example.org"}).status_code

    with ThreadPoolExecutor(max_workers=6) as pool:
        assert list(pool.map(enrol, range(6))) == [201] * 6
    logged = [(t, a) for t, a, _d in events(app)]
    assert logged.count(("reviewer_enrolled", admin["id"])) == 6
    with db.new_session(app) as s:
        assert adminlog.verify(s) == (14, None)  # 7 enrolments, each with its signature


def test_administrators_can_copy_the_log_out_through_the_api(
        app: Flask, client: FlaskClient, admin: dict[str, str]) -> None:
    from tests.support.factories import login

    reviewer = make_reviewer(app, "Ann Reviewer")
    headers = login(client, admin)
    everything = client.get("/api/v1/admin/log", headers=headers).get_json()
    # Two enrolments, each followed by the signature over the new roster entry.
    assert [e["seq"] for e in everything["events"]] == [1, 2, 3, 4]
    assert everything["events"][2]["data"]["reviewer"] == reviewer["id"]
    assert everything["chain"] == {"events": 4, "intact": True, "broken": None}
    assert everything["next"] is None
    later = client.get("/api/v1/admin/log?after=1", headers=headers).get_json()
    assert [e["seq"] for e in later["events"]] == [2, 3, 4]
    with db.new_session(app) as s:  # the hash the API gives is the chain's
        assert s.get(AdminEvent, 2).hash.hex() == later["events"][0]["hash"]  # type: ignore[union-attr]

    for bad in ("-1", "x", "1.5", "9" * 13):
        response = client.get(f"/api/v1/admin/log?after={bad}", headers=headers)
        assert response.status_code == 400 and response.get_json()["error"] == "invalid_input"
    as_reviewer = client.get("/api/v1/admin/log", headers=login(client, reviewer))
    assert as_reviewer.status_code == 200 and len(as_reviewer.get_json()["events"]) == 4
    assert client.get("/api/v1/admin/log").status_code == 401

    with db.new_session(app) as s:
        s.execute(update(AdminEvent).where(AdminEvent.seq == 1).values(actor="someone"))
        s.commit()
    tampered = client.get("/api/v1/admin/log", headers=headers).get_json()["chain"]
    assert tampered == {"events": 0, "intact": False,
                        "broken": {"seq": 1, "reason": "event altered"}}
