"""Real components for tests: PostgreSQL, SMTP, Redis and Chromium.

Each helper is a context manager that starts the real program on 127.0.0.1 with a
free port, yields a small handle and stops and removes everything on exit. No
mocks. A helper whose program is not installed raises ComponentMissing (a
RuntimeError); the caller decides whether that is a skip or a failure.
"""

from __future__ import annotations

import contextlib
import email
import email.policy
import functools
import glob
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from email.message import EmailMessage
from typing import Any, cast

__all__ = [
    "ComponentMissing",
    "PostgresServer",
    "RedisServer",
    "SmtpServer",
    "chromium",
    "free_port",
    "postgres_server",
    "redis_server",
    "smtp_server",
]

HOST = "127.0.0.1"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
]


class ComponentMissing(RuntimeError):
    """A program a helper needs is not installed (see scripts/setup)."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def _wait_port(port: int, timeout: float, proc: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before port {port} opened")
        try:
            with socket.create_connection((HOST, port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"nothing listening on {HOST}:{port} after {timeout}s") from None
            time.sleep(0.05)


# --------------------------------------------------------------------- PostgreSQL


def _postgres_bindir() -> str:
    found = glob.glob("/usr/lib/postgresql/*/bin/initdb")
    if not found:
        raise ComponentMissing(
            "PostgreSQL binaries not found under /usr/lib/postgresql/*/bin "
            "(apt-get install postgresql, or run scripts/setup)"
        )

    def version(path: str) -> tuple[int, ...]:
        v = path.split("/")[4]
        return tuple(int(x) for x in re.findall(r"\d+", v))

    return os.path.dirname(max(found, key=version))


class PostgresServer:
    """Handle on a running throwaway PostgreSQL server."""

    user = "whistle"

    def __init__(self, host: str, port: int, password: str, socket_dir: str, data_dir: str):
        self.host = host
        self.port = port
        self.password = password
        self.socket_dir = socket_dir
        self.data_dir = data_dir

    def url_for(self, dbname: str) -> str:
        """SQLAlchemy URL for database `dbname` as the `whistle` role over TCP."""
        return (
            f"postgresql+psycopg://{self.user}:{self.password}@{self.host}:{self.port}/{dbname}"
        )

    def _admin(self) -> Any:
        import psycopg

        # Superuser over the private unix socket (trust auth, socket dir is 0700).
        return psycopg.connect(
            host=self.socket_dir, port=self.port, user="postgres", dbname="postgres",
            autocommit=True,
        )

    def create_database(self, name: str) -> str:
        """Create database `name` owned by `whistle`; return its URL."""
        from psycopg import sql

        with self._admin() as conn:
            conn.execute(
                sql.SQL("CREATE DATABASE {} OWNER {}").format(
                    sql.Identifier(name), sql.Identifier(self.user)
                )
            )
        return self.url_for(name)

    def drop_database(self, name: str) -> None:
        """Drop database `name`, closing any connections still open to it."""
        from psycopg import sql

        with self._admin() as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


@contextlib.contextmanager
def postgres_server(startup_timeout: float = 30.0) -> Iterator[PostgresServer]:
    """Start a private PostgreSQL cluster in a temp dir; yield a PostgresServer.

    Runs initdb and pg_ctl as the `postgres` user (via runuser) when we are root,
    as ourselves otherwise. Listens on 127.0.0.1:<free port>, unix socket in the
    temp dir, fsync on. A login role `whistle` with a random password and
    CREATEDB is created. Everything is stopped and deleted on exit.
    """
    bindir = _postgres_bindir()
    as_root = os.geteuid() == 0
    if as_root and shutil.which("runuser") is None:
        raise ComponentMissing("runuser not found (util-linux)")
    prefix = ["runuser", "-u", "postgres", "--"] if as_root else []

    tmp = tempfile.mkdtemp(prefix="whistle-pg-")
    data = os.path.join(tmp, "data")
    log = os.path.join(tmp, "server.log")
    started = False

    def run(*cmd: str) -> None:
        proc = subprocess.run(
            [*prefix, *cmd], cwd=tmp, capture_output=True, text=True, check=False
        )
        if proc.returncode != 0:
            extra = ""
            if os.path.exists(log):
                with open(log, errors="replace") as f:
                    extra = f.read()[-2000:]
            raise RuntimeError(
                f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout}{proc.stderr}{extra}"
            )

    try:
        if as_root:
            pw = pwd.getpwnam("postgres")
            os.chown(tmp, pw.pw_uid, pw.pw_gid)
        os.chmod(tmp, 0o700)
        run(
            f"{bindir}/initdb", "-D", data, "-U", "postgres", "-E", "UTF8", "--no-locale",
            "--auth-local=trust", "--auth-host=scram-sha-256",
        )
        port = 0
        for attempt in range(5):
            port = free_port()
            conf = (
                f"\nlisten_addresses = '{HOST}'\nport = {port}\n"
                f"unix_socket_directories = '{tmp}'\nfsync = on\n"
            )
            with open(os.path.join(data, "postgresql.auto.conf"), "w") as f:
                f.write(conf)
            try:
                run(
                    f"{bindir}/pg_ctl", "start", "-D", data, "-l", log, "-w",
                    "-t", str(int(startup_timeout)),
                )
                started = True
                break
            except RuntimeError:
                if attempt == 4:
                    raise
        password = secrets.token_hex(16)
        server = PostgresServer(HOST, port, password, tmp, data)
        from psycopg import sql

        with server._admin() as conn:
            conn.execute(
                sql.SQL("CREATE ROLE {} LOGIN CREATEDB PASSWORD {}").format(
                    sql.Identifier(server.user), sql.Literal(password)
                )
            )
        yield server
    finally:
        if started:
            try:
                run(f"{bindir}/pg_ctl", "stop", "-D", data, "-m", "fast", "-w", "-t", "30")
            except RuntimeError:
                pidfile = os.path.join(data, "postmaster.pid")
                with contextlib.suppress(OSError, ValueError, IndexError):
                    with open(pidfile) as f:
                        os.kill(int(f.readline()), signal.SIGQUIT)
                    time.sleep(1)
        shutil.rmtree(tmp, ignore_errors=True)


# --------------------------------------------------------------------------- SMTP


class SmtpServer:
    """aiosmtpd on 127.0.0.1; collects every message it receives."""

    def __init__(self, host: str = HOST, port: int | None = None):
        self.host = host
        self.port = port or free_port()
        self.messages: list[EmailMessage] = []
        self.envelopes: list[tuple[str, list[str]]] = []  # (mail_from, rcpt_tos)
        self._cond = threading.Condition()
        self._controller: Any = None

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        raw = envelope.original_content or envelope.content
        if isinstance(raw, str):
            raw = raw.encode("utf-8", "surrogateescape")
        msg = cast(EmailMessage, email.message_from_bytes(raw, policy=email.policy.default))
        with self._cond:
            self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
            self.messages.append(msg)
            self._cond.notify_all()
        return "250 Message accepted for delivery"

    def start(self) -> None:
        """Start (or restart after stop()) listening on the same port."""
        if self._controller is not None:
            return
        from aiosmtpd.controller import Controller

        deadline = time.monotonic() + 5
        while True:
            controller = Controller(self, hostname=self.host, port=self.port)
            try:
                controller.start()
                break
            except Exception:
                # The port may linger briefly after stop(); try again shortly.
                with contextlib.suppress(Exception):
                    controller.stop(no_assert=True)
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        self._controller = controller

    def stop(self) -> None:
        """Stop listening (connections are refused until start())."""
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    @property
    def running(self) -> bool:
        return self._controller is not None

    def wait_for(self, n: int, timeout: float = 5) -> list[EmailMessage]:
        """Wait until at least n messages arrived; return them all. TimeoutError if not."""
        with self._cond:
            if not self._cond.wait_for(lambda: len(self.messages) >= n, timeout):
                raise TimeoutError(
                    f"expected {n} message(s) within {timeout}s, got {len(self.messages)}"
                )
            return list(self.messages)

    def clear(self) -> None:
        with self._cond:
            self.messages.clear()
            self.envelopes.clear()


@contextlib.contextmanager
def smtp_server() -> Iterator[SmtpServer]:
    """Yield a running SmtpServer on 127.0.0.1:<free port>; stop it on exit."""
    try:
        import aiosmtpd.controller  # noqa: F401
    except ImportError as exc:
        raise ComponentMissing("aiosmtpd is not installed (pip install -r requirements.txt)") from exc
    server = SmtpServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


# -------------------------------------------------------------------------- Redis


class RedisServer:
    def __init__(self, host: str, port: int):
        self.host = host
        self.port = port
        self.url = f"redis://{host}:{port}/0"


@contextlib.contextmanager
def redis_server(startup_timeout: float = 10.0) -> Iterator[RedisServer]:
    """Start Debian's redis-server on 127.0.0.1:<free port>, no persistence."""
    binary = shutil.which("redis-server") or (
        "/usr/bin/redis-server" if os.path.exists("/usr/bin/redis-server") else None
    )
    if binary is None:
        raise ComponentMissing("redis-server not found (apt-get install redis-server)")
    tmp = tempfile.mkdtemp(prefix="whistle-redis-")
    port = free_port()
    proc = subprocess.Popen(
        [
            binary, "--bind", HOST, "--port", str(port), "--save", "", "--appendonly", "no",
            "--dir", tmp, "--daemonize", "no", "--protected-mode", "yes",
            "--logfile", os.path.join(tmp, "redis.log"),
        ],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    try:
        _wait_ping(port, startup_timeout, proc, tmp)
        yield RedisServer(HOST, port)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()
        shutil.rmtree(tmp, ignore_errors=True)


def _wait_ping(port: int, timeout: float, proc: subprocess.Popen[bytes], tmp: str) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            log = ""
            with contextlib.suppress(OSError), open(os.path.join(tmp, "redis.log")) as f:
                log = f.read()[-2000:]
            raise RuntimeError(f"redis-server exited with {proc.returncode}:\n{log}")
        try:
            with socket.create_connection((HOST, port), timeout=0.5) as s:
                s.sendall(b"PING\r\n")
                if s.recv(64).startswith(b"+PONG"):
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"redis-server did not answer PING on port {port}")
        time.sleep(0.05)


# ----------------------------------------------------------------------- Chromium


@contextlib.contextmanager
def chromium(**context_kwargs: Any) -> Iterator[Any]:
    """Launch /usr/bin/chromium through Playwright; yield the Browser.

    Keyword arguments are defaults for browser.new_context() and
    browser.new_page() (e.g. java_script_enabled=False, base_url=...);
    arguments given to those calls win.
    """
    if not os.path.exists(CHROMIUM):
        raise ComponentMissing(f"{CHROMIUM} not found (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        raise ComponentMissing("playwright is not installed (pip install -r requirements.txt)") from exc

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            if context_kwargs:
                for name in ("new_context", "new_page"):
                    method = getattr(browser, name)

                    @functools.wraps(method)
                    def with_defaults(*args: Any, _m: Any = method, **kwargs: Any) -> Any:
                        return _m(*args, **{**context_kwargs, **kwargs})

                    setattr(browser, name, with_defaults)
            yield browser
        finally:
            browser.close()
