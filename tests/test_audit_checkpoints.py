"""Issue 19, item 6: a trail no one can cut unseen.

A database writer (here: statements through a session or a raw connection of the real
app's database, SQLite or PostgreSQL) deletes a case, cuts the tail of a trail after a
checkpoint, edits a status, an outcome or a message's sender, forges a checkpoint's
signature or rolls the checkpoints back: ``flask --app app audit verify`` exits 1 and
names the case (or the checkpoint). An untouched instance passes, also right after
activity that no checkpoint covers yet.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import delete, func, inspect, select, text, update

from tests.support.factories import login, make_reviewer, submit_concern
from whistle import crypto
from whistle.cases import checkpoints, registry
from whistle.store import db
from whistle.store.models import (
    AuditEvent,
    CaseRegistry,
    Checkpoint,
    CheckpointHead,
    Concern,
    Message,
)


def cli(app: Flask, *args: str) -> Result:
    return app.test_cli_runner().invoke(args=list(args))


def verify(app: Flask, *args: str) -> Result:
    return cli(app, "audit", "verify", *args)


def passes(app: Flask) -> Result:
    result = verify(app)
    assert result.exit_code == 0, result.output
    assert "BROKEN" not in result.output
    return result


def fails_naming(app: Flask, *names: str, args: tuple[str, ...] = ()) -> str:
    result = verify(app, *args)
    assert result.exit_code == 1, result.output
    broken = [line for line in result.output.splitlines() if line.startswith("BROKEN")]
    for name in names:
        assert any(name in line for line in broken), (name, result.output)
    return result.output


def checkpoint(app: Flask) -> str:
    result = cli(app, "audit", "checkpoint")
    assert result.exit_code == 0, result.output
    return result.output


def move(client: FlaskClient, headers: dict[str, str], ref: str, **body: Any) -> None:
    response = client.post(f"/api/v1/cases/{ref}/transitions", json=body, headers=headers)
    assert response.status_code == 200, response.get_data(as_text=True)


@pytest.fixture
def world(app: Flask, client: FlaskClient) -> dict[str, Any]:
    """Two reviewers; a closed case with a conversation (reviewer message, note, reporter
    reply, feedback released on closure) and an open case that was only received."""
    ann, bob = make_reviewer(app, "Ann Reviewer"), make_reviewer(app, "Bob Reviewer")
    closed = submit_concern(client)
    open_ = submit_concern(client)
    ref = closed["case_ref"]
    a, b = login(client, ann), login(client, bob)
    assert client.post(f"/api/v1/cases/{ref}/messages", json={"body": "To the reporter."},
                       headers=a).status_code == 201
    assert client.post(f"/api/v1/cases/{ref}/notes", json={"body": "Internal."},
                       headers=a).status_code == 201
    assert client.post("/api/v1/status/messages", json={"token": closed["token"],
                                                        "body": "A reply."}).status_code == 201
    move(client, a, ref, to="acknowledged")
    move(client, b, ref, to="closed", outcome="substantiated", feedback="What we found.")
    move(client, a, ref, to="closed")
    return {"ann": ann, "bob": bob, "a": a, "b": b, "closed": ref, "open": open_["case_ref"],
            "token": closed["token"]}


def messages_of(app: Flask, ref: str) -> dict[tuple[str, str], str]:
    """(kind, sender) -> message id, for a case."""
    with db.new_session(app) as s:
        return {(kind, sender): mid for mid, kind, sender in s.execute(
            select(Message.id, Message.kind, Message.sender)
            .where(Message.concern_id == ref)).tuples()}


def delete_case(app: Flask, ref: str) -> None:
    """What a database writer does to make a case disappear: every row that points at it,
    then the case row (foreign keys on)."""
    engine = db.engine_for(app)
    with engine.begin() as conn:
        tables = inspect(conn).get_table_names()
        if "attachment_chunks" in tables:
            conn.execute(text("DELETE FROM attachment_chunks WHERE attachment_id IN "
                              "(SELECT id FROM attachments WHERE concern_id = :c)"), {"c": ref})
        for table in tables:
            columns = {c["name"] for c in inspect(conn).get_columns(table)}
            if "concern_id" in columns and table not in ("case_registry", "checkpoint_heads"):
                conn.execute(text(f'DELETE FROM "{table}" WHERE concern_id = :c'),  # noqa: S608
                             {"c": ref})
        conn.execute(text("DELETE FROM concerns WHERE id = :c"), {"c": ref})


def last_event(app: Flask, ref: str) -> int:
    with db.new_session(app) as s:
        return int(s.scalar(select(func.max(AuditEvent.seq))
                            .where(AuditEvent.concern_id == ref)) or 0)


# -- untouched ------------------------------------------------------------------------


def test_an_untouched_instance_passes_before_and_after_checkpoints_and_new_activity(
        app: Flask, client: FlaskClient, world: dict[str, Any]) -> None:
    first = passes(app)
    assert "ok: 2 cases in the registry; 0 signed checkpoint(s)" in first.output
    assert "checkpoint #1 signed: 2 cases in the registry, 2 case head(s)" in checkpoint(app)
    passes(app)

    # Activity that no checkpoint covers yet: a new case, a message, a reopening.
    third = submit_concern(client)["case_ref"]
    assert client.post(f"/api/v1/cases/{world['open']}/messages", json={"body": "Hello."},
                       headers=world["b"]).status_code == 201
    move(client, world["a"], world["closed"], to="investigating", note="New evidence.")
    assert client.post("/api/v1/status/messages", json={"token": world["token"],
                                                        "body": "More."}).status_code == 201
    again = passes(app)
    assert "ok: 3 cases in the registry; 1 signed checkpoint(s), the latest #1" in again.output

    # Every deadlines run takes one, covering what changed since; then nothing is new.
    run = cli(app, "deadlines")
    assert run.exit_code == 0, run.output
    assert "checkpoint #2 signed: 3 cases in the registry, 3 case head(s)" in run.output
    assert "nothing new since checkpoint #2" in checkpoint(app)
    passes(app)
    with db.new_session(app) as s:
        recorded = dict(s.execute(select(CheckpointHead.concern_id, func.max(CheckpointHead.seq))
                                  .group_by(CheckpointHead.concern_id)).tuples().all())
    assert recorded == {ref: last_event(app, ref) for ref in (world["closed"], world["open"],
                                                              third)}


def test_the_registry_is_one_chain_written_with_each_submission(
        app: Flask, client: FlaskClient) -> None:
    """Six submissions at once (threads here, workers or machines in production) each get
    their own link: PostgreSQL orders them with an advisory lock, SQLite with its write
    lock."""
    make_reviewer(app), make_reviewer(app)
    clients = [app.test_client() for _ in range(6)]
    with ThreadPoolExecutor(max_workers=6) as pool:
        refs = list(pool.map(lambda c: submit_concern(c)["case_ref"], clients))
    with db.new_session(app) as s:
        rows = s.execute(select(CaseRegistry.seq, CaseRegistry.concern_id)
                         .order_by(CaseRegistry.seq)).tuples().all()
        chain = registry.verify(s, set())
    assert [seq for seq, _ in rows] == [1, 2, 3, 4, 5, 6]
    assert sorted(ref for _, ref in rows) == sorted(refs)
    assert chain.entries == 6 and chain.broken is None
    passes(app)


# -- a case deleted ---------------------------------------------------------------------


def test_deleting_a_case_row_and_its_rows_names_the_case(
        app: Flask, world: dict[str, Any]) -> None:
    """No checkpoint needed: the registry entry the submission wrote is left without its
    case."""
    delete_case(app, world["open"])
    out = fails_naming(app, f"case {world['open']}")
    assert "its case row is gone" in out and world["closed"] not in out


def test_deleting_a_case_and_its_registry_entry_after_a_checkpoint_names_the_case(
        app: Flask, world: dict[str, Any]) -> None:
    """The writer also deletes the registry's last entry (no link after it to break): the
    checkpoint's registry head and the case head it recorded still name the case."""
    checkpoint(app)
    victim = world["open"]
    delete_case(app, victim)
    with db.new_session(app) as s:
        assert s.scalar(select(func.max(CaseRegistry.seq))) == 2
        s.execute(delete(CaseRegistry).where(CaseRegistry.concern_id == victim))
        s.commit()
    out = fails_naming(app, f"case {victim}", "registry")
    assert "the trail is gone" in out and "case creations were deleted" in out


def test_deleting_a_registry_entry_in_the_middle_breaks_its_chain(
        app: Flask, world: dict[str, Any]) -> None:
    with db.new_session(app) as s:
        s.execute(delete(CaseRegistry).where(CaseRegistry.seq == 1))
        s.commit()
    out = fails_naming(app, "registry", f"case {world['closed']}")
    assert "not in the registry" in out


# -- a trail cut or rewritten -------------------------------------------------------------


def test_cutting_the_last_event_after_a_checkpoint_names_the_case(
        app: Flask, world: dict[str, Any]) -> None:
    checkpoint(app)
    ref = world["open"]  # received, assigned, assigned: the chain stays consistent when cut
    last = last_event(app, ref)
    with db.new_session(app) as s:
        s.execute(delete(AuditEvent).where(AuditEvent.concern_id == ref,
                                           AuditEvent.seq == last))
        s.commit()
    out = fails_naming(app, f"case {ref}")
    assert f"the trail ends at event {last - 1}, but checkpoint 1 recorded event {last}" in out
    # A later checkpoint does not launder the cut.
    checkpoint(app)
    fails_naming(app, f"case {ref}")


def test_rewriting_a_trail_consistently_after_a_checkpoint_names_the_case(
        app: Flask, world: dict[str, Any]) -> None:
    """A writer who edits an event and computes every later link again keeps the chain
    consistent, but not the head the checkpoint recorded."""
    from whistle.cases import audit

    checkpoint(app)
    ref = world["open"]
    with db.new_session(app) as s:
        events = audit.trail(s, ref)
        events[0].data = json.dumps({"attachments": 0, "reviewers": 1, "under_routed": False},
                                    sort_keys=True)
        prev = audit.GENESIS
        for e in events:
            e.prev_hash = prev
            e.hash = crypto.chain_hash(prev, audit._record(e))  # noqa: SLF001
            prev = e.hash
        s.commit()
    with db.new_session(app) as s:
        assert audit.verify(s) == (sum(1 for _ in s.scalars(select(AuditEvent.seq))), None)
    out = fails_naming(app, f"case {ref}")
    assert "is not the one checkpoint 1 recorded" in out


# -- status, outcome, sender ------------------------------------------------------------


@pytest.mark.parametrize("what", ["status", "outcome", "proposed_by"])
def test_editing_a_cases_status_or_outcome_names_the_case(
        app: Flask, world: dict[str, Any], what: str) -> None:
    ref = {"status": world["open"], "outcome": world["closed"],
           "proposed_by": world["closed"]}[what]
    value = {"status": "closed", "outcome": "not_substantiated",
             "proposed_by": world["ann"]["id"]}[what]
    with db.new_session(app) as s:
        s.execute(update(Concern).where(Concern.id == ref).values({what: value}))
        s.commit()
    out = fails_naming(app, f"case {ref}")
    assert f"{what} is {value!r}, but its trail says" in out


@pytest.mark.parametrize("kind, sender, forged", [
    ("message", "reviewer", "reporter"),  # a reviewer's words put in the reporter's mouth
    ("message", "reporter", "reviewer"),
    ("note", "reviewer", "reporter"),
    ("feedback", "reviewer", "reporter"),
])
def test_editing_a_messages_sender_names_the_case(
        app: Flask, world: dict[str, Any], kind: str, sender: str, forged: str) -> None:
    ref = world["closed"]
    mid = messages_of(app, ref)[(kind, sender)]
    with db.new_session(app) as s:
        s.execute(update(Message).where(Message.id == mid).values(sender=forged))
        s.commit()
    out = fails_naming(app, f"case {ref}")
    assert f"message {mid} says it is from the {forged}" in out


def test_attributing_a_message_to_another_reviewer_names_the_case(
        app: Flask, world: dict[str, Any]) -> None:
    ref = world["closed"]
    mid = messages_of(app, ref)[("message", "reviewer")]
    with db.new_session(app) as s:
        s.execute(update(Message).where(Message.id == mid).values(reviewer_id=world["bob"]["id"]))
        s.commit()
    out = fails_naming(app, f"case {ref}")
    assert f"message {mid} is attributed to {world['bob']['id']}" in out


# -- the checkpoints themselves ------------------------------------------------------------


def test_a_forged_checkpoint_signature_fails(app: Flask, world: dict[str, Any]) -> None:
    checkpoint(app)
    passes(app)
    other_key = crypto.generate_signing_key()
    with db.new_session(app) as s:
        cp = s.get_one(Checkpoint, 1)
        cp.signature = crypto.sign(other_key, checkpoints.message_of(cp))
        s.commit()
    out = fails_naming(app, "checkpoint 1")
    assert "signature does not verify" in out


def test_a_checkpoint_edited_without_its_key_fails(app: Flask, world: dict[str, Any]) -> None:
    checkpoint(app)
    with db.new_session(app) as s:
        s.execute(update(Checkpoint).values(registry_seq=1))
        s.commit()
    out = fails_naming(app, "checkpoint 1")
    assert "altered" in out and "signature does not verify" in out


def test_recorded_heads_removed_behind_a_checkpoint_fail(app: Flask, world: dict[str, Any]
                                                         ) -> None:
    """Deleting what the checkpoint recorded for a case, to cut its trail afterwards, does
    not match the signed digest."""
    checkpoint(app)
    with db.new_session(app) as s:
        s.execute(delete(CheckpointHead).where(CheckpointHead.concern_id == world["open"]))
        s.commit()
    out = fails_naming(app, "checkpoint 1")
    assert "the case heads it recorded were altered (1 found, 2 signed)" in out


def test_a_rollback_shows_against_a_copy_kept_elsewhere(
        app: Flask, client: FlaskClient, world: dict[str, Any], tmp_path: Path) -> None:
    """The checkpoints copied out (API or command line); then the database is rolled back
    to before the second checkpoint (a restored backup, the checkpoint and what came after
    deleted). The database alone cannot tell; the copy can."""
    checkpoint(app)
    late = submit_concern(client)["case_ref"]
    checkpoint(app)
    answer = client.get("/api/v1/admin/checkpoints", headers=world["a"])
    assert answer.status_code == 200
    kept = answer.get_json()
    assert [c["seq"] for c in kept["checkpoints"]] == [1, 2] and kept["next"] is None
    assert kept["checkpoints"][1]["registry"] == {"seq": 3, "hash": kept["checkpoints"][1][
        "registry"]["hash"]}
    exported = cli(app, "audit", "checkpoints")
    assert [json.loads(line) for line in exported.output.splitlines()] == kept["checkpoints"]
    later = client.get("/api/v1/admin/checkpoints?after=1", headers=world["b"]).get_json()
    assert [c["seq"] for c in later["checkpoints"]] == [2]
    for bad in ("-1", "x", "9" * 13):
        refused = client.get(f"/api/v1/admin/checkpoints?after={bad}", headers=world["a"])
        assert refused.status_code == 400
    assert client.get("/api/v1/admin/checkpoints").status_code == 401
    # The copy verifies on its own: the signature with the published signing key.
    published = client.get("/api/v1/roster").get_json()["signing_key"]
    import base64
    import datetime as dt

    for c in kept["checkpoints"]:
        signed = checkpoints.message(
            c["seq"], dt.datetime.fromisoformat(c["at"].rstrip("Z")), bytes.fromhex(c["prev"]),
            (c["registry"]["seq"], bytes.fromhex(c["registry"]["hash"])),
            (c["admin"]["seq"], bytes.fromhex(c["admin"]["hash"])),
            (c["heads"]["count"], bytes.fromhex(c["heads"]["digest"])))
        assert crypto.verify_signature(base64.b64decode(published), signed,
                                       base64.b64decode(c["signature"]))
        assert crypto.digest(signed).hex() == c["hash"]
    copy = tmp_path / "checkpoints.json"
    copy.write_text(answer.get_data(as_text=True))
    passes(app)
    assert verify(app, "--against", str(copy)).exit_code == 0

    delete_case(app, late)
    with db.new_session(app) as s:
        s.execute(delete(CheckpointHead).where(CheckpointHead.checkpoint == 2))
        s.execute(delete(Checkpoint).where(Checkpoint.seq == 2))
        s.execute(delete(CaseRegistry).where(CaseRegistry.concern_id == late))
        s.commit()
    passes(app)  # the window: without a copy, a rollback of whole checkpoints is not seen
    out = fails_naming(app, "checkpoint 2", args=("--against", str(copy)))
    assert "gone here: the database was rolled back" in out
    lines = tmp_path / "checkpoints.jsonl"
    lines.write_text(exported.output)
    fails_naming(app, "checkpoint 2", args=("--against", str(lines)))
    appended = tmp_path / "appended.jsonl"  # each hourly answer appended as it came
    appended.write_text(json.dumps({"checkpoints": kept["checkpoints"][:1], "next": None})
                        + "\n" + json.dumps(later) + "\n")
    fails_naming(app, "checkpoint 2", args=("--against", str(appended)))
    empty = tmp_path / "empty.json"
    empty.write_text('{"checkpoints": []}')
    refused = verify(app, "--against", str(empty))
    assert refused.exit_code == 2 and "holds no checkpoint" in refused.output


def test_upgrading_registers_the_cases_already_there(app: Flask, world: dict[str, Any]) -> None:
    """Migration 0010 on an instance with cases: they are registered oldest first (trust on
    first use) and the instance passes; the first checkpoint then records every trail."""
    from alembic import command

    from whistle.store import migrate

    engine = db.engine_for(app)
    with engine.begin() as conn:
        cfg = migrate.alembic_config(str(engine.url.render_as_string(hide_password=False)))
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0009")
        assert "case_registry" not in inspect(conn).get_table_names()
    migrate.upgrade(engine)
    with db.new_session(app) as s:
        assert sorted(s.scalars(select(CaseRegistry.concern_id))) == sorted(
            [world["closed"], world["open"]])
    passes(app)
    assert "2 case head(s) recorded" in checkpoint(app)
    passes(app)
