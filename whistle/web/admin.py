"""Administration: reviewers and routing settings. No case content, no case keys, ever."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from flask import Blueprint, abort, g, render_template
from sqlalchemy import select

from whistle import db
from whistle.models import Concern, Reviewer
from whistle.web import reviewer as reviewer_web

bp = Blueprint("admin", __name__, url_prefix="/admin")


def admin_only(view: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(view)
    @reviewer_web.signed_in
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if not g.signed.reviewer.is_admin:
            abort(403)
        return view(*args, **kwargs)

    return wrapper


@bp.get("/")
@admin_only
def home() -> str:
    session = db.session()
    reviewers = list(session.scalars(select(Reviewer).order_by(Reviewer.name)))
    attention = list(session.scalars(
        select(Concern).where((Concern.under_routed.is_(True)) | (Concern.overdue.is_(True)))
        .order_by(Concern.created)))
    return render_template("admin/home.html", reviewers=reviewers, attention=attention,
                           me=g.signed.reviewer)
