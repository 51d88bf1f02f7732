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
    # The trailing slash is dropped, and only it (an "X" before it stays).
    return {"PUBLIC_URL": "https://whistle.example.org/intakeX/"}


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
    assert f"https://whistle.example.org/intakeX/enrol?code={second}" in mine[-1].get_content()
    theirs = [m for to, m in sent.items() if other.email in to]
    assert theirs and theirs[-1]["Subject"] == "Whistle: choose a new password"
    assert f"https://whistle.example.org/intakeX/enrol?code={others_code}" in theirs[-1].get_content()


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


# -- adding an account, before and after the roster is sealed --------------------------------


def log_entries(session: Any, type_: str) -> list[tuple[str, dict[str, Any]]]:
    import json

    from whistle.store.models import AdminEvent

    return [(e.actor, json.loads(e.data)) for e in session.scalars(
        select(AdminEvent).where(AdminEvent.type == type_).order_by(AdminEvent.seq))]


def add(app: Flask, session: Any, proposer: str, **fields: Any) -> tuple[Reviewer, Any]:
    given = {"name": "Pat Example", "email": "Pat@Example.org", "units": [],
             "senior": False, "independent": False, "admin": False, "reviews": True} | fields
    return approvals.add_account(session, context(app), given.pop("name"), given.pop("email"),
                                 given.pop("units"), given.pop("senior"),
                                 given.pop("independent"), given.pop("admin"),
                                 given.pop("reviews"), proposer, **given)


def test_before_sealing_an_added_account_is_invited_at_once_with_every_field_kept(
        app: Flask, session: Any, smtp: SmtpServer) -> None:
    ada = make_reviewer(app, "Ada Admin", admin=True)
    account, change = add(app, session, ada["id"], units=["Health", "Education", "Health"],
                          senior=True, independent=True, admin=True, reviews=False)
    assert change is None
    row = session.get(Reviewer, account.id)
    assert (row.name, row.email, row.state, row.active) == (
        "Pat Example", "pat@example.org", "invited", False)
    assert row.units == '["Education", "Health"]'
    assert (row.is_senior, row.is_independent, row.is_admin, row.is_reviewer,
            row.is_operator) == (True, True, True, False, False)
    assert (row.public_key, row.locked_private_key, row.password_check) == (b"", b"", b"")
    assert log_entries(session, "reviewer_invited") == [(ada["id"], {
        "reviewer": account.id, "roles": ["admin", "senior", "independent"],
        "units": ["Education", "Health"]})]
    assert log_entries(session, "change_proposed") == []
    code = session.scalars(select(EnrolmentCode).where(
        EnrolmentCode.reviewer_id == account.id)).one()
    assert code.purpose == "enrol" and code.used is None
    session.commit()  # the reads end: delivery writes from a session of its own
    deliver_mail(app)
    assert any(m["Subject"] == "Whistle: choose your password" and "pat@example.org" in m["To"]
               for m in smtp.messages)
    # An intake operator: the role is logged too.
    operator, _ = add(app, session, ada["id"], email="op@example.org", reviews=False,
                      operator=True)
    assert session.get(Reviewer, operator.id).is_operator
    assert log_entries(session, "reviewer_invited")[-1][1]["roles"] == ["operator"]


def test_after_sealing_an_added_account_waits_for_a_second_person(
        app: Flask, session: Any, staff: dict[str, dict[str, str]]) -> None:
    account, change = add(app, session, staff["ada"]["id"], units=["Health"])
    assert change is not None and session.get(Reviewer, account.id).state == "pending"
    stored = session.get(Change, change.id)
    assert (stored.type, stored.subject, stored.proposed_by) == (
        approvals.ENROL, account.id, staff["ada"]["id"])
    assert proposals.payload(stored) == {"roles": ["reviewer"], "units": ["Health"]}
    assert log_entries(session, "reviewer_invited") == []
    assert log_entries(session, "change_proposed") == [(staff["ada"]["id"], {
        "change": change.id, "type": approvals.ENROL, "subject": account.id})]
    assert session.scalars(select(EnrolmentCode).where(
        EnrolmentCode.reviewer_id == account.id)).all() == []


def test_adding_an_account_refuses_what_is_missing_malformed_taken_or_unknown(
        app: Flask, session: Any) -> None:
    ada = make_reviewer(app, "Ada Admin", admin=True, email="ada@example.org")
    refusals: list[tuple[dict[str, Any], str, str, str, int]] = [
        ({"name": ""}, "name", "invalid_input", "", 400),
        ({"name": None}, "name", "invalid_input", "", 400),
        ({"email": ""}, "email", "invalid_input", "^email is required$", 400),
        ({"email": "no-at-sign"}, "email", "invalid_input", "^enter an email address$", 400),
        ({"email": "a" * 243 + "@example.org"}, "email", "invalid_input", "", 400),  # 255
        ({"email": "ADA@example.org"}, "email", "duplicate",
         "^a reviewer with this email already exists$", 409),
        ({"units": ["Health", "Zulu", "Alpha"]}, "units", "invalid_input",
         "^unknown unit Alpha$", 400),
        ({"operator": True}, "operator", "invalid_input", "^an intake operator has no", 400),
        ({"operator": True, "reviews": False, "units": ["Health"]}, "operator",
         "invalid_input", "", 400),
        ({"operator": True, "reviews": False, "admin": True}, "operator", "invalid_input", "",
         400),
        ({"operator": True, "reviews": False, "senior": True}, "operator", "invalid_input", "",
         400),
        ({"operator": True, "reviews": False, "independent": True}, "operator",
         "invalid_input", "", 400),
    ]
    for fields, field, code, message, status in refusals:
        with pytest.raises(InvalidInput, match=message or None) as refused:
            add(app, session, ada["id"], **fields)
        assert (refused.value.field, refused.value.code, refused.value.status) == (
            field, code, status), fields
        session.rollback()
    assert session.scalars(select(Reviewer).where(Reviewer.id != ada["id"])).all() == []
    # The longest address allowed (254 characters) is taken.
    account, _ = add(app, session, ada["id"], email="a" * 242 + "@example.org")
    assert len(account.email) == 254


# -- approving and rejecting ----------------------------------------------------------------


def test_an_approval_is_recorded_with_both_names_and_applied_in_the_approvers_name(
        app: Flask, session: Any, staff: dict[str, dict[str, str]]) -> None:
    from whistle.people import roster

    ada, ben, cat = staff["ada"]["id"], staff["ben"]["id"], staff["cat"]["id"]
    change = approvals.propose_for(session, approvals.GRANT, cat, {"senior": True}, ada)
    approvals.approve(session, context(app), change.id, ben)
    stored = session.get(Change, change.id)
    assert (stored.state, stored.decided_by, stored.decided_at) == (
        proposals.APPROVED, ben, NOW)
    assert log_entries(session, "change_approved") == [(ben, {
        "change": change.id, "type": approvals.GRANT, "subject": cat, "proposed_by": ada})]
    # The account's new roster entry is signed, and the signature logged, by the approver.
    account = session.get(Reviewer, cat)
    assert roster.verified(account, app.extensions["whistle_keys"].signing_public)
    signed = [actor for actor, data in log_entries(session, roster.ENTRY_SIGNED)
              if data.get("reviewer") == cat]
    assert signed and signed[-1] == ben, log_entries(session, roster.ENTRY_SIGNED)


def test_a_grant_sets_exactly_what_it_names(
        app: Flask, session: Any, staff: dict[str, dict[str, str]]) -> None:
    from whistle.people import roster

    cat = staff["cat"]["id"]
    before = session.get(Reviewer, cat)
    kept_units = before.units
    grant = {"admin": True, "independent": True, "senior": True, "reviews": False,
             "categories": ["conduct", "conduct", "abuse"]}
    change = approvals.propose_for(session, approvals.GRANT, cat, grant, staff["ada"]["id"])
    approvals.approve(session, context(app), change.id, staff["ben"]["id"])
    row = session.get(Reviewer, cat)
    assert (row.is_admin, row.is_independent, row.is_senior, row.is_reviewer,
            row.is_operator) == (True, True, True, False, False)
    assert row.categories == '["abuse", "conduct"]' and row.units == kept_units
    assert roster.verified(row, app.extensions["whistle_keys"].signing_public)
    change = approvals.propose_for(session, approvals.GRANT, cat,
                                   {"units": ["Health", "Education", "Health"],
                                    "operator": False}, staff["ada"]["id"])
    approvals.approve(session, context(app), change.id, staff["ben"]["id"])
    row = session.get(Reviewer, cat)
    assert row.units == '["Education", "Health"]' and row.is_admin  # the rest kept
    assert roster.verified(row, app.extensions["whistle_keys"].signing_public)


def test_re_enabling_restores_an_account_with_keys_and_invites_one_without(
        app: Flask, session: Any, staff: dict[str, dict[str, str]]) -> None:
    from whistle.people import roster

    cat = session.get(Reviewer, staff["cat"]["id"])
    cat.state, cat.active = "disabled", False
    version = cat.credentials_version
    session.commit()
    change = approvals.propose_for(session, approvals.REENABLE, cat.id, {}, staff["ada"]["id"])
    approvals.approve(session, context(app), change.id, staff["ben"]["id"])
    row = session.get(Reviewer, cat.id)
    assert (row.state, row.active, row.credentials_version) == ("active", True, version + 1)
    assert roster.verified(row, app.extensions["whistle_keys"].signing_public)
    # An account that never chose a password gets a new link instead.
    pending, enrol = add(app, session, staff["ada"]["id"], email="late@example.org")
    approvals.reject(session, enrol.id, staff["ben"]["id"], utcnow())
    assert session.get(Reviewer, pending.id).state == "disabled"
    change = approvals.propose_for(session, approvals.REENABLE, pending.id, {},
                                   staff["ada"]["id"])
    approvals.approve(session, context(app), change.id, staff["ben"]["id"])
    row = session.get(Reviewer, pending.id)
    assert (row.state, row.active) == ("invited", False)
    assert session.scalars(select(EnrolmentCode.purpose).where(
        EnrolmentCode.reviewer_id == pending.id)).all() == ["enrol"]


def test_who_may_reject_and_what_a_rejection_does(
        app: Flask, session: Any, staff: dict[str, dict[str, str]]) -> None:
    from whistle.people.approvals import NotAllowed, SecondPersonRequired

    ada, ben, cat = staff["ada"]["id"], staff["ben"]["id"], staff["cat"]["id"]
    grant = approvals.propose_for(session, approvals.GRANT, cat, {"admin": True}, ada)
    with pytest.raises(SecondPersonRequired):  # the person it concerns
        approvals.reject(session, grant.id, cat, utcnow())
    dan = make_reviewer(app, "Dan Reviewer")
    with pytest.raises(NotAllowed):  # administrators exist: a reviewer may not decide
        approvals.reject(session, grant.id, dan["id"], utcnow())
    assert session.get(Change, grant.id).state == proposals.PENDING
    approvals.reject(session, grant.id, ada, NOW)  # the proposer withdraws it
    stored = session.get(Change, grant.id)
    assert (stored.state, stored.decided_by, stored.decided_at) == (
        proposals.REJECTED, ada, NOW)
    assert not session.get(Reviewer, cat).is_admin
    assert log_entries(session, "change_rejected") == [(ada, {
        "change": grant.id, "type": approvals.GRANT, "subject": cat})]
    with pytest.raises(Refused, match="already rejected"):
        approvals.reject(session, grant.id, ben, utcnow())
    # A rejected enrolment disables the pending account; an invited one is left as it is.
    pending, enrol = add(app, session, ada, email="one@example.org")
    approvals.reject(session, enrol.id, ben, utcnow())
    assert session.get(Reviewer, pending.id).state == "disabled"
    other, enrol = add(app, session, ada, email="two@example.org")
    session.get(Reviewer, other.id).state = "invited"
    session.commit()
    approvals.reject(session, enrol.id, ben, utcnow())
    assert session.get(Reviewer, other.id).state == "invited"


# -- the details mutation testing found unchecked on a second run ---------------------------


def test_a_proposal_is_dated_by_its_caller_pending_and_its_payload_sorted(
        session: Any, staff: dict[str, dict[str, str]]) -> None:
    change = proposals.create(session, "test_kind", None, {"b": 1, "a": 2},
                              staff["ada"]["id"], NOW)
    session.commit()
    stored = session.get(Change, change.id)
    assert (stored.proposed_at, stored.state, stored.payload) == (
        NOW, proposals.PENDING, '{"a": 2, "b": 1}')
    assert proposals.describe(stored) == {
        "id": change.id, "type": "test_kind", "subject": None,
        "proposed_by": staff["ada"]["id"], "at": NOW.isoformat(), "state": "pending",
        "details": {"a": 2, "b": 1}}


def test_pending_changes_are_of_the_kinds_asked_oldest_first_then_by_id(
        session: Any, staff: dict[str, dict[str, str]]) -> None:
    ada = staff["ada"]["id"]
    later = proposals.create(session, approvals.GRANT, None, {}, ada, NOW)
    early = [proposals.create(session, approvals.GRANT, None, {}, ada,
                              NOW - dt.timedelta(hours=1)) for _ in range(3)]
    other_kind = proposals.create(session, "not_administrative", None, {}, ada, NOW)
    session.commit()
    expected = sorted(c.id for c in early) + [later.id]
    assert [c.id for c in proposals.pending(session, [approvals.GRANT])] == expected
    assert [c.id for c in approvals.pending(session)] == expected  # not the other kind
    assert [c.id for c in proposals.pending(session, ["not_administrative"])] == [
        other_kind.id]


def test_an_approved_enrolment_invites_with_an_enrolment_link(
        app: Flask, session: Any, smtp: SmtpServer, staff: dict[str, dict[str, str]]) -> None:
    account, change = add(app, session, staff["ada"]["id"], email="new@example.org")
    approvals.approve(session, context(app), change.id, staff["ben"]["id"])
    assert session.get(Reviewer, account.id).state == "invited"
    assert session.scalars(select(EnrolmentCode.purpose).where(
        EnrolmentCode.reviewer_id == account.id)).all() == ["enrol"]
    deliver_mail(app)
    assert any(m["Subject"] == "Whistle: choose your password" and "new@example.org" in m["To"]
               for m in smtp.messages)


def test_a_grant_can_make_a_plain_account_an_intake_operator(
        app: Flask, session: Any, staff: dict[str, dict[str, str]]) -> None:
    cat = staff["cat"]["id"]
    change = approvals.propose_for(session, approvals.GRANT, cat,
                                   {"operator": True, "reviews": False}, staff["ada"]["id"])
    approvals.approve(session, context(app), change.id, staff["ben"]["id"])
    row = session.get(Reviewer, cat)
    assert (row.is_operator, row.is_reviewer) == (True, False)


def test_re_enabling_is_signed_in_the_approvers_name(
        app: Flask, session: Any, staff: dict[str, dict[str, str]]) -> None:
    from whistle.people import accounts, roster

    cat = staff["cat"]["id"]
    accounts.disable(session, settings_of(app), cat, staff["ada"]["id"],
                     keys=app.extensions["whistle_keys"])
    session.commit()
    change = approvals.propose_for(session, approvals.REENABLE, cat, {}, staff["ada"]["id"])
    approvals.approve(session, context(app), change.id, staff["ben"]["id"])
    signed = [(actor, data["state"]) for actor, data in log_entries(session, roster.ENTRY_SIGNED)
              if data.get("reviewer") == cat]
    assert signed[-1] == (staff["ben"]["id"], "active"), signed


def test_only_an_account_both_active_and_in_the_active_state_may_approve(
        app: Flask, session: Any, staff: dict[str, dict[str, str]]) -> None:
    from whistle.people.approvals import NotAllowed

    ada, ben = staff["ada"]["id"], staff["ben"]["id"]
    change = approvals.propose_for(session, approvals.GRANT, staff["cat"]["id"],
                                   {"senior": True}, ada)
    for state, active in (("disabled", True), ("active", False)):
        row = session.get(Reviewer, ben)
        row.state, row.active = state, active
        session.commit()
        with pytest.raises(NotAllowed):
            approvals.check_approver(session, session.get(Change, change.id), ben)


def test_a_new_link_leaves_the_time_an_older_link_was_used(
        app: Flask, session: Any, staff: dict[str, dict[str, str]]) -> None:
    cat = session.get(Reviewer, staff["cat"]["id"])
    approvals.issue_code(session, context(app), cat, "reset")
    used_at = NOW - dt.timedelta(days=2)
    for code in session.scalars(select(EnrolmentCode).where(
            EnrolmentCode.reviewer_id == cat.id)):
        code.used = used_at
    session.commit()
    approvals.issue_code(session, context(app), cat, "reset")
    session.commit()
    assert sorted(session.scalars(select(EnrolmentCode.used).where(
        EnrolmentCode.reviewer_id == cat.id)), key=str) == [used_at, None]


def test_rejecting_another_kind_of_change_leaves_a_pending_account_pending(
        app: Flask, session: Any, staff: dict[str, dict[str, str]]) -> None:
    account, _enrol = add(app, session, staff["ada"]["id"], email="wait@example.org")
    grant = approvals.propose_for(session, approvals.GRANT, account.id, {"senior": True},
                                  staff["ada"]["id"])
    approvals.reject(session, grant.id, staff["ben"]["id"], utcnow())
    assert session.get(Reviewer, account.id).state == "pending"


def test_a_registered_rejection_is_given_the_session(
        app: Flask, session: Any, staff: dict[str, dict[str, str]]) -> None:
    given: list[Any] = []
    approvals.register("test_session", lambda s, ctx, change: None,
                       lambda s, change: given.append(s))
    try:
        change = approvals.propose(session, "test_session", None, {}, staff["ada"]["id"])
        session.commit()
        approvals.reject(session, change.id, staff["ben"]["id"], utcnow())
        assert given == [session]
    finally:
        approvals._APPLY.pop("test_session", None)
        approvals._ON_REJECT.pop("test_session", None)
