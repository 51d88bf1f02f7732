"""The real server for tests: ``flask --app app init``, then ``gunicorn app:app`` as a subprocess.

An :class:`Instance` is one Whistle installation in a temporary directory (its
keys, its database URL, its environment); :func:`gunicorn_server` serves it on
a free loopback port and yields a :class:`Server` that can be killed with
SIGKILL (the whole process group: master and workers) and started again on
the same port. Everything the server prints goes to ``output.log`` in the
instance directory, across restarts, so tests can read every line it logged.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support.services import HOST, free_port

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
WEAK_KDF = {"WHISTLE_ARGON2_MEMORY_KIB": "1024", "WHISTLE_ARGON2_ITERATIONS": "1"}


@dataclass
class Instance:
    """One installation: a directory with keys, a database URL and the environment to run it."""

    directory: Path
    database_url: str
    env: dict[str, str] = field(default_factory=dict)

    @property
    def keys_dir(self) -> Path:
        return self.directory / "keys"

    @property
    def output(self) -> Path:
        return self.directory / "output.log"

    def environment(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        base = {k: v for k, v in os.environ.items()
                if not k.startswith(("WHISTLE_", "FLASK_", "GUNICORN_"))}
        return base | {
            "WHISTLE_DATABASE_URL": self.database_url,
            "WHISTLE_KEYS_DIR": str(self.keys_dir),
            "PYTHONUNBUFFERED": "1",
        } | WEAK_KDF | self.env | dict(extra or {})

    def flask(self, *args: str, stdin: str | None = None, env: Mapping[str, str] | None = None,
              timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """Run ``flask --app app ARGS`` for this instance and return what happened."""
        return subprocess.run(
            [str(BIN / "flask"), "--app", "app", *args], cwd=ROOT, env=self.environment(env),
            input=stdin, capture_output=True, text=True, timeout=timeout, check=False)

    def init(self) -> None:
        done = self.flask("init", "--recovery-out", str(self.directory / "recovery-private.txt"))
        if done.returncode != 0:
            raise RuntimeError(f"flask init failed ({done.returncode}):\n{done.stdout}{done.stderr}")

    def add_reviewer(self, name: str, email: str, password: str, *flags: str) -> str:
        """Enrol through the real CLI; returns the new reviewer's id."""
        done = self.flask("reviewer", "add", "--name", name, "--email", email, "--password-stdin",
                          *flags, stdin=password + "\n")
        if done.returncode != 0:
            raise RuntimeError(f"reviewer add failed:\n{done.stdout}{done.stderr}")
        return done.stdout.strip().splitlines()[-1]


def new_instance(directory: Path, database_url: str, env: Mapping[str, str] | None = None
                 ) -> Instance:
    """Create and ``init`` an instance (schema and key material) in ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    instance = Instance(directory, database_url, dict(env or {}))
    instance.init()
    return instance


class Server:
    """A gunicorn process group serving an instance on 127.0.0.1:port."""

    def __init__(self, instance: Instance, port: int, workers: int, args: tuple[str, ...],
                 env: Mapping[str, str] | None) -> None:
        self.instance = instance
        self.host = HOST
        self.port = port
        self.workers = workers
        self.args = args
        self.env = dict(env or {})
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 30) -> None:
        if self.proc is not None and self.proc.poll() is None:
            raise RuntimeError("already running")
        with open(self.instance.output, "ab") as out:
            out.write(f"--- start {self.starts}\n".encode())
            out.flush()
            self.proc = subprocess.Popen(
                [str(BIN / "gunicorn"), "--bind", f"{self.host}:{self.port}",
                 "--workers", str(self.workers), *self.args, "app:app"],
                cwd=ROOT, env=self.instance.environment(self.env), stdin=subprocess.DEVNULL,
                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        self.starts += 1
        self._wait_ready(timeout)

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"gunicorn exited with {self.proc.returncode}:\n"
                                   + self.output()[-3000:])
            with contextlib.suppress(OSError, http.client.HTTPException):
                if self.request("GET", "/healthz", timeout=2)[0] == 200:
                    return
            if time.monotonic() > deadline:
                raise RuntimeError("gunicorn did not answer /healthz:\n" + self.output()[-3000:])
            time.sleep(0.05)

    def kill(self) -> None:
        """SIGKILL the master and every worker at once: a crash, not a shutdown."""
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)
        self._reap_group()

    def stop(self) -> None:
        """A graceful stop (SIGTERM), as a supervisor would do."""
        if self.proc is None or self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.kill()
        self._reap_group()

    def _reap_group(self) -> None:
        # Workers share the master's process group; make sure none outlives it. (Killed
        # workers may linger as zombies until init reaps them: those hold nothing.)
        assert self.proc is not None
        deadline = time.monotonic() + 10
        while _live_members(self.proc.pid) and time.monotonic() < deadline:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            time.sleep(0.02)

    def output(self) -> str:
        return self.instance.output.read_text(errors="replace")

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: Mapping[str, str] | None = None, timeout: float = 30,
                source: str | None = None) -> tuple[int, dict[str, str], bytes]:
        """One HTTP request on a fresh connection (optionally from another loopback address)."""
        conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout,
                                          source_address=(source, 0) if source else None)
        try:
            conn.request(method, path, body=body, headers=dict(headers or {}))
            response = conn.getresponse()
            data = response.read()
            return response.status, {k.lower(): v for k, v in response.getheaders()}, data
        finally:
            conn.close()

    def json(self, method: str, path: str, payload: Any = None,
             headers: Mapping[str, str] | None = None, **kwargs: Any) -> tuple[int, Any]:
        body = None if payload is None else json.dumps(payload).encode()
        all_headers = {"Content-Type": "application/json"} | dict(headers or {})
        status, _h, data = self.request(method, path, body, all_headers, **kwargs)
        return status, json.loads(data) if data else None


def _live_members(pgid: int) -> list[int]:
    """Processes in group ``pgid`` that are not zombies."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) == pgid and fields[0] != "Z":
                found.append(int(stat.parent.name))
    return found


@contextlib.contextmanager
def gunicorn_server(instance: Instance, workers: int = 1, args: tuple[str, ...] = (),
                    env: Mapping[str, str] | None = None) -> Iterator[Server]:
    """Serve ``instance`` with gunicorn on a free loopback port; stop it (and its workers) after."""
    server = Server(instance, free_port(), workers, args, env)
    server.start()
    try:
        yield server
    finally:
        if server.proc is not None and server.proc.poll() is None:
            server.stop()


def raw_exchange(host: str, port: int, data: bytes, timeout: float = 10,
                 source: str | None = None) -> bytes:
    """Send raw bytes and return everything the server answers before it closes."""
    with socket.create_connection((host, port), timeout=timeout,
                                  source_address=(source, 0) if source else None) as sock:
        sock.sendall(data)
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_WR)
        chunks = []
        while True:
            try:
                chunk = sock.recv(65536)
            except OSError:
                break
            if not chunk:
                break
            chunks.append(chunk)
    return b"".join(chunks)
