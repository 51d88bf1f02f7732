"""Fixtures with real parts: a SQLite file (or a real PostgreSQL database), real keys, real SMTP.

``WHISTLE_TEST_DB=postgres`` runs the whole suite against a PostgreSQL
server started on loopback for the session. In CI a missing component fails.
"""

from __future__ import annotations

import os
import secrets
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.support import services
from whistle import create_app, keys
from whistle.store import db, migrate

IN_CI = os.environ.get("CI", "").lower() == "true"
USE_POSTGRES = os.environ.get("WHISTLE_TEST_DB") == "postgres"
PASSWORD = "correct horse battery staple"


def _interrupt(_signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt("SIGTERM")


def pytest_configure(config: pytest.Config) -> None:
    """SIGTERM (``timeout``, a cancelled CI job) stops the run like Ctrl-C, so the session's
    fixtures still stop the PostgreSQL, SMTP and Redis servers they started."""
    signal.signal(signal.SIGTERM, _interrupt)


def need(component: str, exc: Exception) -> None:
    """A missing real component fails in CI and skips elsewhere."""
    if IN_CI:
        pytest.fail(f"{component} is required in CI: {exc}")
    pytest.skip(f"{component} not available: {exc}")


@pytest.fixture(scope="session")
def postgres() -> Iterator[services.PostgresServer | None]:
    if not USE_POSTGRES:
        yield None
        return
    with services.postgres_server() as server:
        yield server


@pytest.fixture(scope="session")
def smtp_session() -> Iterator[services.SmtpServer]:
    with services.smtp_server() as server:
        yield server


@pytest.fixture
def smtp(smtp_session: services.SmtpServer) -> Iterator[services.SmtpServer]:
    if not smtp_session.running:
        smtp_session.start()
    smtp_session.clear()
    yield smtp_session
    if not smtp_session.running:
        smtp_session.start()


@pytest.fixture
def weak_kdf() -> dict[str, Any]:
    """The one place Argon2id is weakened: tests enrol many reviewers."""
    return {"ARGON2_MEMORY_KIB": 1024, "ARGON2_ITERATIONS": 1}


@pytest.fixture
def database_url(tmp_path: Path, postgres: services.PostgresServer | None) -> Iterator[str]:
    if postgres is None:
        yield f"sqlite:///{tmp_path / 'whistle.db'}"
        return
    name = "t_" + secrets.token_hex(6)
    url = postgres.create_database(name)
    yield url
    postgres.drop_database(name)


def build_app(tmp_path: Path, database_url: str, smtp: services.SmtpServer,
              extra: dict[str, Any] | None = None) -> Flask:
    keys_dir = tmp_path / "keys"
    if not (keys_dir / "recovery.pub").exists():
        keys.create_missing(str(keys_dir), str(tmp_path / "recovery-private.txt"))
    config = {
        "TESTING": True, "DATABASE_URL": database_url, "KEYS_DIR": str(keys_dir),
        "MAIL_SERVER": smtp.host, "MAIL_PORT": smtp.port, "MAIL_TIMEOUT": 3,
    } | (extra or {})
    app = create_app(config)
    migrate.upgrade(db.engine_for(app))
    return app


@pytest.fixture
def app_config() -> dict[str, Any]:
    """Per-test configuration overrides (tests override this fixture or update it)."""
    return {}


@pytest.fixture
def app(tmp_path: Path, database_url: str, smtp: services.SmtpServer, weak_kdf: dict[str, Any],
        app_config: dict[str, Any]) -> Iterator[Flask]:
    application = build_app(tmp_path, database_url, smtp, weak_kdf | app_config)
    yield application
    db.engine_for(application).dispose()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def recovery_key_file(tmp_path: Path, app: Flask) -> Path:
    return tmp_path / "recovery-private.txt"


# -- factories -----------------------------------------------------------


def make_reviewer(app: Flask, name: str | None = None, email: str | None = None,
                  password: str = PASSWORD, units: list[str] | None = None,
                  senior: bool = False, independent: bool = False, admin: bool = False,
                  reviews: bool = True) -> dict[str, str]:
    from whistle.people import accounts

    name = name or "Reviewer " + secrets.token_hex(3)
    email = email or f"{secrets.token_hex(4)}@example.org"
    with db.new_session(app) as s:
        r = accounts.enrol(s, app.config, name, email, password, units, senior, independent,
                         admin, reviews)
        return {"id": r.id, "name": r.name, "email": r.email, "password": password}


def submit_concern(client: FlaskClient, **fields: Any) -> dict[str, Any]:
    body = {"category": "conduct", "details": "Something worrying happened."} | fields
    response = client.post("/api/v1/concerns", json=body)
    assert response.status_code == 201, response.get_data(as_text=True)
    data: dict[str, Any] = response.get_json()
    return data


def login(client: FlaskClient, reviewer: dict[str, str]) -> dict[str, str]:
    response = client.post("/api/v1/auth/login",
                           json={"email": reviewer["email"], "password": reviewer["password"]})
    assert response.status_code == 200, response.get_data(as_text=True)
    return {"Authorization": "Bearer " + response.get_json()["access_token"]}


def database_bytes(app: Flask) -> bytes:
    """Everything the database holds on disk (SQLite file, WAL and SHM), or a full dump (PG)."""
    url = app.config["DATABASE_URL"]
    if url.startswith("sqlite:///"):
        path = Path(url[len("sqlite:///"):])
        return b"".join(p.read_bytes() for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm"))
                        if p.exists())
    from sqlalchemy import inspect, text

    engine = db.engine_for(app)
    chunks = []
    with engine.connect() as conn:
        for table in inspect(engine).get_table_names():
            for row in conn.execute(text(f'SELECT * FROM "{table}"')):  # noqa: S608 - test-only
                chunks.append(repr(tuple(row)).encode())
                for value in row:
                    if isinstance(value, (bytes, memoryview)):
                        chunks.append(bytes(value))
                    elif isinstance(value, str):
                        chunks.append(value.encode())
    return b"\n".join(chunks)


# -- the whole suite: app logs never name the client ----------------------------------


@pytest.fixture(autouse=True)
def app_logs_never_name_the_client() -> Iterator[None]:
    """In every test of the suite: no record logged by Whistle, Flask, Werkzeug or gunicorn
    holds a client address (the test client's 127.0.0.x) or the test client's User-Agent."""
    import logging
    import re

    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.NOTSET)
    handler.emit = records.append  # type: ignore[method-assign]
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield
    finally:
        root.removeHandler(handler)
    for record in records:
        if record.name.split(".")[0] not in {"whistle", "werkzeug", "flask", "flask_wtf",
                                             "gunicorn", "root"}:
            continue
        text = record.getMessage()
        if record.exc_info:
            text += logging.Formatter().formatException(record.exc_info)
        assert not re.search(r"\b127\.0\.0\.\d{1,3}\b", text), f"{record.name}: {text[:300]}"
        assert "Werkzeug/" not in text and "UA-CANARY" not in text, f"{record.name}: {text[:300]}"
