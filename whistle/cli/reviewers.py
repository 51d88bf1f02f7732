"""``reviewer add | enable | list | disable | reset-password``: accounts from the command line.

Once the roster is sealed the command line proposes; it never approves (a shell on the
server is one person)."""

from __future__ import annotations

import sys
from typing import Any

import click
from flask import current_app
from flask.cli import with_appcontext
from sqlalchemy import select

from whistle import current_settings, instance_keys
from whistle.errors import InvalidInput, NotFound
from whistle.people import accounts, adminlog, approvals, roster
from whistle.store import db
from whistle.store.models import Reviewer, utcnow


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
@click.option("--operator", is_flag=True,
              help="An intake operator: files concerns taken by phone or in a meeting on a "
                   "reporter's behalf; reviews nothing (no other role).")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
def reviewer_add(name: str, email: str, units: tuple[str, ...], senior: bool,
                 independent: bool, admin: bool, admin_only: bool, operator: bool,
                 password_stdin: bool) -> None:
    """Enrol a reviewer; the new id is the last line printed.

    Once the roster is sealed this only proposes the account: it waits for a second
    person's approval, and the person then chooses their own password from a mailed link
    (``--password-stdin`` is for setting up an instance, before sealing)."""
    if operator and (admin or admin_only or senior or independent or units):
        raise click.ClickException("an intake operator has no other role (no --admin, "
                                   "--admin-only, --senior, --independent or --unit)")
    with db.new_session(current_app) as s:
        if roster.is_sealed(s):
            if password_stdin:
                sys.stdin.readline()  # read and dropped: nobody sets a password for another
            _propose_account(s, name, email, list(units), senior, independent,
                             admin or admin_only, not (admin_only or operator), operator)
            return
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    with db.new_session(current_app) as s:
        try:
            r = accounts.enrol(s, current_settings(), name, email, password, list(units),
                               senior, independent, admin or admin_only,
                               reviews=not (admin_only or operator), keys=instance_keys(),
                               operator=operator)
        except InvalidInput as exc:
            raise click.ClickException(exc.message) from exc
        click.echo(f"enrolled {r.name} <{r.email}>")
        click.echo(r.id)


def _context() -> approvals.Context:
    return approvals.Context(current_settings(), instance_keys(), utcnow())


def _propose_account(s: Any, name: str, email: str, units: list[str], senior: bool,
                     independent: bool, admin: bool, reviews: bool, operator: bool = False
                     ) -> None:
    try:
        r, change = approvals.add_account(s, _context(), name, email, units, senior,
                                          independent, admin, reviews, adminlog.OPERATOR,
                                          operator=operator)
    except InvalidInput as exc:
        raise click.ClickException(exc.message) from exc
    click.echo(f"proposed {r.name} <{r.email}>: state {r.state}; change "
               f"{change.id if change else '-'} waits for a second person's approval; then "
               "they choose their own password from a mailed link")
    click.echo(r.id)


def _propose(kind: str, reviewer_id: str, payload: dict[str, Any]) -> None:
    with db.new_session(current_app) as s:
        try:
            change = approvals.propose_for(s, kind, reviewer_id, payload, adminlog.OPERATOR)
        except NotFound as exc:
            raise click.ClickException(f"no reviewer {reviewer_id}") from exc
    click.echo(f"proposed: change {change.id} ({kind}) waits for a second person's approval")
    click.echo(change.id)


@reviewer_group.command("enable")
@with_appcontext
@click.argument("reviewer_id")
def reviewer_enable(reviewer_id: str) -> None:
    """Propose re-enabling a disabled account (a second person approves it)."""
    _propose(approvals.REENABLE, reviewer_id, {})


@reviewer_group.command("list")
@with_appcontext
def reviewer_list() -> None:
    """List reviewers (no secrets)."""
    import json

    with db.new_session(current_app) as s:
        for r in s.scalars(select(Reviewer).order_by(Reviewer.name)):
            roles = [x for x, on in (("reviewer", r.is_reviewer), ("admin", r.is_admin),
                                     ("senior", r.is_senior), ("independent", r.is_independent),
                                     ("operator", r.is_operator))
                     if on]
            state = "active " if r.active else "DISABLED" if r.state == "disabled" else r.state
            click.echo(f"{r.id}  {state}  {r.name} <{r.email}>  "
                       f"roles={','.join(roles)}  units={','.join(json.loads(r.units))}")


@reviewer_group.command("disable")
@with_appcontext
@click.argument("reviewer_id")
def reviewer_disable(reviewer_id: str) -> None:
    """Disable a reviewer; report cases left with too few active reviewers."""
    with db.new_session(current_app) as s:
        try:
            report = accounts.disable(s, current_settings(), reviewer_id, keys=instance_keys())
        except NotFound as exc:
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
    password at their next sign-in. Once the roster is sealed this only proposes the
    reset: after a second person approves, the reviewer chooses the new password from a
    mailed link.
    """
    with db.new_session(current_app) as s:
        sealed = roster.is_sealed(s)
    if sealed:
        if password_stdin:
            sys.stdin.readline()  # read and dropped
        _propose(approvals.RESET, reviewer_id, {})
        return
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("New password", hide_input=True, confirmation_prompt=True)
    with db.new_session(current_app) as s:
        try:
            waiting = accounts.reset_password(s, current_settings(), reviewer_id, password,
                                             keys=instance_keys())
        except NotFound as exc:
            raise click.ClickException(f"no reviewer {reviewer_id}") from exc
        except InvalidInput as exc:
            raise click.ClickException(exc.message) from exc
    click.echo(f"password reset; sessions ended; {len(waiting)} case(s) wait for their keys")
    if waiting:
        click.echo(f"  run: flask --app app recovery rewrap --reviewer {reviewer_id} "
                   "--key-file <recovery key file>, or ask a co-reviewer to share each case")


COMMANDS = (reviewer_group,)
