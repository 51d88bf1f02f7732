"""What the fast paths must not lose: exact inbox totals, routing under the write lock,
the day of a token's use, and integrity failures that stay 409s."""

from __future__ import annotations

import contextlib
import datetime as dt
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import bindparam, func, insert, inspect, select, update
from sqlalchemy.orm import Session

from tests.support import services
from tests.support.factories import login, make_reviewer, share_case, submit_concern
from tests.support.statements import watched
from tests.support.webflow import post_form
from whistle import crypto, instance_keys, keys, settings_of
from whistle.cases import intake
from whistle.cases import keys as casekeys
from whistle.store import counts, db
from whistle.store.models import (
    Assignment,
    AuditEvent,
    Concern,
    Exclusion,
    InboxCount,
    Reviewer,
    WrappedKey,
)
from whistle.store.prepared import Prepared, PreparedQuery


def live_total(app: Flask, reviewer_id: str, status: str | None = None) -> int:
    with db.new_session(app) as s:
        q = select(func.count()).select_from(Assignment).where(
            Assignment.reviewer_id == reviewer_id)
        if status == "open":
            q = q.where(Assignment.status != "closed")
        elif status:
            q = q.where(Assignment.status == status)
        return s.scalar(q) or 0


def api_total(client: FlaskClient, headers: dict[str, str], status: str = "") -> int:
    response = client.get(f"/api/v1/cases?status={status}", headers=headers)
    assert response.status_code == 200, response.get_data(as_text=True)
    total: int = response.get_json()["total"]
    return total


def no_mismatches(app: Flask) -> list[Any]:
    with db.engine_for(app).connect() as conn:
        return counts.mismatches(conn)


def test_inbox_totals_stay_exact_through_the_whole_workflow(app: Flask,
                                                            client: FlaskClient) -> None:
    ann, bob, cat = make_reviewer(app), make_reviewer(app), make_reviewer(app)
    refs = [submit_concern(client, details=f"Concern number {i}")["case_ref"] for i in range(5)]
    heads = {r["id"]: login(client, r) for r in (ann, bob, cat)}
    with db.new_session(app) as s:
        holders = {ref: sorted(s.scalars(select(Assignment.reviewer_id).where(
            Assignment.concern_id == ref))) for ref in refs}
    first, second = holders[refs[0]][:2]
    for to in ("acknowledged", "investigating"):
        assert client.post(f"/api/v1/cases/{refs[0]}/transitions", json={"to": to},
                           headers=heads[first]).status_code == 200
    proposed = client.post(f"/api/v1/cases/{refs[0]}/transitions",
                           json={"to": "closed", "outcome": "substantiated",
                                 "note": "Closing this."}, headers=heads[first])
    assert proposed.status_code == 200, proposed.get_data(as_text=True)
    confirmed = client.post(f"/api/v1/cases/{refs[0]}/transitions",
                            json={"to": "closed", "outcome": "substantiated"},
                            headers=heads[second])
    assert confirmed.get_json()["status"] == "closed", confirmed.get_data(as_text=True)
    # Share a case with the one reviewer who does not hold it yet (a new assignment).
    outsider = next((r for r in (ann, bob, cat) if r["id"] not in holders[refs[1]]), None)
    if outsider is not None:
        holder, approver = holders[refs[1]][:2]  # proposed by one, approved by the other
        shared = share_case(client, refs[1], outsider["id"], heads[holder], heads[approver])
        assert shared.status_code == 201, shared.get_data(as_text=True)

    assert no_mismatches(app) == []
    for r in (ann, bob, cat):
        for status in ("", "open", "received", "closed", "investigating"):
            assert api_total(client, heads[r["id"]], status) == live_total(
                app, r["id"], status or None), (r["name"], status)
    assert sum(api_total(client, heads[r["id"]]) for r in (ann, bob, cat)) >= 10
    # The total rides on the page's rows; past the last page it is read on its own.
    beyond = client.get("/api/v1/cases?page=50", headers=heads[first]).get_json()
    assert beyond["cases"] == [] and beyond["total"] == live_total(app, first)


def test_recount_repairs_counts_a_bulk_load_left_wrong(app: Flask, client: FlaskClient) -> None:
    one, two = make_reviewer(app), make_reviewer(app)
    submit_concern(client), submit_concern(client)
    with db.engine_for(app).begin() as conn:  # what a Core bulk insert or a restore leaves
        conn.execute(update(InboxCount).values(n=InboxCount.n + 7))
    wrong = no_mismatches(app)
    assert len(wrong) == 2 and all(kept == real + 7 for _r, _s, kept, real in wrong)
    runner = app.test_cli_runner()
    checked = runner.invoke(args=["inbox", "recount", "--check"])
    assert checked.exit_code == 1 and "counted 9, really 2" in checked.output
    assert runner.invoke(args=["inbox", "recount"]).exit_code == 0
    assert no_mismatches(app) == []
    assert runner.invoke(args=["inbox", "recount", "--check"]).output.strip() == \
        "inbox counts: all correct"
    assert api_total(client, login(client, one)) == 2 == api_total(client, login(client, two))


def test_a_reviewer_disabled_while_a_concern_was_sealed_gets_no_copy(
        app: Flask, client: FlaskClient, monkeypatch: pytest.MonkeyPatch) -> None:
    """Sealing runs before the write lock; whatever changed meanwhile is routed again."""
    reviewers = [make_reviewer(app) for _ in range(2)]  # MIN_REVIEWERS 2: both are routed
    leaving = reviewers[0]["id"]

    take_write_lock = db.take_write_lock

    def meanwhile(session: Session) -> None:  # another worker disables a reviewer first
        with db.new_session(app) as other:
            other.execute(update(Reviewer).where(Reviewer.id == leaving).values(active=False))
            other.commit()
        take_write_lock(session)

    monkeypatch.setattr(db, "take_write_lock", meanwhile)  # the real lock, after the change
    with app.app_context(), db.unit_of_work(db.database_of(app), db.Mode.WRITE_WITH_LOCK) as unit:
        session = unit.session
        sub = intake.parse_submission({"category": "conduct", "details": "Sealed twice."},
                                      session, settings_of(app))
        receipt = intake.submit(session, instance_keys(), settings_of(app), sub)
    with db.new_session(app) as s:
        assigned = set(s.scalars(select(Assignment.reviewer_id).where(
            Assignment.concern_id == receipt.case_ref)))
        wrapped_for = set(s.scalars(select(WrappedKey.recipient_id).where(
            WrappedKey.concern_id == receipt.case_ref, WrappedKey.recipient_kind == "reviewer")))
    assert assigned == wrapped_for == {reviewers[1]["id"]}
    assert receipt.under_routed and receipt.reviewer_count == 1
    assert no_mismatches(app) == []


def test_a_status_check_records_the_day_once_and_reads_after(app: Flask,
                                                            client: FlaskClient) -> None:
    make_reviewer(app), make_reviewer(app)
    token = submit_concern(client)["token"]
    first = client.post("/api/v1/status", json={"token": token}).get_json()
    second = client.post("/api/v1/status", json={"token": token}).get_json()
    assert first["token_last_used"] is None  # never used before this check
    assert second["token_last_used"] == first["created"]  # today, recorded by the first


def test_a_damaged_reporter_key_is_an_integrity_error_once_a_message_needs_it(
        app: Flask, client: FlaskClient) -> None:
    one, _two = make_reviewer(app), make_reviewer(app)
    receipt = submit_concern(client)
    token, ref = receipt["token"], receipt["case_ref"]
    with db.new_session(app) as s:
        row = s.scalars(select(WrappedKey).where(WrappedKey.concern_id == ref,
                                                 WrappedKey.recipient_kind == "reporter")).one()
        row.blob = row.blob[:-1] + bytes([row.blob[-1] ^ 1])
        s.commit()
    # No message yet: the status needs no key, and still answers.
    assert client.post("/api/v1/status", json={"token": token}).status_code == 200
    posted = client.post(f"/api/v1/cases/{ref}/messages", json={"body": "Can we talk?"},
                         headers=login(client, one))
    assert posted.status_code == 201
    damaged = client.post("/api/v1/status", json={"token": token})
    assert damaged.status_code == 409 and damaged.get_json()["error"] == "integrity_error"
    assert "Can we talk?" not in damaged.get_data(as_text=True)


def test_a_concern_with_no_one_to_route_to_is_still_stored(app: Flask,
                                                           client: FlaskClient) -> None:
    receipt = submit_concern(client, details="Nobody is enrolled yet.")
    assert receipt["reviewer_count"] == 0 and receipt["under_routed"] is True
    with db.new_session(app) as s:
        kinds = sorted(s.scalars(select(WrappedKey.recipient_kind).where(
            WrappedKey.concern_id == receipt["case_ref"])))
    assert kinds == ["recovery", "reporter"]  # both keys in one wrap for the recovery key
    assert no_mismatches(app) == []


def test_cases_wrapped_before_keys_were_wrapped_together_still_open(
        app: Flask, client: FlaskClient, recovery_key_file: Path) -> None:
    """Older cases hold a case-key row and a thread-key row per recipient; both still open."""
    one, _two = make_reviewer(app), make_reviewer(app)
    ref = submit_concern(client, details="Wrapped the older way.")["case_ref"]
    with db.new_session(app) as s:
        row = s.scalars(select(WrappedKey).where(
            WrappedKey.concern_id == ref, WrappedKey.recipient_id == one["id"])).one()
        assert row.key_kind == casekeys.BOTH
        public = s.get_one(Reviewer, one["id"]).public_key
        # The two keys, as the recovery key holder opens them; stored again the older way.
        found = casekeys.unwrap(s, ref, "recovery", "org",
                                keys.read_recovery_private(str(recovery_key_file)))
        s.delete(row)
        for kind in (casekeys.CASE, casekeys.THREAD):
            s.add(WrappedKey(concern_id=ref, recipient_kind="reviewer", recipient_id=one["id"],
                             key_kind=kind, blob=crypto.wrap_key(found[kind], public,
                             casekeys.wrap_context(ref, kind, "reviewer", one["id"]))))
        s.commit()
    opened = client.get(f"/api/v1/cases/{ref}", headers=login(client, one))
    assert opened.status_code == 200, opened.get_data(as_text=True)
    assert opened.get_json()["details"] == "Wrapped the older way."


def test_a_first_reply_shows_on_the_page_that_confirms_it(app: Flask,
                                                          client: FlaskClient) -> None:
    """The status check skips the conversation of a case that has none; a reply sent from
    the page must still show on the page that says it was sent."""
    make_reviewer(app), make_reviewer(app)
    token = submit_concern(client)["token"]
    assert client.post("/api/v1/status", json={"token": token}).get_json()["messages"] == []
    reply = "My first words to the reviewers."
    page = post_form(client, "/status", {"token": token, "action": "reply", "body": reply},
                     "/status")
    text = page.get_data(as_text=True)
    assert page.status_code == 200 and "Your message was sent." in text and reply in text
    later = client.post("/api/v1/status", json={"token": token}).get_json()["messages"]
    assert [m["body"] for m in later] == [reply]


@pytest.mark.parametrize("app_config", [{"SQLITE_CHECKPOINT_THREAD": True}])
def test_sqlite_checkpoints_run_in_a_background_thread_not_in_requests(
        app: Flask, client: FlaskClient) -> None:
    """With the thread on (gunicorn.conf.py), a request's commit never copies the WAL back
    (its threshold is SQLITE_WAL_MAX_PAGES); the thread does, soon after."""
    url = app.config["DATABASE_URL"]
    if not url.startswith("sqlite:///"):
        pytest.skip("SQLite's write-ahead log; PostgreSQL checkpoints by itself")
    path = Path(url[len("sqlite:///"):])
    with db.new_session(app) as session:
        conn = session.connection()
        assert conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == 16000
        assert conn.exec_driver_sql("PRAGMA cache_size").scalar() == -64 * 1024
        session.rollback()
    make_reviewer(app), make_reviewer(app)
    client.get("/healthz")  # the first request starts the thread
    assert any(t.name == "whistle-wal-checkpoint" for t in threading.enumerate())
    main_file = path.read_bytes()
    token = submit_concern(client, details="Checkpointed in the background.")["token"]
    deadline = time.monotonic() + 10
    while path.read_bytes() == main_file and time.monotonic() < deadline:
        time.sleep(0.05)
    assert path.read_bytes() != main_file, "the WAL was never copied into the database file"
    # The case reads back from the file the checkpoint wrote.
    assert client.post("/api/v1/status", json={"token": token}).status_code == 200


def _drop_app_connections(postgres: services.PostgresServer, database_url: str) -> int:
    """What a PostgreSQL restart does to the app's pooled connections: they die."""
    name = database_url.rsplit("/", 1)[1]
    with postgres._admin() as admin:
        return len(admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid()", (name,)).fetchall())


def test_requests_survive_postgresql_dropping_its_connections(
        app: Flask, client: FlaskClient, postgres: services.PostgresServer | None) -> None:
    """No ping before every request: a request whose pooled connection turns out dead runs
    again, once, on a fresh one (nothing was written), and nothing is stored twice."""
    if postgres is None:
        pytest.skip("PostgreSQL's pooled connections (WHISTLE_TEST_DB=postgres)")
    url = app.config["DATABASE_URL"]
    reviewer = make_reviewer(app)
    make_reviewer(app)
    token = submit_concern(client)["token"]
    headers = login(client, reviewer)
    requests: list[tuple[str, Any]] = [
        ("inbox", lambda: client.get("/api/v1/cases", headers=headers)),
        ("status", lambda: client.post("/api/v1/status", json={"token": token})),
        ("submit", lambda: client.post("/api/v1/concerns", json={
            "category": "conduct", "details": "Sent just after the database restarted."})),
        ("form page", lambda: client.get("/report")),
    ]
    for name, send in requests:
        assert send().status_code < 300, name  # the pool holds a live connection
        assert _drop_app_connections(postgres, url) >= 1, name
        got = send()
        assert got.status_code < 300, (name, got.status_code, got.get_data(as_text=True))
    with db.new_session(app) as s:  # outside a request: tested at checkout instead
        _drop_app_connections(postgres, url)
        assert s.scalar(select(func.count()).select_from(Concern)) == 3  # none twice


@contextlib.contextmanager
def statement_modes(app: Flask) -> Iterator[list[tuple[str, bool]]]:
    """(first word, outside any transaction?) of every statement the app sends meanwhile
    (tests.support.statements.watched says how each engine is watched)."""
    seen: list[tuple[str, bool]] = []
    with watched(app, lambda statement, outside: seen.append((statement.split()[0], outside))):
        yield seen


def test_the_status_check_reads_outside_transactions(app: Flask, client: FlaskClient) -> None:
    """The lookup runs without BEGIN and ROLLBACK (PostgreSQL: autocommit; SQLite: on a
    pooled connection outside the session, the statement its own read transaction); the
    day's first check still writes the day of use in a real transaction, and everything
    after is ordinary (the reads that follow that write on the day's first check, e.g. the
    receipt and the identity's state, run in an ordinary transaction: once a day per case)."""
    make_reviewer(app), make_reviewer(app)
    token = submit_concern(client)["token"]
    with statement_modes(app) as seen:
        first = client.post("/api/v1/status", json={"token": token})  # records the day
        day_written = [verb for verb, _a in seen].index("UPDATE")
        lookups_first = [autocommit for verb, autocommit in seen[:day_written]
                         if verb == "SELECT"]
        writes_first = [autocommit for verb, autocommit in seen if verb == "UPDATE"]
        seen.clear()
        second = client.post("/api/v1/status", json={"token": token})
        submitted = client.post("/api/v1/concerns", json={
            "category": "conduct", "details": "After two status checks."})
    assert first.status_code == second.status_code == 200
    assert second.get_json()["token_last_used"] == first.get_json()["created"]
    assert lookups_first and all(lookups_first)  # the lookup: autocommit
    assert writes_first == [False]  # the day of use: a transaction of its own
    assert submitted.status_code == 201
    assert [a for verb, a in seen if verb == "SELECT"][0] is True  # the second check
    inserts = [a for verb, a in seen if verb == "INSERT"]
    assert len(inserts) >= 5 and not any(inserts)  # the submission: transactional


def test_a_status_check_is_one_read_and_still_says_everything(app: Flask,
                                                            client: FlaskClient) -> None:
    """After the day's first check, a status check of a concern sent online is one statement:
    the lookup itself carries the operator's token gate, the identity's state and the stored
    receipt (each was once a read of its own). The answer still holds all three."""
    make_reviewer(app), make_reviewer(app)
    made = submit_concern(client, identity={"name": "Named Reporter"})
    assert client.post("/api/v1/status", json={"token": made["token"]}).status_code == 200
    with statement_modes(app) as seen:
        answer = client.post("/api/v1/status", json={"token": made["token"]})
    body = answer.get_json()
    assert answer.status_code == 200, body
    assert body["receipt"] == made["receipt"]
    assert (body["identity_state"], body["identity_release"]) == ("sealed", "on_request")
    assert "transcript" not in body
    assert [verb for verb, _a in seen if verb not in ("BEGIN", "COMMIT", "ROLLBACK")] \
        == ["SELECT"], seen
    # An anonymous concern: no identity, the receipt all the same, still one read.
    anonymous = submit_concern(client)
    assert client.post("/api/v1/status", json={"token": anonymous["token"]}).status_code == 200
    with statement_modes(app) as seen:
        body = client.post("/api/v1/status", json={"token": anonymous["token"]}).get_json()
    assert body["identity_state"] == "none" and body["receipt"] == anonymous["receipt"]
    assert [verb for verb, _a in seen if verb == "SELECT"] == ["SELECT"], seen


@contextlib.contextmanager
def statements_seen(app: Flask) -> Iterator[list[str]]:
    """The text of every statement sent to the database meanwhile."""
    seen: list[str] = []
    with watched(app, lambda statement, _outside: seen.append(statement)):
        yield seen


def test_opening_a_case_reads_the_parts_it_has_and_only_those(app: Flask,
                                                              client: FlaskClient) -> None:
    """A concern sent online that names no one and gives no identity: the case view reads no
    oral record, no person concerned and no identity state (the case's own read says they are
    absent). A concern with an identity still reads its state, and shows it."""
    reviewers = [make_reviewer(app), make_reviewer(app)]
    plain = submit_concern(client)["case_ref"]
    named = submit_concern(client, identity={"name": "Named Reporter"})["case_ref"]
    heads = login(client, reviewers[0])
    for case_ref in (plain, named):  # the day's first opening records "opened"
        assert client.get(f"/api/v1/cases/{case_ref}", headers=heads).status_code == 200
    with statements_seen(app) as seen:
        opened = client.get(f"/api/v1/cases/{plain}", headers=heads)
    body = opened.get_json()
    assert opened.status_code == 200, body
    assert (body["channel"], body["transcript"], body["about"], body["identity"],
            body["identity_state"], body["identity_requests"]) == ("web", None, None, None,
                                                                    "none", [])
    # Each read names its table in its first column (``SELECT oral_reports.concern_id ...``);
    # the case's own read only tests the parts' presence in EXISTS clauses.
    read = [first_table(statement) for statement in seen]
    assert "concerns" in read  # the positive control: the case's own read was seen
    for table in ("oral_reports", "concern_about", "case_identities", "changes"):
        assert table not in read, (table, seen)
    with statements_seen(app) as seen:
        body = client.get(f"/api/v1/cases/{named}", headers=heads).get_json()
    assert body["identity_state"] == "sealed" and body["identity"] is None
    assert "case_identities" in [first_table(statement) for statement in seen]


def first_table(statement: str) -> str:
    """The table of a SELECT's first column (``SELECT t.c AS x, ...`` -> ``t``), else ''."""
    words = statement.split()
    if len(words) < 2 or words[0].upper() != "SELECT":
        return ""
    return words[1].split(".")[0].strip('"')


def test_a_reviewers_inbox_and_case_view_read_in_autocommit_on_postgresql(
        app: Flask, client: FlaskClient, postgres: services.PostgresServer | None) -> None:
    """Their only writes are single statements (last seen, the "opened" event): both still
    land, and a change to the case stays transactional."""
    if postgres is None:
        pytest.skip("PostgreSQL's transactions (WHISTLE_TEST_DB=postgres)")
    reviewer = make_reviewer(app)
    make_reviewer(app)
    ref = submit_concern(client)["case_ref"]
    headers = login(client, reviewer)
    with statement_modes(app) as seen:
        inbox_page = client.get("/api/v1/cases", headers=headers)
        inbox_reads = list(seen)
        seen.clear()
        opened = client.get(f"/api/v1/cases/{ref}", headers=headers)
        view_statements = list(seen)
        seen.clear()
        moved = client.post(f"/api/v1/cases/{ref}/transitions", json={"to": "acknowledged"},
                            headers=headers)
    assert inbox_page.status_code == opened.status_code == moved.status_code == 200
    assert inbox_reads and all(a for _verb, a in inbox_reads)
    assert view_statements[0] == ("SELECT", True)
    assert ("INSERT", True) in view_statements  # "opened", one statement, autocommitted
    assert not any(a for _verb, a in seen)  # the transition: one transaction
    types = [e["type"] for e in client.get(f"/api/v1/cases/{ref}", headers=headers)
             .get_json()["events"]]
    assert types.count("opened") == 1 and "acknowledged" in types


def test_a_prepared_insert_stores_what_a_core_insert_stores(app: Flask) -> None:
    """Driver SQL with the columns' own conversions (dates, times, booleans, bytes) and the
    constant defaults of the columns a row leaves out: read back, the two rows agree."""
    # Whole seconds, as audit events are kept: SQLite's own adapter would write them
    # without the ".000000" SQLAlchemy writes and compares with.
    day, moment = dt.date(2026, 3, 4), dt.datetime(2026, 3, 4, 5, 6, 7)
    row = {"category": "conduct", "unit": None, "about_senior": True, "status": "received",
           "created": day, "acknowledge_by": day + dt.timedelta(days=7), "under_routed": True,
           "details_ct": b"\x00\xffsealed", "identity_ct": None, "idempotency": None}
    with db.new_session(app) as s:
        conn = s.connection()
        conn.execute(insert(Concern), [row | {"id": "WH-CORE", "token_lookup": b"core"}])
        Prepared(insert(Concern)).run(conn, [row | {"id": "WH-PREP", "token_lookup": b"prep"}])
        Prepared(insert(AuditEvent)).run(conn, [
            {"concern_id": ref, "seq": 1, "at": moment, "type": "received", "actor": "reporter",
             "data": "{}", "prev_hash": b"p", "hash": b"h"} for ref in ("WH-CORE", "WH-PREP")])
        s.commit()
    with db.new_session(app) as s:
        core, prep = (s.get_one(Concern, ref) for ref in ("WH-CORE", "WH-PREP"))
        columns = [c.key for c in Concern.__table__.columns if c.key not in ("id", "token_lookup")]
        assert {c: getattr(prep, c) for c in columns} == {c: getattr(core, c) for c in columns}
        assert prep.created == day and prep.about_senior is True and prep.overdue is False
        assert prep.failed_lookups == 0  # a default the row left out
        found = s.scalars(select(AuditEvent.concern_id).where(AuditEvent.at == moment)
                          .order_by(AuditEvent.concern_id)).all()
        assert found == ["WH-CORE", "WH-PREP"]  # found by the same value, in SQL


def test_a_prepared_insert_refuses_a_default_it_cannot_compute(app: Flask) -> None:
    with db.new_session(app) as s, pytest.raises(TypeError, match="created"):
        Prepared(insert(Reviewer)).run(s.connection(), [{"id": "r", "name": "n", "email": "e",
                                                         "public_key": b"k"}])


def test_the_migrated_schema_is_the_models_schema(app: Flask) -> None:
    """Alembic's comparison of the database the migrations built (SQLite or PostgreSQL)
    with the models finds nothing to add or drop: tables, columns, indexes, constraints.
    (The wrapped keys' index on concern_id alone went in 0003: the unique key covers it.)"""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from whistle.store.models import Base

    with db.engine_for(app).connect() as conn:
        differences = compare_metadata(MigrationContext.configure(conn), Base.metadata)
        indexes = {ix["name"] for ix in inspect(conn).get_indexes("wrapped_keys")}
    assert differences == []
    assert "ix_wrapped_keys_concern_id" not in indexes


def test_a_prepared_query_returns_what_core_returns(app: Flask, client: FlaskClient) -> None:
    """Dates, booleans, bytes, NULLs, a value the statement carries (coalesce's 0) and an
    unlabeled column: the same rows as a Core execute, on either engine."""
    make_reviewer(app), make_reviewer(app)
    submit_concern(client), submit_concern(client, about_senior=True)
    statement = select(Concern.id, Concern.created, Concern.about_senior, Concern.feedback_by,
                       Concern.token_lookup, func.coalesce(Concern.feedback_by, Concern.created),
                       func.coalesce(Concern.outcome, "none").label("outcome"),
                       ).where(Concern.status == bindparam("status")).order_by(Concern.id)
    with db.new_session(app) as s:
        conn = s.connection()
        core = [tuple(r) for r in conn.execute(statement, {"status": "received"})]
        prepared = PreparedQuery(statement).all(conn, {"status": "received"})
    assert len(core) == 2 and prepared == core
    assert isinstance(prepared[0].created, dt.date) and prepared[1].outcome == "none"
    assert {r.about_senior for r in prepared} == {True, False}


def test_sqlite_engines_have_no_statement_listeners(app: Flask, tmp_path: Path) -> None:
    """whistle.store.prepared sends SQLite statements straight to the driver, past SQLAlchemy's
    statement events: a listener registered on a SQLite engine would silently miss the
    hot statements, so there must be none (PostgreSQL's write note is one, and there
    every statement goes through SQLAlchemy)."""
    engines = [db.make_engine(f"sqlite:///{tmp_path / 'plain.db'}")]
    if db.engine_for(app).dialect.name == "sqlite":
        engines.append(db.engine_for(app))
    for engine in engines:
        for name in ("before_cursor_execute", "after_cursor_execute"):
            assert len(getattr(engine.dispatch, name)) == 0, name
    pg = db.make_engine("postgresql+psycopg://whistle@127.0.0.1:1/none")
    assert len(pg.dispatch.before_cursor_execute) == 1  # the check above can see one


def test_prepared_statements_fail_as_sqlalchemy_statements_fail(app: Flask,
                                                                client: FlaskClient) -> None:
    """A driver error comes back as SQLAlchemy's (IntegrityError, OperationalError...)
    with the driver's error inside, whichever way the statement went: callers catch
    those (409 on a duplicate, 503 on a locked database, a retry after a disconnect)."""
    from sqlalchemy.exc import IntegrityError

    make_reviewer(app), make_reviewer(app)
    ref = submit_concern(client)["case_ref"]
    dbapi_error = db.engine_for(app).dialect.loaded_dbapi.Error
    with db.new_session(app) as s:
        rows = [{"tag": b"same tag", "concern_id": ref}]
        insert_exclusion = Prepared(insert(Exclusion))
        insert_exclusion.run(s.connection(), rows)
        with pytest.raises(IntegrityError) as single:
            insert_exclusion.run(s.connection(), rows)
        s.rollback()
        with pytest.raises(IntegrityError) as many:
            insert_exclusion.run(s.connection(), rows + rows)
        s.rollback()
    assert isinstance(single.value.orig, dbapi_error) and isinstance(many.value.orig, dbapi_error)
    assert "INSERT INTO exclusions" in str(single.value.statement)


def test_a_driver_query_returns_what_the_session_query_returns(app: Flask,
                                                                client: FlaskClient) -> None:
    """``all_on_driver`` (the status lookup's way on SQLite) gives the same rows as ``all``,
    and is refused for any other engine (whose statements must go through SQLAlchemy)."""
    make_reviewer(app), make_reviewer(app)
    submit_concern(client), submit_concern(client, about_senior=True)
    query = PreparedQuery(select(Concern.id, Concern.created, Concern.about_senior,
                                 Concern.feedback_by).where(Concern.status == bindparam("s"))
                          .order_by(Concern.id))
    engine = db.engine_for(app)
    with db.new_session(app) as s:
        in_session = query.all(s.connection(), {"s": "received"})
    pooled = engine.raw_connection()
    try:
        if engine.dialect.name != "sqlite":
            with pytest.raises(TypeError):
                query.all_on_driver(engine.dialect, pooled.driver_connection, {"s": "received"})
            return
        on_driver = query.all_on_driver(engine.dialect, pooled.driver_connection,
                                        {"s": "received"})
    finally:
        pooled.close()
    assert len(in_session) == 2 and on_driver == in_session
    assert isinstance(on_driver[0].created, dt.date)
    assert {r.about_senior for r in on_driver} == {True, False}
