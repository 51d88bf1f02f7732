"""The tables of identity released by two, signed receipts (issue 22) and matching escrow
(issue 25). Content columns hold only ciphertext (``*_ct``)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    Date,
    ForeignKey,
    LargeBinary,
    String,
)
from sqlalchemy.orm import Mapped, mapped_column

from whistle.store.models.core import Base, NO_ROWID


class HeldConcern(Base):
    """A concern held until someone else names the same person (matching escrow, issue 25;
    whistle.cases.escrow). Not a case: no row in ``concerns``, so it is in no inbox, count,
    list, mail, statistic or registry. ``payload_ct`` (the whole submission) is sealed under
    a random key, which is stored twice: sealed under a key derived from the escrow pepper
    and the normalised address (``key_by_match``), and wrapped for the reporter's key pair
    (``key_by_reporter``). ``match_tag``: HMAC of the address under the escrow pepper."""

    __tablename__ = "held_concerns"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)  # the case reference
    match_tag: Mapped[bytes] = mapped_column(LargeBinary(32), index=True)
    token_lookup: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    idempotency: Mapped[bytes | None] = mapped_column(LargeBinary(32), unique=True,
                                                      nullable=True)
    created: Mapped[dt.date] = mapped_column(Date)
    expires: Mapped[dt.date] = mapped_column(Date)
    reporter_public: Mapped[bytes] = mapped_column(LargeBinary)
    key_by_match: Mapped[bytes] = mapped_column(LargeBinary)
    key_by_reporter: Mapped[bytes] = mapped_column(LargeBinary)
    payload_ct: Mapped[bytes] = mapped_column(LargeBinary)


class ConcernAbout(Base):
    """Whom a case is about (issue 25): the keyed tag of the address for matching (HMAC
    under the escrow pepper) and the name, role and address sealed with the case key."""

    __tablename__ = "concern_about"

    concern_id: Mapped[str] = mapped_column(ForeignKey("concerns.id", ondelete="CASCADE"),
                                            primary_key=True)
    match_tag: Mapped[bytes] = mapped_column(LargeBinary(32), index=True)
    about_ct: Mapped[bytes] = mapped_column(LargeBinary)


# -- a reporter's identity apart, and signed receipts (issue 22) ---------------------------
# Written at submission (reporter-side rows): keyed by the case, no rowid (see NO_ROWID).
# ``ON DELETE CASCADE``: a case deleted (retention) takes them along.


class CaseIdentity(Base):
    """A reporter's identity, sealed under its own key (whistle.cases.identity): the key is
    split 2-of-n over the assigned reviewers (``IdentityShare``), wrapped whole for the
    recovery key, and sealed under the case's thread key only once released."""

    __tablename__ = "case_identities"

    concern_id: Mapped[str] = mapped_column(ForeignKey("concerns.id", ondelete="CASCADE"),
                                            primary_key=True)
    release: Mapped[str] = mapped_column(String(16))  # on_request | to_reviewers
    state: Mapped[str] = mapped_column(String(16))  # sealed | requested | released
    identity_ct: Mapped[bytes] = mapped_column(LargeBinary)  # under the identity key
    recovery_ct: Mapped[bytes] = mapped_column(LargeBinary)  # the key, for the recovery key
    open_ct: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)  # once released
    # The approved request whose release waits for a second share in one session.
    approved_request: Mapped[str | None] = mapped_column(String(32), nullable=True)

    __table_args__ = NO_ROWID


class IdentityShare(Base):
    """One share of an identity key, HPKE-wrapped for ``holder``: their own share
    (``source`` = ``holder``) or a share ``source`` deposited for them with a release
    request (also sealed under a key from ``keys/``)."""

    __tablename__ = "identity_shares"

    concern_id: Mapped[str] = mapped_column(ForeignKey("concerns.id", ondelete="CASCADE"),
                                            primary_key=True)
    holder: Mapped[str] = mapped_column(String(32), primary_key=True)
    source: Mapped[str] = mapped_column(String(32), primary_key=True)
    blob: Mapped[bytes] = mapped_column(LargeBinary)

    __table_args__ = NO_ROWID


class IdentityRequest(Base):
    """A request to open a reporter's identity: its id is the proposal's (``changes``); the
    reason is sealed under the case's thread key (the reporter reads it when it is
    released)."""

    __tablename__ = "identity_requests"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    concern_id: Mapped[str] = mapped_column(ForeignKey("concerns.id", ondelete="CASCADE"),
                                            index=True)
    reason_ct: Mapped[bytes] = mapped_column(LargeBinary)


class CaseReceipt(Base):
    """The signed receipt given with the token, sealed under a key derived from
    ``keys/reporter_pepper`` so that the token fetches it again (whistle.cases.receipts)."""

    __tablename__ = "case_receipts"

    concern_id: Mapped[str] = mapped_column(ForeignKey("concerns.id", ondelete="CASCADE"),
                                            primary_key=True)
    receipt_ct: Mapped[bytes] = mapped_column(LargeBinary)

    __table_args__ = NO_ROWID
