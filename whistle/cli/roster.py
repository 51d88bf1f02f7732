"""``roster verify | seal``: the signed roster of who may read concerns (whistle.people.roster)."""

from __future__ import annotations

import sys

import click
from flask import current_app
from flask.cli import with_appcontext

from whistle import instance_keys
from whistle.people import adminlog, roster
from whistle.store import db

roster_group = click.Group("roster", help="The signed roster of who may read concerns.")


@roster_group.command("verify")
@with_appcontext
def roster_verify() -> None:
    """Check every active account against its signed roster entry; exit 1 and name each
    account whose key (or roles, units, state) does not match, or whose entry is not the
    latest the administration log records for it."""
    keys = instance_keys()
    with db.new_session(current_app) as s:
        bad = [(r, "its key, roles, units or state do not match its signed roster entry: "
                   "it receives nothing")
               for r in roster.unverified(s, keys)]
        bad += [(r, "its signed entry is an earlier one than the administration log's latest "
                    "(put back in the database?)")
                for r in roster.rolled_back(s, keys)]
        listed = len(roster.listing(s, keys))
        for r, why in bad:
            click.echo(f"UNVERIFIED: {r.id} {r.name} <{r.email}>: {why}")
    if bad:
        click.echo(f"{len(bad)} account(s) fail: disable them, then reset their password "
                   "(a new key, signed) once you know what happened")
        sys.exit(1)
    click.echo(f"ok: {listed} reviewer(s) can receive concerns; every active account matches "
               "its signed roster entry")


@roster_group.command("seal")
@with_appcontext
def roster_seal() -> None:
    """Seal the roster now: from here on, adding a reader takes two people."""
    with db.new_session(current_app) as s:
        done = roster.seal(s, adminlog.OPERATOR)
        s.commit()
    click.echo("the roster is sealed: enrolling, re-enabling and granting roles now need a "
               "second person's approval" if done else "the roster was already sealed")


COMMANDS = (roster_group,)
