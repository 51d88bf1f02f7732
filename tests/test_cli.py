"""Operator commands through the real ``flask`` entry point and the CLI runner."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

from flask import Flask
from sqlalchemy import select

from tests.support.factories import PASSWORD, make_reviewer, submit_concern
from whistle.store import db
from whistle.store.models import Reviewer

ROOT = Path(__file__).resolve().parent.parent


def flask_cli(tmp_path: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WHISTLE_")} | {
        "WHISTLE_KEYS_DIR": str(tmp_path / "keys"),
        "WHISTLE_DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}",
        "WHISTLE_ARGON2_MEMORY_KIB": "1024", "WHISTLE_ARGON2_ITERATIONS": "1",
    }
    flask = str(Path(sys.executable).parent / "flask")
    return subprocess.run([flask, "--app", str(ROOT / "app.py"), *args], input=stdin,
                          capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120)


def test_init_creates_keys_once_and_is_idempotent(tmp_path: Path) -> None:
    first = flask_cli(tmp_path, "init")
    assert first.returncode == 0, first.stderr
    keys = tmp_path / "keys"
    for name in ("secret_key", "token_pepper", "reporter_pepper", "index_pepper"):
        assert stat.S_IMODE((keys / name).stat().st_mode) == 0o600
    [recovery] = tmp_path.glob("whistle-recovery-private-key-*.txt")
    assert str(recovery) in first.stdout and "OFFLINE" in first.stdout
    assert "reviewer add" in first.stdout and "setup code" in first.stdout
    pepper = (keys / "token_pepper").read_text()
    public = (keys / "recovery.pub").read_text()
    private_hex = recovery.read_text().splitlines()[-1]
    assert private_hex not in "".join(p.read_text() for p in keys.iterdir() if p.is_file())
    second = flask_cli(tmp_path, "init")
    assert second.returncode == 0, second.stderr
    assert (keys / "token_pepper").read_text() == pepper
    assert (keys / "recovery.pub").read_text() == public
    assert "PRIVATE half" not in second.stdout


def test_reviewer_add_prints_the_id_last_and_list_shows_no_secrets(tmp_path: Path) -> None:
    assert flask_cli(tmp_path, "init").returncode == 0
    added = flask_cli(tmp_path, "reviewer", "add", "--name", "Ada", "--email", "ada@example.org",
                      "--unit", "Education", "--unit", "Health", "--independent",
                      "--password-stdin", stdin=PASSWORD + "\n")
    assert added.returncode == 0, added.stderr
    rid = added.stdout.strip().splitlines()[-1]
    engine = db.make_engine(f"sqlite:///{tmp_path / 'cli.db'}")
    try:  # the id printed is the id of the reviewer just stored, with what was given
        with engine.connect() as conn:
            stored = conn.execute(select(Reviewer.name, Reviewer.email, Reviewer.is_independent)
                                  .where(Reviewer.id == rid)).one()
    finally:
        engine.dispose()
    assert tuple(stored) == ("Ada", "ada@example.org", True)
    listed = flask_cli(tmp_path, "reviewer", "list")
    assert rid in listed.stdout and "Education,Health" in listed.stdout
    assert "independent" in listed.stdout
    assert PASSWORD not in listed.stdout
    duplicate = flask_cli(tmp_path, "reviewer", "add", "--name", "Ada", "--email",
                          "ADA@example.org", "--password-stdin", stdin=PASSWORD + "\n")
    assert duplicate.returncode != 0 and "already exists" in duplicate.stderr


def test_weak_passwords_are_refused(tmp_path: Path) -> None:
    assert flask_cli(tmp_path, "init").returncode == 0
    weak = flask_cli(tmp_path, "reviewer", "add", "--name", "B", "--email", "b@example.org",
                     "--password-stdin", stdin="short\n")
    assert weak.returncode != 0 and "12 characters" in weak.stderr


def test_disabling_reports_cases_left_short_and_loses_nothing(app: Flask, client) -> None:  # type: ignore[no-untyped-def]
    a, b = make_reviewer(app), make_reviewer(app)
    receipt = submit_concern(client)
    result = app.test_cli_runner().invoke(args=["reviewer", "disable", a["id"]])
    assert result.exit_code == 0
    assert receipt["case_ref"] in result.output and "1 active reviewer" in result.output
    with db.new_session(app) as s:
        disabled = s.scalars(select(Reviewer).where(Reviewer.id == a["id"])).one()
        assert disabled.active is False
    login = client.post("/api/v1/auth/login", json={"email": a["email"], "password": PASSWORD})
    assert login.status_code == 401
    still = client.post("/api/v1/auth/login", json={"email": b["email"], "password": PASSWORD})
    headers = {"Authorization": "Bearer " + still.get_json()["access_token"]}
    assert client.get(f"/api/v1/cases/{receipt['case_ref']}", headers=headers).status_code == 200
    # New concerns skip the disabled reviewer.
    assert submit_concern(client)["reviewer_count"] == 1


def test_audit_verify_passes_on_an_untouched_trail(app: Flask, client) -> None:  # type: ignore[no-untyped-def]
    make_reviewer(app), make_reviewer(app)
    submit_concern(client)
    result = app.test_cli_runner().invoke(args=["audit", "verify"])
    assert result.exit_code == 0 and "ok: 3 events verified" in result.output


def test_audit_verify_streams_rows_in_batches_instead_of_loading_every_event(
        app: Flask, client, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """At a million cases (7.9 million events) loading every event as an ORM object took
    14 GB of memory; verify reads plain rows a batch at a time and keeps none of them."""
    from sqlalchemy import event

    from whistle.cases import audit
    from whistle.store.models import AuditEvent

    make_reviewer(app), make_reviewer(app)
    for _ in range(4):
        submit_concern(client)
    monkeypatch.setattr(audit, "_VERIFY_BATCH", 3)  # several batches, with 12 events
    built: list[object] = []

    def loaded(target: object, _context: object) -> None:
        built.append(target)

    event.listen(AuditEvent, "load", loaded)
    try:
        with db.new_session(app) as s:
            assert audit.verify(s) == (12, None)
            assert len(audit.trail(s, s.scalars(select(AuditEvent.concern_id)).first())) == 3
    finally:
        event.remove(AuditEvent, "load", loaded)
    assert len(built) == 3  # the trail's three, and not one of verify's twelve
