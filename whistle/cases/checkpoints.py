"""Signed checkpoints: the registry's head, every case chain's head and the administration
log's head, fixed by the instance signing key.

Hash chains make an edit evident, not impossible: whoever can write to the database can
delete a case's last events, or a whole case and its registry entry, and compute the
remaining links again. A checkpoint fixes what existed when it was taken, with a key that
is not in the database (``keys/signing_key``, as for the roster):

* ``registry``: the case registry's head (seq, hash): every case created until then;
* ``heads``: the head (last event's seq and hash) of every case chain that grew since the
  checkpoint before, as ``checkpoint_heads`` rows; the checkpoint signs their number and a
  digest of them (SHA-256 over the rows' sorted leaf hashes), and it signs the hash of the
  checkpoint before, so the latest checkpoint covers every case's head as last recorded;
* ``admin``: the administration log's head (seq, hash).

The signed message is ``LABEL`` + compact JSON with sorted keys (``message``); ``hash`` is
its SHA-256, the next checkpoint's ``prev``. ``flask --app app audit verify`` checks the
checkpoints' chain and signatures, that every registry and log head they recorded is
still a link of its chain, and that every case head they recorded is still a link of that
case's trail (whistle.cases.integrity).

Taking one reads every case's head with one grouped query (a read transaction, no lock
held), then writes the new heads and the signed row in a short write transaction. Signing
costs about a millisecond, so checkpoints are taken by ``deadlines`` (hourly) and
``flask --app app audit checkpoint``, never per request. Nothing new since the last one:
no new checkpoint.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import bindparam, func, insert, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from whistle import crypto
from whistle.cases import registry
from whistle.store import db
from whistle.store.models import AdminEvent, AuditEvent, Checkpoint, CheckpointHead, utcnow

LABEL = b"whistle:1:checkpoint:"
GENESIS = b"\x00" * 32
_BATCH = 5000


@dataclass(frozen=True)
class Finding:
    """Something ``audit verify`` found wrong: what (``case WH-...``, ``checkpoint 3``,
    ``registry``) and why."""

    subject: str
    reason: str


def message(seq: int, at: dt.datetime, prev: bytes, registry_head: tuple[int, bytes],
            admin_head: tuple[int, bytes], heads: tuple[int, bytes]) -> bytes:
    """The bytes a checkpoint's signature covers."""
    return LABEL + json.dumps({
        "v": 1, "seq": seq, "at": at.isoformat(), "prev": prev.hex(),
        "registry": [registry_head[0], registry_head[1].hex()],
        "admin": [admin_head[0], admin_head[1].hex()],
        "heads": [heads[0], heads[1].hex()],
    }, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def message_of(cp: Any) -> bytes:
    """``message`` of a checkpoints row (or a row of its columns)."""
    return message(cp.seq, cp.at, bytes(cp.prev_hash),
                   (cp.registry_seq, bytes(cp.registry_hash)),
                   (cp.admin_seq, bytes(cp.admin_hash)), (cp.heads, bytes(cp.heads_digest)))


def leaf(concern_id: str, seq: int, hash_: bytes) -> bytes:
    """One recorded case head, hashed for the digest a checkpoint signs."""
    return crypto.digest(json.dumps([concern_id, seq, bytes(hash_).hex()],
                                    separators=(",", ":"), ensure_ascii=True).encode())


def heads_digest(leaves: list[bytes]) -> bytes:
    """The digest of a checkpoint's case heads: independent of the order they were read in
    (the database's collation is not Python's)."""
    return crypto.digest(b"whistle:1:heads:" + b"".join(sorted(leaves)))


# Each case's last event, where the checkpoints have not recorded it yet (or recorded an
# earlier one). A head recorded at a seq the trail no longer reaches is left as it is:
# a checkpoint never records a cut trail over the head it cut (``audit verify`` names it).
_LAST = (select(AuditEvent.concern_id, func.max(AuditEvent.seq).label("seq"))
         .group_by(AuditEvent.concern_id).subquery())
_RECORDED = (select(CheckpointHead.concern_id, func.max(CheckpointHead.seq).label("seq"))
             .group_by(CheckpointHead.concern_id).subquery())
_NEW_HEADS = (select(AuditEvent.concern_id, AuditEvent.seq, AuditEvent.hash)
              .join(_LAST, (_LAST.c.concern_id == AuditEvent.concern_id)
                    & (_LAST.c.seq == AuditEvent.seq))
              .outerjoin(_RECORDED, _RECORDED.c.concern_id == AuditEvent.concern_id)
              .where(or_(_RECORDED.c.seq.is_(None), _RECORDED.c.seq < AuditEvent.seq)))
_LATEST = select(Checkpoint.seq, Checkpoint.hash, Checkpoint.registry_seq,
                 Checkpoint.admin_seq).order_by(Checkpoint.seq.desc()).limit(1)
_ADMIN_HEAD = select(AdminEvent.seq, AdminEvent.hash).order_by(AdminEvent.seq.desc()).limit(1)


@dataclass(frozen=True)
class Taken:
    """What ``take`` did: the checkpoint's seq (None: nothing new since ``latest``), how many
    case heads it recorded, and the registry and log heads it covers."""

    seq: int | None
    heads: int
    registry_seq: int
    admin_seq: int
    latest: int  # the latest checkpoint after this run


def take(session: Session, signing_key: bytes, now: dt.datetime | None = None) -> Taken:
    """Take a checkpoint (commits). Raises ``Busy`` if another run took one meanwhile."""
    db.one_snapshot(session)
    last = session.execute(_LATEST).first()
    prev_seq, prev = (last[0], bytes(last[1])) if last else (0, GENESIS)
    registry_head = registry.head(session)
    found = session.execute(_ADMIN_HEAD).first()
    admin_head = (found[0], bytes(found[1])) if found else (0, GENESIS)
    heads = [(cid, seq, bytes(h)) for cid, seq, h in session.execute(_NEW_HEADS)]
    session.commit()  # the reads end here; the write below is short
    if last is not None and not heads and (registry_head[0], admin_head[0]) == (last[2], last[3]):
        return Taken(None, 0, registry_head[0], admin_head[0], prev_seq)
    at = (now or utcnow()).replace(microsecond=0)
    digest = heads_digest([leaf(*h) for h in heads])
    signed = message(prev_seq + 1, at, prev, registry_head, admin_head, (len(heads), digest))
    row = {"seq": prev_seq + 1, "at": at, "registry_seq": registry_head[0],
           "registry_hash": registry_head[1], "admin_seq": admin_head[0],
           "admin_hash": admin_head[1], "heads": len(heads), "heads_digest": digest,
           "prev_hash": prev, "hash": crypto.digest(signed),
           "signature": crypto.sign(signing_key, signed)}
    try:
        session.execute(insert(Checkpoint), [row])  # first: the write lock, or a conflict
        for start in range(0, len(heads), _BATCH):
            session.execute(insert(CheckpointHead), [
                {"concern_id": cid, "seq": seq, "checkpoint": prev_seq + 1, "hash": h}
                for cid, seq, h in heads[start:start + _BATCH]])
        session.commit()
    except IntegrityError as exc:
        session.rollback()
        raise Busy() from exc
    return Taken(prev_seq + 1, len(heads), registry_head[0], admin_head[0], prev_seq + 1)


class Busy(Exception):
    """Another run took checkpoint n+1 while this one prepared it."""

    def __init__(self) -> None:
        super().__init__("another checkpoint was taken meanwhile: run it again")


# -- verifying ----------------------------------------------------------------------------

_COLUMNS = (Checkpoint.seq, Checkpoint.at, Checkpoint.registry_seq, Checkpoint.registry_hash,
            Checkpoint.admin_seq, Checkpoint.admin_hash, Checkpoint.heads,
            Checkpoint.heads_digest, Checkpoint.prev_hash, Checkpoint.hash,
            Checkpoint.signature)


@dataclass
class Coverage:
    """What the checkpoints vouch for, once their chain and signatures are checked."""

    checkpoints: int = 0
    latest: tuple[int, dt.datetime] | None = None
    registry: dict[int, tuple[int, bytes]] = field(default_factory=dict)  # seq -> (cp, hash)
    admin: dict[int, tuple[int, bytes]] = field(default_factory=dict)
    heads: dict[int, tuple[int, bytes]] = field(default_factory=dict)  # cp -> (n, digest)
    findings: list[Finding] = field(default_factory=list)


def verify_chain(session: Session, signing_public: bytes) -> Coverage:
    """Check the checkpoints' own chain and every signature; note what each one covers."""
    cover = Coverage()
    prev, expected = GENESIS, 1
    for cp in session.execute(select(*_COLUMNS).order_by(Checkpoint.seq)
                              .execution_options(yield_per=500)):
        subject = f"checkpoint {cp.seq}"
        signed = message_of(cp)
        if cp.seq != expected:
            cover.findings.append(Finding(subject, f"expected checkpoint {expected}: "
                                                   "checkpoints were deleted"))
        elif bytes(cp.prev_hash) != prev:
            cover.findings.append(Finding(subject, "does not follow the checkpoint before"))
        if crypto.digest(signed) != bytes(cp.hash):
            cover.findings.append(Finding(subject, "altered (its hash does not match)"))
        if not crypto.verify_signature(signing_public, signed, bytes(cp.signature)):
            cover.findings.append(Finding(subject, "its signature does not verify with the "
                                                   "instance signing key"))
        cover.checkpoints += 1
        cover.latest = (cp.seq, cp.at)
        cover.registry[cp.registry_seq] = (cp.seq, bytes(cp.registry_hash))
        cover.admin[cp.admin_seq] = (cp.seq, bytes(cp.admin_hash))
        cover.heads[cp.seq] = (cp.heads, bytes(cp.heads_digest))
        prev, expected = bytes(cp.hash), cp.seq + 1
    return cover


def check_covered(session: Session, cover: Coverage) -> tuple[int, list[Finding]]:
    """Every head the checkpoints recorded, against what is in the database now: the
    registry's (also checking its chain: returns the entries checked), the administration
    log's, and the recorded case heads' digests."""
    findings: list[Finding] = []
    chain = registry.verify(session, set(cover.registry) - {0})
    if chain.broken:
        findings.append(Finding("registry", f"entry {chain.broken[0]}: {chain.broken[1]}"))
    for seq, (cp, hash_) in sorted(cover.registry.items()):
        if seq and chain.hashes.get(seq, hash_) != hash_:
            findings.append(Finding("registry", f"entry {seq} differs from checkpoint {cp}"))
        elif seq > chain.entries and not chain.broken:
            findings.append(Finding("registry", f"ends at entry {chain.entries}, but checkpoint "
                                                f"{cp} covered {seq}: case creations were "
                                                "deleted"))
    findings += _admin_faults(session, cover.admin)
    findings += _digest_faults(session, cover.heads)
    return chain.entries, findings


_ADMIN_AT = select(AdminEvent.seq, AdminEvent.hash).where(
    AdminEvent.seq.in_(bindparam("seqs", expanding=True)))


def _admin_faults(session: Session, wanted: dict[int, tuple[int, bytes]]) -> Iterator[Finding]:
    seqs = sorted(s for s in wanted if s)
    for start in range(0, len(seqs), 500):
        found = dict(session.execute(_ADMIN_AT, {"seqs": seqs[start:start + 500]})
                     .tuples().all())
        for seq in seqs[start:start + 500]:
            cp, hash_ = wanted[seq]
            if seq not in found:
                yield Finding("administration log", f"event {seq}, covered by checkpoint {cp}, "
                                                    "is gone: the log was cut")
            elif bytes(found[seq]) != hash_:
                yield Finding("administration log", f"event {seq} differs from checkpoint {cp}")


def _digest_faults(session: Session, wanted: dict[int, tuple[int, bytes]]) -> list[Finding]:
    """Recompute each checkpoint's digest over its recorded case heads (one checkpoint's
    leaves in memory at a time)."""
    rows = session.execute(select(CheckpointHead.checkpoint, CheckpointHead.concern_id,
                                  CheckpointHead.seq, CheckpointHead.hash)
                           .order_by(CheckpointHead.checkpoint)
                           .execution_options(yield_per=_BATCH))
    findings: list[Finding] = []
    seen: set[int] = set()
    current: int | None = None
    leaves: list[bytes] = []
    for cp, cid, seq, hash_ in rows:
        if cp != current:
            if current is not None:
                findings += _digest_fault(current, leaves, wanted)
            current, leaves = cp, []
            seen.add(cp)
        leaves.append(leaf(cid, seq, hash_))
    if current is not None:
        findings += _digest_fault(current, leaves, wanted)
    for cp in sorted(set(wanted) - seen):
        findings += _digest_fault(cp, [], wanted)
    return findings


def _digest_fault(cp: int, leaves: list[bytes], wanted: dict[int, tuple[int, bytes]]
                  ) -> list[Finding]:
    if cp not in wanted:
        return [Finding(f"checkpoint {cp}", "case heads are recorded for a checkpoint that "
                                            "is gone")]
    count, digest = wanted[cp]
    if len(leaves) != count or heads_digest(leaves) != digest:
        return [Finding(f"checkpoint {cp}", f"the case heads it recorded were altered "
                                            f"({len(leaves)} found, {count} signed)")]
    return []


# -- copying out and comparing --------------------------------------------------------------


def export(session: Session, after: int, limit: int) -> list[dict[str, Any]]:
    """Checkpoints after ``after``, oldest first, as a copy kept elsewhere stores them
    (``GET /api/v1/admin/checkpoints``, ``flask --app app audit checkpoints``)."""
    rows = session.execute(select(*_COLUMNS).where(Checkpoint.seq > after)
                           .order_by(Checkpoint.seq).limit(limit))
    return [{"seq": cp.seq, "at": cp.at.isoformat() + "Z", "prev": bytes(cp.prev_hash).hex(),
             "registry": {"seq": cp.registry_seq, "hash": bytes(cp.registry_hash).hex()},
             "admin": {"seq": cp.admin_seq, "hash": bytes(cp.admin_hash).hex()},
             "heads": {"count": cp.heads, "digest": bytes(cp.heads_digest).hex()},
             "hash": bytes(cp.hash).hex(),
             "signature": base64.b64encode(bytes(cp.signature)).decode()} for cp in rows]


def compare(session: Session, kept: Iterable[dict[str, Any]]) -> list[Finding]:
    """Checkpoints copied elsewhere (``export``'s entries) that this database no longer has
    as they were: a rollback (a restored backup, checkpoints deleted) shows here."""
    findings: list[Finding] = []
    local = dict(session.execute(select(Checkpoint.seq, Checkpoint.hash)).tuples().all())
    for entry in kept:
        seq, hash_ = int(entry["seq"]), str(entry["hash"])
        if seq not in local:
            findings.append(Finding(f"checkpoint {seq}", "in the copy kept elsewhere, gone "
                                                         "here: the database was rolled back"))
        elif bytes(local[seq]).hex() != hash_:
            findings.append(Finding(f"checkpoint {seq}", "differs from the copy kept elsewhere"))
    return findings
