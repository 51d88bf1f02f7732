"""Each endpoint's transaction mode, declared here, and the dispatch that runs it.

Every request's view (with the sign-in check of ``whistle.web.access`` before it) runs
as one unit of work (``whistle.store.db.run``) in the mode declared for its endpoint:
by default ``READ`` for GET and HEAD, ``WRITE`` for everything else; the hot paths say
what they need below. The store, not the view, decides whether a failure is worth
running the request again (SQLite busy on a read's rare write, a PostgreSQL connection
found dead before anything was written).
"""

from __future__ import annotations

import os
from typing import Any

from flask import Flask, current_app, request

from whistle.store import db
from whistle.store.db import Mode
from whistle.web import access

MODES: dict[str, Mode] = {
    # The status check: a lookup and, once a day, its own short write.
    "api.status": Mode.SINGLE_READS,
    # A submission routes and seals (the hybrid KEM work) before it takes the lock.
    "api.submit_concern": Mode.WRITE_WITH_LOCK,
    "report.report_submit": Mode.WRITE_WITH_LOCK,
    "oral_api.operator_concern": Mode.WRITE_WITH_LOCK,  # an operator's filing (issue 24)
    "operator.submit": Mode.WRITE_WITH_LOCK,
    # Reviewers' hot reads: each of their writes is one statement (a session's
    # last-seen time, the "opened" event), so on PostgreSQL they run in autocommit.
    "api.cases": Mode.READ_ALONE,
    "api.case": Mode.READ_ALONE,
}

_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def mode_for(endpoint: str | None, method: str) -> Mode:
    declared = MODES.get(endpoint or "")
    if declared is not None:
        return declared
    return Mode.READ if method in _SAFE_METHODS else Mode.WRITE


def _rewind_uploads() -> None:
    # Uploads parsed before the failure are read again by the view's second run.
    for upload in (request.__dict__.get("files") or {}).values():
        upload.stream.seek(0)


class WhistleFlask(Flask):
    """Flask whose views run as units of work in their declared mode."""

    _checkpointing_in: int | None = None

    def dispatch_request(self) -> Any:
        self._ensure_checkpointer()
        view = super().dispatch_request

        def work() -> Any:
            refused = access.check()
            return refused if refused is not None else view()

        return db.run(db.database_of(self), mode_for(request.endpoint, request.method), work,
                      before_again=_rewind_uploads)

    def _ensure_checkpointer(self) -> None:
        # Started by the first request in each process, so never in a master that forks.
        path = self.extensions.get("whistle_checkpoint_path")
        if path is not None and self._checkpointing_in != os.getpid():
            db.start_checkpointer(path)
            self._checkpointing_in = os.getpid()


def _end_unit(_exc: BaseException | None) -> None:
    db.end()


def init_app(app: Flask) -> None:
    app.teardown_appcontext(_end_unit)


def database() -> db.Database:
    return db.database_of(current_app)
