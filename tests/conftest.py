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
from tests.support.factories import build_app
from whistle.store import db

# The one definition (tests import it from here): GitHub, GitLab and most CI services set CI.
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
USE_POSTGRES = os.environ.get("WHISTLE_TEST_DB") == "postgres"


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
    # pytest leaves the root logger at WARNING: INFO and DEBUG records would never be made,
    # and a request logged at INFO would pass unseen. Every level is made and checked here;
    # the libraries that log every statement or SMTP exchange at DEBUG keep their own level.
    quiet = {name: logging.getLogger(name) for name in ("sqlalchemy", "alembic", "asyncio",
                                                        "mail.log", "urllib3", "PIL",
                                                        "hypothesis")}
    levels = {name: logger.level for name, logger in quiet.items()}
    root_level = root.level
    for logger in quiet.values():
        if logger.level == logging.NOTSET:
            logger.setLevel(logging.WARNING)
    root.setLevel(logging.DEBUG)
    root.addHandler(handler)
    try:
        yield
    finally:
        root.removeHandler(handler)
        root.setLevel(root_level)
        for name, logger in quiet.items():
            logger.setLevel(levels[name])
    for record in records:
        if record.name.split(".")[0] not in {"whistle", "werkzeug", "flask", "flask_wtf",
                                             "gunicorn", "root"}:
            continue
        text = record.getMessage()
        if record.exc_info:
            text += logging.Formatter().formatException(record.exc_info)
        assert not re.search(r"\b127\.0\.0\.\d{1,3}\b", text), f"{record.name}: {text[:300]}"
        assert "Werkzeug/" not in text and "UA-CANARY" not in text, f"{record.name}: {text[:300]}"
