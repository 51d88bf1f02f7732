"""Small helpers for tests that probe every route: snapshots, CSRF tokens, signed-in clients."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import inspect, text

from whistle.store import db


COUNTERS = frozenset({"limit_hits", "signin_lockouts"})


class Snapshot:
    """Everything a request could change: a digest of every row of every table (but the
    failure counters), and the temporary files.

    ``assert_unchanged`` names the tables that changed since the snapshot was taken, so an
    UPDATE anywhere shows, not only an INSERT or a DELETE.
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
            state: dict[str, Any] = {}
            for t in tables:
                rows = sorted(repr(tuple(r)) for r in conn.execute(
                    text(f'SELECT * FROM "{t}"')))  # noqa: S608
                state[t] = (len(rows), hashlib.sha256("\n".join(rows).encode()).hexdigest())
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
        # An argument no test names yet (a new route's id) gets a well-formed unknown id.
        paths.add(adapter.build(rule.endpoint, {a: defaults.get(a, "0" * 32)
                                                for a in rule.arguments}, method=method))
    return sorted(paths)


def cookie_header(response: Any, name: str = "whistle") -> str | None:
    """The Set-Cookie header for the session cookie, if the response sets one."""
    for header in response.headers.getlist("Set-Cookie"):
        if header.split("=", 1)[0] in (name, "__Host-" + name):
            return str(header)
    return None
