"""Statistics: aggregate figures drawn as server-side SVG, never a count under 5, never a case."""

from __future__ import annotations

import datetime as dt
import re
from collections import Counter

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import update

from tests.support.factories import login, make_reviewer, submit_concern
from tests.support.webflow import sign_in
from whistle.cases import stats
from whistle.store import db
from whistle.store.models import Concern, utcnow

# -- the suppression rules, on their own ------------------------------------------------------


def test_every_count_under_five_is_shown_only_as_fewer_than_five() -> None:
    got = stats.breakdown({"a": 0, "b": 1, "c": 4, "d": 5, "e": 12}, ["a", "b", "c", "d", "e"])
    shown = {c.key: c.count for c in got.cells}
    assert shown == {"a": None, "b": None, "c": None, "d": 5, "e": 12}
    assert {c.key for c in got.cells if c.reason == stats.SMALL} == {"a", "b", "c"}


def test_a_lone_small_cell_cannot_be_worked_out_by_subtraction() -> None:
    # Total 17 is shown elsewhere: 17 - 7 - 8 would give the small cell. Hide the smallest other.
    got = stats.breakdown({"fraud": 7, "conduct": 8, "safety": 2})
    cells = {c.key: c for c in got.cells}
    assert cells["safety"].count is None and cells["safety"].reason == stats.SMALL
    assert cells["fraud"].count is None and cells["fraud"].reason == stats.HIDDEN
    assert cells["conduct"].count == 8


@pytest.mark.parametrize("counts", [
    {"a": 1}, {"a": 3, "b": 9}, {"a": 0, "b": 0, "c": 40}, {"a": 6, "b": 6, "c": 1, "d": 2},
    {f"k{i}": i for i in range(12)},
])
def test_no_breakdown_ever_shows_a_number_under_five(counts: dict[str, int]) -> None:
    got = stats.breakdown(counts)
    assert all(c.count is None or c.count >= stats.THRESHOLD for c in got.cells)
    assert sum(1 for c in got.cells if c.count is None) != 1 or len(got.cells) == 1


def test_median_times_need_five_cases() -> None:
    assert stats.duration(Counter({1: 4}), 7).median_days is None
    few = stats.duration(Counter({1: 4}), 7)
    assert few.cases is None
    enough = stats.duration(Counter({1: 2, 3: 2, 20: 1}), 7)
    assert enough.cases == 5 and enough.median_days == 3


def test_quarters_run_from_the_first_case_and_at_most_eight_back() -> None:
    today = dt.date(2026, 11, 22)
    assert stats.recent_quarters(today, dt.date(2026, 5, 1)) == ["2026-Q2", "2026-Q3", "2026-Q4"]
    long_ago = stats.recent_quarters(today, dt.date(2019, 1, 1))
    assert len(long_ago) == 8 and long_ago[-1] == "2026-Q4" and long_ago[0] == "2025-Q1"


# -- the page -----------------------------------------------------------------------------------


def _page(app: Flask, who: dict[str, str], path: str = "/reviewer/stats") -> str:
    response = sign_in(app, who).get(path)
    assert response.status_code == 200, response.get_data(as_text=True)[:500]
    return response.get_data(as_text=True)


def _cell(html: str, table: str, label: str) -> str:
    body = html[html.index(f'id="{table}-table"'):]
    found = re.search(r"<th scope=\"row\">" + re.escape(label) + r"</th><td>([^<]+)</td>", body)
    assert found, (table, label)
    return found.group(1)


def test_small_counts_are_suppressed_on_the_page_and_in_its_charts(
        app: Flask, client: FlaskClient) -> None:
    ann = make_reviewer(app, "Ann Reviewer")
    make_reviewer(app, "Bob Reviewer")
    refs = [submit_concern(client, category="fraud")["case_ref"] for _ in range(7)]
    refs += [submit_concern(client, category="conduct")["case_ref"] for _ in range(2)]
    html = _page(app, ann)

    assert '<dd id="total">9</dd>' in html
    assert _cell(html, "by-category", "Fraud, bribery or misuse of money") == "7"
    assert _cell(html, "by-category", "Conduct of a colleague or manager") == "fewer than 5"
    assert _cell(html, "by-status", "Received") == "9"
    # Drawn as inline SVG: the conduct bar is words without a bar, the fraud bar is a bar.
    chart = html[html.index('<svg class="chart" id="by-category"'):]
    chart = chart[:chart.index("</svg>")]
    assert chart.count('<rect class="chart-bar"') == 1
    assert "fewer than 5" in chart and ">7</text>" in chart
    # No small number anywhere, no case, no way to drill down, nothing the CSP would block.
    numbers = [int(n) for n in re.findall(r"<td>(\d+)</td>|>(\d+)</text>", html) for n in n if n]
    assert numbers and all(n >= stats.THRESHOLD for n in numbers)
    assert all(ref not in html for ref in refs) and "/reviewer/cases/" not in html
    assert " style=" not in html and "<style" not in html and "<script" not in html


def test_a_reviewer_excluded_from_a_case_sees_the_same_figures_as_everyone(
        app: Flask, client: FlaskClient) -> None:
    # Issue 19, item 7: figures without the viewer's excluded cases differed from a
    # colleague's by exactly those cases, so comparing them revealed the exclusion. Now
    # everyone sees the same figures (tests/test_exclusion_invisible.py compares the pages).
    ann = make_reviewer(app, "Ann Reviewer")
    make_reviewer(app, "Bob Reviewer")
    carol = make_reviewer(app, "Carol Reviewer")
    for _ in range(6):
        submit_concern(client, category="fraud")
    submit_concern(client, category="fraud", exclude_reviewers=[carol["id"]])
    assert _cell(_page(app, ann), "by-category", "Fraud, bribery or misuse of money") == "7"
    assert _cell(_page(app, carol), "by-category", "Fraud, bribery or misuse of money") == "7"
    assert '<dd id="total">7</dd>' in _page(app, carol)


def test_times_to_acknowledge_and_close_are_medians_over_five_or_more_cases(
        app: Flask, client: FlaskClient) -> None:
    ann, bob = make_reviewer(app, "Ann Reviewer"), make_reviewer(app, "Bob Reviewer")
    refs = [submit_concern(client)["case_ref"] for _ in range(6)]
    a, b = login(client, ann), login(client, bob)
    for ref in refs[:5]:
        assert client.post(f"/api/v1/cases/{ref}/transitions", json={"to": "acknowledged"},
                           headers=a).status_code == 200
    html = _page(app, ann)
    assert "Half of the cases took 0 days or less." in html and "Counted over 5 cases." in html
    assert _cell_free(html, "to-close-median") == "Too few cases to show (fewer than 5)."
    # Received 20 days earlier, closed today by two reviewers: 20 days to close.
    with db.new_session(app) as s:
        s.execute(update(Concern).where(Concern.id.in_(refs)).values(
            created=utcnow().date() - dt.timedelta(days=20)))
        s.commit()
    for ref in refs[:5]:
        client.post(f"/api/v1/cases/{ref}/transitions", json={"to": "closed",
                    "outcome": "substantiated"}, headers=a)
        assert client.post(f"/api/v1/cases/{ref}/transitions", json={"to": "closed"},
                           headers=b).status_code == 200
    html = _page(app, ann)
    assert "Half of the cases took 20 days or less." in _cell_free(html, "to-close-median")
    assert _cell(html, "by-status", "Closed") == "5"


def _cell_free(html: str, element_id: str) -> str:
    found = re.search(rf'id="{element_id}">([^<]+)<', html)
    assert found, element_id
    return found.group(1)


def test_older_quarters_are_folded_together(app: Flask, client: FlaskClient) -> None:
    ann = make_reviewer(app, "Ann Reviewer")
    make_reviewer(app, "Bob Reviewer")
    refs = [submit_concern(client)["case_ref"] for _ in range(11)]
    with db.new_session(app) as s:
        s.execute(update(Concern).where(Concern.id.in_(refs[:6])).values(
            created=dt.date(2015, 2, 1)))
        s.commit()
    html = _page(app, ann)
    assert _cell(html, "by-quarter", "Earlier") == "6"
    today = utcnow().date()
    this_quarter = f"Quarter {(today.month - 1) // 3 + 1} of {today.year}"
    assert _cell(html, "by-quarter", this_quarter) == "5"


def test_statistics_need_a_signed_in_reviewer_or_administrator(
        app: Flask, client: FlaskClient) -> None:
    response = client.get("/reviewer/stats")
    assert response.status_code == 302 and response.headers["Location"].endswith(
        "/reviewer/login")
    admin = make_reviewer(app, "Ada Admin", admin=True, reviews=False)
    assert "Cases by status" in _page(app, admin)


def test_the_chart_mirrors_for_right_to_left_pages(app: Flask, client: FlaskClient) -> None:
    ann = make_reviewer(app, "Ann Reviewer")
    make_reviewer(app, "Bob Reviewer")
    for _ in range(5):
        submit_concern(client)
    html = _page(app, ann, "/reviewer/stats?lang=ar")
    assert '<html lang="ar" dir="rtl">' in html
    chart = html[html.index('<svg class="chart" id="by-status"'):]
    label = re.search(r'<text class="chart-label" x="(\d+)"[^>]*text-anchor="end"', chart)
    assert label and int(label.group(1)) > 600  # labels on the right edge
    assert "أقل من 5" in chart
