"""Glue shared by the HTML pages and the JSON API: call the domain (its errors are answered
by ``whistle.web.errors``).

Views in both layers stay short: parse, call one function here, render.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

from flask import Response
from sqlalchemy.exc import OperationalError

from whistle import crypto, current_settings, instance_keys, ratelimit, validation
from whistle.cases import (
    actions,
    intake,
    proposals,
    reading,
    recusal,
    reporter,
    sharing,
    workflow,
)
from whistle.people import roster, sessions
from whistle.ratelimit import limiter
from whistle.store import db, options
from whistle.store.models import Change, Reviewer
from whistle.errors import AuthError, InvalidInput
from whistle.web import errors, lifecycle_api, oral_gate
from whistle.web.common import ApiError


def intake_options(session: Any) -> dict[str, Any]:
    from whistle.cases import clocks

    categories, units = options.intake_lists(session)
    return _fixed_options() | {
        "categories": clocks.with_clocks(categories, current_settings()),
        "units": units,
        "reviewers": reviewer_choices(session),
    }


def offline_intake_options() -> dict[str, Any]:
    """The form's options when the database is unreachable: defaults and no reviewer list."""
    from whistle.cases import clocks
    from whistle.config import DEFAULT_CATEGORIES, DEFAULT_CATEGORY_CLOCKS, DEFAULT_UNITS

    return _fixed_options() | {
        "categories": clocks.with_clocks(
            [{"id": case_ref, "label": label} | DEFAULT_CATEGORY_CLOCKS.get(case_ref, {})
             for case_ref, label in DEFAULT_CATEGORIES], current_settings()),
        "units": list(DEFAULT_UNITS), "reviewers": [],
    }


def _fixed_options() -> dict[str, Any]:
    cfg = current_settings()
    return {
        "min_reviewers": cfg.min_reviewers,
        "limits": {
            "details_chars": cfg.max_details_chars, "field_chars": cfg.max_field_chars,
            "attachments": cfg.max_attachments, "attachment_bytes": cfg.max_attachment_bytes,
            "attachments_total_bytes": cfg.max_attachments_total,
            "request_bytes": cfg.max_content_length,
        },
        "deadlines": {"acknowledge_days": cfg.ack_deadline_days,
                      "feedback_days": cfg.feedback_deadline_days},
    }


def reviewer_choices(session: Any) -> list[dict[str, Any]]:
    """Who may receive a concern now (verified active reviewers, whistle.people.roster), with
    their roles and units: what a reporter needs to choose whom to exclude."""
    return [{"id": x.id, "name": x.name, "units": x.units, "independent": x.independent,
             "senior": x.senior, "admin": x.admin, "fingerprint": x.fingerprint}
            for x in roster.listing(session, instance_keys())]


def roster_json(session: Any) -> dict[str, Any]:
    """``GET /api/v1/roster``: who can receive a concern now, and the signed head."""
    keys = instance_keys()
    listed = roster.listing(session, keys)
    sealed = roster.is_sealed(session)
    head, signature = roster.head(session, keys, listed, sealed)
    return {"sealed": sealed,
            "reviewers": [x.public() | {"public_key": base64.b64encode(x.public_key).decode()}
                          for x in listed],
            "head": head, "signature": base64.b64encode(signature).decode(),
            "signing_key": base64.b64encode(keys.signing_public).decode(),
            "signing_key_fingerprint": crypto.digest(keys.signing_public).hex()}


BUSY = ("Whistle is receiving more than it can take just now. Nothing was stored: please "
        "try again in a few minutes.")


def bounded(kind: str, count: int = 1) -> None:
    """The site-wide cost limits (``SUBMISSION_LIMIT``, ``UPLOAD_LIMIT``; they identify no
    one), counted before any work is done: past them, 429 with ``Retry-After``."""
    lim = limiter()
    for _ in range(count):
        if not lim.fail(kind, "all"):
            raise ApiError(429, "busy", BUSY, "attachment" if kind == "upload" else None,
                           headers={"Retry-After": str(lim.retry_after(kind, "all"))})


def _posted(files: list[Any]) -> int:
    """Files sent with this request; files kept from the review step were counted when they
    were kept (whistle.web.report._keep_new), so they are not counted again."""
    from whistle.cases.kept import KeptFile

    return sum(1 for f in files if getattr(f, "filename", None) and not isinstance(f, KeptFile))


def submit(data: Any, files: list[Any], idempotency_key: bytes | None = None,
           on_stored: intake.OnStored | None = None) -> intake.Receipt:
    """Validate and store a concern. 4xx for bad input, 503 if it could not be stored."""
    bounded("submission")
    bounded("upload", _posted(files))
    # Validation, routing and sealing only read: no write lock until the inserts
    # (the endpoints are declared WRITE_WITH_LOCK, whistle.web.transactions).
    session = db.session()
    try:
        sub = intake.parse_submission(data, session, current_settings())
        if files:
            from whistle.cases import attachments

            clean = data.get("clean_metadata", True) if isinstance(data, dict) else True
            if not isinstance(clean, bool):
                raise InvalidInput("clean_metadata must be true or false", "clean_metadata")
            uploads = attachments.read_uploads(files, current_settings(), clean)
            sub = intake.Submission(**(sub.__dict__ | {"attachments": tuple(uploads)}))
        keys = instance_keys()
        if idempotency_key is not None:
            existing = intake.replay(session, keys, idempotency_key)
            if existing is not None:
                raise intake.AlreadySubmitted()
        return intake.submit(session, keys, current_settings(), sub, idempotency_key,
                             on_sealed=roster.sealed_by_first_concern, on_stored=on_stored)
    except OperationalError as exc:
        session.rollback()
        raise errors.Unavailable(errors.NOT_SAVED) from exc


def receipt_json(r: intake.Receipt) -> dict[str, Any]:
    out: dict[str, Any] = {"case_ref": r.case_ref, "token": r.token, "status": r.status,
                           "reviewer_count": r.reviewer_count,
                           # None while held (issue 25): no deadline runs yet
                           "acknowledge_by": r.acknowledge_by.isoformat() if r.acknowledge_by
                           else None}
    if r.under_routed:
        out["under_routed"] = True
    if r.attachment_notes:
        out["attachment_notes"] = list(r.attachment_notes)
    if r.receipt:  # the signed receipt (issue 22)
        out["receipt"] = r.receipt
    from whistle.cases import clocks

    return out | clocks.words(out)  # acknowledge_by_words (issue 23, clocks)


def find_case(token: Any, replacing: bool = False) -> reporter.ReporterView | None:
    """Look a token up; too many misses anywhere -> 429 for misses (hits always pass).

    The status check is declared ``SINGLE_READS`` (whistle.web.transactions): on SQLite
    it runs without the write lock, on PostgreSQL in autocommit; the day's first check
    still records the day of use, in a write transaction of its own (and answers 503 if
    the database stays locked).
    """
    view = reporter.find_by_token(db.session(), instance_keys(), token)
    if view is None:
        from whistle.cases import escrow  # a held concern (issue 25): 409 but where it acts

        held = escrow.find(db.session(), instance_keys(), token)
        if held is not None:
            raise escrow.Held(held)
        lim = limiter()
        if not lim.fail("status", "miss"):
            raise ApiError(429, "rate_limited", "too many attempts: wait and try again",
                           headers={"Retry-After": str(lim.retry_after("status", "miss"))})
    else:  # an operator-issued token: 403 until replaced (``replacing``: the replacement)
        oral_gate.check(view, replacing)
    return view


def status_json(view: reporter.ReporterView, read_only: bool = False) -> dict[str, Any]:
    """What the reporter sees. ``read_only``: nothing changed the case in this request, so
    the timeline the lookup read is still the whole of it."""
    c = view.case
    session = db.session()
    out: dict[str, Any] = {
        "case_ref": c.id, "status": c.status, "created": c.created.isoformat(),
        "acknowledge_by": c.acknowledge_by.isoformat(),
        "feedback_by": c.feedback_by.isoformat() if c.feedback_by else None,
        "overdue": c.overdue,
        "token_last_used": view.previous_use.isoformat() if view.previous_use else None,
        "events": (view.events_at_lookup if read_only and view.events_at_lookup is not None
                   else reporter.reporter_events(session, c.id)),
        "messages": reporter.reporter_messages(session, view),
    }
    if c.status == workflow.CLOSED:
        out["outcome"] = c.outcome
    out |= lifecycle_api.reporter_part(session, c, out["events"])  # issue 23
    out |= oral_gate.status_part(view, read_only)  # a concern taken by an operator
    from whistle.web import identity_api

    out |= identity_api.status_part(session, view, out["events"], read_only)  # issue 22
    from whistle.cases import clocks

    return out | clocks.words(out)  # the deadlines in words (issue 23, clocks)


def login(email: Any, password: Any, otp: Any) -> tuple[str, Reviewer]:
    session = db.session()
    lim = limiter()
    key = (crypto.keyed_hash(instance_keys().index_pepper, "login", email.strip().lower()
                             .encode()).hex() if isinstance(email, str) and len(email) < 300
           else "invalid")
    # Refused before the password is checked: the account's lockout (exponential
    # back-off), its failures in the window, and the whole site's (password spraying).
    wait = ratelimit.lockout_left(key)
    for kind, counted in (("login", key), ("login_all", "all")):
        if not wait and lim.exceeded(kind, counted):
            wait = lim.retry_after(kind, counted)
    if wait:
        raise ApiError(429, "rate_limited", "too many failed sign-ins: wait and try again",
                       headers={"Retry-After": str(wait)})
    try:
        signed_in = sessions.login(session, current_settings(), email, password, otp)
    except AuthError:
        ratelimit.signin_failed(key, email)
        raise
    ratelimit.signin_succeeded(key)
    return signed_in


def list_args(args: Mapping[str, str]) -> tuple[str | None, int, int]:
    status = args.get("status") or None
    if status is not None and status not in workflow.STATUSES + ("overdue", "open"):
        raise ApiError(400, "invalid_input", "unknown status filter", "status")
    page = validation.whole_number(args.get("page", "1"), 7)
    per_page = validation.whole_number(args.get("per_page", "25"), 3)
    if page is None or per_page is None:
        raise ApiError(400, "invalid_input", "page and per_page must be whole numbers")
    if not (1 <= page <= 1_000_000 and 1 <= per_page <= 100):
        raise ApiError(400, "invalid_input", "page must be >= 1 and per_page 1..100")
    return status, page, per_page


def open_case(signed: sessions.SignedIn, case_ref: str) -> dict[str, Any]:
    from whistle.cases import clocks, retention

    with errors.case_integrity(), retention.gone_if_deleted(db.session(), signed, case_ref):
        data = reading.open_case(db.session(), signed, case_ref, instance=instance_keys())
    return data | clocks.words(data)  # the deadlines in words (issue 23, clocks)


def transition(signed: sessions.SignedIn, case_ref: str, data: Mapping[str, Any]) -> str:
    with errors.case_integrity():
        return actions.transition(db.session(), signed, current_settings(), case_ref,
                                  data.get("to"), data.get("note"), data.get("outcome"),
                                  data.get("feedback"))


def post_message(signed: sessions.SignedIn, case_ref: str, body: Any, internal: bool) -> Any:
    with errors.case_integrity():
        return actions.post_message(db.session(), signed, current_settings(), case_ref, body,
                                    internal)


def share(signed: sessions.SignedIn, case_ref: str, reviewer_id: Any) -> Change:
    """Propose sharing the case (a second assigned reviewer approves)."""
    return sharing.propose_share(db.session(), signed, instance_keys(), case_ref, reviewer_id)


def approve_share(signed: sessions.SignedIn, case_ref: str, reviewer_id: str
                  ) -> tuple[Change, Reviewer]:
    with errors.case_integrity():
        return sharing.approve_share(db.session(), signed, instance_keys(), case_ref,
                                     reviewer_id, None, current_settings().min_reviewers)


def reject_share(signed: sessions.SignedIn, case_ref: str, reviewer_id: str) -> Change:
    return sharing.reject_share(db.session(), signed, case_ref, reviewer_id)


def pending_shares(case_ref: str, names: Mapping[str, str]) -> list[dict[str, Any]]:
    """The case's shares waiting for a second reviewer, for its page (the caller has read
    the case, so it is theirs)."""
    session = db.session()
    out = []
    for change in sharing.pending_shares(session, case_ref):
        target = session.get(Reviewer, proposals.payload(change).get("reviewer"))
        if target is not None:
            out.append({"change_id": change.id, "reviewer_id": target.id,
                        "reviewer": target.name, "proposed_by": change.proposed_by,
                        "proposer": names.get(change.proposed_by, change.proposed_by),
                        "at": change.proposed_at.date().isoformat()})
    return out


def recuse(signed: sessions.SignedIn, case_ref: str, reason: Any) -> list[Reviewer]:
    with errors.case_integrity():
        return recusal.recuse(db.session(), signed, instance_keys(), current_settings(),
                              case_ref, reason)


def download(signed: sessions.SignedIn, case_ref: str, attachment_id: str) -> Response:
    from whistle.cases import attachments
    from whistle.web import uploads

    with errors.case_integrity():
        att, keys = reading.attachment_for(db.session(), signed, case_ref, attachment_id)
        lifecycle_api.refuse_if_erased(att)  # 410 once two reviewers erased it (issue 23)
        # Every chunk is verified before the response starts: never partial plaintext.
        verified = attachments.open_download(db.session(), att, keys)
    reading.record_download(db.session(), signed, att)  # before the first byte leaves
    return uploads.download_response(verified)


