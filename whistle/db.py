"""Engine and sessions. SQLite gets WAL, synchronous=FULL, foreign keys and a busy timeout."""

from __future__ import annotations

from typing import Any

from flask import Flask, g
from sqlalchemy import Engine, create_engine, event
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
            # IMMEDIATE: take the write lock up front (waiting up to busy_timeout). A deferred
            # transaction that reads and then writes fails at once with SQLITE_BUSY when
            # another worker committed in between: under load that was a 503 for a reporter.
            # Reads outside a request's transaction still run concurrently (WAL).
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=5)


def init_app(app: Flask) -> None:
    engine = make_engine(app.config["DATABASE_URL"], app.config.get("DB_BUSY_TIMEOUT_MS", 5000))
    app.extensions["whistle_engine"] = engine
    app.extensions["whistle_sessionmaker"] = sessionmaker(engine, expire_on_commit=False)
    app.teardown_appcontext(_close_session)


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
