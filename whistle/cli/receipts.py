"""``receipt verify FILE``: check a reporter's signed receipt (whistle.cases.receipts)."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from flask.cli import with_appcontext

from whistle import current_settings, instance_keys
from whistle.cases import receipts
from whistle.errors import DomainError

receipt_group = click.Group("receipt", help="Signed receipts given to reporters.")


def _read(path: str, what: str) -> str:
    try:
        data = Path(path).read_bytes()[:receipts.MAX_CHARS * 4 + 1]
        return data.decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        click.echo(f"cannot read {what} {path}: {exc}", err=True)
        sys.exit(2)


@receipt_group.command("verify")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--details-file", type=click.Path(dir_okay=False), default=None,
              help="a file holding the text of the concern, to check it is what was sent")
@with_appcontext
def receipt_verify(file: str, details_file: str | None) -> None:
    """Exit 0 only when FILE is a receipt signed by this instance's signing key (current or
    past) and, with --details-file, the text matches; 1 otherwise; 2 if unreadable."""
    text = _read(file, "receipt")
    details = _read(details_file, "details") if details_file else None
    keys = receipts.published_keys(current_settings().keys_dir, instance_keys().signing_public)
    try:
        checked = receipts.verify(text, keys, details)
    except DomainError as exc:
        click.echo(f"INVALID: {exc.message}")
        sys.exit(1)
    if not checked.valid:
        click.echo("INVALID: this receipt was not signed by Whistle as it is (forged, edited "
                   "or damaged)")
        sys.exit(1)
    if checked.content_matches is False:
        click.echo(f"valid receipt for {checked.case_ref}, received {checked.received}; "
                   "but the details given do NOT match what was sent")
        sys.exit(1)
    match = " and the details match" if checked.content_matches else ""
    click.echo(f"valid: case {checked.case_ref}, received {checked.received}{match}")


@receipt_group.command("keys")
@with_appcontext
def receipt_keys() -> None:
    """Print the signing public keys receipts verify with (hex; current first)."""
    for key in receipts.published_keys(current_settings().keys_dir,
                                       instance_keys().signing_public):
        click.echo(f"{receipts.key_id(key)} {key.hex()}")


COMMANDS = (receipt_group,)
