"""``flask --app app retention [--as-of YYYY-MM-DD]``: the end of closed cases' retention
(issue 23, whistle.cases.retention). Run it daily from cron."""

from __future__ import annotations

import datetime as dt

import click
from flask import current_app
from flask.cli import with_appcontext
from sqlalchemy.orm import Session

from whistle import current_settings, instance_keys
from whistle.cases import checkpoints, retention
from whistle.store import db
from whistle.store.models import utcnow


def _day(as_of: str | None, real_now: dt.datetime) -> dt.datetime:
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
            "retention never runs in the past", param_hint="--as-of")
    return dt.datetime.combine(day, real_now.time())


def _checkpoint(session: Session) -> None:
    """Sign the trails' new heads (each deleted case's ``retention_ended``) before the
    write-ahead log is truncated."""
    try:
        checkpoints.take(session, instance_keys().signing_key, utcnow())
    except checkpoints.Busy as exc:
        click.echo(f"checkpoint: {exc}")


@click.command("retention")
@with_appcontext
@click.option("--as-of", "as_of", default=None, metavar="YYYY-MM-DD",
              help="Run as if today were this date (not earlier than today). What it does is "
                   "real: cases whose retention has ended by then are deleted for good.")
@click.option("--dry-run", is_flag=True,
              help="Only list what would be reminded and deleted; change nothing.")
def retention_command(as_of: str | None, dry_run: bool) -> None:
    """Remind the reviewers of closed cases whose retention ends soon, and delete the cases
    whose retention has ended (not those on hold), leaving a content-free tombstone."""
    now = _day(as_of, utcnow())
    with db.new_session(current_app) as s:
        report = retention.run(s, current_settings(), now, before_scrub=_checkpoint,
                               dry_run=dry_run)
    would = "would be " if dry_run else ""
    click.echo(f"retention: {len(report.reminded)} case(s) {would}reminded, "
               f"{len(report.deleted)} case(s) {would}deleted, "
               f"{len(report.held)} expired case(s) kept on hold")
    for case_ref in report.deleted:
        click.echo(f"{would}deleted {case_ref}")
    if not report.scrubbed:
        click.echo("warning: the database stayed busy, so the write-ahead log still holds "
                   "the deleted pages; run `flask --app app retention` again")


COMMANDS = (retention_command,)
