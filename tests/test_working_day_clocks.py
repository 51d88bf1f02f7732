"""Issue 23, item 1: clocks in working days, per category.

An allegation that an adult who works with children has harmed a child goes to the LADO
within one working day: such a concern submitted on a Friday is due on the next working
day (Tuesday, when Monday is a bank holiday) and escalates that day. The EU clocks (7
calendar days, 3 months) stay the default; administrators set a category's clock; reporters
and reviewers see the due date in words. Real app, real database (SQLite, or PostgreSQL with
``WHISTLE_TEST_DB=postgres``), real SMTP.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import holidays
import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from tests.support.factories import login, make_reviewer
from tests.support.webflow import post_form, reporter_status, sign_in, status_page
from whistle import config, settings_of
from whistle.cases import clocks, intake
from whistle.store import db
from whistle.store.models import Assignment, AuditEvent, Concern

# Friday 28 May 2027; Monday 31 May 2027 is the Spring bank holiday in England and Wales.
FRIDAY = dt.date(2027, 5, 28)
BANK_HOLIDAY_MONDAY = dt.date(2027, 5, 31)
TUESDAY = dt.date(2027, 6, 1)

People = dict[str, dict[str, str]]


@pytest.fixture
def people(app: Flask) -> People:
    """Ann and Bob cover Education (routed); Ida is independent (the escalation reviewer)."""
    return {"ann": make_reviewer(app, "Ann Routed", units=["Education"]),
            "bob": make_reviewer(app, "Bob Routed", units=["Education"]),
            "ida": make_reviewer(app, "Ida Independent", independent=True)}


def submit_on(app: Flask, day: dt.date, category: str = "lado", **fields: Any
              ) -> intake.Receipt:
    """A concern stored as if submitted at 16:30 UTC on ``day`` (through the same domain
    call as the API, with its clock)."""
    body = {"category": category, "details": "The coach keeps a boy behind after training.",
            "unit": "Education"} | fields
    with db.new_session(app) as s:
        sub = intake.parse_submission(body, s, settings_of(app))
        return intake.submit(s, app.extensions["whistle_keys"], settings_of(app), sub,
                             now=dt.datetime.combine(day, dt.time(16, 30)))


def deadlines(app: Flask, day: dt.date) -> str:
    result = app.test_cli_runner().invoke(args=["deadlines", "--as-of", day.isoformat()])
    assert result.exit_code == 0, result.output
    return result.output


def case_row(app: Flask, ref: str) -> Concern:
    with db.new_session(app) as s:
        return s.get_one(Concern, ref)


def trail(app: Flask, ref: str) -> list[tuple[str, str]]:
    with db.new_session(app) as s:
        return [(t, d) for t, d in s.execute(select(AuditEvent.type, AuditEvent.data).where(
            AuditEvent.concern_id == ref).order_by(AuditEvent.seq))]


def assigned(app: Flask, ref: str) -> set[str]:
    with db.new_session(app) as s:
        return set(s.scalars(select(Assignment.reviewer_id).where(
            Assignment.concern_id == ref)))


# -- the calendar ------------------------------------------------------------------------------


def test_england_and_wales_share_their_bank_holidays_and_gb_alone_lacks_some() -> None:
    # Why the default is GB-ENG: it is England's and Wales's list (identical), while GB
    # without a subdivision only has the days common to the whole UK (no Easter Monday,
    # no August bank holiday for Scotland's sake).
    years = range(2024, 2040)
    england = holidays.country_holidays("GB", subdiv="ENG", years=years)
    wales = holidays.country_holidays("GB", subdiv="WLS", years=years)
    whole_uk = holidays.country_holidays("GB", years=years)
    assert set(england) == set(wales)
    assert BANK_HOLIDAY_MONDAY in england and BANK_HOLIDAY_MONDAY in holidays.UK(
        subdiv="ENG", years=2027)
    assert dt.date(2027, 3, 29) in england and dt.date(2027, 3, 29) not in whole_uk
    assert config.build().holiday_calendar == "GB-ENG"


def test_working_days_skip_weekends_and_bank_holidays() -> None:
    one, two, seven = clocks.Clock(1, True), clocks.Clock(2, True), clocks.Clock(7, False)
    assert clocks.add(FRIDAY, one, "GB-ENG") == TUESDAY
    assert clocks.add(dt.date(2027, 6, 4), one, "GB-ENG") == dt.date(2027, 6, 7)  # plain Friday
    assert clocks.add(dt.date(2026, 12, 24), one, "GB-ENG") == dt.date(2026, 12, 29)  # Christmas
    assert clocks.add(dt.date(2027, 5, 29), one, "GB-ENG") == TUESDAY  # a Saturday
    assert clocks.add(FRIDAY, two, "GB-ENG") == dt.date(2027, 6, 2)
    assert clocks.add(FRIDAY, seven, "GB-ENG") == dt.date(2027, 6, 4)  # calendar days
    assert clocks.add(FRIDAY, one, "none") == BANK_HOLIDAY_MONDAY  # weekends only
    assert clocks.add(FRIDAY, one, "DE-BY") == BANK_HOLIDAY_MONDAY  # not a holiday there


def test_an_unknown_holiday_calendar_is_refused_at_start_up() -> None:
    for bad in ("XX", "GB-XYZ"):
        with pytest.raises(config.ConfigError, match="HOLIDAY_CALENDAR"):
            config.build({"HOLIDAY_CALENDAR": bad})


# -- the categories carry their clocks ----------------------------------------------------------


def test_the_intake_lists_each_categorys_clock_and_the_lado_category(client: FlaskClient) -> None:
    categories = client.get("/api/v1/intake").get_json()["categories"]
    by_id = {c["id"]: c for c in categories}
    assert by_id["lado"]["ack_working_days"] == 1 and "ack_days" not in by_id["lado"]
    assert "adult who works with children" in by_id["lado"]["label"]
    assert by_id["conduct"]["ack_days"] == 7 and "ack_working_days" not in by_id["conduct"]
    assert all(("ack_working_days" in c) != ("ack_days" in c) for c in categories)


# -- the Friday LADO concern ------------------------------------------------------------------


def test_a_lado_concern_sent_on_a_friday_before_a_bank_holiday_is_due_tuesday_and_escalates_then(
        app: Flask, client: FlaskClient, people: People) -> None:
    lado = submit_on(app, FRIDAY)
    conduct = submit_on(app, FRIDAY, category="conduct")  # the EU clock, side by side
    assert lado.acknowledge_by == TUESDAY
    assert conduct.acknowledge_by == FRIDAY + dt.timedelta(days=7)
    row = case_row(app, lado.case_ref)
    assert row.ack_clock == "1wd" and row.feedback_by == TUESDAY + dt.timedelta(days=90)
    assert assigned(app, lado.case_ref) == {people["ann"]["id"], people["bob"]["id"]}

    # The due date, in words, for the reviewers and the reporter.
    view = client.get(f"/api/v1/cases/{lado.case_ref}", headers=login(client, people["ann"]))
    assert view.status_code == 200
    assert view.get_json()["acknowledge_by"] == "2027-06-01"
    assert view.get_json()["acknowledge_by_words"] == "Tuesday 1 June 2027"
    status = reporter_status(client, lado.token)
    assert status["acknowledge_by_words"] == "Tuesday 1 June 2027"
    assert '<time datetime="2027-06-01">1 June 2027</time> (Tuesday)' in status_page(
        client, lado.token)
    page = sign_in(app, people["bob"]).get(f"/reviewer/cases/{lado.case_ref}")
    assert page.status_code == 200 and "(Tuesday)" in page.get_data(as_text=True)

    # The bank holiday Monday is no working day: nothing is due, nothing escalates.
    deadlines(app, BANK_HOLIDAY_MONDAY)
    assert not case_row(app, lado.case_ref).overdue
    assert "escalated" not in [t for t, _ in trail(app, lado.case_ref)]

    # Tuesday, the due day: still unacknowledged, it escalates that day, with access.
    out = deadlines(app, TUESDAY)
    assert re.search(r"(\d+) case\(s\) escalated", out).group(1) == "1"  # type: ignore[union-attr]
    row = case_row(app, lado.case_ref)
    assert row.overdue and row.escalation_tier == 1 and row.escalated_on == TUESDAY
    types = [t for t, _ in trail(app, lado.case_ref)]
    assert "acknowledge_overdue" in types and "escalated" in types
    assert people["ida"]["id"] in assigned(app, lado.case_ref)
    ida = client.get(f"/api/v1/cases/{lado.case_ref}", headers=login(client, people["ida"]))
    assert ida.status_code == 200 and "coach" in ida.get_json()["details"]
    assert "escalated" in [e["type"] for e in reporter_status(client, lado.token)["events"]]

    # The calendar-day case next to it is not due until the Friday after, as before.
    assert not case_row(app, conduct.case_ref).overdue
    deadlines(app, FRIDAY + dt.timedelta(days=7))
    assert not case_row(app, conduct.case_ref).overdue
    deadlines(app, FRIDAY + dt.timedelta(days=8))
    assert case_row(app, conduct.case_ref).overdue

    # The inbox counts (overdue included) kept up with all of it.
    recount = app.test_cli_runner().invoke(args=["inbox", "recount", "--check"])
    assert recount.exit_code == 0, recount.output
    overdue = client.get("/api/v1/cases?status=overdue", headers=login(client, people["ann"]))
    assert {c["case_ref"] for c in overdue.get_json()["cases"]} == {lado.case_ref,
                                                                   conduct.case_ref}


def test_acknowledged_on_time_it_does_not_escalate(app: Flask, client: FlaskClient,
                                                   people: People) -> None:
    lado = submit_on(app, FRIDAY)
    moved = client.post(f"/api/v1/cases/{lado.case_ref}/transitions",
                        json={"to": "acknowledged"}, headers=login(client, people["ann"]))
    assert moved.status_code == 200
    deadlines(app, TUESDAY)
    # (Acknowledged today, the real day, it owes feedback from today: only the
    # acknowledgement clock is at issue here.)
    assert "acknowledge_overdue" not in [t for t, _ in trail(app, lado.case_ref)]


# -- administrators set the clock per category -----------------------------------------------


def test_administrators_set_a_categorys_clock_and_existing_cases_keep_theirs(
        app: Flask, client: FlaskClient, people: People) -> None:
    admin = make_reviewer(app, "Ada Admin", admin=True, reviews=False)
    before = submit_on(app, FRIDAY, category="fraud")
    browser = sign_in(app, admin)
    form = browser.get("/admin/settings").get_data(as_text=True)
    assert "lado | An allegation" in form and "ack_working_days=1" in form
    saved = post_form(browser, "/admin/settings", {
        "categories": "lado | Allegation about an adult who works with children | "
                      "ack_working_days=1 | retention_days=27394\n"
                      "fraud | Fraud | ack_working_days=2\nother | Other | ack_days=10\n",
        "units": "Education"}, "/admin/settings")
    assert saved.status_code == 302
    by_id = {c["id"]: c for c in client.get("/api/v1/intake").get_json()["categories"]}
    assert by_id["fraud"]["ack_working_days"] == 2 and by_id["other"]["ack_days"] == 10
    assert by_id["lado"]["ack_working_days"] == 1
    assert submit_on(app, FRIDAY, category="fraud").acknowledge_by == dt.date(2027, 6, 2)
    assert submit_on(app, FRIDAY, category="other").acknowledge_by == dt.date(2027, 6, 7)
    assert case_row(app, before.case_ref).acknowledge_by == dt.date(2027, 6, 4)  # unmoved

    for bad in ("fraud | Fraud | ack_working_days=0", "fraud | Fraud | ack_days=7 | "
                "ack_working_days=1", "fraud | Fraud | next tuesday", "fraud | Fraud | "
                "ack_days=999"):
        refused = post_form(browser, "/admin/settings", {"categories": bad, "units": "x"},
                            "/admin/settings")
        assert refused.status_code == 400, bad
    after = {c["id"]: c for c in client.get("/api/v1/intake").get_json()["categories"]}
    assert after == by_id  # nothing changed by the refusals
