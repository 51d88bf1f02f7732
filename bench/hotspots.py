"""Where a hot request spends its CPU: cProfile of each benchmark scenario, in process.

    .venv/bin/python bench/hotspots.py [--cases 2000] [--requests 2000] [--top 25]
        [--scenario status|inbox|open|submit|healthz]

Builds a real SQLite database with ``loader.py`` (sealed cases, real keys),
creates the app with the production configuration and calls its WSGI
callable directly (no test client, no HTTP), so the profile shows Whistle,
Flask and SQLAlchemy and nothing of the load generator. Prints microseconds
per request for each scenario and the top functions by own time. A tool for
finding the next thing to make faster; the figures that count are
``bench/run.py``'s.
"""

from __future__ import annotations

import argparse
import cProfile
import datetime as dt
import io
import json
import pstats
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import loader  # noqa: E402
from bench.run import ARGON2, PASSWORD, REVIEWERS, details_text, enrol  # noqa: E402
from whistle import create_app, keys  # noqa: E402
from whistle.store import db, migrate  # noqa: E402


def environ(method: str, path: str, body: bytes = b"", bearer: str = "") -> dict[str, Any]:
    path, _, query = path.partition("?")
    env: dict[str, Any] = {
        "REQUEST_METHOD": method, "PATH_INFO": path, "QUERY_STRING": query,
        "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "5000", "SERVER_PROTOCOL": "HTTP/1.1",
        "wsgi.url_scheme": "http", "wsgi.input": io.BytesIO(body), "wsgi.errors": sys.stderr,
        "wsgi.multithread": False, "wsgi.multiprocess": True, "wsgi.run_once": False,
        "HTTP_HOST": "127.0.0.1:5000", "REMOTE_ADDR": "127.0.0.1",
    }
    if body:
        env["CONTENT_TYPE"] = "application/json"
        env["CONTENT_LENGTH"] = str(len(body))
    if bearer:
        env["HTTP_AUTHORIZATION"] = f"Bearer {bearer}"
    return env


def call(app: Any, method: str, path: str, body: bytes = b"", bearer: str = "") -> tuple[str, bytes]:
    out: dict[str, str] = {}

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        out["status"] = status
        return lambda _data: None

    chunks = app(environ(method, path, body, bearer), start_response)
    try:
        data = b"".join(chunks)
    finally:
        if hasattr(chunks, "close"):
            chunks.close()
    return out["status"], data


@dataclass
class Fixture:
    """A real database of loaded cases and the production app over it, called in process."""

    work: Path
    app: Any  # the WSGI callable
    bearer: str  # a reviewer's session (the heavy reviewer's)
    tokens: list[bytes]  # status-check bodies
    cases: list[str]  # cases the bearer's reviewer may open
    submits: list[bytes]  # 2 KB concerns
    loaded: int


def build(cases: int, url: str | None = None, **config: Any) -> Fixture:
    """Load ``cases`` sealed cases into a new database (SQLite in ``fixture.work``, or the
    empty database at ``url``) and create the app on it (``config`` added to the production
    settings). Remove ``fixture.work`` when done."""
    work = Path(tempfile.mkdtemp(prefix="whistle-profile-"))
    keys_dir = str(work / "keys")
    keys.create_missing(keys_dir, str(work / "recovery-private.txt"))
    url = url or f"sqlite:///{work / 'whistle.db'}"
    engine = db.make_engine(url)
    migrate.upgrade(engine)
    reviewers = enrol(engine, keys.load(keys_dir))
    plan = loader.Plan(keys=keys.load(keys_dir),
                       reviewers=[(rid, pub) for rid, _e, pub in reviewers],
                       today=dt.date.today())
    samples = loader.load(engine, plan, cases, loader.Samples(), progress=False)
    loader.settle(engine)
    engine.dispose()

    app = create_app({"DATABASE_URL": url, "KEYS_DIR": keys_dir, "MIN_REVIEWERS": 3,
                      "SUBMISSION_LIMIT": "1000000 per minute",  # load on purpose
                      **ARGON2, **config}).wsgi_app
    status, body = call(app, "POST", "/api/v1/auth/login", json.dumps(
        {"email": reviewers[0][1], "password": PASSWORD}).encode())
    fixture = Fixture(
        work=work, app=app, bearer=json.loads(body)["access_token"],
        tokens=[json.dumps({"token": t}).encode() for t in samples.tokens[:200]],
        cases=samples.heavy_cases[:200],
        submits=[json.dumps({"category": "conduct", "unit": "Education",
                             "details": details_text(2048, f"p{i}")}).encode()
                 for i in range(16)],
        loaded=samples.loaded)
    for t in fixture.tokens:  # the day's first use writes; time the read path
        call(app, "POST", "/api/v1/status", t)
    for c in fixture.cases:
        call(app, "GET", f"/api/v1/cases/{c}", bearer=fixture.bearer)
    return fixture


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--cases", type=int, default=2000)
    p.add_argument("--requests", type=int, default=2000)
    p.add_argument("--top", type=int, default=25)
    p.add_argument("--scenario", action="append",
                   choices=("healthz", "status", "inbox", "open", "submit"))
    p.add_argument("--sort", default="tottime", choices=("tottime", "cumulative"))
    args = p.parse_args(argv)
    scenarios = args.scenario or ["healthz", "status", "inbox", "open", "submit"]

    fx = build(args.cases)
    app, bearer, tokens, cases, submits = fx.app, fx.bearer, fx.tokens, fx.cases, fx.submits
    try:
        makers: dict[str, Callable[[int], tuple[str, bytes]]] = {
            "healthz": lambda i: call(app, "GET", "/healthz"),
            "status": lambda i: call(app, "POST", "/api/v1/status", tokens[i % len(tokens)]),
            "inbox": lambda i: call(app, "GET", "/api/v1/cases?per_page=25", bearer=bearer),
            "open": lambda i: call(app, "GET", f"/api/v1/cases/{cases[i % len(cases)]}",
                                   bearer=bearer),
            "submit": lambda i: call(app, "POST", "/api/v1/concerns", submits[i % 16]),
        }
        for name in scenarios:
            make = makers[name]
            n = args.requests if name != "submit" else max(50, args.requests // 10)
            for i in range(50):
                got, _ = make(i)
                if not got.startswith("20"):
                    raise RuntimeError(f"{name}: {got}")
            started = time.process_time()
            for i in range(n):
                make(i)
            per = (time.process_time() - started) / n * 1e6
            prof = cProfile.Profile()
            prof.enable()
            for i in range(n):
                make(i)
            prof.disable()
            print(f"\n=== {name}: {per:.0f} us CPU per request (without the profiler), "
                  f"{REVIEWERS} reviewers, {fx.loaded} cases")
            pstats.Stats(prof).sort_stats(args.sort).print_stats(args.top)
    finally:
        shutil.rmtree(fx.work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
