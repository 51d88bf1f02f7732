"""Issue 3, recovery: the offline recovery key re-shares cases whose reviewers are gone,
through the real CLI, and never with a reviewer the reporter excluded.
"""

from __future__ import annotations

from pathlib import Path

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select, update

from tests.support.factories import login, make_reviewer, share_case, submit_concern
from tests.support.webflow import marker
from whistle import crypto
from whistle.store import db
from whistle.store.models import Assignment, AuditEvent, Reviewer, WrappedKey


def disable(app: Flask, reviewer_id: str) -> None:
    assert app.test_cli_runner().invoke(args=["reviewer", "disable", reviewer_id]).exit_code == 0


def test_recovery_reshare_gives_an_orphaned_case_to_a_new_reviewer(
        app: Flask, client: FlaskClient, recovery_key_file: Path) -> None:
    details = marker("DETAILS")
    ann, bob = make_reviewer(app), make_reviewer(app)
    receipt = submit_concern(client, details=details)
    ref = receipt["case_ref"]
    client.post("/api/v1/status/messages", json={"token": receipt["token"], "body": "hello"})
    disable(app, ann["id"])
    disable(app, bob["id"])  # every reviewer of the case is gone
    carol = make_reviewer(app, "Carol Successor")
    carol_api = login(client, carol)
    assert client.get(f"/api/v1/cases/{ref}", headers=carol_api).status_code == 404

    result = app.test_cli_runner().invoke(args=[
        "recovery", "reshare", ref, "--to", carol["id"], "--key-file", str(recovery_key_file)])
    assert result.exit_code == 0, result.output
    assert f"case {ref} shared with Carol Successor" in result.output

    case = client.get(f"/api/v1/cases/{ref}", headers=carol_api).get_json()
    assert case["details"] == details and case["messages"][0]["body"] == "hello"
    shared = [e for e in case["events"] if e["type"] == "shared"]
    assert shared == [{"at": shared[0]["at"], "type": "shared", "actor": "recovery_key",
                       "data": {"reviewer": carol["id"]}}]
    assert app.test_cli_runner().invoke(args=["audit", "verify"]).exit_code == 0


def test_recovery_reshare_refuses_an_excluded_reviewer(
        app: Flask, client: FlaskClient, recovery_key_file: Path) -> None:
    make_reviewer(app), make_reviewer(app)
    xavier = make_reviewer(app, "Xavier Accused")
    ref = submit_concern(client, exclude_reviewers=[xavier["id"]])["case_ref"]
    result = app.test_cli_runner().invoke(args=[
        "recovery", "reshare", ref, "--to", xavier["id"], "--key-file", str(recovery_key_file)])
    assert result.exit_code != 0 and "excluded" in result.output
    with db.new_session(app) as s:
        assert s.get(Assignment, (ref, xavier["id"])) is None
        assert not list(s.scalars(select(WrappedKey).where(
            WrappedKey.recipient_id == xavier["id"])))
        assert "shared" not in set(s.scalars(select(AuditEvent.type).where(
            AuditEvent.concern_id == ref)))
    assert client.get(f"/api/v1/cases/{ref}",
                      headers=login(client, xavier)).status_code == 404


def test_recovery_reshare_refuses_a_wrong_key_an_unknown_case_and_a_disabled_reviewer(
        app: Flask, client: FlaskClient, recovery_key_file: Path, tmp_path: Path) -> None:
    make_reviewer(app), make_reviewer(app)
    ref = submit_concern(client)["case_ref"]
    carol = make_reviewer(app)  # enrolled after the case arrived: not one of its reviewers
    runner = app.test_cli_runner()
    wrong = tmp_path / "other-recovery-key.txt"
    wrong.write_text("# not ours\n" + crypto.generate_keypair().private.hex() + "\n")
    result = runner.invoke(args=["recovery", "reshare", ref, "--to", carol["id"],
                                 "--key-file", str(wrong)])
    assert result.exit_code != 0 and "does not open case" in result.output
    garbage = tmp_path / "garbage.txt"
    garbage.write_text("hello\n")
    result = runner.invoke(args=["recovery", "reshare", ref, "--to", carol["id"],
                                 "--key-file", str(garbage)])
    assert result.exit_code != 0 and "cannot read the recovery key" in result.output
    result = runner.invoke(args=["recovery", "reshare", "WH-NOPE", "--to", carol["id"],
                                 "--key-file", str(recovery_key_file)])
    assert result.exit_code != 0 and "no case WH-NOPE" in result.output
    disable(app, carol["id"])
    result = runner.invoke(args=["recovery", "reshare", ref, "--to", carol["id"],
                                 "--key-file", str(recovery_key_file)])
    assert result.exit_code != 0 and "no such active reviewer" in result.output
    with db.new_session(app) as s:
        assert s.get(Assignment, (ref, carol["id"])) is None


def test_recovery_reshare_all_moves_a_departed_reviewers_cases_skipping_exclusions(
        app: Flask, client: FlaskClient, recovery_key_file: Path) -> None:
    ann, bob = make_reviewer(app, "Ann Leaving"), make_reviewer(app, "Bob Staying")
    carol = make_reviewer(app, "Carol Successor")
    with db.new_session(app) as s:  # Carol is away while these arrive: Ann and Bob get them
        s.execute(update(Reviewer).where(Reviewer.id == carol["id"]).values(active=False))
        s.commit()
    plain, already = submit_concern(client)["case_ref"], submit_concern(client)["case_ref"]
    excluded = submit_concern(client, exclude_reviewers=[carol["id"]])["case_ref"]
    with db.new_session(app) as s:
        s.execute(update(Reviewer).where(Reviewer.id == carol["id"]).values(active=True))
        s.commit()
    shared = share_case(client, already, carol["id"], login(client, ann), login(client, bob))
    assert shared.status_code == 201
    disable(app, ann["id"])

    result = app.test_cli_runner().invoke(args=[
        "recovery", "reshare-all", "--from", ann["id"], "--to", carol["id"],
        "--key-file", str(recovery_key_file)])
    assert result.exit_code == 0, result.output
    assert "re-sharing cases" in result.output  # the progress bar's label
    assert "shared 1 case(s) with Carol Successor; 1 already theirs" in result.output
    assert f"NOT shared {excluded}: the reporter excluded this reviewer" in result.output
    carol_api = login(client, carol)
    assert client.get(f"/api/v1/cases/{plain}", headers=carol_api).status_code == 200
    assert client.get(f"/api/v1/cases/{already}", headers=carol_api).status_code == 200
    assert client.get(f"/api/v1/cases/{excluded}", headers=carol_api).status_code == 404
    assert client.get("/api/v1/cases", headers=carol_api).get_json()["total"] == 2


def test_recovery_reshare_all_checks_its_reviewers(app: Flask, recovery_key_file: Path) -> None:
    ann = make_reviewer(app)
    runner = app.test_cli_runner()
    result = runner.invoke(args=["recovery", "reshare-all", "--from", "f" * 32, "--to", ann["id"],
                                 "--key-file", str(recovery_key_file)])
    assert result.exit_code != 0 and "no reviewer" in result.output
    result = runner.invoke(args=["recovery", "reshare-all", "--from", ann["id"], "--to", "f" * 32,
                                 "--key-file", str(recovery_key_file)])
    assert result.exit_code != 0 and "no active reviewer" in result.output
