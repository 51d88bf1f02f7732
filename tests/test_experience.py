"""What reporters and reviewers see: landing, review before sending, the token page, status, inbox.

Server-rendered pages read through the Flask test client; the browser tests
(test_accessibility.py) drive the same pages in Chromium.
"""

from __future__ import annotations

import datetime as dt
import re
import secrets
from typing import Any

from babel.dates import format_date
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select, update

from tests.support.factories import database_bytes, make_reviewer, submit_concern
from tests.support.webflow import assert_not_at_rest, csrf, post_form, sign_in, status_page
from whistle import i18n
from whistle.store import db
from whistle.store.models import AuditEvent, Concern, Setting, utcnow


def count(app: Flask, model: Any) -> int:
    with db.new_session(app) as s:
        return int(s.scalar(select(func.count()).select_from(model)) or 0)


def words_in(html: str) -> list[str]:
    return re.findall(r'<span class="w">([a-z]+)</span>', html)


def in_words(day: dt.date) -> str:
    return format_date(day, i18n.DATE_PATTERN, locale="en")


def form_fields(**extra: Any) -> dict[str, Any]:
    return {"category": "conduct", "details": "Line one.\nLine two, with <b>tags</b>.",
            "idempotency_key": secrets.token_hex(16)} | extra


# -- 1. before reporting -----------------------------------------------------------------------


def test_the_landing_page_says_what_is_kept_and_how_anonymity_can_be_lost(
        client: FlaskClient) -> None:
    html = client.get("/").get_data(as_text=True)
    for text in ("What Whistle keeps", "What Whistle never keeps", "Your internet address",
                 "Details of your device or browser", "A work computer, work phone or work network",
                 "Your writing style", "Tor Browser", "Safest mode", "Independent advice",
                 "within 7 days", "within 90 days", "two reviewers must agree"):
        assert text in html, text


def test_administrators_set_the_independent_advice_shown_on_the_landing_page(
        app: Flask, client: FlaskClient) -> None:
    admin = make_reviewer(app, "Ada Admin", admin=True, reviews=False)
    browser = sign_in(app, admin)
    form = browser.get("/admin/settings").get_data(as_text=True)
    assert 'name="advice"' in form
    advice = "Protect: 020 3117 2520\n<script>alert(1)</script> Union helpline"
    categories = re.search(r'<textarea id="categories"[^>]*>([^<]*)</textarea>', form)
    units = re.search(r'<textarea id="units"[^>]*>([^<]*)</textarea>', form)
    assert categories and units
    saved = post_form(browser, "/admin/settings", {
        "categories": categories.group(1).replace("&#39;", "'"),
        "units": units.group(1).replace("&#39;", "'"), "advice": advice}, "/admin/settings")
    assert saved.status_code == 302
    landing = client.get("/").get_data(as_text=True)
    assert "Protect: 020 3117 2520" in landing and "Union helpline" in landing
    assert "<script>" not in landing and "&lt;script&gt;" in landing
    # A settings form without the field (an older client) keeps the advice.
    post_form(browser, "/admin/settings", {"categories": "x | X", "units": "U"},
              "/admin/settings")
    assert "Protect: 020 3117 2520" in client.get("/").get_data(as_text=True)


# -- 2. reporting: explanations and review before sending -------------------------------------


def test_the_form_explains_each_field_and_who_will_see_the_concern(
        app: Flask, client: FlaskClient) -> None:
    make_reviewer(app, "Ann Reviewer"), make_reviewer(app, "Bob Reviewer")
    html = client.get("/report").get_data(as_text=True)
    assert "Whistle chooses at least 2 of them" in html
    assert "Ann Reviewer" in html and "Bob Reviewer" in html
    for field in ("category", "unit", "details", "name", "role", "contact"):
        hint = re.search(rf'id="{field}"[^>]*aria-describedby="([\w-]+)', html)
        assert hint and f'id="{hint.group(1)}"' in html, field
    assert 'name="step" value="review"' in html


def test_review_before_sending_stores_nothing_and_carries_everything(
        app: Flask, client: FlaskClient) -> None:
    ann = make_reviewer(app, "Ann Reviewer")
    make_reviewer(app, "Bob Reviewer")
    fields = form_fields(unit="Health", about_senior="yes", exclude_reviewers=[ann["id"]],
                         identity="named", name="Pat Reporter", contact="pat@home.example",
                         clean_metadata="yes")
    review = client.post("/report", data={"csrf_token": csrf(client, "/report"),
                                          "step": "review"} | fields)
    assert review.status_code == 200
    html = review.get_data(as_text=True)
    assert "Nothing has been sent yet." in html and count(app, Concern) == 0
    assert "Line two, with &lt;b&gt;tags&lt;/b&gt;." in html  # shown, escaped
    assert "Must NOT see it</dt><dd>Ann Reviewer</dd>" in html and "Pat Reporter" in html
    hidden = dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)"', html))
    assert hidden["idempotency_key"] == fields["idempotency_key"]
    assert hidden["exclude_reviewers"] == ann["id"] and hidden["unit"] == "Health"
    # "Change" goes back to the form with everything filled in.
    change = client.post("/report", data={"csrf_token": csrf(client, "/report"),
                                          "step": "change"} | fields)
    assert change.status_code == 200 and "Line one." in change.get_data(as_text=True)
    assert count(app, Concern) == 0
    # "Send" stores it once; pressing it again is recognised by the idempotency key.
    sent = client.post("/report", data={"csrf_token": csrf(client, "/report")} | fields)
    assert sent.status_code == 201 and len(words_in(sent.get_data(as_text=True))) == 12
    again = client.post("/report", data={"csrf_token": csrf(client, "/report")} | fields)
    assert again.status_code == 409 and count(app, Concern) == 1


def test_review_refuses_bad_input_on_the_form_with_the_error_tied_to_its_field(
        app: Flask, client: FlaskClient) -> None:
    make_reviewer(app), make_reviewer(app)
    page = client.post("/report", data={"csrf_token": csrf(client, "/report"), "step": "review"}
                       | form_fields(identity="named", name=""))
    assert page.status_code == 400
    html = page.get_data(as_text=True)
    assert "Line one." in html and "Write your name, or choose to stay anonymous." in html
    assert re.search(r'id="name"[^>]*aria-describedby="name-hint identity-name-error"', html)
    assert 'id="identity-name-error"' in html and 'aria-invalid="true"' in html
    assert count(app, Concern) == 0


def test_files_chosen_before_review_are_named_and_kept(
        app: Flask, client: FlaskClient) -> None:
    import io

    make_reviewer(app), make_reviewer(app)
    data = {"csrf_token": csrf(client, "/report"), "step": "review",
            "attachment": (io.BytesIO(b"evidence"), "rota.txt")} | form_fields()
    page = client.post("/report", data=data, content_type="multipart/form-data")
    html = page.get_data(as_text=True)
    # Kept sealed for the form (issue 20, tests/test_words_survive.py), not asked for again.
    assert page.status_code == 200 and "rota.txt" in html and 'name="kept"' in html
    assert 'id="files-again"' not in html
    assert 'type="file" id="attachment"' in html


# -- 3. the token page ---------------------------------------------------------------------------


def _sent(app: Flask, client: FlaskClient) -> str:
    make_reviewer(app), make_reviewer(app)
    page = client.post("/report", data={"csrf_token": csrf(client, "/report")} | form_fields())
    assert page.status_code == 201
    return page.get_data(as_text=True)


def test_the_token_page_shows_numbered_words_a_print_layout_and_the_date_in_words(
        app: Flask, client: FlaskClient) -> None:
    html = _sent(app, client)
    assert re.findall(r'<span class="n">(\d+)</span>', html) == [str(n) for n in range(1, 13)]
    assert len(words_in(html)) == 12
    ack = utcnow().date() + dt.timedelta(days=7)
    assert f'<time datetime="{ack.isoformat()}">{in_words(ack)}</time>' in html
    assert "the reviewers will reply to you by then" in html
    assert 'class="print-only print-title"' in html and "no-print" in html
    css = client.get("/static/style.css").get_data(as_text=True)
    assert "@media print" in css and ".no-print" in css


def test_retyping_two_words_confirms_the_copy_and_stores_nothing(
        app: Flask, client: FlaskClient) -> None:
    html = _sent(app, client)
    words = words_in(html)
    positions = [int(p) for p in re.search(r'name="positions" value="(\d+) (\d+)"',
                                           html).groups()]  # type: ignore[union-attr]
    assert positions[0] != positions[1]
    ref = re.search(r'<strong class="ref">([^<]+)</strong>', html).group(1)  # type: ignore[union-attr]
    events, settings = count(app, AuditEvent), count(app, Setting)
    form = {"token": " ".join(words), "positions": f"{positions[0]} {positions[1]}",
            "case_ref": ref, "acknowledge_by": (utcnow().date() + dt.timedelta(days=7))
            .isoformat()}
    typed = {"word_1": words[positions[0] - 1].upper(), "word_2": words[positions[1] - 1]}
    ok = client.post("/report/kept", data={"csrf_token": csrf(client, "/report")} | form | typed)
    assert ok.status_code == 200
    assert "Your copy is right" in ok.get_data(as_text=True) and ref in ok.get_data(as_text=True)
    wrong = client.post("/report/kept", data={"csrf_token": csrf(client, "/report")} | form |
                        {"word_1": "abandon", "word_2": "ability"})
    assert wrong.status_code == 400
    again = wrong.get_data(as_text=True)
    assert "These words do not match." in again and words_in(again) == words
    assert f'value="{positions[0]} {positions[1]}"' in again  # the same two words asked again
    # Nothing was written: no event, no setting, and the words are nowhere at rest.
    assert count(app, AuditEvent) == events and count(app, Setting) == settings
    stored = database_bytes(app)
    assert_not_at_rest(stored, " ".join(words))


def test_the_token_check_refuses_what_it_cannot_read(app: Flask, client: FlaskClient) -> None:
    html = _sent(app, client)
    token = " ".join(words_in(html))
    for bad in ({"token": "not a token", "positions": "1 2"},
                {"token": token, "positions": "1 1"}, {"token": token, "positions": "0 13"},
                {"token": token, "positions": "x"}):
        response = client.post("/report/kept", data={"csrf_token": csrf(client, "/report"),
                                                      "word_1": "a", "word_2": "b"} | bad)
        assert response.status_code == 400, bad


# -- 4. status page --------------------------------------------------------------------------


def test_the_status_page_gives_deadlines_in_words_and_the_timeline(
        app: Flask, client: FlaskClient) -> None:
    make_reviewer(app), make_reviewer(app)
    receipt = submit_concern(client)
    html = status_page(client, receipt["token"])
    ack = dt.date.fromisoformat(receipt["acknowledge_by"])
    assert f"We will acknowledge your report by <time datetime=\"{ack}\">{in_words(ack)}" in html
    assert "Your concern was received." in html
    assert "Replace my token" in html and "never before" in html


def test_a_passed_deadline_is_shown_honestly_even_before_the_deadline_job_runs(
        app: Flask, client: FlaskClient) -> None:
    make_reviewer(app), make_reviewer(app)
    receipt = submit_concern(client)
    past = utcnow().date() - dt.timedelta(days=2)
    with db.new_session(app) as s:
        s.execute(update(Concern).where(Concern.id == receipt["case_ref"]).values(
            acknowledge_by=past))
        s.commit()
    html = status_page(client, receipt["token"])
    assert "A deadline on your report has passed." in html
    assert f"should have acknowledged your report by <time datetime=\"{past}\">" in html


# -- 5. reviewers ----------------------------------------------------------------------------------


def test_the_inbox_counts_cases_per_status_and_groups_them(app: Flask, client: FlaskClient
                                                            ) -> None:
    ann = make_reviewer(app, "Ann Reviewer")
    make_reviewer(app, "Bob Reviewer")
    refs = [submit_concern(client)["case_ref"] for _ in range(3)]
    browser = sign_in(app, ann)
    post_form(browser, f"/reviewer/cases/{refs[0]}/transition", {"to": "acknowledged"},
              f"/reviewer/cases/{refs[0]}")
    html = browser.get("/reviewer/?sort=status").get_data(as_text=True)
    assert ">Received: 2</a>" in html and ">Acknowledged: 1</a>" in html
    assert ">All: 3</a>" in html and ">Overdue: 0</a>" in html
    assert html.count('<tr class="group">') == 2
    filtered = browser.get("/reviewer/?lang=pl").get_data(as_text=True)
    assert '<input type="hidden" name="lang" value="pl">' in filtered


def test_the_case_page_explains_the_two_person_rule_and_lists_its_sections(
        app: Flask, client: FlaskClient) -> None:
    ann = make_reviewer(app, "Ann Reviewer")
    make_reviewer(app, "Bob Reviewer")
    ref = submit_concern(client)["case_ref"]
    html = sign_in(app, ann).get(f"/reviewer/cases/{ref}").get_data(as_text=True)
    assert "No one closes a case alone." in html
    for section in ("concern", "reporter", "attachments", "conversation", "notes", "actions",
                    "audit"):
        assert f'href="#{section}"' in html and f'id="{section}"' in html, section
