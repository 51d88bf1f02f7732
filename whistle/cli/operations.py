"""Running an instance: ``init``, ``outbox``, ``deadlines``, ``audit verify``, ``inbox recount``,
``sessions purge``."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from flask import current_app
from flask.cli import with_appcontext
from sqlalchemy import func, select

from whistle import current_settings, instance_keys, keys, notify
from whistle.cases import audit, deadlines
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
    migrate.upgrade(db.engine_for(current_app))
    click.echo("database schema is up to date")
    if new_signing_key:
        _sign_existing_roster(keys_dir)
    with db.new_session(current_app) as s:
        reviewers = s.scalar(select(func.count()).select_from(Reviewer)) or 0
        admins = s.scalar(select(func.count()).select_from(Reviewer)
                          .where(Reviewer.is_admin.is_(True))) or 0
    if reviewers == 0:
        click.echo("\nNo reviewers yet. Enrol at least two (each is asked for a password):")
        click.echo("  flask --app app reviewer add --name 'Ada Example' --email ada@example.org "
                   "--unit Education --independent")
        click.echo("  flask --app app reviewer add --name 'Sam Example' --email sam@example.org "
                   "--admin")
        click.echo("Add --password-stdin to read the password from standard input.")
    if admins == 0:
        from whistle.people import firstrun

        code = firstrun.issue_code(current_settings().keys_dir)
        click.echo(f"\nOne-time setup code for /setup (enrol the first administrator "
                   f"in the browser): {code}")


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
def outbox_command() -> None:
    """Deliver pending notification mail once (failures are retried on a later run)."""
    with db.new_session(current_app) as s:
        report = notify.deliver_pending(s, current_app._get_current_object())  # type: ignore[attr-defined]
    click.echo(f"sent {report.sent}, deferred {report.deferred}, given up {report.given_up}")


@click.command("deadlines")
@with_appcontext
def deadlines_command() -> None:
    """Send due deadline reminders and escalate overdue cases once, and delete expired
    reviewer sessions (for cron)."""
    with db.new_session(current_app) as s:
        # First, so that a failure in the deadlines never keeps a session's key material.
        purged = sessions.purge_expired(s, current_settings(), utcnow())
    with db.new_session(current_app) as s:
        report = deadlines.run(s, current_settings(), instance_keys(), utcnow())
    click.echo(f"reminders sent for {len(report.reminded)} case(s); "
               f"{len(report.escalated)} case(s) escalated; {report.overdue} case(s) overdue")
    click.echo(f"{purged} expired session(s) removed")


audit_group = click.Group("audit", help="The hash-chained audit trail.")


@audit_group.command("verify")
@with_appcontext
def audit_verify() -> None:
    """Check every case's chain and the administration log; exit 1 and name the first
    broken link."""
    with db.new_session(current_app) as s:
        checked, broken = audit.verify(s)
        admin_checked, admin_broken = adminlog.verify(s)
    if broken:
        click.echo(f"BROKEN: case {broken.concern_id} event {broken.seq}: {broken.reason}")
    else:
        click.echo(f"ok: {checked} events verified")
    if admin_broken:
        click.echo(f"BROKEN: administration log event {admin_broken.seq}: "
                   f"{admin_broken.reason}")
    else:
        click.echo(f"ok: {admin_checked} administration log events verified")
    if broken or admin_broken:
        sys.exit(1)


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
