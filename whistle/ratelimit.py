"""Failure counters that identify no one, shared across workers through the limits storage.

Keys are never client addresses: status misses count globally per instance
group, login failures per account (as an HMAC of the email). Storage is
``RATELIMIT_STORAGE_URI`` (memory for one process, Redis for several).
"""

from __future__ import annotations

import math
import time

from flask import Flask, current_app
from limits import RateLimitItem, parse, storage, strategies


class Limiter:
    def __init__(self, uri: str, status_limit: str, login_limit: str) -> None:
        self.storage = storage.storage_from_string(uri)
        self.strategy = strategies.MovingWindowRateLimiter(self.storage)
        self.items: dict[str, RateLimitItem] = {"status": parse(status_limit),
                                                "login": parse(login_limit)}

    def exceeded(self, kind: str, key: str) -> bool:
        return not self.strategy.test(self.items[kind], kind, key)

    def fail(self, kind: str, key: str) -> bool:
        """Count one failure; False once the limit is exceeded."""
        return self.strategy.hit(self.items[kind], kind, key)

    def retry_after(self, kind: str, key: str) -> int:
        reset, _remaining = self.strategy.get_window_stats(self.items[kind], kind, key)
        return max(1, math.ceil(reset - time.time()))


def init_app(app: Flask) -> None:
    app.extensions["whistle_limiter"] = Limiter(app.config["RATELIMIT_STORAGE_URI"],
                                                app.config["STATUS_LIMIT"],
                                                app.config["LOGIN_LIMIT"])


def limiter() -> Limiter:
    lim: Limiter = current_app.extensions["whistle_limiter"]
    return lim
