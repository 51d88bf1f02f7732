"""timing (issue 20): no ordering of reporter-side rows that reveals time within a day

- ``audit_events`` loses its global autoincrement ``id``: its key is the case and the
  case's own sequence number (the unique key it had).
- ``wrapped_keys`` loses its global autoincrement ``id``: its key is the case, the
  recipient and the kind of key (the unique key it had).
- ``outbox.id`` becomes a random 128-bit hex id (existing rows get random ids too), and
  what sent mail keeps is cut to the day (``sent``, ``next_attempt``, ``created``).
- On SQLite these tables, ``messages`` and ``assignments`` become WITHOUT ROWID tables: a hidden rowid is
  ``max(rowid) + 1`` and would order a reporter's rows between a reviewer's timestamped
  ones. The tables are rebuilt (renamed, created anew, copied, the old one dropped); no
  other table has a foreign key to them. PostgreSQL has no rowid: it alters in place.

Revision ID: 0012
Revises: 0011
"""

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None

_NO_ROWID: dict[str, Any] = {"sqlite_with_rowid": False}


def _new_tables(metadata: sa.MetaData) -> dict[str, sa.Table]:
    """The tables as this revision leaves them (written out: never the models)."""
    _concerns(metadata)
    return {
        "audit_events": sa.Table(
            "audit_events", metadata,
            sa.Column("concern_id", sa.String(40), sa.ForeignKey("concerns.id"),
                      primary_key=True),
            sa.Column("seq", sa.Integer(), primary_key=True, autoincrement=False),
            sa.Column("at", sa.DateTime(), nullable=False),
            sa.Column("type", sa.String(40), nullable=False),
            sa.Column("actor", sa.String(40), nullable=False),
            sa.Column("data", sa.Text(), nullable=False),
            sa.Column("prev_hash", sa.LargeBinary(32), nullable=False),
            sa.Column("hash", sa.LargeBinary(32), nullable=False),
            **_NO_ROWID),
        "wrapped_keys": sa.Table(
            "wrapped_keys", metadata,
            sa.Column("concern_id", sa.String(40), sa.ForeignKey("concerns.id"),
                      primary_key=True),
            sa.Column("recipient_kind", sa.String(16), primary_key=True),
            sa.Column("recipient_id", sa.String(64), primary_key=True),
            sa.Column("key_kind", sa.String(16), primary_key=True),
            sa.Column("blob", sa.LargeBinary(), nullable=False),
            **_NO_ROWID),
        "outbox": sa.Table(
            "outbox", metadata,
            sa.Column("id", sa.String(32), primary_key=True),
            sa.Column("recipient", sa.String(254), nullable=False),
            sa.Column("template", sa.String(40), nullable=False),
            sa.Column("created", sa.DateTime(), nullable=False),
            sa.Column("attempts", sa.Integer(), nullable=False),
            sa.Column("next_attempt", sa.DateTime(), nullable=False),
            sa.Column("sent", sa.DateTime(), nullable=True),
            sa.Column("failed", sa.Boolean(), nullable=False),
            sa.Column("secret_ct", sa.LargeBinary(), nullable=True),
            sa.Index("ix_outbox_pending", "sent", "failed", "next_attempt"),
            **_NO_ROWID),
        "assignments": sa.Table(
            "assignments", metadata,
            sa.Column("concern_id", sa.String(40), sa.ForeignKey("concerns.id"),
                      primary_key=True),
            sa.Column("reviewer_id", sa.String(32), sa.ForeignKey("reviewers.id"),
                      primary_key=True),
            sa.Column("status", sa.String(32), nullable=False),
            sa.Column("created", sa.Date(), nullable=False),
            sa.Column("overdue", sa.Boolean(), nullable=False, server_default=sa.false()),
            sa.Index("ix_assignments_inbox", "reviewer_id", "status", "created", "concern_id"),
            sa.Index("ix_assignments_inbox_all", "reviewer_id", "created", "concern_id"),
            sa.Index("ix_assignments_overdue", "reviewer_id", "created", "concern_id",
                     sqlite_where=sa.text("overdue IS 1"),
                     postgresql_where=sa.text("overdue IS true")),
            **_NO_ROWID),
        "messages": sa.Table(
            "messages", metadata,
            sa.Column("id", sa.String(32), primary_key=True),
            sa.Column("seq", sa.Integer(), nullable=False, autoincrement=False),
            sa.Column("concern_id", sa.String(40), sa.ForeignKey("concerns.id"),
                      nullable=False),
            sa.Column("kind", sa.String(16), nullable=False),
            sa.Column("sender", sa.String(16), nullable=False),
            sa.Column("reviewer_id", sa.String(32), nullable=True),
            sa.Column("created", sa.Date(), nullable=False),
            sa.Column("body_ct", sa.LargeBinary(), nullable=False),
            sa.Index("ix_messages_concern_id", "concern_id"),
            **_NO_ROWID),
    }


def _concerns(metadata: sa.MetaData) -> None:
    """The table the foreign keys name (never created here)."""
    sa.Table("concerns", metadata, sa.Column("id", sa.String(40), primary_key=True))
    sa.Table("reviewers", metadata, sa.Column("id", sa.String(32), primary_key=True))


# What each new table's column is filled from in the old one (SQLite): a new random id for
# the outbox.
_SQLITE_FROM = {"id@outbox": "lower(hex(randomblob(16)))"}


def _rebuild_sqlite(table: sa.Table) -> None:
    bind = op.get_bind()
    name = table.name
    old = f"_old_{name}"
    for index in sa.inspect(bind).get_indexes(name):
        op.execute(sa.text(f'DROP INDEX "{index["name"]}"'))
    op.execute(sa.text(f'ALTER TABLE "{name}" RENAME TO "{old}"'))
    table.create(bind)
    columns = [c.name for c in table.columns]
    sources = [_SQLITE_FROM.get(f"{c}@{name}", f'"{c}"') for c in columns]
    op.execute(sa.text(
        f'INSERT INTO "{name}" ({", ".join(chr(34) + c + chr(34) for c in columns)}) '  # nosec B608 - names from this file
        f'SELECT {", ".join(sources)} FROM "{old}"'))
    op.execute(sa.text(f'DROP TABLE "{old}"'))


def _dates_only_sqlite() -> None:
    # SQLAlchemy keeps SQLite DateTime as 'YYYY-MM-DD HH:MM:SS.ffffff'.
    day = "substr({0}, 1, 10) || ' 00:00:00.000000'"
    op.execute(sa.text(
        f"UPDATE outbox SET created = {day.format('created')}, "  # nosec B608 - names from this file
        f"sent = {day.format('sent')}, next_attempt = {day.format('sent')} "
        "WHERE sent IS NOT NULL"))
    op.execute(sa.text(f"UPDATE outbox SET created = {day.format('created')} "  # nosec B608 - names from this file
                       "WHERE sent IS NULL"))


def _drop_unique(table: str, columns: list[str]) -> None:
    for found in sa.inspect(op.get_bind()).get_unique_constraints(table):
        if list(found["column_names"]) == columns and found["name"]:
            op.drop_constraint(found["name"], table, type_="unique")


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        for table in _new_tables(sa.MetaData()).values():
            _rebuild_sqlite(table)
        _dates_only_sqlite()
        return
    # PostgreSQL: dropping the id columns drops their primary keys and sequences.
    op.drop_column("audit_events", "id")
    _drop_unique("audit_events", ["concern_id", "seq"])
    op.create_primary_key("audit_events_pkey", "audit_events", ["concern_id", "seq"])
    op.drop_column("wrapped_keys", "id")
    _drop_unique("wrapped_keys", ["concern_id", "recipient_kind", "recipient_id", "key_kind"])
    op.create_primary_key("wrapped_keys_pkey", "wrapped_keys",
                          ["concern_id", "recipient_kind", "recipient_id", "key_kind"])
    op.execute(sa.text("ALTER TABLE outbox ALTER COLUMN id DROP DEFAULT"))
    op.execute(sa.text("ALTER TABLE outbox ALTER COLUMN id TYPE VARCHAR(32) "
                       "USING replace(gen_random_uuid()::text, '-', '')"))
    op.execute(sa.text("DROP SEQUENCE IF EXISTS outbox_id_seq"))
    op.execute(sa.text(
        "UPDATE outbox SET created = date_trunc('day', created), "
        "sent = date_trunc('day', sent), next_attempt = date_trunc('day', sent) "
        "WHERE sent IS NOT NULL"))
    op.execute(sa.text("UPDATE outbox SET created = date_trunc('day', created) "
                       "WHERE sent IS NULL"))


def _old_tables(metadata: sa.MetaData) -> dict[str, sa.Table]:
    """The tables as revision 0011 had them (for the downgrade on SQLite)."""
    new = _new_tables(sa.MetaData())
    _concerns(metadata)
    tables: dict[str, sa.Table] = {}
    for name, table in new.items():
        columns: list[sa.Column] = []
        if name in ("audit_events", "wrapped_keys", "outbox"):
            columns.append(sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True))
        for column in table.columns:
            if name == "outbox" and column.name == "id":
                continue
            keyed = column.primary_key and name in ("messages", "assignments")
            columns.append(sa.Column(column.name, column.type, *[
                sa.ForeignKey(fk.target_fullname) for fk in column.foreign_keys],
                primary_key=keyed, nullable=column.nullable and not column.primary_key,
                server_default=getattr(column.server_default, "arg", None),
                autoincrement=False))
        extra: list[Any] = [sa.Index(ix.name, *[c.name for c in ix.columns],
                                     **ix.dialect_kwargs)
                            for ix in table.indexes if ix.name]
        if name == "audit_events":
            extra.append(sa.UniqueConstraint("concern_id", "seq"))
        if name == "wrapped_keys":
            extra.append(sa.UniqueConstraint("concern_id", "recipient_kind", "recipient_id",
                                             "key_kind"))
        tables[name] = sa.Table(name, metadata, *columns, *extra)
    return tables


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        for table in _old_tables(sa.MetaData()).values():
            name = table.name
            old = f"_old_{name}"
            for index in sa.inspect(bind).get_indexes(name):
                op.execute(sa.text(f'DROP INDEX "{index["name"]}"'))
            op.execute(sa.text(f'ALTER TABLE "{name}" RENAME TO "{old}"'))
            table.create(bind)
            columns = [c.name for c in table.columns
                       if not (c.name == "id" and name not in ("messages", "assignments"))]
            quoted = ", ".join(f'"{c}"' for c in columns)
            op.execute(sa.text(f'INSERT INTO "{name}" ({quoted}) SELECT {quoted} FROM "{old}"'))  # nosec B608 - names from this file
            op.execute(sa.text(f'DROP TABLE "{old}"'))
        return
    op.drop_constraint("audit_events_pkey", "audit_events", type_="primary")
    op.create_unique_constraint(None, "audit_events", ["concern_id", "seq"])
    op.execute(sa.text("ALTER TABLE audit_events ADD COLUMN id SERIAL PRIMARY KEY"))
    op.drop_constraint("wrapped_keys_pkey", "wrapped_keys", type_="primary")
    op.create_unique_constraint(None, "wrapped_keys",
                                ["concern_id", "recipient_kind", "recipient_id", "key_kind"])
    op.execute(sa.text("ALTER TABLE wrapped_keys ADD COLUMN id SERIAL PRIMARY KEY"))
    op.execute(sa.text("ALTER TABLE outbox DROP CONSTRAINT outbox_pkey"))
    op.execute(sa.text("ALTER TABLE outbox DROP COLUMN id"))
    op.execute(sa.text("ALTER TABLE outbox ADD COLUMN id SERIAL PRIMARY KEY"))
