"""Faults: kill -9 mid-submission, SMTP down or hanging, the database locked or gone.

The crash test drives the real server (gunicorn, see tests/support/server.py)
and kills its whole process group with SIGKILL at random moments while
clients submit concerns: at least 50 times when CI=true, 8 times otherwise
(WHISTLE_KILLS overrides). After every restart each concern that got a 201
must exist exactly once and decrypt for a reviewer, and SQLite must pass
``PRAGMA integrity_check``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import http.client
import os
import random
import re
import secrets
import socket
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from tests.conftest import IN_CI
from tests.support import server, services
from tests.support.factories import PASSWORD, build_app, make_reviewer, submit_concern
from tests.support.probes import csrf
from whistle import notify
from whistle.store import db
from whistle.store.models import Concern, OutboxMail, utcnow

KILLS = int(os.environ.get("WHISTLE_KILLS", "50" if IN_CI else "8"))


# -- kill -9 ------------------------------------------------------------------------------


class Submitter(threading.Thread):
    """Submits concerns with unique markers until told to stop or the server dies."""

    def __init__(self, srv: server.Server, stop: threading.Event) -> None:
        super().__init__(daemon=True)
        self.srv, self.stop = srv, stop
        self.acked: list[tuple[str, str]] = []  # (case_ref, marker) for every 201
        self.sent = 0
        self.error: str | None = None  # checked by the test: a thread cannot fail it

    def run(self) -> None:
        while not self.stop.is_set():
            marker = "KILLTEST-" + secrets.token_hex(10)
            self.sent += 1
            try:
                status, body = self.srv.json("POST", "/api/v1/concerns", {
                    "category": "conduct", "details": f"Concern {marker}",
                    "identity": {"name": marker}}, timeout=15)
            except (OSError, ValueError, http.client.HTTPException):
                return  # the server died under us: this one was never acknowledged
            if status == 201:
                self.acked.append((body["case_ref"], marker))
            elif status != 503:
                self.error = f"unexpected {status}: {body}"
                return


class Reviewer:
    def __init__(self, srv: server.Server, email: str) -> None:
        self.srv, self.email = srv, email
        self.headers: dict[str, str] = {}

    def sign_in(self) -> None:
        status, body = self.srv.json("POST", "/api/v1/auth/login",
                                     {"email": self.email, "password": PASSWORD})
        assert status == 200, body
        self.headers = {"Authorization": "Bearer " + body["access_token"]}

    def details(self, case_ref: str) -> str:
        status, body = self.srv.json("GET", f"/api/v1/cases/{case_ref}", None, self.headers)
        assert status == 200, (case_ref, status, body)
        return str(body["details"])

    def all_cases(self) -> list[str]:
        refs: list[str] = []
        page = 1
        while True:
            status, body = self.srv.json("GET", f"/api/v1/cases?page={page}&per_page=100",
                                         None, self.headers)
            assert status == 200, body
            refs += [c["case_ref"] for c in body["cases"]]
            if page * 100 >= body["total"]:
                return refs
            page += 1


def stored_case_refs(instance: server.Instance) -> list[str]:
    engine = db.make_engine(instance.database_url)
    try:
        with engine.connect() as conn:
            return list(conn.execute(select(Concern.id)).scalars())
    finally:
        engine.dispose()


def integrity_ok(instance: server.Instance) -> None:
    url = instance.database_url
    if not url.startswith("sqlite:///"):
        return  # PostgreSQL keeps its own WAL; the row checks above cover it
    conn = sqlite3.connect(url[len("sqlite:///"):])
    try:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
    finally:
        conn.close()


def test_kill_9_at_random_moments_loses_and_duplicates_no_acknowledged_concern(
        tmp_path: Path, database_url: str) -> None:
    seed = int(os.environ.get("WHISTLE_KILL_SEED", secrets.randbits(32)))
    rng = random.Random(seed)  # noqa: S311 - timing only
    # A burst far beyond real traffic, on purpose: the cost limit would refuse it.
    instance = server.new_instance(tmp_path / "instance", database_url,
                                   {"WHISTLE_SUBMISSION_LIMIT": "1000000 per minute"})
    instance.add_reviewer("Ann Reviewer", "ann@example.org", PASSWORD)
    instance.add_reviewer("Bob Reviewer", "bob@example.org", PASSWORD)
    acked: dict[str, str] = {}
    sent = 0
    with server.gunicorn_server(instance, workers=2) as srv:
        ann = Reviewer(srv, "ann@example.org")
        for kill in range(KILLS):
            stop = threading.Event()
            clients = [Submitter(srv, stop) for _ in range(3)]
            for c in clients:
                c.start()
            # Killed only once a submission of this round was acknowledged (a mechanism, not
            # a hope about how many fit in the pause): each round means something.
            while not any(c.acked for c in clients) and all(c.is_alive() for c in clients):
                time.sleep(0.01)
            time.sleep(rng.uniform(0.0, 0.75))
            srv.kill()
            stop.set()
            for c in clients:
                c.join(30)
                assert not c.is_alive() and c.error is None, (seed, kill, c.error)
            srv.start()
            new = [pair for c in clients for pair in c.acked]
            sent += sum(c.sent for c in clients)
            stored = stored_case_refs(instance)
            ann.sign_in()
            for case_ref, marker in new:
                assert stored.count(case_ref) == 1, f"seed {seed}, kill {kill}: {case_ref}"
                assert marker in ann.details(case_ref), f"seed {seed}, kill {kill}"
                acked[case_ref] = marker
            assert all(stored.count(ref) == 1 for ref in acked), f"seed {seed}"
            integrity_ok(instance)
        # Every case decrypts; every acknowledged marker is there exactly once, none twice.
        ann.sign_in()
        bob = Reviewer(srv, "bob@example.org")
        bob.sign_in()
        refs = ann.all_cases()
        assert set(acked) <= set(refs) and len(refs) == len(set(refs))
        markers = [re.search(r"KILLTEST-[0-9a-f]+", ann.details(r)).group(0)  # type: ignore[union-attr]
                   for r in refs]
        assert len(markers) == len(set(markers)), f"seed {seed}: a concern was stored twice"
        for ref, marker in acked.items():
            assert marker in bob.details(ref)
    assert len(acked) >= KILLS, f"seed {seed}: too few acknowledged submissions to mean much"
    print(f"kill -9 x{KILLS} (seed {seed}): {sent} sent, {len(acked)} acknowledged, "
          f"{len(refs)} stored, all acknowledged ones intact")


# -- SMTP down or hanging -------------------------------------------------------------------


def test_with_smtp_down_submissions_succeed_and_mail_goes_out_when_it_is_back(
        app: Flask, client: FlaskClient, smtp: services.SmtpServer) -> None:
    make_reviewer(app), make_reviewer(app)
    smtp.stop()
    receipt = submit_concern(client, details="Sent while the mail server is down.")
    with db.new_session(app) as s:  # no mail in the request path: queued, never yet tried
        assert [(m.attempts, m.sent) for m in s.scalars(select(OutboxMail))] == [(0, None)] * 2
    result = app.test_cli_runner().invoke(args=["outbox"])
    assert result.exit_code == 0 and "sent 0, deferred 2" in result.output, result.output
    # It says why (issue 21): the server it tried and what the connection raised.
    assert f"mail server {smtp.host}:{smtp.port} could not take the mail" in result.output
    assert "ConnectionRefusedError" in result.output, result.output
    with db.new_session(app) as s:
        assert s.scalar(select(func.count()).select_from(OutboxMail)
                        .where(OutboxMail.sent.is_(None))) == 2
    smtp.start()
    smtp.clear()
    with db.new_session(app) as s:  # later, once the retry is due
        report = notify.deliver_pending(s, app, now=utcnow() + dt.timedelta(hours=2))
    assert report.sent == 2
    assert len(smtp.wait_for(2)) == 2
    assert receipt["case_ref"].encode() not in b"".join(m.as_bytes() for m in smtp.messages)


@contextlib.contextmanager
def black_hole(accepted: list[socket.socket] | None = None,
               hang_up_after: float = 20.0) -> Iterator[int]:
    """A TCP server that accepts connections (into ``accepted``) and never says a word; it
    hangs up after ``hang_up_after`` seconds, so a client without a timeout of its own sees
    the server disconnect (an error of another kind) instead of hanging the test."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    accepted = [] if accepted is None else accepted
    done = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not done.is_set():
            with contextlib.suppress(OSError):
                conn = listener.accept()[0]
                accepted.append(conn)
                threading.Timer(hang_up_after, conn.close).start()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        done.set()
        thread.join(2)
        for conn in accepted:
            conn.close()
        listener.close()


def test_a_hanging_smtp_server_delays_mail_and_never_a_submission(
        tmp_path: Path, database_url: str, smtp: services.SmtpServer,
        weak_kdf: dict[str, Any]) -> None:
    accepted: list[socket.socket] = []
    with black_hole(accepted) as port:
        app = build_app(tmp_path, database_url, smtp,
                        weak_kdf | {"MAIL_PORT": port, "MAIL_TIMEOUT": 1})
        make_reviewer(app), make_reviewer(app)
        client = app.test_client()
        submit_concern(client)
        assert accepted == []  # the submission never opened a connection to the mail server
        result = app.test_cli_runner().invoke(args=["outbox"])
        assert len(accepted) == 1
        # The client gave up on its own timeout (MAIL_TIMEOUT, handed to the SMTP client),
        # long before the server hung up: a timeout, not a disconnection.
        assert app.extensions["mail"].timeout == 1
        assert "timed out" in result.output, result.output  # smtplib: "...closed: timed out"
        assert result.exit_code == 0 and "deferred 2" in result.output, result.output
        db.engine_for(app).dispose()


# -- the database locked or gone --------------------------------------------------------------


def assert_text_returned_without_token(response: Any, text: str) -> None:
    page = response.get_data(as_text=True)
    assert response.status_code == 503, page[:500]
    assert "NOT saved" in page or "Nothing you sent was saved" in page
    assert text in page  # the reporter's words come back in the form
    assert 'class="token"' not in page and "Write these 12 words down" not in page
    assert response.headers.get("Retry-After")


def count_concerns(app: Flask) -> int:
    with db.new_session(app) as s:
        return s.scalar(select(func.count()).select_from(Concern)) or 0


@pytest.mark.parametrize("app_config", [{"DB_BUSY_TIMEOUT_MS": 300}])
def test_a_locked_database_gets_503_and_the_reporter_keeps_their_text(
        app: Flask, client: FlaskClient) -> None:
    url = app.config["DATABASE_URL"]
    if not url.startswith("sqlite:///"):
        pytest.skip("an exclusive SQLite lock; PostgreSQL is covered by the unavailable test")
    make_reviewer(app), make_reviewer(app)
    earlier = submit_concern(client, details="Sent before the lock.")["token"]
    token = csrf(client, "/report")
    before = count_concerns(app)
    blocker = sqlite3.connect(url[len("sqlite:///"):], isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        api = client.post("/api/v1/concerns", json={"category": "conduct",
                                                    "details": "Locked out words"})
        assert api.status_code == 503
        assert api.get_json()["error"] == "unavailable" and "NOT saved" in api.get_json()[
            "message"]
        assert "token" not in api.get_json() and api.headers["Retry-After"]
        text = "My careful account, typed for twenty minutes."
        page = client.post("/report", data={"csrf_token": token, "category": "conduct",
                                            "details": text, "identity": "named",
                                            "name": "Pat Example"})
        assert_text_returned_without_token(page, text)
        assert "Pat Example" in page.get_data(as_text=True)
        # A status check only reads, so it goes on beside the writer (WAL) ...
        miss = client.post("/api/v1/status", json={"token": "abandon " * 11 + "about"})
        assert miss.status_code == 404
        # ... except the day's first check, which must record the day of use: it waits for
        # the lock, then says so rather than answer without recording it.
        status = client.post("/api/v1/status", json={"token": earlier})
        assert status.status_code == 503 and status.get_json()["error"] == "unavailable"
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert count_concerns(app) == before
    submit_concern(client, details="After the lock.")
    assert count_concerns(app) == before + 1
    check = sqlite3.connect(url[len("sqlite:///"):])
    assert check.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    check.close()


@contextlib.contextmanager
def database_gone(app: Flask, postgres: services.PostgresServer | None) -> Iterator[None]:
    """Make the app's database unreachable, then bring it back."""
    url = app.config["DATABASE_URL"]
    db.engine_for(app).dispose()
    if url.startswith("sqlite:///"):
        folder = Path(url[len("sqlite:///"):]).parent
        away = folder.with_name(folder.name + "-away")
        folder.rename(away)
        try:
            yield
        finally:
            db.engine_for(app).dispose()
            away.rename(folder)
        return
    assert postgres is not None
    name = urlsplit(url).path.lstrip("/")
    with postgres._admin() as conn:
        conn.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                     "WHERE datname = %s", (name,))
    try:
        yield
    finally:
        db.engine_for(app).dispose()
        with postgres._admin() as conn:
            conn.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')


@pytest.fixture
def own_folder_app(tmp_path: Path, database_url: str, smtp: services.SmtpServer,
                   weak_kdf: dict[str, Any]) -> Iterator[Flask]:
    """The app with its SQLite file in a folder of its own (so the folder can vanish)."""
    url = database_url
    if url.startswith("sqlite:///"):
        (tmp_path / "dbdir").mkdir()
        url = f"sqlite:///{tmp_path / 'dbdir' / 'whistle.db'}"
    app = build_app(tmp_path, url, smtp, weak_kdf)
    yield app
    db.engine_for(app).dispose()


def test_an_unreachable_database_gets_503_and_the_reporter_keeps_their_text(
        own_folder_app: Flask, postgres: services.PostgresServer | None) -> None:
    app = own_folder_app
    client = app.test_client()
    make_reviewer(app), make_reviewer(app)
    token = csrf(client, "/report")
    submit_concern(client)
    assert client.get("/readyz").status_code == 200
    text = "Everything I remember about that night."
    with database_gone(app, postgres):
        ready = client.get("/readyz")
        assert ready.status_code == 503 and "database unavailable" in ready.get_json()["problems"]
        api = client.post("/api/v1/concerns", json={"category": "conduct", "details": text})
        assert api.status_code == 503 and api.get_json()["error"] == "unavailable"
        assert text not in api.get_data(as_text=True)  # the API client has its own copy
        page = client.post("/report", data={"csrf_token": token, "category": "conduct",
                                            "details": text})
        assert_text_returned_without_token(page, text)
        form = client.get("/report")  # the form itself still works without the database
        assert form.status_code == 200 and 'name="details"' in form.get_data(as_text=True)
        lookup = client.post("/status", data={"csrf_token": token, "token": "abandon " * 12})
        assert lookup.status_code == 503 and "Traceback" not in lookup.get_data(as_text=True)
    assert client.get("/readyz").status_code == 200
    assert count_concerns(app) == 1
    submit_concern(client, details="Back again.")
