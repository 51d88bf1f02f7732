"""A reviewer who lost their password: reset, then their cases come back by re-share or re-wrap."""

from __future__ import annotations

from pathlib import Path

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from tests.support.factories import login, make_reviewer, share_case, submit_concern
from tests.support.services import SmtpServer
from tests.support.webflow import enrol_code
from whistle.store import db
from whistle.store.models import WrappedKey

NEW = "a brand new long password"
MINE = "my own chosen long password"


def reset(app: Flask, reviewer: dict[str, str], smtp: SmtpServer) -> dict[str, str]:
    """A reset once the roster is sealed (the first concern sealed it): proposed on the
    command line, approved by an administrator, and the reviewer chooses the new password
    from the mailed link. Returns the reviewer with that password."""
    proposed = app.test_cli_runner().invoke(args=["reviewer", "reset-password", reviewer["id"]])
    assert proposed.exit_code == 0, proposed.output
    client = app.test_client()
    second = make_reviewer(app, admin=True, reviews=False)
    change_id = proposed.output.strip().splitlines()[-1]
    approved = client.post(f"/api/v1/admin/changes/{change_id}/approve",
                           headers=login(client, second))
    assert approved.status_code == 200, approved.get_data(as_text=True)
    code = enrol_code(smtp, app, reviewer["email"])
    chosen = client.post("/api/v1/auth/enrol", json={"code": code, "password": MINE})
    assert chosen.status_code == 200, chosen.get_data(as_text=True)
    return reviewer | {"password": MINE}


def reviewer_keys(app: Flask, reviewer_id: str) -> int:
    """The reviewer's wrapped key rows: one per case (its two keys are wrapped together)."""
    with db.new_session(app) as s:
        return len(list(s.scalars(select(WrappedKey).where(
            WrappedKey.recipient_kind == "reviewer", WrappedKey.recipient_id == reviewer_id))))


def test_reset_gives_a_new_key_and_removes_the_useless_old_copies(
        app: Flask, client: FlaskClient, smtp: SmtpServer) -> None:
    ann, bob = make_reviewer(app), make_reviewer(app)
    headers = login(client, ann)
    receipt = submit_concern(client)
    assert reviewer_keys(app, ann["id"]) == 1
    old_password = ann["password"]
    ann = reset(app, ann, smtp)
    assert reviewer_keys(app, ann["id"]) == 0
    assert client.get("/api/v1/cases", headers=headers).status_code == 401  # sessions ended
    old = client.post("/api/v1/auth/login", json={"email": ann["email"],
                                                  "password": old_password})
    assert old.status_code == 401
    fresh = login(client, ann)
    listed = client.get("/api/v1/cases", headers=fresh).get_json()
    assert [c["case_ref"] for c in listed["cases"]] == [receipt["case_ref"]]
    pending = client.get(f"/api/v1/cases/{receipt['case_ref']}", headers=fresh)
    assert pending.status_code == 409 and pending.get_json()["error"] == "keys_pending"
    # The co-reviewer still reads it, and the case is intact.
    assert client.get(f"/api/v1/cases/{receipt['case_ref']}",
                      headers=login(client, bob)).status_code == 200


def test_a_co_reviewer_sharing_again_gives_the_keys_back(app: Flask, client: FlaskClient,
                                                         smtp: SmtpServer) -> None:
    ann, bob = make_reviewer(app), make_reviewer(app)
    receipt = submit_concern(client, details="still readable")
    ref = receipt["case_ref"]
    # A third reader, shared the two-person way (issue 19), to approve the re-share below.
    carol = make_reviewer(app)
    assert share_case(client, ref, carol["id"], login(client, bob),
                      login(client, ann)).status_code == 201
    ann = reset(app, ann, smtp)
    proposed = client.post(f"/api/v1/cases/{ref}/reviewers", headers=login(client, bob),
                           json={"reviewer_id": ann["id"]})
    assert proposed.status_code == 202, proposed.get_data(as_text=True)
    own = client.post(f"/api/v1/cases/{ref}/reviewers/{ann['id']}/approve",
                      headers=login(client, ann))  # the reviewer concerned cannot approve
    assert own.status_code == 409 and own.get_json()["error"] == "second_person_required"
    shared = client.post(f"/api/v1/cases/{ref}/reviewers/{ann['id']}/approve",
                         headers=login(client, carol))
    assert shared.status_code == 201
    case = client.get(f"/api/v1/cases/{receipt['case_ref']}", headers=login(client, ann))
    assert case.status_code == 200 and case.get_json()["details"] == "still readable"
    assert "rewrapped" in [e["type"] for e in case.get_json()["events"]]
    again = client.post(f"/api/v1/cases/{receipt['case_ref']}/reviewers",
                        headers=login(client, bob), json={"reviewer_id": ann["id"]})
    assert again.status_code == 409 and again.get_json()["error"] == "already_assigned"


def test_recovery_rewrap_is_resumable_and_shows_progress(app: Flask, client: FlaskClient,
                                                         recovery_key_file: Path,
                                                         smtp: SmtpServer) -> None:
    ann, _bob = make_reviewer(app), make_reviewer(app)
    refs = [submit_concern(client, details=f"case {i}")["case_ref"] for i in range(3)]
    ann = reset(app, ann, smtp)
    runner = app.test_cli_runner()
    # An interrupted run: one case re-wrapped by hand through the same step the command uses.
    from whistle import keys
    from whistle.cases import recovery
    from whistle.store.models import utcnow

    with db.new_session(app) as s:
        assert recovery.rewrap(s, refs[0], ann["id"],
                               keys.read_recovery_private(str(recovery_key_file)), utcnow(),
                               instance=app.extensions["whistle_keys"])
    result = runner.invoke(args=["recovery", "rewrap", "--reviewer", ann["id"],
                                 "--key-file", str(recovery_key_file)])
    assert result.exit_code == 0, result.output
    assert "re-wrapping cases" in result.output
    assert "2 more case(s)" in result.output
    assert reviewer_keys(app, ann["id"]) == 3
    rerun = runner.invoke(args=["recovery", "rewrap", "--reviewer", ann["id"],
                                "--key-file", str(recovery_key_file)])
    assert "0 more case(s)" in rerun.output
    headers = login(client, ann)
    for i, ref in enumerate(refs):
        assert client.get(f"/api/v1/cases/{ref}", headers=headers).get_json()["details"] \
            == f"case {i}"
    verify = runner.invoke(args=["audit", "verify"])
    assert verify.exit_code == 0


def test_reset_refuses_weak_passwords_and_unknown_reviewers(app: Flask) -> None:
    ann = make_reviewer(app)
    runner = app.test_cli_runner()
    weak = runner.invoke(args=["reviewer", "reset-password", ann["id"], "--password-stdin"],
                         input="short\n")
    assert weak.exit_code != 0 and "12 characters" in weak.output
    unknown = runner.invoke(args=["reviewer", "reset-password", "0" * 32, "--password-stdin"],
                            input=NEW + "\n")
    assert unknown.exit_code != 0 and "no reviewer" in unknown.output
