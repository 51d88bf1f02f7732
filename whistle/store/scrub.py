"""Deleting a case's stored bytes for good (issue 23, whistle.cases.retention).

``delete_case_rows`` deletes every row of every table that names the case (a
``concern_id`` column or a foreign key to ``concerns.id``), and the rows of tables that
point at those rows (an attachment's chunks), except the tables the caller keeps (the
content-free trail, the registry, the checkpoints' heads). A table added later is deleted
from by default: a new kind of case content cannot be forgotten here.

``after_deletion`` makes the deletion reach the disk:

* SQLite: every connection runs with ``secure_delete=ON`` (whistle.store.db), so freed
  cells and pages are overwritten with zeros; then a ``wal_checkpoint(TRUNCATE)`` copies
  the log back into the file and truncates the log to nothing, so the old page images in
  the WAL go too.
* PostgreSQL: a ``DELETE`` leaves dead tuples in the table's pages until ``VACUUM``
  removes them; ``VACUUM`` runs here on the tables deleted from. Old tuple bytes can stay
  in the freed space of a page until it is reused, in WAL segments until they are
  recycled, and in base backups and WAL archives until they expire: see
  docs/clocks-and-retention.md.
"""

from __future__ import annotations

import time
from typing import cast
from collections.abc import Collection

from sqlalchemy import Engine, Table, delete, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from whistle.store.models import Base, Change


def _case_columns(table: Table) -> list[str]:
    names = {fk.parent.name for fk in table.foreign_keys
             if fk.column.table.name == "concerns" and fk.column.name == "id"}
    if "concern_id" in table.c:
        names.add("concern_id")
    return sorted(names)


def delete_case_rows(session: Session, case_ref: str, keep: Collection[str]) -> dict[str, int]:
    """Delete every row naming ``case_ref`` outside the ``keep`` tables (caller's
    transaction); returns rows deleted per table."""
    deleted: dict[str, int] = {}
    conn = session.connection()
    tables = [t for t in reversed(Base.metadata.sorted_tables)
              if t.name not in keep and t.name != "concerns" and _case_columns(t)]
    for table in tables:
        for column in _case_columns(table):
            for child in Base.metadata.sorted_tables:
                if child.name in keep or _case_columns(child):
                    continue  # deleted by its own case columns
                for fk in child.foreign_keys:
                    if fk.column.table is table:
                        rows = select(fk.column).where(table.c[column] == case_ref)
                        n = conn.execute(delete(child).where(fk.parent.in_(rows))).rowcount
                        deleted[child.name] = deleted.get(child.name, 0) + max(n, 0)
            n = conn.execute(delete(table).where(table.c[column] == case_ref)).rowcount
            deleted[table.name] = deleted.get(table.name, 0) + max(n, 0)
    n = conn.execute(delete(Change).where(Change.subject == case_ref)).rowcount
    deleted["changes"] = max(n, 0)
    return {name: n for name, n in deleted.items() if n}


def after_deletion(session: Session, tables: Collection[str], attempts: int = 50) -> bool:
    """Make committed deletions reach the disk (see the module's docstring). True when done
    (SQLite: the log was truncated; some reader kept it busy otherwise)."""
    engine = cast(Engine, session.get_bind())
    session.close()
    if engine.dialect.name == "sqlite":
        for _ in range(attempts):
            raw = engine.raw_connection()
            try:
                cursor = raw.cursor()
                cursor.execute("PRAGMA secure_delete=ON")
                busy = cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
            finally:
                raw.close()
            if busy == 0:
                return True
            time.sleep(0.1)
        return False
    known = {t.name for t in Base.metadata.sorted_tables}
    try:
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            for name in sorted(set(tables) & known):
                conn.execute(text(f'VACUUM "{name}"'))  # our own tables' names
    except DBAPIError:  # not the tables' owner, or busy: autovacuum comes later
        return False
    return True
