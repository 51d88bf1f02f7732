"""Engine and sessions. SQLite gets WAL, synchronous=FULL, foreign keys and a busy timeout."""

from __future__ import annotations

import functools
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from flask import Flask, current_app, g, has_request_context, request
from sqlalchemy import Engine, create_engine, event, make_url, text
from sqlalchemy.exc import DBAPIError, DisconnectionError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

if TYPE_CHECKING:
    from whistle.store.prepared import PreparedQuery


log = logging.getLogger(__name__)


def make_engine(url: str, busy_timeout_ms: int = 5000, cache_mib: int = 64,
                autocheckpoint_pages: int = 1000) -> Engine:
    """``cache_mib``: SQLite's page cache per connection (its default is 2 MiB; a
    million cases need their index pages at hand). ``autocheckpoint_pages``: WAL size at
    which the committing connection copies the WAL back into the database itself (see
    ``start_checkpointer``)."""
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
            cur.execute(f"PRAGMA cache_size={-1024 * int(cache_mib)}")
            cur.execute(f"PRAGMA wal_autocheckpoint={int(autocheckpoint_pages)}")
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
    engine = create_engine(url, pool_size=5, max_overflow=5)
    _handle_disconnects(engine)
    return engine


def _handle_disconnects(engine: Engine) -> None:
    """A pooled PostgreSQL connection dies when the server restarts. ``pool_pre_ping``
    would test every connection at checkout: a round trip on every request, a quarter of
    a status check's. Instead, requests run again once if their first statements found
    the connection dead (``_retry_after_disconnect``); outside requests (CLI, outbox and
    deadline runs) connections are still tested at checkout."""

    @event.listens_for(engine, "checkout")
    def _ping_outside_requests(dbapi_conn: Any, _record: Any, _proxy: Any) -> None:
        if has_request_context():
            return
        try:
            alive = engine.dialect.do_ping(dbapi_conn)
        except Exception as exc:  # noqa: BLE001 - any failure means "use another connection"
            raise DisconnectionError("pooled connection is dead") from exc
        if not alive:
            raise DisconnectionError("pooled connection is dead")

    @event.listens_for(engine, "before_cursor_execute")
    def _note_writes(_conn: Any, _cursor: Any, statement: str, *_rest: Any) -> None:
        if has_request_context() and not statement.lstrip()[:6].upper() == "SELECT":
            g.db_wrote = True


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


def _retry_after_disconnect(app: Flask) -> None:
    """Run a request again, once, when its database connection turned out dead (PostgreSQL
    restarted since the pool opened it) before it had sent anything but SELECTs: nothing
    was written, so running it again on a fresh connection is safe. The pool then drops
    every connection it opened before the failure. Views that turn database errors into
    503 let these through (``will_run_again``)."""
    dispatch = app.dispatch_request

    @functools.wraps(dispatch)
    def dispatch_request() -> Any:
        g.db_may_run_again = True
        try:
            return dispatch()
        except DBAPIError as exc:
            if not will_run_again(exc):
                raise
            log.warning("database connection lost; running the request again")
            g.db_may_run_again = False
            _close_session(None)
            for upload in (request.__dict__.get("files") or {}).values():
                upload.stream.seek(0)  # uploads parsed before the failure are read again
            return dispatch()

    app.dispatch_request = dispatch_request  # type: ignore[method-assign]


def will_run_again(exc: BaseException) -> bool:
    """True if this database error will make the request run again on a fresh connection
    (``_retry_after_disconnect``): a view should let it through rather than answer 503."""
    return (isinstance(exc, DBAPIError) and bool(exc.connection_invalidated)
            and has_request_context() and bool(g.get("db_may_run_again"))
            and not g.get("db_wrote"))


def read_first() -> None:
    """This (POST) request reads before it writes, and writes only in transactions that
    start with the write (the status check: its one write of the day is a fresh
    transaction): on SQLite its transactions begin deferred like a GET's, so status
    checks read side by side instead of taking turns on the write lock."""
    g.sqlite_read_first = True


def reads_alone(single_reads: bool = False) -> None:
    """The request's first transaction only reads, or writes single statements that need
    no transaction around them (the status check; a reviewer's inbox and case view, whose
    writes are a session's last-seen time and the "opened" event): on SQLite it begins
    deferred (``read_first``); on PostgreSQL its statements run in autocommit, each with
    its own snapshot, so no BEGIN and no ROLLBACK round trip (two of a status check's
    three). After a ``commit()`` the session's next transaction is an ordinary one (the
    connection goes back to the pool with its usual settings).

    ``single_reads``: the request's reads through ``single_read`` need no snapshot in
    common either (the status check's lookup), so on SQLite, too, each runs without
    BEGIN and ROLLBACK, as its own read transaction."""
    read_first()
    if current_app.extensions["whistle_engine"].dialect.name == "sqlite":
        g.sqlite_single_reads = single_reads
        return
    s = session()
    if not s.in_transaction():
        s.connection(execution_options={"isolation_level": "AUTOCOMMIT"})


def single_read(query: PreparedQuery, params: Mapping[str, Any]) -> list[Any]:
    """The rows of one SELECT that needs no transaction around it, in a request that said
    so (``reads_alone(single_reads=True)``).

    On SQLite it runs on a pooled driver connection of its own, outside the request's
    session (whose transaction, checkout and close cost as much as the SELECT: measured,
    about 30 us of a status check's 410). Elsewhere, and once the session has begun a
    transaction, it runs in the session like any read."""
    s = session()
    engine: Engine = current_app.extensions["whistle_engine"]
    if not g.get("sqlite_single_reads") or s.in_transaction():
        return query.all(s.connection(), params)
    pooled = engine.raw_connection()
    try:
        return query.all_on_driver(engine.dialect, pooled.driver_connection, params)
    finally:
        pooled.close()


def take_write_lock(session: Session) -> None:
    """Start writing in a request that read first (``read_first``): on SQLite, end this
    session's read-only transaction and take the write lock on the same connection
    (BEGIN IMMEDIATE, polled). What was read before may have changed since: read again
    what matters. On PostgreSQL nothing to do (row locks, no database-wide write lock).

    Done on the driver connection: the session's transaction goes on and its COMMIT ends
    the write transaction. A Session.commit and a fresh checkout cost more (measured:
    about a tenth of a submission). Call it only while nothing has been written.
    """
    conn = session.connection()
    if conn.dialect.name != "sqlite":
        return
    raw: Any = conn.connection.driver_connection
    raw.execute("COMMIT")  # the reads' snapshot; nothing was written
    _begin_immediate(conn, raw.execute("PRAGMA busy_timeout").fetchone()[0])


def serialize_appends(session: Session, lock_id: int) -> None:
    """Let one transaction at a time append to a chain (the administration log) until it
    ends. On SQLite the write lock, taken by the caller's first write, already does; on
    PostgreSQL a transaction-scoped advisory lock numbered ``lock_id``."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": lock_id})


# -- WAL checkpoints off the request path (SQLite) ----------------------

# A checkpoint copies what the WAL holds back into the database file. By default the
# connection whose commit crosses 1000 pages does it, inside that request: at a million
# cases that was 100-700 ms of random writes and an fsync, the submit p99. A thread per
# server process does it instead, every CHECKPOINT_SECONDS, with its own connection
# (PASSIVE: it never blocks readers or writers; sqlite3 lets go of the GIL meanwhile).
# Requests still checkpoint themselves once the WAL reaches SQLITE_WAL_MAX_PAGES, so the
# WAL stays bounded if the thread falls behind or stops.
CHECKPOINT_SECONDS = 0.25
_checkpointer: dict[str, Any] = {}


def start_checkpointer(path: str, interval: float = CHECKPOINT_SECONDS) -> threading.Thread:
    """Start (once per process and database file) the background checkpoint thread."""
    key = f"{os.getpid()}:{os.path.abspath(path)}"
    thread: threading.Thread | None = _checkpointer.get(key)
    if thread is None or not thread.is_alive():
        thread = threading.Thread(target=_checkpoint_loop, args=(path, interval),
                                  name="whistle-wal-checkpoint", daemon=True)
        thread.start()
        _checkpointer[key] = thread
    return thread


def _checkpoint_loop(path: str, interval: float) -> None:
    con = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    con.execute("PRAGMA busy_timeout=0")  # another process checkpointing: try next time
    try:
        while os.path.exists(path):
            try:
                con.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            except sqlite3.Error:
                log.debug("background checkpoint did not run", exc_info=True)
            time.sleep(interval)
    finally:
        con.close()


def _sqlite_path(url: str) -> str | None:
    database = make_url(url).database
    return database if database and database != ":memory:" else None


def init_app(app: Flask) -> None:
    background = (app.config.get("SQLITE_CHECKPOINT_THREAD", False)
                  and app.config["DATABASE_URL"].startswith("sqlite"))
    engine = make_engine(app.config["DATABASE_URL"], app.config.get("DB_BUSY_TIMEOUT_MS", 5000),
                         app.config.get("SQLITE_CACHE_MIB", 64),
                         app.config.get("SQLITE_WAL_MAX_PAGES", 16000) if background else 1000)
    path = _sqlite_path(app.config["DATABASE_URL"]) if background else None
    if path is not None:
        started_in: list[int] = []

        # Started by the first request in each process, so never in a master that forks.
        @app.before_request
        def _ensure_checkpointer() -> None:
            if not started_in or started_in[-1] != os.getpid():
                start_checkpointer(path)
                started_in.append(os.getpid())

    app.extensions["whistle_engine"] = engine
    app.extensions["whistle_sessionmaker"] = sessionmaker(engine, expire_on_commit=False)
    app.teardown_appcontext(_close_session)
    if engine.dialect.name == "sqlite":
        _retry_reads_on_busy(app)
    else:
        _retry_after_disconnect(app)


def engine_for(app: Flask) -> Engine:
    engine: Engine = app.extensions["whistle_engine"]
    return engine


def new_session(app: Flask) -> Session:
    maker: sessionmaker[Session] = app.extensions["whistle_sessionmaker"]
    return maker()


def session() -> Session:
    """The request's session, opened on first use and closed at teardown."""
    if "db_session" not in g:
        g.db_session = new_session(current_app)
    s: Session = g.db_session
    return s


def _close_session(_exc: BaseException | None) -> None:
    s = g.pop("db_session", None)
    if s is not None:
        s.close()
