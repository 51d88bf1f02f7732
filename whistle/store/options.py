"""Administrator-set values (categories, units, advice text), with defaults."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import bindparam, literal_column, select
from sqlalchemy.orm import Session

from whistle.config import DEFAULT_CATEGORIES, DEFAULT_UNITS
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


# Both lists a submission is checked against, in one read (compiled once: whistle.store.prepared).
_INTAKE = PreparedQuery(select(Setting.key, Setting.value).where(
    Setting.key.in_([literal_column("'categories'"), literal_column("'units'")])))


def intake_lists(session: Session) -> tuple[list[dict[str, str]], list[str]]:
    """``categories`` and ``units`` together (one query: every submission needs both)."""
    session.flush()
    found = dict(_INTAKE.all(session.connection(), {}))
    cats = (json.loads(found["categories"]) if "categories" in found
            else [{"id": cid, "label": label} for cid, label in DEFAULT_CATEGORIES])
    return cats, (json.loads(found["units"]) if "units" in found else list(DEFAULT_UNITS))


def advice(session: Session) -> str:
    value: str = get(session, "advice", "")
    return value
