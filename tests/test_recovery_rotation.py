"""Rotating the organisation recovery key: every case re-wrapped, resumable, old key retired."""

from __future__ import annotations

from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.support.factories import build_app, login, make_reviewer, submit_concern
from whistle import crypto, keys
from whistle.cases import keys as casekeys
from whistle.cases import recovery
from whistle.store import db


def opens_with(app: Flask, ref: str, private: bytes) -> bool:
    with db.new_session(app) as s:
        try:
            casekeys.unwrap(s, ref, "recovery", "org", private)
            return True
        except crypto.CryptoError:
            return False


def test_rotation_rewraps_every_case_and_can_be_interrupted(
        app: Flask, client: FlaskClient, recovery_key_file: Path, tmp_path: Path,
        database_url: str, smtp, weak_kdf) -> None:  # type: ignore[no-untyped-def]
    reviewer = make_reviewer(app)
    make_reviewer(app)
    refs = [submit_concern(client, details=f"case {i}")["case_ref"] for i in range(3)]
    old = keys.read_recovery_private(str(recovery_key_file))
    new_file = tmp_path / "new-recovery.txt"
    new = keys.new_recovery_key_file(str(new_file))
    with db.new_session(app) as s:  # an earlier run stopped after one case
        assert recovery.rotate_one(s, refs[0], old, new)
    runner = app.test_cli_runner()
    result = runner.invoke(args=["recovery", "rotate", "--key-file", str(recovery_key_file),
                                 "--new-key-file", str(new_file)])
    assert result.exit_code == 0, result.output
    assert "re-wrapping for the new recovery key" in result.output
    assert "2 case(s) re-wrapped, 1 already done" in result.output
    for ref in refs:
        assert opens_with(app, ref, new) and not opens_with(app, ref, old)
    again = runner.invoke(args=["recovery", "rotate", "--key-file", str(recovery_key_file),
                                "--new-key-file", str(new_file)])
    assert "0 case(s) re-wrapped, 3 already done" in again.output
    # After a restart new concerns are wrapped for the new key; reviewers never noticed.
    restarted = build_app(tmp_path, database_url, smtp, weak_kdf)
    fresh = restarted.test_client()
    ref = submit_concern(fresh)["case_ref"]
    assert opens_with(restarted, ref, new)
    headers = login(fresh, reviewer)
    assert fresh.get(f"/api/v1/cases/{refs[1]}", headers=headers).get_json()["details"] \
        == "case 1"


def test_rotation_with_the_wrong_current_key_changes_nothing(
        app: Flask, client: FlaskClient, tmp_path: Path) -> None:
    make_reviewer(app), make_reviewer(app)
    ref = submit_concern(client)["case_ref"]
    wrong = tmp_path / "wrong.txt"
    wrong.write_text(crypto.generate_keypair().private.hex() + "\n")
    before = (Path(app.config["KEYS_DIR"]) / keys.RECOVERY_PUBLIC).read_text()
    result = app.test_cli_runner().invoke(args=[
        "recovery", "rotate", "--key-file", str(wrong),
        "--new-key-file", str(tmp_path / "next.txt")])
    assert result.exit_code != 0 and "does not open" in result.output
    assert (Path(app.config["KEYS_DIR"]) / keys.RECOVERY_PUBLIC).read_text() == before
    with pytest.raises(crypto.CryptoError), db.new_session(app) as s:
        casekeys.unwrap(s, ref, "recovery", "org",
                        keys.read_recovery_private(str(tmp_path / "next.txt")))
