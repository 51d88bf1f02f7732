"""Operator commands: ``flask --app app init | reviewer ... | outbox | deadlines | audit verify``."""

from __future__ import annotations

import sys

import click
from flask import Flask, current_app
from flask.cli import with_appcontext
from sqlalchemy import func, select

from whistle import adminlog, audit, db, keys, migrate, notify, review
from whistle.models import Reviewer
from whistle.validation import InvalidInput


def _session():  # type: ignore[no-untyped-def]
    return db.new_session(current_app)


@click.command("init")
@with_appcontext
@click.option("--recovery-out", default=None,
              help="Where to write the recovery private key, once (default: beside KEYS_DIR, "
                   "named after the key's fingerprint).")
def init_command(recovery_out: str | None) -> None:
    """Create or migrate the schema and create missing key material. Never destroys data."""
    for line in keys.create_missing(current_app.config["KEYS_DIR"], recovery_out):
        click.echo(line)
    migrate.upgrade(db.engine_for(current_app))
    click.echo("database schema is up to date")
    with _session() as s:
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
        from whistle import setup

        code = setup.issue_code(current_app.config["KEYS_DIR"])
        click.echo(f"\nOne-time setup code for /setup (enrol the first administrator "
                   f"in the browser): {code}")


reviewer_group = click.Group("reviewer", help="Enrol, list and disable reviewers.")


@reviewer_group.command("add")
@with_appcontext
@click.option("--name", required=True)
@click.option("--email", required=True)
@click.option("--unit", "units", multiple=True)
@click.option("--senior", is_flag=True)
@click.option("--independent", is_flag=True)
@click.option("--admin", is_flag=True, help="Also an administrator.")
@click.option("--admin-only", is_flag=True, help="An administrator who reviews no cases.")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
def reviewer_add(name: str, email: str, units: tuple[str, ...], senior: bool,
                 independent: bool, admin: bool, admin_only: bool, password_stdin: bool) -> None:
    """Enrol a reviewer; the new id is the last line printed."""
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    with _session() as s:
        try:
            r = review.enrol(s, current_app.config, name, email, password, list(units), senior,
                             independent, admin or admin_only, reviews=not admin_only)
        except InvalidInput as exc:
            raise click.ClickException(exc.message) from exc
        click.echo(f"enrolled {r.name} <{r.email}>")
        click.echo(r.id)


@reviewer_group.command("list")
@with_appcontext
def reviewer_list() -> None:
    """List reviewers (no secrets)."""
    import json

    with _session() as s:
        for r in s.scalars(select(Reviewer).order_by(Reviewer.name)):
            roles = [x for x, on in (("reviewer", r.is_reviewer), ("admin", r.is_admin),
                                     ("senior", r.is_senior), ("independent", r.is_independent))
                     if on]
            click.echo(f"{r.id}  {'active ' if r.active else 'DISABLED'}  {r.name} <{r.email}>  "
                       f"roles={','.join(roles)}  units={','.join(json.loads(r.units))}")


@reviewer_group.command("disable")
@with_appcontext
@click.argument("reviewer_id")
def reviewer_disable(reviewer_id: str) -> None:
    """Disable a reviewer; report cases left with too few active reviewers."""
    with _session() as s:
        try:
            report = review.disable(s, current_app.config, reviewer_id)
        except review.NotFound as exc:
            raise click.ClickException(f"no reviewer {reviewer_id}") from exc
        click.echo(f"disabled {report.reviewer.name}; their sessions are ended")
        for case_ref, left in report.understaffed:
            click.echo(f"case {case_ref} now has {left} active reviewer(s): share it with "
                       "another reviewer, or use `recovery reshare`")
        if not report.understaffed:
            click.echo("no case is left with fewer than the minimum of active reviewers")


@reviewer_group.command("reset-password")
@with_appcontext
@click.argument("reviewer_id")
@click.option("--password-stdin", is_flag=True, help="Read the new password from standard input.")
def reviewer_reset_password(reviewer_id: str, password_stdin: bool) -> None:
    """Give a reviewer who lost their password a new one (and a new key pair).

    Their cases come back when a co-reviewer shares them again, or with
    `recovery rewrap --reviewer ID --key-file PATH`. They must change this
    password at their next sign-in.
    """
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("New password", hide_input=True, confirmation_prompt=True)
    with _session() as s:
        try:
            waiting = review.reset_password(s, current_app.config, reviewer_id, password)
        except review.NotFound as exc:
            raise click.ClickException(f"no reviewer {reviewer_id}") from exc
        except InvalidInput as exc:
            raise click.ClickException(exc.message) from exc
    click.echo(f"password reset; sessions ended; {len(waiting)} case(s) wait for their keys")
    if waiting:
        click.echo(f"  run: flask --app app recovery rewrap --reviewer {reviewer_id} "
                   "--key-file <recovery key file>, or ask a co-reviewer to share each case")


@click.command("outbox")
@with_appcontext
def outbox_command() -> None:
    """Deliver pending notification mail once (failures are retried on a later run)."""
    with _session() as s:
        report = notify.deliver_pending(s, current_app._get_current_object())  # type: ignore[attr-defined]
    click.echo(f"sent {report.sent}, deferred {report.deferred}, given up {report.given_up}")


audit_group = click.Group("audit", help="The hash-chained audit trail.")


@audit_group.command("verify")
@with_appcontext
def audit_verify() -> None:
    """Check every case's chain and the administration log; exit 1 and name the first
    broken link."""
    with _session() as s:
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


def init_app(app: Flask) -> None:
    for cmd in (init_command, reviewer_group, outbox_command, audit_group):
        app.cli.add_command(cmd)
    from whistle import cli_more

    cli_more.init_app(app)


