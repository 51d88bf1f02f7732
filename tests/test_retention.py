"""Issue 23, item 4: retention with crypto-shredding, and legal holds placed and lifted by two.

A closed case is kept for its outcome's time, its reviewers are reminded before it ends,
and then ``flask --app app retention`` deletes every wrapped key, ciphertext, attachment
chunk, message, note and token lookup of it, leaving a content-free tombstone: afterwards
no byte of it is found at rest (database file, WAL, temporary files; plain, lower case, hex,
UTF-16 and base64 at every alignment), ``audit verify`` passes, the statistics are
unchanged, the reporter's token answers 404 and the case 410 to those who had it. A case on
hold survives; no single reviewer, and no reviewer not assigned, can place or lift a hold.
Real app, real database (SQLite, or PostgreSQL with ``WHISTLE_TEST_DB=postgres``), real SMTP.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import os
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from tests.support.factories import database_bytes, login, make_reviewer
from tests.support.webflow import (
    all_mail_bytes,
    assert_not_at_rest,
    base64_forms,
    decoded_base64,
    deliver_mail,
    marker,
    sign_in,
)
from whistle import settings_of
from whistle.cases import stats
from whistle.store import db
from whistle.store.models import (
    Attachment,
    AttachmentChunk,
    AuditEvent,
    CaseIdentity,
    CaseReceipt,
    Concern,
    IdentityShare,
    Message,
    OutboxMail,
    ReporterCopy,
    WrappedKey,
    utcnow,
)

People = dict[str, dict[str, str]]
NOT_SUBSTANTIATED_DAYS = 1096  # the default (config.DEFAULT_RETENTION_DAYS)


@pytest.fixture
def people(app: Flask) -> People:
    """Ann and Bob cover Education (both cases go to them); Dan reviews, but not these."""
    return {"ann": make_reviewer(app, "Ann Routed", units=["Education"]),
            "bob": make_reviewer(app, "Bob Routed", units=["Education"]),
            "dan": make_reviewer(app, "Dan Elsewhere", units=["Health"])}


def heads(client: FlaskClient, people: People) -> dict[str, dict[str, str]]:
    return {name: login(client, person) for name, person in people.items()}


def submit_with_file(client: FlaskClient, details: str, name: str, file_bytes: bytes,
                     filename: str) -> dict[str, Any]:
    concern = json.dumps({"category": "conduct", "details": details, "unit": "Education",
                          "identity": {"name": name}})
    response = client.post("/api/v1/concerns", content_type="multipart/form-data", data={
        "concern": concern, "attachment": (io.BytesIO(file_bytes), filename)})
    assert response.status_code == 201, response.get_data(as_text=True)
    data: dict[str, Any] = response.get_json()
    return data


def ok(response: Any, status: int = 200) -> Any:
    assert response.status_code == status, response.get_data(as_text=True)
    return response.get_json()


def close(client: FlaskClient, h: dict[str, dict[str, str]], ref: str, feedback: str) -> None:
    ok(client.post(f"/api/v1/cases/{ref}/transitions", json={"to": "acknowledged"},
                   headers=h["ann"]))
    ok(client.post(f"/api/v1/cases/{ref}/transitions", json={
        "to": "closed", "outcome": "not_substantiated", "feedback": feedback},
        headers=h["ann"]))
    ok(client.post(f"/api/v1/cases/{ref}/transitions", json={"to": "closed"},
                   headers=h["bob"]))


def retention(app: Flask, day: dt.date) -> str:
    result = app.test_cli_runner().invoke(args=["retention", "--as-of", day.isoformat()])
    assert result.exit_code == 0, result.output
    return result.output


def ciphertext_samples(app: Flask, ref: str) -> list[bytes]:
    """32-byte slices of every sealed or wrapped thing the case has, and its token lookup."""
    with db.new_session(app) as s:
        concern = s.get_one(Concern, ref)
        blobs = [concern.details_ct, concern.identity_ct or b"", concern.token_lookup]
        blobs += list(s.scalars(select(WrappedKey.blob).where(WrappedKey.concern_id == ref)))
        blobs += list(s.scalars(select(Message.body_ct).where(Message.concern_id == ref)))
        blobs += list(s.scalars(select(Attachment.meta_ct).where(Attachment.concern_id == ref)))
        blobs += list(s.scalars(select(AttachmentChunk.blob).join(Attachment).where(
            Attachment.concern_id == ref)))
        # What issues 21 to 23 added: the identity sealed apart and its shares, the signed
        # receipt the token fetches, the reporter's own copy of what they sent.
        later = [list(s.execute(select(CaseIdentity.identity_ct, CaseIdentity.recovery_ct)
                                .where(CaseIdentity.concern_id == ref)).one()),
                 list(s.scalars(select(IdentityShare.blob).where(
                     IdentityShare.concern_id == ref))),
                 list(s.scalars(select(CaseReceipt.receipt_ct).where(
                     CaseReceipt.concern_id == ref))),
                 list(s.scalars(select(ReporterCopy.body_ct).where(
                     ReporterCopy.concern_id == ref)))]
        assert all(later), [len(found) for found in later]  # each kind is there to be shredded
        blobs += [b for found in later for b in found]
    samples = [bytes(b)[-40:-8] if len(b) > 40 else bytes(b) for b in blobs if b]
    assert len(samples) >= 14
    return samples


def stored_bytes(app: Flask, tmp_path: Path) -> bytes:
    """Every stored byte: the database as ``database_bytes`` reads it (SQLite: the file, its
    WAL and shared memory; PostgreSQL: every row of every table), and every other file under
    the test's directory (temporary and spool files included), the keys apart."""
    found = [database_bytes(app)]
    for path in tmp_path.rglob("*"):
        if path.is_file() and "keys" not in path.parts and "recovery" not in path.name:
            found.append(path.read_bytes())
    return b"\n".join(found)


def assert_bytes_gone(stored: bytes, sample: bytes) -> None:
    decoded = decoded_base64(stored)
    for form in (sample, sample.hex().encode(), sample.hex().upper().encode(),
                 *base64_forms(sample)):
        assert form not in stored, form
    assert sample not in decoded


def test_retention_deletes_every_byte_of_an_expired_case_and_keeps_the_held_one(
        app: Flask, client: FlaskClient, people: People, smtp: Any, tmp_path: Path) -> None:
    h = heads(client, people)
    texts = {k: marker(k.upper()) for k in ("details", "name", "file", "filename", "reporter",
                                             "reply", "note", "feedback", "held")}
    gone = submit_with_file(client, texts["details"], texts["name"],
                            texts["file"].encode() * 40, texts["filename"] + ".txt")
    ref = gone["case_ref"]
    ok(client.post("/api/v1/status/messages", json={"token": gone["token"],
                                                    "body": texts["reporter"]}), 201)
    ok(client.post(f"/api/v1/cases/{ref}/messages", json={"body": texts["reply"]},
                   headers=h["ann"]), 201)
    ok(client.post(f"/api/v1/cases/{ref}/notes", json={"body": texts["note"]},
                   headers=h["bob"]), 201)
    close(client, h, ref, texts["feedback"])
    kept = submit_with_file(client, texts["held"], "Held Name", b"held file", "held.txt")
    close(client, h, kept["case_ref"], "Closed too.")
    hold = ok(client.post(f"/api/v1/cases/{kept['case_ref']}/hold",
                          json={"reason": "Employment tribunal claim pending"},
                          headers=h["ann"]), 202)
    assert hold["state"] == "pending" and hold["action"] == "place"
    ok(client.post(f"/api/v1/cases/{kept['case_ref']}/hold/approve", headers=h["bob"]))

    samples = ciphertext_samples(app, ref)
    assert all(s in database_bytes(app) for s in samples)  # the scan can see them now
    with db.new_session(app) as s:
        figures = stats.overview(s, settings_of(app), ["conduct"], utcnow().date())
    expires = utcnow().date() + dt.timedelta(days=NOT_SUBSTANTIATED_DAYS)

    # A month before: the reviewers are reminded, once, without a word of the case.
    out = retention(app, expires - dt.timedelta(days=10))
    assert "1 case(s) reminded, 0 case(s) deleted" in out  # the held one is not reminded
    assert "0 case(s) reminded" in retention(app, expires - dt.timedelta(days=9))  # once
    deliver_mail(app)
    mail = all_mail_bytes(smtp)
    assert b"retention period" in mail and ref.encode() not in mail
    with db.new_session(app) as s:
        reminded = s.scalars(select(OutboxMail.recipient).where(
            OutboxMail.template == "retention")).all()
    assert sorted(reminded) == sorted([people["ann"]["email"], people["bob"]["email"]])

    # A rehearsal changes nothing.
    rehearsal = app.test_cli_runner().invoke(args=["retention", "--dry-run", "--as-of",
                                                   expires.isoformat()])
    assert "1 case(s) would be deleted" in rehearsal.output, rehearsal.output
    assert client.get(f"/api/v1/cases/{ref}", headers=h["ann"]).status_code == 200

    # The day it ends: deleted; the held case stays.
    out = retention(app, expires)
    assert "1 case(s) deleted" in out and "1 expired case(s) kept on hold" in out
    url = app.config["DATABASE_URL"]
    if url.startswith("sqlite:///"):  # the log was truncated after the deletion
        wal = Path(url[len("sqlite:///"):] + "-wal")
        assert not wal.exists() or os.path.getsize(wal) == 0

    # To those who had it: 410 deleted. To anyone else: 404. The token opens nothing.
    for name in ("ann", "bob"):
        gone_view = client.get(f"/api/v1/cases/{ref}", headers=h[name])
        assert gone_view.status_code == 410 and gone_view.get_json()["error"] == "deleted"
    assert client.get(f"/api/v1/cases/{ref}", headers=h["dan"]).status_code == 404
    assert client.post("/api/v1/status", json={"token": gone["token"]}).status_code == 404
    listed = ok(client.get("/api/v1/cases", headers=h["ann"]))
    assert [c["case_ref"] for c in listed["cases"]] == [kept["case_ref"]]

    # The trail and the statistics are whole; the tombstone says what happened, no more.
    verify = app.test_cli_runner().invoke(args=["audit", "verify"])
    assert verify.exit_code == 0, verify.output
    recount = app.test_cli_runner().invoke(args=["inbox", "recount", "--check"])
    assert recount.exit_code == 0, recount.output
    with db.new_session(app) as s:
        assert stats.overview(s, settings_of(app), ["conduct"], utcnow().date()) == figures
        tomb = s.get_one(Concern, ref)
        assert (tomb.status, tomb.category, tomb.outcome) == ("closed", "conduct",
                                                              "not_substantiated")
        assert tomb.details_ct == b"" and tomb.identity_ct is None and tomb.unit is None
        last = s.scalars(select(AuditEvent.type).where(AuditEvent.concern_id == ref)
                         .order_by(AuditEvent.seq.desc())).first()
        assert last == "retention_ended"
        for table in (WrappedKey, Message, Attachment, CaseIdentity, IdentityShare,
                      CaseReceipt, ReporterCopy):
            assert not s.scalars(select(table).where(table.concern_id == ref)).all(), table

    # No byte of it at rest, in any encoding; the WAL was truncated (SQLite).
    stored = stored_bytes(app, tmp_path)
    for text in texts.values():
        if text != texts["held"]:
            assert_not_at_rest(stored, text)
    for sample in samples:
        assert_bytes_gone(stored, sample)

    # The reporter's receipt still proves what they sent, and when: it needs no database.
    checked = client.post("/api/v1/receipts/verify", json={
        "receipt": gone["receipt"], "details": texts["details"]}).get_json()
    assert checked == {"valid": True, "case_ref": ref, "received": gone["receipt"].split(
        "Received: ")[1].split("\n")[0], "content_matches": True}

    # The held case is whole.
    held = ok(client.get(f"/api/v1/cases/{kept['case_ref']}", headers=h["ann"]))
    assert held["details"] == texts["held"]
    assert ok(client.get(f"/api/v1/cases/{kept['case_ref']}/hold", headers=h["bob"]))[
        "on_hold"] is True


def test_a_hold_is_lifted_by_two_and_the_case_then_goes(
        app: Flask, client: FlaskClient, people: People) -> None:
    h = heads(client, people)
    receipt = submit_with_file(client, "Kept for a while.", "N", b"x", "x.txt")
    ref = receipt["case_ref"]
    close(client, h, ref, "Done.")
    ok(client.post(f"/api/v1/cases/{ref}/hold", json={"reason": "Proceedings"},
                   headers=h["bob"]), 202)
    ok(client.post(f"/api/v1/cases/{ref}/hold/approve", headers=h["ann"]))
    expires = utcnow().date() + dt.timedelta(days=NOT_SUBSTANTIATED_DAYS)
    assert "1 expired case(s) kept on hold" in retention(app, expires)

    lifting = ok(client.delete(f"/api/v1/cases/{ref}/hold", headers=h["ann"]), 202)
    assert lifting["action"] == "lift"
    refused = client.post(f"/api/v1/cases/{ref}/hold/approve", headers=h["ann"])
    assert refused.status_code == 409
    assert refused.get_json()["error"] == "second_person_required"
    assert client.post(f"/api/v1/cases/{ref}/hold/approve",
                       headers=h["dan"]).status_code == 404
    assert "1 expired case(s) kept on hold" in retention(app, expires)  # still held
    lifted = ok(client.post(f"/api/v1/cases/{ref}/hold/approve", headers=h["bob"]))
    assert lifted["on_hold"] is False
    assert "1 case(s) deleted" in retention(app, expires)
    assert client.get(f"/api/v1/cases/{ref}", headers=h["bob"]).status_code == 410
    assert sign_in(app, people["ann"]).get(f"/reviewer/cases/{ref}").status_code == 410
    assert client.post(f"/api/v1/cases/{ref}/hold", json={"reason": "late"},
                       headers=h["bob"]).status_code == 410
    verify = app.test_cli_runner().invoke(args=["audit", "verify"])
    assert verify.exit_code == 0, verify.output


def test_no_single_reviewer_and_no_outsider_places_or_lifts_a_hold(
        app: Flask, client: FlaskClient, people: People) -> None:
    h = heads(client, people)
    ref = submit_with_file(client, "Hold me.", "N", b"x", "x.txt")["case_ref"]
    base = f"/api/v1/cases/{ref}/hold"

    # Someone not assigned: the case does not exist for them.
    assert client.post(base, json={"reason": "mine"}, headers=h["dan"]).status_code == 404
    assert client.get(base, headers=h["dan"]).status_code == 404
    # Bad input changes nothing.
    for body in ({}, {"reason": ""}, {"reason": 5}, {"reason": "x" * 200_000}):
        assert client.post(base, json=body, headers=h["ann"]).status_code in (400, 413), body
    assert client.post(base, data="not json", headers=h["ann"]).status_code in (400, 415)
    assert client.delete(base, headers=h["ann"]).status_code == 409  # not on hold
    assert client.post(base + "/approve", headers=h["bob"]).status_code == 404  # nothing

    ok(client.post(base, json={"reason": "Police inquiry"}, headers=h["ann"]), 202)
    again = client.post(base, json={"reason": "again"}, headers=h["bob"])
    assert again.status_code == 409 and again.get_json()["error"] == "already_proposed"
    alone = client.post(base + "/approve", headers=h["ann"])
    assert alone.status_code == 409 and alone.get_json()["error"] == "second_person_required"
    assert client.post(base + "/approve", headers=h["dan"]).status_code == 404
    state = ok(client.get(base, headers=h["ann"]))
    assert state["on_hold"] is False and state["pending"]["action"] == "place"

    # The proposer may withdraw; then a proposal approved by the other reviewer holds.
    ok(client.post(base + "/reject", headers=h["ann"]))
    ok(client.post(base, json={"reason": "Police inquiry"}, headers=h["ann"]), 202)
    placed = ok(client.post(base + "/approve", headers=h["bob"]))
    assert placed["on_hold"] is True and placed["proposed_by"] == people["ann"]["id"]
    assert client.post(base, json={"reason": "twice"}, headers=h["bob"]).status_code == 409

    # Lifting: alone, refused; by an outsider, not found; the hold stays.
    ok(client.delete(base, headers=h["bob"]), 202)
    assert client.post(base + "/approve", headers=h["bob"]).status_code == 409
    assert client.post(base + "/approve", headers=h["dan"]).status_code == 404
    assert ok(client.get(base, headers=h["ann"]))["on_hold"] is True

    # Both names and the reason (sealed, as a note) are in the case.
    view = ok(client.get(f"/api/v1/cases/{ref}", headers=h["ann"]))
    types = [e["type"] for e in view["events"]]
    assert types.count("hold_proposed") == 2 and "hold_placed" in types
    assert "hold_rejected" in types and "hold_lift_proposed" in types
    assert "Police inquiry" in [n["body"] for n in view["notes"]]
    assert b"Police inquiry" not in database_bytes(app)


def test_retention_never_deletes_an_open_case_nor_runs_in_the_past(
        app: Flask, client: FlaskClient, people: People) -> None:
    h = heads(client, people)
    open_ref = submit_with_file(client, "Still open.", "N", b"x", "x.txt")["case_ref"]
    reopened = submit_with_file(client, "Reopened.", "N", b"x", "x.txt")["case_ref"]
    close(client, h, reopened, "Done.")
    ok(client.post(f"/api/v1/cases/{reopened}/transitions",
                   json={"to": "investigating", "note": "New evidence"}, headers=h["bob"]))
    far = utcnow().date() + dt.timedelta(days=100 * 366)
    assert "0 case(s) deleted" in retention(app, far)
    for ref in (open_ref, reopened):
        assert client.get(f"/api/v1/cases/{ref}", headers=h["ann"]).status_code == 200

    # A row edited to "closed" behind Whistle's back is not enough: its trail says open.
    with db.new_session(app) as s:
        concern = s.get_one(Concern, open_ref)
        concern.status, concern.closed_on, concern.outcome = "closed", utcnow().date(), None
        s.commit()
    assert "0 case(s) deleted" in retention(app, far)

    runner = app.test_cli_runner()
    yesterday = (utcnow().date() - dt.timedelta(days=1)).isoformat()
    for bad in (yesterday, "next tuesday"):
        result = runner.invoke(args=["retention", "--as-of", bad])
        assert result.exit_code != 0 and "deleted" not in result.output


def test_retention_is_configured_per_outcome_and_per_category(app: Flask) -> None:
    from whistle.cases import retention as policy
    from whistle.config import DEFAULT_CATEGORY_CLOCKS, build

    settings = build({"RETENTION_DAYS": '{"withdrawn": 30}'})
    cats = [{"id": "lado", "label": "L"} | DEFAULT_CATEGORY_CLOCKS["lado"],
            {"id": "conduct", "label": "C"}]
    assert policy.retention_days(settings, cats, "conduct", "withdrawn") == 30
    assert policy.retention_days(settings, cats, "conduct", "substantiated") == 2192
    assert policy.retention_days(settings, cats, "lado", "not_substantiated") >= 75 * 365
    assert policy.retention_days(settings, cats, "conduct", None) == 2192  # the longest
    for bad in ('{"withdrawn": 0}', "[1]", '{"withdrawn": "x"}', "nonsense"):
        with pytest.raises(Exception, match="RETENTION_DAYS"):
            build({"RETENTION_DAYS": bad})
