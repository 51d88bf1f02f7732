"""Engine, sessions and transactions: the only module that knows SQLite from PostgreSQL.

SQLite gets WAL, synchronous=FULL, foreign keys and a busy timeout. How a piece of work
begins its transactions is declared by its caller as a ``Mode`` (the web layer declares
one per endpoint, see ``whistle.web.transactions``), never guessed from a request here:

- ``READ``: reads, plus the odd single write (a session's last-seen time, an "opened"
  event). SQLite begins deferred, so reads run side by side (WAL); PostgreSQL ordinary.
- ``READ_ALONE``: like ``READ``, but on PostgreSQL the first transaction runs in
  autocommit (each statement its own snapshot: no BEGIN and no ROLLBACK round trip).
- ``SINGLE_READS``: ``READ_ALONE``, and on SQLite ``single_read`` runs its SELECT on a
  driver connection of its own, outside the session (the status check's lookup).
- ``WRITE``: SQLite takes the write lock up front (BEGIN IMMEDIATE, polled), so a
  transaction that reads then writes never fails when another worker committed between.
- ``WRITE_WITH_LOCK``: reads first without the lock (SQLite deferred), then the work
  calls ``take_write_lock`` before its first write (a submission seals before locking).

Work outside a ``Unit`` (commands, the outbox, tests) begins deferred, so that e.g. the
outbox never holds the lock while it talks SMTP.

``run`` runs a unit of work again when that is safe and useful: a ``READ``/``READ_ALONE``
unit whose rare write found SQLite busy runs again holding the lock (optimistic first,
so pure reads never wait for writers); any unit whose PostgreSQL connection turned out
dead before it wrote anything runs again once on a fresh connection (the server
restarted since the pool opened it). Such a failure is raised as ``RunAgain``, which
callers that turn database errors into a 503 do not catch.
"""

from __future__ import annotations

import contextlib
import contextvars
import enum
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import Engine, create_engine, event, make_url, text
from sqlalchemy.exc import DisconnectionError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from whistle.store import counts

if TYPE_CHECKING:
    from whistle.config import Settings
    from whistle.store.prepared import PreparedQuery

log = logging.getLogger(__name__)
T = TypeVar("T")


class Mode(enum.Enum):
    READ = "read"
    READ_ALONE = "read alone"
    SINGLE_READS = "single reads"
    WRITE = "write"
    WRITE_WITH_LOCK = "write with lock"


_DEFERRED = frozenset({Mode.READ, Mode.READ_ALONE, Mode.SINGLE_READS, Mode.WRITE_WITH_LOCK})
_AUTOCOMMIT_FIRST = frozenset({Mode.READ_ALONE, Mode.SINGLE_READS})
# Modes whose rare write runs the work again with the lock when SQLite is busy.
_AGAIN_ON_BUSY = frozenset({Mode.READ, Mode.READ_ALONE})
_ATTEMPTS_ON_BUSY = 3


class RunAgain(Exception):
    """The unit of work failed in a way that running it again from the start can fix."""

    def __init__(self, with_lock: bool) -> None:
        super().__init__("run the unit of work again")
        self.with_lock = with_lock


class Database:
    """One database: its engine and a session factory."""

    def __init__(self, engine: Engine, info: Mapping[str, Any] | None = None) -> None:
        self.engine = engine
        # ``info``: what every session carries for the domain (e.g. the notification
        # interval, ``whistle.notify``), copied into each session's ``info``.
        self.maker: sessionmaker[Session] = sessionmaker(engine, expire_on_commit=False,
                                                         info=dict(info or {}))
        counts.keep_counts(self.maker)
        self.is_sqlite = engine.dialect.name == "sqlite"

    def new_session(self) -> Session:
        return self.maker()


class Unit:
    """One piece of work (a request) with its declared mode and its session."""

    def __init__(self, database: Database, mode: Mode, attempt: int = 0) -> None:
        self.database, self.mode, self.attempt = database, mode, attempt
        self.wrote = False
        self._session: Session | None = None

    @property
    def session(self) -> Session:
        if self._session is None:
            self._session = self.database.new_session()
            self._session.info["unit"] = self
            if self.mode in _AUTOCOMMIT_FIRST and not self.database.is_sqlite:
                self._session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
        return self._session

    def close(self) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None


_current: contextvars.ContextVar[Unit | None] = contextvars.ContextVar("whistle_unit",
                                                                       default=None)


def current_unit() -> Unit | None:
    return _current.get()


def session() -> Session:
    """The session of the unit of work in progress (a request's)."""
    unit = _current.get()
    if unit is None:
        raise RuntimeError("no unit of work in progress: use new_session() outside requests")
    return unit.session


def run(database: Database, mode: Mode, work: Callable[[], T],
        before_again: Callable[[], None] | None = None) -> T:
    """Run ``work`` as a unit of work in ``mode``, again when ``RunAgain`` says so (see the
    module's docstring). The unit stays current after ``work`` returns or raises, so that
    error handlers can still roll back; ``end`` closes it."""
    attempt = 0
    while True:
        if _current.get() is not None:
            end()
        unit = Unit(database, mode, attempt)
        _current.set(unit)
        try:
            return work()
        except RunAgain as again:
            if again.with_lock:
                mode = Mode.WRITE
            log.warning("database %s; running the request again",
                        "busy" if again.with_lock else "connection lost")
        except OperationalError as exc:
            # SQLite statements sent straight to the driver (whistle.store.prepared) are
            # not seen by the engine's error event: decide here alike.
            if not _again_on_busy(unit, exc.orig):
                raise
            mode = Mode.WRITE
        attempt += 1
        if before_again is not None:
            before_again()


def end() -> None:
    """Close the unit of work in progress, if any (at the end of a request)."""
    unit = _current.get()
    if unit is not None:
        unit.close()
        _current.set(None)


@contextlib.contextmanager
def unit_of_work(database: Database, mode: Mode) -> Iterator[Unit]:
    """A unit of work outside ``run`` (tests and benchmarks that drive a use case)."""
    token = _current.set(Unit(database, mode))
    try:
        yield _current.get()  # type: ignore[misc]
    finally:
        end()
        _current.reset(token)


def _again_on_busy(unit: Unit | None, exc: BaseException | None) -> bool:
    return (unit is not None and unit.mode in _AGAIN_ON_BUSY
            and unit.attempt < _ATTEMPTS_ON_BUSY - 1 and _is_busy(exc))


def make_engine(url: str, busy_timeout_ms: int = 5000, cache_mib: int = 64,
                autocheckpoint_pages: int = 1000) -> Engine:
    """``cache_mib``: SQLite's page cache per connection (its default is 2 MiB; a
    million cases need their index pages at hand). ``autocheckpoint_pages``: WAL size at
    which the committing connection copies the WAL back into the database itself (see
    ``start_checkpointer``)."""
    if url.startswith("sqlite"):
        return _sqlite_engine(url, busy_timeout_ms, cache_mib, autocheckpoint_pages)
    # A row or table lock held elsewhere: wait as long as SQLite's busy timeout, then fail
    # (a 503 saying nothing was saved) instead of holding the request forever.
    engine = create_engine(url, pool_size=5, max_overflow=5, connect_args={
        "options": f"-c lock_timeout={int(busy_timeout_ms)}"})
    _handle_disconnects(engine)
    return engine


def _sqlite_engine(url: str, busy_timeout_ms: int, cache_mib: int,
                   autocheckpoint_pages: int) -> Engine:
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
        # 5xx for reporters. So work that changes things (``WRITE``) takes the write
        # lock up front; reads stay deferred and run side by side (WAL).
        unit = _current.get()
        if unit is None or unit.mode in _DEFERRED:
            # On the driver connection: through exec_driver_sql this one statement was a
            # noticeable part of a status check (bench/results/README.md).
            conn.connection.driver_connection.execute("BEGIN")
        else:
            _begin_immediate(conn, busy_timeout_ms)

    @event.listens_for(engine, "handle_error")
    def _busy(context: Any) -> None:
        if _again_on_busy(_current.get(), context.original_exception):
            raise RunAgain(with_lock=True)

    return engine


def _handle_disconnects(engine: Engine) -> None:
    """A pooled PostgreSQL connection dies when the server restarts. ``pool_pre_ping``
    would test every connection at checkout: a round trip on every request, a large part
    of what a status check costs. Instead, units of work run again once if their first statements
    found the connection dead (``run``); outside units (commands, outbox and deadline
    runs) connections are still tested at checkout."""

    @event.listens_for(engine, "checkout")
    def _ping_outside_units(dbapi_conn: Any, _record: Any, _proxy: Any) -> None:
        if _current.get() is not None:
            return
        try:
            alive = engine.dialect.do_ping(dbapi_conn)
        except Exception as exc:  # noqa: BLE001 - any failure means "use another connection"
            raise DisconnectionError("pooled connection is dead") from exc
        if not alive:
            raise DisconnectionError("pooled connection is dead")

    @event.listens_for(engine, "before_cursor_execute")
    def _note_writes(_conn: Any, _cursor: Any, statement: str, *_rest: Any) -> None:
        unit = _current.get()
        if unit is not None and not statement.lstrip()[:6].upper() == "SELECT":
            unit.wrote = True

    @event.listens_for(engine, "handle_error")
    def _dead_connection(context: Any) -> None:
        # After SQLAlchemy invalidated the connection (and the pool's older ones).
        unit = _current.get()
        if context.is_disconnect and unit is not None and unit.attempt == 0 \
                and not unit.wrote:
            raise RunAgain(with_lock=False)


def _is_busy(exc: BaseException | None) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    return (code & 0xFF) == 5 if isinstance(code, int) else "locked" in str(exc)


def _begin_immediate(conn: Any, busy_timeout_ms: int) -> None:
    """BEGIN IMMEDIATE, trying again every half millisecond while another worker writes.

    SQLite's own busy handler sleeps 1, 2, 5 ... 100 ms between tries, so under load
    one worker could starve another for seconds (a long tail even with only two
    workers: see bench/results/README.md).
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



def single_read(session: Session, query: PreparedQuery, params: Mapping[str, Any]
                ) -> list[Any]:
    """The rows of one SELECT that needs no transaction around it.

    In a ``SINGLE_READS`` unit on SQLite it runs on a pooled driver connection of its
    own, outside the session (whose transaction, checkout and close cost as much as the
    SELECT). Elsewhere, and once the session has begun a transaction, it runs in the
    session like any read."""
    unit = session.info.get("unit")
    if unit is None or unit.mode is not Mode.SINGLE_READS or not unit.database.is_sqlite \
            or session.in_transaction():
        return query.all(session.connection(), params)
    engine = unit.database.engine
    pooled = engine.raw_connection()
    try:
        return query.all_on_driver(engine.dialect, pooled.driver_connection, params)
    finally:
        pooled.close()


def take_write_lock(session: Session) -> None:
    """Start writing in work that read first (``WRITE_WITH_LOCK``): on SQLite, end this
    session's read-only transaction and take the write lock on the same connection
    (BEGIN IMMEDIATE, polled). What was read before may have changed since: read again
    what matters. On PostgreSQL nothing to do (row locks, no database-wide write lock).

    Done on the driver connection: the session's transaction goes on and its COMMIT ends
    the write transaction. A Session.commit and a fresh checkout cost more, a visible part of
    a submission. Call it only while nothing has been written.
    """
    unit = session.info.get("unit")
    if unit is not None and unit.mode is not Mode.WRITE_WITH_LOCK:
        return  # WRITE holds the lock already; the read modes do not write this way
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


def one_snapshot(session: Session) -> None:
    """Let every read of the session's next transaction see the same snapshot (work that
    compares several tables: ``audit verify``, a checkpoint). Call it before the
    transaction's first statement. SQLite: its deferred transaction reads one snapshot
    already; PostgreSQL: REPEATABLE READ instead of a snapshot per statement."""
    if session.get_bind().dialect.name == "postgresql":
        session.connection(execution_options={"isolation_level": "REPEATABLE READ"})


# -- WAL checkpoints off the request path (SQLite) ----------------------

# A checkpoint copies what the WAL holds back into the database file. By default the
# connection whose commit crosses 1000 pages does it, inside that request: at a million
# cases that was a long burst of random writes and an fsync, the submit p99. A thread per
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


def open_database(settings: Settings) -> Database:
    """The engine and sessions for ``settings.database_url``."""
    background = settings.sqlite_checkpoint_thread and settings.database_url.startswith(
        "sqlite")
    secure_sqlite_files(settings.database_url)
    return Database(make_engine(settings.database_url, settings.db_busy_timeout_ms,
                                settings.sqlite_cache_mib,
                                settings.sqlite_wal_max_pages if background else 1000),
                    {"notify_interval_minutes": settings.notify_interval_minutes})


def secure_sqlite_files(url: str, directory_too: bool = False) -> None:
    """Make a SQLite database owner-only before SQLite first opens it (issue 20): its
    directory made 0700 when Whistle creates it (and by ``init``: ``directory_too``), the
    database file created 0600 when missing, and the database, ``-wal`` and ``-shm`` files
    that exist made 0600. SQLite gives the ``-wal`` and ``-shm`` files it creates later the
    database file's own permissions, so they are 0600 too; no process-wide umask is
    changed. Files owned by another user are left alone (the operator's choice)."""
    path = _sqlite_path(url) if url.startswith("sqlite") else None
    if path is None or path.startswith("file:"):
        return
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        os.makedirs(directory, mode=0o700, exist_ok=True)
        directory_too = True
    if directory_too:
        owner_only(directory, 0o700)
    if not os.path.exists(path):
        with contextlib.suppress(FileExistsError):
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    for name in (path, path + "-wal", path + "-shm", path + "-journal"):
        owner_only(name, 0o600)


def owner_only(path: str, mode: int) -> None:
    try:
        found = os.stat(path)
    except FileNotFoundError:
        return
    if found.st_uid == os.geteuid() and found.st_mode & 0o777 != mode:
        os.chmod(path, mode)


def checkpoint_path(settings: Settings) -> str | None:
    """The SQLite file whose WAL a thread checkpoints, when that is configured."""
    if not (settings.sqlite_checkpoint_thread and settings.database_url.startswith("sqlite")):
        return None
    return _sqlite_path(settings.database_url)


def database_of(app: Any) -> Database:
    """The app's database (``app.extensions``; no import of Flask here)."""
    found: Database = app.extensions["whistle_database"]
    return found


def engine_for(app: Any) -> Engine:
    return database_of(app).engine


def new_session(app: Any) -> Session:
    """A session of its own, outside any unit of work (commands, threads, tests)."""
    return database_of(app).new_session()
