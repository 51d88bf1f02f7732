"""Fast bulk loader for the benchmark: real sealed cases, inserted with SQLAlchemy Core.

Every case gets what ``intake.submit`` would give it: its own random case and
thread keys, 2 KB of details sealed with AES-256-GCM (and an identity for a
quarter of them), both keys HPKE-wrapped together (ML-KEM-768 + X25519) for each of its
three reviewers and for the recovery key, the thread key wrapped for the
reporter key derived from its own token, the token's keyed hash, three
assignments and a real hash-chained audit trail. Cases older than a few
months have gone through the workflow to ``closed`` (with the events that
takes), newer ones are spread over the open statuses, as in an organisation
that has used Whistle for years.

What it skips compared with a real submission: routing (reviewer sets are
drawn at random, one reviewer gets ``heavy_share`` of all cases), the outbox
rows (one pending mail per reviewer absorbs the rest anyway), messages,
attachments and the deadline runs' events (an open case past its feedback
deadline is flagged overdue, reminded and escalated as the daily run leaves it,
about 3% of the cases). The crypto runs in a process pool; the main process
inserts.
"""

from __future__ import annotations

import datetime as dt
import json
import multiprocessing
import os
import random
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from mnemonic import Mnemonic
from sqlalchemy import Engine, insert, select, text

from whistle import crypto, tokens  # noqa: E402
from whistle.cases import audit, intake, registry, workflow  # noqa: E402
from whistle.cases import keys as casekeys  # noqa: E402
from whistle.keys import InstanceKeys  # noqa: E402
from whistle.store import counts  # noqa: E402
from whistle.store.models import (  # noqa: E402
    Assignment,
    AuditEvent,
    CaseRegistry,
    Concern,
    WrappedKey,
)

SPAN_DAYS = 5 * 365
OUTCOMES = ("substantiated", "partially_substantiated", "not_substantiated", "referred")
CATEGORIES = ("safeguarding", "conduct", "patient-safety", "fraud", "other")
UNITS = ("Children's services", "Education", "Health", "Adult social care")
_WORDS = ("the meeting on tuesday where the manager said that the records for the pupil "
          "were changed after the inspection and nobody was told why this happened again").split()


@dataclass
class Plan:
    """What the loader needs; plain data so it crosses into the worker processes."""

    keys: InstanceKeys
    reviewers: list[tuple[str, bytes]]  # (id, public key), reviewers[0] is the heavy one
    today: dt.date
    heavy_share: float = 0.30
    per_case: int = 3
    details_bytes: int = 2048


@dataclass
class Samples:
    """What the scenarios need from the loaded data (small random samples)."""

    tokens: list[str] = field(default_factory=list)
    heavy_cases: list[str] = field(default_factory=list)
    heavy_count: int = 0
    loaded: int = 0


def _details(rng: random.Random, size: int) -> bytes:
    out: list[str] = []
    n = 0
    while n <= size:
        w = rng.choice(_WORDS)
        out.append(w)
        n += len(w) + 1
    return " ".join(out).encode()[:size]


def _status_for(age: int, rng: random.Random) -> str:
    if age < 7:
        return "received"
    if age < 30:
        return "acknowledged"
    if age < 120:
        return "investigating"
    if age < 150:
        return rng.choice(("investigating", "closure_proposed"))
    return "closed"


_PATH = {
    "received": (),
    "acknowledged": ("acknowledged",),
    "investigating": ("acknowledged", "investigating"),
    "closure_proposed": ("acknowledged", "investigating", "closure_proposed"),
    "closed": ("acknowledged", "investigating", "closure_proposed", "closed"),
}


def _events(case_ref: str, created: dt.date, status: str, reviewer_ids: list[str],
            outcome: str) -> list[dict[str, Any]]:
    day = dt.datetime.combine(created, dt.time())
    steps: list[tuple[str, str, dt.datetime, dict[str, Any]]] = [
        ("received", "reporter", day, {"reviewers": len(reviewer_ids), "under_routed": False,
                                       "attachments": 0})]
    steps += [("assigned", "system", day, {"reviewer": rid}) for rid in reviewer_ids]
    at = day + dt.timedelta(hours=9, minutes=13)
    prev_status = "received"
    for n, step in enumerate(_PATH[status]):
        at = at + dt.timedelta(days=2 + 30 * (n >= 2), minutes=7)
        actor = reviewer_ids[1] if step == "closed" else reviewer_ids[0]
        data: dict[str, Any] = {"from": prev_status}
        if step in ("closure_proposed", "closed"):
            data["outcome"] = outcome
        if step == "closed":
            data["proposed_by"] = reviewer_ids[0]
        steps.append((step, actor, at, data))
        prev_status = step
    rows = []
    prev = audit.GENESIS
    for seq, (type_, actor, when, data) in enumerate(steps, start=1):
        ev = SimpleNamespace(concern_id=case_ref, seq=seq, at=when.replace(microsecond=0),
                             type=type_, actor=actor, data=json.dumps(data, sort_keys=True))
        digest = crypto.chain_hash(prev, audit._record(ev))  # noqa: SLF001 - same link format
        rows.append({"concern_id": case_ref, "seq": seq, "at": ev.at, "type": type_,
                     "actor": actor, "data": ev.data, "prev_hash": prev, "hash": digest})
        prev = digest
    return rows


def _make_batch(plan: Plan, seed: int, count: int) -> dict[str, Any]:
    """Seal ``count`` cases. Runs in a worker process."""
    rng = random.Random(seed)
    mnemonic = Mnemonic("english")
    heavy_id, heavy_pub = plan.reviewers[0]
    others = plan.reviewers[1:]
    rows: dict[str, list[dict[str, Any]]] = {"concerns": [], "assignments": [],
                                              "wrapped_keys": [], "audit_events": []}
    sample_tokens: list[str] = []
    heavy_cases: list[str] = []
    details = _details(rng, plan.details_bytes)
    for _ in range(count):
        case_ref = intake.new_case_ref()
        age = rng.randrange(SPAN_DAYS)
        created = plan.today - dt.timedelta(days=age)
        status = _status_for(age, rng)
        heavy = rng.random() < plan.heavy_share
        chosen = ([(heavy_id, heavy_pub)] if heavy else []) + rng.sample(
            others, plan.per_case - (1 if heavy else 0))
        rng.shuffle(chosen)
        ck = casekeys.CaseKeys.fresh()
        entropy = os.urandom(tokens.TOKEN_BYTES)
        outcome = rng.choice(OUTCOMES)
        acknowledged_on = created + dt.timedelta(days=2) if status != "received" else None
        feedback_by = acknowledged_on + dt.timedelta(days=90) if acknowledged_on else None
        # Flagged as the daily deadlines run leaves it: overdue and escalated once.
        owed = workflow.owed(status, created + dt.timedelta(days=7), feedback_by)
        overdue = owed is not None and plan.today > owed[1]
        identity = None
        if rng.random() < 0.25:
            identity = crypto.seal(ck.case, json.dumps(
                {"name": "A. Person", "role": "Teacher", "contact": "a.person@example.org"}
            ).encode(), casekeys.part(case_ref, "identity"))
        rows["concerns"].append({
            "id": case_ref, "category": rng.choice(CATEGORIES), "unit": rng.choice(UNITS),
            "about_senior": False, "status": status, "created": created,
            "acknowledge_by": created + dt.timedelta(days=7), "acknowledged_on": acknowledged_on,
            "feedback_by": feedback_by,
            "closed_on": created + dt.timedelta(days=140) if status == "closed" else None,
            "under_routed": False, "overdue": overdue, "escalated_ack": False,
            "escalated_feedback": overdue, "reminded_ack": False,
            "reminded_feedback": overdue,
            "details_ct": crypto.seal(ck.case, details, casekeys.part(case_ref, "details")),
            "identity_ct": identity,
            "outcome": outcome if status == "closed" else None,
            "proposed_outcome": outcome if status in ("closure_proposed", "closed") else None,
            "proposed_by": chosen[0][0] if status in ("closure_proposed", "closed") else None,
            "token_lookup": tokens.lookup_id(plan.keys.token_pepper, entropy),
            "token_last_used": None, "failed_lookups": 0, "idempotency": None,
        })
        # The app's own wrapping (whistle.cases.keys), as a submission does it.
        for rid, pub in chosen:
            rows["wrapped_keys"] += casekeys.wrapped_rows(case_ref, ck, "reviewer", rid, pub)
        rows["wrapped_keys"] += casekeys.wrapped_rows(case_ref, ck, "recovery", "org",
                                                      plan.keys.recovery_public)
        reporter = crypto.reporter_keypair(entropy, plan.keys.reporter_pepper)
        rows["wrapped_keys"] += casekeys.wrapped_rows(case_ref, ck, "reporter", "reporter",
                                                      reporter.public, thread_only=True)
        for rid, _pub in chosen:
            rows["assignments"].append({"concern_id": case_ref, "reviewer_id": rid,
                                        "status": status, "created": created,
                                        "overdue": overdue})
        rows["audit_events"] += _events(case_ref, created, status, [r for r, _ in chosen],
                                        outcome)
        if rng.random() < 0.2:
            sample_tokens.append(mnemonic.to_mnemonic(entropy))
        if heavy:
            heavy_cases.append(case_ref)
    return {"rows": rows, "tokens": sample_tokens, "heavy_cases": heavy_cases,
            "count": count}


def _batch_job(args: tuple[Plan, int, int]) -> dict[str, Any]:
    return _make_batch(*args)


def _worker_signals() -> None:
    """Pool workers end quietly when the pool terminates them (SIGTERM), whatever handler
    the parent installed (bench/run.py turns SIGTERM into KeyboardInterrupt)."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


_TABLES = (("concerns", Concern), ("assignments", Assignment), ("wrapped_keys", WrappedKey),
           ("audit_events", AuditEvent))


def load(engine: Engine, plan: Plan, count: int, samples: Samples, processes: int = 2,
         batch: int = 250, seed: int | None = None, progress: bool = True) -> Samples:
    """Add ``count`` sealed cases; update and return ``samples``."""
    seed = seed if seed is not None else random.SystemRandom().randrange(2**31)
    jobs: list[tuple[Plan, int, int]] = []
    left, n = count, 0
    while left > 0:
        size = min(batch, left)
        jobs.append((plan, seed + n, size))
        left -= size
        n += 1
    started = time.monotonic()
    done = 0
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(processes, initializer=_worker_signals) as pool:
        results: Iterator[dict[str, Any]] = pool.imap_unordered(_batch_job, jobs)
        for result in results:
            with engine.begin() as conn:
                for name, model in _TABLES:
                    conn.execute(insert(model.__table__), result["rows"][name])
                _register(conn, result["rows"]["concerns"])
            samples.tokens += result["tokens"]
            samples.heavy_cases += result["heavy_cases"]
            samples.heavy_count += len(result["heavy_cases"])
            samples.loaded += result["count"]
            done += result["count"]
            if progress and (done % 5000 < batch or done == count):
                rate = done / max(1e-9, time.monotonic() - started)
                print(f"  loaded {done}/{count} cases ({rate:.0f}/s)", flush=True)
    return samples


def _register(conn: Any, concerns: list[dict[str, Any]]) -> None:
    """The registry entries a submission writes (whistle.cases.registry), in load order."""
    last = conn.execute(select(CaseRegistry.seq, CaseRegistry.hash)
                        .order_by(CaseRegistry.seq.desc()).limit(1)).first()
    seq, prev = (last[0], bytes(last[1])) if last else (0, registry.GENESIS)
    rows = []
    for c in concerns:
        seq += 1
        digest = registry.link(prev, seq, c["id"], c["created"])
        rows.append({"seq": seq, "concern_id": c["id"], "created": c["created"],
                     "prev_hash": prev, "hash": digest})
        prev = digest
    conn.execute(insert(CaseRegistry), rows)


def settle(engine: Engine) -> None:
    """What an operator's restore would do after a bulk load: inbox counts (the Core
    inserts bypass the session events that keep them), statistics, checkpoint."""
    with engine.begin() as conn:
        counts.recount(conn)
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE"))
    else:
        raw = engine.raw_connection()  # outside any transaction
        try:
            raw.driver_connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            raw.close()
