"""First-run setup: ``/setup`` enrols the first administrator with the code ``init`` printed.

It exists only while no administrator has been enrolled and a code is
pending; afterwards every request to it is a plain 404.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, render_template

from whistle import current_settings, instance_keys
from whistle.people import administration
from whistle.store import db
from whistle.errors import InvalidInput
from whistle.web import common

bp = Blueprint("setup", __name__, url_prefix="/setup")

REVIEWER_ROWS = 3


def _open_or_404() -> None:
    if not administration.setup_open(db.session(), current_settings().keys_dir):
        abort(404)


def _form(error: str | None = None, form: dict[str, Any] | None = None,
          status: int = 200) -> tuple[str, int]:
    return render_template("setup.html", error=error, form=form or {},
                           rows=range(1, REVIEWER_ROWS + 1)), status


@bp.get("")
@bp.get("/")
def setup_form() -> tuple[str, int]:
    _open_or_404()
    return _form()


def _account(form: dict[str, Any], prefix: str, admin: bool) -> administration.NewAccount:
    return administration.NewAccount(
        name=form.get(prefix + "name", ""), email=form.get(prefix + "email", ""),
        password=form.get(prefix + "password") or None,
        independent=form.get(prefix + "independent") == "yes", admin=admin,
        # The administrator reviews only if they tick it; listed reviewers always review.
        reviews=form.get(prefix + "reviews") == "yes" if admin else True)


@bp.post("")
@bp.post("/")
def setup_submit() -> tuple[str, int]:
    _open_or_404()
    form = common.form_fields()
    admin = _account(form, "", admin=True)
    reviewers = [_account(form, f"r{i}_", admin=False) for i in range(1, REVIEWER_ROWS + 1)
                 if (form.get(f"r{i}_name") or form.get(f"r{i}_email"))]
    try:
        done = administration.first_run(db.session(), current_settings(),
                                        current_settings().keys_dir, form.get("code"),
                                        admin, reviewers, keys=instance_keys())
    except InvalidInput as exc:
        return _form(exc.message, form, exc.status)
    except administration.SetupRefused:
        return _form("That setup code is wrong or was already used. Run "
                     "`flask --app app init` again for a new one.", form, 403)
    return render_template("setup_done.html", done=done), 201
