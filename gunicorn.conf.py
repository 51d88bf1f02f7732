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

bind = os.environ.get("WHISTLE_BIND", "127.0.0.1:5000")
workers = int(os.environ.get("WHISTLE_WORKERS", os.environ.get("WEB_CONCURRENCY", "2")))
worker_class = "sync"
timeout = 60
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


def on_starting(server: object) -> None:
    # No core dumps: a crashed worker's memory holds plaintext of the request it served.
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
