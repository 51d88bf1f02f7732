"""Referral to an outside agency (issue 23, item 2), as users and insiders would try it.

Administrators register an agency with its age key as a two-person change; an assigned
reviewer proposes a referral and a different assigned reviewer approves; the one package
is encrypted to the agency's key in the age format, opens with Debian's real ``age``
command, holds the chosen parts (never the identity) with a signed manifest, and its
SHA-256 is in the case's trail; the reporter's timeline says to whom. One person alone
can do none of it. Real SQLite or PostgreSQL, real crypto, the real ``age`` tool.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import subprocess
import tarfile
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import update

from tests.support.factories import database_bytes, login, make_reviewer
from tests.support.lifecycle import (
    age_decrypt,
    age_identity,
    register_agency,
    submit_with_file,
)
from tests.support.webflow import marker, post_form, reporter_status, sign_in
from whistle.cases import package
from whistle.store import db
from whistle.store.models import Agency


@pytest.fixture
def world(app: Flask, client: FlaskClient, tmp_path: Path) -> dict[str, Any]:
    """Two administrators (no case access), two reviewers who get the case, a named
    reporter's case with a file, messages and a note; then Carol, who is not assigned."""
    people = {"ada": make_reviewer(app, "Ada Admin", admin=True, reviews=False),
              "ben": make_reviewer(app, "Ben Admin", admin=True, reviews=False),
              "ann": make_reviewer(app, "Ann Reviewer"),
              "bob": make_reviewer(app, "Bob Reviewer")}
    secrets_ = {k: marker(k.upper()) for k in ("details", "file", "name", "msg", "note",
                                                   "reply")}
    receipt = submit_with_file(client, "Details " + secrets_["details"],
                               b"File " + secrets_["file"].encode(),
                               identity={"name": "Named " + secrets_["name"]})
    people["carol"] = make_reviewer(app, "Carol Unassigned")
    heads = {k: login(client, v) for k, v in people.items()}
    ref, token = receipt["case_ref"], receipt["token"]
    assert client.post("/api/v1/status/messages", json={
        "token": token, "body": "Reporter " + secrets_["msg"]}).status_code == 201
    assert client.post(f"/api/v1/cases/{ref}/messages", headers=heads["ann"], json={
        "body": "Reviewer " + secrets_["reply"]}).status_code == 201
    assert client.post(f"/api/v1/cases/{ref}/notes", headers=heads["ann"], json={
        "body": "Note " + secrets_["note"]}).status_code == 201
    case = client.get(f"/api/v1/cases/{ref}", headers=heads["ann"]).get_json()
    key_file, recipient = age_identity(tmp_path)
    return {"people": people, "heads": heads, "ref": ref, "token": token,
            "secrets": secrets_, "attachment": case["attachments"][0]["id"],
            "key_file": key_file, "recipient": recipient}


def _agency(client: FlaskClient, world: dict[str, Any], name: str = "Local Authority LADO"
            ) -> str:
    heads = world["heads"]
    return register_agency(client, heads["ada"], heads["ben"], name, world["recipient"])


def _propose(client: FlaskClient, world: dict[str, Any], agency_id: str, parts: list[str],
             who: str = "ann", **extra: Any) -> Any:
    return client.post(f"/api/v1/cases/{world['ref']}/referrals", headers=world["heads"][who],
                       json={"agency_id": agency_id, "parts": parts} | extra)


# -- agencies: two people, a real age key -------------------------------------------------


def test_an_administrator_alone_cannot_register_an_agency(
        client: FlaskClient, world: dict[str, Any]) -> None:
    heads = world["heads"]
    proposed = client.post("/api/v1/admin/agencies", headers=heads["ada"],
                           json={"name": "Police", "age_recipient": world["recipient"]})
    assert proposed.status_code == 202
    body = proposed.get_json()
    assert set(body) >= {"id", "change_id"}
    listed = client.get("/api/v1/agencies", headers=heads["ann"]).get_json()["agencies"]
    assert listed == [{"id": body["id"], "name": "Police", "age_recipient": world["recipient"],
                       "state": "pending"}]
    # Pending: nothing can be referred to it yet.
    refused = _propose(client, world, body["id"], ["details"])
    assert refused.status_code == 409 and refused.get_json()["error"] == "agency_not_active"
    # The change waits among the administrators' changes; its proposer cannot approve it.
    changes = client.get("/api/v1/admin/changes", headers=heads["ben"]).get_json()["changes"]
    assert [c["type"] for c in changes if c["id"] == body["change_id"]] == ["agency_add"]
    own = client.post(f"/api/v1/admin/changes/{body['change_id']}/approve", headers=heads["ada"])
    assert own.status_code == 409 and own.get_json()["error"] == "second_person_required"
    assert client.get("/api/v1/agencies", headers=heads["ann"]).get_json()[
        "agencies"][0]["state"] == "pending"
    assert client.post(f"/api/v1/admin/changes/{body['change_id']}/approve",
                       headers=heads["ben"]).status_code == 200
    assert client.get("/api/v1/agencies", headers=heads["ann"]).get_json()[
        "agencies"][0]["state"] == "active"
    # A reviewer cannot propose an agency at all.
    assert client.post("/api/v1/admin/agencies", headers=heads["ann"], json={
        "name": "X", "age_recipient": world["recipient"]}).status_code == 403


@pytest.mark.parametrize("bad", [
    "age1notakey", "", "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl",
    "AGE-SECRET-KEY-1QQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQ", 42, None,
    "age1" + "q" * 58])
def test_an_agency_key_that_is_not_an_age_x25519_recipient_is_refused(
        app: Flask, client: FlaskClient, world: dict[str, Any], bad: Any) -> None:
    response = client.post("/api/v1/admin/agencies", headers=world["heads"]["ada"],
                           json={"name": "Regulator", "age_recipient": bad})
    assert response.status_code == 400
    assert response.get_json()["field"] == "age_recipient"
    assert client.get("/api/v1/agencies", headers=world["heads"]["ann"]).get_json()[
        "agencies"] == []


def test_an_agency_key_is_swapped_only_with_a_second_person_and_never_in_the_database(
        app: Flask, client: FlaskClient, world: dict[str, Any], tmp_path: Path) -> None:
    heads = world["heads"]
    agency_id = _agency(client, world)
    _other_file, other_key = age_identity(tmp_path, "attacker")
    swap = client.post(f"/api/v1/admin/agencies/{agency_id}/key", headers=heads["ada"],
                       json={"age_recipient": other_key})
    assert swap.status_code == 202
    change_id = swap.get_json()["change_id"]
    # Until a second person approves, the old key stays in force.
    listed = client.get("/api/v1/agencies", headers=heads["ann"]).get_json()["agencies"]
    assert listed[0]["age_recipient"] == world["recipient"]
    own = client.post(f"/api/v1/admin/changes/{change_id}/approve", headers=heads["ada"])
    assert own.status_code == 409 and own.get_json()["error"] == "second_person_required"
    assert client.post(f"/api/v1/admin/changes/{change_id}/reject",
                       headers=heads["ben"]).status_code == 200
    # Someone who can write to the database swaps it anyway: nothing is encrypted to it.
    with db.new_session(app) as s:
        s.execute(update(Agency).where(Agency.id == agency_id).values(age_recipient=other_key))
        s.commit()
    refused = _propose(client, world, agency_id, ["details"])
    assert refused.status_code == 409 and refused.get_json()["error"] == "unverified_agency"


# -- referrals: two assigned reviewers, one package ----------------------------------------


def test_one_reviewer_alone_cannot_refer_and_outsiders_cannot_approve(
        client: FlaskClient, world: dict[str, Any]) -> None:
    heads, ref = world["heads"], world["ref"]
    agency_id = _agency(client, world)
    # Carol is not assigned: for her the case does not exist.
    assert _propose(client, world, agency_id, ["details"], who="carol").status_code == 404
    proposed = _propose(client, world, agency_id, ["details"])
    assert proposed.status_code == 202
    referral = proposed.get_json()["referral_id"]
    url = f"/api/v1/cases/{ref}/referrals/{referral}"
    own = client.post(f"{url}/approve", headers=heads["ann"])
    assert own.status_code == 409 and own.get_json()["error"] == "second_person_required"
    for outsider in ("carol", "ada"):  # not assigned (an administrator holds no case key)
        assert client.post(f"{url}/approve", headers=heads[outsider]).status_code == 404
        assert client.get(f"{url}/package", headers=heads[outsider]).status_code == 404
    # Nothing was built: no package, no referral event for the reporter.
    assert client.get(f"{url}/package", headers=heads["ann"]).status_code == 404
    assert "referred" not in [e["type"] for e in reporter_status(client, world["token"])["events"]]
    # The roster's approval endpoint does not decide a case's referral either.
    assert client.post(f"/api/v1/admin/changes/{referral}/approve",
                       headers=heads["ben"]).status_code == 404


def test_the_package_opens_with_age_holds_the_chosen_parts_not_the_identity_and_its_hash_is_audited(
        app: Flask, client: FlaskClient, world: dict[str, Any]) -> None:
    heads, ref, secret = world["heads"], world["ref"], world["secrets"]
    agency_id = _agency(client, world)
    proposed = _propose(client, world, agency_id,
                        ["details", f"attachments:{world['attachment']}", "messages"],
                        purpose="consultation")
    assert proposed.status_code == 202
    referral = proposed.get_json()["referral_id"]
    approved = client.post(f"/api/v1/cases/{ref}/referrals/{referral}/approve",
                           headers=heads["bob"])
    assert approved.status_code == 200, approved.get_data(as_text=True)
    again = client.post(f"/api/v1/cases/{ref}/referrals/{referral}/approve",
                        headers=heads["bob"])
    assert again.status_code == 409
    got = client.get(f"/api/v1/cases/{ref}/referrals/{referral}/package", headers=heads["ann"])
    assert got.status_code == 200
    sealed = got.get_data()
    assert sealed.startswith(b"age-encryption.org/v1\n")
    for value in secret.values():  # encrypted: no plaintext in the package as sent
        assert value.encode() not in sealed
    digest = hashlib.sha256(sealed).hexdigest()
    assert approved.get_json()["package_sha256"] == digest
    # The audit event carries the agency, the purpose and the SHA-256 of these bytes.
    events = client.get(f"/api/v1/cases/{ref}", headers=heads["ann"]).get_json()["events"]
    audited = [e for e in events if e["type"] == "referral_approved"]
    assert len(audited) == 1
    assert audited[0]["data"]["package_sha256"] == digest
    assert audited[0]["data"]["agency"] == agency_id
    assert audited[0]["data"]["purpose"] == "consultation"
    assert audited[0]["actor"] == world["people"]["bob"]["id"]
    # The agency opens it with the real age tool and its own key.
    files = package.members(age_decrypt(world["key_file"], sealed))
    assert {"manifest.json", "provenance.json", "details.txt", "messages.json"} <= set(files)
    assert secret["details"].encode() in files["details.txt"]
    attached = [p for p in files if p.startswith("attachments/")]
    assert len(attached) == 1 and secret["file"].encode() in files[attached[0]]
    assert secret["msg"].encode() in files["messages.json"]
    assert secret["reply"].encode() in files["messages.json"]
    everything = b"".join(files.values())
    assert secret["name"].encode() not in everything  # never the identity
    assert secret["note"].encode() not in everything  # notes were not chosen
    manifest = json.loads(files["manifest.json"])
    assert manifest["identity_included"] is False
    assert manifest["case"]["case_ref"] == ref
    assert manifest["referral"]["approved_by"]["name"] == "Bob Reviewer"
    # Provenance: the instance signing key (published with the roster) signed the manifest.
    roster_key = __import__("base64").b64decode(
        client.get("/api/v1/roster").get_json()["signing_key"])
    assert package.verify(files, roster_key)
    forged = dict(files, **{"details.txt": b"something else"})
    assert not package.verify(forged, roster_key)
    # The receipt the reporter was given is inside, listed in the signed manifest: the
    # agency verifies it as anyone can, and the details against it.
    from whistle.cases import receipts

    keys = app.extensions["whistle_keys"]
    published = receipts.published_keys(app.config["KEYS_DIR"], keys.signing_public)
    given = files["receipt.txt"].decode()
    checked = receipts.verify(given, published, files["details.txt"].decode())
    assert checked.valid and checked.case_ref == ref and checked.content_matches is True
    assert "receipt.txt" in {f["path"] for f in manifest["files"]}
    assert manifest["receipt"]["case_ref"] == ref  # the receipt data is signed too
    edited = json.loads(files["manifest.json"])
    edited["receipt"]["received"] = "2000-01-01"
    assert not package.verify(dict(files, **{"manifest.json": json.dumps(edited).encode()}),
                              roster_key)
    assert not package.verify(dict(files, **{"receipt.txt": given.replace(ref, "X" * len(
        ref)).encode()}), roster_key)
    # The reporter's timeline says it was referred, and to whom.
    referred = [e for e in reporter_status(client, world["token"])["events"]
                if e["type"] == "referred"]
    assert referred and referred[0]["agency"] == "Local Authority LADO"
    # At rest the package is the agency's alone: no plaintext of the case in the database.
    stored = database_bytes(app)
    for value in secret.values():
        assert value.encode() not in stored


def test_the_tar_is_a_plain_archive_the_agency_can_list(
        client: FlaskClient, world: dict[str, Any]) -> None:
    # A second file with a long name in another script (the archive is pax, not ustar).
    long_name = "شهادة-" * 30 + ".txt"
    assert client.post("/api/v1/status/attachments", content_type="multipart/form-data",
                       data={"token": world["token"],
                             "attachment": (io.BytesIO(b"more"), long_name, "text/plain")}
                       ).status_code == 201
    agency_id = _agency(client, world)
    referral = _propose(client, world, agency_id, ["attachments", "notes"]).get_json()[
        "referral_id"]
    url = f"/api/v1/cases/{world['ref']}/referrals/{referral}"
    assert client.post(f"{url}/approve", headers=world["heads"]["bob"]).status_code == 200
    archive = age_decrypt(world["key_file"], client.get(
        f"{url}/package", headers=world["heads"]["bob"]).get_data())
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        names = tar.getnames()
    assert "details.txt" not in names and "notes.json" in names
    assert len([n for n in names if n.startswith("attachments/")]) == 2
    assert any("شهادة" in n for n in names)
    listed = subprocess.run(["tar", "-tf", "-"], input=archive, capture_output=True, check=True)
    assert sorted(listed.stdout.decode().split("\n")[:-1]) == sorted(names)  # GNU tar too
    assert all(not n.startswith("/") and ".." not in n for n in names)


def test_identity_unknown_parts_and_agencies_are_refused_and_change_nothing(
        client: FlaskClient, world: dict[str, Any]) -> None:
    agency_id = _agency(client, world)
    identity = _propose(client, world, agency_id, ["details", "identity"])
    assert identity.status_code == 409 and identity.get_json()["error"] == "identity_not_released"
    for parts in ([], ["everything"], ["attachments:" + "0" * 32], "details", [1]):
        bad = _propose(client, world, agency_id, parts)  # type: ignore[arg-type]
        assert bad.status_code == 400, parts
    assert _propose(client, world, "f" * 32, ["details"]).status_code == 400
    assert _propose(client, world, agency_id, ["details"], purpose="gossip").status_code == 400
    no_reason = _propose(client, world, agency_id, ["details"], inform_reporter=False)
    assert no_reason.status_code == 400 and no_reason.get_json()["field"] == "exception"
    listed = client.get(f"/api/v1/cases/{world['ref']}/referrals",
                        headers=world["heads"]["ann"]).get_json()["referrals"]
    assert listed == []


def test_a_documented_exception_keeps_the_referral_off_the_reporters_timeline(
        client: FlaskClient, world: dict[str, Any]) -> None:
    agency_id = _agency(client, world, "Police")
    referral = _propose(client, world, agency_id, ["details"], purpose="investigation",
                        inform_reporter=False, exception="prejudice_investigation"
                        ).get_json()["referral_id"]
    assert client.post(f"/api/v1/cases/{world['ref']}/referrals/{referral}/approve",
                       headers=world["heads"]["bob"]).status_code == 200
    assert "referred" not in [e["type"] for e in reporter_status(client, world["token"])["events"]]
    events = client.get(f"/api/v1/cases/{world['ref']}",
                        headers=world["heads"]["ann"]).get_json()["events"]
    approved = [e for e in events if e["type"] == "referral_approved"][0]["data"]
    assert approved["reporter_told"] is False
    assert approved["exception"] == "prejudice_investigation"


def test_a_released_identity_goes_only_with_a_stated_basis(
        client: FlaskClient, world: dict[str, Any]) -> None:
    heads, ref = world["heads"], world["ref"]
    agency_id = _agency(client, world, "Police")
    # Released to the reviewers by two of them (issue 22's identity release).
    asked = client.post(f"/api/v1/cases/{ref}/identity/requests", headers=heads["ann"],
                        json={"reason": "The police asked for a named witness."})
    assert asked.status_code == 202, asked.get_data(as_text=True)
    request_id = asked.get_json()["request_id"]
    assert client.post(f"/api/v1/cases/{ref}/identity/requests/{request_id}/approve",
                       headers=heads["bob"]).status_code == 200
    case = client.get(f"/api/v1/cases/{ref}", headers=heads["ann"]).get_json()
    assert case["identity"] is not None  # released to the reviewers
    no_basis = _propose(client, world, agency_id, ["details", "identity"])
    assert no_basis.status_code == 400 and no_basis.get_json()["field"] == "identity_basis"
    proposed = _propose(client, world, agency_id, ["identity"],
                        identity_basis="legal_obligation", purpose="investigation")
    assert proposed.status_code == 202
    referral = proposed.get_json()["referral_id"]
    url = f"/api/v1/cases/{ref}/referrals/{referral}"
    assert client.post(f"{url}/approve", headers=heads["bob"]).status_code == 200
    files = package.members(age_decrypt(world["key_file"], client.get(
        f"{url}/package", headers=heads["ann"]).get_data()))
    assert world["secrets"]["name"].encode() in files["identity.json"]
    assert json.loads(files["manifest.json"])["identity_included"] is True
    assert "details.txt" not in files
    # The reporter is told, on their timeline, that their name went with it (Art. 16(3)).
    referred = [e for e in reporter_status(client, world["token"])["events"]
                if e["type"] == "referred"]
    assert referred and referred[-1]["agency"] == "Police"
    assert referred[-1]["identity_included"] is True
    page = post_form(client, "/status", {"token": world["token"]}, "/status")
    assert "Your name was sent with it." in page.get_data(as_text=True)


def test_the_pages_propose_and_approve_a_referral_and_register_an_agency(
        app: Flask, client: FlaskClient, world: dict[str, Any]) -> None:
    people = world["people"]
    ada = sign_in(app, people["ada"])
    page = ada.get("/admin/agencies").get_data(as_text=True)
    assert 'name="age_recipient"' in page
    assert post_form(ada, "/admin/agencies", {"name": "Regulator", "age_recipient":
                                              world["recipient"]}, "/admin/agencies"
                     ).status_code == 302
    ben = sign_in(app, people["ben"])
    changes = ben.get("/reviewer/changes").get_data(as_text=True)
    assert world["recipient"] in changes and "Regulator" in changes
    change_id = re.search(r'/reviewer/changes/([0-9a-f]{32})/approve', changes).group(1)
    assert post_form(ben, f"/reviewer/changes/{change_id}/approve", {},
                     "/reviewer/changes").status_code == 302
    ann, bob = sign_in(app, people["ann"]), sign_in(app, people["bob"])
    url = f"/reviewer/cases/{world['ref']}/referrals"
    assert url in ann.get(f"/reviewer/cases/{world['ref']}").get_data(as_text=True)
    agency_id = client.get("/api/v1/agencies", headers=world["heads"]["ann"]).get_json()[
        "agencies"][0]["id"]
    assert post_form(ann, url + "/propose", {"agency_id": agency_id, "parts": "details",
                                "purpose": "regulatory"}, url).status_code == 302
    mine = ann.get(url).get_data(as_text=True)
    assert "Regulator" in mine and "/approve" not in mine  # the proposer cannot approve
    theirs = bob.get(url).get_data(as_text=True)
    approve = re.search(r'action="([^"]+/approve)"', theirs).group(1)
    assert post_form(bob, approve, {}, url).status_code == 302
    done = bob.get(url).get_data(as_text=True)
    link = re.search(r'href="([^"]+/package)"', done).group(1)
    sealed = bob.get(link).get_data()
    files = package.members(age_decrypt(world["key_file"], sealed))
    assert world["secrets"]["details"].encode() in files["details.txt"]
    # Erasure through the page: proposed by Ann, approved by Bob.
    item = f"attachment:{world['attachment']}"
    assert post_form(ann, f"/reviewer/cases/{world['ref']}/erasures", {"item": item},
                     url).status_code == 302
    approve = re.search(r'action="([^"]+/erasures/[0-9a-f]{32}/approve)"',
                        bob.get(url).get_data(as_text=True)).group(1)
    assert post_form(bob, approve, {}, url).status_code == 302
    view = client.get(f"/api/v1/cases/{world['ref']}", headers=world["heads"]["ann"]).get_json()
    assert "Erased on" in view["attachments"][0]["filename"]
