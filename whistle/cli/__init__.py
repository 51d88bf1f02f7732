"""Operator commands (``flask --app app ...``), one module per command group."""

from __future__ import annotations

from flask import Flask

from whistle.cli import operations, receipts, recovery, retention, reviewers, roster


def init_app(app: Flask) -> None:
    for module in (operations, reviewers, recovery, roster, receipts, retention):
        for command in module.COMMANDS:
            app.cli.add_command(command)
