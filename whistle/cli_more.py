"""Commands added by the workflow work: deadlines and recovery."""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    return None
