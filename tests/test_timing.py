"""Issue 20, items 9 and 10: timing says nothing, and the database files are owner-only.

Real app, real SQLite (or PostgreSQL) database, real SMTP. Mail is delivered with explicit
``now=`` times around the interval boundary the outbox row was given.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import stat
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import inspect, select, text
from sqlalchemy.exc import OperationalError

from tests.support import services
from tests.support.factories import build_app, login, make_reviewer, submit_concern
from whistle import create_app, keys, notify
from whistle.config import ConfigError
from whistle.config import build as build_settings
from whistle.store import db
from whistle.store.models import OutboxMail, utcnow

HOUR = 60


@pytest.fixture
def app_config() -> dict[str, Any]:
    return {"NOTIFY_INTERVAL_MINUTES": HOUR}


def midnight(value: dt.datetime) -> bool:
    return value.time() == dt.time(0)


def deliver(app: Flask, now: dt.datetime) -> notify.DeliveryReport:
    with db.new_session(app) as s:
        return notify.deliver_pending(s, app, now=now)


# -- mail in batches at the interval's boundaries ------------------------------------------


def test_a_reporters_mail_goes_out_at_the_next_boundary_and_not_before(
        app: Flask, client: FlaskClient, smtp: services.SmtpServer) -> None:
    make_reviewer(app), make_reviewer(app)
    before = utcnow()
    submit_concern(client)
    with db.new_session(app) as s:
        rows = list(s.scalars(select(OutboxMail)))
    assert len(rows) == 2
    due = {r.next_attempt for r in rows}
    assert len(due) == 1
    boundary = due.pop()
    # The next full hour after the submission: nothing finer is stored.
    assert boundary == notify.next_boundary(before, HOUR) or boundary == notify.next_boundary(
        utcnow(), HOUR)
    assert boundary > before and boundary.minute == boundary.second == boundary.microsecond == 0
    assert all(midnight(r.created) for r in rows)

    assert deliver(app, boundary - dt.timedelta(seconds=1)).sent == 0
    assert deliver(app, before).sent == 0
    assert smtp.messages == []
    assert deliver(app, boundary).sent == 2
    assert len(smtp.wait_for(2)) == 2

    with db.new_session(app) as s:
        kept = list(s.scalars(select(OutboxMail)))
    for row in kept:
        assert row.sent is not None and midnight(row.sent)
        assert midnight(row.next_attempt) and midnight(row.created)
        assert re.fullmatch(r"[0-9a-f]{32}", row.id)


def test_the_outbox_command_sends_nothing_before_the_boundary(
        app: Flask, client: FlaskClient, smtp: services.SmtpServer) -> None:
    make_reviewer(app), make_reviewer(app)
    submit_concern(client)
    result = app.test_cli_runner().invoke(args=["outbox"])
    # Unless the test started in the last instants before a boundary, nothing is due yet.
    with db.new_session(app) as s:
        boundary = s.scalars(select(OutboxMail.next_attempt)).first()
    assert boundary is not None
    first = result.output
    if utcnow() < boundary:
        assert "sent 0" in first, first
    at = boundary.isoformat(sep=" ")
    result = app.test_cli_runner().invoke(args=["outbox", "--now", at])
    # Both mails go at the boundary: now, or already by the first run if a boundary passed
    # between submitting and that run (an hour's last instants).
    assert result.exit_code == 0, result.output
    assert "sent 2" in result.output or ("sent 2" in first and "sent 0" in result.output), (
        first, result.output)
    assert len(smtp.wait_for(2)) == 2


def test_boundaries_are_counted_from_midnight() -> None:
    day = dt.datetime(2026, 3, 4)
    assert notify.next_boundary(day + dt.timedelta(hours=10, minutes=7), 15) == \
        day + dt.timedelta(hours=10, minutes=15)
    assert notify.next_boundary(day + dt.timedelta(hours=10, minutes=15), 15) == \
        day + dt.timedelta(hours=10, minutes=30)
    assert notify.next_boundary(day + dt.timedelta(hours=23, minutes=59, seconds=59), 60) == \
        day + dt.timedelta(days=1)
    assert notify.next_boundary(day + dt.timedelta(hours=5), 1440) == day + dt.timedelta(days=1)
    assert notify.next_boundary(day + dt.timedelta(hours=5), 0) == day


def test_the_interval_must_divide_a_day() -> None:
    assert build_settings().notify_interval_minutes == 60
    assert build_settings({"NOTIFY_INTERVAL_MINUTES": "30"}).notify_interval_minutes == 30
    for wrong in (7, -1, 1441, "soon"):
        with pytest.raises(ConfigError, match="NOTIFY_INTERVAL_MINUTES"):
            build_settings({"NOTIFY_INTERVAL_MINUTES": wrong})


# -- no ordering of reporter-side rows within a day ----------------------------------------


REPORTER_TABLES = ("messages", "audit_events", "wrapped_keys", "outbox", "attachments",
                   "attachment_chunks")


def test_reporter_rows_carry_no_global_sequence(app: Flask, client: FlaskClient) -> None:
    """Two reporter messages on different cases, then a reviewer's message: no global,
    monotonic id (nor, on SQLite, a hidden rowid) puts the reporters' rows in order between
    the reviewer's timestamped event."""
    ann = make_reviewer(app)
    make_reviewer(app)
    first, second = submit_concern(client), submit_concern(client)
    for receipt in (first, second):
        assert client.post("/api/v1/status/messages", json={
            "token": receipt["token"], "body": "More from the reporter."}).status_code == 201
    bearer = login(app.test_client(), ann)
    for receipt in (first, second):
        app.test_client().post(f"/api/v1/cases/{receipt['case_ref']}/messages",
                               headers=bearer, json={"body": "Thank you."})

    engine = db.engine_for(app)
    inspector = inspect(engine)
    for table in REPORTER_TABLES:
        key = inspector.get_pk_constraint(table)["constrained_columns"]
        columns = {c["name"]: c for c in inspector.get_columns(table)}
        # Never one integer column as the whole key (an autoincrement sequence).
        assert not (len(key) == 1 and "INT" in str(columns[key[0]]["type"]).upper()), table
        assert "id" not in columns or "CHAR" in str(columns["id"]["type"]).upper(), table
    assert "id" not in {c["name"] for c in inspector.get_columns("audit_events")}
    assert "id" not in {c["name"] for c in inspector.get_columns("wrapped_keys")}

    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            # Tables where reporters' rows sit beside reviewers' or the system's: no rowid.
            for table in ("messages", "audit_events", "wrapped_keys", "outbox",
                          "assignments"):
                with pytest.raises(OperationalError, match="rowid"):
                    conn.execute(text(f'SELECT rowid FROM "{table}"'))  # noqa: S608
        messages = [r.id for r in conn.execute(text("SELECT id FROM messages"))]
        outbox = [r.id for r in conn.execute(text("SELECT id FROM outbox"))]
        audit = list(conn.execute(text("SELECT concern_id, seq, actor, at FROM audit_events")))
    assert len(messages) >= 4 and all(re.fullmatch(r"[0-9a-f]{32}", m) for m in messages)
    assert outbox and all(re.fullmatch(r"[0-9a-f]{32}", m) for m in outbox)
    # Per-case sequence numbers only: each case's own events count 1, 2, 3 ...
    cases: dict[str, list[int]] = {}
    for row in audit:
        cases.setdefault(row.concern_id, []).append(row.seq)
    for seqs in cases.values():
        assert sorted(seqs) == list(range(1, len(seqs) + 1))
    reporter_at = [row.at for row in audit if row.actor == "reporter"]
    assert reporter_at and all(
        midnight(a if isinstance(a, dt.datetime) else dt.datetime.fromisoformat(a))
        for a in reporter_at)


# -- init leaves the database files owner-only ---------------------------------------------


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.parametrize("older", [False, True], ids=["fresh", "made-readable-before"])
def test_init_makes_the_database_files_and_their_directory_owner_only(
        tmp_path: Path, smtp: services.SmtpServer, weak_kdf: dict[str, Any],
        database_url: str, older: bool) -> None:
    if not database_url.startswith("sqlite"):
        pytest.skip("SQLite files only")
    folder = tmp_path / "data"
    database = folder / "whistle.db"
    if older:  # an instance made before issue 20: world-readable files
        folder.mkdir(mode=0o755)
        folder.chmod(0o755)
        for name in ("whistle.db", "whistle.db-wal", "whistle.db-shm"):
            (folder / name).touch()
            (folder / name).chmod(0o644)
        (folder / "whistle.db-wal").unlink()
        (folder / "whistle.db-shm").unlink()
    keys_dir = tmp_path / "keys"
    keys.create_missing(str(keys_dir), str(tmp_path / "recovery-private.txt"))
    old_umask = os.umask(0o022)  # what a shell usually has
    try:
        app = create_app(weak_kdf | {
            "TESTING": True, "DATABASE_URL": f"sqlite:///{database}", "KEYS_DIR": str(keys_dir),
            "MAIL_SERVER": smtp.host, "MAIL_PORT": smtp.port})
        result = app.test_cli_runner().invoke(args=["init"])
        assert result.exit_code == 0, result.output
        engine = db.engine_for(app)
        with engine.connect() as conn:  # WAL: SQLite makes -wal and -shm while it is open
            conn.execute(text("CREATE TABLE IF NOT EXISTS t_probe (x)"))
            conn.execute(text("INSERT INTO t_probe VALUES (1)"))
            conn.commit()
            assert (folder / "whistle.db-wal").exists() and (folder / "whistle.db-shm").exists()
            for name in ("whistle.db", "whistle.db-wal", "whistle.db-shm"):
                assert _mode(folder / name) == 0o600, name
            assert _mode(folder) == 0o700
        assert os.umask(0o022) == 0o022  # no process-wide umask left behind
        engine.dispose()
    finally:
        os.umask(old_umask)


def test_the_first_start_creates_the_database_owner_only(
        tmp_path: Path, smtp: services.SmtpServer, weak_kdf: dict[str, Any],
        database_url: str) -> None:
    if not database_url.startswith("sqlite"):
        pytest.skip("SQLite files only")
    folder = tmp_path / "fresh"
    old_umask = os.umask(0o022)
    try:
        app = build_app(tmp_path, f"sqlite:///{folder / 'whistle.db'}", smtp, weak_kdf)
        with db.engine_for(app).connect():
            assert _mode(folder) == 0o700
            for name in ("whistle.db", "whistle.db-wal", "whistle.db-shm"):
                assert _mode(folder / name) == 0o600, name
        db.engine_for(app).dispose()
    finally:
        os.umask(old_umask)


# -- the migration keeps every row and drops the orderings -----------------------------------


def test_the_migration_keeps_every_row_and_cuts_sent_mail_to_the_day(
        app: Flask, client: FlaskClient, smtp: services.SmtpServer) -> None:
    from alembic import command

    from whistle.store import migrate

    make_reviewer(app), make_reviewer(app)
    receipt = submit_concern(client)
    client.post("/api/v1/status/messages", json={"token": receipt["token"], "body": "More."})
    engine = db.engine_for(app)
    cfg = migrate.alembic_config(engine.url.render_as_string(hide_password=False))

    def count(conn: Any) -> dict[str, int]:
        return {t: conn.execute(text(f'SELECT count(*) FROM "{t}"')).scalar_one()  # noqa: S608
                for t in ("messages", "audit_events", "wrapped_keys", "outbox",
                          "assignments")}

    with engine.begin() as conn:
        before = count(conn)
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0011")
    with engine.begin() as conn:
        assert "id" in {c["name"] for c in inspect(conn).get_columns("audit_events")}
        assert count(conn) == before
        # A mail sent under the old code kept its exact time.
        conn.execute(text("UPDATE outbox SET sent = :t, next_attempt = :t"),
                     {"t": dt.datetime(2026, 1, 2, 13, 47, 5)})
    migrate.upgrade(engine)
    with engine.connect() as conn:
        assert count(conn) == before
        assert "id" not in {c["name"] for c in inspect(conn).get_columns("audit_events")}
        rows = list(conn.execute(text("SELECT id, sent, next_attempt FROM outbox")))
    for row in rows:
        sent = row.sent if isinstance(row.sent, dt.datetime) else \
            dt.datetime.fromisoformat(row.sent)
        assert sent == dt.datetime(2026, 1, 2) and re.fullmatch(r"[0-9a-f]{32}", row.id)
    result = app.test_cli_runner().invoke(args=["audit", "verify"])
    assert result.exit_code == 0, result.output


def test_one_time_link_mail_goes_at_once_and_keeps_the_day_only(
        app: Flask, smtp: services.SmtpServer) -> None:
    """Enrolment and reset links follow an approval the administration log times anyway,
    and a person waits for them: they are not batched."""
    secret = app.extensions["whistle_keys"].secret_key
    with db.new_session(app) as s:
        notify.queue_link(s, secret, "new@example.org", "enrol", "https://w.example/enrol?c=1")
        s.commit()
    assert deliver(app, utcnow()).sent == 1
    assert "https://w.example/enrol?c=1" in smtp.wait_for(1)[0].get_content()
    with db.new_session(app) as s:
        row = s.scalars(select(OutboxMail)).one()
    assert row.sent is not None and midnight(row.sent) and midnight(row.next_attempt)
    assert midnight(row.created) and row.secret_ct is None
