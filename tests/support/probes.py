"""Small helpers for tests that probe every route: snapshots, CSRF tokens, signed-in clients."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import inspect, text

from whistle.store import db


COUNTERS = frozenset({"limit_hits", "signin_lockouts"})


class Snapshot:
    """Everything a request could change: row counts, concerns, reviewers, temporary files.

    ``assert_unchanged`` names what changed since the snapshot was taken.
    """

    def __init__(self, app: Flask, tmp: Path | None = None) -> None:
        self.app, self.tmp = app, tmp
        self.before = self.take()

    def take(self) -> dict[str, Any]:
        engine = db.engine_for(self.app)
        with engine.connect() as conn:
            # The failure counters (whistle.ratelimit's database storage) count refusals by
            # design: a refused request changes them and nothing else.
            tables = sorted(set(inspect(engine).get_table_names()) - COUNTERS)
            state: dict[str, Any] = {
                t: conn.execute(text(f'SELECT COUNT(*) FROM "{t}"')).scalar_one()  # noqa: S608
                for t in tables}
            for table in ("concerns", "reviewers"):
                state[f"{table}:rows"] = [repr(tuple(r)) for r in conn.execute(
                    text(f'SELECT * FROM "{table}" ORDER BY id'))]  # noqa: S608
        if self.tmp is not None:
            state["tmp"] = sorted(str(p) for p in self.tmp.rglob("*"))
        return state

    def assert_unchanged(self, what: str = "") -> None:
        after = self.take()
        changed = {k for k in self.before if self.before[k] != after.get(k)}
        assert not changed, f"{what}: changed {sorted(changed)}"


def csrf(client: FlaskClient, path: str = "/report") -> str:
    """The CSRF token of the form on ``path`` (for this client's session)."""
    page = client.get(path).get_data(as_text=True)
    found = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert found, f"no CSRF token on {path}"
    return found.group(1)


def html_login(app: Flask, reviewer: dict[str, str], client: FlaskClient | None = None
               ) -> FlaskClient:
    """A test client signed in on the reviewer pages (through the real form, CSRF included)."""
    client = client or app.test_client()
    response = client.post("/reviewer/login", data={
        "csrf_token": csrf(client, "/reviewer/login"), "email": reviewer["email"],
        "password": reviewer["password"]})
    assert response.status_code == 302, response.get_data(as_text=True)
    return client


def build_paths(app: Flask, method: str, api: bool, values: dict[str, str]) -> list[str]:
    """One concrete path for every route taking ``method`` (API routes or the others)."""
    adapter = app.url_map.bind("localhost")
    defaults = {"attachment_id": "0" * 32, "change_id": "0" * 32, "filename": "style.css"} | values
    paths = set()
    for rule in app.url_map.iter_rules():
        if method not in (rule.methods or ()) or rule.rule.startswith("/api/") != api:
            continue
        paths.add(adapter.build(rule.endpoint, {a: defaults[a] for a in rule.arguments},
                                method=method))
    return sorted(paths)


def cookie_header(response: Any, name: str = "whistle") -> str | None:
    """The Set-Cookie header for the session cookie, if the response sets one."""
    for header in response.headers.getlist("Set-Cookie"):
        if header.split("=", 1)[0] in (name, "__Host-" + name):
            return str(header)
    return None
