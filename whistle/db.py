"""Engine and sessions. SQLite gets WAL, synchronous=FULL, foreign keys and a busy timeout."""

from __future__ import annotations

import functools
import sqlite3
import time
from typing import Any

from flask import Flask, g, has_request_context, request
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker


def make_engine(url: str, busy_timeout_ms: int = 5000) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": busy_timeout_ms / 1000,
                                                  "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            # Let SQLAlchemy drive transactions ourselves with BEGIN IMMEDIATE-like semantics.
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=FULL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
            cur.execute("PRAGMA secure_delete=ON")
            cur.close()

        @event.listens_for(engine, "begin")
        def _begin(conn: Any) -> None:
            # A deferred transaction that reads and then writes fails at once (SQLITE_BUSY,
            # no waiting) when another worker committed in between: under load that was a
            # 5xx for reporters. So requests that change things (POST...) take the write lock
            # up front; reads (GET) stay deferred and run side by side (WAL), and the rare GET
            # that writes (session last_seen, "opened" audit events) is run again on
            # SQLITE_BUSY, then taking the lock up front (see init_app). Commands outside
            # requests keep deferred transactions, so that e.g. the outbox never holds the
            # lock while it talks SMTP. A POST that reads first (the status check, see
            # read_first) goes on deferred too.
            if not has_request_context() or ((request.method in _SAFE_METHODS
                                              or g.get("sqlite_read_first"))
                                             and not g.get("sqlite_write_lock")):
                # On the driver connection: through exec_driver_sql this one statement cost
                # a tenth of a status check.
                conn.connection.driver_connection.execute("BEGIN")
            else:
                _begin_immediate(conn, busy_timeout_ms)

        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=5)


_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def _is_busy(exc: BaseException | None) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    return (code & 0xFF) == 5 if isinstance(code, int) else "locked" in str(exc)


def _begin_immediate(conn: Any, busy_timeout_ms: int) -> None:
    """BEGIN IMMEDIATE, trying again every half millisecond while another worker writes.

    SQLite's own busy handler sleeps 1, 2, 5 ... 100 ms between tries, so under load
    one worker could starve another for seconds (p99 of 450 ms with two workers).
    """
    raw = conn.connection.dbapi_connection
    deadline = time.monotonic() + busy_timeout_ms / 1000
    raw.execute("PRAGMA busy_timeout=0")
    try:
        while time.monotonic() < deadline:
            try:
                raw.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as exc:
                if not _is_busy(exc):
                    break
            time.sleep(0.0005)
    finally:
        raw.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
    conn.exec_driver_sql("BEGIN IMMEDIATE")  # last try, raising SQLAlchemy's error if it fails


def _retry_reads_on_busy(app: Flask, attempts: int = 3) -> None:
    """Run a GET again, with a fresh session holding the write lock, when SQLite refused its
    (rare) write as busy: optimistic first, so that pure reads never wait for writers."""
    dispatch = app.dispatch_request

    @functools.wraps(dispatch)
    def dispatch_request() -> Any:
        for attempt in range(attempts):
            try:
                return dispatch()
            except OperationalError as exc:
                if (request.method not in _SAFE_METHODS or attempt == attempts - 1
                        or not _is_busy(exc.orig)):
                    raise
                _close_session(None)
                g.sqlite_write_lock = True
        raise AssertionError("unreachable")

    app.dispatch_request = dispatch_request  # type: ignore[method-assign]


def read_first() -> None:
    """This (POST) request reads before it writes, and writes only in transactions that
    start with the write (the status check: its one write of the day is a fresh
    transaction): on SQLite its transactions begin deferred like a GET's, so status
    checks read side by side instead of taking turns on the write lock."""
    g.sqlite_read_first = True


def write_next() -> None:
    """After ``read_first``: the request's next transaction writes, so on SQLite it takes
    the write lock up front again (BEGIN IMMEDIATE, polled; see _begin_immediate)."""
    g.sqlite_read_first = False


def init_app(app: Flask) -> None:
    engine = make_engine(app.config["DATABASE_URL"], app.config.get("DB_BUSY_TIMEOUT_MS", 5000))
    app.extensions["whistle_engine"] = engine
    app.extensions["whistle_sessionmaker"] = sessionmaker(engine, expire_on_commit=False)
    app.teardown_appcontext(_close_session)
    if engine.dialect.name == "sqlite":
        _retry_reads_on_busy(app)


def engine_for(app: Flask) -> Engine:
    engine: Engine = app.extensions["whistle_engine"]
    return engine


def new_session(app: Flask) -> Session:
    maker: sessionmaker[Session] = app.extensions["whistle_sessionmaker"]
    return maker()


def session() -> Session:
    """The request's session, opened on first use and closed at teardown."""
    from flask import current_app

    if "db_session" not in g:
        g.db_session = new_session(current_app)
    s: Session = g.db_session
    return s


def _close_session(_exc: BaseException | None) -> None:
    s = g.pop("db_session", None)
    if s is not None:
        s.close()
