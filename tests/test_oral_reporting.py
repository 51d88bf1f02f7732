"""Oral and assisted reporting (issue 24): an intake operator files a concern taken by phone, in
a meeting or from a letter; the reporter takes it over with a token they must replace first,
and checks, corrects and agrees the record. Run on SQLite and on PostgreSQL.

The insider moves are performed here and shown to fail: the operator opening the case
afterwards (404), following it with the words they issued (403 ``token_change_required`` on
every reporter route, then 404 once replaced), a reviewer or an anonymous caller using the
operator endpoint, an operator being routed a concern, one administrator alone making an
operator once the roster is sealed.
"""

from __future__ import annotations

import io
import json
import secrets
import struct
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from tests.support.factories import (
    PASSWORD,
    database_bytes,
    login,
    make_operator,
    make_reviewer,
    submit_concern,
)
from tests.support.webflow import (
    assert_not_at_rest,
    csrf,
    deliver_mail,
    enrol_code,
    marker,
    post_form,
    sign_in,
)
from whistle import settings_of
from whistle.store import db
from whistle.store.models import Assignment, Concern, OralReport, Reviewer


@pytest.fixture
def team(app: Flask) -> dict[str, dict[str, str]]:
    return {"a": make_reviewer(app, "Ann Reviewer"), "b": make_reviewer(app, "Bob Reviewer"),
            "op": make_operator(app, "Olga Operator")}


def file_by_phone(client: FlaskClient, operator: dict[str, str], **fields: Any
                  ) -> dict[str, Any]:
    body = {"category": "conduct", "details": "The caller said: something happened.",
            "channel": "phone"} | fields
    response = client.post("/api/v1/operator/concerns", json=body, headers=login(client, operator))
    assert response.status_code == 201, response.get_data(as_text=True)
    data: dict[str, Any] = response.get_json()
    return data


def replaced(client: FlaskClient, token: str) -> str:
    response = client.post("/api/v1/status/token", json={"token": token})
    assert response.status_code == 200, response.get_data(as_text=True)
    new: str = response.get_json()["token"]
    return new


def wav_bytes() -> bytes:
    data = b"\x00\x00" * 800
    return (b"RIFF" + struct.pack("<I", 36 + len(data)) + b"WAVEfmt " +
            struct.pack("<IHHIIHH", 16, 1, 1, 8000, 16000, 2, 16) + b"data" +
            struct.pack("<I", len(data)) + data)


# -- filing ------------------------------------------------------------------------------------


def test_an_operator_files_a_phone_concern_that_reaches_two_reviewers_and_never_the_operator(
        app: Flask, client: FlaskClient, smtp: Any, team: dict[str, dict[str, str]]) -> None:
    filed = file_by_phone(client, team["op"])
    assert set(filed) >= {"case_ref", "token", "status", "reviewer_count", "acknowledge_by"}
    assert filed["status"] == "received" and filed["reviewer_count"] == 2
    assert len(filed["token"].split()) == 12
    op = login(client, team["op"])
    # The operator cannot open it afterwards, like any account it is not assigned to.
    assert client.get(f"/api/v1/cases/{filed['case_ref']}", headers=op).status_code == 404
    inbox = client.get("/api/v1/cases", headers=op).get_json()
    assert inbox["cases"] == [] and inbox["total"] == 0
    for who in ("a", "b"):
        case = client.get(f"/api/v1/cases/{filed['case_ref']}",
                          headers=login(client, team[who])).get_json()
        assert case["details"] == "The caller said: something happened."
        assert case["channel"] == "phone"
        assert case["transcript"]["agreed"] is False and case["transcript"]["corrections"] == []
        filed_events = [e for e in case["events"] if e["type"] == "filed_by_operator"]
        assert len(filed_events) == 1 and filed_events[0]["data"]["channel"] == "phone"
        # Which operator filed it is recorded nowhere in the trail.
        assert team["op"]["id"] not in json.dumps(case["events"])
        assert team["op"]["name"] not in json.dumps(case)
    deliver_mail(app)
    assert not [m for m in smtp.messages if team["op"]["email"] in m["To"]]
    with db.new_session(app) as s:
        assert s.scalar(select(func.count()).select_from(Assignment).where(
            Assignment.reviewer_id == team["op"]["id"])) == 0


def test_the_operator_is_never_on_the_roster_or_offered_for_exclusion(
        client: FlaskClient, team: dict[str, dict[str, str]]) -> None:
    roster = client.get("/api/v1/roster").get_json()
    assert team["op"]["id"] not in {r["id"] for r in roster["reviewers"]}
    intake = client.get("/api/v1/intake").get_json()
    assert team["op"]["id"] not in {r["id"] for r in intake["reviewers"]}


def test_an_operator_is_never_routed_a_concern_even_when_reviewers_are_short(
        app: Flask, client: FlaskClient) -> None:
    lone = make_reviewer(app, "Lone Reviewer")
    operator = make_operator(app)
    for _ in range(3):
        receipt = submit_concern(client)
        assert receipt["reviewer_count"] == 1  # under-routed rather than routed to the operator
    filed = file_by_phone(client, operator)
    assert filed["reviewer_count"] == 1
    with db.new_session(app) as s:
        assert s.scalar(select(func.count()).select_from(Assignment).where(
            Assignment.reviewer_id == operator["id"])) == 0
        assert s.scalar(select(func.count()).select_from(Assignment).where(
            Assignment.reviewer_id == lone["id"])) == 4


def test_a_reviewer_an_administrator_or_no_account_cannot_use_the_operator_endpoint(
        app: Flask, client: FlaskClient, team: dict[str, dict[str, str]]) -> None:
    admin = make_reviewer(app, "Ada Admin", admin=True, reviews=False)
    body = {"category": "conduct", "details": "Pretending to be an operator.",
            "channel": "phone"}
    assert client.post("/api/v1/operator/concerns", json=body).status_code == 401
    for who in (team["a"], admin):
        response = client.post("/api/v1/operator/concerns", json=body, headers=login(client, who))
        assert response.status_code == 403, response.get_data(as_text=True)
        assert response.get_json()["error"] == "forbidden"
    with db.new_session(app) as s:
        assert s.scalar(select(func.count()).select_from(Concern)) == 0
    # The operator's pages likewise.
    browser = sign_in(app, team["a"])
    assert browser.get("/operator").status_code == 403


@pytest.mark.parametrize("change", [
    {"channel": "email"}, {"channel": None}, {"channel": 1}, {"recording_consent": "yes"},
    {"escrow": True}, {"details": ""}, {"surprise": 1},
])
def test_a_bad_filing_is_refused_and_stores_nothing(
        app: Flask, client: FlaskClient, team: dict[str, dict[str, str]],
        change: dict[str, Any]) -> None:
    body = {"category": "conduct", "details": "Text.", "channel": "phone"} | change
    if change == {"channel": None}:
        del body["channel"]
    response = client.post("/api/v1/operator/concerns", json=body,
                           headers=login(client, team["op"]))
    assert response.status_code == 400, response.get_data(as_text=True)
    with db.new_session(app) as s:
        assert s.scalar(select(func.count()).select_from(Concern)) == 0


def _multipart(body: dict[str, Any], name: str, content: bytes, mimetype: str
               ) -> dict[str, Any]:
    return {"concern": json.dumps(body), "attachment": (io.BytesIO(content), name, mimetype)}


def test_a_recording_is_attached_only_with_the_reporters_consent(
        app: Flask, client: FlaskClient, team: dict[str, dict[str, str]]) -> None:
    op = login(client, team["op"])
    body = {"category": "conduct", "details": "Voicemail left overnight.",
            "channel": "voicemail"}
    for name, mimetype in (("message.wav", "audio/wav"), ("message.bin",
                                                          "application/octet-stream")):
        refused = client.post("/api/v1/operator/concerns", headers=op,
                              data=_multipart(body, name, wav_bytes(), mimetype),
                              content_type="multipart/form-data")
        assert refused.status_code == 400, refused.get_data(as_text=True)
        assert refused.get_json()["error"] == "recording_consent_required"
    with db.new_session(app) as s:
        assert s.scalar(select(func.count()).select_from(Concern)) == 0
    accepted = client.post("/api/v1/operator/concerns", headers=op,
                           data=_multipart(body | {"recording_consent": True}, "message.wav",
                                           wav_bytes(), "audio/wav"),
                           content_type="multipart/form-data")
    assert accepted.status_code == 201, accepted.get_data(as_text=True)
    case = client.get(f"/api/v1/cases/{accepted.get_json()['case_ref']}",
                      headers=login(client, team["a"])).get_json()
    assert case["channel"] == "voicemail" and case["recording_consent"] is True
    assert [a["filename"] for a in case["attachments"]] == ["message.wav"]
    # A document needs no consent.
    letter = client.post("/api/v1/operator/concerns", headers=op,
                         data=_multipart(body | {"channel": "letter"}, "letter.txt",
                                         b"Dear sir", "text/plain"),
                         content_type="multipart/form-data")
    assert letter.status_code == 201, letter.get_data(as_text=True)


# -- the reporter takes over -------------------------------------------------------------------


def test_the_operators_token_answers_token_change_required_everywhere_until_replaced(
        app: Flask, client: FlaskClient, team: dict[str, dict[str, str]]) -> None:
    token = file_by_phone(client, team["op"])["token"]
    calls = [
        ("/api/v1/status", {"token": token}),
        ("/api/v1/status/messages", {"token": token, "body": "Following the case."}),
        ("/api/v1/status/transcript", {"token": token, "agree": True}),
    ]
    for path, body in calls:
        response = client.post(path, json=body)
        assert response.status_code == 403, (path, response.get_data(as_text=True))
        assert response.get_json()["error"] == "token_change_required"
    files = client.post("/api/v1/status/attachments", data={
        "token": token, "attachment": (io.BytesIO(b"notes"), "notes.txt", "text/plain")},
        content_type="multipart/form-data")
    assert files.status_code in (403, 409), files.get_data(as_text=True)  # 409: files turned off
    if files.status_code == 403:
        assert files.get_json()["error"] == "token_change_required"
    # The web status page says why, in plain words, and offers the replacement.
    page = post_form(client, "/status", {"token": token}, "/status")
    assert page.status_code == 403
    html = page.get_data(as_text=True)
    assert "Replace your 12 words first" in html and 'action="/status/token"' in html
    pages = sorted(r.rule for r in app.url_map.iter_rules()
                   if r.rule.startswith("/status/") and "POST" in (r.methods or ())
                   and r.rule not in ("/status/token", "/status/release", "/status/withdraw"))
    for rule in pages:  # every web action of the status page (held concerns aside)
        refused = post_form(client, rule, {"token": token, "body": "Hello", "agree": "yes",
                                           "answer": "yes"}, "/status")
        assert refused.status_code == 403, (rule, refused.get_data(as_text=True)[:300])
        assert "Replace your 12 words first" in refused.get_data(as_text=True), rule
    # Nothing was stored by any of these.
    with db.new_session(app) as s:
        assert s.scalar(select(func.count()).select_from(OralReport).where(
            OralReport.token_pending.is_(True))) == 1
    new = replaced(client, token)
    # The operator's words are dead now: 404 on every route, as for any unknown token.
    for path, body in calls + [("/api/v1/status/token", {"token": token})]:
        assert client.post(path, json=body).status_code == 404, path
    status = client.post("/api/v1/status", json={"token": new})
    assert status.status_code == 200, status.get_data(as_text=True)
    data = status.get_json()
    assert data["transcript"]["agreed"] is False and data["transcript"]["corrections"] == 0
    assert data["transcript"]["text"] == "The caller said: something happened."
    assert "token_replaced" in [e["type"] for e in data["events"]]


def test_the_replacement_on_the_web_page_gives_new_words_and_the_status_page_shows_the_record(
        app: Flask, client: FlaskClient, team: dict[str, dict[str, str]]) -> None:
    token = file_by_phone(client, team["op"], details="We met at the depot.",
                          channel="meeting")["token"]
    swapped = post_form(client, "/status/token", {"token": token}, "/status")
    assert swapped.status_code == 200, swapped.get_data(as_text=True)
    words = [w for w in swapped.get_data(as_text=True).split('data-token>')[1]
             .split("<")[0].split()]
    assert len(words) == 12
    new = " ".join(words)
    page = post_form(client, "/status", {"token": new}, "/status")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "We met at the depot." in html and 'id="transcript"' in html
    agreed = post_form(client, "/status/transcript", {"token": new, "agree": "yes"}, "/status")
    assert agreed.status_code == 200, agreed.get_data(as_text=True)
    assert client.post("/api/v1/status", json={"token": new}).get_json()["transcript"][
        "agreed"] is True
    assert post_form(client, "/status", {"token": token}, "/status").status_code == 404


def test_the_reporter_agrees_the_transcript_and_the_reviewers_see_it_agreed(
        client: FlaskClient, team: dict[str, dict[str, str]]) -> None:
    filed = file_by_phone(client, team["op"])
    new = replaced(client, filed["token"])
    response = client.post("/api/v1/status/transcript", json={"token": new, "agree": True})
    assert response.status_code == 201, response.get_data(as_text=True)
    assert client.post("/api/v1/status", json={"token": new}).get_json()["transcript"] == {
        **client.post("/api/v1/status", json={"token": new}).get_json()["transcript"],
        "agreed": True, "corrections": 0}
    case = client.get(f"/api/v1/cases/{filed['case_ref']}",
                      headers=login(client, team["b"])).get_json()
    assert case["transcript"]["agreed"] is True
    assert case["transcript"]["agreed_on"] == case["created"]
    assert "transcript_agreed" in [e["type"] for e in case["events"]]
    # The deadline clocks run from the filing, as for any concern.
    assert case["acknowledge_by"] == filed["acknowledge_by"]


def test_a_correction_is_sealed_and_shown_to_the_reviewers(
        app: Flask, client: FlaskClient, team: dict[str, dict[str, str]]) -> None:
    said, corrected = marker("SAID"), marker("CORRECTED")
    filed = file_by_phone(client, team["op"], details=f"Transcript: {said}")
    new = replaced(client, filed["token"])
    response = client.post("/api/v1/status/transcript",
                           json={"token": new, "agree": False, "corrections": corrected})
    assert response.status_code == 201, response.get_data(as_text=True)
    status = client.post("/api/v1/status", json={"token": new}).get_json()
    assert status["transcript"]["corrections"] == 1 and status["transcript"]["agreed"] is False
    case = client.get(f"/api/v1/cases/{filed['case_ref']}",
                      headers=login(client, team["a"])).get_json()
    [correction] = case["transcript"]["corrections"]
    assert correction["body"] == corrected and correction["at"] == case["created"]
    assert case["transcript"]["agreed"] is False
    stored = database_bytes(app)
    assert_not_at_rest(stored, said)  # the transcript marker never appears at rest
    assert_not_at_rest(stored, corrected)
    # Agreeing the record as corrected afterwards.
    assert client.post("/api/v1/status/transcript",
                       json={"token": new, "agree": True}).status_code == 201
    case = client.get(f"/api/v1/cases/{filed['case_ref']}",
                      headers=login(client, team["a"])).get_json()
    assert case["transcript"]["agreed"] is True and len(case["transcript"]["corrections"]) == 1
    # The reviewer's page shows the channel, the agreement and each correction.
    page = sign_in(app, team["a"]).get(f"/reviewer/cases/{filed['case_ref']}")
    assert page.status_code == 200, page.get_data(as_text=True)
    html = page.get_data(as_text=True)
    assert "Taken by an intake operator" in html and corrected in html
    # The trail with its new events still verifies.
    verified = app.test_cli_runner().invoke(args=["audit", "verify"])
    assert verified.exit_code == 0, verified.output


@pytest.mark.parametrize("body", [
    {"agree": "yes"}, {}, {"agree": True, "corrections": 5}, {"agree": True, "corrections": []},
    {"agree": False, "corrections": "TOO_LONG"}, {"agree": True, "corrections": ["ok", 3]},
    {"agree": False, "corrections": "bad\u202eturn"},
])
def test_a_bad_transcript_answer_is_refused(
        app: Flask, client: FlaskClient, team: dict[str, dict[str, str]],
        body: dict[str, Any]) -> None:
    if body.get("corrections") == "TOO_LONG":
        body = body | {"corrections": "x" * (settings_of(app).max_details_chars + 1)}
    new = replaced(client, file_by_phone(client, team["op"])["token"])
    response = client.post("/api/v1/status/transcript", json={"token": new} | body)
    assert response.status_code == 400, response.get_data(as_text=True)
    assert client.post("/api/v1/status", json={"token": new}).get_json()["transcript"][
        "corrections"] == 0


def test_a_concern_sent_online_has_no_transcript_and_no_token_gate(
        client: FlaskClient, team: dict[str, dict[str, str]]) -> None:
    receipt = submit_concern(client)
    status = client.post("/api/v1/status", json={"token": receipt["token"]})
    assert status.status_code == 200 and "transcript" not in status.get_json()
    assert client.post("/api/v1/status/transcript",
                       json={"token": receipt["token"], "agree": True}).status_code == 404
    case = client.get(f"/api/v1/cases/{receipt['case_ref']}",
                      headers=login(client, team["a"])).get_json()
    assert case["channel"] == "web" and case["transcript"] is None


# -- the operator's pages ----------------------------------------------------------------------


def test_the_operator_files_on_the_web_form_and_prints_a_page_with_only_the_words(
        app: Flask, team: dict[str, dict[str, str]]) -> None:
    browser = app.test_client()
    signed = post_form(browser, "/reviewer/login", {"email": team["op"]["email"],
                                                    "password": PASSWORD}, "/reviewer/login")
    assert signed.status_code == 302 and signed.headers["Location"].endswith("/operator")
    page = browser.get("/operator")
    assert page.status_code == 200 and "<script" not in page.get_data(as_text=True)
    filed = post_form(browser, "/operator/concerns", {
        "channel": "letter", "category": "conduct", "details": "The letter says: it happened.",
        "identity": "anonymous", "idempotency_key": secrets.token_hex(16)}, "/operator")
    assert filed.status_code == 201, filed.get_data(as_text=True)
    html = filed.get_data(as_text=True)
    token = html.split('name="token" value="')[1].split('"')[0]
    assert len(token.split()) == 12
    printed = post_form(browser, "/operator/words", {"token": token}, "/operator")
    assert printed.status_code == 200
    body = printed.get_data(as_text=True)
    assert all(w in body for w in token.split())
    assert "WH-" not in body and "<nav" not in body and "<form" not in body
    # The operator's words work for nothing but their replacement.
    assert app.test_client().post("/api/v1/status", json={"token": token}).status_code == 403
    with db.new_session(app) as s:
        oral = s.scalars(select(OralReport)).one()
        assert oral.channel == "letter" and oral.token_pending is True
    # A recording without consent on the form: refused, said on the form, nothing stored.
    refused = browser.post("/operator/concerns", data={
        "csrf_token": csrf(browser, "/operator"), "channel": "phone", "category": "conduct",
        "details": "Recorded call.", "identity": "anonymous",
        "attachment": (io.BytesIO(wav_bytes()), "call.wav", "audio/wav")},
        content_type="multipart/form-data")
    assert refused.status_code == 400
    with db.new_session(app) as s:
        assert s.scalar(select(func.count()).select_from(Concern)) == 1


# -- making operators --------------------------------------------------------------------------


def test_an_administrator_alone_cannot_make_an_operator_once_the_roster_is_sealed(
        app: Flask, client: FlaskClient, smtp: Any) -> None:
    admin = make_reviewer(app, "Ada Admin", admin=True)
    other = make_reviewer(app, "Otto Admin", admin=True)
    existing = make_operator(app)
    submit_concern(client)  # seals the roster
    proposed = client.post("/api/v1/admin/reviewers", headers=login(client, admin), json={
        "name": "New Operator", "email": "newop@example.org", "operator": True})
    assert proposed.status_code == 202, proposed.get_data(as_text=True)
    change_id = proposed.get_json()["change_id"]
    own = client.post(f"/api/v1/admin/changes/{change_id}/approve",
                      headers=login(client, admin))
    assert own.status_code == 409 and own.get_json()["error"] == "second_person_required"
    # An operator is never the second person either.
    by_operator = client.post(f"/api/v1/admin/changes/{change_id}/approve",
                              headers=login(client, existing))
    assert by_operator.status_code == 403, by_operator.get_data(as_text=True)
    with db.new_session(app) as s:
        pending = s.get(Reviewer, proposed.get_json()["id"])
        assert pending is not None and pending.state == "pending" and pending.is_operator
        assert not pending.is_reviewer
    assert client.post("/api/v1/auth/login", json={"email": "newop@example.org",
                                                   "password": PASSWORD}).status_code == 401
    approved = client.post(f"/api/v1/admin/changes/{change_id}/approve",
                           headers=login(client, other))
    assert approved.status_code == 200, approved.get_data(as_text=True)
    code = enrol_code(smtp, app, "newop@example.org")
    assert client.post("/api/v1/auth/enrol", json={"code": code, "password": PASSWORD}
                       ).status_code == 200
    operator = {"email": "newop@example.org", "password": PASSWORD}
    assert file_by_phone(client, operator)["reviewer_count"] >= 1


def test_an_operator_has_no_other_role(app: Flask, client: FlaskClient) -> None:
    admin = make_reviewer(app, "Ada Admin", admin=True)
    refused = client.post("/api/v1/admin/reviewers", headers=login(client, admin), json={
        "name": "Both", "email": "both@example.org", "operator": True, "admin": True})
    assert refused.status_code == 400, refused.get_data(as_text=True)
    assert "operator" in refused.get_json()["message"]
    with db.new_session(app) as s:
        assert s.scalar(select(func.count()).select_from(Reviewer).where(
            Reviewer.email == "both@example.org")) == 0


def test_the_command_line_enrols_an_operator_while_setting_up_and_proposes_one_after(
        app: Flask, client: FlaskClient) -> None:
    make_reviewer(app)
    runner = app.test_cli_runner()
    made = runner.invoke(args=["reviewer", "add", "--name", "Phone Line", "--email",
                               "phone@example.org", "--operator", "--password-stdin"],
                         input=PASSWORD + "\n")
    assert made.exit_code == 0, made.output
    with db.new_session(app) as s:
        r = s.get(Reviewer, made.output.strip().splitlines()[-1])
        assert r is not None and r.is_operator and not r.is_reviewer and r.state == "active"
    both = runner.invoke(args=["reviewer", "add", "--name", "X", "--email", "x@example.org",
                               "--operator", "--admin", "--password-stdin"],
                         input=PASSWORD + "\n")
    assert both.exit_code != 0
    listed = runner.invoke(args=["reviewer", "list"])
    assert "roles=operator" in listed.output
    submit_concern(client)  # seals the roster
    later = runner.invoke(args=["reviewer", "add", "--name", "Meeting Room", "--email",
                                "meet@example.org", "--operator"])
    assert later.exit_code == 0, later.output
    with db.new_session(app) as s:
        r = s.get(Reviewer, later.output.strip().splitlines()[-1])
        assert r is not None and r.state == "pending" and r.is_operator


def test_every_reporter_route_refuses_the_operators_token_until_replaced(
        app: Flask, client: FlaskClient, team: dict[str, dict[str, str]]) -> None:
    """Every POST route under /api/v1/status (whatever other issues add), but the
    replacement itself, answers 403 token_change_required to the operator's words."""
    token = file_by_phone(client, team["op"])["token"]
    routes = sorted(r.rule for r in app.url_map.iter_rules()
                    if r.rule.startswith("/api/v1/status") and "POST" in (r.methods or ())
                    and r.rule not in ("/api/v1/status/token", "/api/v1/status/attachments"))
    assert "/api/v1/status/transcript" in routes and "/api/v1/status" in routes
    for rule in routes:
        response = client.post(rule, json={"token": token, "body": "x", "agree": True,
                                           "answer": "yes", "identity": {"name": "N"}})
        assert response.status_code == 403, (rule, response.get_data(as_text=True))
        assert response.get_json()["error"] == "token_change_required", rule
    new = replaced(client, token)
    assert client.post("/api/v1/status", json={"token": new}).status_code == 200


def test_a_grant_cannot_make_an_operator_a_reviewer(app: Flask, client: FlaskClient) -> None:
    from whistle.people import approvals

    admin = make_reviewer(app, "Ada Admin", admin=True)
    other = make_reviewer(app, "Otto Admin", admin=True)
    operator = make_operator(app)
    submit_concern(client)  # seals the roster
    with db.new_session(app) as s:
        change = approvals.propose_for(s, approvals.GRANT, operator["id"], {"reviews": True},
                                       admin["id"])
        change_id = change.id
    refused = client.post(f"/api/v1/admin/changes/{change_id}/approve",
                          headers=login(client, other))
    assert refused.status_code == 409, refused.get_data(as_text=True)
    assert refused.get_json()["error"] == "operator_roles"
    with db.new_session(app) as s:
        r = s.get(Reviewer, operator["id"])
        assert r is not None and r.is_operator and not r.is_reviewer


def test_an_operators_filing_is_never_held_links_by_whom_it_names_and_seals_the_roster(
        app: Flask, client: FlaskClient, team: dict[str, dict[str, str]]) -> None:
    from sqlalchemy import select

    from whistle.store.models import AdminEvent

    about = {"email": "pat.smith@example.org"}
    refused = client.post("/api/v1/operator/concerns", headers=login(client, team["op"]),
                          json={"category": "conduct", "details": "Minutes.", "channel": "phone",
                                "about": about, "escrow": True})
    assert refused.status_code == 400 and refused.get_json()["field"] == "escrow"
    first = file_by_phone(client, team["op"], about=about)  # the instance's first concern
    with db.new_session(app) as s:
        assert list(s.scalars(select(AdminEvent.type))).count("roster_sealed") == 1
    second = submit_concern(client, details="Also about Pat.",
                            about={"email": "PAT.smith@example.org"})
    reader = team["a"]
    seen = client.get(f"/api/v1/cases/{first['case_ref']}", headers=login(client, reader))
    assert seen.status_code == 200, seen.get_data(as_text=True)
    assert seen.get_json()["matched"] is True
    assert second["case_ref"] in seen.get_json()["linked"]
