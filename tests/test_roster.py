"""Issue 18, key transparency: every roster entry is signed by the instance signing key (in
``keys/``, never in the database), no case key is wrapped for an account whose row does not
match its signed entry, and the roster is public and sealed.

The attacks are replayed as a database writer would make them: statements on a raw
connection, past Whistle's code. Real app, real database (SQLite, or PostgreSQL with
``WHISTLE_TEST_DB=postgres``), real keys.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, insert, select, text

from tests.support.factories import make_reviewer, submit_concern
from whistle import crypto, keys, settings_of
from whistle.cases import recovery
from whistle.people import accounts, administration, adminlog, firstrun, roster
from whistle.store import db
from whistle.store.models import (
    AdminEvent,
    Assignment,
    Concern,
    OutboxMail,
    Reviewer,
    WrappedKey,
    utcnow,
)


def instance(app: Flask) -> keys.InstanceKeys:
    found: keys.InstanceKeys = app.extensions["whistle_keys"]
    return found


def as_database_writer(app: Flask, sql: str, **params: Any) -> None:
    """One statement on a raw connection, committed: no Whistle code in between."""
    with db.engine_for(app).begin() as conn:
        conn.execute(text(sql), params)


def swap_key(app: Flask, reviewer_id: str) -> bytes:
    """Replace a reviewer's public key in the database with one the attacker holds."""
    attacker = crypto.generate_keypair()
    as_database_writer(app, "UPDATE reviewers SET public_key = :k WHERE id = :id",
                       k=attacker.public, id=reviewer_id)
    return attacker.private


def insert_copy(app: Flask, of: str) -> str:
    """Insert a reviewer row: every column of ``of``'s row (its signature too), with a new id,
    email and a public key the attacker holds."""
    with db.engine_for(app).begin() as conn:
        row = dict(conn.execute(select(Reviewer.__table__).where(Reviewer.id == of))
                   .mappings().one())
        row.update(id="f" * 32, email="intruder@example.org",
                   public_key=crypto.generate_keypair().public)
        conn.execute(insert(Reviewer).values(**row))
    return "f" * 32


def wrapped_for(app: Flask, reviewer_id: str) -> int:
    with db.new_session(app) as s:
        return s.scalar(select(func.count()).select_from(WrappedKey).where(
            WrappedKey.recipient_kind == "reviewer", WrappedKey.recipient_id == reviewer_id)) or 0


def assigned_to(app: Flask, reviewer_id: str) -> int:
    with db.new_session(app) as s:
        return s.scalar(select(func.count()).select_from(Assignment).where(
            Assignment.reviewer_id == reviewer_id)) or 0


def under_routed(app: Flask, case_ref: str) -> bool:
    with db.new_session(app) as s:
        return s.get_one(Concern, case_ref).under_routed


def alerts_to(app: Flask, email: str) -> int:
    with db.new_session(app) as s:
        return s.scalar(select(func.count()).select_from(OutboxMail).where(
            OutboxMail.recipient == email, OutboxMail.template == "admin_attention")) or 0


def events(app: Flask, type_: str) -> list[dict[str, Any]]:
    with db.new_session(app) as s:
        return [json.loads(d) for d in s.scalars(select(AdminEvent.data).where(
            AdminEvent.type == type_).order_by(AdminEvent.seq))]


def verify_command(app: Flask) -> Any:
    return app.test_cli_runner().invoke(args=["roster", "verify"])


@pytest.fixture
def people(app: Flask) -> dict[str, dict[str, str]]:
    """Three reviewers (MIN_REVIEWERS 2), of whom Cat alone covers Education (so routing
    prefers her for a concern there), and an administrator who does not review."""
    return {
        "ann": make_reviewer(app, "Ann Reviewer"),
        "bob": make_reviewer(app, "Bob Reviewer"),
        "cat": make_reviewer(app, "Cat Reviewer", units=["Education"], independent=True),
        "adm": make_reviewer(app, "Ada Admin", admin=True, reviews=False),
    }


# -- the attacks -------------------------------------------------------------------------------


def test_a_public_key_swapped_in_the_database_is_never_wrapped_for(
        app: Flask, client: FlaskClient, people: dict[str, dict[str, str]],
        recovery_key_file: Path) -> None:
    assert verify_command(app).exit_code == 0
    cat = people["cat"]
    swap_key(app, cat["id"])
    # Cat alone covers Education: routing would pick her first if her row still counted.
    # Ann and Bob are still two, so only the lost reviewer makes these under-routed.
    refs = [submit_concern(client, unit="Education", details=f"Concern {n}")["case_ref"]
            for n in range(3)]

    assert wrapped_for(app, cat["id"]) == 0 and assigned_to(app, cat["id"]) == 0
    assert all(under_routed(app, ref) for ref in refs)
    assert wrapped_for(app, people["ann"]["id"]) + wrapped_for(app, people["bob"]["id"]) == 6
    assert alerts_to(app, people["adm"]["email"]) >= 1  # administrators alerted, no content

    result = verify_command(app)
    assert result.exit_code == 1, result.output
    assert cat["id"] in result.output and "Cat Reviewer" in result.output
    assert people["ann"]["id"] not in result.output

    # Nor can anyone wrap for her later: sharing (here through the recovery key) refuses.
    with db.new_session(app) as s, pytest.raises(recovery.RecoveryError) as refused:
        recovery.reshare(s, instance(app), refs[0], cat["id"],
                         keys.read_recovery_private(str(recovery_key_file)), utcnow())
    assert refused.value.code == "unverified_key" and refused.value.status == 409
    assert wrapped_for(app, cat["id"]) == 0


def test_an_inserted_reviewer_row_receives_nothing(
        app: Flask, client: FlaskClient, people: dict[str, dict[str, str]]) -> None:
    intruder = insert_copy(app, people["ann"]["id"])
    for n in range(4):
        ref = submit_concern(client, unit="Education", details=f"Concern {n}")["case_ref"]
        assert under_routed(app, ref)
    assert wrapped_for(app, intruder) == 0 and assigned_to(app, intruder) == 0

    result = verify_command(app)
    assert result.exit_code == 1 and intruder in result.output
    listed = {r["id"] for r in client.get("/api/v1/roster").get_json()["reviewers"]}
    offered = {r["id"] for r in client.get("/api/v1/intake").get_json()["reviewers"]}
    assert intruder not in listed and intruder not in offered
    assert {people[p]["id"] for p in ("ann", "bob", "cat")} == listed == offered


def test_a_later_change_does_not_launder_a_swapped_key(
        app: Flask, people: dict[str, dict[str, str]]) -> None:
    """An administrator's routine edit re-signs the entry: it must not sign over a key that
    a database writer swapped in the meantime."""
    swap_key(app, people["bob"]["id"])
    with db.new_session(app) as s, pytest.raises(roster.UnverifiedEntry) as refused:
        administration.update_reviewer(s, settings_of(app), people["bob"]["id"], ["Health"],
                                       False, False, people["adm"]["id"], keys=instance(app))
    assert refused.value.code == "unverified_key" and refused.value.status == 409
    assert verify_command(app).exit_code == 1
    # Disabling still works (it removes a reader) and does not bless the row either.
    with db.new_session(app) as s:
        accounts.disable(s, settings_of(app), people["bob"]["id"], keys=instance(app))
        bob = s.get_one(Reviewer, people["bob"]["id"])
        assert bob.state == "disabled" and not roster.verified(bob, instance(app).signing_public)


def test_an_earlier_signed_entry_put_back_is_named_by_roster_verify(
        app: Flask, people: dict[str, dict[str, str]]) -> None:
    ann = people["ann"]["id"]
    with db.new_session(app) as s:
        old = s.get_one(Reviewer, ann)
        old_units, old_signature = old.units, old.roster_signature
        administration.update_reviewer(s, settings_of(app), ann, ["Health"], False, True,
                                       people["adm"]["id"], keys=instance(app))
    assert verify_command(app).exit_code == 0
    as_database_writer(app, "UPDATE reviewers SET units = :u, is_independent = :f, "
                            "roster_signature = :sig WHERE id = :id",
                       u=old_units, f=False, sig=old_signature, id=ann)
    result = verify_command(app)
    assert result.exit_code == 1 and ann in result.output and "earlier" in result.output


# -- signing ---------------------------------------------------------------------------------


def test_every_change_to_an_entry_is_signed_and_logged(
        app: Flask, people: dict[str, dict[str, str]]) -> None:
    signing_public = instance(app).signing_public
    ann = people["ann"]["id"]
    with db.new_session(app) as s:
        before = s.get_one(Reviewer, ann)
        assert roster.verified(before, signing_public) and before.joined is not None
        first = before.roster_signature
        administration.update_reviewer(s, settings_of(app), ann, ["Health"], True, False,
                                       people["adm"]["id"], keys=instance(app))
        after = s.get_one(Reviewer, ann)
        assert after.roster_signature != first and roster.verified(after, signing_public)
        accounts.disable(s, settings_of(app), ann, keys=instance(app))
        gone = s.get_one(Reviewer, ann)
        assert gone.state == "disabled" and roster.verified(gone, signing_public)
        public_key = gone.public_key
    signed = [e for e in events(app, roster.ENTRY_SIGNED) if e["reviewer"] == ann]
    assert [e["state"] for e in signed] == ["active", "active", "disabled"]
    assert {e["fingerprint"] for e in signed} == {crypto.digest(public_key).hex()}
    with db.new_session(app) as s:
        assert adminlog.verify(s)[1] is None
        assert all(not k.endswith("key") for e in s.scalars(select(AdminEvent.data))
                   for k in json.loads(e))  # no key material in the log


def test_the_signing_key_lives_in_keys_and_never_in_the_database(
        app: Flask, people: dict[str, dict[str, str]], tmp_path: Path) -> None:
    from tests.support.factories import database_bytes

    path = tmp_path / "keys" / keys.SIGNING_KEY
    assert path.stat().st_mode & 0o777 == 0o600
    signing = instance(app).signing_key
    assert bytes.fromhex(path.read_text().strip()) == signing
    dump = database_bytes(app)
    assert signing[:32] not in dump and signing[32:] not in dump
    assert signing.hex().encode() not in dump


def test_an_unchanged_entry_is_verified_once_on_the_submission_path(
        app: Flask, client: FlaskClient, people: dict[str, dict[str, str]],
        monkeypatch: pytest.MonkeyPatch) -> None:
    keys.fields_verified.cache_clear()
    keys.entry_verified.cache_clear()
    calls: list[bytes] = []
    real = crypto.verify_signature

    def counting(public: bytes, message: bytes, signature: bytes) -> bool:
        calls.append(message)
        return real(public, message, signature)

    monkeypatch.setattr(crypto, "verify_signature", counting)
    for n in range(5):
        submit_concern(client, details=f"Concern {n}")
    assert len(calls) == 3  # the three reviewers, once each, however many submissions
    assert len(set(calls)) == 3


# -- the public roster -------------------------------------------------------------------------


def recomputed_head(body: dict[str, Any]) -> str:
    """The head as docs/api.md defines it, from the published fields alone."""
    public = [{k: r[k] for k in ("id", "name", "units", "independent", "senior", "admin",
                                 "fingerprint", "since")} for r in body["reviewers"]]
    canonical = json.dumps({"sealed": body["sealed"], "reviewers": public}, sort_keys=True,
                           separators=(",", ":"), ensure_ascii=True)
    return crypto.digest(b"whistle:1:roster-head:" + canonical.encode()).hex()


def signature_holds(body: dict[str, Any]) -> bool:
    return crypto.verify_signature(base64.b64decode(body["signing_key"]),
                                   bytes.fromhex(body["head"]),
                                   base64.b64decode(body["signature"]))


def test_the_public_roster_lists_who_can_read_and_its_head_is_signed(
        app: Flask, client: FlaskClient, people: dict[str, dict[str, str]]) -> None:
    response = client.get("/api/v1/roster")
    assert response.status_code == 200 and "Set-Cookie" not in response.headers
    body = response.get_json()
    assert set(body) >= {"sealed", "reviewers", "head", "signature", "signing_key"}
    assert body["sealed"] is False
    assert base64.b64decode(body["signing_key"]) == instance(app).signing_public
    by_name = {r["name"]: r for r in body["reviewers"]}
    assert set(by_name) == {"Ann Reviewer", "Bob Reviewer", "Cat Reviewer"}  # not Ada
    cat = by_name["Cat Reviewer"]
    assert cat["id"] == people["cat"]["id"] and cat["units"] == ["Education"]
    assert cat["independent"] is True and cat["senior"] is False
    assert cat["fingerprint"] == crypto.digest(base64.b64decode(cat["public_key"])).hex()
    assert cat["since"] == utcnow().date().isoformat()
    assert signature_holds(body) and body["head"] == recomputed_head(body)

    # A changed entry changes the head (and it is signed again).
    with db.new_session(app) as s:
        administration.update_reviewer(s, settings_of(app), people["ann"]["id"], ["Health"],
                                       True, False, people["adm"]["id"], keys=instance(app))
    changed = client.get("/api/v1/roster").get_json()
    assert changed["head"] != body["head"] and signature_holds(changed)
    assert changed["head"] == recomputed_head(changed)
    # A tampered row leaves the roster, and the head says so.
    swap_key(app, people["bob"]["id"])
    tampered = client.get("/api/v1/roster").get_json()
    assert "Bob Reviewer" not in {r["name"] for r in tampered["reviewers"]}
    assert tampered["head"] != changed["head"] and signature_holds(tampered)
    # A signature over another head does not hold.
    assert not crypto.verify_signature(base64.b64decode(body["signing_key"]),
                                       bytes.fromhex(tampered["head"]),
                                       base64.b64decode(body["signature"]))


def test_the_roster_page_works_without_javascript(
        client: FlaskClient, people: dict[str, dict[str, str]]) -> None:
    page = client.get("/roster")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "<script" not in html and "Set-Cookie" not in page.headers
    assert "Cat Reviewer" in html and "Ada Admin" not in html
    body = client.get("/api/v1/roster").get_json()
    fingerprint = next(r["fingerprint"] for r in body["reviewers"] if r["name"] == "Cat Reviewer")
    assert fingerprint[:4] + " " + fingerprint[4:8] in html
    assert 'href="/roster"' in client.get("/").get_data(as_text=True)
    form = client.get("/report").get_data(as_text=True)
    assert 'href="/roster"' in form
    assert "Cat Reviewer <span" in form
    assert "Roles: reviewer, independent; Units: Education" in form
    assert "Roles: reviewer; Units: none" in form


def test_intake_reviewers_carry_roles_units_and_fingerprints(
        app: Flask, client: FlaskClient, people: dict[str, dict[str, str]]) -> None:
    reviewers = {r["name"]: r for r in client.get("/api/v1/intake").get_json()["reviewers"]}
    assert set(reviewers) == {"Ann Reviewer", "Bob Reviewer", "Cat Reviewer"}
    with db.new_session(app) as s:
        cat_key = s.get_one(Reviewer, people["cat"]["id"]).public_key
    assert reviewers["Cat Reviewer"] | {"id": ""} == {
        "id": "", "name": "Cat Reviewer", "units": ["Education"], "independent": True,
        "senior": False, "admin": False, "fingerprint": crypto.digest(cat_key).hex()}


# -- sealing ---------------------------------------------------------------------------------


def test_the_roster_seals_at_the_first_concern(
        app: Flask, client: FlaskClient, people: dict[str, dict[str, str]]) -> None:
    with db.new_session(app) as s:
        assert not roster.is_sealed(s)
    submit_concern(client)
    with db.new_session(app) as s:
        assert roster.is_sealed(s)
    assert client.get("/api/v1/roster").get_json()["sealed"] is True
    submit_concern(client)
    assert events(app, roster.SEALED) == [{"by": "first_concern"}]


def test_roster_seal_seals_once(app: Flask, people: dict[str, dict[str, str]]) -> None:
    runner = app.test_cli_runner()
    first = runner.invoke(args=["roster", "seal"])
    assert first.exit_code == 0 and "sealed" in first.output
    again = runner.invoke(args=["roster", "seal"])
    assert again.exit_code == 0 and "already sealed" in again.output
    with db.new_session(app) as s:
        assert roster.is_sealed(s)
    assert events(app, roster.SEALED) == [{"by": adminlog.OPERATOR}]


def test_first_run_setup_seals_the_roster(app: Flask) -> None:
    settings = settings_of(app)
    code = firstrun.issue_code(settings.keys_dir)
    admin = administration.NewAccount(name="Ada Admin", email="ada@example.org",
                                      password="a long first password", admin=True)
    with db.new_session(app) as s:
        done = administration.first_run(s, settings, settings.keys_dir, code, admin, [],
                                        keys=instance(app))
        assert roster.is_sealed(s)
        assert roster.verified(done[0][0], instance(app).signing_public)
    assert events(app, roster.SEALED) == [{"by": adminlog.SETUP}]


def test_roster_verify_passes_on_a_clean_roster(
        app: Flask, people: dict[str, dict[str, str]]) -> None:
    result = verify_command(app)
    assert result.exit_code == 0, result.output
    assert "ok: 3 reviewer(s)" in result.output
