"""The reporter's side of an operator's filing (issue 24, whistle.cases.oral), where every
reporter route passes: ``whistle.web.shared.find_case`` and ``status_json``.

A token an intake operator issued answers ``403 token_change_required`` on every reporter
call but its replacement, so the operator cannot follow the case once the reporter has
taken it over. The check is one primary-key read of ``oral_reports``, kept for the status
answer of the same request.
"""

from __future__ import annotations

from typing import Any

from flask import g

from whistle import instance_keys
from whistle.cases import oral, reporter
from whistle.store import db


def check(view: reporter.ReporterView, replacing: bool) -> None:
    """Refuse (403) a token an operator issued unless this is its replacement. The lookup
    said whether an operator filed the concern: only then is its oral record read."""
    if view.case.oral_pending is None:  # sent online: no oral record, no gate
        g.oral_state = (view.case.id, None)
        return
    found = oral.state(db.session(), view.case.id)
    g.oral_state = (view.case.id, found)
    oral.require_own_token(found, replacing)


def status_part(view: reporter.ReporterView, read_only: bool) -> dict[str, Any]:
    """``transcript`` for the status answer of a concern an operator filed ({} otherwise).
    ``read_only``: nothing changed in this request, so the state read at lookup stands."""
    cached = g.get("oral_state")
    found = (cached[1] if read_only and cached is not None and cached[0] == view.case.id
             else oral.state(db.session(), view.case.id))
    if found is None:
        return {}
    return oral.reporter_part(db.session(), found, lambda: view.thread_key)


def replace_token(view: reporter.ReporterView) -> str:
    """The replacement, with the operator's gate lifted in the same transaction."""
    oral.token_replaced(db.session(), view.case.id)
    return reporter.rotate_token(db.session(), instance_keys(), view)
