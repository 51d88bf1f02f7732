"""The inbox's orders and filters: exact across pages, and none of them grows with the cases.

Overdue first (the reviewer's home page), by status, the overdue filter, the
reviewer's counts, the administrators' attention list and the daily deadlines
run read indexes that hold only what they show. The copy of the overdue flag
that the assignments keep for that (``workflow.set_overdue``) must never
drift from the case's.
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, insert, select, update

from tests.support import services
from tests.support.factories import (
    build_app,
    login,
    make_reviewer,
    share_case,
    submit_concern,
)
from whistle import settings_of
from whistle.cases import deadlines, inbox, stats, workflow
from whistle.people import administration
from whistle.store import counts, db
from whistle.store.models import Assignment, Concern, InboxCount, utcnow


def run_deadlines(app: Flask, now: dt.datetime | None = None) -> deadlines.DeadlineReport:
    with db.new_session(app) as s:
        return deadlines.run(s, settings_of(app), app.extensions["whistle_keys"], now or utcnow())


def drifted(app: Flask) -> int:
    """Assignments whose overdue copy differs from their case's flag."""
    with db.new_session(app) as s:
        return s.scalar(select(func.count()).select_from(Assignment).join(Concern).where(
            Assignment.overdue != Concern.overdue)) or 0


def move(client: FlaskClient, headers: dict[str, str], ref: str, to: str, **extra: Any) -> None:
    response = client.post(f"/api/v1/cases/{ref}/transitions", json={"to": to} | extra,
                           headers=headers)
    assert response.status_code == 200, response.get_data(as_text=True)


@pytest.fixture
def inbox_of_many(app: Flask, client: FlaskClient) -> dict[str, Any]:
    """Two reviewers sharing 14 cases on different days, in every status, some overdue."""
    ann, bob = make_reviewer(app, "Ann Reviewer"), make_reviewer(app, "Bob Reviewer")
    refs = [submit_concern(client)["case_ref"] for _ in range(14)]
    today = utcnow().date()
    with db.new_session(app) as s:  # spread over days, with two on the same day (ties)
        for n, ref in enumerate(refs):
            day = today - dt.timedelta(days=min(n, 12))
            s.execute(update(Concern).where(Concern.id == ref).values(
                created=day, acknowledge_by=day + dt.timedelta(days=7)))
            s.execute(update(Assignment).where(Assignment.concern_id == ref).values(created=day))
        s.commit()
    a, b = login(client, ann), login(client, bob)
    for ref in refs[2:6]:
        move(client, a, ref, "acknowledged")
    for ref in refs[4:6]:
        move(client, a, ref, "investigating")
    move(client, a, refs[6], "closed", outcome="referred")
    move(client, a, refs[7], "closed", outcome="referred")
    move(client, b, refs[7], "closed")
    with db.new_session(app) as s:  # one acknowledged case past its feedback deadline
        s.execute(update(Concern).where(Concern.id == refs[3]).values(
            feedback_by=today - dt.timedelta(days=1)))
        s.commit()
    report = run_deadlines(app)
    # received and 8+ days old: refs 8..13 (acknowledge by 7 days after); plus refs[3]
    assert sorted(report.escalated) == sorted(refs[8:] + [refs[3]])
    return {"refs": refs, "ann": ann, "bob": bob, "headers": a}


def expected(app: Flask, reviewer_id: str, status: str | None, sort: str) -> list[str]:
    """The order spelled out in Python over every one of the reviewer's cases."""
    with db.new_session(app) as s:
        rows = s.execute(select(Concern.id, Concern.status, Concern.created, Concern.overdue)
                         .join(Assignment).where(Assignment.reviewer_id == reviewer_id)).all()
    if status == "overdue":
        rows = [r for r in rows if r.overdue]
    elif status == "open":
        rows = [r for r in rows if r.status != workflow.CLOSED]
    elif status:
        rows = [r for r in rows if r.status == status]
    rows.sort(key=lambda r: r.id, reverse=True)
    rows.sort(key=lambda r: r.created, reverse=True)  # newest, ties by reference descending
    if sort == "oldest":
        rows.sort(key=lambda r: (r.created, r.id))
    elif sort == "overdue":
        rows.sort(key=lambda r: not r.overdue)
    elif sort == "status":
        rows.sort(key=lambda r: workflow.STATUSES.index(r.status))
    return [r.id for r in rows]


@pytest.mark.parametrize("status", [None, "open", "received", "acknowledged", "overdue"])
@pytest.mark.parametrize("sort", ["newest", "oldest", "overdue", "status"])
def test_every_order_is_exact_across_pages(app: Flask, client: FlaskClient,
                                           inbox_of_many: dict[str, Any], status: str | None,
                                           sort: str) -> None:
    want = expected(app, inbox_of_many["ann"]["id"], status, sort)
    assert want, "the fixture must give every filter something to list"
    got: list[str] = []
    for page in range(1, len(want) // 3 + 3):  # pages of three, and one past the end
        query = f"sort={sort}&per_page=3&page={page}" + (f"&status={status}" if status else "")
        response = client.get(f"/api/v1/cases?{query}", headers=inbox_of_many["headers"])
        assert response.status_code == 200, response.get_data(as_text=True)
        body = response.get_json()
        assert body["total"] == len(want)
        got += [c["case_ref"] for c in body["cases"]]
    assert got == want


def test_the_overdue_copy_follows_the_case_through_deadlines_steps_and_sharing(
        app: Flask, client: FlaskClient, inbox_of_many: dict[str, Any]) -> None:
    refs, headers = inbox_of_many["refs"], inbox_of_many["headers"]
    with db.new_session(app) as s:
        overdue = set(s.scalars(select(Assignment.concern_id).where(Assignment.overdue.is_(True))))
    assert overdue == set(refs[8:] + [refs[3]]) and drifted(app) == 0
    with db.engine_for(app).connect() as conn:
        assert counts.mismatches(conn) == []
        kept = dict(conn.execute(select(InboxCount.reviewer_id, InboxCount.n).where(
            InboxCount.status == counts.OVERDUE)).tuples().all())
    assert kept == {inbox_of_many["ann"]["id"]: 7, inbox_of_many["bob"]["id"]: 7}
    move(client, headers, refs[8], "acknowledged")  # the owed step: no longer overdue
    carl = make_reviewer(app, "Carl Reviewer")
    shared = share_case(client, refs[9], carl["id"], headers,
                        login(client, inbox_of_many["bob"]))
    assert shared.status_code == 201, shared.get_data(as_text=True)
    assert drifted(app) == 0
    carl_sees = client.get("/api/v1/cases?status=overdue", headers=login(client, carl))
    assert [c["case_ref"] for c in carl_sees.get_json()["cases"]] == [refs[9]]
    listed = client.get("/api/v1/cases?status=overdue", headers=headers).get_json()["total"]
    assert listed == len(overdue) - 1
    later = run_deadlines(app, utcnow() + dt.timedelta(days=200))  # every feedback late now
    assert later.escalated and drifted(app) == 0
    with db.engine_for(app).connect() as conn:  # the kept overdue counts too
        assert counts.mismatches(conn) == []


def test_the_daily_run_loads_only_the_cases_with_a_step_due(
        app: Flask, client: FlaskClient, inbox_of_many: dict[str, Any]) -> None:
    """A second run the same day finds nothing due and loads no case (the first run loaded
    every open case, ciphertext and all, and committed once per case)."""
    from sqlalchemy import event

    loaded: list[Any] = []

    def count(target: Any, _context: Any) -> None:
        loaded.append(target)

    event.listen(Concern, "load", count)
    try:
        report = run_deadlines(app)
    finally:
        event.remove(Concern, "load", count)
    assert report.escalated == [] and report.reminded == [] and report.overdue == 7
    assert loaded == []


def test_the_attention_list_names_the_oldest_and_counts_only_what_the_admin_may_know(
        app: Flask, client: FlaskClient, inbox_of_many: dict[str, Any],
        monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.support.webflow import sign_in

    refs = inbox_of_many["refs"]
    ada = make_reviewer(app, "Ada Admin", admin=True, reviews=False)
    hidden = submit_concern(client, exclude_reviewers=[ada["id"]])["case_ref"]
    with db.new_session(app) as s:  # overdue too, and the oldest of all
        s.execute(update(Concern).where(Concern.id == hidden).values(
            created=utcnow().date() - dt.timedelta(days=30),
            acknowledge_by=utcnow().date() - dt.timedelta(days=23)))
        s.commit()
    run_deadlines(app)
    with db.new_session(app) as s:
        found = administration.attention(s, app.extensions["whistle_keys"], ada["id"], shown=3)
    # refs 12 and 13 share the oldest day (ties by reference), then ref 11
    assert [c.id for c in found.cases] == sorted(refs[12:14]) + [refs[11]]
    assert found.total == 7  # the seven overdue cases; not the one Ada is excluded from
    monkeypatch.setattr(administration, "ATTENTION_SHOWN", 3)
    home = sign_in(app, ada).get("/admin/").get_data(as_text=True)
    assert "3 oldest of 7 cases shown." in home and hidden not in home


# -- growth: SQLite's own count of the work each read does --------------------------


def _case_rows(start: int, count: int, today: dt.date, overdue: bool) -> list[dict[str, Any]]:
    return [{
        "id": f"WH-TEST-{start + n:08d}", "category": "conduct", "unit": None,
        "about_senior": False, "status": "acknowledged", "created": today - dt.timedelta(days=n % 90),
        "acknowledge_by": today,
        "feedback_by": today + dt.timedelta(days=-1 if overdue else 60),
        "under_routed": False, "overdue": overdue, "escalated_ack": False,
        "escalated_feedback": overdue, "reminded_ack": False, "reminded_feedback": overdue,
        "details_ct": b"sealed elsewhere", "token_lookup": secrets.token_bytes(32),
        "failed_lookups": 0,
    } for n in range(count)]


def _add_cases(app: Flask, reviewer_id: str, start: int, count: int, overdue: bool) -> None:
    today = utcnow().date()
    rows = _case_rows(start, count, today, overdue)
    with db.engine_for(app).begin() as conn:
        conn.execute(insert(Concern), rows)
        conn.execute(insert(Assignment), [
            {"concern_id": r["id"], "reviewer_id": reviewer_id, "status": r["status"],
             "created": r["created"], "overdue": overdue} for r in rows])
        counts.recount(conn)


def _vm_steps(app: Flask, read: Callable[[Any], Any]) -> int:
    """SQLite virtual machine instructions (in tens) that ``read`` runs in a fresh session."""
    steps = [0]

    def tick() -> int:
        steps[0] += 1
        return 0

    with db.new_session(app) as session:
        raw = session.connection().connection.driver_connection
        raw.set_progress_handler(tick, 10)
        try:
            read(session)
        finally:
            raw.set_progress_handler(None, 10)
            session.rollback()
    return steps[0]


def test_overdue_views_do_the_same_work_at_ten_times_the_cases(
        tmp_path: Path, smtp: services.SmtpServer, weak_kdf: dict[str, Any]) -> None:
    """On SQLite whatever engine the suite runs on (its progress handler counts the work).
    First ten times the cases, then ten times the overdue ones too. Against the joins
    these reads replaced, every inbox figure grew about tenfold; counting the overdue
    cases on their index grew with them."""
    app = build_app(tmp_path, f"sqlite:///{tmp_path / 'growth.db'}", smtp, weak_kdf)
    reviewer = make_reviewer(app, "Heavy Reviewer")["id"]
    admin = make_reviewer(app, "Ada Admin", admin=True, reviews=False)["id"]
    rid = reviewer

    def page(status: str | None, sort: str, number: int = 1) -> Callable[[Any], Any]:
        return lambda s: inbox.list_cases(s, rid, status, number, 25, sort)

    inbox_reads: dict[str, Callable[[Any], Any]] = {
        "overdue filter": page("overdue", "newest"),
        "overdue first": page(None, "overdue"),
        "overdue first, second page": page(None, "overdue", 2),
        "by status": page(None, "status"),
        "open, by status": page("open", "status", 2),
        "reviewer counts": lambda s: stats.inbox_counts(s, rid),
    }
    # These two list or read every case they concern: they must not grow with the others.
    reads = inbox_reads | {
        "attention list": lambda s: administration.attention(
            s, app.extensions["whistle_keys"], admin),
        "deadlines run": lambda s: deadlines.run(s, settings_of(app), app.extensions["whistle_keys"],
                                                 utcnow()),
    }

    def measure(which: dict[str, Callable[[Any], Any]]) -> dict[str, int]:
        return {name: _vm_steps(app, read) for name, read in which.items()}

    _add_cases(app, reviewer, 0, 30, overdue=True)
    _add_cases(app, reviewer, 1000, 300, overdue=False)
    small = measure(reads)
    _add_cases(app, reviewer, 10_000, 3000, overdue=False)
    more_cases = measure(reads)
    _add_cases(app, reviewer, 100_000, 270, overdue=True)
    more_overdue = measure(inbox_reads)

    grew = {name: more_cases[name] / max(1, small[name]) for name in reads}
    # The deadlines run reads every open case's columns (all of them are open here): it
    # grows, by design, and shows that the count can see growth.
    assert grew.pop("deadlines run") > 3
    assert all(g < 1.5 for g in grew.values()), grew
    grew = {name: more_overdue[name] / max(1, small[name]) for name in inbox_reads}
    assert all(g < 1.5 for g in grew.values()), grew
    with db.new_session(app) as s:
        found, total = inbox.list_cases(s, rid, "overdue", 1, 25, "newest")
        assert stats.inbox_counts(s, rid)["overdue"] == 300
    assert total == 300 and len(found) == 25
    with db.engine_for(app).connect() as conn:
        assert counts.mismatches(conn) == []
    db.engine_for(app).dispose()
