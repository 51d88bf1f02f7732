"""The tables of a case's whole life: what reviewers have seen and what the reporter sent
(issue 21), referrals, check-ins and retention (issue 23), oral reports (issue 24).
Content columns hold only ciphertext (``*_ct``)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    Boolean,
    Date,
    DateTime,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    Text,
    false,
)
from sqlalchemy.orm import Mapped, mapped_column

from whistle.store.models.core import Base, new_id, utcnow, NO_ROWID


class CaseSeen(Base):
    """How far into a case's trail (its last event's ``seq``) a reviewer had seen when they
    last opened it (whistle.cases.activity): the inbox marks what happened after."""

    __tablename__ = "case_seen"

    concern_id: Mapped[str] = mapped_column(ForeignKey("concerns.id", ondelete="CASCADE"),
                                            primary_key=True)
    reviewer_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer)


class ReporterCopy(Base):
    """What the reporter sent (their concern and the names and sizes of its files), sealed
    with the case's thread key so that the token opens it and never the case key, which
    also seals internal notes and identity (whistle.cases.sent)."""

    __tablename__ = "reporter_copies"

    concern_id: Mapped[str] = mapped_column(ForeignKey("concerns.id", ondelete="CASCADE"),
                                            primary_key=True)
    body_ct: Mapped[bytes] = mapped_column(LargeBinary)


class Agency(Base):
    """An outside agency a case may be referred to (issue 23: LADO, police, a regulator,
    another organisation's Whistle), with the age (X25519) public key its packages are
    encrypted to. Registered, and its key replaced, only as a two-person change
    (whistle.people.agencies); ``signature`` is the instance signing key's signature over
    the entry in force, checked before anything is encrypted to ``age_recipient``."""

    __tablename__ = "agencies"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(200))
    age_recipient: Mapped[str] = mapped_column(String(100))
    # pending (waits for a second person), active, rejected, retired
    state: Mapped[str] = mapped_column(String(16), default="pending")
    created: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    signature: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)


class ReferralPackage(Base):
    """The one package a referral built (whistle.cases.referrals): age-encrypted to the
    agency alone (Whistle cannot read it back), kept until ``expires`` for the assigned
    reviewers to hand over, then its bytes are deleted; the SHA-256 stays in the case's
    trail."""

    __tablename__ = "referral_packages"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)  # the referral's change id
    concern_id: Mapped[str] = mapped_column(ForeignKey("concerns.id"), index=True)
    agency_id: Mapped[str] = mapped_column(ForeignKey("agencies.id"))
    sha256: Mapped[bytes] = mapped_column(LargeBinary(32))
    created: Mapped[dt.datetime] = mapped_column(DateTime)
    expires: Mapped[dt.date] = mapped_column(Date)
    package: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)


class Checkin(Base):
    """How far a closed case's reporter has answered the detriment check-ins (issue 23):
    the number of prompts answered so far, and the day of the last answer. Never the
    answer: a "no" is counted in ``CheckinTally`` only, a "yes" opens a new case."""

    __tablename__ = "checkins"

    concern_id: Mapped[str] = mapped_column(ForeignKey("concerns.id"), primary_key=True)
    answered_round: Mapped[int] = mapped_column(Integer, default=0)
    last_answered: Mapped[dt.date] = mapped_column(Date)


class CheckinTally(Base):
    """Check-in answers counted per quarter and answer, for the statistics only."""

    __tablename__ = "checkin_tallies"

    quarter: Mapped[str] = mapped_column(String(8), primary_key=True)
    answer: Mapped[str] = mapped_column(String(8), primary_key=True)
    n: Mapped[int] = mapped_column(Integer, default=0)


class OralReport(Base):
    """A concern an intake operator filed on a reporter's behalf (issue 24,
    whistle.cases.oral): the channel, whether the reporter consented to a recording, whether
    the operator-issued token still waits for its replacement, the transcript sealed with
    the thread key (so the reporter can read it back) and the reporter's agreement. Which
    operator filed it is not kept (docs/oral-reporting.md)."""

    __tablename__ = "oral_reports"

    concern_id: Mapped[str] = mapped_column(ForeignKey("concerns.id"), primary_key=True)
    channel: Mapped[str] = mapped_column(String(16))
    recording_consent: Mapped[bool] = mapped_column(Boolean, default=False)
    token_pending: Mapped[bool] = mapped_column(Boolean, default=True)
    transcript_ct: Mapped[bytes] = mapped_column(LargeBinary)
    agreed: Mapped[bool] = mapped_column(Boolean, default=False)
    agreed_on: Mapped[dt.date | None] = mapped_column(Date, nullable=True)  # reporter-side: a day

    __table_args__ = NO_ROWID


class TranscriptCorrection(Base):
    """A reporter's correction to the record of an oral concern, sealed with the thread key
    like a message. Reporter-side: a day, a per-case sequence number, a random id."""

    __tablename__ = "transcript_corrections"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    concern_id: Mapped[str] = mapped_column(ForeignKey("concerns.id"), index=True)
    seq: Mapped[int] = mapped_column(Integer, autoincrement=False)
    created: Mapped[dt.date] = mapped_column(Date)
    body_ct: Mapped[bytes] = mapped_column(LargeBinary)

    __table_args__ = NO_ROWID


class CaseRetention(Base):
    """Retention of a case (issue 23, whistle.cases.retention): a legal hold placed and
    lifted by two assigned reviewers, the day its reviewers were reminded that its
    retention ends, and, once deleted, the day and who had been assigned (so that they get
    410 rather than 404). The case row itself stays as a content-free tombstone."""

    __tablename__ = "case_retention"

    concern_id: Mapped[str] = mapped_column(ForeignKey("concerns.id"), primary_key=True)
    on_hold: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    hold_since: Mapped[dt.date | None] = mapped_column(Date, nullable=True)
    reminded_on: Mapped[dt.date | None] = mapped_column(Date, nullable=True)
    deleted_on: Mapped[dt.date | None] = mapped_column(Date, nullable=True)
    readers: Mapped[str | None] = mapped_column(Text, nullable=True)  # JSON list of ids
