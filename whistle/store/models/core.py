"""The schema. Content columns hold only ciphertext (``*_ct``); see whistle.crypto for formats."""

from __future__ import annotations

import datetime as dt
import secrets

from sqlalchemy import (
    Boolean,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    false,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


class Base(DeclarativeBase):
    pass


def new_id() -> str:
    """A random public id: 128 bits, hex."""
    return secrets.token_hex(16)


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


def today() -> dt.date:
    return utcnow().date()


# Reporter-side rows carry no ordering that reveals time within a day (issue 20): no global
# autoincrement id and, on SQLite, no hidden rowid (``max(rowid) + 1`` would order a
# reporter's rows between a reviewer's timestamped ones) where reporter and reviewer or
# system rows share a table. Their keys are random ids or per-case sequence numbers.
NO_ROWID = {"sqlite_with_rowid": False}


class Reviewer(Base):
    __tablename__ = "reviewers"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str] = mapped_column(String(254), unique=True)
    units: Mapped[str] = mapped_column(Text, default="[]")  # JSON list of unit names
    categories: Mapped[str] = mapped_column(Text, default="[]")  # JSON list; empty = all
    is_senior: Mapped[bool] = mapped_column(Boolean, default=False)
    is_independent: Mapped[bool] = mapped_column(Boolean, default=False)
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    is_reviewer: Mapped[bool] = mapped_column(Boolean, default=True)
    # An intake operator (issue 24): files concerns taken by phone or in a meeting on a
    # reporter's behalf; never a reviewer, holds no case key, never routed.
    is_operator: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    public_key: Mapped[bytes] = mapped_column(LargeBinary)
    locked_private_key: Mapped[bytes] = mapped_column(LargeBinary)
    password_check: Mapped[bytes] = mapped_column(LargeBinary)
    totp_secret_ct: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    totp_last_step: Mapped[int] = mapped_column(Integer, default=0)
    credentials_version: Mapped[int] = mapped_column(Integer, default=1)
    created: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    # pending (a proposal waits for a second person), invited (approved: the person has
    # not chosen a password yet), active, disabled. Only active accounts sign in, are
    # routed and are on the roster. Pending and invited accounts have no key pair yet
    # (empty public_key, locked_private_key and password_check).
    state: Mapped[str] = mapped_column(String(16), default="active",
                                       server_default="active")
    # The instance signing key's signature over this account's roster entry in force
    # (whistle.people.roster): no key is wrapped for an account whose entry does not verify.
    roster_signature: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    joined: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    # The administration log's seq up to which this reviewer has seen the roster's changes.
    roster_seen: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # While a password change re-wraps the reviewer's case keys for the new key pair: the
    # old private key, locked under the new password (whistle.people.accounts.rotate).
    rotating_key: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)


class Change(Base):
    """A proposal that takes effect only when a different person approves it (two-person
    control: whistle.people.approvals). ``payload`` is JSON: ids, roles, units; never a
    password, a key or case content."""

    __tablename__ = "changes"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    type: Mapped[str] = mapped_column(String(40))
    subject: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    payload: Mapped[str] = mapped_column(Text, default="{}")
    proposed_by: Mapped[str] = mapped_column(String(40))
    proposed_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    state: Mapped[str] = mapped_column(String(16), default="pending", index=True)
    decided_by: Mapped[str | None] = mapped_column(String(40), nullable=True)
    decided_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)


class EnrolmentCode(Base):
    """A one-time link for a person to choose their own password (enrolment or reset).
    Only a hash of the code is kept; ``used`` is set when it is spent."""

    __tablename__ = "enrolment_codes"

    code_hash: Mapped[bytes] = mapped_column(LargeBinary(32), primary_key=True)
    reviewer_id: Mapped[str] = mapped_column(ForeignKey("reviewers.id"), index=True)
    purpose: Mapped[str] = mapped_column(String(16))
    expires: Mapped[dt.datetime] = mapped_column(DateTime)
    used: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)


class Concern(Base):
    """A case. ``id`` doubles as the public case reference."""

    __tablename__ = "concerns"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    category: Mapped[str] = mapped_column(String(64))
    unit: Mapped[str | None] = mapped_column(String(200), nullable=True)
    about_senior: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[str] = mapped_column(String(32), default="received")
    created: Mapped[dt.date] = mapped_column(Date)  # day granularity: reporter-side time
    acknowledge_by: Mapped[dt.date] = mapped_column(Date)
    acknowledged_on: Mapped[dt.date | None] = mapped_column(Date, nullable=True)
    feedback_by: Mapped[dt.date | None] = mapped_column(Date, nullable=True)
    closed_on: Mapped[dt.date | None] = mapped_column(Date, nullable=True)
    under_routed: Mapped[bool] = mapped_column(Boolean, default=False)
    overdue: Mapped[bool] = mapped_column(Boolean, default=False)
    escalated_ack: Mapped[bool] = mapped_column(Boolean, default=False)
    escalated_feedback: Mapped[bool] = mapped_column(Boolean, default=False)
    reminded_ack: Mapped[bool] = mapped_column(Boolean, default=False)
    reminded_feedback: Mapped[bool] = mapped_column(Boolean, default=False)
    # Escalation with access (whistle.cases.escalation): the tier reached (0 none, 1 the
    # escalation reviewers, 2 every eligible independent reviewer and reviewing
    # administrator), the day of the latest escalation step, and whether a key holder's
    # next reading of the case should wrap copies for escalation people who lack one.
    escalation_tier: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    escalated_on: Mapped[dt.date | None] = mapped_column(Date, nullable=True)
    handover_due: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # The acknowledgement clock the case was filed under (issue 23, whistle.cases.clocks):
    # ``1wd`` (working days) or ``7d``; None for cases filed before clocks per category.
    ack_clock: Mapped[str | None] = mapped_column(String(8), nullable=True)
    details_ct: Mapped[bytes] = mapped_column(LargeBinary)
    identity_ct: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    outcome: Mapped[str | None] = mapped_column(String(64), nullable=True)
    proposed_outcome: Mapped[str | None] = mapped_column(String(64), nullable=True)
    proposed_by: Mapped[str | None] = mapped_column(String(32), nullable=True)
    token_lookup: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    token_last_used: Mapped[dt.date | None] = mapped_column(Date, nullable=True)
    failed_lookups: Mapped[int] = mapped_column(Integer, default=0)
    idempotency: Mapped[bytes | None] = mapped_column(LargeBinary(32), unique=True, nullable=True)

    assignments: Mapped[list[Assignment]] = relationship(back_populates="concern")

    __table_args__ = (
        Index("ix_concerns_status_created", "status", "created"),
        # The administrators' attention list (under-routed or overdue): a partial index, so
        # the list reads those few cases, not every case; a submission that is neither
        # writes nothing to it. The conditions of the partial indexes are written as
        # SQLAlchemy renders ``.is_(True)`` (IS 1 on SQLite, IS true on PostgreSQL): a
        # query uses a partial index only when it repeats the index's condition.
        Index("ix_concerns_attention", "created", "id",
              sqlite_where=text("under_routed IS 1 OR overdue IS 1"),
              postgresql_where=text("under_routed IS true OR overdue IS true")),
    )


class Assignment(Base):
    __tablename__ = "assignments"

    concern_id: Mapped[str] = mapped_column(ForeignKey("concerns.id"), primary_key=True)
    reviewer_id: Mapped[str] = mapped_column(ForeignKey("reviewers.id"), primary_key=True)
    status: Mapped[str] = mapped_column(String(32))  # denormalised copy for the inbox index
    created: Mapped[dt.date] = mapped_column(Date)
    # Denormalised copy of the case's overdue flag (``workflow.set_overdue`` keeps both), for
    # the partial index below: the overdue filter and the overdue-first inbox read the
    # reviewer's few overdue cases instead of joining every assignment to its case.
    overdue: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    concern: Mapped[Concern] = relationship(back_populates="assignments")
    reviewer: Mapped[Reviewer] = relationship()

    __table_args__ = (
        Index("ix_assignments_inbox", "reviewer_id", "status", "created", "concern_id"),
        Index("ix_assignments_inbox_all", "reviewer_id", "created", "concern_id"),
        Index("ix_assignments_overdue", "reviewer_id", "created", "concern_id",
              sqlite_where=text("overdue IS 1"), postgresql_where=text("overdue IS true")),
        NO_ROWID,  # written at submission and by reviewers' shares alike
    )


class InboxCount(Base):
    """How many cases each reviewer has in each status: the inbox total without counting
    one index entry per case on every request. Kept by ``whistle.store.counts`` (session events), checked
    by ``flask --app app inbox recount``."""

    __tablename__ = "inbox_counts"

    reviewer_id: Mapped[str] = mapped_column(ForeignKey("reviewers.id"), primary_key=True)
    status: Mapped[str] = mapped_column(String(32), primary_key=True)
    n: Mapped[int] = mapped_column(Integer)


class WrappedKey(Base):
    """A case or thread key HPKE-wrapped for one recipient (reviewer, recovery or reporter)."""

    __tablename__ = "wrapped_keys"

    # The key is the recipient and the kind of key: no global sequence (issue 20).
    concern_id: Mapped[str] = mapped_column(ForeignKey("concerns.id"), primary_key=True)
    # reviewer | recovery | reporter | escalation (a reviewer's copy withheld until the case
    # escalates: wrapped with the reviewer context, see whistle.cases.escalation)
    recipient_kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    recipient_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    # case+thread | thread (| case, older)
    key_kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    blob: Mapped[bytes] = mapped_column(LargeBinary)

    __table_args__ = NO_ROWID


class Exclusion(Base):
    """Who the reporter excluded, kept as HMAC(index pepper, case | reviewer) only.

    A stolen database does not say whom a reporter named; the server can
    still answer "is reviewer R excluded from case C?".
    """

    __tablename__ = "exclusions"

    tag: Mapped[bytes] = mapped_column(LargeBinary(32), primary_key=True)
    concern_id: Mapped[str] = mapped_column(ForeignKey("concerns.id"), index=True)


class Message(Base):
    """Conversation entries (thread key) and internal notes (case key)."""

    __tablename__ = "messages"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    seq: Mapped[int] = mapped_column(Integer, primary_key=False, autoincrement=False)
    concern_id: Mapped[str] = mapped_column(ForeignKey("concerns.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))  # message | feedback | note
    sender: Mapped[str] = mapped_column(String(16))  # reporter | reviewer
    reviewer_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    created: Mapped[dt.date] = mapped_column(Date)
    body_ct: Mapped[bytes] = mapped_column(LargeBinary)

    __table_args__ = NO_ROWID


class Attachment(Base):
    __tablename__ = "attachments"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    concern_id: Mapped[str] = mapped_column(ForeignKey("concerns.id"), index=True)
    meta_ct: Mapped[bytes] = mapped_column(LargeBinary)  # sealed JSON: name, type, size, notes
    chunk_count: Mapped[int] = mapped_column(Integer)
    created: Mapped[dt.date] = mapped_column(Date)


class AttachmentChunk(Base):
    __tablename__ = "attachment_chunks"

    attachment_id: Mapped[str] = mapped_column(ForeignKey("attachments.id"), primary_key=True)
    index: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    blob: Mapped[bytes] = mapped_column(LargeBinary)


class KeptUpload(Base):
    """A file a reporter chose before "Review before sending", kept until the concern is sent
    (issue 20): part 0 is the sealed name and type, parts 1.. the sealed 64 KiB chunks, all
    under a random key that only the reporter's form holds. ``created`` is the hour, for
    the purge after ``KEPT_UPLOAD_HOURS``."""

    __tablename__ = "kept_uploads"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    part: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    blob: Mapped[bytes] = mapped_column(LargeBinary)
    created: Mapped[dt.datetime] = mapped_column(DateTime, index=True)


class ChainLink:
    """The columns every link of a hash chain has (see whistle.cases.audit, whistle.people.adminlog)."""

    at: Mapped[dt.datetime] = mapped_column(DateTime)
    type: Mapped[str] = mapped_column(String(40))
    actor: Mapped[str] = mapped_column(String(40))
    data: Mapped[str] = mapped_column(Text, default="{}")
    prev_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    hash: Mapped[bytes] = mapped_column(LargeBinary(32))


class AuditEvent(ChainLink, Base):
    """One link of a case's hash chain. ``data`` is JSON without plaintext content."""

    __tablename__ = "audit_events"

    # The case and its own sequence number: no global id orders events of different cases
    # (issue 20).
    concern_id: Mapped[str] = mapped_column(ForeignKey("concerns.id"), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)

    __table_args__ = NO_ROWID


class AdminEvent(ChainLink, Base):
    """One link of the administration log: a change to accounts or routing settings.

    One hash chain for the whole instance (see whistle.people.adminlog). ``data`` is JSON with
    ids, roles, units and category ids: never a password, a key or case content."""

    __tablename__ = "admin_events"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)


class OutboxMail(Base):
    """A notification waiting for delivery. Holds an address and a fixed template name only."""

    __tablename__ = "outbox"

    # Random: a sequence would order a reporter's mail among timestamped events (issue 20).
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    recipient: Mapped[str] = mapped_column(String(254))
    template: Mapped[str] = mapped_column(String(40))
    created: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    sent: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    failed: Mapped[bool] = mapped_column(Boolean, default=False)
    # An enrolment link, sealed under a key derived from the instance secret in keys/ (never
    # readable from the database alone); erased once the mail is sent.
    secret_ct: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)

    __table_args__ = (Index("ix_outbox_pending", "sent", "failed", "next_attempt"), NO_ROWID)


class ReviewerSession(Base):
    """A login. ``id`` is SHA-256 of the client's secret; ``key_ct`` its private key re-sealed."""

    __tablename__ = "reviewer_sessions"

    id: Mapped[bytes] = mapped_column(LargeBinary(32), primary_key=True)
    reviewer_id: Mapped[str] = mapped_column(ForeignKey("reviewers.id"), index=True)
    created: Mapped[dt.datetime] = mapped_column(DateTime)
    last_seen: Mapped[dt.datetime] = mapped_column(DateTime)
    credentials_version: Mapped[int] = mapped_column(Integer)
    key_ct: Mapped[bytes] = mapped_column(LargeBinary)


class Setting(Base):
    """Administrator-set values: categories, units, advice text (JSON)."""

    __tablename__ = "settings"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class CaseRegistry(Base):
    """One link per case created, in one hash chain for the whole instance (see
    whistle.cases.registry): a case row deleted leaves its entry behind. No foreign key, on
    purpose: the entry must outlive the case it names."""

    __tablename__ = "case_registry"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    concern_id: Mapped[str] = mapped_column(String(40), unique=True)
    created: Mapped[dt.date] = mapped_column(Date)  # day granularity: reporter-side time
    prev_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    hash: Mapped[bytes] = mapped_column(LargeBinary(32))


class Checkpoint(Base):
    """A signed checkpoint (whistle.cases.checkpoints): the registry's head, the
    administration log's head and the case chain heads recorded with it, chained to the
    previous checkpoint and signed with the instance signing key (never in the database)."""

    __tablename__ = "checkpoints"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    at: Mapped[dt.datetime] = mapped_column(DateTime)
    registry_seq: Mapped[int] = mapped_column(Integer)
    registry_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    admin_seq: Mapped[int] = mapped_column(Integer)
    admin_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    heads: Mapped[int] = mapped_column(Integer)  # case heads recorded with this checkpoint
    heads_digest: Mapped[bytes] = mapped_column(LargeBinary(32))
    prev_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    signature: Mapped[bytes] = mapped_column(LargeBinary)


class CheckpointHead(Base):
    """A case chain's head (its last event's seq and hash) as a checkpoint recorded it: one
    row per case whose chain grew since the checkpoint before. No foreign key: a head must
    outlive a case deleted behind Whistle's back."""

    __tablename__ = "checkpoint_heads"

    concern_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    checkpoint: Mapped[int] = mapped_column(Integer, index=True)
    hash: Mapped[bytes] = mapped_column(LargeBinary(32))


class LimitHit(Base):
    """One counted failure in a moving window (whistle.ratelimit, the default ``database://``
    storage): ``kind`` (``status``, ``login``, ...) and a key that names no one (``miss``,
    ``all``, or an HMAC of an email address); ``at`` in seconds since the epoch. Rows older
    than their window are deleted as new ones come, so at most a limit's worth remain."""

    __tablename__ = "limit_hits"
    __table_args__ = (Index("ix_limit_hits_kind_key_at", "kind", "key", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(16))
    key: Mapped[str] = mapped_column(String(64))
    at: Mapped[float] = mapped_column(Float)


class SigninLockout(Base):
    """Consecutive failed sign-ins of one account (``key``: an HMAC of the email address,
    also for addresses that have no account) and the back-off they earned: ``lockouts``
    so far, each twice as long as the one before, until ``locked_until`` (seconds since
    the epoch). Deleted at the account's next successful sign-in."""

    __tablename__ = "signin_lockouts"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer)
    lockouts: Mapped[int] = mapped_column(Integer)
    locked_until: Mapped[float] = mapped_column(Float)
