"""``flask --app app retention [--as-of YYYY-MM-DD]``: the end of closed cases' retention
(issue 23, whistle.cases.retention). Run it daily from cron."""

from __future__ import annotations


import click
from flask import current_app
from flask.cli import with_appcontext
from sqlalchemy.orm import Session

from whistle import current_settings, instance_keys
from whistle.cases import checkpoints, retention
from whistle.cli import operations
from whistle.store import db
from whistle.store.models import utcnow


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
    now = operations.as_of_time(as_of, utcnow(), "retention")
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
