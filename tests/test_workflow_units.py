"""The workflow's small parts one by one (whistle.cases.workflow): the deadline a case owes,
when it is overdue, the overdue mark its assignments copy, message numbering and which
closure proposal's feedback is pending. The moves are tested in test_workflow_rules.py (the
table) and test_workflow.py (through the API); these pin what mutation testing found
unchecked (scripts/mutate)."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from tests.support.factories import login, make_reviewer, submit_concern
from whistle.cases import workflow
from whistle.store import db
from whistle.store.models import Assignment, Concern

ACK, FEEDBACK = dt.date(2026, 12, 8), dt.date(2027, 3, 1)


def case(status: str, feedback_by: dt.date | None = FEEDBACK) -> Any:
    return SimpleNamespace(status=status, acknowledge_by=ACK, feedback_by=feedback_by)


@pytest.mark.parametrize("status", workflow.STATUSES)
def test_the_deadline_owed_is_acknowledgement_then_feedback_then_none(status: str) -> None:
    owed = workflow.owed_deadline(case(status))
    if status == workflow.RECEIVED:
        assert owed == (workflow.ACKNOWLEDGE, ACK)
    elif status in workflow.OPEN_STATUSES:
        assert owed == (workflow.FEEDBACK, FEEDBACK)
    else:
        assert owed is None
    assert workflow.owed(status, ACK, FEEDBACK) == owed
    # An open case without a feedback date owes nothing more until it has one.
    if status != workflow.RECEIVED:
        assert workflow.owed(status, ACK, None) is None


def test_a_case_is_overdue_only_after_the_day_it_owes() -> None:
    received, open_, closed = (case(workflow.RECEIVED), case(workflow.INVESTIGATING),
                               case(workflow.CLOSED))
    assert not workflow.is_overdue(received, ACK)  # the last day is still in time
    assert workflow.is_overdue(received, ACK + dt.timedelta(days=1))
    assert not workflow.is_overdue(open_, FEEDBACK)
    assert workflow.is_overdue(open_, FEEDBACK + dt.timedelta(days=1))
    assert not workflow.is_overdue(open_, ACK + dt.timedelta(days=1))  # owes feedback now
    assert not workflow.is_overdue(closed, FEEDBACK + dt.timedelta(days=400))


@pytest.fixture
def cases(app: Flask, client: FlaskClient) -> tuple[str, str]:
    make_reviewer(app, "Ann Reviewer"), make_reviewer(app, "Bob Reviewer")
    return submit_concern(client)["case_ref"], submit_concern(client)["case_ref"]


def overdue_marks(app: Flask, case_ref: str) -> tuple[bool, list[bool]]:
    with db.new_session(app) as s:
        return (s.get_one(Concern, case_ref).overdue,
                list(s.scalars(select(Assignment.overdue).where(
                    Assignment.concern_id == case_ref))))


def test_the_overdue_mark_is_copied_to_the_cases_assignments_only(
        app: Flask, cases: tuple[str, str]) -> None:
    one, other = cases
    with db.new_session(app) as s:
        workflow.set_overdue(s, s.get_one(Concern, one), True)
        s.commit()
    assert overdue_marks(app, one) == (True, [True, True])
    assert overdue_marks(app, other) == (False, [False, False])
    with db.new_session(app) as s:
        workflow.set_overdue(s, s.get_one(Concern, one), True)  # already: nothing to do
        workflow.set_overdue(s, s.get_one(Concern, other), False)
        s.commit()
    assert overdue_marks(app, one) == (True, [True, True])
    with db.new_session(app) as s:
        workflow.set_overdue(s, s.get_one(Concern, one), False)
        s.commit()
    assert overdue_marks(app, one) == (False, [False, False])


def test_messages_are_numbered_from_one_per_case(app: Flask, cases: tuple[str, str]) -> None:
    one, other = cases
    key = b"k" * 32
    with db.new_session(app) as s:
        first = workflow.add_message(s, s.get_one(Concern, one), key, "note", "reviewer", None,
                                     "first", dt.date(2026, 12, 5))
        s.flush()
        second = workflow.add_message(s, s.get_one(Concern, one), key, "note", "reviewer",
                                      None, "second", dt.date(2026, 12, 5))
        elsewhere = workflow.add_message(s, s.get_one(Concern, other), key, "note",
                                         "reviewer", None, "other", dt.date(2026, 12, 5))
        s.flush()
        assert (first.seq, second.seq, elsewhere.seq) == (1, 2, 1)


def test_the_pending_feedback_is_the_latest_proposals_of_this_case(
        app: Flask, client: FlaskClient, cases: tuple[str, str]) -> None:
    one, other = cases
    with db.new_session(app) as s:
        assert workflow.pending_feedback_id(s, one) is None
    ids = {}
    for ref, words in ((one, "feedback one"), (other, "feedback other")):
        proposed = client.post(f"/api/v1/cases/{ref}/transitions",
                               headers=_login_any(app, client, ref),
                               json={"to": "closed", "outcome": "not_substantiated",
                                     "feedback": words})
        assert proposed.status_code == 200, proposed.get_data(as_text=True)
        with db.new_session(app) as s:
            ids[ref] = workflow.pending_feedback_id(s, ref)
    assert ids[one] and ids[other] and ids[one] != ids[other]
    with db.new_session(app) as s:
        assert workflow.pending_feedback_id(s, one) == ids[one]  # not the later one elsewhere


def _login_any(app: Flask, client: FlaskClient, case_ref: str) -> dict[str, str]:
    """Bearer headers of a reviewer assigned to ``case_ref`` (the factory's password)."""
    from tests.support.factories import PASSWORD
    from whistle.store.models import Reviewer

    with db.new_session(app) as s:
        rid = s.scalars(select(Assignment.reviewer_id).where(
            Assignment.concern_id == case_ref)).first()
        email = s.get_one(Reviewer, rid).email
    return login(client, {"email": email, "password": PASSWORD})


def _logins(app: Flask, client: FlaskClient, case_ref: str) -> list[dict[str, str]]:
    """Bearer headers of every reviewer assigned to ``case_ref``, in id order."""
    from tests.support.factories import PASSWORD
    from whistle.store.models import Reviewer

    with db.new_session(app) as s:
        emails = [s.get_one(Reviewer, rid).email for rid in sorted(s.scalars(
            select(Assignment.reviewer_id).where(Assignment.concern_id == case_ref)))]
    return [login(client, {"email": e, "password": PASSWORD}) for e in emails]


def test_a_move_changes_this_cases_assignments_and_restarts_the_feedback_reminders(
        app: Flask, client: FlaskClient, cases: tuple[str, str]) -> None:
    one, other = cases
    with db.new_session(app) as s:
        concern = s.get_one(Concern, one)
        concern.reminded_feedback = concern.escalated_feedback = True
        s.commit()
    ann = _logins(app, client, one)[0]
    moved = client.post(f"/api/v1/cases/{one}/transitions", headers=ann,
                        json={"to": "acknowledged"})
    assert moved.status_code == 200, moved.get_data(as_text=True)
    with db.new_session(app) as s:
        concern = s.get_one(Concern, one)
        assert (concern.reminded_feedback, concern.escalated_feedback) == (False, False)
        statuses = {ref: set(s.scalars(select(Assignment.status).where(
            Assignment.concern_id == ref))) for ref in (one, other)}
    assert statuses == {one: {"acknowledged"}, other: {"received"}}


def test_the_closed_event_names_the_feedback_it_released(
        app: Flask, client: FlaskClient, cases: tuple[str, str]) -> None:
    one, _other = cases
    ann, bob = _logins(app, client, one)
    proposed = client.post(f"/api/v1/cases/{one}/transitions", headers=ann, json={
        "to": "closed", "outcome": "not_substantiated", "feedback": "What we found."})
    assert proposed.status_code == 200, proposed.get_data(as_text=True)
    confirmed = client.post(f"/api/v1/cases/{one}/transitions", headers=bob,
                            json={"to": "closed"})
    assert confirmed.status_code == 200, confirmed.get_data(as_text=True)
    case_view = client.get(f"/api/v1/cases/{one}", headers=bob).get_json()
    closed = [e for e in case_view["events"] if e["type"] == "closed"][-1]
    released = [m for m in case_view["messages"] if m["kind"] == "feedback"]
    assert [m["body"] for m in released] == ["What we found."]
    assert closed["data"]["released_feedback"] == released[0]["id"]


def test_a_move_that_pays_the_owed_step_clears_overdue_and_one_that_does_not_keeps_it(
        app: Flask, client: FlaskClient, cases: tuple[str, str]) -> None:
    one, other = cases
    today = dt.date.today()
    with db.new_session(app) as s:
        for ref in (one, other):
            concern = s.get_one(Concern, ref)
            concern.acknowledge_by = today - dt.timedelta(days=1)
            workflow.set_overdue(s, concern, True)
        s.commit()
    # Acknowledging pays the acknowledgement owed: no longer overdue (feedback is months away).
    ann = _logins(app, client, one)[0]
    assert client.post(f"/api/v1/cases/{one}/transitions", headers=ann,
                       json={"to": "acknowledged"}).status_code == 200
    assert overdue_marks(app, one) == (False, [False, False])
    # A case whose feedback is overdue stays overdue when it moves on without feedback.
    bob = _logins(app, client, other)[0]
    assert client.post(f"/api/v1/cases/{other}/transitions", headers=bob,
                       json={"to": "acknowledged"}).status_code == 200
    with db.new_session(app) as s:
        concern = s.get_one(Concern, other)
        concern.feedback_by = today - dt.timedelta(days=1)
        workflow.set_overdue(s, concern, True)
        s.commit()
    assert client.post(f"/api/v1/cases/{other}/transitions", headers=bob,
                       json={"to": "investigating"}).status_code == 200
    assert overdue_marks(app, other) == (True, [True, True])


def test_feedback_given_with_any_move_but_a_proposal_reaches_the_reporter_at_once(
        app: Flask, client: FlaskClient) -> None:
    make_reviewer(app, "Ann Reviewer"), make_reviewer(app, "Bob Reviewer")
    made = submit_concern(client)
    ann = _logins(app, client, made["case_ref"])[0]
    moved = client.post(f"/api/v1/cases/{made['case_ref']}/transitions", headers=ann,
                        json={"to": "acknowledged", "feedback": "We have read it."})
    assert moved.status_code == 200, moved.get_data(as_text=True)
    seen = client.post("/api/v1/status", json={"token": made["token"]}).get_json()
    assert [(m["kind"], m["body"]) for m in seen["messages"]] == [
        ("feedback", "We have read it.")]
