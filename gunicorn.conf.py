"""Gunicorn settings, read automatically when gunicorn starts in this directory.

    gunicorn app:app                 # uses this file
    gunicorn -c deploy/gunicorn.conf.py app:app   # behind nginx: these settings plus its own

Flags on the command line win over this file, except that there is never an
access log: ``whistle.logs.GunicornLogger`` ignores ``--access-logfile``,
because an access line (address, time, path, User-Agent) for every reporter
request is exactly what Whistle promises not to keep. Gunicorn's error log is
filtered too: it names the client address of every malformed request.
"""

import os
import resource
from typing import Any

bind = os.environ.get("WHISTLE_BIND", "127.0.0.1:5000")
workers = int(os.environ.get("WHISTLE_WORKERS", os.environ.get("WEB_CONCURRENCY", "2")))
# Sync workers: Whistle's requests are CPU-bound (sealing, cleaning, Argon2id), and behind
# the shipped nginx configurations a worker never waits for a slow client: nginx takes the
# whole request body first (proxy_request_buffering on, kept in memory) and hands it over at
# loopback speed, so a reporter's upload over Tor costs an nginx connection, not a worker.
# The timeout then bounds only Whistle's own work on a request: reading a buffered body of
# MAX_CONTENT_LENGTH (110 MiB) from loopback, sealing it and cleaning its images and PDFs.
# Keep nginx's proxy_read_timeout above it (deploy/nginx/*.conf: 150 s). Straight to
# gunicorn with no buffering proxy, a slow client ties a sync worker up to this long.
worker_class = "sync"
timeout = int(os.environ.get("WHISTLE_GUNICORN_TIMEOUT", "120"))
graceful_timeout = 30

logger_class = "whistle.logs.GunicornLogger"
accesslog = None
disable_redirect_access_to_syslog = True
errorlog = "-"
loglevel = os.environ.get("WHISTLE_GUNICORN_LOGLEVEL", "info")

# Bounded request heads: a longer request line gets 400, too many or too long
# header fields 431, before Whistle sees the request.
limit_request_line = 8190
limit_request_fields = 100
limit_request_field_size = 8190

# X-Forwarded-Proto is trusted from the local reverse proxy only. Gunicorn
# never takes the client address from X-Forwarded-For, and Whistle never
# reads either.
forwarded_allow_ips = "127.0.0.1,::1"
secure_scheme_headers = {"X-FORWARDED-PROTO": "https"}

# SQLite: WAL checkpoints in a background thread of each worker instead of inside the
# request whose commit crossed the threshold (see whistle/store/db.py). No effect on PostgreSQL.
raw_env = ["WHISTLE_SQLITE_CHECKPOINT_THREAD="
           + os.environ.get("WHISTLE_SQLITE_CHECKPOINT_THREAD", "true")]

worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None
umask = 0o077


# A request refused before its body was read (413 for a declared Content-Length over a
# limit, 415, 400 ...) is drained after the answer went out, before the socket closes:
# closing with unread bytes in the receive buffer makes the kernel send a reset, and the
# client, still sending, never reads the 413. Bounded like nginx's lingering close: at most
# DRAIN_BYTES, DRAIN_SECONDS in all, and no read waits longer than DRAIN_IDLE_SECONDS.
DRAIN_BYTES = 128 * 1024 * 1024  # over MAX_CONTENT_LENGTH: any body Whistle accepts at all
DRAIN_SECONDS = 10.0
DRAIN_IDLE_SECONDS = 2.0


def post_request(worker: object, req: Any, environ: dict[str, Any], resp: object) -> None:
    body = getattr(req, "body", None)
    sock = environ.get("gunicorn.socket") if environ else None
    if body is None or sock is None:
        return
    import time

    deadline = time.monotonic() + DRAIN_SECONDS
    drained = 0
    try:
        sock.settimeout(DRAIN_IDLE_SECONDS)
        while drained < DRAIN_BYTES and time.monotonic() < deadline:
            chunk = body.read(min(1024 * 1024, DRAIN_BYTES - drained))
            if not chunk:
                break
            drained += len(chunk)
    except Exception:  # noqa: BLE001, S110 - a timed-out, reset or malformed rest ends the drain
        pass


def on_starting(server: object) -> None:
    # No core dumps: a crashed worker's memory holds plaintext of the request it served.
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
