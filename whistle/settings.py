"""Administrator-set values (categories, units, advice text), with defaults."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy.orm import Session

from whistle.config import DEFAULT_CATEGORIES, DEFAULT_UNITS
from whistle.models import Setting


def get(session: Session, key: str, default: Any) -> Any:
    row = session.get(Setting, key)
    return json.loads(row.value) if row else default


def put(session: Session, key: str, value: Any) -> None:
    row = session.get(Setting, key)
    if row is None:
        session.add(Setting(key=key, value=json.dumps(value)))
    else:
        row.value = json.dumps(value)


def categories(session: Session) -> list[dict[str, str]]:
    default = [{"id": cid, "label": label} for cid, label in DEFAULT_CATEGORIES]
    value: list[dict[str, str]] = get(session, "categories", default)
    return value


def units(session: Session) -> list[str]:
    value: list[str] = get(session, "units", list(DEFAULT_UNITS))
    return value


def advice(session: Session) -> str:
    value: str = get(session, "advice", "")
    return value
