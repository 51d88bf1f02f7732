"""Issue 20, item 1: a reporter's words survive everything short of closing the browser.

Real app, real database (SQLite, or PostgreSQL with WHISTLE_TEST_DB=postgres), the Flask
test client with CSRF enabled: an expired form or a lost cookie gives the form back with
everything typed and stores nothing; files chosen before "Review before sending" are kept
sealed under a key only the form holds, arrive with the concern, and are gone after it is
sent or after KEPT_UPLOAD_HOURS; the status page's reply and files go in one form.
"""

from __future__ import annotations

import datetime as dt
import html
import io
import os
import re
import time
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from tests.support.factories import database_bytes, login, make_reviewer, submit_concern
from tests.support.webflow import csrf, encodings, marker
from whistle.cases import kept
from whistle.store import db
from whistle.store.models import Attachment, Concern, KeptUpload, Message
from whistle.store.models import utcnow


@pytest.fixture
def two(app: Flask) -> list[dict[str, str]]:
    return [make_reviewer(app, "Ann Reviewer"), make_reviewer(app, "Bob Reviewer")]


def count(app: Flask, model: Any) -> int:
    with db.new_session(app) as s:
        return s.scalar(select(func.count()).select_from(model)) or 0


def counts(app: Flask) -> dict[str, int]:
    return {m.__tablename__: count(app, m) for m in (Concern, Message, Attachment, KeptUpload)}


def report_fields(details: str, name: str) -> dict[str, Any]:
    return {"category": "conduct", "unit": "", "about_senior": "yes", "details": details,
            "identity": "named", "name": name, "role": "Clerk", "contact": "",
            "clean_metadata": "yes", "idempotency_key": os.urandom(16).hex()}


def page_text(response: Any) -> str:
    return html.unescape(response.get_data(as_text=True))


def fresh_token(page: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert found
    return found.group(1)


def kept_fields(page: str) -> list[str]:
    return re.findall(r'name="kept" value="([0-9a-f]{32}\.[0-9a-f]{64})"', page)


def case_ref_of(page: str) -> str:
    found = re.search(r'<strong class="ref">([^<]+)</strong>', page)
    assert found, page
    return found.group(1)


# -- an expired form or a lost cookie gives everything back and stores nothing -----------


def test_an_expired_report_form_comes_back_with_everything_typed(
        app: Flask, client: FlaskClient, two: list[dict[str, str]]) -> None:
    details, name = marker("DETAILS"), marker("NAME")
    token = csrf(client, "/report")
    app.config["WTF_CSRF_TIME_LIMIT"] = 1
    time.sleep(2.1)
    before = counts(app)
    response = client.post("/report", data=report_fields(details, name) | {
        "csrf_token": token, "attachment": (io.BytesIO(b"file " + details.encode()), "a.txt")},
        content_type="multipart/form-data")
    assert response.status_code == 400
    page = page_text(response)
    assert details in page and name in page and 'value="Clerk"' in page
    assert 'name="about_senior" value="yes" checked' in page
    assert 'id="named" name="identity" value="named" checked' in page
    assert "this page had been open too long" in page
    assert "Files you chose were not kept" in page  # unauthenticated: not even kept
    assert counts(app) == before
    # The fresh token works: the same words, sent again, are stored once.
    app.config["WTF_CSRF_TIME_LIMIT"] = 3600
    again = client.post("/report", data=report_fields(details, name) | {
        "csrf_token": fresh_token(page)})
    assert again.status_code == 201, page_text(again)
    assert count(app, Concern) == before["concerns"] + 1


@pytest.mark.parametrize("how", ["no_cookie", "no_token", "foreign_token"])
def test_a_lost_cookie_or_token_gives_the_report_back(
        app: Flask, client: FlaskClient, two: list[dict[str, str]], how: str) -> None:
    details, name = marker("DETAILS"), marker("NAME")
    other = app.test_client()
    token = {"no_cookie": csrf(other, "/report"), "no_token": None,
             "foreign_token": "x" + csrf(other, "/report")}[how]
    browser = app.test_client() if how == "no_cookie" else client
    if how != "no_cookie":
        csrf(browser, "/report")  # the browser has its cookie
    before = counts(app)
    data = report_fields(details, name) | ({"csrf_token": token} if token else {})
    response = browser.post("/report", data=data)
    assert response.status_code == 400
    page = page_text(response)
    assert details in page and name in page
    assert "could not confirm that this form came from its own page" in page
    assert counts(app) == before
    assert browser.post("/report", data=report_fields(details, name) | {
        "csrf_token": fresh_token(page)}).status_code == 201


def test_the_review_step_and_change_with_a_stale_token_keep_the_words(
        app: Flask, client: FlaskClient, two: list[dict[str, str]]) -> None:
    details = marker("DETAILS")
    fresh = app.test_client()
    for step in ("review", "change"):
        response = fresh.post("/report", data=report_fields(details, "Ann") | {
            "step": step, "csrf_token": "stale"})
        assert response.status_code == 400 and details in page_text(response)
    assert counts(app)["kept_uploads"] == 0


def test_a_database_failure_on_send_gives_the_words_back(
        app: Flask, client: FlaskClient, two: list[dict[str, str]],
        monkeypatch: pytest.MonkeyPatch) -> None:
    from sqlalchemy.exc import OperationalError

    from whistle.cases import intake

    def down(*_a: Any, **_k: Any) -> Any:
        raise OperationalError("INSERT", {}, Exception("database is locked"))

    monkeypatch.setattr(intake, "submit", down)
    details = marker("DETAILS")
    response = client.post("/report", data=report_fields(details, "Ann") | {
        "csrf_token": csrf(client, "/report")})
    assert response.status_code == 503
    assert details in page_text(response)
    assert count(app, Concern) == 0


# -- the status page's reply ---------------------------------------------------------


def test_an_expired_or_cookieless_reply_comes_back_with_its_words(
        app: Flask, client: FlaskClient, two: list[dict[str, str]]) -> None:
    receipt = submit_concern(client)
    body = marker("REPLY")
    before = counts(app)
    stale = csrf(client, "/status")
    app.config["WTF_CSRF_TIME_LIMIT"] = 1
    time.sleep(2.1)
    response = client.post("/status/reply", data={"csrf_token": stale,
                                                  "token": receipt["token"], "body": body})
    assert response.status_code == 400
    page = page_text(response)
    assert body in page and receipt["token"] in page
    assert "this page had been open too long" in page
    app.config["WTF_CSRF_TIME_LIMIT"] = 3600
    cookieless = app.test_client().post("/status/reply", data={
        "csrf_token": stale, "token": receipt["token"], "body": body})
    assert cookieless.status_code == 400 and body in page_text(cookieless)
    assert counts(app) == before
    # The form that came back sends it.
    sent = client.post("/status/reply", data={"csrf_token": fresh_token(page),
                                              "token": receipt["token"], "body": body})
    assert sent.status_code == 200 and "Your message was sent." in page_text(sent)
    assert count(app, Message) == before["messages"] + 1


def test_a_database_failure_on_a_reply_gives_the_words_back(
        app: Flask, client: FlaskClient, two: list[dict[str, str]],
        monkeypatch: pytest.MonkeyPatch) -> None:
    from sqlalchemy.exc import OperationalError

    from whistle.cases import reporter

    def down(*_a: Any, **_k: Any) -> Any:
        raise OperationalError("INSERT", {}, Exception("database is locked"))

    receipt = submit_concern(client)
    monkeypatch.setattr(reporter, "add_reporter_message", down)
    body = marker("REPLY")
    response = client.post("/status/reply", data={
        "csrf_token": csrf(client, "/status"), "token": receipt["token"], "body": body})
    assert response.status_code == 503
    assert body in page_text(response)
    assert count(app, Message) == 0


def test_a_reply_with_a_wrong_token_keeps_its_words(
        app: Flask, client: FlaskClient, two: list[dict[str, str]]) -> None:
    body = marker("REPLY")
    response = client.post("/status/reply", data={
        "csrf_token": csrf(client, "/status"), "token": "abandon " * 11 + "about",
        "body": body})
    assert response.status_code == 404
    assert body in page_text(response)
    assert count(app, Message) == 0


def test_a_reply_and_a_file_in_one_form_store_both(
        app: Flask, client: FlaskClient, two: list[dict[str, str]]) -> None:
    receipt = submit_concern(client)
    page = client.post("/status", data={"csrf_token": csrf(client, "/status"),
                                        "token": receipt["token"]}).get_data(as_text=True)
    assert page.count('enctype="multipart/form-data"') == 1  # one form for reply and files
    body, content = marker("REPLY"), os.urandom(70_000)
    response = client.post("/status/reply", data={
        "csrf_token": fresh_token(page), "token": receipt["token"], "body": body,
        "clean_metadata": "yes", "attachment": (io.BytesIO(content), "later.bin")},
        content_type="multipart/form-data")
    assert response.status_code == 200, page_text(response)
    assert "Your message and files were sent." in page_text(response)
    headers = login(client, two[0])
    case = client.get(f"/api/v1/cases/{receipt['case_ref']}", headers=headers).get_json()
    assert any(m["body"] == body for m in case["messages"])
    att = next(a for a in case["attachments"] if a["filename"] == "later.bin")
    got = client.get(f"/api/v1/cases/{receipt['case_ref']}/attachments/{att['id']}",
                     headers=headers)
    assert got.status_code == 200 and got.data == content
    # A refused reply (too long) stores no file either, and gives the words back.
    before = counts(app)
    long_body = marker("LONG") + "x" * 100_001
    refused = client.post("/status/reply", data={
        "csrf_token": fresh_token(page), "token": receipt["token"], "body": long_body,
        "attachment": (io.BytesIO(b"more"), "more.bin")}, content_type="multipart/form-data")
    assert refused.status_code == 400 and long_body[:26] in page_text(refused)
    assert counts(app) == before
    # /status/files still works on its own.
    files = client.post("/status/files", data={
        "csrf_token": fresh_token(page), "token": receipt["token"],
        "attachment": (io.BytesIO(b"alone"), "alone.bin")}, content_type="multipart/form-data")
    assert files.status_code == 200 and "Your files were added." in page_text(files)


# -- files survive the review step ----------------------------------------------------


def review(client: FlaskClient, details: str, files: list[tuple[bytes, str]]) -> str:
    response = client.post("/report", data=report_fields(details, "Ann") | {
        "csrf_token": csrf(client, "/report"), "step": "review",
        "attachment": [(io.BytesIO(c), n) for c, n in files]},
        content_type="multipart/form-data")
    assert response.status_code == 200, page_text(response)
    return response.get_data(as_text=True)


def test_files_chosen_before_review_arrive_with_the_concern(
        app: Flask, client: FlaskClient, two: list[dict[str, str]]) -> None:
    mark = marker("FILE")
    first = mark.encode() + os.urandom(200_000) + mark.encode()
    second = b"second " + mark.encode()
    details = marker("DETAILS")
    page = review(client, details, [(first, f"{mark}.bin"), (second, "notes.txt")])
    refs = kept_fields(page)
    assert len(refs) == 2 and f"{mark}.bin" in page and "notes.txt" in page
    assert "choose them again" not in page
    # Kept as ciphertext only: neither the bytes, the name nor the keys are in the database.
    at_rest = database_bytes(app)
    for needle in encodings(mark):
        assert needle not in at_rest
    for ref in refs:
        assert bytes.fromhex(ref.split(".")[1]) not in at_rest
    assert count(app, KeptUpload) > 2
    # "Change something", then send from the review page with one more file.
    changed = client.post("/report", data=report_fields(details, "Ann") | {
        "csrf_token": fresh_token(page), "step": "change", "kept": refs})
    assert changed.status_code == 200 and kept_fields(changed.get_data(as_text=True)) == refs
    third = os.urandom(1000)
    sent_fields = report_fields(details, "Ann") | {"kept": refs}
    sent = client.post("/report", data=sent_fields | {
        "csrf_token": fresh_token(page), "attachment": (io.BytesIO(third), "third.bin")},
        content_type="multipart/form-data")
    assert sent.status_code == 201, page_text(sent)
    assert count(app, KeptUpload) == 0  # deleted on submission
    headers = login(client, two[0])
    case_ref = case_ref_of(sent.get_data(as_text=True))
    case = client.get(f"/api/v1/cases/{case_ref}", headers=headers).get_json()
    listed = {a["filename"]: a["id"] for a in case["attachments"]}
    assert set(listed) == {f"{mark}.bin", "notes.txt", "third.bin"}
    for name, content in ((f"{mark}.bin", first), ("notes.txt", second), ("third.bin", third)):
        got = client.get(f"/api/v1/cases/{case_ref}/attachments/{listed[name]}",
                         headers=headers)
        assert got.status_code == 200 and got.data == content
    # Sent once: the same form again (same idempotency key) stores nothing more.
    again = client.post("/report", data=sent_fields | {"csrf_token": fresh_token(page)})
    assert again.status_code == 409
    assert count(app, Concern) == 1


def test_files_survive_a_refused_send(app: Flask, client: FlaskClient,
                                      two: list[dict[str, str]]) -> None:
    content = os.urandom(5000)
    response = client.post("/report", data=report_fields("", "Ann") | {
        "csrf_token": csrf(client, "/report"),
        "attachment": (io.BytesIO(content), "kept.bin")}, content_type="multipart/form-data")
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    refs = kept_fields(page)
    assert len(refs) == 1 and "kept.bin" in page
    sent = client.post("/report", data=report_fields(marker(), "Ann") | {
        "csrf_token": fresh_token(page), "kept": refs})
    assert sent.status_code == 201, page_text(sent)
    assert count(app, Attachment) == 1 and count(app, KeptUpload) == 0


@pytest.mark.parametrize("app_config", [{"MAX_ATTACHMENTS": 2}])
def test_no_more_files_are_kept_than_a_concern_may_carry(
        app: Flask, client: FlaskClient, two: list[dict[str, str]]) -> None:
    page = review(client, marker(), [(b"one", "1.txt"), (b"two", "2.txt")])
    refs = kept_fields(page)
    details = marker("DETAILS")
    response = client.post("/report", data=report_fields(details, "Ann") | {
        "csrf_token": fresh_token(page), "step": "review", "kept": refs,
        "attachment": (io.BytesIO(b"three"), "3.txt")}, content_type="multipart/form-data")
    assert response.status_code == 413
    assert details in page_text(response) and kept_fields(page_text(response)) == refs
    assert count(app, KeptUpload) == 4  # two files: meta and one chunk each


def test_kept_files_expire(app: Flask, client: FlaskClient, two: list[dict[str, str]]) -> None:
    page = review(client, marker(), [(b"soon gone", "gone.txt")])
    assert count(app, KeptUpload) == 2
    with db.new_session(app) as s:
        # Kept files carry the hour they were kept (rounded down): 4 hours on is inside the
        # 6 even when an hour boundary passed since the upload.
        assert kept.purge_expired(s, 6, utcnow() + dt.timedelta(hours=4)) == 0
    assert count(app, KeptUpload) == 2
    result = app.test_cli_runner().invoke(args=["deadlines"])
    assert result.exit_code == 0, result.output
    assert "0 expired kept file(s) removed" in result.output
    with db.new_session(app) as s:
        assert kept.purge_expired(s, 6, utcnow() + dt.timedelta(hours=7)) == 1
    assert count(app, KeptUpload) == 0
    # The form that still names the file says it is gone and keeps the words.
    details = marker("DETAILS")
    response = client.post("/report", data=report_fields(details, "Ann") | {
        "csrf_token": fresh_token(page), "kept": kept_fields(page)})
    assert response.status_code == 400
    text = page_text(response)
    assert details in text and "no longer kept" in text
    assert count(app, Concern) == 0


def test_a_kept_file_needs_its_key(app: Flask, client: FlaskClient,
                                   two: list[dict[str, str]]) -> None:
    page = review(client, marker(), [(b"secret bytes", "s.txt")])
    kept_id = kept_fields(page)[0].split(".")[0]
    wrong = f"{kept_id}.{os.urandom(32).hex()}"
    response = client.post("/report", data=report_fields(marker(), "Ann") | {
        "csrf_token": fresh_token(page), "kept": [wrong]})
    assert response.status_code == 400 and "no longer kept" in page_text(response)
    assert count(app, Concern) == 0
