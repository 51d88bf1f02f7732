"""A reporter's identity opened only by two (issue 22), played as reviewers and insiders would.

No single reviewer's view shows a named reporter's identity, and no single reviewer's key
material, with the whole database, rebuilds it (checked at the crypto layer with the real
wrapped shares). The requester cannot approve their own request; a reviewer who is not
assigned, or whom the reporter excluded, can neither request nor approve. After a second
reviewer's approval the assigned reviewers read it and the reporter's timeline says it
was opened and why. The identity marker never reaches the database, mail or logs.
Real SQLite or PostgreSQL, real SMTP, real crypto.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from tests.support.factories import PASSWORD, login, make_reviewer, submit_concern
from tests.support.webflow import (
    all_mail_bytes,
    assert_not_at_rest,
    deliver_mail,
    marker,
    post_form,
    reporter_status,
    sign_in,
)
from tests.support.factories import database_bytes
from whistle import crypto
from whistle.cases import identity as ident
from whistle.cases import keys as casekeys
from whistle.store import db
from whistle.store.models import CaseIdentity, IdentityShare, Reviewer, WrappedKey

People = dict[str, dict[str, str]]


@pytest.fixture
def app_config() -> dict[str, Any]:
    return {"MIN_REVIEWERS": 3}  # Ann, Bob and Cy all get each concern


@pytest.fixture
def people(app: Flask) -> People:
    """Ann, Bob and Cy review; Dee is a reviewer too, excluded by the reporter."""
    return {n: make_reviewer(app, n.title() + " Reviewer") for n in ("ann", "bob", "cy", "dee")}


def named(client: FlaskClient, people: People, name: str, **identity: Any) -> dict[str, Any]:
    return submit_concern(client, identity={"name": name, "role": "ward nurse"} | identity,
                          exclude_reviewers=[people["dee"]["id"]])


def case(client: FlaskClient, who: dict[str, str], ref: str) -> Any:
    return client.get(f"/api/v1/cases/{ref}", headers=login(client, who))


def ask(client: FlaskClient, who: dict[str, str], ref: str, reason: str = "we must call them"
        ) -> Any:
    return client.post(f"/api/v1/cases/{ref}/identity/requests", json={"reason": reason},
                       headers=login(client, who))


def decide(client: FlaskClient, who: dict[str, str], ref: str, request_id: str,
           how: str = "approve") -> Any:
    return client.post(f"/api/v1/cases/{ref}/identity/requests/{request_id}/{how}",
                       headers=login(client, who))


def private_key(app: Flask, who: dict[str, str]) -> bytes:
    with db.new_session(app) as s:
        row = s.get_one(Reviewer, who["id"])
        return crypto.unlock_private_key(row.locked_private_key, who["password"],
                                         row.password_check)


def test_no_single_reviewer_sees_it_the_requester_cannot_approve_and_two_open_it(
        app: Flask, client: FlaskClient, people: People) -> None:
    name = marker("NAME")
    sent = named(client, people, name)
    ref = sent["case_ref"]
    for who in ("ann", "bob", "cy"):
        seen = case(client, people[who], ref).get_json()
        assert seen["identity"] is None
        assert seen["identity_provided"] is True and seen["identity_state"] == "sealed"
        assert name not in str(seen)

    asked = ask(client, people["ann"], ref, "to arrange protection for them")
    assert asked.status_code == 202, asked.get_data(as_text=True)
    request_id = asked.get_json()["request_id"]
    assert case(client, people["bob"], ref).get_json()["identity_state"] == "requested"
    own = decide(client, people["ann"], ref, request_id)
    assert own.status_code == 409 and own.get_json()["error"] == "second_person_required"
    assert case(client, people["ann"], ref).get_json()["identity"] is None

    approved = decide(client, people["bob"], ref, request_id)
    assert approved.status_code == 200, approved.get_data(as_text=True)
    assert approved.get_json()["identity_state"] == "released"
    for who in ("ann", "bob", "cy"):
        seen = case(client, people[who], ref).get_json()
        assert seen["identity"]["name"] == name and seen["identity_state"] == "released"
    trail = case(client, people["cy"], ref).get_json()["events"]
    released = [e for e in trail if e["type"] == "identity_released"]
    assert len(released) == 1
    assert released[0]["reason"] == "to arrange protection for them"
    assert released[0]["requested_by_name"] == "Ann Reviewer"
    assert released[0]["decided_by_name"] == "Bob Reviewer"
    assert released[0]["data"]["requested_by"] == people["ann"]["id"]
    assert released[0]["data"]["approved_by"] == people["bob"]["id"]
    status = reporter_status(client, sent["token"])
    assert status["identity_state"] == "released"
    told = [e for e in status["events"] if e["type"] == "identity_released"]
    assert told == [{"at": told[0]["at"], "type": "identity_released",
                     "reason": "to arrange protection for them"}]
    again = decide(client, people["cy"], ref, request_id)
    assert again.status_code == 409 and again.get_json()["error"] == "already_decided"


def _rows(app: Flask, ref: str) -> tuple[CaseIdentity, list[IdentityShare], dict[str, bytes]]:
    with db.new_session(app) as s:
        row = s.get_one(CaseIdentity, ref)
        s.expunge(row)
        shares = list(s.scalars(select(IdentityShare).where(IdentityShare.concern_id == ref)))
        for share in shares:
            s.expunge(share)
        wrapped = dict(s.execute(select(WrappedKey.recipient_id, WrappedKey.blob).where(
            WrappedKey.concern_id == ref, WrappedKey.recipient_kind == "reviewer")).tuples().all())
        return row, shares, wrapped


def test_one_reviewers_private_key_and_the_whole_database_do_not_rebuild_it(
        app: Flask, client: FlaskClient, people: People) -> None:
    """The insider: Bob dumps the database and uses his own private key on every row."""
    name = marker("NAME")
    ref = named(client, people, name)["case_ref"]
    ann_key, bob_key = private_key(app, people["ann"]), private_key(app, people["bob"])
    row, shares, wrapped = _rows(app, ref)
    assert {s.holder for s in shares} == {people[w]["id"] for w in ("ann", "bob", "cy")}
    assert people["dee"]["id"] not in {s.holder for s in shares} | set(wrapped)
    bob = people["bob"]["id"]
    both = crypto.unwrap_key(wrapped[bob], bob_key, casekeys.wrap_context(
        ref, casekeys.BOTH, "reviewer", bob), size=64)
    # Bob's case and thread keys do not open the identity or anything that leads to it.
    for key in (both[:32], both[32:]):
        with pytest.raises(crypto.CryptoError):
            crypto.open_sealed(key, row.identity_ct, ident.identity_part(ref))
    assert row.open_ct is None
    mine = crypto.unwrap_key(next(s.blob for s in shares if s.holder == bob), bob_key,
                             ident.share_context(ref, bob, bob), crypto.SHARE_SIZE)
    with pytest.raises(crypto.CryptoError):
        crypto.combine_key([mine])
    for other in (s for s in shares if s.holder != bob):  # not his: they do not open
        with pytest.raises(crypto.CryptoError):
            crypto.unwrap_key(other.blob, bob_key, ident.share_context(ref, other.holder,
                                                                       other.source), 33)
    with pytest.raises(crypto.CryptoError):
        crypto.unwrap_key(row.recovery_ct, bob_key, casekeys.wrap_context(
            ref, "identity", "recovery", "org"))

    # Ann asks: her share is deposited for Bob. Bob's key opens the deposit's outer layer
    # only: the share inside is sealed under a key from keys/, not in the database.
    request_id = ask(client, people["ann"], ref).get_json()["request_id"]
    _row, shares, _wrapped = _rows(app, ref)
    deposit = next(s for s in shares if s.holder == bob and s.source == people["ann"]["id"])
    inner = crypto.unwrap_key(deposit.blob, bob_key, ident.share_context(
        ref, bob, people["ann"]["id"]), ident.DEPOSIT_SIZE)
    for attempt in ([mine, inner], [mine, inner[1:crypto.SHARE_SIZE + 1]]):
        try:
            key = crypto.combine_key(attempt)
        except crypto.CryptoError:
            continue
        with pytest.raises(crypto.CryptoError):
            crypto.open_sealed(key, row.identity_ct, ident.identity_part(ref))

    # Positive control: two reviewers' own shares do rebuild it (what the approval does).
    ann = people["ann"]["id"]
    hers = crypto.unwrap_key(next(s.blob for s in shares if s.holder == ann and s.source == ann),
                             ann_key, ident.share_context(ref, ann, ann), crypto.SHARE_SIZE)
    key = crypto.combine_key([mine, hers])
    assert name.encode() in crypto.open_sealed(key, row.identity_ct, ident.identity_part(ref))
    assert decide(client, people["bob"], ref, request_id).status_code == 200
    _row, shares, _wrapped = _rows(app, ref)
    assert shares == []  # released: no share is needed or kept any more


def test_reviewers_not_assigned_or_excluded_can_neither_request_nor_decide(
        app: Flask, client: FlaskClient, people: People) -> None:
    ref = named(client, people, marker("NAME"))["case_ref"]
    outsider = make_reviewer(app, "Eve Outsider")
    for who in (people["dee"], outsider):
        refused = ask(client, who, ref)
        assert refused.status_code == 404 and refused.get_json()["error"] == "not_found"
    request_id = ask(client, people["ann"], ref).get_json()["request_id"]
    for who in (people["dee"], outsider):
        for how in ("approve", "reject"):
            assert decide(client, who, ref, request_id, how).status_code == 404
        seen = case(client, who, ref)
        assert seen.status_code == 404
    assert case(client, people["bob"], ref).get_json()["identity_state"] == "requested"
    # A request id of another case does not approve this one.
    other = named(client, people, marker("NAME"))["case_ref"]
    assert decide(client, people["bob"], other, request_id).status_code == 404


def test_a_rejected_request_leaves_it_sealed_and_removes_the_deposited_shares(
        app: Flask, client: FlaskClient, people: People) -> None:
    sent = named(client, people, marker("NAME"))
    ref = sent["case_ref"]
    request_id = ask(client, people["ann"], ref).get_json()["request_id"]
    assert ask(client, people["bob"], ref).get_json()["error"] == "already_requested"
    rejected = decide(client, people["bob"], ref, request_id, "reject")
    assert rejected.status_code == 200 and rejected.get_json()["state"] == "rejected"
    seen = case(client, people["cy"], ref).get_json()
    assert seen["identity"] is None and seen["identity_state"] == "sealed"
    assert [r["state"] for r in seen["identity_requests"]] == ["rejected"]
    _row, shares, _w = _rows(app, ref)
    assert all(s.source == s.holder for s in shares) and len(shares) == 3
    assert decide(client, people["cy"], ref, request_id).status_code == 409
    assert reporter_status(client, sent["token"])["identity_state"] == "sealed"
    assert ask(client, people["cy"], ref, "").status_code == 400
    assert ask(client, people["cy"], ref).status_code == 202  # asked again, properly


def test_to_reviewers_is_open_at_once_and_anonymous_has_none(
        app: Flask, client: FlaskClient, people: People) -> None:
    name = marker("NAME")
    ref = named(client, people, name, release="to_reviewers")["case_ref"]
    seen = case(client, people["ann"], ref).get_json()
    assert seen["identity"]["name"] == name and seen["identity_state"] == "released"
    assert ask(client, people["bob"], ref).get_json()["error"] == "already_released"
    anon = submit_concern(client, exclude_reviewers=[people["dee"]["id"]])["case_ref"]
    seen = case(client, people["ann"], anon).get_json()
    assert seen["identity"] is None and seen["identity_provided"] is False
    assert seen["identity_state"] == "none"
    assert ask(client, people["ann"], anon).get_json()["error"] == "no_identity"
    bad = client.post("/api/v1/concerns", json={"category": "conduct", "details": "x",
                                                "identity": {"name": "A", "release": "all"}})
    assert bad.status_code == 400 and bad.get_json()["field"] == "identity.release"


def test_the_reporter_adds_their_identity_later_with_the_same_choice(
        app: Flask, client: FlaskClient, people: People) -> None:
    sent = submit_concern(client, exclude_reviewers=[people["dee"]["id"]])
    ref, name = sent["case_ref"], marker("NAME")
    assert reporter_status(client, sent["token"])["identity_state"] == "none"
    added = client.post("/api/v1/status/identity",
                        json={"token": sent["token"], "identity": {"name": name}})
    assert added.status_code == 201 and added.get_json()["identity_state"] == "sealed"
    seen = case(client, people["ann"], ref).get_json()
    assert seen["identity"] is None and seen["identity_provided"] is True
    again = client.post("/api/v1/status/identity",
                        json={"token": sent["token"], "identity": {"name": "Other"}})
    assert again.status_code == 409
    assert again.get_json()["error"] == "identity_already_provided"
    unknown = client.post("/api/v1/status/identity",
                          json={"token": "x" * 20, "identity": {"name": "Other"}})
    assert unknown.status_code in (400, 404)
    request_id = ask(client, people["bob"], ref).get_json()["request_id"]
    assert decide(client, people["cy"], ref, request_id).status_code == 200
    assert case(client, people["ann"], ref).get_json()["identity"]["name"] == name
    events = reporter_status(client, sent["token"])["events"]
    assert [e["type"] for e in events if e["type"].startswith("identity")] == [
        "identity_added", "identity_released"]
    later = submit_concern(client, exclude_reviewers=[people["dee"]["id"]])
    opened = client.post("/api/v1/status/identity", json={
        "token": later["token"], "identity": {"name": name, "release": "to_reviewers"}})
    assert opened.status_code == 201 and opened.get_json()["identity_state"] == "released"
    assert case(client, people["ann"], later["case_ref"]).get_json()["identity"]["name"] == name


def test_a_password_change_rewraps_the_share_and_a_recusal_takes_it_away(
        app: Flask, client: FlaskClient, people: People) -> None:
    ref = named(client, people, marker("NAME"))["case_ref"]
    new = "a brand new passphrase for ann"
    changed = client.post("/api/v1/me/password", headers=login(client, people["ann"]),
                          json={"password": PASSWORD, "new_password": new})
    assert changed.status_code == 200, changed.get_data(as_text=True)
    ann = people["ann"] | {"password": new}
    fay = make_reviewer(app, "Fay Reviewer")  # the only possible replacement
    recused = client.post(f"/api/v1/cases/{ref}/recuse", json={"reason": "I know them"},
                          headers=login(client, people["cy"]))
    assert recused.status_code == 200, recused.get_data(as_text=True)
    _row, shares, _w = _rows(app, ref)
    assert {s.holder for s in shares} == {ann["id"], people["bob"]["id"]}
    request_id = ask(client, ann, ref).get_json()["request_id"]
    # Fay joined after submission and holds no share: her approval is recorded, and the
    # release completes when a share holder (Bob, with Ann's deposit) next opens the case.
    approved = decide(client, fay, ref, request_id)
    assert approved.status_code == 200 and approved.get_json()["identity_state"] == "requested"
    assert case(client, ann, ref).get_json()["identity"] is None  # Ann holds one share only
    assert case(client, people["bob"], ref).get_json()["identity"] is not None
    for who in (ann, fay):
        assert case(client, who, ref).get_json()["identity_state"] == "released"
    assert case(client, people["cy"], ref).status_code == 404


def test_the_identity_never_reaches_the_database_mail_or_logs(
        app: Flask, client: FlaskClient, people: People, smtp: Any,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    name, role, contact = marker("NAME"), marker("ROLE"), marker("CONTACT")
    sent = named(client, people, name, role=role, contact=contact)
    ref = sent["case_ref"]
    request_id = ask(client, people["ann"], ref).get_json()["request_id"]
    assert decide(client, people["bob"], ref, request_id).status_code == 200
    assert case(client, people["cy"], ref).get_json()["identity"]["contact"] == contact
    later = submit_concern(client)
    client.post("/api/v1/status/identity", json={"token": later["token"],
                                                 "identity": {"name": name}})
    reporter_status(client, sent["token"])
    deliver_mail(app)
    stored = database_bytes(app)
    mail = all_mail_bytes(smtp)
    logged = "\n".join(r.getMessage() for r in caplog.records).encode()
    for text in (name, role, contact):
        assert_not_at_rest(stored, text)
        assert_not_at_rest(mail, text)
        assert_not_at_rest(logged, text)


def test_the_pages_offer_the_choice_and_the_buttons_without_javascript(
        app: Flask, client: FlaskClient, people: People) -> None:
    form = client.get("/report").get_data(as_text=True)
    assert 'name="release" value="on_request"' in form and 'value="to_reviewers"' in form
    name = marker("NAME")
    ref = named(client, people, name)["case_ref"]
    ann, bob = sign_in(app, people["ann"]), sign_in(app, people["bob"])
    page = ann.get(f"/reviewer/cases/{ref}").get_data(as_text=True)
    assert "Identity provided" in page and name not in page
    asked = post_form(ann, f"/reviewer/cases/{ref}/identity/request",
                      {"reason": "needed for protection"}, f"/reviewer/cases/{ref}")
    assert asked.status_code == 302
    page = bob.get(f"/reviewer/cases/{ref}").get_data(as_text=True)
    assert "needed for protection" in page and "Approve: open the identity" in page
    request_id = case(client, people["bob"], ref).get_json()["identity_requests"][0]["id"]
    done = post_form(bob, f"/reviewer/cases/{ref}/identity/requests/{request_id}/approve", {},
                     f"/reviewer/cases/{ref}")
    assert done.status_code == 302
    assert name in ann.get(f"/reviewer/cases/{ref}").get_data(as_text=True)
