"""Hot writes compiled once per dialect and sent as driver SQL.

A Core ``conn.execute(insert(T), rows)`` looks its compiled form up in
SQLAlchemy's cache, builds an execution context, and turns every row's values
through the column types each time: about 60 us per statement here, twice the
driver's own work for a submission's few short rows. ``Prepared`` keeps what
SQLAlchemy compiled for the dialect (the SQL text, the order of the parameters
and the columns' bind processors) and runs it with ``exec_driver_sql``: the same
connection, transaction, events (``db`` notes writes through them) and error
wrapping as any other statement, without the per-call compilation work.

Only for writes: rows read this way would come back without the columns' result
processing (SQLite's dates would stay strings).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import ColumnDefault, Connection, Dialect
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.expression import ClauseElement

Processor = Callable[[Any], Any] | None


@dataclass(frozen=True)
class _Plan:
    sql: str
    names: tuple[str, ...]  # parameter names, in order for a positional paramstyle
    processors: tuple[Processor, ...]
    positional: bool
    defaults: Mapping[str, Any]  # columns the rows leave out: their scalar defaults

    def params(self, row: Mapping[str, Any]) -> tuple[Any, ...] | dict[str, Any]:
        if self.defaults:
            row = {**self.defaults, **row}
        values = [p(row[n]) if p is not None else row[n]
                  for n, p in zip(self.names, self.processors, strict=True)]
        if self.positional:
            return tuple(values)
        return dict(zip(self.names, values, strict=True))


class Prepared:
    """One INSERT, UPDATE or DELETE, compiled on first use for each dialect and column set."""

    def __init__(self, statement: ClauseElement) -> None:
        self.statement = statement
        self._plans: dict[tuple[str, tuple[str, ...]], _Plan] = {}

    def _plan(self, dialect: Dialect, keys: tuple[str, ...]) -> _Plan:
        compiled = cast(SQLCompiler,
                        self.statement.compile(dialect=dialect, column_keys=list(keys)))
        positional = bool(compiled.positional)
        names = tuple(compiled.positiontup or ()) if positional else tuple(compiled.binds)
        processors = tuple(
            compiled.binds[n].type.dialect_impl(dialect).bind_processor(dialect) for n in names)
        # Columns left out get their defaults, as Core would compute them per execution;
        # only constants are supported (a callable default would need its context).
        if compiled.update_prefetch:
            raise TypeError("statements with Python-side onupdate values cannot be prepared")
        defaults = {}
        for column in compiled.insert_prefetch:
            default = column.default
            if not isinstance(default, ColumnDefault) or not default.is_scalar:
                raise TypeError(f"{column.key}: only constant defaults can be prepared")
            defaults[column.key] = default.arg
        return _Plan(compiled.string, names, processors, positional, defaults)

    def run(self, conn: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
        """Execute once per row (one executemany); every row has the same keys."""
        if not rows:
            return
        keys = tuple(rows[0])
        cache_key = (conn.dialect.name, keys)
        plan = self._plans.get(cache_key)
        if plan is None:
            plan = self._plans[cache_key] = self._plan(conn.dialect, keys)
        params = [plan.params(row) for row in rows]
        conn.exec_driver_sql(plan.sql, params[0] if len(params) == 1 else params)
