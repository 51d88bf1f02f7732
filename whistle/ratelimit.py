"""Failure counters and cost limits that identify no one, shared by every worker.

Keys are never client addresses: status misses count globally per instance
group, login failures per account (as an HMAC of the email) and overall
(``all``), submissions and uploads globally. ``RATELIMIT_STORAGE_URI`` says where the
failure counters live: ``database://`` (the default) in Whistle's own database, so every
worker and every server on that database shares them; ``redis://...`` for a scale-out
that prefers Redis; ``memory://`` counts in each process alone (tests, one process).

The cost limits on submissions and uploads (``SUBMISSION_LIMIT``, ``UPLOAD_LIMIT``)
never touch the database: a row per submission would record when reporters act. They
count in Redis when it is configured (entries expire with their window), otherwise in
each process, which bounds what each worker spends (what they are for).

Per-account lockouts with back-off (``LOGIN_LOCKOUT_*``) are always in the database.
"""

from __future__ import annotations

import logging

import math
import time
from collections.abc import Callable

from flask import Flask, current_app
from limits import RateLimitItem, parse, storage, strategies
from sqlalchemy import select

from sqlalchemy.exc import OperationalError

from whistle.store import db, throttle

DATABASE = "database://"
FAILURE_KINDS = ("status", "login", "login_all")
COST_KINDS = ("submission", "upload")
# Seconds since the epoch; tests replace it to move time on.
clock: Callable[[], float] = time.time


log = logging.getLogger(__name__)


class Limiter:
    def __init__(self, uri: str, limits: dict[str, str]) -> None:
        self.items: dict[str, RateLimitItem] = {k: parse(v) for k, v in limits.items()}
        self.in_database = uri.strip().lower().startswith("database:")
        shared = storage.storage_from_string("memory://" if self.in_database else uri)
        self.strategy = strategies.MovingWindowRateLimiter(shared)
        # Cost limits: Redis when configured, else this process alone (never the database).
        self.cost = (self.strategy if not self.in_database else
                     strategies.MovingWindowRateLimiter(storage.storage_from_string("memory://")))

    def _db(self, kind: str) -> bool:
        return self.in_database and kind in FAILURE_KINDS

    def _strategy(self, kind: str) -> strategies.MovingWindowRateLimiter:
        return self.cost if kind in COST_KINDS else self.strategy

    def exceeded(self, kind: str, key: str) -> bool:
        item = self.items[kind]
        if self._db(kind):
            count, _oldest = throttle.window(db.session(), kind, key, item.get_expiry(),
                                             clock())
            return count >= item.amount
        return not self._strategy(kind).test(item, kind, key)

    def fail(self, kind: str, key: str) -> bool:
        """Count one failure (or one unit of cost); False once the limit is exceeded.

        In the database this commits the count at once, on the request's session: call it
        only when the request has nothing else to write pending."""
        item = self.items[kind]
        if self._db(kind):
            try:
                return throttle.hit(db.session(), kind, key, item.amount, item.get_expiry(),
                                    clock())
            except OperationalError:
                # The database is locked or gone: the count is lost, the answer is not
                # (a miss still gets its 404; whatever else needs the database fails).
                db.session().rollback()
                log.warning("a failure could not be counted: the database is unavailable")
                return True
        return self._strategy(kind).hit(item, kind, key)

    def retry_after(self, kind: str, key: str) -> int:
        item = self.items[kind]
        if self._db(kind):
            _count, oldest = throttle.window(db.session(), kind, key, item.get_expiry(),
                                             clock())
            reset = (oldest if oldest is not None else clock()) + item.get_expiry()
            return max(1, math.ceil(reset - clock()))
        reset, _remaining = self._strategy(kind).get_window_stats(item, kind, key)
        return max(1, math.ceil(reset - time.time()))


def lockout_left(key: str) -> int:
    """Seconds the account keyed ``key`` stays locked (0: not locked)."""
    left = throttle.locked_until(db.session(), key) - clock()
    return math.ceil(left) if left > 0 else 0


def signin_failed(key: str, email: str) -> None:
    """Count a failed sign-in for the account keyed ``key`` and for the whole site, and the
    account's lockout; mail the account's owner when this failure locks it. Each count
    commits at once (the request's own work is rolled back first): the answer is a refusal,
    but the count must stay."""
    from whistle import current_settings, notify
    from whistle.store.models import Reviewer

    session = db.session()
    session.rollback()
    lim = limiter()
    lim.fail("login", key)
    lim.fail("login_all", "all")
    cfg = current_settings()
    until = throttle.fail_signin(session, key, cfg.login_lockout_failures,
                                 cfg.login_lockout_seconds, cfg.login_lockout_max_seconds,
                                 clock())
    if until is not None:
        owner = session.scalar(select(Reviewer.email).where(
            Reviewer.email == email.strip().lower(), Reviewer.active.is_(True)))
        if owner is not None:
            notify.queue(session, owner, "signin_locked")
    session.commit()


def signin_succeeded(key: str) -> None:
    """The account's failures and back-off are forgotten."""
    session = db.session()
    throttle.clear_signin(session, key)
    session.commit()


def init_app(app: Flask) -> None:
    app.extensions["whistle_limiter"] = Limiter(app.config["RATELIMIT_STORAGE_URI"], {
        "status": app.config["STATUS_LIMIT"], "login": app.config["LOGIN_LIMIT"],
        "login_all": app.config["LOGIN_LIMIT_ALL"],
        "submission": app.config["SUBMISSION_LIMIT"], "upload": app.config["UPLOAD_LIMIT"]})


def limiter() -> Limiter:
    lim: Limiter = current_app.extensions["whistle_limiter"]
    return lim
