"""Reporter pages: the form, the token shown once, and the status page. No account, no JS."""

from __future__ import annotations

import datetime as dt
import re
import secrets
from collections.abc import Callable
from typing import Any

from flask import Blueprint, current_app, render_template, request
from flask_wtf.csrf import CSRFError
from sqlalchemy.exc import OperationalError

from whistle import current_settings, instance_keys, tokens, validation
from whistle.cases import intake, kept, oral, reporter, spool
from whistle.store import db
from whistle.errors import DomainError, InvalidInput, NotFound
from whistle.cases import escrow
from whistle.web import common, csrf, errors, escrow_api, oral_gate, oversize, shared, uploads
from whistle.web.common import ApiError

bp = Blueprint("report", __name__)


def _form_to_concern(form: dict[str, Any]) -> dict[str, Any]:
    data: dict[str, Any] = {
        "category": form.get("category"), "details": form.get("details"),
        "unit": form.get("unit") or None, "about_senior": form.get("about_senior") == "yes",
        "exclude_reviewers": form.get("exclude_reviewers", []),
        "clean_metadata": form.get("clean_metadata") == "yes",
    }
    if form.get("identity") == "named":
        data["identity"] = {"name": form.get("name"), "role": form.get("role") or None,
                            "contact": form.get("contact") or None}
        if form.get("release") == "to_reviewers":  # who may open it (issue 22)
            data["identity"]["release"] = "to_reviewers"
    data |= escrow_api.form_about(form)  # whom it is about; hold it (issue 25)
    return data


def _render_form(form: dict[str, Any] | None = None, error: DomainError | None = None,
                 status: int = 200, **extra: Any) -> tuple[str, int]:
    """The form with everything the reporter sent back in it (``extra``: ``kept_files``, the
    files kept for them; ``csrf_failed``; ``files_again``: files that could not be kept)."""
    try:
        options = shared.intake_options(db.session())
    except OperationalError:
        # The database is gone: still give the reporter the form with their text back.
        db.session().rollback()
        options = shared.offline_intake_options()
    # A refused send keeps its idempotency key: the same concern, sent again, is stored once.
    key = (form or {}).get("idempotency_key", "")
    key = key if isinstance(key, str) and re.fullmatch(r"[0-9a-f]{32}", key) \
        else secrets.token_hex(16)
    return render_template("report/report.html", options=options, form=form or {}, error=error,
                           idempotency_key=key, **extra), status


def csrf_refusal() -> str | None:
    """The form's CSRF check, made here rather than before the view (the reporter's two forms
    are exempt from the global hook), so that a failure gives the reporter's words back:
    ``"expired"``, ``"failed"`` (no session cookie, a token from elsewhere) or None."""
    if not current_app.config.get("WTF_CSRF_ENABLED", True):
        return None
    try:
        csrf.protect()
    except CSRFError as exc:
        return "expired" if "expired" in (exc.description or "") else "failed"
    return None


@bp.get("/report")
def report_form() -> tuple[str, int]:
    return _render_form()


@bp.post("/report")
def report_submit() -> tuple[str, int] | tuple[str, int, dict[str, str]]:
    form = common.form_fields(multi=("exclude_reviewers", "attachment", "kept"))
    files = [f for f in request.files.getlist("attachment") if f.filename]
    refused = csrf_refusal()
    if refused is not None:  # nothing is stored, not even the files: the form comes back
        return _render_form(form, None, 400, kept_files=_kept_names(form),
                            csrf_failed=refused, files_again=bool(files))
    step = form.pop("step", None)
    if step in ("review", "change"):
        return _review_step(form, files, step)
    return _send(form, files)


def _kept_names(form: dict[str, Any]) -> list[kept.KeptRef]:
    """The files kept for this form, named for the page (those gone are left out)."""
    try:
        return kept.describe(db.session(), kept.parse_refs(form.get("kept", [])))
    except (InvalidInput, OperationalError):
        db.session().rollback()
        return []


def _keep_new(form: dict[str, Any], files: list[Any]) -> list[kept.KeptRef]:
    """Keep newly chosen files sealed for the next page; the form's ``kept`` fields then name
    every kept file, earlier ones first."""
    session = db.session()
    earlier = _kept_names(form)
    limit = current_settings().max_attachments
    if len(earlier) + len(files) > limit:  # what the send would refuse is not kept either
        raise spool.too_many_files(limit)
    # Kept files count against the site-wide upload limit here, where they are stored (the
    # send then opens them without counting them again): 429 past it, nothing kept.
    shared.bounded("upload", len(files))
    if files:  # what has waited past KEPT_UPLOAD_HOURS goes now, not only at the next cron run
        kept.purge_expired(session, current_settings().kept_upload_hours)
    listed = earlier + (kept.keep(session, files) if files else [])
    session.commit()
    form["kept"] = [r.field for r in listed]
    return listed


Answer = tuple[str, int] | tuple[str, int, dict[str, str]]


def _send(form: dict[str, Any], files: list[Any]) -> Answer:
    key = form.get("idempotency_key", "")
    try:
        idem = bytes.fromhex(key) if len(key) == 32 else None
    except ValueError:
        idem = None
    session = db.session()
    try:
        refs = kept.parse_refs(form.get("kept", []))
        earlier = _open_kept(refs, idem)
        receipt = shared.submit(_form_to_concern(form), earlier + files, idem)
    except DomainError as exc:
        if exc.code == "already_submitted":
            return render_template("report/already.html"), 409
        return _refused(form, files, exc)
    try:  # sent: the kept copies go now (or with the next purge, if the database is busy)
        kept.forget(session, [kept_id for kept_id, _key in refs])
        session.commit()
    except OperationalError:
        session.rollback()
    return render_template("report/token.html", receipt=receipt, words=receipt.token.split()), 201


def _open_kept(refs: list[tuple[str, bytes]], idem: bytes | None) -> list[kept.KeptFile]:
    """The kept files; a form sent again after its concern was stored (its files are gone)
    is ``already_submitted``, as without files."""
    session = db.session()
    try:
        return kept.open_all(session, refs)
    except InvalidInput:
        if idem is not None and intake.replay(session, instance_keys(), idem) is not None:
            raise intake.AlreadySubmitted() from None
        raise


def _refused(form: dict[str, Any], files: list[Any], exc: DomainError) -> Answer:
    """A refused send: the form again, the files kept unless they were the problem."""
    listed, again = _kept_names(form), bool(files)
    if files and exc.field != "attachment" and exc.status != 503:
        try:
            listed, again = _keep_new(form, files), False
        except OperationalError:
            db.session().rollback()
        except DomainError:  # too many files, or the upload limit: chosen again later
            pass
    form["kept"] = [r.field for r in listed]
    html, status = _render_form(form, exc, exc.status, kept_files=listed, files_again=again)
    return html, status, exc.headers


def _review_step(form: dict[str, Any], files: list[Any], step: str) -> Answer:
    """Show everything once more before sending (no JS: the review page re-posts it all in
    hidden fields, with the same idempotency key), or go back to the form to change it.
    Files chosen so far are kept sealed (whistle.cases.kept) and listed on both pages."""
    session = db.session()
    try:
        listed = _keep_new(form, files)
    except DomainError as exc:  # too many files, or past the upload limit (429)
        html, status = _render_form(form, exc, exc.status, kept_files=_kept_names(form),
                                    files_again=True)
        return html, status, exc.headers
    except OperationalError:
        session.rollback()
        return _render_form(form, errors.Unavailable(), 503, kept_files=_kept_names(form),
                            files_again=bool(files))
    if step == "change":
        return _render_form(form, kept_files=listed)
    try:
        sub = intake.parse_submission(_form_to_concern(form), session, current_settings())
        options = shared.intake_options(session)
    except InvalidInput as exc:
        return _render_form(form, exc, exc.status, kept_files=listed)
    except OperationalError:
        session.rollback()
        return _render_form(form, errors.Unavailable(), 503, kept_files=listed)
    return render_template("report/report_review.html", form=form, sub=sub, options=options,
                           kept_files=listed), 200


@bp.get("/roster")
def roster_page() -> str:
    """The public roster as a page: who can receive a concern now (no JavaScript needed)."""
    return render_template("report/roster.html", roster=shared.roster_json(db.session()))


@bp.get("/status")
def status_form() -> str:
    return render_template("report/status_login.html", error=None)


def _status_page(view: reporter.ReporterView, **extra: Any) -> str:
    cfg = current_settings()
    from whistle.web import experience  # issue 21: what the reporter sent

    extra.setdefault("sent", experience.sent_copy(view))
    return render_template("report/status.html", status=shared.status_json(view),
                           allow_attachments=cfg.allow_later_attachments,
                           max_files=cfg.max_attachments, field_chars=cfg.max_field_chars,
                           max_mib=cfg.max_attachment_bytes // 1048576, **extra)


# -- the status page's forms: each posts the token back in a hidden field, never in the URL --

# What to do once the posted token has found its case: (case, posted form, token) -> answer.
StatusAction = Callable[[reporter.ReporterView, dict[str, Any], str], Answer]
NO_CASE = "No case matches this token. Check the 12 words."
REPLY_AND_FILES = "Your message and files were sent."


def _on_case(form: dict[str, Any], act: StatusAction, retry: bool = False) -> Answer:
    """Look the posted token up and act on its case; a miss shows the token form again (or,
    for a reply (``retry``), the reply form with the reporter's words still in it)."""
    token = form.get("token", "")
    try:
        view = shared.find_case(token, replacing=act is _rotate)
        if view is None:
            raise NotFound(NO_CASE)
    except oral.TokenChangeRequired:  # an operator's token: say why, offer the replacement
        return render_template("report/token_change.html", token=token), 403
    except escrow.Held as held:  # held until a match (issue 25): its own page
        return escrow_api.held_page(held.held, token), 200
    except OperationalError:
        if not retry:
            raise
        db.session().rollback()
        return _reply_again(form, error=errors.UNAVAILABLE), 503, {"Retry-After": "30"}
    except DomainError as exc:  # a miss, or too many of them (429)
        if retry:
            return _reply_again(form, error=exc.message), exc.status, exc.headers
        return (render_template("report/status_login.html", error=exc.message), exc.status,
                exc.headers)
    return act(view, form, token)


def _reply_again(form: dict[str, Any], **extra: Any) -> str:
    """The reply form alone, with the token, the words and a fresh CSRF token: for a reply
    that could not be taken before its case was found (nothing looked up, nothing stored)."""
    cfg = current_settings()
    token = form.get("token", "")
    extra.setdefault("files_again",
                     any(f.filename for f in request.files.getlist("attachment")))
    return render_template("report/status_retry.html", token_field=True,
                           token=token if isinstance(token, str) else "",
                           draft=form.get("body", ""), allow_attachments=cfg.allow_later_attachments,
                           max_files=cfg.max_attachments,
                           max_mib=cfg.max_attachment_bytes // 1048576, **extra)


def _send_reply(view: reporter.ReporterView, body: Any) -> None:
    """Store the reporter's reply, or raise: invalid input, or 503 if the database fails."""
    try:
        reporter.add_reporter_message(db.session(), view, body, current_settings())
    except OperationalError as exc:
        db.session().rollback()
        raise errors.Unavailable() from exc


def _show(view: reporter.ReporterView, _form: dict[str, Any], token: str) -> Answer:
    return _status_page(view, token=token), 200


def _reply(view: reporter.ReporterView, form: dict[str, Any], token: str) -> Answer:
    """A reply, files, or both from the one form of the status page. The reply is checked
    before any file is stored, so a refused reply stores no file either."""
    files = [f for f in request.files.getlist("attachment") if f.filename]
    body = form.get("body")
    notes: tuple[str, ...] = ()
    try:
        if files:
            if body:
                validation.text(body, "body", current_settings().max_details_chars)
            notes = uploads.add_later(view, files, form.get("clean_metadata") == "yes")
        if body or not files:
            _send_reply(view, body)
    except OperationalError:
        db.session().rollback()
        return (_status_page(view, token=token, error=errors.UNAVAILABLE,
                             draft=form.get("body", ""), attachment_notes=notes), 503,
                {"Retry-After": "30"})
    except DomainError as exc:  # not stored: say why and give the text back
        return (_status_page(view, token=token, error=exc.message, draft=form.get("body", ""),
                             attachment_notes=notes), exc.status, exc.headers)
    notice = (REPLY_AND_FILES if body and files else "Your files were added." if files
              else "Your message was sent.")
    return _status_page(view, token=token, notice=notice, attachment_notes=notes,
                        own_action=True), 200


def _attach(view: reporter.ReporterView, form: dict[str, Any], token: str) -> Answer:
    files = [f for f in request.files.getlist("attachment") if f.filename]
    try:
        notes = uploads.add_later(view, files, form.get("clean_metadata") == "yes")
    except DomainError as exc:
        return _status_page(view, token=token, error=exc.message), exc.status, exc.headers
    return _status_page(view, token=token, notice="Your files were added.",
                        attachment_notes=notes, own_action=True), 200


def _rotate(view: reporter.ReporterView, form: dict[str, Any], token: str) -> Answer:
    if form.get("step") == "ask":  # the page's button asks first (issue 21)
        return render_template("report/token_confirm.html", token=token), 200
    new = oral_gate.replace_token(view)
    return render_template("report/token.html", receipt=None, words=new.split(),
                           rotated=True), 200


# The older spelling, one POST /status with action=reply|attach|rotate, still works.
_ACTIONS: dict[str, StatusAction] = {"reply": _reply, "attach": _attach, "rotate": _rotate}


@bp.post("/status")
def status_show() -> Answer:
    form = common.form_fields()
    refused = csrf_refusal()  # checked here, as on /status/reply (exempt from the hook)
    if refused is not None:
        if form.get("action") == "reply":  # the older reply form: the words come back
            return _reply_again(form, csrf_failed=refused), 400
        raise CSRFError("The CSRF token has expired." if refused == "expired"
                        else "The CSRF token is missing or invalid.")
    return _on_case(form, _ACTIONS.get(form.get("action", "view"), _show))


@bp.post("/status/reply")
def status_reply() -> Answer:
    form = common.form_fields()
    refused = csrf_refusal()
    if refused is not None:  # nothing looked up, nothing stored: the words come back
        return _reply_again(form, csrf_failed=refused), 400
    return _on_case(form, _reply, retry=True)


@bp.post("/status/files")
def status_files() -> Answer:
    return _on_case(common.form_fields(), _attach)


@bp.post("/status/token")
def status_token() -> Answer:
    return _on_case(common.form_fields(), _rotate)


# -- a form over a size limit (refused while it was parsed) comes back with its text ------


def _oversize_report(found: oversize.Rescued, exc: Exception) -> Answer:
    form = found.as_dict(multi=("exclude_reviewers", "kept"))
    for name in ("csrf_token", "step"):
        form.pop(name, None)
    error = exc if isinstance(exc, DomainError) else ApiError(413, "too_large", TOO_LARGE)
    return _render_form(form, error, 413, kept_files=_kept_names(form),
                        files_again=found.had_files)


def _oversize_reply(found: oversize.Rescued, exc: Exception) -> Answer | None:
    form = found.as_dict()
    if request.endpoint == "report.status_show" and form.get("action") != "reply":
        return None  # the token form, files or a new token: the usual 413 page
    error = exc.message if isinstance(exc, DomainError) else TOO_LARGE
    return _reply_again(form, error=error, files_again=found.had_files), 413


TOO_LARGE = "the request is too large: see the limits on files and text"
oversize.PAGES.update({"report.report_submit": _oversize_report,
                       "report.status_reply": _oversize_reply,
                       "report.status_show": _oversize_reply})


# -- "check that you kept your token": nothing is stored, before or after -----------------

_CASE_REF = re.compile(r"WH-[0-9A-Z]{4}(?:-[0-9A-Z]{4}){6}")


@bp.app_template_global()
def token_check_positions() -> list[int]:
    """Two word positions (1-12), chosen at random, that the reporter types back."""
    return sorted(secrets.SystemRandom().sample(range(1, tokens.WORDS + 1), 2))


def _positions(text: str) -> list[int] | None:
    parts = text.split()
    numbers = [validation.whole_number(p, 2) for p in parts]
    if len(parts) != 2 or None in numbers:
        return None
    found = [n for n in numbers if n is not None]
    return found if len(set(found)) == 2 and all(1 <= p <= tokens.WORDS for p in found) else None


@bp.post("/report/kept")
def token_kept() -> tuple[str, int]:
    """Compare two typed words with the token the page carried back; store nothing.

    The token page already shows the token, so carrying it back in a hidden
    field (as the status page does) reveals nothing new, and lets a mismatch
    show the words again so the reporter can correct their copy.
    """
    form = common.form_fields()
    token = form.get("token", "")
    positions = _positions(form.get("positions", ""))
    if not isinstance(token, str) or tokens.parse(token) is None or positions is None:
        raise ApiError(400, "invalid_form", "this check could not be read: go back and try again")
    words = [w for w in re.split(r"[\s\-_.,]+", token.strip().lower()) if w]
    case_ref = form.get("case_ref", "")
    case_ref = case_ref if _CASE_REF.fullmatch(case_ref) else None
    try:
        ack = dt.date.fromisoformat(form.get("acknowledge_by", ""))
    except ValueError:
        ack = None
    typed = [form.get(f"word_{i}", "").strip().lower() for i in (1, 2)]
    if form.get("step") == "relang":  # the same page in another language (issue 21)
        return render_template("report/token.html", receipt=None, words=words,
                               check_positions=positions, kept_case_ref=case_ref, kept_ack=ack,
                               rotated=form.get("rotated") == "yes"), 200
    if typed == [words[p - 1] for p in positions]:
        return render_template("report/token_kept.html", case_ref=case_ref,
                               acknowledge_by=ack), 200
    return render_template("report/token.html", receipt=None, words=words, check_error=True,
                           check_positions=positions, kept_case_ref=case_ref, kept_ack=ack,
                           rotated=form.get("rotated") == "yes"), 400
