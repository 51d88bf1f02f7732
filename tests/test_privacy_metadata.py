"""No identifying metadata: no address, User-Agent or token in the database, logs or mail.

Reporter flows run from a distinctive loopback address (127.0.0.123) with a
distinctive User-Agent, twice: through the test client (every log record at
DEBUG captured), and for real through gunicorn with the client socket bound to
127.0.0.123 (everything gunicorn prints captured). Also here: reporter-side
timestamps are kept to the day, the log filter itself, and rate limits that
key on nothing identifying (memory and shared Redis storage).
"""

from __future__ import annotations

import datetime as dt
import email.utils
import logging
import re
import socket
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import DateTime, inspect, select, text

from tests.conftest import need
from tests.support import services
from tests.support.factories import (
    PASSWORD,
    build_app,
    database_bytes,
    login,
    make_reviewer,
    submit_concern,
)
from tests.support.probes import csrf, html_login
from whistle import logs, notify, tokens
from whistle.store import db
from whistle.store.models import AuditEvent, OutboxMail, utcnow

ADDRESS = "127.0.0.123"
USER_AGENT = "WhistleProbe/9.9 (UA-CANARY-7f3a91; metadata test)"


def forms_of(value: str) -> list[bytes]:
    return [value.encode(), value.lower().encode(), value.encode("utf-16-le")]


def assert_absent(haystack: bytes, needles: list[str], where: str) -> None:
    for needle in needles:
        for form in forms_of(needle):
            assert form not in haystack, f"{needle!r} found in {where}"


def reporter_client(app: Flask) -> FlaskClient:
    client = app.test_client()
    client.environ_base.update({"REMOTE_ADDR": ADDRESS, "HTTP_USER_AGENT": USER_AGENT})
    return client


def token_from_page(page: str) -> str:
    words = re.findall(r'<span class="w">([a-z]+)</span>', page)
    assert len(words) == 12, page[:500]
    return " ".join(words)


# -- through the test client, every log record captured ------------------------------------


def test_reporter_flows_leave_no_address_user_agent_or_token_anywhere(
        app: Flask, smtp: services.SmtpServer, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    for name in ("whistle", "werkzeug", "flask_wtf", "sqlalchemy", "gunicorn"):
        caplog.set_level(logging.DEBUG, logger=name)
    ann = make_reviewer(app, "Ann Reviewer")
    bob = make_reviewer(app, "Bob Reviewer")
    reporter = reporter_client(app)
    tokens_seen: list[str] = []

    # API: submit (named, with a file), status, reply, replace the token.
    assert reporter.get("/api/v1/intake").status_code == 200
    body = {"category": "conduct", "details": "What I saw on the ward.",
            "identity": {"name": "Pat Example", "contact": "pat@example.net"}}
    receipt = submit_concern(reporter, **body)
    tokens_seen.append(receipt["token"])
    assert reporter.post("/api/v1/status", json={"token": receipt["token"]}).status_code == 200
    assert reporter.post("/api/v1/status/messages",
                         json={"token": receipt["token"], "body": "More detail."}
                         ).status_code == 201
    rotated = reporter.post("/api/v1/status/token", json={"token": receipt["token"]})
    tokens_seen.append(rotated.get_json()["token"])
    assert reporter.post("/api/v1/status", json={"token": "wrong token"}).status_code == 404

    # Pages: the form, the token page, status, reply, replace.
    for path in ("/", "/report", "/status"):
        assert reporter.get(path).status_code == 200
    page = reporter.post("/report", data={"csrf_token": csrf(reporter), "category": "fraud",
                                          "details": "A second concern, from the form."})
    assert page.status_code == 201
    token = token_from_page(page.get_data(as_text=True))
    tokens_seen.append(token)
    form_token = csrf(reporter, "/status")
    assert reporter.post("/status", data={"csrf_token": form_token, "token": token}
                         ).status_code == 200
    assert reporter.post("/status", data={"csrf_token": form_token, "token": token,
                                          "action": "reply", "body": "A reply."}
                         ).status_code == 200
    rotated_page = reporter.post("/status", data={"csrf_token": form_token, "token": token,
                                                  "action": "rotate"})
    tokens_seen.append(token_from_page(rotated_page.get_data(as_text=True)))
    reporter.post("/status", data={"csrf_token": form_token, "token": "nope"})
    reporter.put("/report")  # errors are logged paths too

    # Reviewers answer, so that mail goes out; then deliver it.
    bearer = login(app.test_client(), ann)
    assert app.test_client().post(f"/api/v1/cases/{receipt['case_ref']}/messages",
                                  headers=bearer, json={"body": "Thank you."}).status_code == 201
    html_login(app, bob)
    with db.new_session(app) as s:
        report = notify.deliver_pending(s, app)
    assert report.sent >= 2
    mail = b"".join(m.as_bytes() for m in smtp.wait_for(report.sent))

    secrets_ = [ADDRESS, USER_AGENT, "UA-CANARY-7f3a91"] + tokens_seen
    assert_absent(database_bytes(app), secrets_, "the database")
    assert_absent(mail, secrets_, "the mail")
    logged = "\n".join(logging.Formatter("%(name)s %(message)s %(exc_text)s").format(r)
                       for r in caplog.records)
    assert_absent(logged.encode(), secrets_, "the log records")
    # Tokens never appear in any form, even as single words in a row.
    for t in tokens_seen:
        assert " ".join(t.split()[:4]) not in logged


def test_reporter_side_timestamps_are_kept_to_the_day(app: Flask, client: FlaskClient,
                                                      smtp: Any) -> None:
    ann = make_reviewer(app)
    make_reviewer(app)
    reporter = reporter_client(app)
    receipt = submit_concern(reporter)
    reporter.post("/api/v1/status/messages", json={"token": receipt["token"], "body": "more"})
    new = reporter.post("/api/v1/status/token", json={"token": receipt["token"]}).get_json()
    reporter.post("/api/v1/status", json={"token": new["token"]})
    reporter.post("/report", data={"csrf_token": csrf(reporter), "category": "conduct",
                                   "details": "x"})
    engine = db.engine_for(app)
    inspector = inspect(engine)
    columns = [(table, column["name"]) for table in inspector.get_table_names()
               # reviewers' rows are written when they enrol or sign in, and the administration
               # log when an administrator changes accounts or routing: never by reporters
               if table not in ("reviewers", "reviewer_sessions", "admin_events",
                                "alembic_version")
               for column in inspector.get_columns(table) if isinstance(column["type"], DateTime)]
    assert ("audit_events", "at") in columns and ("outbox", "created") in columns
    found = 0
    with engine.connect() as conn:
        for table, name in columns:
            for (value,) in conn.execute(text(f'SELECT "{name}" FROM "{table}"')):  # noqa: S608
                if value is None:
                    continue
                if isinstance(value, str):
                    value = dt.datetime.fromisoformat(value)
                found += 1
                assert value.time() == dt.time(0), f"{table}.{name} = {value}"
    assert found >= 6  # audit events and outbox rows at least
    # A reviewer's own actions keep their time; the reporter's events stay at midnight.
    bearer = login(app.test_client(), ann)
    app.test_client().post(f"/api/v1/cases/{receipt['case_ref']}/messages", headers=bearer,
                           json={"body": "hi"})
    with db.new_session(app) as s:
        for e in s.scalars(select(AuditEvent).where(AuditEvent.actor == "reporter")):
            assert e.at.time() == dt.time(0)
    # The mail the reporter's actions set off: once sent, the outbox keeps the day only, and
    # the mail carries the delivery run's time, never the moment the reporter acted.
    run = dt.datetime.combine(utcnow().date() + dt.timedelta(days=1), dt.time(15, 0))
    with db.new_session(app) as s:
        assert notify.deliver_pending(s, app, now=run).sent >= 2
        sent = list(s.scalars(select(OutboxMail.sent)))
    assert sent and all(at == dt.datetime.combine(run.date(), dt.time(0)) for at in sent), sent
    mails = smtp.wait_for(2)
    for m in mails:
        assert email.utils.parsedate_to_datetime(m["Date"]) == run.replace(
            tzinfo=dt.timezone.utc), m["Date"]
        assert re.fullmatch(r"<[0-9a-f]{32}@[^>]+>", m["Message-ID"]), m["Message-ID"]
        assert "Received" not in m


# -- for real, through gunicorn from 127.0.0.123 -------------------------------------------


class RawBrowser:
    """A cookie-keeping HTTP client whose socket is bound to ADDRESS."""

    def __init__(self, srv: Any) -> None:
        self.srv = srv
        self.cookie: str | None = None

    def go(self, method: str, path: str, body: bytes | None = None,
           content_type: str | None = None, extra: dict[str, str] | None = None
           ) -> tuple[int, str]:
        headers = {"User-Agent": USER_AGENT, "X-Forwarded-For": "203.0.113.9"} | (extra or {})
        if content_type:
            headers["Content-Type"] = content_type
        if self.cookie:
            headers["Cookie"] = self.cookie
        status, got, data = self.srv.request(method, path, body, headers, source=ADDRESS)
        if "set-cookie" in got:
            self.cookie = got["set-cookie"].split(";", 1)[0]
        return status, data.decode(errors="replace")

    def form(self, path: str, fields: dict[str, str]) -> tuple[int, str]:
        from urllib.parse import urlencode

        _s, page = self.go("GET", path if path != "/status" else "/status")
        token = re.search(r'name="csrf_token" value="([^"]+)"', page)
        assert token, page[:300]
        return self.go("POST", path, urlencode({"csrf_token": token.group(1)} | fields).encode(),
                       "application/x-www-form-urlencoded")

    def api(self, path: str, payload: dict[str, Any]) -> tuple[int, Any]:
        import json

        status, data = self.go("POST", path, json.dumps(payload).encode(), "application/json")
        return status, json.loads(data) if data else None


def test_through_gunicorn_from_a_distinct_address_nothing_identifying_is_kept(
        tmp_path: Path, database_url: str, smtp: services.SmtpServer) -> None:
    from tests.support import server

    try:  # all of 127.0.0.0/8 is loopback on Linux: nothing to configure
        with socket.socket() as probe:
            probe.bind((ADDRESS, 0))
    except OSError as exc:
        need(f"loopback address {ADDRESS}", exc)
    instance = server.new_instance(tmp_path / "instance", database_url, {
        "WHISTLE_MAIL_SERVER": smtp.host, "WHISTLE_MAIL_PORT": str(smtp.port),
        "WHISTLE_NOTIFY_INTERVAL_MINUTES": "0"})
    ann_id = instance.add_reviewer("Ann Reviewer", "ann@example.org", PASSWORD)
    instance.add_reviewer("Bob Reviewer", "bob@example.org", PASSWORD)
    # Debug logging, and an access log asked for on the command line with the address and
    # User-Agent in its format: Whistle's logger class must still write neither.
    args = ("--log-level", "debug", "--access-logfile", "-",
            "--access-logformat", "%(h)s %(a)s %(r)s")
    seen_tokens: list[str] = []
    with server.gunicorn_server(instance, workers=2, args=args) as srv:
        b = RawBrowser(srv)
        status, receipt = b.api("/api/v1/concerns", {
            "category": "conduct", "details": "Seen from a distinct address.",
            "identity": {"name": "Pat", "contact": "pat@example.net"}})
        assert status == 201, receipt
        seen_tokens.append(receipt["token"])
        assert b.api("/api/v1/status", {"token": receipt["token"]})[0] == 200
        assert b.api("/api/v1/status/messages", {"token": receipt["token"], "body": "more"}
                     )[0] == 201
        status, rotated = b.api("/api/v1/status/token", {"token": receipt["token"]})
        seen_tokens.append(rotated["token"])
        assert b.api("/api/v1/status", {"token": "not a token"})[0] == 404
        status, page = b.form("/report", {"category": "fraud", "details": "From the form."})
        assert status == 201, page[:300]
        seen_tokens.append(token_from_page(page))
        assert b.form("/status", {"token": seen_tokens[-1]})[0] == 200
        assert b.form("/status", {"token": seen_tokens[-1], "action": "reply",
                                  "body": "A reply"})[0] == 200
        assert b.go("GET", "/no/such/page")[0] == 404
        assert b.go("DELETE", "/report")[0] == 405
        # A malformed request: gunicorn itself logs the client address for these.
        answer = server.raw_exchange(srv.host, srv.port, b"GET / HTTP/1.1\r\nHost: x\r\n"
                                     b"X-Long: " + b"a" * 9000 + b"\r\n\r\n", source=ADDRESS)
        assert answer.startswith(b"HTTP/1.1 431")
        assert server.raw_exchange(srv.host, srv.port, b"NOT-HTTP\r\n\r\n",
                                   source=ADDRESS).startswith(b"HTTP/1.1 400")
        # A reviewer answers, so there is mail to send.
        status, signed = srv.json("POST", "/api/v1/auth/login",
                                  {"email": "ann@example.org", "password": PASSWORD})
        assert status == 200 and signed["reviewer"]["id"] == ann_id
        assert srv.json("POST", f"/api/v1/cases/{receipt['case_ref']}/messages",
                        {"body": "Thanks"},
                        {"Authorization": "Bearer " + signed["access_token"]})[0] == 201
    delivered = instance.flask("outbox")
    assert delivered.returncode == 0, delivered.stderr
    mail = b"".join(m.as_bytes() for m in smtp.wait_for(2))

    output = srv.output()
    assert "Booting worker" in output and "Invalid request from ip=[redacted]" in output
    # Clients only: the server's own address stays, so the operator sees where it serves.
    assert f"Listening at: http://{srv.host}:{srv.port}" in output, output[:2000]
    needles = [ADDRESS, USER_AGENT, "UA-CANARY-7f3a91", "203.0.113.9"] + seen_tokens
    assert_absent(output.encode() + delivered.stdout.encode() + delivered.stderr.encode(),
                  needles, "the server's output")
    assert_absent(mail, needles, "the mail")
    assert_absent(stored_bytes(instance), needles, "the database")


def stored_bytes(instance: Any) -> bytes:
    from whistle import create_app

    app = create_app({"TESTING": True, "DATABASE_URL": instance.database_url,
                      "KEYS_DIR": str(instance.keys_dir)})
    try:
        return database_bytes(app)
    finally:
        db.engine_for(app).dispose()


# -- the log filter itself ---------------------------------------------------------------


@pytest.mark.parametrize("line", [
    "Invalid request from ip=127.0.0.123: bad", "peer ('10.1.2.3', 51234) closed",
    "client [2001:db8::7]:443 said hi", "from ::ffff:192.0.2.1 and fe80::1",
    "ip=203.0.113.9.", "forwarded for=198.51.100.20:8080",
])
def test_the_filter_blanks_addresses(line: str) -> None:
    out = logs.scrub(line)
    assert logs.REDACTED in out
    assert not re.search(r"\d+\.\d+\.\d+\.\d+|[0-9a-f]*::[0-9a-f]", out)


def test_the_filter_keeps_ordinary_text_and_escapes_line_breaks() -> None:
    assert logs.scrub("worker 1234 booted at 22:41:48 with gunicorn 23.0.0") == (
        "worker 1234 booted at 22:41:48 with gunicorn 23.0.0")
    assert logs.scrub("fake\n2026-01-01 INFO admin login ok") == (
        "fake\\n2026-01-01 INFO admin login ok")


def test_the_filter_blanks_tokens_in_any_spelling() -> None:
    token, _ = tokens.new_token()
    for spelled in (token, token.upper(), token.replace(" ", "-"), "  ".join(token.split())):
        out = logs.scrub(f"looked up {spelled} today")
        assert logs.REDACTED in out and not any(w in out.lower().split()
                                                for w in token.split()[1:-1])


def test_the_filter_drops_request_lines_and_scrubs_every_other_record() -> None:
    f = logs.PrivacyFilter()

    def record(name: str, level: int, msg: str, *args: Any) -> logging.LogRecord:
        return logging.LogRecord(name, level, __file__, 1, msg, args, None)

    assert not f.filter(record("gunicorn.access", logging.INFO, '%s "GET /"', "127.0.0.1"))
    assert not f.filter(record("werkzeug", logging.INFO, "127.0.0.1 - - GET /status"))
    assert not f.filter(record("sqlalchemy.engine.Engine", logging.INFO, "[params] %s", "x"))
    kept = record("gunicorn.error", logging.WARNING, "Invalid request from ip=%s", "10.0.0.5")
    assert f.filter(kept) and kept.getMessage() == f"Invalid request from ip={logs.REDACTED}"
    try:
        raise ValueError("client 192.0.2.55 failed")
    except ValueError:
        import sys

        failing = logging.LogRecord("whistle", logging.ERROR, __file__, 1, "boom", None,
                                    sys.exc_info())
    assert f.filter(failing) and "192.0.2.55" not in (failing.exc_text or "")


def test_the_app_installs_the_filter_on_the_root_logger(app: Flask) -> None:
    handlers = [h for h in logging.getLogger().handlers if getattr(h, "_whistle_privacy", False)]
    assert len(handlers) == 1 and isinstance(handlers[0], logs.PrivacyHandler)
    record = logging.LogRecord("whistle", logging.WARNING, __file__, 1, "from %s", ("10.9.8.7",),
                               None)
    handlers[0].handle(record)
    assert record.getMessage() == "from 10.9.8.7"  # the original is left for other handlers


# -- rate limits that identify no one ---------------------------------------------------


@pytest.mark.parametrize("app_config", [{"STATUS_LIMIT": "3 per minute"}])
def test_repeated_token_misses_get_429_while_a_valid_token_keeps_working(
        app: Flask, client: FlaskClient) -> None:
    make_reviewer(app), make_reviewer(app)
    receipt = submit_concern(client)
    for i in range(3):
        assert client.post("/api/v1/status", json={"token": f"wrong {i}"}).status_code == 404
    limited = client.post("/api/v1/status", json={"token": "wrong again"})
    assert limited.status_code == 429
    assert limited.get_json()["error"] == "rate_limited"
    assert 1 <= int(limited.headers["Retry-After"]) <= 60
    # From "another client" too: the count belongs to no one.
    other = reporter_client(app)
    assert other.post("/api/v1/status", json={"token": "wrong"}).status_code == 429
    page = other.post("/status", data={"csrf_token": csrf(other, "/status"), "token": "wrong"})
    assert page.status_code == 429 and int(page.headers["Retry-After"]) >= 1
    # The reporter with the real token is never locked out.
    assert client.post("/api/v1/status", json={"token": receipt["token"]}).status_code == 200
    assert other.post("/api/v1/status/messages", json={"token": receipt["token"],
                                                       "body": "still here"}).status_code == 201
    ok = other.post("/status", data={"csrf_token": csrf(other, "/status"),
                                     "token": receipt["token"]})
    assert ok.status_code == 200


@pytest.mark.parametrize("app_config", [{"LOGIN_LIMIT": "3 per minute"}])
def test_repeated_failed_sign_ins_get_429_for_that_account_only(app: Flask,
                                                                client: FlaskClient) -> None:
    ann, bob = make_reviewer(app), make_reviewer(app)
    for _ in range(3):
        assert client.post("/api/v1/auth/login", json={
            "email": ann["email"], "password": "wrong wrong wrong"}).status_code == 401
    limited = client.post("/api/v1/auth/login", json={"email": ann["email"],
                                                      "password": PASSWORD})
    assert limited.status_code == 429 and int(limited.headers["Retry-After"]) >= 1
    page = client.post("/reviewer/login", data={"csrf_token": csrf(client, "/reviewer/login"),
                                                "email": ann["email"].upper(),
                                                "password": PASSWORD})
    assert page.status_code == 429 and int(page.headers["Retry-After"]) >= 1
    assert client.post("/api/v1/auth/login", json={"email": bob["email"],
                                                   "password": PASSWORD}).status_code == 200


def test_with_redis_the_count_is_shared_by_two_app_instances(
        tmp_path: Path, database_url: str, smtp: services.SmtpServer,
        weak_kdf: dict[str, Any]) -> None:
    try:
        redis_cm = services.redis_server()
        redis = redis_cm.__enter__()
    except services.ComponentMissing as exc:
        need("redis-server", exc)
    try:
        config = weak_kdf | {"RATELIMIT_STORAGE_URI": redis.url, "STATUS_LIMIT": "4 per minute",
                             "LOGIN_LIMIT": "2 per minute"}
        first = build_app(tmp_path, database_url, smtp, config)
        second = build_app(tmp_path, database_url, smtp, config)
        a, b = first.test_client(), reporter_client(second)
        reviewer = make_reviewer(first)
        make_reviewer(first)
        receipt = submit_concern(a)
        for client in (a, b, a, b):
            assert client.post("/api/v1/status", json={"token": "wrong"}).status_code == 404
        for client in (a, b):
            assert client.post("/api/v1/status", json={"token": "wrong"}).status_code == 429
            assert client.post("/api/v1/status",
                               json={"token": receipt["token"]}).status_code == 200
        for client in (a, b):
            assert client.post("/api/v1/auth/login", json={
                "email": reviewer["email"], "password": "wrong wrong wrong"}).status_code == 401
        assert a.post("/api/v1/auth/login", json={"email": reviewer["email"],
                                                  "password": PASSWORD}).status_code == 429
        import redis as redis_lib

        keys = b" ".join(redis_lib.Redis.from_url(redis.url).keys("*"))
        assert keys and ADDRESS.encode() not in keys and reviewer["email"].encode() not in keys
        for app in (first, second):
            db.engine_for(app).dispose()
    finally:
        redis_cm.__exit__(None, None, None)


def test_with_memory_storage_each_instance_counts_alone(
        tmp_path: Path, database_url: str, smtp: services.SmtpServer,
        weak_kdf: dict[str, Any]) -> None:
    """The control for the Redis test: with per-process storage (no longer the default) the
    count is not shared."""
    config = weak_kdf | {"STATUS_LIMIT": "4 per minute", "RATELIMIT_STORAGE_URI": "memory://"}
    first = build_app(tmp_path, database_url, smtp, config)
    second = build_app(tmp_path, database_url, smtp, config)
    a, b = first.test_client(), second.test_client()
    for client in (a, b, a, b, a, b):
        assert client.post("/api/v1/status", json={"token": "wrong"}).status_code == 404
    for app in (first, second):
        db.engine_for(app).dispose()
