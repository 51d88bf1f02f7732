"""Erasure of manifestly irrelevant personal data (issue 23, item 5; GDPR Art. 17).

Two assigned reviewers erase one attachment, message or note: one proposes, a different
one approves. The item is replaced by a notice with both names and the day, and its bytes
are gone from the database. One reviewer alone, or anyone not assigned, cannot. Real
SQLite or PostgreSQL, real crypto.
"""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select, text

from tests.support.factories import database_bytes, login, make_reviewer
from tests.support.lifecycle import submit_with_file
from tests.support.webflow import marker, reporter_status
from whistle.cases import referrals
from whistle.errors import InvalidInput
from whistle.store import db
from whistle.store.models import AttachmentChunk, Message


@pytest.fixture
def case(app: Flask, client: FlaskClient) -> dict[str, Any]:
    ann, bob = make_reviewer(app, "Ann Reviewer"), make_reviewer(app, "Bob Reviewer")
    words = {k: marker(k.upper()) for k in ("file", "msg", "note")}
    receipt = submit_with_file(client, "Details", b"Irrelevant " + words["file"].encode())
    carol = make_reviewer(app, "Carol Unassigned")
    heads = {"ann": login(client, ann), "bob": login(client, bob),
             "carol": login(client, carol)}
    ref = receipt["case_ref"]
    assert client.post("/api/v1/status/messages", json={
        "token": receipt["token"], "body": "Phone of my neighbour " + words["msg"]}
    ).status_code == 201
    note = client.post(f"/api/v1/cases/{ref}/notes", headers=heads["ann"],
                       json={"body": "Note " + words["note"]}).get_json()["id"]
    view = client.get(f"/api/v1/cases/{ref}", headers=heads["ann"]).get_json()
    return {"ref": ref, "token": receipt["token"], "heads": heads, "words": words,
            "attachment": view["attachments"][0]["id"], "message": view["messages"][0]["id"],
            "note": note}


def _erase(client: FlaskClient, case: dict[str, Any], item: str, proposer: str = "ann",
           approver: str = "bob") -> Any:
    proposed = client.post(f"/api/v1/cases/{case['ref']}/erasures",
                           headers=case["heads"][proposer],
                           json={"item": item, "id": case[item]})
    assert proposed.status_code == 202, proposed.get_data(as_text=True)
    erasure = proposed.get_json()["erasure_id"]
    return client.post(f"/api/v1/cases/{case['ref']}/erasures/{erasure}/approve",
                       headers=case["heads"][approver])


def _checkpoint(app: Flask) -> None:
    """SQLite keeps a changed page in the WAL until a checkpoint copies it back."""
    engine = db.engine_for(app)
    if engine.dialect.name == "sqlite":
        with engine.connect() as conn:
            conn.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))


def test_one_reviewer_alone_cannot_erase_and_outsiders_cannot_approve(
        app: Flask, client: FlaskClient, case: dict[str, Any]) -> None:
    ref, heads = case["ref"], case["heads"]
    assert client.post(f"/api/v1/cases/{ref}/erasures", headers=heads["carol"],
                       json={"item": "attachment", "id": case["attachment"]}).status_code == 404
    proposed = client.post(f"/api/v1/cases/{ref}/erasures", headers=heads["ann"],
                           json={"item": "attachment", "id": case["attachment"]})
    assert proposed.status_code == 202
    erasure = proposed.get_json()["erasure_id"]
    own = client.post(f"/api/v1/cases/{ref}/erasures/{erasure}/approve", headers=heads["ann"])
    assert own.status_code == 409 and own.get_json()["error"] == "second_person_required"
    outsider = client.post(f"/api/v1/cases/{ref}/erasures/{erasure}/approve",
                           headers=heads["carol"])
    assert outsider.status_code == 404
    again = client.post(f"/api/v1/cases/{ref}/erasures", headers=heads["bob"],
                        json={"item": "attachment", "id": case["attachment"]})
    assert again.status_code == 409 and again.get_json()["error"] == "already_proposed"
    # Still all there.
    download = client.get(f"/api/v1/cases/{ref}/attachments/{case['attachment']}",
                          headers=heads["bob"])
    assert download.status_code == 200 and case["words"]["file"].encode() in download.data
    assert client.post(f"/api/v1/cases/{ref}/erasures/{erasure}/reject",
                       headers=heads["ann"]).status_code == 200


def test_an_erased_attachment_is_a_notice_with_both_names_and_its_bytes_are_gone(
        app: Flask, client: FlaskClient, case: dict[str, Any]) -> None:
    ref, heads = case["ref"], case["heads"]
    with db.new_session(app) as s:
        chunks = [bytes(b) for b in s.scalars(select(AttachmentChunk.blob).where(
            AttachmentChunk.attachment_id == case["attachment"]))]
    assert chunks
    approved = _erase(client, case, "attachment")
    assert approved.status_code == 200, approved.get_data(as_text=True)
    view = client.get(f"/api/v1/cases/{ref}", headers=heads["ann"]).get_json()
    notice = view["attachments"][0]["filename"]
    assert "Ann Reviewer" in notice and "Bob Reviewer" in notice and "Erased on" in notice
    assert view["attachments"][0]["size"] == 0
    erased = [e for e in view["events"] if e["type"] == "erased"]
    assert erased and erased[0]["data"]["item"] == "attachment"
    gone = client.get(f"/api/v1/cases/{ref}/attachments/{case['attachment']}",
                      headers=heads["bob"])
    assert gone.status_code == 410 and gone.get_json()["error"] == "erased"
    with db.new_session(app) as s:
        assert s.scalar(select(func.count()).select_from(AttachmentChunk).where(
            AttachmentChunk.attachment_id == case["attachment"])) == 0
    _checkpoint(app)
    stored = database_bytes(app)
    for blob in chunks:  # not even the ciphertext survives (SQLite's secure_delete)
        assert blob[:64] not in stored
    again = client.post(f"/api/v1/cases/{ref}/erasures", headers=heads["ann"],
                        json={"item": "attachment", "id": case["attachment"]})
    assert again.status_code == 409 and again.get_json()["error"] == "already_erased"
    with db.new_session(app) as s, pytest.raises(InvalidInput):  # nothing left to refer
        referrals.parse_parts(s, ref, [f"attachments:{case['attachment']}"])


def test_an_erased_message_reads_as_the_notice_for_the_reporter_and_the_reviewers(
        app: Flask, client: FlaskClient, case: dict[str, Any]) -> None:
    with db.new_session(app) as s:
        old = bytes(s.get_one(Message, case["message"]).body_ct)
    assert _erase(client, case, "message", proposer="bob", approver="ann").status_code == 200
    mine = reporter_status(client, case["token"])["messages"]
    assert case["words"]["msg"] not in str(mine)
    assert "Bob Reviewer and Ann Reviewer" in mine[0]["body"]
    view = client.get(f"/api/v1/cases/{case['ref']}", headers=case["heads"]["ann"]).get_json()
    assert "Erased on" in view["messages"][0]["body"]
    _checkpoint(app)
    assert old[:64] not in database_bytes(app)


def test_an_erased_note_reads_as_the_notice(app: Flask, client: FlaskClient,
                                            case: dict[str, Any]) -> None:
    assert _erase(client, case, "note").status_code == 200
    view = client.get(f"/api/v1/cases/{case['ref']}", headers=case["heads"]["bob"]).get_json()
    assert case["words"]["note"] not in str(view)
    assert "Ann Reviewer and Bob Reviewer" in view["notes"][0]["body"]


def test_bad_erasure_requests_change_nothing(client: FlaskClient, case: dict[str, Any]) -> None:
    url = f"/api/v1/cases/{case['ref']}/erasures"
    head = case["heads"]["ann"]
    for body, status in (({"item": "details", "id": "x"}, 400), ({"item": "note"}, 400),
                         ({"item": "note", "id": case["message"]}, 404),
                         ({"item": "message", "id": case["note"]}, 404),
                         ({"item": "attachment", "id": "0" * 32}, 404)):
        assert client.post(url, headers=head, json=body).status_code == status, body
    assert client.post(f"{url}/{'0' * 32}/approve", headers=head).status_code == 404
