"""Issue 3, deadlines: content-free reminders, escalation exactly once, overdue shown to
reviewers and the reporter, and the inbox filtered and sorted by status and overdue.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select, update

from tests.support.factories import login, make_reviewer, submit_concern
from tests.support.webflow import (
    all_mail_bytes,
    deliver_mail,
    reporter_status,
    sign_in,
    status_page,
)
from whistle import notify, settings_of
from whistle.cases import deadlines
from whistle.store import db
from whistle.store.models import AuditEvent, Concern, OutboxMail, utcnow


def run(app: Flask, now: dt.datetime) -> deadlines.DeadlineReport:
    with db.new_session(app) as s:
        return deadlines.run(s, settings_of(app), app.extensions["whistle_keys"], now)


def pending(app: Flask) -> list[tuple[str, str]]:
    with db.new_session(app) as s:
        rows = s.execute(select(OutboxMail.recipient, OutboxMail.template)
                         .where(OutboxMail.sent.is_(None))
                         .order_by(OutboxMail.recipient, OutboxMail.template))
        return [(r, t) for r, t in rows]


def sent_everything(app: Flask) -> None:
    with db.new_session(app) as s:
        s.execute(update(OutboxMail).values(sent=utcnow()))
        s.commit()


def days(n: int) -> dt.datetime:
    return utcnow() + dt.timedelta(days=n)


@pytest.fixture
def people(app: Flask) -> dict[str, dict[str, str]]:
    # Ann and Bob cover the concern's unit, so routing picks them and Ida, the one
    # independent reviewer not excluded, is the escalation reviewer (issue 19).
    return {
        "ann": make_reviewer(app, "Ann Reviewer", units=["Education"]),
        "bob": make_reviewer(app, "Bob Reviewer", units=["Education"]),
        "ida": make_reviewer(app, "Ida Independent", independent=True),
        "xen": make_reviewer(app, "Xen Independent but excluded", independent=True),
        "adm": make_reviewer(app, "Ada Admin", admin=True, reviews=False),
        "axe": make_reviewer(app, "Axel Admin but excluded", admin=True, reviews=False),
    }


def submit_about(client: FlaskClient, people: dict[str, dict[str, str]]) -> dict[str, Any]:
    # Exclude both independents but Ida, and axe too: routing picks ann and bob (their unit).
    return submit_concern(client, unit="Education",
                          exclude_reviewers=[people["xen"]["id"], people["axe"]["id"]])


def test_reminders_go_to_the_assigned_reviewers_once_shortly_before_the_deadline(
        app: Flask, client: FlaskClient, smtp: Any, people: dict[str, dict[str, str]]) -> None:
    receipt = submit_about(client, people)
    sent_everything(app)  # the "new case" mails
    assert run(app, days(4)).reminded == []  # REMINDER_DAYS_BEFORE = 2, deadline in 7 days
    report = run(app, days(5))
    assert report.reminded == [receipt["case_ref"]] and report.escalated == []
    with db.new_session(app) as s:
        assigned = {a.reviewer.email for a in
                    s.get(Concern, receipt["case_ref"]).assignments}  # type: ignore[union-attr]
    assert sorted(pending(app)) == sorted((email, "reminder") for email in assigned)
    assert run(app, days(6)).reminded == []  # once, not on every run
    assert len(pending(app)) == len(assigned)

    deliver_mail(app)
    mails = smtp.wait_for(len(assigned))
    assert {m["Subject"] for m in mails} == {notify.TEMPLATES["reminder"][0]}
    assert receipt["case_ref"].encode() not in all_mail_bytes(smtp)


def test_an_overdue_case_is_escalated_once_to_independent_reviewers_and_admins_not_excluded_ones(
        app: Flask, client: FlaskClient, smtp: Any, people: dict[str, dict[str, str]]) -> None:
    receipt = submit_about(client, people)
    ref, token = receipt["case_ref"], receipt["token"]
    sent_everything(app)

    report = run(app, days(8))
    assert report.escalated == [ref] and report.overdue == 1
    # Issue 19: tier 1 gives the case to the escalation reviewer (Ida) with access; the
    # administrators are alerted at tier 2 (or at tier 1 when no one could be given it).
    assert pending(app) == [(people["ida"]["email"], "escalation")]
    with db.new_session(app) as s:
        concern = s.get(Concern, ref)
        assert concern is not None and concern.overdue and concern.escalated_ack
        assert concern.escalation_tier == 1
        overdue_events = s.scalar(select(func.count()).select_from(AuditEvent).where(
            AuditEvent.concern_id == ref, AuditEvent.type == "acknowledge_overdue"))
    assert overdue_events == 1
    # The mail goes to someone who can act on it: Ida now opens the case she is told of.
    opened = client.get(f"/api/v1/cases/{ref}", headers=login(client, people["ida"]))
    assert opened.status_code == 200 and opened.get_json()["case_ref"] == ref

    # Not on every run: the next runs add no mail and no event (until tier 2 is due).
    sent_everything(app)
    assert run(app, days(9)).escalated == [] and run(app, days(15)).escalated == []
    assert pending(app) == []
    assert run(app, days(16)).escalated == [ref]  # tier 2: nobody acted for 7 days
    assert pending(app) == [(people["adm"]["email"], "admin_attention")]
    sent_everything(app)
    assert run(app, days(17)).escalated == [] and run(app, days(30)).escalated == []
    assert pending(app) == []
    with db.new_session(app) as s:
        assert s.scalar(select(func.count()).select_from(AuditEvent).where(
            AuditEvent.concern_id == ref, AuditEvent.type == "acknowledge_overdue")) == 1

    # The reporter sees that the deadline passed.
    seen = reporter_status(client, token)
    assert seen["overdue"] is True and "acknowledge_overdue" in [e["type"] for e in seen["events"]]
    assert "A deadline on your report has passed." in status_page(client, token)


def test_escalation_mail_is_content_free_and_never_reaches_the_excluded(
        app: Flask, client: FlaskClient, smtp: Any, people: dict[str, dict[str, str]]) -> None:
    receipt = submit_about(client, people)
    run(app, days(8))
    run(app, days(16))  # tier 2 alerts the administrators (issue 19)
    sent = deliver_mail(app)
    smtp.wait_for(sent)
    recipients = {r for _, rcpts in smtp.envelopes for r in rcpts}
    assert people["xen"]["email"] not in recipients and people["axe"]["email"] not in recipients
    assert {people["ida"]["email"], people["adm"]["email"]} <= recipients
    assert receipt["case_ref"].encode() not in all_mail_bytes(smtp)
    bodies = {m.get_content().replace("\r\n", "\n") for m in smtp.messages}
    inbox = notify.inbox_link(app.config["PUBLIC_URL"])  # the one link in them (issue 21)
    assert bodies <= {body.replace("{inbox}", inbox) for _, body in notify.TEMPLATES.values()}


def test_the_feedback_deadline_counts_from_acknowledgement_and_escalates_once_too(
        app: Flask, client: FlaskClient, people: dict[str, dict[str, str]]) -> None:
    receipt = submit_about(client, people)
    ref = receipt["case_ref"]
    with db.new_session(app) as s:
        assignee = s.get(Concern, ref).assignments[0].reviewer_id  # type: ignore[union-attr]
    reviewer = next(p for p in people.values() if p["id"] == assignee)
    headers = login(client, reviewer)
    client.post(f"/api/v1/cases/{ref}/transitions", json={"to": "acknowledged"}, headers=headers)
    feedback_by = dt.date.fromisoformat(reporter_status(client, receipt["token"])["feedback_by"])
    assert feedback_by == utcnow().date() + dt.timedelta(days=90)

    assert run(app, days(30)).escalated == []  # acknowledged in time: the ack deadline is met
    assert run(app, days(88)).reminded == [ref]
    assert run(app, days(91)).escalated == [ref]
    assert run(app, days(92)).escalated == []
    types = [e["type"] for e in reporter_status(client, receipt["token"])["events"]]
    assert types.count("feedback_overdue") == 1 and "acknowledge_overdue" not in types


def test_taking_the_owed_step_clears_overdue_but_the_trail_keeps_it(
        app: Flask, client: FlaskClient, people: dict[str, dict[str, str]]) -> None:
    receipt = submit_about(client, people)
    ref = receipt["case_ref"]
    run(app, days(8))
    with db.new_session(app) as s:
        assignee = s.get(Concern, ref).assignments[0].reviewer_id  # type: ignore[union-attr]
    reviewer = next(p for p in people.values() if p["id"] == assignee)
    headers = login(client, reviewer)
    assert client.get("/api/v1/cases?status=overdue", headers=headers).get_json()["total"] == 1
    client.post(f"/api/v1/cases/{ref}/transitions", json={"to": "acknowledged"}, headers=headers)
    assert client.get("/api/v1/cases?status=overdue", headers=headers).get_json()["total"] == 0
    seen = reporter_status(client, receipt["token"])
    assert seen["overdue"] is False
    assert "acknowledge_overdue" in [e["type"] for e in seen["events"]]


def test_deadlines_command_escalates_a_case_past_its_deadline(
        app: Flask, client: FlaskClient, people: dict[str, dict[str, str]]) -> None:
    ref = submit_about(client, people)["case_ref"]
    with db.new_session(app) as s:
        s.execute(update(Concern).where(Concern.id == ref).values(
            acknowledge_by=utcnow().date() - dt.timedelta(days=1)))
        s.commit()
    runner = app.test_cli_runner()
    first = runner.invoke(args=["deadlines"])
    assert first.exit_code == 0, first.output
    assert "1 case(s) escalated" in first.output and "1 case(s) overdue" in first.output
    second = runner.invoke(args=["deadlines"])
    assert second.exit_code == 0 and "0 case(s) escalated" in second.output
    assert "1 case(s) overdue" in second.output


def test_inbox_filters_and_sorts_by_status_and_overdue(
        app: Flask, client: FlaskClient) -> None:
    ann = make_reviewer(app, "Ann Reviewer")
    make_reviewer(app, "Bob Reviewer")
    refs = [submit_concern(client)["case_ref"] for _ in range(4)]
    headers = login(client, ann)
    client.post(f"/api/v1/cases/{refs[1]}/transitions", json={"to": "acknowledged"},
                headers=headers)
    client.post(f"/api/v1/cases/{refs[2]}/transitions", json={"to": "investigating"},
                headers=headers)
    with db.new_session(app) as s:  # the oldest received case is overdue
        s.execute(update(Concern).where(Concern.id == refs[0]).values(
            acknowledge_by=utcnow().date() - dt.timedelta(days=1)))
        s.commit()
    run(app, utcnow())

    def listed(query: str) -> list[str]:
        body = client.get(f"/api/v1/cases?{query}", headers=headers).get_json()
        return [c["case_ref"] for c in body["cases"]]

    assert listed("status=overdue") == [refs[0]]
    assert listed("status=acknowledged") == [refs[1]]
    assert set(listed("status=received")) == {refs[0], refs[3]}
    assert listed("sort=overdue")[0] == refs[0]
    by_status = listed("sort=status")
    assert by_status.index(refs[1]) < by_status.index(refs[2])
    assert by_status.index(refs[3]) < by_status.index(refs[1])
    assert client.get("/api/v1/cases?sort=sideways", headers=headers).status_code == 400
    assert client.get("/api/v1/cases?status=lost", headers=headers).status_code == 400

    browser = sign_in(app, ann)
    html = browser.get("/reviewer/").get_data(as_text=True)
    assert html.index(refs[0]) < min(html.index(r) for r in refs[1:])  # overdue first
    assert 'class="overdue"' in html
    only = browser.get("/reviewer/?status=overdue").get_data(as_text=True)
    assert refs[0] in only and all(r not in only for r in refs[1:]) and "1 case." in only
    by_status_html = browser.get("/reviewer/?sort=status").get_data(as_text=True)
    assert by_status_html.index(refs[3]) < by_status_html.index(refs[2])

