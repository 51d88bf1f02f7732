"""Gunicorn settings for production behind nginx: ``gunicorn -c deploy/gunicorn.conf.py app:app``.

The settings every Whistle server needs (no access log even if asked for, a
filtered error log, bounded request heads, trusted proxy headers from
loopback only, no core dumps) live in ``../gunicorn.conf.py``; this file
takes them and changes only what differs behind a reverse proxy. Flags on the
command line still win (the benchmark and the scale-out test pass ``--bind``
and ``--workers``). See docs/deploy.md.
"""

import multiprocessing
import os
import runpy

_shared = runpy.run_path(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..",
                                      "gunicorn.conf.py"))
globals().update({k: v for k, v in _shared.items() if not k.startswith("_")})

# nginx (or the Tor daemon) talks to this address; never expose it directly.
bind = os.environ.get("WHISTLE_BIND", "127.0.0.1:8000")
# Sync workers, one per core: Whistle's requests are short and CPU-bound (crypto,
# JSON); Argon2id at login takes ARGON2_MEMORY_KIB per concurrent login on top.
workers = int(os.environ.get("WHISTLE_WORKERS", multiprocessing.cpu_count()))
loglevel = "warning"
