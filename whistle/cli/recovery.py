"""``recovery reshare | reshare-all | rewrap | rotate``: what the offline recovery key allows."""

from __future__ import annotations


import click
from flask import current_app
from flask.cli import with_appcontext

from whistle import crypto, current_settings, instance_keys, keys
from whistle.cases import recovery
from whistle.errors import KeyMaterialError
from whistle.store import db
from whistle.store.models import Reviewer, utcnow


recovery_group = click.Group(
    "recovery", help="Re-share cases using the organisation's offline recovery key.")


def _read_key(path: str) -> bytes:
    try:
        return keys.read_recovery_private(path)
    except (OSError, KeyMaterialError) as exc:
        raise click.ClickException(f"cannot read the recovery key from {path}: {exc}") from exc


@recovery_group.command("reshare")
@with_appcontext
@click.argument("case_ref")
@click.option("--to", "to", required=True, help="The reviewer id to give the case to.")
@click.option("--key-file", required=True, type=click.Path(exists=True, dir_okay=False),
              help="The recovery private key file (from offline media).")
def reshare_command(case_ref: str, to: str, key_file: str) -> None:
    """Give one case to a reviewer (refuses reviewers the reporter excluded)."""
    private = _read_key(key_file)
    with db.new_session(current_app) as s:
        try:
            target = recovery.reshare(s, instance_keys(), case_ref.strip(), to, private,
                                      utcnow())
        except recovery.RecoveryError as exc:
            raise click.ClickException(exc.message) from exc
        click.echo(f"case {case_ref} shared with {target.name}; recorded in its audit trail")


@recovery_group.command("reshare-all")
@with_appcontext
@click.option("--from", "from_", required=True, help="The reviewer whose cases to re-share.")
@click.option("--to", "to", required=True, help="The reviewer id to give the cases to.")
@click.option("--key-file", required=True, type=click.Path(exists=True, dir_okay=False),
              help="The recovery private key file (from offline media).")
def reshare_all_command(from_: str, to: str, key_file: str) -> None:
    """Give every case of one reviewer (e.g. one who left) to another, skipping exclusions."""
    private = _read_key(key_file)
    with db.new_session(current_app) as s:
        if s.get(Reviewer, from_) is None:
            raise click.ClickException(f"no reviewer {from_}")
        target = s.get(Reviewer, to)
        if target is None or not target.active or not target.is_reviewer:
            raise click.ClickException(f"no active reviewer {to}")
        target_name = target.name
        refs = recovery.cases_of(s, from_)
        report = recovery.ReshareAllReport()
        now = utcnow()
        with click.progressbar(refs, label="re-sharing cases", show_pos=True) as bar:
            for case_ref in bar:
                try:
                    recovery.reshare_one_of_many(s, instance_keys(), case_ref, to, private, now,
                                                 report)
                except recovery.RecoveryError as exc:
                    raise click.ClickException(exc.message) from exc
    click.echo(f"shared {len(report.shared)} case(s) with {target_name}; "
               f"{len(report.already)} already theirs")
    for case_ref in report.excluded:
        click.echo(f"NOT shared {case_ref}: the reporter excluded this reviewer; choose another")
    for case_ref in report.recused:
        click.echo(f"NOT shared {case_ref}: this reviewer recused from it (a conflict of "
                   "interest); choose another")


@recovery_group.command("rewrap")
@with_appcontext
@click.option("--reviewer", "reviewer_id", required=True,
              help="The reviewer whose password was reset.")
@click.option("--key-file", required=True, type=click.Path(exists=True, dir_okay=False),
              help="The recovery private key file (from offline media).")
def rewrap_command(reviewer_id: str, key_file: str) -> None:
    """After a password reset, give a reviewer their cases' keys again.

    Each case is committed on its own: interrupt it at any time and run it again
    to continue where it stopped.
    """
    private = _read_key(key_file)
    with db.new_session(current_app) as s:
        reviewer = s.get(Reviewer, reviewer_id)
        if reviewer is None:
            raise click.ClickException(f"no reviewer {reviewer_id}")
        refs = recovery.waiting_for_keys(s, reviewer_id)
        done = 0
        with click.progressbar(refs, label="re-wrapping cases", show_pos=True) as bar:
            for case_ref in bar:
                try:
                    done += recovery.rewrap(s, case_ref, reviewer_id, private, utcnow(),
                                            instance=instance_keys())
                except recovery.RecoveryError as exc:
                    raise click.ClickException(exc.message) from exc
    click.echo(f"{reviewer.name} holds the keys of {done} more case(s); "
               f"{len(refs) - done} needed nothing")


@recovery_group.command("rotate")
@with_appcontext
@click.option("--key-file", required=True, type=click.Path(exists=True, dir_okay=False),
              help="The current recovery private key file.")
@click.option("--new-key-file", required=True, type=click.Path(dir_okay=False),
              help="Where the new private key is written (once; reused if it exists).")
def rotate_command(key_file: str, new_key_file: str) -> None:
    """Replace the organisation recovery key and re-wrap every case for the new one.

    Each case is committed on its own and cases already re-wrapped are skipped,
    so an interrupted run just continues when started again. Restart the app
    afterwards, then run the command once more to catch concerns that arrived
    meanwhile (they were wrapped for the old key).
    """
    from pathlib import Path


    old = _read_key(key_file)
    new = keys.new_recovery_key_file(new_key_file)
    with db.new_session(current_app) as s:
        refs = recovery.recovery_cases(s)
        moved = 0
        with click.progressbar(refs, label="re-wrapping for the new recovery key",
                               show_pos=True) as bar:
            for case_ref in bar:
                try:
                    moved += recovery.rotate_one(s, case_ref, old, new)
                except recovery.RecoveryError as exc:
                    raise click.ClickException(exc.message) from exc
    public = Path(current_settings().keys_dir) / keys.RECOVERY_PUBLIC
    keys.replace_public(public, crypto.keypair_from_seed(new).public.hex() + "\n")
    click.echo(f"{moved} case(s) re-wrapped, {len(refs) - moved} already done; "
               f"{public} now holds the new public key")
    click.echo(f"Move {new_key_file} OFFLINE, restart Whistle, run this once more, then "
               f"destroy the old key file.")


COMMANDS = (recovery_group,)
