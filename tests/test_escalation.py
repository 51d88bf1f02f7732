"""Issue 19, items 1, 2 and 7 (deadline mail): escalation hands over access, deadlines never
stop, and an excluded person is never told.

Replayed as an insider would try it: the routed reviewers let a concern lapse; on the day
after the acknowledgement deadline ``flask --app app deadlines`` gives it, with its keys, to
the escalation reviewers (withheld copies sealed at submission), without the recovery key;
a second tier follows after ``ESCALATION_DAYS``; a never-acknowledged case owes feedback
from submission and escalates again when that passes. Real app, real database (SQLite, or
PostgreSQL with ``WHISTLE_TEST_DB=postgres``), real SMTP.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select, update

from tests.support.factories import PASSWORD, login, make_reviewer, submit_concern
from tests.support.webflow import deliver_mail, reporter_status, sign_in, status_page
from whistle.cases import recovery
from whistle.store import db
from whistle.store.models import (
    Assignment,
    AuditEvent,
    Concern,
    InboxCount,
    OutboxMail,
    WrappedKey,
    utcnow,
)

DETAILS = "The ward manager falsifies the night checks."

People = dict[str, dict[str, str]]


@pytest.fixture
def people(app: Flask) -> People:
    """Ann and Bob cover the concern's unit (routed); Ida and Ian are independent and cover
    every category (the two escalation reviewers); Ivy is independent for fraud only (tier 2);
    Xen is independent but excluded; Rex is an administrator who reviews (tier 2); Ada is an
    administrator who does not review; Axe is an administrator the reporter excluded."""
    return {
        "ann": make_reviewer(app, "Ann Routed", units=["Education"]),
        "bob": make_reviewer(app, "Bob Routed", units=["Education"]),
        "ida": make_reviewer(app, "Ida Independent", independent=True),
        "ian": make_reviewer(app, "Ian Independent", independent=True),
        "ivy": _fraud_only(app, make_reviewer(app, "Ivy Independent", independent=True)),
        "xen": make_reviewer(app, "Xen Excluded", independent=True),
        "rex": make_reviewer(app, "Rex Reviewing Admin", admin=True),
        "ada": make_reviewer(app, "Ada Admin", admin=True, reviews=False),
        "axe": make_reviewer(app, "Axe Excluded Admin", admin=True, reviews=False),
    }


def _fraud_only(app: Flask, person: dict[str, str]) -> dict[str, str]:
    """Covering another category makes routing rank Ivy after Ida and Ian; re-signed on the
    roster like any change of categories."""
    from whistle.people import roster
    from whistle.store.models import Reviewer

    with db.new_session(app) as s:
        row = s.get(Reviewer, person["id"])
        assert row is not None
        row.categories = json.dumps(["fraud"])
        roster.sign_entry(row, app.extensions["whistle_keys"], "test", s)
        s.commit()
    return person


def submit(client: FlaskClient, people: People, **fields: Any) -> dict[str, Any]:
    return submit_concern(client, details=DETAILS, unit="Education",
                          exclude_reviewers=[people["xen"]["id"], people["axe"]["id"]],
                          **fields)


def deadlines(app: Flask, days_ahead: int) -> str:
    """``flask --app app deadlines --as-of <today + days_ahead>``; its output."""
    day = (utcnow().date() + dt.timedelta(days=days_ahead)).isoformat()
    result = app.test_cli_runner().invoke(args=["deadlines", "--as-of", day])
    assert result.exit_code == 0, result.output
    return result.output


def escalated(output: str) -> int:
    found = re.search(r"(\d+) case\(s\) escalated", output)
    assert found, output
    return int(found.group(1))


def case_view(client: FlaskClient, person: dict[str, str], ref: str) -> Any:
    return client.get(f"/api/v1/cases/{ref}", headers=login(client, person))


def trail(app: Flask, ref: str, type_: str | None = None) -> list[tuple[str, str, dict[str, Any]]]:
    with db.new_session(app) as s:
        query = select(AuditEvent.type, AuditEvent.actor, AuditEvent.data).where(
            AuditEvent.concern_id == ref).order_by(AuditEvent.seq)
        if type_ is not None:
            query = query.where(AuditEvent.type == type_)
        return [(t, a, json.loads(d)) for t, a, d in s.execute(query)]


# The outbox keeps no queueing order (random ids, issue 20): list each person's mail in the
# order these tests' steps cause them.
_STEP = {"activity": 0, "escalation": 1, "admin_attention": 2}


def mailed(app: Flask) -> list[tuple[str, str]]:
    """Every mail queued so far, sent or not: (recipient, template)."""
    with db.new_session(app) as s:
        rows = [(r, t) for r, t in s.execute(
            select(OutboxMail.recipient, OutboxMail.template))]
    return sorted(rows, key=lambda row: (row[0], _STEP.get(row[1], 9), row[1]))


def mail_to(app: Flask, person: dict[str, str]) -> list[str]:
    return [t for r, t in mailed(app) if r == person["email"]]


def no_recovery_key_used(app: Flask) -> bool:
    with db.new_session(app) as s:
        return s.scalars(select(AuditEvent.seq).where(
            AuditEvent.actor == recovery.ACTOR)).first() is None


# -- tier 1 -----------------------------------------------------------------------------------


def test_on_the_day_after_the_ack_deadline_the_escalation_reviewers_can_open_and_act(
        app: Flask, client: FlaskClient, smtp: Any, people: People) -> None:
    receipt = submit(client, people)
    ref, token = receipt["case_ref"], receipt["token"]
    with db.new_session(app) as s:
        routed = set(s.scalars(select(Assignment.reviewer_id).where(
            Assignment.concern_id == ref)))
        withheld = set(s.scalars(select(WrappedKey.recipient_id).where(
            WrappedKey.concern_id == ref, WrappedKey.recipient_kind == "escalation")))
    assert routed == {people["ann"]["id"], people["bob"]["id"]}
    assert withheld == {people["ida"]["id"], people["ian"]["id"]}
    assert case_view(client, people["ida"], ref).status_code == 404  # before: no access

    assert escalated(deadlines(app, 7)) == 0  # the deadline day itself: still on time
    assert escalated(deadlines(app, 8)) == 1

    for name in ("ida", "ian"):
        opened = case_view(client, people[name], ref)
        assert opened.status_code == 200, opened.get_data(as_text=True)
        assert opened.get_json()["details"] == DETAILS  # decrypted with their own key
        assert mail_to(app, people[name]) == ["escalation"]
        listed = client.get("/api/v1/cases", headers=login(client, people[name])).get_json()
        assert [c["case_ref"] for c in listed["cases"]] == [ref] and listed["total"] == 1
    # ... and act on it.
    acted = client.post(f"/api/v1/cases/{ref}/transitions", json={"to": "acknowledged"},
                        headers=login(client, people["ida"]))
    assert acted.status_code == 200, acted.get_data(as_text=True)

    # The excluded independent reviewer still cannot see it and was never told.
    assert case_view(client, people["xen"], ref).status_code == 404
    assert mail_to(app, people["xen"]) == [] and mail_to(app, people["axe"]) == []
    assert no_recovery_key_used(app)
    (event,) = trail(app, ref, "escalated")
    assert event[1] == "system" and event[2]["tier"] == 1 and event[2]["deadline"] == "acknowledge"
    assert sorted(event[2]["reviewers"]) == sorted([people["ida"]["id"], people["ian"]["id"]])

    # The reporter sees that the concern was passed on.
    types = [e["type"] for e in reporter_status(client, token)["events"]]
    assert types.index("acknowledge_overdue") < types.index("escalated")
    assert "passed to more independent reviewers" in status_page(client, token)
    sent = deliver_mail(app)
    assert len(smtp.wait_for(sent)) == sent
    assert ref.encode() not in b"".join(m.as_bytes() for m in smtp.messages)


def test_before_escalation_the_withheld_copies_show_up_nowhere(
        app: Flask, client: FlaskClient, people: People) -> None:
    ref = submit(client, people)["case_ref"]
    ida, ivy = people["ida"], people["ivy"]
    headers = login(client, ida)
    listed = client.get("/api/v1/cases", headers=headers).get_json()
    assert listed["cases"] == [] and listed["total"] == 0
    for status in ("received", "open", "overdue"):
        assert client.get(f"/api/v1/cases?status={status}", headers=headers).get_json()[
            "total"] == 0
    assert client.get(f"/api/v1/cases/{ref}", headers=headers).status_code == 404
    assert client.post(f"/api/v1/cases/{ref}/messages", json={"body": "hello"},
                       headers=headers).status_code == 404
    browser = sign_in(app, ida)
    assert ref not in browser.get("/reviewer/").get_data(as_text=True)
    assert browser.get(f"/reviewer/cases/{ref}").status_code == 404
    with db.new_session(app) as s:
        assert s.scalars(select(InboxCount).where(InboxCount.reviewer_id == ida["id"])).all() == []
        assert recovery.waiting_for_keys(s, ida["id"]) == []
    assert mail_to(app, ida) == [] and mail_to(app, people["ian"]) == []

    def main(person: dict[str, str]) -> str:
        page = sign_in(app, person).get("/reviewer/stats").get_data(as_text=True)
        return page[page.index('<main id="main">'):page.index("</main>")]

    assert main(ida) == main(ivy)  # the same figures as someone without a withheld copy


# -- tier 2 -----------------------------------------------------------------------------------


def test_a_second_tier_after_escalation_days_not_before_and_each_tier_once(
        app: Flask, client: FlaskClient, people: People) -> None:
    ref = submit(client, people)["case_ref"]
    assert escalated(deadlines(app, 8)) == 1
    # A tier-1 reviewer reads the case (and does nothing): their session wraps withheld
    # copies for the tier-2 people, so that tier 2 needs no key holder.
    assert case_view(client, people["ida"], ref).status_code == 200
    with db.new_session(app) as s:
        withheld = set(s.scalars(select(WrappedKey.recipient_id).where(
            WrappedKey.concern_id == ref, WrappedKey.recipient_kind == "escalation")))
    assert withheld == {people["ivy"]["id"], people["rex"]["id"]}
    (handed,) = trail(app, ref, "escalation_keys")
    assert handed[1] == people["ida"]["id"]
    assert case_view(client, people["ivy"], ref).status_code == 404  # still withheld

    assert escalated(deadlines(app, 15)) == 0  # ESCALATION_DAYS (7) full days to act
    assert case_view(client, people["ivy"], ref).status_code == 404
    assert escalated(deadlines(app, 16)) == 1  # nobody acted: tier 2
    for name in ("ivy", "rex"):
        opened = case_view(client, people[name], ref)
        assert opened.status_code == 200 and opened.get_json()["details"] == DETAILS
    assert mail_to(app, people["ivy"]) == ["escalation"]
    assert mail_to(app, people["ada"]) == ["admin_attention"]  # content-free alert
    assert mail_to(app, people["rex"]) == ["escalation", "admin_attention"]
    assert mail_to(app, people["axe"]) == [] and mail_to(app, people["xen"]) == []
    assert case_view(client, people["xen"], ref).status_code == 404

    assert escalated(deadlines(app, 17)) == 0 and escalated(deadlines(app, 40)) == 0
    tiers = [data["tier"] for _t, _a, data in trail(app, ref, "escalated")]
    assert tiers == [1, 2]
    tier_two = trail(app, ref, "escalated")[1][2]
    assert sorted(tier_two["reviewers"]) == sorted([people["ivy"]["id"], people["rex"]["id"]])
    assert tier_two["awaiting_keys"] == []
    assert no_recovery_key_used(app)
    recount = app.test_cli_runner().invoke(args=["inbox", "recount", "--check"])
    assert recount.exit_code == 0, recount.output  # the inbox counts saw every assignment


def test_without_a_key_holder_reading_tier_two_waits_for_the_next_one(
        app: Flask, client: FlaskClient, people: People) -> None:
    """No one read the case between the tiers: the tier-2 people are assigned and told,
    their keys wait; the next key holder who reads it hands them over."""
    ref = submit(client, people)["case_ref"]
    deadlines(app, 8)
    assert escalated(deadlines(app, 16)) == 1
    waiting = case_view(client, people["ivy"], ref)
    assert waiting.status_code == 409 and waiting.get_json()["error"] == "keys_pending"
    tier_two = trail(app, ref, "escalated")[1][2]
    assert sorted(tier_two["awaiting_keys"]) == sorted([people["ivy"]["id"], people["rex"]["id"]])

    assert case_view(client, people["ian"], ref).status_code == 200  # a key holder reads it
    for name in ("ivy", "rex"):
        opened = case_view(client, people[name], ref)
        assert opened.status_code == 200 and opened.get_json()["details"] == DETAILS
    with db.new_session(app) as s:
        concern = s.get(Concern, ref)
        assert concern is not None and not concern.handover_due
    assert no_recovery_key_used(app)


def test_acting_after_tier_one_stops_the_second_tier(
        app: Flask, client: FlaskClient, people: People) -> None:
    ref = submit(client, people)["case_ref"]
    deadlines(app, 8)
    note = client.post(f"/api/v1/cases/{ref}/notes", json={"body": "On it."},
                       headers=login(client, people["ian"]))
    assert note.status_code == 201, note.get_data(as_text=True)
    assert escalated(deadlines(app, 20)) == 0
    assert [d["tier"] for _t, _a, d in trail(app, ref, "escalated")] == [1]
    assert case_view(client, people["ivy"], ref).status_code == 404


# -- deadlines that never stop ------------------------------------------------------------


def test_a_never_acknowledged_case_owes_feedback_from_submission_and_escalates_again(
        app: Flask, client: FlaskClient, people: People) -> None:
    receipt = submit(client, people)
    ref, token = receipt["case_ref"], receipt["token"]
    feedback_by = dt.date.fromisoformat(reporter_status(client, token)["feedback_by"])
    assert feedback_by == utcnow().date() + dt.timedelta(days=7 + 90)

    deadlines(app, 8)
    deadlines(app, 16)
    with db.new_session(app) as s:  # what the tiers queued went out
        s.execute(update(OutboxMail).values(sent=utcnow()))
        s.commit()
    assert escalated(deadlines(app, 97)) == 0  # the feedback deadline itself
    assert escalated(deadlines(app, 98)) == 1  # past it, never acknowledged: escalated again
    assert escalated(deadlines(app, 99)) == 0
    (passed,) = trail(app, ref, "feedback_overdue")
    assert passed[2]["due"] == feedback_by.isoformat() and passed[2]["tier"] == 2
    assert passed[2]["reviewers_told"] == 6  # ann, bob, ida, ian, ivy, rex
    assert mail_to(app, people["ann"]) == ["activity", "escalation"]
    assert mail_to(app, people["ada"]) == ["admin_attention"] * 2  # tier 2, and now
    assert mail_to(app, people["axe"]) == [] and mail_to(app, people["xen"]) == []
    types = [e["type"] for e in reporter_status(client, token)["events"]]
    assert types.count("feedback_overdue") == 1 and types.count("escalated") == 2
    with db.new_session(app) as s:
        concern = s.get(Concern, ref)
        assert concern is not None and concern.overdue and concern.status == "received"


def test_acknowledging_moves_the_feedback_deadline_and_it_escalates_when_it_passes(
        app: Flask, client: FlaskClient, people: People) -> None:
    receipt = submit(client, people)
    ref, token = receipt["case_ref"], receipt["token"]
    client.post(f"/api/v1/cases/{ref}/transitions", json={"to": "acknowledged"},
                headers=login(client, people["ann"]))
    feedback_by = dt.date.fromisoformat(reporter_status(client, token)["feedback_by"])
    assert feedback_by == utcnow().date() + dt.timedelta(days=90)
    client.post(f"/api/v1/cases/{ref}/transitions", json={"to": "investigating"},
                headers=login(client, people["bob"]))

    assert escalated(deadlines(app, 8)) == 0  # acknowledged in time
    assert case_view(client, people["ida"], ref).status_code == 404
    assert escalated(deadlines(app, 91)) == 1  # investigating, but no feedback by the date
    assert case_view(client, people["ida"], ref).status_code == 200
    assert [d["deadline"] for _t, _a, d in trail(app, ref, "escalated")] == ["feedback"]
    assert reporter_status(client, token)["overdue"] is True


def test_changing_a_password_keeps_the_withheld_copy_openable(
        app: Flask, client: FlaskClient, people: People) -> None:
    ref = submit(client, people)["case_ref"]
    changed = client.post("/api/v1/me/password", headers=login(client, people["ida"]),
                          json={"password": PASSWORD,
                                "new_password": "a brand new passphrase for ida"})
    assert changed.status_code == 200, changed.get_data(as_text=True)
    deadlines(app, 8)
    ida = people["ida"] | {"password": "a brand new passphrase for ida"}
    opened = case_view(client, ida, ref)
    assert opened.status_code == 200 and opened.get_json()["details"] == DETAILS


# -- the command ---------------------------------------------------------------------------


def test_as_of_refuses_a_date_in_the_past_or_not_a_date(app: Flask) -> None:
    runner = app.test_cli_runner()
    yesterday = (utcnow().date() - dt.timedelta(days=1)).isoformat()
    past = runner.invoke(args=["deadlines", "--as-of", yesterday])
    assert past.exit_code != 0 and "earlier than today" in past.output
    garbage = runner.invoke(args=["deadlines", "--as-of", "next tuesday"])
    assert garbage.exit_code != 0 and "is not a date" in garbage.output
    today = runner.invoke(args=["deadlines", "--as-of", utcnow().date().isoformat()])
    assert today.exit_code == 0, today.output


def test_a_rehearsal_ahead_keeps_todays_sessions(app: Flask, client: FlaskClient,
                                                  people: People) -> None:
    headers = login(client, people["ann"])
    deadlines(app, 30)
    assert client.get("/api/v1/cases", headers=headers).status_code == 200


def test_escalation_reviewers_setting_bounds_the_withheld_copies(
        app: Flask, client: FlaskClient, people: People) -> None:
    from whistle import settings_of

    app.extensions["whistle_settings"] = settings_of(app).replace(escalation_reviewers=1)
    ref = submit(client, people)["case_ref"]
    app.extensions["whistle_settings"] = settings_of(app).replace(escalation_reviewers=0)
    none = submit(client, people)["case_ref"]
    with db.new_session(app) as s:
        def withheld(case_ref: str) -> list[str]:
            return list(s.scalars(select(WrappedKey.recipient_id).distinct().where(
                WrappedKey.concern_id == case_ref, WrappedKey.recipient_kind == "escalation")))

        assert len(withheld(ref)) == 1 and withheld(none) == []
    # With no escalation reviewer to give it to, tier 1 alerts the administrators instead.
    deadlines(app, 8)
    assert mail_to(app, people["ada"]) == ["admin_attention"]
    assert mail_to(app, people["axe"]) == []
