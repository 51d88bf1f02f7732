"""The organisation's name, logo, introduction and emergency notice: administrators set them
(``/admin/organisation``), reporter pages show them, and ``/organisation/logo`` serves the
logo from Whistle itself (no other origin, no cookie). Also the ``tr`` filter learns the
administrators' own translations of the units and categories they typed."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Flask, Response, abort, flash, g, redirect, render_template, request
from flask import url_for
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.wrappers import Response as BaseResponse

from flask_babel import gettext
from flask_babel import lazy_gettext as _l

from whistle import i18n
from whistle.errors import InvalidInput
from whistle.people import organisation
from whistle.store import db
from whistle.web import common

bp = Blueprint("organisation", __name__)

# The refusals of whistle.people.organisation, listed for extraction; ``tr`` translates them.
REFUSALS = [
    _l("choose an image file for the logo"),
    _l("the logo must be a PNG, JPEG, GIF or WebP image"),
    _l("the logo image is too large"),
    _l("the logo may be at most 512 KiB"),
    _l("write each line as English = translation"),
]


def current() -> organisation.Organisation:
    """This request's organisation settings, read once (empty if the database is away: an
    error page must still render)."""
    found = g.get("_organisation")
    if found is None:
        try:
            found = organisation.load(db.session())
        except SQLAlchemyError:
            found = organisation.Organisation()
        g._organisation = found
    return found


def _text(name: str) -> dict[str, str] | None:
    lang = i18n.current()
    found = current().text(name, lang.code, i18n.DEFAULT)
    if found is None:
        return None
    text, code = found
    return {"text": text, "lang": code, "dir": i18n.LANGUAGES[code].direction}


def _context() -> dict[str, Any]:
    return {"org_text": _text, "org_has_logo": lambda: current().has_logo}


def _translate(text: Any) -> Any:
    """``tr``: an administrator's own translation of a unit or category they typed, else the
    catalogue's (``whistle.i18n.translate``)."""
    if isinstance(text, str) and text:
        code = i18n.current().code
        if code != i18n.DEFAULT:
            theirs = current().word(text, code)
            if theirs:
                return theirs
    return i18n.translate(text)


def init_app(app: Flask) -> None:
    from whistle.web import formatting

    formatting.init_app(app)
    app.context_processor(_context)
    app.jinja_env.filters["tr"] = _translate


def _page(error: str | None = None, form: dict[str, Any] | None = None,
          status: int = 200) -> tuple[str, int]:
    org = current()
    if form is None:
        form = {f"{name}_{lang}": text for lang, texts in org.texts.items()
                for name, text in texts.items()}
        form |= {f"words_{lang}": "\n".join(f"{k} = {v}" for k, v in words.items())
                 for lang, words in org.words.items()}
    return render_template("admin/organisation.html", me=g.signed.reviewer, error=error,
                           form=form, has_logo=org.has_logo,
                           languages=list(i18n.LANGUAGES.values())), status


@bp.get("/admin/organisation")
def settings_form() -> tuple[str, int]:
    return _page()


@bp.post("/admin/organisation")
def save_settings() -> Any:
    form = common.form_fields()
    upload = request.files.get("logo")
    try:
        value = organisation.parse_form(form, list(i18n.LANGUAGES))
        logo = (organisation.reencoded_logo(upload.read(organisation.LOGO_BYTES + 1))
                if upload is not None and upload.filename else None)
    except InvalidInput as exc:
        return _page(exc.message, form, exc.status)
    organisation.save(db.session(), value, logo, form.get("remove_logo") == "yes",
                      g.signed.reviewer_id)
    flash(gettext("The organisation's details were saved."), "ok")
    return redirect(url_for("organisation.settings_form"))


@bp.get("/organisation/logo")
def logo() -> BaseResponse:
    png = organisation.logo_png(db.session())
    if png is None:
        abort(404)
    response = Response(png, mimetype="image/png")
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Cache-Control"] = "no-store"
    return response
