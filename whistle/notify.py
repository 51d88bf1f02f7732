"""Content-free notifications through a transactional outbox.

Every mail of a kind is byte-identical for every case: no case reference,
category, unit, text or reporter detail ever reaches a mail. A mail is queued
in the same transaction as the event that causes it, and a pending mail of
the same kind to the same person absorbs new ones (one mail per window).

Timing says nothing (issue 20): a notification queued by anyone (a reporter's action
included) becomes due only at the next boundary of ``NOTIFY_INTERVAL_MINUTES`` (counted from
midnight UTC), so mail goes out in batches and its delivery does not say when within the
interval the reporter acted. What the row keeps is the day (``created``), the boundary
(``next_attempt``) and, once sent, the day it was sent (``sent``; ``next_attempt`` is then
reset to that day too). One-time link mail (enrolment, reset) is caused by an approval that
the administration log records to the second anyway: it goes at once, and keeps dates only
once sent like every other mail. So does the mail that tells an account's owner that
sign-in to it was paused (``AT_ONCE``): security mail, caused by sign-in attempts, never
by a reporter.
"""

from __future__ import annotations

import datetime as dt
import secrets
import smtplib
import ssl
from dataclasses import dataclass
from typing import Any

from flask import Flask
from flask_mail import Connection, Mail
from flask_mail import Message as MailMessage
from sqlalchemy import DateTime, String, bindparam, exists, false, insert, literal_column, select
from sqlalchemy.orm import Session

from whistle import crypto
from whistle.store.models import OutboxMail, new_id, utcnow
from whistle.store.prepared import Prepared

TEMPLATES = {
    "activity": (
        "Whistle: activity for you",
        "There is activity for you on Whistle.\n\n"
        "Please sign in to see it:\n\n{inbox}\n\nThis message never contains case details.\n",
    ),
    "reminder": (
        "Whistle: a deadline is near",
        "A deadline on Whistle is near for a case assigned to you.\n\n"
        "Please sign in to see it:\n\n{inbox}\n\nThis message never contains case details.\n",
    ),
    "escalation": (
        "Whistle: a case is overdue",
        "A case on Whistle is overdue and has been escalated to you.\n\n"
        "Please sign in to see it:\n\n{inbox}\n\nThis message never contains case details.\n",
    ),
    "retention": (
        "Whistle: a case's retention period ends soon",
        "The retention period of a closed case assigned to you on Whistle ends soon; the case "
        "will then be deleted. If it must be kept (legal proceedings), two of its reviewers "
        "can place a hold before then.\n\n"
        "Please sign in to see it. This message never contains case details.\n",
    ),
    "admin_attention": (
        "Whistle: administrator attention needed",
        "A case on Whistle needs administrator attention (routing or deadlines).\n\n"
        "Please sign in to the administration pages. This message never contains case details.\n",
    ),
    "signin_locked": (
        "Whistle: sign-in to your account was paused",
        "Several attempts to sign in to your Whistle account failed in a row, so signing "
        "in to it is paused for a while (longer each time it happens again).\n\n"
        "If this was you, wait and try again. If it was not, tell your Whistle "
        "administrators. This message never contains case details.\n",
    ),
    "roster_change": (
        "Whistle: a change to who may read concerns waits for approval",
        "Someone proposed a change to who may read concerns on Whistle (an account, its "
        "roles or its password). It takes effect only when a second person approves it.\n\n"
        "Please sign in to review it. This message never contains case details.\n",
    ),
}

# Security mail to an account's own owner, caused by attempts on that account and not by
# any reporter: due at once, with the next delivery run, not at the next batch boundary.
AT_ONCE = frozenset({"signin_locked"})

# Mail that carries a one-time link (enrolment, password reset): the link is sealed in the
# outbox row (``secret_ct``) under a key derived from the instance secret, and erased once
# sent. ``{link}`` is replaced at delivery.
LINK_TEMPLATES = {
    "enrol": (
        "Whistle: choose your password",
        "You have been given an account on Whistle, the organisation's channel for "
        "concerns.\n\nChoose your own password here (the link works once, for a limited "
        "time):\n\n{link}\n\nNobody else ever sees or sets your password. If you did not "
        "expect this message, tell your Whistle administrators.\n",
    ),
    "reset": (
        "Whistle: choose a new password",
        "A new password for your Whistle account was approved by two people.\n\nChoose it "
        "here (the link works once, for a limited time):\n\n{link}\n\nIf you did not ask "
        "for this, tell your Whistle administrators.\n",
    ),
}
_LINK_CONTEXT = "outbox:link"


# Queue one mail unless the same one is already pending, in one statement (run as an
# executemany for several recipients): a read and then an insert cost a round trip more
# on every submission.
_QUEUE = Prepared(insert(OutboxMail).from_select(
    ["id", "recipient", "template", "created", "attempts", "next_attempt", "failed"],
    select(bindparam("id", type_=String), bindparam("recipient", type_=String),
           bindparam("template", type_=String), bindparam("day", type_=DateTime),
           literal_column("0"), bindparam("due", type_=DateTime), false()).where(~exists().where(
               OutboxMail.recipient == bindparam("recipient", type_=String),
               OutboxMail.template == bindparam("template", type_=String),
               OutboxMail.sent.is_(None), OutboxMail.failed.is_(False)))))


def queue_link(session: Session, secret_key: bytes, recipient: str, template: str,
               link: str) -> None:
    """Queue a one-time link (``LINK_TEMPLATES``), sealed in the row; an earlier pending
    link of the same kind to the same person is dropped (its code no longer works)."""
    if template not in LINK_TEMPLATES:
        raise ValueError(f"unknown link template {template}")
    for old in session.scalars(select(OutboxMail).where(
            OutboxMail.recipient == recipient, OutboxMail.template == template,
            OutboxMail.sent.is_(None))):
        session.delete(old)
    now = utcnow()
    session.add(OutboxMail(id=new_id(), recipient=recipient, template=template,
                           created=_day(now), next_attempt=now, attempts=0, failed=False,
                           secret_ct=crypto.seal(crypto.derive_key(secret_key, _LINK_CONTEXT),
                                                 link.encode(), _LINK_CONTEXT)))


def _compose(item: OutboxMail, secret_key: bytes | None) -> tuple[str, str]:
    if item.template in LINK_TEMPLATES:
        if item.secret_ct is None or secret_key is None:
            raise crypto.CryptoError("a link mail without its link")
        link = crypto.open_sealed(crypto.derive_key(secret_key, _LINK_CONTEXT), item.secret_ct,
                                  _LINK_CONTEXT).decode()
        subject, body = LINK_TEMPLATES[item.template]
        return subject, body.replace("{link}", link)
    return TEMPLATES[item.template]


def inbox_link(public_url: str) -> str:
    """The inbox's address for notification mail (issue 21): the same for every reviewer
    and every case, so the mail still says nothing about which case it is."""
    return f"{(public_url or '').rstrip('/')}/reviewer/"


def queue(session: Session, recipient: str, template: str) -> None:
    """Queue a mail in the caller's transaction, unless the same one is already pending."""
    queue_many(session, [recipient], template)


def queue_many(session: Session, recipients: list[str], template: str) -> None:
    """``queue`` for several recipients at once (one executemany)."""
    if template not in TEMPLATES:
        raise ValueError(f"unknown template {template}")
    wanted = list(dict.fromkeys(recipients))
    if not wanted:
        return
    # Queued in a reporter's transaction too: keep the day and the next interval boundary
    # only, so the row does not record when the reporter acted. Security mail to an
    # account's owner (AT_ONCE) is due at once: no reporter acted.
    now = utcnow()
    day = _day(now)
    due = now if template in AT_ONCE else next_boundary(now, interval_of(session))
    session.flush()  # a pending mail added through the session counts as pending
    _QUEUE.run(session.connection(), [{"id": new_id(), "recipient": r, "template": template,
                                       "day": day, "due": due} for r in wanted])


DEFAULT_INTERVAL_MINUTES = 60


def interval_of(session: Session) -> int:
    """The notification interval in minutes (``NOTIFY_INTERVAL_MINUTES``), which the app's
    database gives every session (``whistle.store.db.open_database``)."""
    found = session.info.get("notify_interval_minutes", DEFAULT_INTERVAL_MINUTES)
    return int(found)


def _day(at: dt.datetime) -> dt.datetime:
    return dt.datetime.combine(at.date(), dt.time())


def next_boundary(at: dt.datetime, interval_minutes: int) -> dt.datetime:
    """The first interval boundary strictly after ``at`` (boundaries every
    ``interval_minutes`` from midnight; a mail queued exactly on one waits for the next).
    0: no batching, due at once (the day's midnight, for tests and development)."""
    day = _day(at)
    if interval_minutes <= 0:
        return day
    step = dt.timedelta(minutes=interval_minutes)
    return day + step * ((at - day) // step + 1)


class VerifiedConnection(Connection):
    """Flask-Mail's connection, but STARTTLS and SMTPS verify the server certificate."""

    def configure_host(self) -> smtplib.SMTP:
        mail = self.mail
        context = ssl.create_default_context(cafile=mail.ca_file)  # type: ignore[attr-defined]
        host: smtplib.SMTP
        if mail.use_ssl:
            host = smtplib.SMTP_SSL(mail.server, mail.port, timeout=mail.timeout,  # type: ignore[attr-defined]
                                    context=context)
        else:
            host = smtplib.SMTP(mail.server, mail.port, timeout=mail.timeout)  # type: ignore[attr-defined]
        host.set_debuglevel(0)
        if mail.use_tls:
            host.starttls(context=context)
        if mail.username and mail.password:
            host.login(mail.username, mail.password)
        return host


class VerifiedMail(Mail):
    def init_app(self, app: Flask) -> Any:
        state: Any = super().init_app(app)
        state.ca_file = app.config.get("MAIL_CA_FILE")
        state.timeout = app.config.get("MAIL_TIMEOUT", 10)
        state.connect = lambda: VerifiedConnection(state)
        return state


mail = VerifiedMail()


def init_app(app: Flask) -> None:
    mail.init_app(app)


@dataclass
class DeliveryReport:
    sent: int = 0
    deferred: int = 0
    given_up: int = 0
    reason: str = ""  # why mail was deferred: what the mail server connection raised


def _message(app: Flask, recipient: str, subject: str, body: str,
             now: dt.datetime) -> MailMessage:
    """The mail, dated by the delivery run's clock (``now``, UTC) and with a random
    Message-ID: Flask-Mail's own carries the sending time to 1/100 s and the host's name."""
    sender = app.config["MAIL_DEFAULT_SENDER"]
    message = MailMessage(subject=subject, recipients=[recipient], body=body, sender=sender,
                          date=now.replace(tzinfo=dt.timezone.utc).timestamp())
    domain = str(sender).rpartition("@")[2].rstrip(">") or "localhost"
    message.msgId = f"<{secrets.token_hex(16)}@{domain}>"
    return message


def _backoff(attempts: int) -> dt.timedelta:
    return dt.timedelta(seconds=min(3600, 30 * 2 ** max(0, attempts - 1)))


def deliver_pending(session: Session, app: Flask, now: dt.datetime | None = None,
                    limit: int = 500) -> DeliveryReport:
    """Send due mail once; failures are retried later with backoff, never lost."""
    now = now or utcnow()
    report = DeliveryReport()
    due = list(session.scalars(
        select(OutboxMail).where(OutboxMail.sent.is_(None), OutboxMail.failed.is_(False),
                                 OutboxMail.next_attempt <= now)
        .order_by(OutboxMail.next_attempt, OutboxMail.id).limit(limit)
    ))
    if not due:
        return report
    state: Any = app.extensions["mail"]
    keys = app.extensions.get("whistle_keys")
    secret_key = keys.secret_key if keys is not None else None
    try:
        with app.app_context(), state.connect() as conn:
            for item in due:
                try:
                    subject, body = _compose(item, secret_key)
                    body = body.replace("{inbox}", inbox_link(app.config.get("PUBLIC_URL", "")))
                except crypto.CryptoError:  # sealed under another instance secret: unusable
                    item.failed = True
                    report.given_up += 1
                    session.commit()
                    continue
                conn.send(_message(app, item.recipient, subject, body, now))
                # Dates only in what is kept once sent (issue 20).
                item.sent = item.next_attempt = _day(now)
                item.secret_ct = None  # the link leaves the database with the mail
                report.sent += 1
                session.commit()
    except (OSError, smtplib.SMTPException) as failure:
        report.reason = f"{type(failure).__name__}: {failure}"[:300]
        for item in due:
            if item.sent is None:
                item.attempts += 1
                item.next_attempt = now + _backoff(item.attempts)
                if item.attempts >= app.config["OUTBOX_MAX_ATTEMPTS"]:
                    item.failed = True
                    report.given_up += 1
                else:
                    report.deferred += 1
        session.commit()
    return report
