"""The approval mechanism's rules one by one (whistle.cases.proposals, whistle.people.approvals),
called directly on a real database: what each refusal says, what a proposal stores, what an
approved change does, and the one-time links it mails. The insider moves themselves are
replayed through the API in test_two_person.py; these pin the details mutation testing found
unchecked (scripts/mutate)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from tests.support.factories import make_reviewer
from tests.support.services import SmtpServer
from tests.support.webflow import deliver_mail
from whistle import settings_of
from whistle.cases import proposals
from whistle.errors import InvalidInput, NotFound, Refused
from whistle.people import approvals
from whistle.store import db
from whistle.store.models import AuditEvent, Change, EnrolmentCode, Reviewer, utcnow

NOW = dt.datetime(2026, 12, 1, 9, 30)


@pytest.fixture
def app_config() -> dict[str, Any]:
    return {"PUBLIC_URL": "https://whistle.example.org/"}  # the trailing slash is dropped


def context(app: Flask, now: dt.datetime = NOW) -> approvals.Context:
    return approvals.Context(settings_of(app), app.extensions["whistle_keys"], now)


@pytest.fixture
def staff(app: Flask) -> dict[str, dict[str, str]]:
    """Two administrators and a reviewer, then the roster sealed."""
    people = {"ada": make_reviewer(app, "Ada Admin", admin=True, reviews=False),
              "ben": make_reviewer(app, "Ben Admin", admin=True, reviews=False),
              "cat": make_reviewer(app, "Cat Reviewer")}
    assert app.test_cli_runner().invoke(args=["roster", "seal"]).exit_code == 0
    return people


@pytest.fixture
def session(app: Flask) -> Iterator[Any]:
    with db.new_session(app) as s:
        yield s


def test_the_second_person_refusal_says_who_may_not_decide() -> None:
    refused = proposals.SecondPersonRequired()
    assert (refused.code, refused.status, refused.message) == (
        "second_person_required", 409, "a different person must approve this: not the one "
        "who proposed it, nor the person it concerns")
    assert str(refused) == refused.message


def test_open_change_finds_only_a_pending_change_of_the_kinds_asked(
        session: Any, staff: dict[str, dict[str, str]]) -> None:
    change = approvals.propose_for(session, approvals.GRANT, staff["cat"]["id"],
                                   {"senior": True}, staff["ada"]["id"])
    assert proposals.open_change(session, change.id, [approvals.GRANT]) is change
    for wrong in (None, 7, ["x"], {"id": change.id}, change.id + "0" * 64, "nope"):
        with pytest.raises(NotFound, match="^no such change$"):
            proposals.open_change(session, wrong, [approvals.GRANT])
    with pytest.raises(NotFound, match="^no such change$"):  # another kind of change
        proposals.open_change(session, change.id, ["share"])
    proposals.decide(change, proposals.REJECTED, staff["ben"]["id"], NOW)
    with pytest.raises(Refused, match="^this change was already rejected$") as refused:
        proposals.open_change(session, change.id, [approvals.GRANT])
    assert refused.value.code == "already_decided"


def test_a_proposal_stores_its_kind_subject_payload_and_proposer_and_is_logged(
        app: Flask, session: Any, staff: dict[str, dict[str, str]]) -> None:
    payload = {"units": [], "senior": True, "independent": False}
    change = approvals.propose_for(session, approvals.GRANT, staff["cat"]["id"], payload,
                                   staff["ada"]["id"])
    stored = session.get(Change, change.id)
    assert (stored.type, stored.subject, stored.proposed_by, stored.state) == (
        approvals.GRANT, staff["cat"]["id"], staff["ada"]["id"], proposals.PENDING)
    assert proposals.payload(stored) == payload
    assert proposals.describe(stored)["details"] == payload
    assert [c.id for c in approvals.pending(session)] == [change.id]


def test_proposing_for_an_account_refuses_bad_kinds_accounts_and_units(
        session: Any, staff: dict[str, dict[str, str]]) -> None:
    ada, cat = staff["ada"]["id"], staff["cat"]["id"]
    with pytest.raises(InvalidInput, match="^unknown kind of change$") as bad:
        approvals.propose_for(session, approvals.ENROL, cat, {}, ada)
    assert bad.value.field == "type"
    for account in (None, 3, {"id": cat}, "no-such-account"):
        with pytest.raises(NotFound, match="^no such account$"):
            approvals.propose_for(session, approvals.GRANT, account, {}, ada)
    with pytest.raises(InvalidInput, match="^unknown unit Alpha$") as bad:
        approvals.propose_for(session, approvals.GRANT, cat, {"units": ["Zulu", "Alpha"]}, ada)
    assert bad.value.field == "units"
    assert approvals.pending(session) == []  # nothing was proposed


def test_approving_an_enrolment_of_an_account_no_longer_pending_is_refused(
        app: Flask, session: Any, staff: dict[str, dict[str, str]]) -> None:
    account, change = approvals.add_account(
        session, context(app), "Pat Pending", "pat@example.org", [], False, False, False, True,
        staff["ada"]["id"])
    assert change is not None and account.state == "pending"
    account.state = "active"  # e.g. changed behind the proposal's back
    session.commit()
    with pytest.raises(Refused, match="^this account is not waiting for approval$") as refused:
        approvals.approve(session, context(app), change.id, staff["ben"]["id"])
    assert refused.value.code == "invalid_state"


def test_a_change_whose_account_is_gone_is_not_found(
        app: Flask, session: Any, staff: dict[str, dict[str, str]]) -> None:
    ghost = Change(type=approvals.REENABLE, subject=None, payload="{}",
                   proposed_by=staff["ada"]["id"], proposed_at=NOW, state=proposals.PENDING)
    session.add(ghost)
    session.commit()
    with pytest.raises(NotFound, match="^the account this change concerns no longer exists$"):
        approvals.approve(session, context(app), ghost.id, staff["ben"]["id"])


def test_an_enrolment_link_is_one_time_replaces_older_ones_and_is_mailed_at_the_public_url(
        app: Flask, session: Any, smtp: SmtpServer, staff: dict[str, dict[str, str]]) -> None:
    cat = session.get(Reviewer, staff["cat"]["id"])
    other = session.get(Reviewer, staff["ada"]["id"])
    others_code = approvals.issue_code(session, context(app), other, "reset")
    first = approvals.issue_code(session, context(app), cat, "enrol")
    later = NOW + dt.timedelta(minutes=5)
    second = approvals.issue_code(session, context(app, later), cat, "enrol")
    session.commit()
    assert len(first) == len(second) == 32 and first != second  # 24 random bytes, URL-safe
    codes = {c.reviewer_id + ":" + c.purpose: c for c in session.scalars(select(EnrolmentCode))}
    rows = list(session.scalars(select(EnrolmentCode).where(
        EnrolmentCode.reviewer_id == cat.id).order_by(EnrolmentCode.expires)))
    assert [r.used for r in rows] == [later, None]  # the older one stops working
    hours = settings_of(app).enrol_code_hours
    assert rows[1].expires == later + dt.timedelta(hours=hours)
    assert rows[1].purpose == "enrol"
    assert codes[other.id + ":reset"].used is None  # another account's code is untouched
    deliver_mail(app)
    sent = {m["To"]: m for m in smtp.messages}
    mine = [m for to, m in sent.items() if cat.email in to]
    assert mine and mine[-1]["Subject"] == "Whistle: choose your password"
    assert f"https://whistle.example.org/enrol?code={second}" in mine[-1].get_content()
    theirs = [m for to, m in sent.items() if other.email in to]
    assert theirs and theirs[-1]["Subject"] == "Whistle: choose a new password"
    assert f"https://whistle.example.org/enrol?code={others_code}" in theirs[-1].get_content()


def test_an_approved_reset_forgets_the_keys_in_the_approvers_name_and_mails_a_reset_link(
        app: Flask, session: Any, smtp: SmtpServer, staff: dict[str, dict[str, str]]) -> None:
    from tests.support.factories import submit_concern

    client = app.test_client()
    case_ref = submit_concern(client)["case_ref"]
    cat, ben = staff["cat"]["id"], staff["ben"]["id"]
    change = approvals.propose_for(session, approvals.RESET, cat, {}, staff["ada"]["id"])
    approvals.approve(session, context(app), change.id, ben)
    account = session.get(Reviewer, cat)
    assert account.state == "invited" and account.public_key == b""
    events = list(session.scalars(select(AuditEvent).where(
        AuditEvent.concern_id == case_ref, AuditEvent.type == "reviewer_key_reset")))
    assert [e.actor for e in events] == [ben]
    code = session.scalars(select(EnrolmentCode).where(EnrolmentCode.reviewer_id == cat)).one()
    assert code.purpose == "reset"
    deliver_mail(app)
    assert any(m["Subject"] == "Whistle: choose a new password" and account.email in m["To"]
               for m in smtp.messages)


def test_a_registered_kind_is_applied_on_approval_and_undone_on_rejection(
        app: Flask, session: Any, staff: dict[str, dict[str, str]]) -> None:
    applied: list[str] = []
    undone: list[str] = []
    approvals.register("test_kind", lambda s, ctx, change: applied.append(change.id),
                       lambda s, change: undone.append(change.id))
    approvals.register("test_plain", lambda s, ctx, change: applied.append(change.id))
    try:
        ada, ben = staff["ada"]["id"], staff["ben"]["id"]
        one = approvals.propose(session, "test_kind", None, {}, ada)
        two = approvals.propose(session, "test_kind", None, {}, ada)
        three = approvals.propose(session, "test_plain", None, {}, ada)
        session.commit()
        assert {c.id for c in approvals.pending(session)} == {one.id, two.id, three.id}
        approvals.approve(session, context(app), one.id, ben)
        approvals.reject(session, two.id, ben, utcnow())
        approvals.reject(session, three.id, ada, utcnow())  # the proposer withdraws it
        assert (applied, undone) == ([one.id], [two.id])
    finally:
        for kind in ("test_kind", "test_plain"):
            approvals._APPLY.pop(kind, None)
            approvals._ON_REJECT.pop(kind, None)
