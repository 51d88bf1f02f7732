"""Seeing the statements an app sends to its database, on both engines."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

from flask import Flask
from sqlalchemy import event

from whistle.store import db


@contextlib.contextmanager
def watched(app: Flask, keep: Callable[[str, bool], None]) -> Iterator[None]:
    """Call ``keep(statement, outside_a_transaction)`` for every statement sent meanwhile.
    On SQLite through the driver's own trace (whistle.store.prepared sends the hot
    statements to the driver directly, past SQLAlchemy's events), "outside" meaning no BEGIN
    open on the sqlite3 connection; on PostgreSQL through SQLAlchemy's statement events,
    "outside" meaning psycopg's autocommit."""
    engine = db.engine_for(app)

    def note(conn: Any, _cursor: Any, statement: str, *_rest: Any) -> None:
        keep(statement, conn.connection.dbapi_connection.autocommit)

    def trace(driver: Any, _record: Any, _proxy: Any) -> None:
        driver.set_trace_callback(lambda statement: keep(statement, not driver.in_transaction))

    def untrace(driver: Any, _record: Any) -> None:
        driver.set_trace_callback(None)

    listeners: list[tuple[str, Any]] = (
        [("checkout", trace), ("checkin", untrace)] if engine.dialect.name == "sqlite"
        else [("before_cursor_execute", note)])
    for name, fn in listeners:
        event.listen(engine, name, fn)
    try:
        yield
    finally:
        for name, fn in listeners:
            event.remove(engine, name, fn)
