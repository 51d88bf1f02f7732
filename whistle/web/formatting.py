"""Plain words for numbers and times on the pages (issue 21, item 6): file sizes in bytes, KB
or MB (never MiB), and trail times that show a time of day only where one was recorded
(reporter-side events keep the day only, stored at midnight)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from flask import Flask
from flask_babel import format_decimal, gettext, ngettext

from whistle import i18n


def file_size(value: Any) -> str:
    """``123 bytes``, ``45 KB``, ``2.5 MB`` (decimal units, as phones and file managers show)."""
    try:
        n = int(value)
    except (TypeError, ValueError):
        return ""
    if n < 1000:
        return ngettext("%(num)d byte", "%(num)d bytes", n)
    if n < 1_000_000:
        return gettext("%(n)s KB", n=format_decimal(round(n / 1000)))
    mb = n / 1_000_000
    return gettext("%(n)s MB", n=format_decimal(round(mb, 1) if mb < 10 else round(mb)))


def mebibytes_as_mb(value: Any) -> str:
    """A limit set in bytes, for the reporter: whole MB, rounded down (never promise more)."""
    try:
        return str(int(value) // 1_000_000)
    except (TypeError, ValueError):
        return ""


def trail_time(value: Any) -> str:
    """An audit-trail moment: the day in words, and the time (UTC) where one was recorded."""
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value)
        except ValueError:
            return value
    if not isinstance(value, dt.datetime):
        return i18n.long_date(value)
    day = i18n.long_date(value.date())
    if value.time() == dt.time():
        return day
    return gettext("%(day)s, %(time)s UTC", day=day, time=value.strftime("%H:%M"))


def init_app(app: Flask) -> None:
    app.jinja_env.filters.update(file_size=file_size, trail_time=trail_time,
                                 as_mb=mebibytes_as_mb)
