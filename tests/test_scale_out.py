"""Scale-out: two Whistle instances on loopback share one PostgreSQL database and one Redis.

Each instance is a real gunicorn (2 workers, deploy/gunicorn.conf.py) in its
own process group, configured only through ``WHISTLE_*`` variables, with the
key material in one shared KEYS_DIR made by ``flask --app app init``. Nothing
that matters may live in process memory: cases, reviewer sessions and the
failure counters behind the rate limits must be the same whichever instance
answers. In CI (CI=true) a missing PostgreSQL or Redis fails; elsewhere the
tests skip.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, func, select

from tests.support import services
from whistle.store.models import AuditEvent, CaseRegistry, Concern

IN_CI = os.environ.get("CI", "").lower() == "true"
ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
PASSWORD = "correct horse battery staple"
STATUS_LIMIT = 5
LOGIN_LIMIT = 3


def http(method: str, url: str, body: Any = None, bearer: str | None = None
         ) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    if bearer:
        req.add_header("Authorization", "Bearer " + bearer)
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:  # noqa: S310 - loopback only
            raw = resp.read()
            return resp.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        try:
            return exc.code, json.loads(raw)
        except ValueError:
            return exc.code, raw.decode(errors="replace")


class Instance:
    """One gunicorn serving app:app on its own loopback port."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.port = services.free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._log = open(log, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [str(BIN / "gunicorn"), "-c", str(ROOT / "deploy" / "gunicorn.conf.py"),
             "--bind", f"127.0.0.1:{self.port}", "--workers", "2", "--chdir", str(ROOT),
             "app:app"],
            env=env, stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        self.log = log
        deadline = time.monotonic() + 60
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gunicorn exited:\n{log.read_text()[-3000:]}")
            with contextlib.suppress(OSError):
                if http("GET", self.url + "/healthz")[0] == 200:
                    return
            if time.monotonic() > deadline:
                raise RuntimeError(f"gunicorn did not answer:\n{log.read_text()[-3000:]}")
            time.sleep(0.1)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self._log.close()


@dataclass
class Cluster:
    a: Instance
    b: Instance
    database_url: str
    reviewers: list[dict[str, str]]

    def login(self, instance: Instance, reviewer: dict[str, str]) -> str:
        status, body = http("POST", instance.url + "/api/v1/auth/login",
                            {"email": reviewer["email"], "password": PASSWORD})
        assert status == 200, body
        token: str = body["access_token"]
        return token


def _flask(env: dict[str, str], *args: str, stdin: str | None = None) -> str:
    proc = subprocess.run([str(BIN / "flask"), "--app", "app", *args], cwd=ROOT, env=env,
                          input=stdin, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, f"flask {' '.join(args)} failed:\n{proc.stdout}{proc.stderr}"
    return proc.stdout


# Under pytest-xdist the tests of this file run in one worker, so the servers of the
# module-scoped fixture below start once.
pytestmark = pytest.mark.xdist_group("test_scale_out")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    tmp = tmp_path_factory.mktemp("scale-out")
    with contextlib.ExitStack() as stack:
        try:
            pg = stack.enter_context(services.postgres_server())
            redis = stack.enter_context(services.redis_server())
        except services.ComponentMissing as exc:
            if IN_CI:
                pytest.fail(f"scale-out needs PostgreSQL and Redis in CI: {exc}")
            pytest.skip(f"PostgreSQL or Redis not available: {exc}")
        url = pg.create_database("whistle_scale_out")
        env = {k: v for k, v in os.environ.items() if not k.startswith("WHISTLE_")}
        env.update({
            "WHISTLE_DATABASE_URL": url,
            "WHISTLE_KEYS_DIR": str(tmp / "keys"),
            "WHISTLE_ARGON2_MEMORY_KIB": "1024",
            "WHISTLE_ARGON2_ITERATIONS": "1",
            "WHISTLE_RATELIMIT_STORAGE_URI": redis.url,
            "WHISTLE_STATUS_LIMIT": f"{STATUS_LIMIT} per minute",
            "WHISTLE_LOGIN_LIMIT": f"{LOGIN_LIMIT} per minute",
            # Notifications stay in the outbox: no mail is sent during a request.
            "WHISTLE_MAIL_SERVER": "127.0.0.1",
            "WHISTLE_MAIL_PORT": str(services.free_port()),
        })
        _flask(env, "init", "--recovery-out", str(tmp / "recovery-private.txt"))
        reviewers = []
        for name in ("Ada", "Bo", "Cy"):
            email = f"{name.lower()}@example.org"
            out = _flask(env, "reviewer", "add", "--name", name, "--email", email,
                         "--password-stdin", stdin=PASSWORD + "\n")
            reviewers.append({"id": out.strip().splitlines()[-1], "email": email})
        a = Instance(env, tmp / "a.log")
        stack.callback(a.stop)
        b = Instance(env, tmp / "b.log")
        stack.callback(b.stop)
        engine = create_engine(url)
        stack.callback(engine.dispose)
        yield Cluster(a, b, url, reviewers)


def submit(instance: Instance, details: str = "The supervisor falsified the logs.",
           **extra: Any) -> dict[str, Any]:
    status, body = http("POST", instance.url + "/api/v1/concerns",
                        {"category": "conduct", "details": details} | extra)
    assert status == 201, body
    result: dict[str, Any] = body
    return result


def test_concern_submitted_on_one_instance_is_read_by_its_reviewers_on_the_other(
        cluster: Cluster) -> None:
    # given a concern submitted through instance A
    receipt = submit(cluster.a, "Pupil records were changed after the inspection.")
    assert receipt["reviewer_count"] == 2

    # when every reviewer signs in on instance B and opens it
    answers = {}
    for reviewer in cluster.reviewers:
        bearer = cluster.login(cluster.b, reviewer)
        answers[reviewer["id"]] = http("GET", f"{cluster.b.url}/api/v1/cases/"
                                       f"{receipt['case_ref']}", bearer=bearer)

    # then exactly its two reviewers read the decrypted text; the third gets a 404
    readers = [rid for rid, (status, _) in answers.items() if status == 200]
    assert len(readers) == 2
    for rid in readers:
        assert answers[rid][1]["details"] == "Pupil records were changed after the inspection."
    assert sorted(status for status, _ in answers.values()) == [200, 200, 404]
    # and the reporter's token works on instance B as well
    status, body = http("POST", cluster.b.url + "/api/v1/status", {"token": receipt["token"]})
    assert status == 200 and body["case_ref"] == receipt["case_ref"]


def test_reviewer_session_started_on_one_instance_works_on_the_other(cluster: Cluster) -> None:
    # given a concern and a reviewer signed in on instance A
    receipt = submit(cluster.a)
    reviewer = next(r for r in cluster.reviewers
                    if http("GET", f"{cluster.a.url}/api/v1/cases/{receipt['case_ref']}",
                            bearer=cluster.login(cluster.a, r))[0] == 200)
    bearer = cluster.login(cluster.a, reviewer)

    # when the same bearer token is used on instance B
    status, listing = http("GET", cluster.b.url + "/api/v1/cases?per_page=100", bearer=bearer)
    opened, case = http("GET", f"{cluster.b.url}/api/v1/cases/{receipt['case_ref']}",
                        bearer=bearer)

    # then B knows the session and unlocks the reviewer's key from it
    assert status == 200
    assert receipt["case_ref"] in [c["case_ref"] for c in listing["cases"]]
    assert opened == 200 and case["details"] == "The supervisor falsified the logs."

    # and logging out on B ends the session on A too
    assert http("POST", cluster.b.url + "/api/v1/auth/logout", bearer=bearer)[0] == 204
    assert http("GET", cluster.a.url + "/api/v1/cases", bearer=bearer)[0] == 401


def test_token_lookup_misses_are_counted_once_across_both_instances(cluster: Cluster) -> None:
    # given a valid token, and unknown tokens sent alternately to A and B
    receipt = submit(cluster.b)
    wrong = {"token": "abandon " * 11 + "about"}
    answers = [http("POST", inst.url + "/api/v1/status", wrong)[0]
               for inst in [cluster.a, cluster.b] * STATUS_LIMIT]

    # then the shared counter allows exactly STATUS_LIMIT misses in all, whichever
    # instance and worker answered, and the next miss is refused with 429
    assert answers[:STATUS_LIMIT] == [404] * STATUS_LIMIT
    assert answers[STATUS_LIMIT:] == [429] * STATUS_LIMIT
    # while a real token still opens its case on either instance
    for inst in (cluster.a, cluster.b):
        status, body = http("POST", inst.url + "/api/v1/status", {"token": receipt["token"]})
        assert status == 200 and body["case_ref"] == receipt["case_ref"]


def test_login_failures_are_counted_once_across_both_instances(cluster: Cluster) -> None:
    # given wrong passwords for one account, sent alternately to A and B
    target = {"email": "ada@example.org", "password": "not the password at all"}
    answers = [http("POST", inst.url + "/api/v1/auth/login", target)[0]
               for inst in [cluster.a, cluster.b] * LOGIN_LIMIT]

    # then LOGIN_LIMIT failures in all are allowed and every later attempt is refused,
    # on both instances, even with the right password
    assert answers[:LOGIN_LIMIT] == [401] * LOGIN_LIMIT
    assert answers[LOGIN_LIMIT:] == [429] * LOGIN_LIMIT
    for inst in (cluster.a, cluster.b):
        status, _ = http("POST", inst.url + "/api/v1/auth/login",
                         {"email": "ada@example.org", "password": PASSWORD})
        assert status == 429


def test_concurrent_submit_burst_through_both_instances_loses_nothing(cluster: Cluster) -> None:
    engine = create_engine(cluster.database_url)
    try:
        with engine.connect() as conn:
            before = conn.execute(select(func.count()).select_from(Concern)).scalar_one()

        # when 40 concerns arrive at once, half through each instance
        def one(i: int) -> tuple[int, Any]:
            inst = cluster.a if i % 2 else cluster.b
            return http("POST", inst.url + "/api/v1/concerns",
                        {"category": "fraud", "details": f"burst concern number {i}"})

        with ThreadPoolExecutor(max_workers=20) as pool:
            answers = list(pool.map(one, range(40)))

        # then every one got its 201, and every 201 case exists exactly once
        assert [status for status, _ in answers] == [201] * 40, answers
        refs = [body["case_ref"] for _, body in answers]
        assert len(set(refs)) == 40
        assert len({body["token"] for _, body in answers}) == 40
        with engine.connect() as conn:
            stored = conn.execute(select(Concern.id, func.count()).where(Concern.id.in_(refs))
                                  .group_by(Concern.id)).all()
            after = conn.execute(select(func.count()).select_from(Concern)).scalar_one()
            received = conn.execute(
                select(AuditEvent.concern_id, func.count()).where(
                    AuditEvent.concern_id.in_(refs), AuditEvent.type == "received")
                .group_by(AuditEvent.concern_id)).all()
            registered = conn.execute(select(func.count()).select_from(CaseRegistry).where(
                CaseRegistry.concern_id.in_(refs))).scalar_one()
        assert sorted(ref for ref, _ in stored) == sorted(refs)
        # Each case was written once: one "received" event and one registry link each.
        assert sorted(tuple(r) for r in received) == sorted((ref, 1) for ref in refs)
        assert registered == 40
        assert after == before + 40
        # and each token opens its own case through the other instance
        for i, (_, body) in enumerate(answers):
            other = cluster.b if i % 2 else cluster.a
            status, view = http("POST", other.url + "/api/v1/status", {"token": body["token"]})
            assert status == 200 and view["case_ref"] == body["case_ref"]
    finally:
        engine.dispose()
