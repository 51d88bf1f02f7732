"""A reviewer's inbox: one page of their cases in any order, by index, never sorting them all."""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Mapping
from typing import Any

from sqlalchemy import (
    Date,
    Integer,
    String,
    bindparam,
    func,
    literal_column,
    select,
    tuple_,
)
from sqlalchemy import case as sql_case
from sqlalchemy.engine import Row
from sqlalchemy.orm import Session

from whistle.cases import workflow
from whistle.errors import InvalidInput
from whistle.store import counts
from whistle.store.models import (
    Assignment,
    Concern,
    InboxCount,
)
from whistle.store.prepared import PreparedQuery

SORTS = ("newest", "oldest", "overdue", "status")


def page_cursor(c: Any) -> str:
    """The keyset cursor after case ``c`` in a newest/oldest listing (see ``list_cases``)."""
    return f"{c.created.isoformat()}.{c.id}"


def _parse_cursor(after: str) -> tuple[dt.date, str]:
    day, _, ref = after.partition(".")
    try:
        parsed = dt.date.fromisoformat(day)
    except ValueError:
        parsed = None
    if parsed is None or not ref or len(after) > 80:
        raise InvalidInput("after must be a cursor from a previous page's next", "after")
    return parsed, ref


def list_cases(session: Session, reviewer_id: str, status: str | None, page: int, per_page: int,
               sort: str = "newest", after: str | None = None) -> tuple[list[Any], int]:
    """One page of the reviewer's cases; only cases assigned to them.

    ``sort``: newest (default) or oldest first, overdue cases first, or by
    workflow status (received first); ties newest first. ``after`` (newest or
    oldest only) is a cursor from ``page_cursor``: the page that follows it,
    found by keyset on the inbox index in constant time, where ``page`` needs
    OFFSET (the database walks every skipped row, so a deep page costs more the more
    cases the reviewer has).

    Every order reads an index in its own order; none sorts all the reviewer's cases.
    Overdue first is two runs of the inbox (the overdue ones, from the partial index that
    holds only them, then the rest); by status is one run per status, whose sizes the
    inbox counts already know. (Ordering by a flag on the joined case instead joined every
    one of the reviewer's assignments to its case, and grew with them.)
    """
    if sort not in SORTS:
        raise InvalidInput("sort must be one of " + ", ".join(SORTS), "sort")
    if after is not None and sort not in ("newest", "oldest"):
        raise InvalidInput("after works with sort newest or oldest", "after")
    kind = status if status in ("overdue", "open") else "eq" if status else None
    params: dict[str, Any] = {"reviewer": reviewer_id, "limit": per_page}
    if kind == "eq":
        params["status"] = status
    conn = session.connection()
    if after is not None:
        params["day"], params["ref"] = _parse_cursor(after)
        found = _list_statements(kind, sort, True).all(conn, params)
    elif sort == "overdue" and kind != "overdue":
        found = _overdue_first(session, kind, params, (page - 1) * per_page)
    elif sort == "status" and kind in (None, "open"):
        kept = counts.counts(session, reviewer_id)
        statuses = [s for s in workflow.STATUSES if kind is None or s != workflow.CLOSED]
        found = _runs(conn, [(kept.get(s, 0), _list_statements("eq", "newest", False, s))
                             for s in statuses], params, (page - 1) * per_page)
        return found, sum(kept.get(s, 0) for s in statuses)
    else:
        found = _list_statements(kind, sort, False).all(conn, params | {
            "offset": (page - 1) * per_page})
    if found:
        total = found[0].total  # read with the page
    else:
        total = counts.total(session, reviewer_id, status or None)
    return found, total


def _overdue_first(session: Session, kind: str | None, params: dict[str, Any], offset: int
                   ) -> list[Any]:
    """The page of an overdue-first list: the overdue run, then the rest. Where the rest
    starts is counted only when the page lies wholly past the overdue run."""
    conn = session.connection()
    first = _list_statements(kind, "overdue-only", False).all(conn, params | {"offset": offset})
    limit = params["limit"]
    if len(first) == limit:
        return first
    # The overdue run ended on this page (offset + len(first) overdue cases in all), or
    # before it: then how many to skip. Overdue cases are open, so without a status filter
    # or with ``open`` that is the kept count; with a status, counted on the partial index.
    if first or offset == 0:
        overdue = offset + len(first)
    elif kind == "eq":
        overdue = _count(session, _OVERDUE_STATUS_COUNT, params)
    else:
        overdue = counts.total(session, params["reviewer"], counts.OVERDUE)
    return first + _list_statements(kind, "not-overdue", False).all(conn, params | {
        "offset": max(0, offset - overdue), "limit": limit - len(first)})


def _count(session: Session, statement: Any, params: Mapping[str, Any]) -> int:
    return int(session.scalar(statement, {k: v for k, v in params.items()
                                          if k in ("reviewer", "status")}) or 0)


def _runs(conn: Any, runs: list[tuple[int, PreparedQuery]], params: dict[str, Any],
          offset: int) -> list[Any]:
    """A page taken from consecutive runs of known sizes: runs wholly before the page are
    skipped by their size, without reading them."""
    found: list[Any] = []
    limit = params["limit"]
    for size, query in runs:
        if offset >= size:
            offset -= size
            continue
        found += query.all(conn, params | {"offset": offset, "limit": limit - len(found)})
        offset = 0
        if len(found) >= limit:
            break
    return found


def _status_filter(statement: Any, kind: str | None, status: str | None = None) -> Any:
    if kind == "open":
        return statement.where(Assignment.status != workflow.CLOSED)
    if kind == "eq":
        return statement.where(Assignment.status == (
            literal_column(f"'{status}'") if status else bindparam("status")))
    return statement


# Rows of the inbox counts that are not statuses, and the closed status, as fixed SQL.
_NOT_STATUSES: list[Any] = [literal_column(f"'{counts.OVERDUE}'")]
_CLOSED: Any = literal_column(f"'{workflow.CLOSED}'")


# The reviewer's overdue cases in one status, by the partial index (``ix_assignments_overdue``).
_OVERDUE_STATUS_COUNT = _status_filter(select(func.count()).select_from(Assignment).where(
    Assignment.reviewer_id == bindparam("reviewer"), Assignment.overdue.is_(True)), "eq")


@functools.lru_cache(maxsize=None)
def _list_statements(kind: str | None, sort: str, keyset: bool,
                     fixed_status: str | None = None) -> PreparedQuery:
    """``list_cases``' page query, built once per shape with bound parameters (building a
    statement and its cache key costs more than running it on SQLite).

    ``kind``: None (all), ``open``, ``eq`` (the ``status`` parameter, or ``fixed_status``)
    or ``overdue``. ``sort``: one of SORTS, or ``overdue-only`` / ``not-overdue`` (newest
    first, one of the two runs of the overdue-first order)."""
    # The page is chosen from the inbox index alone (a subquery), then joined to the case
    # columns: OFFSET skips index entries, not joined rows (deep pages stay cheap-ish).
    # Only assignment columns (the inbox indexes), plus the status when the order needs it.
    inner = _status_filter(select(
        Assignment.concern_id, Assignment.created,
        *((Assignment.status,) if sort == "status" else ())).where(
        Assignment.reviewer_id == bindparam("reviewer")), kind, fixed_status)
    if kind == "overdue" or sort == "overdue-only":
        inner = inner.where(Assignment.overdue.is_(True))
    elif sort == "not-overdue":
        inner = inner.where(Assignment.overdue.is_(False))

    def ordering(created: Any, ref: Any, status_col: Any) -> tuple[Any, ...]:
        newest = (created.desc(), ref.desc())
        if sort == "oldest":
            return (created.asc(), ref.asc())
        if sort == "status" and status_col is not None:
            rank = sql_case({s: i for i, s in enumerate(workflow.STATUSES)}, value=status_col,
                            else_=len(workflow.STATUSES))
            return (rank, *newest)
        return newest  # newest, and overdue first within a list of overdue cases only

    if keyset:
        key = tuple_(Assignment.created, Assignment.concern_id)
        bound = tuple_(bindparam("day", type_=Date), bindparam("ref", type_=String))
        inner = inner.where(key > bound if sort == "oldest" else key < bound)
    else:
        inner = inner.offset(bindparam("offset", type_=Integer))
    page = inner.order_by(*ordering(Assignment.created, Assignment.concern_id,
                                    Assignment.status if sort == "status" else None)
                          ).limit(bindparam("limit", type_=Integer)).subquery("page")
    # The total from the inbox counts rides along on every row (no second round trip).
    total = select(func.coalesce(func.sum(InboxCount.n), 0)).where(
        InboxCount.reviewer_id == bindparam("reviewer"))
    if kind == "overdue":
        total = total.where(InboxCount.status == literal_column(f"'{counts.OVERDUE}'"))
    elif kind == "open":
        total = total.where(InboxCount.status.not_in(_NOT_STATUSES + [_CLOSED]))
    elif kind == "eq":
        total = total.where(InboxCount.status == (
            literal_column(f"'{fixed_status}'") if fixed_status else bindparam("status")))
    else:
        total = total.where(InboxCount.status.not_in(_NOT_STATUSES))
    columns: list[Any] = [*SUMMARY_COLUMNS, total.scalar_subquery().label("total")]
    q = select(*columns).select_from(page).join(Concern, Concern.id == page.c.concern_id)
    # The overdue page on the partial overdue index, which holds only those (SQLite's planner
    # sometimes took the whole inbox's index and filtered it: a page grew with the inbox).
    overdue_only = kind == "overdue" or sort == "overdue-only"
    return PreparedQuery(q.order_by(*ordering(page.c.created, page.c.concern_id,
                                              page.c.get("status"))),
                         sqlite_index=("assignments", "ix_assignments_overdue")
                         if overdue_only else None)


# What ``summary`` and ``page_cursor`` read: ``list_cases`` loads only these.
SUMMARY_COLUMNS = (Concern.id, Concern.status, Concern.category, Concern.unit,
                   Concern.about_senior, Concern.created, Concern.acknowledge_by,
                   Concern.feedback_by, Concern.overdue, Concern.under_routed)


def summary(c: Any) -> dict[str, Any]:
    """A case's list entry; ``c`` is a Concern or a row that begins with ``SUMMARY_COLUMNS``."""
    if isinstance(c, (Row, tuple)):  # by position: a page of 25 rows is the inbox's hot loop
        (ref, status, category, unit, senior, created, ack_by, feedback_by, overdue,
         under_routed) = c[:_SUMMARY_WIDTH]
    else:
        ref, status, category, unit, senior = c.id, c.status, c.category, c.unit, c.about_senior
        created, ack_by, feedback_by = c.created, c.acknowledge_by, c.feedback_by
        overdue, under_routed = c.overdue, c.under_routed
    return {
        "case_ref": ref, "status": status, "category": category, "unit": unit,
        "about_senior": senior, "created": created.isoformat(),
        "acknowledge_by": ack_by.isoformat(),
        "feedback_by": feedback_by.isoformat() if feedback_by else None,
        "overdue": overdue, "under_routed": under_routed,
    }


_SUMMARY_WIDTH = len(SUMMARY_COLUMNS)

