"""Running an instance: ``init``, ``outbox``, ``deadlines``, ``audit verify``, ``audit
checkpoint``, ``audit checkpoints``, ``inbox recount``, ``sessions purge``."""

from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path
from typing import Any, TextIO

import click
from flask import current_app
from flask.cli import with_appcontext
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

from whistle import current_settings, instance_keys, keys, notify
from whistle.cases import checkpoints, deadlines, integrity, kept
from whistle.people import adminlog, roster, sessions
from whistle.store import counts, db, migrate
from whistle.store.models import Reviewer, utcnow


@click.command("init")
@with_appcontext
@click.option("--recovery-out", default=None,
              help="Where to write the recovery private key, once (default: beside KEYS_DIR, "
                   "named after the key's fingerprint).")
def init_command(recovery_out: str | None) -> None:
    """Create or migrate the schema and create missing key material. Never destroys data."""
    keys_dir = current_settings().keys_dir
    new_signing_key = not (Path(keys_dir) / keys.SIGNING_KEY).exists()
    for line in keys.create_missing(keys_dir, recovery_out):
        click.echo(line)
    # Owner-only: the instance directory 0700, the SQLite database and its -wal and -shm
    # files 0600, before and after the migrations (which may create them).
    instance = Path(current_app.instance_path)
    database_url = current_settings().database_url
    db.owner_only(str(instance), 0o700)
    db.secure_sqlite_files(database_url, directory_too=True)
    migrate.upgrade(db.engine_for(current_app))
    db.secure_sqlite_files(database_url)
    click.echo("database schema is up to date")
    if new_signing_key:
        _sign_existing_roster(keys_dir)
    with db.new_session(current_app) as s:
        reviewers = s.scalar(select(func.count()).select_from(Reviewer)) or 0
        admins = s.scalar(select(func.count()).select_from(Reviewer)
                          .where(Reviewer.is_admin.is_(True))) or 0
    # One recommended first run (issue 21): /setup in the browser; the command line is the
    # other way, and enrolling an administrator there closes /setup.
    if admins == 0:
        from whistle.people import firstrun

        code = firstrun.issue_code(current_settings().keys_dir)
        click.echo("\nRecommended next step: open /setup in a browser and enrol the first "
                   "administrator and the reviewers there.")
        click.echo(f"One-time setup code for /setup (enrol the first administrator "
                   f"in the browser): {code}")
    if reviewers == 0:
        click.echo("\nOr, instead of /setup, enrol from the command line (at least two "
                   "reviewers; each is asked for a password):")
        click.echo("  flask --app app reviewer add --name 'Ada Example' --email ada@example.org "
                   "--unit Education --independent")
        click.echo("  flask --app app reviewer add --name 'Sam Example' --email sam@example.org "
                   "--admin")
        click.echo("Add --password-stdin to read the password from standard input. Enrolling "
                   "an administrator this way closes /setup (its code then no longer works).")
    if admins == 0 or reviewers == 0:
        click.echo("\nThen sign in at /reviewer/login: the administration home lists what is "
                   "left (the recovery key file, mail, schedules, the report form).")


def _sign_existing_roster(keys_dir: str) -> None:
    """An instance made before roster entries were signed gets its signing key: sign every
    account as it stands, once (trust on first use; ``roster verify`` checks them later)."""
    with db.new_session(current_app) as s:
        adopted = roster.adopt(s, keys.load(keys_dir))
        s.commit()
    if adopted:
        click.echo(f"signed the roster entries of {len(adopted)} existing account(s) with the "
                   "new signing key: check the names and fingerprints on /roster")


@click.command("outbox")
@with_appcontext
@click.option("--now", "at", default=None, metavar="YYYY-MM-DDTHH:MM",
              help="Deliver as if the clock (UTC) read this, not earlier than now: to send a "
                   "batch at an interval boundary ahead of time (tests, rehearsals).")
def outbox_command(at: str | None) -> None:
    """Deliver the notification mail that is due once (failures are retried on a later
    run). Mail becomes due only at NOTIFY_INTERVAL_MINUTES boundaries: run it every few
    minutes from cron; it sends nothing between boundaries."""
    now = utcnow()
    if at is not None:
        try:
            wanted = dt.datetime.fromisoformat(at).replace(tzinfo=None)
        except ValueError:
            raise click.BadParameter(f"{at!r} is not a date and time (YYYY-MM-DDTHH:MM)",
                                     param_hint="--now") from None
        if wanted < now:
            raise click.BadParameter("earlier than now: mail is never sent in the past",
                                     param_hint="--now")
        now = wanted
    with db.new_session(current_app) as s:
        report = notify.deliver_pending(s, current_app._get_current_object(), now=now)  # type: ignore[attr-defined]
    click.echo(f"sent {report.sent}, deferred {report.deferred}, given up {report.given_up}")
    if report.reason:
        server = f"{current_app.config['MAIL_SERVER']}:{current_app.config['MAIL_PORT']}"
        click.echo(f"deferred because the mail server {server} could not take the mail "
                   f"({report.reason}); it is tried again with back-off, and given up after "
                   f"{current_app.config['OUTBOX_MAX_ATTEMPTS']} attempts")


@click.command("deadlines")
@with_appcontext
@click.option("--as-of", "as_of", default=None, metavar="YYYY-MM-DD",
              help="Run as if today were this date (not earlier than today): to rehearse a "
                   "policy. What it does is real: reminders, escalations and mail.")
def deadlines_command(as_of: str | None) -> None:
    """Send due deadline reminders and escalate overdue cases once, and delete expired
    reviewer sessions (for cron)."""
    real_now = utcnow()
    now = as_of_time(as_of, real_now, "deadlines")
    with db.new_session(current_app) as s:
        # First, so that a failure in the deadlines never keeps a session's key material.
        # On the real clock: a rehearsal ahead of time does not end today's sessions.
        purged = sessions.purge_expired(s, current_settings(), real_now)
    with db.new_session(current_app) as s:
        # Files kept for a reporter's form (issue 20), on the real clock too.
        kept_gone = kept.purge_expired(s, current_settings().kept_upload_hours, real_now)
    with db.new_session(current_app) as s:  # held concerns past ESCROW_DAYS (issue 25)
        from whistle.cases import escrow

        from whistle.cases import stats

        # Suppressed like the administrators' count of held concerns (a small number could
        # tell someone that their own held concern was, or was not, among them).
        gone = stats.shown(escrow.expire(s, now.date()))
        click.echo(f"{gone} expired held concern(s) deleted" if gone is not None
                   else f"fewer than {stats.THRESHOLD} expired held concerns deleted (or none)")
    with db.new_session(current_app) as s:
        report = deadlines.run(s, current_settings(), instance_keys(), now)
    click.echo(_checkpoint()[0])  # after the run's changes, so that they are covered at once
    click.echo(f"{kept_gone} expired kept file(s) removed")
    click.echo(f"reminders sent for {len(report.reminded)} case(s); "
               f"{len(report.escalated)} case(s) escalated; {report.overdue} case(s) overdue")
    click.echo(f"{purged} expired session(s) removed")


audit_group = click.Group("audit", help="The hash-chained audit trail.")


@audit_group.command("verify")
@with_appcontext
@click.option("--against", type=click.File("r"), default=None,
              help="Checkpoints copied elsewhere (`audit checkpoints`, or GET "
                   "/api/v1/admin/checkpoints): fail if this database no longer has them as "
                   "they were (a rollback).")
def audit_verify(against: TextIO | None) -> None:
    """Check every case's chain, the registry of cases, the signed checkpoints, each case's
    status, outcome and message senders against its trail, and the administration log;
    exit 1 and name every case found wrong."""
    kept = _kept_checkpoints(against.read()) if against is not None else None
    with db.new_session(current_app) as s:
        report = integrity.check(s, instance_keys().signing_public)
        admin_checked, admin_broken = adminlog.verify(s)
        if kept is not None:
            report.add(checkpoints.compare(s, kept))
    for finding in report.findings:
        click.echo(f"BROKEN: {finding.subject}: {finding.reason}")
    if report.more:
        click.echo(f"BROKEN: ... and {report.more} more")
    state = "checked" if report.findings else "ok"
    click.echo(f"{state}: {report.events} events verified")
    latest = (f"the latest #{report.latest[0]} of {report.latest[1].isoformat()}Z"
              if report.latest else "none yet (`flask --app app audit checkpoint`)")
    click.echo(f"{state}: {report.registry} cases in the registry; {report.checkpoints} "
               f"signed checkpoint(s), {latest}")
    if admin_broken:
        click.echo(f"BROKEN: administration log event {admin_broken.seq}: "
                   f"{admin_broken.reason}")
    else:
        click.echo(f"ok: {admin_checked} administration log events verified")
    if report.findings or report.more or admin_broken:
        sys.exit(1)


def _kept_checkpoints(text: str) -> list[dict[str, Any]]:
    """A copy of the checkpoints: the API's answers (``{"checkpoints": [...]}``, one or one
    per line), or JSON lines as ``audit checkpoints`` prints them."""
    try:
        parsed = [json.loads(text)]
    except ValueError:
        try:
            parsed = [json.loads(line) for line in text.splitlines() if line.strip()]
        except ValueError:
            raise click.BadParameter("not JSON, nor JSON lines", param_hint="--against") \
                from None
    kept: list[dict[str, Any]] = []
    for item in parsed:
        if isinstance(item, dict) and isinstance(item.get("checkpoints"), list):
            kept += item["checkpoints"]
        elif isinstance(item, list):
            kept += item
        else:
            kept.append(item)
    kept = [e for e in kept if isinstance(e, dict) and "seq" in e and "hash" in e]
    if not kept:
        raise click.BadParameter("the copy holds no checkpoint", param_hint="--against")
    return kept


def _checkpoint() -> tuple[str, bool]:
    """Take a checkpoint now: (what happened, whether it worked)."""
    with db.new_session(current_app) as s:
        try:
            taken = checkpoints.take(s, instance_keys().signing_key, utcnow())
        except checkpoints.Busy as exc:
            return f"checkpoint: {exc}", False
        except OperationalError:  # SQLite kept busy past its timeout: the next run takes it
            return "checkpoint: the database stayed busy; none taken (run it again)", False
    if taken.seq is None:
        return f"checkpoint: nothing new since checkpoint #{taken.latest}", True
    return (f"checkpoint #{taken.seq} signed: {taken.registry_seq} cases in the registry, "
            f"{taken.heads} case head(s) recorded, administration log at "
            f"{taken.admin_seq}"), True


@audit_group.command("checkpoint")
@with_appcontext
def audit_checkpoint() -> None:
    """Sign a checkpoint now over the registry, every case chain's head and the
    administration log (``deadlines`` takes one at every run)."""
    line, ok = _checkpoint()
    click.echo(line)
    if not ok:
        sys.exit(1)


@audit_group.command("checkpoints")
@with_appcontext
@click.option("--after", type=int, default=0, show_default=True,
              help="Only checkpoints after this one (what a copy kept elsewhere lacks).")
def audit_checkpoints(after: int) -> None:
    """Print the signed checkpoints as JSON lines, oldest first, to keep a copy elsewhere
    (``audit verify --against`` compares it with the database)."""
    with db.new_session(current_app) as s:
        while True:
            rows = checkpoints.export(s, after, 500)
            for row in rows:
                click.echo(json.dumps(row, sort_keys=True))
            if len(rows) < 500:
                break
            after = rows[-1]["seq"]


sessions_group = click.Group("sessions", help="Reviewer sign-in sessions.")


@sessions_group.command("purge")
@with_appcontext
def sessions_purge_command() -> None:
    """Delete every expired or revoked reviewer session and its sealed key (for cron;
    ``deadlines`` does it too)."""
    with db.new_session(current_app) as s:
        purged = sessions.purge_expired(s, current_settings(), utcnow())
    click.echo(f"{purged} expired session(s) removed")


inbox_group = click.Group("inbox", help="The per-reviewer inbox counts.")


@inbox_group.command("recount")
@with_appcontext
@click.option("--check", is_flag=True, help="Only report differences (exit 1 if any).")
def inbox_recount_command(check: bool) -> None:
    """Rebuild the inbox counts from the assignments (after a bulk load or restore)."""
    with db.engine_for(current_app).begin() as conn:
        wrong = counts.mismatches(conn)
        for reviewer_id, status, kept, real in wrong:
            click.echo(f"{reviewer_id} {status}: counted {kept}, really {real}")
        if check:
            if wrong:
                raise SystemExit(1)
            click.echo("inbox counts: all correct")
            return
        rows = counts.recount(conn)
    click.echo(f"inbox counts rebuilt: {rows} row(s), {len(wrong)} were wrong")


COMMANDS = (init_command, outbox_command, deadlines_command, audit_group, inbox_group,
            sessions_group)


def as_of_time(as_of: str | None, real_now: dt.datetime, job: str) -> dt.datetime:
    """``--as-of YYYY-MM-DD`` of a scheduled command: that day at this time of day, never
    earlier than today (``job`` names the command in the refusal)."""
    if as_of is None:
        return real_now
    try:
        day = dt.date.fromisoformat(as_of)
    except ValueError:
        raise click.BadParameter(f"{as_of!r} is not a date (YYYY-MM-DD)",
                                 param_hint="--as-of") from None
    if day < real_now.date():
        raise click.BadParameter(
            f"{day.isoformat()} is earlier than today ({real_now.date().isoformat()}): "
            f"the {job} command never runs in the past", param_hint="--as-of")
    return dt.datetime.combine(day, real_now.time())
