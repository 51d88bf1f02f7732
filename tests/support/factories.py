"""Plain factories for tests: an app, reviewers, concerns, logins and a database snapshot.

These are ordinary functions, not pytest fixtures: the fixtures in ``tests/conftest.py``
and the tests themselves call them with the app or client they already hold.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

from flask import Flask
from flask.testing import FlaskClient

from tests.support import services
from whistle import create_app, keys
from whistle.store import db, migrate

PASSWORD = "correct horse battery staple"


def build_app(tmp_path: Path, database_url: str, smtp: services.SmtpServer,
              extra: dict[str, Any] | None = None) -> Flask:
    """Make a migrated Whistle app on ``database_url``, mailing through ``smtp``, with its keys
    under ``tmp_path/keys`` (created with the recovery private key once) and ``extra`` config."""
    keys_dir = tmp_path / "keys"
    if not (keys_dir / "recovery.pub").exists():
        keys.create_missing(str(keys_dir), str(tmp_path / "recovery-private.txt"))
    config = {
        "TESTING": True, "DATABASE_URL": database_url, "KEYS_DIR": str(keys_dir),
        "MAIL_SERVER": smtp.host, "MAIL_PORT": smtp.port, "MAIL_TIMEOUT": 3,
        # Mail at once unless a test sets an interval (tests/test_timing.py does).
        "NOTIFY_INTERVAL_MINUTES": 0,
    } | (extra or {})
    app = create_app(config)
    migrate.upgrade(db.engine_for(app))
    return app


def make_reviewer(app: Flask, name: str | None = None, email: str | None = None,
                  password: str = PASSWORD, units: list[str] | None = None,
                  senior: bool = False, independent: bool = False, admin: bool = False,
                  reviews: bool = True) -> dict[str, str]:
    """Make a reviewer enrolled in ``app`` (random name and email unless given); returns its
    ``id``, ``name``, ``email`` and ``password``."""
    from whistle import settings_of
    from whistle.people import accounts

    name = name or "Reviewer " + secrets.token_hex(3)
    email = email or f"{secrets.token_hex(4)}@example.org"
    with db.new_session(app) as s:
        r = accounts.enrol(s, settings_of(app), name, email, password, units, senior, independent,
                           admin, reviews, keys=app.extensions["whistle_keys"])
        return {"id": r.id, "name": r.name, "email": r.email, "password": password}


def submit_concern(client: FlaskClient, **fields: Any) -> dict[str, Any]:
    """Make a concern through the public API (a conduct concern unless ``fields`` say
    otherwise); asserts the 201 and returns the response's JSON."""
    body = {"category": "conduct", "details": "Something worrying happened."} | fields
    response = client.post("/api/v1/concerns", json=body)
    assert response.status_code == 201, response.get_data(as_text=True)
    data: dict[str, Any] = response.get_json()
    return data


def login(client: FlaskClient, reviewer: dict[str, str]) -> dict[str, str]:
    """Make a bearer-token header for ``reviewer`` (as returned by ``make_reviewer``) by
    logging in through the API; asserts the 200."""
    response = client.post("/api/v1/auth/login",
                           json={"email": reviewer["email"], "password": reviewer["password"]})
    assert response.status_code == 200, response.get_data(as_text=True)
    return {"Authorization": "Bearer " + response.get_json()["access_token"]}


def get_json(client: FlaskClient, reviewer: dict[str, str], path: str) -> dict[str, Any]:
    """``GET path`` as ``reviewer`` (bearer), asserting a 200; its JSON."""
    answer = client.get(path, headers=login(client, reviewer))
    assert answer.status_code == 200, answer.get_data(as_text=True)
    data: dict[str, Any] = answer.get_json()
    return data


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


def share_case(client: FlaskClient, case_ref: str, reviewer_id: str,
               proposer: dict[str, str], approver: dict[str, str]) -> Any:
    """Share a case the two-person way: ``proposer`` (bearer headers) proposes, asserting the
    202, and ``approver`` (another assigned reviewer's headers) approves; returns the
    approval's response (201 when the share took effect)."""
    proposed = client.post(f"/api/v1/cases/{case_ref}/reviewers",
                           json={"reviewer_id": reviewer_id}, headers=proposer)
    assert proposed.status_code == 202, proposed.get_data(as_text=True)
    assert proposed.get_json()["state"] == "pending"
    return client.post(f"/api/v1/cases/{case_ref}/reviewers/{reviewer_id}/approve",
                       headers=approver)


def make_operator(app: Flask, name: str | None = None) -> dict[str, str]:
    """An intake operator (issue 24) enrolled while setting up (before the roster seals)."""
    from whistle import settings_of
    from whistle.people import accounts

    name = name or "Operator " + secrets.token_hex(3)
    email = f"op-{secrets.token_hex(4)}@example.org"
    with db.new_session(app) as s:
        r = accounts.enrol(s, settings_of(app), name, email, PASSWORD, reviews=False,
                           keys=app.extensions["whistle_keys"], operator=True)
        return {"id": r.id, "name": r.name, "email": r.email, "password": PASSWORD}
