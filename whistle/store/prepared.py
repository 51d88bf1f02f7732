"""Hot statements compiled once per dialect and sent as driver SQL.

A Core ``conn.execute(statement, params)`` looks its compiled form up in
SQLAlchemy's cache, builds an execution context, and turns every value through
the column types, on every call: for a submission's short insert, more than the
driver's own work. ``Prepared`` (writes) and ``PreparedQuery``
(reads) keep what SQLAlchemy compiled for the dialect: the SQL text, the order
of the parameters, the columns' bind conversions and, for reads, their result
conversions. On PostgreSQL they run it with ``exec_driver_sql``: the same connection,
transaction, events (``whistle.store.db`` notes writes through them) and error
wrapping as any other statement, without the per-call compilation work. On
SQLite, where Whistle listens to no statement events (a test keeps it so), they
hand it to the driver connection of the same transaction and wrap a driver
error as SQLAlchemy does (``DBAPIError.instance``): the Connection's execution
context and result metadata were a large share of a status check's database time (see
bench/results/README.md, 'Why the hot paths look as they do').

Only for the few statements on the hottest paths (a submission's inserts, the
status lookup, routing's reviewer read); everything else stays plain Core.
"""

from __future__ import annotations

import collections
import dataclasses
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import ColumnDefault, Connection, Dialect, Select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.expression import ClauseElement

Processor = Callable[[Any], Any] | None


@dataclass(frozen=True)
class _Plan:
    sql: str
    names: tuple[str, ...]  # parameter names, in order for a positional paramstyle
    processors: tuple[Processor, ...]  # the bind conversion of each parameter
    positional: bool
    # Values a caller may leave out: those the statement carries (``coalesce(x, 0)``'s
    # 0) and the constant defaults of columns an insert's rows leave out.
    defaults: Mapping[str, Any]

    def params(self, given: Mapping[str, Any]) -> tuple[Any, ...] | dict[str, Any]:
        if self.defaults:
            given = {**self.defaults, **given}
        values = [p(given[n]) if p is not None else given[n]
                  for n, p in zip(self.names, self.processors, strict=True)]
        if self.positional:
            return tuple(values)
        return dict(zip(self.names, values, strict=True))


def _compile(statement: ClauseElement, dialect: Dialect, keys: Sequence[str] | None = None
             ) -> _Plan:
    compiled = cast(SQLCompiler, statement.compile(
        dialect=dialect, column_keys=list(keys) if keys is not None else None))
    positional = bool(compiled.positional)
    names = tuple(compiled.positiontup or ()) if positional else tuple(compiled.binds)
    processors = tuple(
        compiled.binds[n].type.dialect_impl(dialect).bind_processor(dialect) for n in names)
    defaults = {name: bind.effective_value for name, bind in compiled.binds.items()
                if not bind.required}
    # Columns an insert leaves out get their defaults, as Core computes them per execution.
    # Only constants: a callable default would need its execution context.
    if compiled.update_prefetch:
        raise TypeError("statements with Python-side onupdate values cannot be prepared")
    for column in compiled.insert_prefetch:
        default = column.default
        if not isinstance(default, ColumnDefault) or not default.is_scalar:
            raise TypeError(f"{column.key}: only constant defaults can be prepared")
        defaults[column.key] = default.arg
    return _Plan(compiled.string, names, processors, positional, defaults)


def _execute(conn: Connection, sql: str, params: Any, many: bool, fetch: bool
             ) -> Sequence[Any] | None:
    """Run driver SQL in ``conn``'s transaction; the rows if ``fetch``."""
    if conn.dialect.name != "sqlite":
        result = conn.exec_driver_sql(sql, params)
        return result.all() if fetch else None
    return _on_driver(conn.dialect, conn.connection.driver_connection, sql, params, many,
                      fetch)


def _on_driver(dialect: Dialect, raw: Any, sql: str, params: Any, many: bool, fetch: bool
               ) -> Sequence[Any] | None:
    """Run driver SQL on a SQLite driver connection; its error as SQLAlchemy raises it."""
    error: type[Exception] = dialect.loaded_dbapi.Error
    try:
        cursor = raw.executemany(sql, params) if many else raw.execute(sql, params)
        try:
            return cursor.fetchall() if fetch else None
        finally:
            cursor.close()
    except error as exc:
        raise DBAPIError.instance(sql, params, exc, error, dialect=dialect,
                                  ismulti=many) from exc


class Prepared:
    """One INSERT, UPDATE or DELETE, compiled on first use for each dialect and column set."""

    def __init__(self, statement: ClauseElement) -> None:
        self.statement = statement
        self._plans: dict[tuple[str, tuple[str, ...]], _Plan] = {}

    def run(self, conn: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
        """Execute once per row (one executemany); every row has the same keys."""
        if not rows:
            return
        keys = tuple(rows[0])
        plan = self._plans.get((conn.dialect.name, keys))
        if plan is None:
            plan = self._plans[conn.dialect.name, keys] = _compile(
                self.statement, conn.dialect, keys)
        params = [plan.params(row) for row in rows]
        if len(params) == 1:
            _execute(conn, plan.sql, params[0], many=False, fetch=False)
        else:
            _execute(conn, plan.sql, params, many=True, fetch=False)


@dataclass(frozen=True)
class _QueryPlan:
    plan: _Plan
    row: Callable[..., tuple[Any, ...]]  # a named tuple of the selected columns' keys
    results: tuple[Processor, ...]  # the result conversion of each column

    def rows(self, fetched: Sequence[Any]) -> list[Any]:
        return [self.row(*[p(v) if p is not None and v is not None else v
                           for p, v in zip(self.results, values, strict=True)])
                for values in fetched]


def _indexed_by(sql: str, table: str, index: str) -> str:
    """``sql`` with its one ``FROM table`` read by ``index`` (SQLite's ``INDEXED BY``)."""
    found = re.findall(rf"\bFROM {table}\b", sql)
    if len(found) != 1:
        raise ValueError(f"expected one FROM {table}, found {len(found)}: {sql}")
    return re.sub(rf"\bFROM {table}\b", f"FROM {table} INDEXED BY {index}", sql)


class PreparedQuery:
    """A SELECT compiled once per dialect. Its rows come back as named tuples, with the
    columns' own result conversions (on SQLite, dates and booleans become them again)."""

    def __init__(self, statement: Select[Any],
                 sqlite_index: tuple[str, str] | None = None) -> None:
        """``sqlite_index``: (table, index): on SQLite the table is read ``INDEXED BY`` that
        index. Its planner, unlike PostgreSQL's, may pick a wider index whose order it also
        gives (the inbox's overdue page on the whole inbox index), and SQLAlchemy renders no
        table hints for SQLite."""
        self.statement = statement
        self.sqlite_index = sqlite_index
        self._plans: dict[str, _QueryPlan] = {}

    def _plan(self, dialect: Dialect) -> _QueryPlan:
        columns = list(self.statement.selected_columns)
        row = collections.namedtuple(  # type: ignore[misc]
            "Row", [str(c.key) for c in columns], rename=True)  # rename: unlabeled ones
        results = tuple(c.type.dialect_impl(dialect).result_processor(dialect, None)
                        for c in columns)
        plan = _compile(self.statement, dialect)
        if self.sqlite_index and dialect.name == "sqlite":
            plan = dataclasses.replace(plan, sql=_indexed_by(plan.sql, *self.sqlite_index))
        return _QueryPlan(plan, row, results)

    def _query(self, dialect: Dialect) -> _QueryPlan:
        query = self._plans.get(dialect.name)
        if query is None:
            query = self._plans[dialect.name] = self._plan(dialect)
        return query

    def all(self, conn: Connection, params: Mapping[str, Any]) -> list[Any]:
        """Every row, for these parameters."""
        query = self._query(conn.dialect)
        return query.rows(_execute(conn, query.plan.sql, query.plan.params(params),
                                   many=False, fetch=True) or ())

    def all_on_driver(self, dialect: Dialect, raw: Any, params: Mapping[str, Any]
                      ) -> list[Any]:
        """``all`` on a SQLite driver connection outside SQLAlchemy's (``db.single_read``)."""
        if dialect.name != "sqlite":
            raise TypeError("only SQLite statements run on the driver connection")
        query = self._query(dialect)
        return query.rows(_on_driver(dialect, raw, query.plan.sql, query.plan.params(params),
                                     many=False, fetch=True) or ())
