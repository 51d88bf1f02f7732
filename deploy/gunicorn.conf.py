"""Gunicorn settings for Whistle: ``gunicorn -c deploy/gunicorn.conf.py app:app``.

Flags on the command line win over this file (the benchmark and the
scale-out test pass ``--bind`` and ``--workers``). See docs/deploy.md.
"""

import multiprocessing
import os

# nginx (or the Tor daemon) talks to this address; never expose it directly.
bind = os.environ.get("WHISTLE_BIND", "127.0.0.1:8000")

# Sync workers: one request at a time each, no keep-alive (nginx keeps the
# client connections). Whistle's requests are short and CPU-bound (crypto,
# JSON), so one worker per core is the right start; Argon2id at login takes
# ARGON2_MEMORY_KIB of memory per concurrent login on top of each worker.
workers = int(os.environ.get("WHISTLE_WORKERS", multiprocessing.cpu_count()))
worker_class = "sync"
timeout = 60
graceful_timeout = 30

# No access log: reporter requests must leave no trace of who asked what.
# Errors go to stderr (the journal under systemd) and never carry content.
accesslog = None
logger_class = "whistle.logs.GunicornLogger"  # no access log even if asked; error log filtered
errorlog = "-"
loglevel = "warning"

# Bounded request heads; bodies are bounded by nginx and MAX_CONTENT_LENGTH.
limit_request_line = 8190
limit_request_fields = 100
limit_request_field_size = 8190

# Trust X-Forwarded-Proto only from the local reverse proxy, so that
# request.is_secure (Secure cookies, HSTS) follows the client's TLS.
forwarded_allow_ips = "127.0.0.1,::1"
secure_scheme_headers = {"X-FORWARDED-PROTO": "https"}

# Worker heartbeat files in memory, private files by default.
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None
umask = 0o077
