"""Where a submission's CPU goes, phase by phase, and how much of it the promises fix.

    .venv/bin/python bench/phases.py [--cases 5000] [--warmup 1500] [--submissions 1500]
        [--healthz-us 465] [--synchronous NORMAL]

Builds the same real database and app as ``hotspots.py`` (production settings,
the WAL checkpoint thread on as under gunicorn), then calls
``POST /api/v1/concerns`` in process and adds up the CPU time of the request's
thread (``time.thread_time_ns``) spent in each phase. The phases are Whistle's
own functions, wrapped for the run only, with a timer around the call: nothing
is replaced, every submission is really sealed and committed.

The last lines add up the work the promises and the issue's scenario fix
(five hybrid KEM wraps, the reporter's key pair, a commit with fsync). A
submission costs at least that plus what ``/healthz`` costs, so with
``--healthz-us`` (``/healthz``'s CPU per request over HTTP, the "app CPU
ms/req" column of a ``bench/run.py`` run, in us) it prints the highest ratio to
``/healthz`` a submission could reach. The ``/healthz`` figure printed in the
table is in process, without gunicorn and the socket; this machine's figures
drift by a third within an hour, so compare phases within one run.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import shutil
import sqlite3
import struct
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import event  # noqa: E402
from sqlalchemy.orm import Session  # noqa: E402

from bench.hotspots import build, call  # noqa: E402
from whistle import crypto, notify  # noqa: E402
from whistle.cases import audit, intake  # noqa: E402
from whistle.cases import keys as casekeys  # noqa: E402
from whistle.store import counts, db  # noqa: E402

# (label, owner, attribute): each is looked up through its module (or class) when
# the submission calls it, so wrapping the attribute times every call.
PHASES: list[tuple[str, Any, str]] = [
    ("hybrid KEM wraps (reviewers, recovery key, reporter)", casekeys, "wrapped_rows"),
    ("the reporter's key pair from the token", crypto, "reporter_keypair"),
    ("the commit (COMMIT, fsync of the WAL)", Session, "commit"),
    ("validation, with the categories and units read", intake, "parse_submission"),
    ("reading the eligible reviewers", intake, "_active_reviewers"),
    ("the audit chain", audit, "record_many"),
    ("the outbox rows", notify, "queue_many"),
    ("the inbox counts", counts, "count_new"),
    ("taking the write lock", db, "take_write_lock"),
]
# What the promises (DESIGN.md) and the scenario fix, whatever the code around.
FIXED = {"hybrid KEM wraps (reviewers, recovery key, reporter)",
         "the reporter's key pair from the token", "the commit (COMMIT, fsync of the WAL)"}


@contextlib.contextmanager
def timed(spent: dict[str, int], calls: dict[str, int]) -> Iterator[None]:
    """Wrap each phase's function with a thread-CPU timer; put the originals back after."""
    originals = [(owner, name, getattr(owner, name)) for _label, owner, name in PHASES]

    def wrapper(label: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def run(*args: Any, **kwargs: Any) -> Any:
            started = time.thread_time_ns()
            try:
                return fn(*args, **kwargs)
            finally:
                spent[label] += time.thread_time_ns() - started
                calls[label] += 1
        return run

    try:
        for (label, owner, name), (_o, _n, fn) in zip(PHASES, originals):
            setattr(owner, name, wrapper(label, fn))
        yield
    finally:
        for owner, name, fn in originals:
            setattr(owner, name, fn)


def wal_pages(db_path: Path, submit: Callable[[int], None], n: int) -> tuple[Counter[str], int]:
    """The pages ``n`` submissions write to the WAL, by the table or index each belongs to
    (``dbstat``), and how many distinct pages. Before and after each submission a passive
    checkpoint reports how many frames the WAL holds; a new salt in the WAL's header means
    the commit started the WAL again from its first frame."""
    probe = sqlite3.connect(db_path, isolation_level=None)
    wal_path = Path(f"{db_path}-wal")

    def frames() -> int:
        while True:  # -1 while the checkpoint thread holds the checkpoint lock
            count = int(probe.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()[1])
            if count >= 0:
                return count
            time.sleep(0.001)

    def header() -> tuple[int, bytes]:
        with wal_path.open("rb") as f:
            head = f.read(32)
        return struct.unpack(">I", head[8:12])[0], head[16:24]  # page size, salts

    pages: list[int] = []
    try:
        for i in range(n):
            before, (_size, salts) = frames(), header()
            submit(i)
            after, (page_size, salts_after) = frames(), header()
            first = before if salts_after == salts else 0
            with wal_path.open("rb") as f:
                for frame in range(first, after):
                    f.seek(32 + frame * (24 + page_size))
                    pages.append(struct.unpack(">I", f.read(4))[0])
        owner = dict(probe.execute("SELECT pageno, name FROM dbstat"))
    finally:
        probe.close()
    return Counter(owner.get(page, "(freelist)") for page in pages), len(set(pages))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--cases", type=int, default=5000)
    p.add_argument("--warmup", type=int, default=1500)
    p.add_argument("--submissions", type=int, default=1500)
    p.add_argument("--synchronous", choices=("FULL", "NORMAL"), default="FULL",
                   help="SQLite's synchronous setting for the app (FULL is Whistle's; "
                        "NORMAL, no fsync at commit, shows what the fsync costs)")
    p.add_argument("--healthz-us", type=float, default=None,
                   help="/healthz's CPU per request over HTTP, from a bench/run.py run")
    args = p.parse_args(argv)

    fx = build(args.cases, SQLITE_CHECKPOINT_THREAD=True)
    try:
        app, submits = fx.app, fx.submits
        if args.synchronous != "FULL":
            engine = db.engine_for(app.__self__)  # fx.app is the Flask app's wsgi_app

            @event.listens_for(engine, "connect")
            def _synchronous(dbapi_conn: Any, _record: Any) -> None:
                dbapi_conn.execute(f"PRAGMA synchronous={args.synchronous}")

            engine.dispose()  # connections made from here on take the setting

        def submit(i: int) -> None:
            status, body = call(app, "POST", "/api/v1/concerns", submits[i % len(submits)])
            if not status.startswith("201"):
                raise RuntimeError(f"submission failed: {status} {body[:200]!r}")

        def healthz_cpu() -> float:
            started = time.thread_time_ns()
            for _ in range(args.submissions):
                call(app, "GET", "/healthz")
            return (time.thread_time_ns() - started) / args.submissions / 1e3

        healthz_before = healthz_cpu()
        for i in range(args.warmup):
            submit(i)
        spent = {label: 0 for label, _o, _n in PHASES}
        calls = {label: 0 for label, _o, _n in PHASES}
        n = args.submissions
        with timed(spent, calls):
            thread0, process0 = time.thread_time_ns(), time.process_time_ns()
            for i in range(n):
                submit(i)
            thread = time.thread_time_ns() - thread0
            process = time.process_time_ns() - process0
        healthz_after = healthz_cpu()
        k = 100
        by_tree, distinct = wal_pages(fx.work / "whistle.db", submit, k)

        per = {label: ns / n / 1e3 for label, ns in spent.items()}
        whole = thread / n / 1e3
        print(f"A submission, phase by phase: {n} submissions after {args.warmup} warm-up, "
              f"{fx.loaded} cases loaded, synchronous={args.synchronous}, CPU time of the "
              f"request's thread\n")
        print("| phase | us per submission | calls per submission |")
        print("|---|---:|---:|")
        print(f"| the whole request | {whole:,.0f} | |")
        for label, _o, _n in PHASES:
            print(f"| {label} | {per[label]:,.0f} | {calls[label] / n:g} |")
        rest = whole - sum(per.values())
        print(f"| everything else (Flask, routing, sealing the text, inserts, response) "
              f"| {rest:,.0f} | |")
        print(f"| the checkpoint thread (other threads of the process) "
              f"| {(process - thread) / n / 1e3:,.0f} | |")
        print(f"| `/healthz`, for comparison (before / after the submissions) "
              f"| {healthz_before:,.0f} / {healthz_after:,.0f} | |")
        print(f"\nWAL pages a submission writes ({k} submissions; a page written by several "
              f"commits counts each time): {sum(by_tree.values()) / k:.1f}, "
              f"{distinct / k:.1f} distinct\n")
        print("| table or index | pages per submission |")
        print("|---|---:|")
        for name, count in by_tree.most_common():
            print(f"| {name} | {count / k:.1f} |")
        fixed = sum(per[label] for label in FIXED)
        print(f"\nFixed by the promises and the scenario (wraps, key pair, commit): "
              f"{fixed:,.0f} us of {whole:,.0f} ({100 * fixed / whole:.0f}%).")
        if args.healthz_us:
            # A submission costs at least what /healthz costs (the HTTP round, Flask)
            # plus the fixed work, so its ratio to /healthz is at most this.
            bound = args.healthz_us / (args.healthz_us + fixed)
            print(f"With /healthz at {args.healthz_us:,.0f} us over HTTP, a submission doing "
                  f"nothing but the fixed work would reach a ratio of {bound:.2f} at most; "
                  f"at 0.20 the rest of the request, beyond what /healthz does too, would "
                  f"have {args.healthz_us / 0.20 - args.healthz_us - fixed:,.0f} us, and "
                  f"takes {whole - fixed - min(healthz_before, healthz_after):,.0f} us here "
                  f"(everything but the fixed work, less /healthz's own cost in process).")
    finally:
        shutil.rmtree(fx.work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
