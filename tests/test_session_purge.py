"""Issue 18, item 8: sessions leave no keys behind.

A session row holds its reviewer's private key sealed under the client's secret. One
abandoned without sign-out goes, key and all, at the next sign-in of anyone, at the next
``deadlines`` run and at ``sessions purge``; a live one stays and keeps working.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select, update

from tests.support.factories import database_bytes, login, make_reviewer, submit_concern
from tests.support.statements import watched
from whistle import settings_of
from whistle.people import sessions
from whistle.store import db
from whistle.store.models import Reviewer, ReviewerSession, utcnow


def keys_by_reviewer(app: Flask) -> dict[str, list[bytes]]:
    """Each reviewer's session rows, as their sealed keys."""
    found: dict[str, list[bytes]] = {}
    with db.new_session(app) as s:
        for reviewer_id, key_ct in s.execute(select(ReviewerSession.reviewer_id,
                                                    ReviewerSession.key_ct)):
            found.setdefault(reviewer_id, []).append(bytes(key_ct))
    return found


def abandon(app: Flask, reviewer_id: str, created: dt.datetime,
            last_seen: dt.datetime) -> None:
    """Move a reviewer's sessions back in time, as if their client had gone away."""
    with db.new_session(app) as s:
        s.execute(update(ReviewerSession).where(ReviewerSession.reviewer_id == reviewer_id)
                  .values(created=created, last_seen=last_seen))
        s.commit()


def idle_past(app: Flask) -> dt.datetime:
    """A moment just longer ago than a session may stay idle."""
    return utcnow() - dt.timedelta(minutes=settings_of(app).session_idle_minutes + 1)


def at_rest(app: Flask) -> bytes:
    """What the database holds on disk; SQLite's WAL copied back into the file and emptied
    first, so a deleted row's old copy in the log cannot hide in (or pass for) the file."""
    engine = db.engine_for(app)
    if engine.dialect.name == "sqlite":
        raw = engine.raw_connection()
        try:
            busy, _, _ = raw.driver_connection.execute(  # type: ignore[union-attr]
                "PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        finally:
            raw.close()
        assert busy == 0
    return database_bytes(app)


def reads_case(client: FlaskClient, headers: dict[str, str], ref: str) -> bool:
    """The session still unseals its reviewer's key: the case's details decrypt."""
    response = client.get(f"/api/v1/cases/{ref}", headers=headers)
    return response.status_code == 200 and response.get_json()["details"] == DETAILS


DETAILS = "The side door is left open at night."


@pytest.fixture
def people(app: Flask, client: FlaskClient) -> dict[str, Any]:
    """Ann (who stays signed in) and Bob (who walks away), both assigned one case;
    Carol, who signs in later."""
    ann, bob = make_reviewer(app, "Ann Reviewer"), make_reviewer(app, "Bob Reviewer")
    ref = submit_concern(client, details=DETAILS)["case_ref"]
    carol = make_reviewer(app, "Carol Reviewer")
    return {"ann": ann, "bob": bob, "carol": carol, "ref": ref}


def test_an_abandoned_session_goes_with_its_key_at_another_reviewers_sign_in(
        app: Flask, client: FlaskClient, people: dict[str, Any]) -> None:
    ann, bob, carol = people["ann"], people["bob"], people["carol"]
    ann_headers, bob_headers = login(client, ann), login(client, bob)
    [bob_key] = keys_by_reviewer(app)[bob["id"]]
    assert bob_key in at_rest(app)  # the check below can see a key at rest
    abandon(app, bob["id"], idle_past(app), idle_past(app))

    login(client, carol)

    assert set(keys_by_reviewer(app)) == {ann["id"], carol["id"]}
    assert bob_key not in at_rest(app)
    assert reads_case(client, ann_headers, people["ref"])
    assert client.get("/api/v1/cases", headers=bob_headers).status_code == 401


@pytest.mark.parametrize("command", [["deadlines"], ["sessions", "purge"]])
def test_an_abandoned_session_goes_with_its_key_on_schedule(
        app: Flask, client: FlaskClient, people: dict[str, Any], command: list[str]) -> None:
    ann, bob = people["ann"], people["bob"]
    ann_headers = login(client, ann)
    login(client, bob)
    [bob_key] = keys_by_reviewer(app)[bob["id"]]
    abandon(app, bob["id"], idle_past(app), idle_past(app))
    assert bob_key in at_rest(app)
    runner = app.test_cli_runner()

    first = runner.invoke(args=command)

    assert first.exit_code == 0, first.output
    lines = first.output.splitlines()
    assert lines[-1] == "1 expired session(s) removed"
    if command == ["deadlines"]:  # its own line is as it was, the new one after it
        assert lines[-2] == ("reminders sent for 0 case(s); 0 case(s) escalated; "
                             "0 case(s) overdue")
    assert set(keys_by_reviewer(app)) == {ann["id"]}
    assert bob_key not in at_rest(app)
    again = runner.invoke(args=command)
    assert again.exit_code == 0 and again.output.splitlines()[-1] == \
        "0 expired session(s) removed"
    assert reads_case(client, ann_headers, people["ref"])


def test_a_live_session_survives_every_purge_and_still_works(
        app: Flask, client: FlaskClient, people: dict[str, Any]) -> None:
    ann = people["ann"]
    ann_headers = login(client, ann)
    # Quiet for almost as long as allowed, and old but not too old.
    almost_idle = utcnow() - dt.timedelta(minutes=settings_of(app).session_idle_minutes - 1)
    almost_old = utcnow() - dt.timedelta(hours=settings_of(app).session_max_hours) \
        + dt.timedelta(minutes=5)
    abandon(app, ann["id"], almost_old, almost_idle)
    [ann_key] = keys_by_reviewer(app)[ann["id"]]

    login(client, people["carol"])
    result = app.test_cli_runner().invoke(args=["deadlines"])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[-1] == "0 expired session(s) removed"
    result = app.test_cli_runner().invoke(args=["sessions", "purge"])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[-1] == "0 expired session(s) removed"

    assert keys_by_reviewer(app)[ann["id"]] == [ann_key]
    assert reads_case(client, ann_headers, people["ref"])


def test_a_session_past_its_lifetime_goes_even_when_in_use(app: Flask,
                                                          people: dict[str, Any]) -> None:
    settings = settings_of(app)
    start = utcnow()
    with db.new_session(app) as s:
        secret, _ = sessions.login(s, settings, people["ann"]["email"],
                                   people["ann"]["password"], now=start)
        last = start
        for minutes in range(0, settings.session_max_hours * 60, 20):  # busy all day
            last = start + dt.timedelta(minutes=minutes)
            assert sessions.authenticate(s, settings, secret, now=last) is not None
            assert sessions.purge_expired(s, settings, now=last) == 0
        late = start + dt.timedelta(hours=settings.session_max_hours, minutes=1)
        seen = s.scalar(select(ReviewerSession.last_seen))
        assert seen is not None and late - seen < dt.timedelta(
            minutes=settings.session_idle_minutes)  # recently seen: only its age ends it

        assert sessions.purge_expired(s, settings, now=late) == 1
    assert keys_by_reviewer(app) == {}


def _disabled(s: Any, reviewer_id: str, now: dt.datetime) -> None:
    # As if disabled by a path that left the rows behind (an older version, plain SQL).
    s.execute(update(Reviewer).where(Reviewer.id == reviewer_id).values(active=False))


def _new_credentials(s: Any, reviewer_id: str, now: dt.datetime) -> None:
    s.execute(update(Reviewer).where(Reviewer.id == reviewer_id).values(
        credentials_version=Reviewer.credentials_version + 1))


def _from_the_future(s: Any, reviewer_id: str, now: dt.datetime) -> None:
    s.execute(update(ReviewerSession).where(ReviewerSession.reviewer_id == reviewer_id)
              .values(created=now + dt.timedelta(hours=1), last_seen=now))


@pytest.mark.parametrize("spoil", [_disabled, _new_credentials, _from_the_future],
                         ids=["disabled reviewer", "changed credentials", "created later"])
def test_a_session_no_one_may_use_is_purged(
        app: Flask, client: FlaskClient, people: dict[str, Any],
        spoil: Callable[[Any, str, dt.datetime], None]) -> None:
    ann_headers = login(client, people["ann"])
    login(client, people["bob"])
    login(client, people["bob"])
    bob_keys = keys_by_reviewer(app)[people["bob"]["id"]]
    now = utcnow()
    with db.new_session(app) as s:
        spoil(s, people["bob"]["id"], now)
        s.commit()
        assert sessions.purge_expired(s, settings_of(app), now=now) == 2
    assert set(keys_by_reviewer(app)) == {people["ann"]["id"]}
    stored = at_rest(app)
    assert all(key not in stored for key in bob_keys)
    assert reads_case(client, ann_headers, people["ref"])


@contextmanager
def reviewer_session_deletes(app: Flask) -> Iterator[list[str]]:
    """Every DELETE on reviewer_sessions sent meanwhile (tests.support.statements)."""
    seen: list[str] = []

    def keep(statement: str, _outside: bool) -> None:
        if statement.lstrip().upper().startswith("DELETE FROM REVIEWER_SESSIONS"):
            seen.append(statement)

    with watched(app, keep):
        yield seen


def test_the_purge_at_sign_in_is_one_statement_however_many_rows_go(
        app: Flask, client: FlaskClient, people: dict[str, Any]) -> None:
    for _ in range(6):
        login(client, people["bob"])
    abandon(app, people["bob"]["id"], idle_past(app), idle_past(app))
    assert len(keys_by_reviewer(app)[people["bob"]["id"]]) == 6

    with reviewer_session_deletes(app) as deletes:
        login(client, people["carol"])

    assert set(keys_by_reviewer(app)) == {people["carol"]["id"]}
    assert len(deletes) == 1, deletes
