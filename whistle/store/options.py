"""Administrator-set values (categories, units, advice text), with defaults."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import bindparam, literal_column, select
from sqlalchemy.orm import Session

from whistle.config import DEFAULT_CATEGORIES, DEFAULT_CATEGORY_CLOCKS, DEFAULT_UNITS
from whistle.store import db
from whistle.store.models import Setting
from whistle.store.prepared import PreparedQuery

# One column by primary key, on the connection: every submission validates its category
# and unit, and ``session.get`` (an ORM object each time) was a measurable part of each.
_VALUE = select(Setting.value).where(Setting.key == bindparam("key"))


def get(session: Session, key: str, default: Any) -> Any:
    session.flush()  # a value ``put`` in this transaction reads back (nothing to do if clean)
    value = session.connection().execute(_VALUE, {"key": key}).scalar()
    return json.loads(value) if value is not None else default


def put(session: Session, key: str, value: Any) -> None:
    row = session.get(Setting, key)
    if row is None:
        session.add(Setting(key=key, value=json.dumps(value)))
    else:
        row.value = json.dumps(value)


def categories(session: Session) -> list[dict[str, str]]:
    return intake_lists(session)[0]


def units(session: Session) -> list[str]:
    value: list[str] = get(session, "units", list(DEFAULT_UNITS))
    return value


# Set once, never unset: the roster is sealed (whistle.people.roster). Its value says when
# and by what (the first concern, /setup or the command line).
ROSTER_SEALED = "roster_sealed"
# Both lists a submission is checked against, and whether the roster is sealed (the first
# concern seals it), in one read (compiled once: whistle.store.prepared).
_INTAKE = PreparedQuery(select(Setting.key, Setting.value).where(
    Setting.key.in_([literal_column("'categories'"), literal_column("'units'"),
                     literal_column("'" + ROSTER_SEALED + "'")])))
# PostgreSQL: orders concurrent ``put_once`` calls ("whon" in ASCII; SQLite has one writer).
_ONCE_LOCK = 0x77686F6E


def intake_lists(session: Session) -> tuple[list[dict[str, str]], list[str]]:
    """``categories`` and ``units`` together (one query: every submission needs both)."""
    cats, units, _sealed = intake_state(session)
    return cats, units


def intake_state(session: Session) -> tuple[list[dict[str, str]], list[str], bool]:
    """``categories``, ``units`` and whether the roster is sealed, in one query."""
    session.flush()
    found = dict(_INTAKE.all(session.connection(), {}))
    cats = (json.loads(found["categories"]) if "categories" in found
            else [{"id": cid, "label": label} | DEFAULT_CATEGORY_CLOCKS.get(cid, {})
                  for cid, label in DEFAULT_CATEGORIES])
    return (cats, json.loads(found["units"]) if "units" in found else list(DEFAULT_UNITS),
            ROSTER_SEALED in found)


def put_once(session: Session, key: str, value: Any) -> bool:
    """Set ``key`` unless it is set already (caller's transaction). True if this call set it.
    Concurrent callers: one sets it (PostgreSQL: an advisory lock orders them; SQLite: the
    write lock, or a busy error for a loser that read first)."""
    db.serialize_appends(session, _ONCE_LOCK)
    if get(session, key, None) is not None:
        return False
    put(session, key, value)
    return True


def advice(session: Session) -> str:
    value: str = get(session, "advice", "")
    return value
