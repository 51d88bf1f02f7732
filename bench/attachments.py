"""Attachment throughput and memory: a 25 MiB file up and down, next to raw AES-GCM.

    .venv/bin/python bench/attachments.py [--mib 25] [--repeat 3]

Runs in process through the Flask test client (WSGI, no network), against a
real SQLite file (WAL, synchronous=FULL) and the real crypto, so the figures
are the server's own work: the multipart body is built in memory beforehand
and fed as the request stream, and the download is consumed chunk by chunk.

- upload: parse the multipart body into the encrypted spool, read it back,
  seal 64 KiB chunks under the file key, insert them and commit.
- download: verify every chunk, then decrypt again while streaming.
- clean: the same upload of a 12-megapixel JPEG with metadata removal on
  (the one path that holds a whole file in memory).
- AES-GCM: ``crypto.seal_chunk`` / ``open_chunk`` over the same number of
  bytes in 64 KiB chunks, in the same run: the ceiling the paths above
  compare with (upload does about three AES passes, download two).
- SQLite alone: the same number of 64 KiB (+ tag) blob rows inserted into a
  fresh database with the app's settings (``db.make_engine``: WAL,
  synchronous=FULL, secure_delete), committed, then checkpointed into the
  database file, with no parsing, hashing or crypto: the ceiling that keeping
  files in the database sets for an upload.
- the kernel alone: the same bytes written in 64 KiB writes to a new file and
  fsynced, nothing else: what the machine itself charges for file data (a
  growing SQLite database pays it for the WAL and again for the checkpoint).

"Per CPU-second" divides the bytes by the CPU time the whole process used
(every thread, user and system), counted over the call and a pause after it in
which the background WAL checkpoint copies the call's writes into the database
file: the throughput one fully used core would give, without the time spent
waiting for fsync.

Peak memory is measured in a separate, traced run of each path: tracemalloc
(Python allocations, which include every plaintext and ciphertext buffer) and
the growth of the process's peak RSS over the call (Linux VmHWM, reset before
each call). Timed runs are untraced.
Figures are for comparison over time; nothing here gates CI.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import statistics
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from flask import Flask  # noqa: E402
from flask.testing import FlaskClient  # noqa: E402

from tests.support import services  # noqa: E402
from whistle import create_app, crypto, keys, settings_of  # noqa: E402
from whistle.cases.spool import CHUNK_SIZE  # noqa: E402
from whistle.people import accounts  # noqa: E402
from whistle.store import db, migrate  # noqa: E402

MIB = 1024 * 1024
SETTLE_SECONDS = 3 * db.CHECKPOINT_SECONDS  # the checkpoint thread's turn comes in it
PASSWORD = "benchmark password, long enough"


def build(tmp: Path, smtp: services.SmtpServer) -> Flask:
    keys.create_missing(str(tmp / "keys"), str(tmp / "recovery.txt"))
    app = create_app({
        "DATABASE_URL": f"sqlite:///{tmp / 'bench.db'}", "KEYS_DIR": str(tmp / "keys"),
        "MAIL_SERVER": smtp.host, "MAIL_PORT": smtp.port,
        # Reviewer enrolment only; attachment work does not touch Argon2id.
        "ARGON2_MEMORY_KIB": 1024, "ARGON2_ITERATIONS": 1,
        # As under gunicorn (gunicorn.conf.py): checkpoints in a background thread.
        "SQLITE_CHECKPOINT_THREAD": os.environ.get("WHISTLE_SQLITE_CHECKPOINT_THREAD", "true"),
    })
    migrate.upgrade(db.engine_for(app))
    return app


def multipart(concern: dict[str, Any], filename: str, content: bytes) -> tuple[bytes, str]:
    boundary = "----bench" + os.urandom(8).hex()
    body = b"".join([
        f"--{boundary}\r\nContent-Disposition: form-data; name=\"concern\"\r\n\r\n".encode(),
        json.dumps(concern).encode(), b"\r\n",
        f"--{boundary}\r\nContent-Disposition: form-data; name=\"attachment\"; "
        f"filename=\"{filename}\"\r\nContent-Type: application/octet-stream\r\n\r\n".encode(),
        content, f"\r\n--{boundary}--\r\n".encode(),
    ])
    return body, f"multipart/form-data; boundary={boundary}"


def upload(client: FlaskClient, body: bytes, ctype: str) -> str:
    response = client.post("/api/v1/concerns", input_stream=io.BytesIO(body),
                           content_type=ctype, headers={"Content-Length": str(len(body))})
    assert response.status_code == 201, response.get_data(as_text=True)
    ref: str = response.get_json()["case_ref"]
    return ref


def download(client: FlaskClient, headers: dict[str, str], ref: str) -> int:
    att = client.get(f"/api/v1/cases/{ref}", headers=headers).get_json()["attachments"][0]
    response = client.get(f"/api/v1/cases/{ref}/attachments/{att['id']}", headers=headers,
                          buffered=False)
    assert response.status_code == 200, response.status_code
    received = sum(len(piece) for piece in response.response)
    response.close()
    return received


def _cpu_seconds() -> float:
    """CPU time of the whole process (every thread, user and system), to the
    nanosecond (``os.times`` counts in 10 ms ticks)."""
    return time.process_time()


def timed(fn: Callable[[], Any], repeat: int) -> tuple[float, float, Any]:
    """(median wall seconds, median CPU seconds, last result) of ``repeat`` calls.

    CPU is counted over the call plus a short pause after it, so the background WAL
    checkpoint that copies the call's writes into the database file is included."""
    times, cpu, result = [], [], None
    for _ in range(repeat):
        start, cpu_start = time.perf_counter(), _cpu_seconds()
        result = fn()
        times.append(time.perf_counter() - start)
        time.sleep(SETTLE_SECONDS)
        cpu.append(_cpu_seconds() - cpu_start)
    return statistics.median(times), statistics.median(cpu), result


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def traced(fn: Callable[[], Any]) -> tuple[int, int]:
    """(tracemalloc peak bytes, peak RSS growth bytes) of one call.

    RSS: the kernel's high-water mark (VmHWM) is reset first through
    /proc/self/clear_refs, so the growth is this call's own; it includes what
    tracemalloc cannot see (Pillow's pixel buffers, SQLite's page cache).
    """
    Path("/proc/self/clear_refs").write_text("5")
    rss_before = _status_kib("VmRSS")
    tracemalloc.start()
    try:
        fn()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak, max(0, _status_kib("VmHWM") - rss_before) * 1024


def aes_gcm(size: int, repeat: int) -> tuple[float, float]:
    key = crypto.random_key()
    chunk = os.urandom(CHUNK_SIZE)
    count = size // CHUNK_SIZE

    def seal() -> list[bytes]:
        return [crypto.seal_chunk(key, i, i == count - 1, chunk, "bench") for i in range(count)]

    seal_time, _cpu, blobs = timed(seal, repeat)

    def open_all() -> None:
        for i, blob in enumerate(blobs):
            crypto.open_chunk(key, i, i == count - 1, blob, "bench")

    open_time, _cpu, _ = timed(open_all, repeat)
    return size / MIB / seal_time, size / MIB / open_time


def kernel_alone(tmp: Path, size: int, repeat: int) -> tuple[float, float]:
    """(MiB/s, MiB per CPU-second) of writing ``size`` bytes in 64 KiB writes to a new file
    and fsyncing it: what the kernel charges for file data, which a growing database pays
    once for its WAL and again for the checkpoint."""
    data = os.urandom(CHUNK_SIZE)
    count = size // CHUNK_SIZE

    def write() -> None:
        path = tmp / f"kernel-{os.urandom(8).hex()}"
        with open(path, "wb", buffering=0) as f:
            for _ in range(count):
                f.write(data)
            os.fsync(f.fileno())
        path.unlink()

    wall, cpu, _ = timed(write, repeat)
    return size / MIB / wall, size / MIB / cpu


def sqlite_alone(tmp: Path, size: int, repeat: int) -> tuple[float, float]:
    """(MiB/s, MiB per CPU-second) of storing ``size`` bytes as sealed-chunk-sized blob
    rows in a database with the app's settings, commit and checkpoint included."""
    engine = db.make_engine(f"sqlite:///{tmp / 'alone.db'}")
    blob = os.urandom(CHUNK_SIZE + 16)
    count = size // CHUNK_SIZE
    with engine.connect() as conn:
        raw = conn.connection.driver_connection
        raw.execute("CREATE TABLE chunks (attachment_id TEXT, idx INTEGER, blob BLOB, "
                    "PRIMARY KEY (attachment_id, idx))")

        def store() -> None:
            name = os.urandom(16).hex()
            raw.execute("BEGIN IMMEDIATE")
            for first in range(0, count, 16):
                raw.executemany("INSERT INTO chunks VALUES (?, ?, ?)",
                                [(name, i, blob) for i in range(first, min(first + 16, count))])
            raw.execute("COMMIT")
            raw.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()

        wall, cpu, _ = timed(store, repeat)
    engine.dispose()
    return size / MIB / wall, size / MIB / cpu


def noisy_jpeg(width: int, height: int) -> bytes:
    from PIL import Image

    image = Image.frombytes("RGB", (width, height), os.urandom(width * height * 3))
    exif = Image.Exif()
    exif[0x0110] = "BenchCam"
    out = io.BytesIO()
    image.save(out, "JPEG", quality=90, exif=exif.tobytes())
    return out.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=25, help="file size in MiB (default 25)")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per figure")
    args = parser.parse_args()
    size = args.mib * MIB
    content = os.urandom(size)
    with tempfile.TemporaryDirectory() as tmpdir, services.smtp_server() as smtp:
        tmp = Path(tmpdir)
        app = build(tmp, smtp)
        with db.new_session(app) as s:
            for n in range(2):
                r = accounts.enrol(s, settings_of(app), f"Bench {n}", f"bench{n}@example.org",
                                   PASSWORD, None, False, False, False, True,
                                   keys=app.extensions["whistle_keys"])
                email = r.email
        client = app.test_client()
        token = client.post("/api/v1/auth/login",
                            json={"email": email, "password": PASSWORD}).get_json()
        headers = {"Authorization": "Bearer " + token["access_token"]}
        body, ctype = multipart({"category": "conduct", "details": "bench",
                                 "clean_metadata": False}, "evidence.bin", content)
        up_time, up_cpu, ref = timed(lambda: upload(client, body, ctype), args.repeat)
        down_time, down_cpu, got = timed(lambda: download(client, headers, ref), args.repeat)
        assert got == size
        up_mem = traced(lambda: upload(client, body, ctype))
        down_mem = traced(lambda: download(client, headers, ref))
        photo = noisy_jpeg(4000, 3000)
        photo_body, photo_ctype = multipart({"category": "conduct", "details": "bench"},
                                            "photo.jpg", photo)
        clean_time, clean_cpu, _ = timed(lambda: upload(client, photo_body, photo_ctype), 1)
        clean_mem = traced(lambda: upload(client, photo_body, photo_ctype))
        seal_rate, open_rate = aes_gcm(size, args.repeat)
        alone_rate, alone_cpu = sqlite_alone(tmp, size, args.repeat)
        kernel_rate, kernel_cpu = kernel_alone(tmp, size, args.repeat)
        db_size = sum(p.stat().st_size for p in tmp.glob("bench.db*"))

    rows = [
        ("upload", size / MIB / up_time, size / MIB / up_cpu, up_mem),
        ("download", size / MIB / down_time, size / MIB / down_cpu, down_mem),
        (f"clean 12 MP JPEG ({len(photo) / MIB:.1f} MiB)", len(photo) / MIB / clean_time,
         len(photo) / MIB / clean_cpu, clean_mem),
    ]
    print(f"Whistle attachments: {args.mib} MiB file, median of {args.repeat}, "
          f"{platform.processor() or platform.machine()}, Python {platform.python_version()}")
    print(f"{'path':34} {'throughput':>14} {'per CPU-second':>16} {'peak (tracemalloc)':>20} "
          f"{'peak RSS growth':>16}")
    for name, rate, per_cpu, (peak, rss) in rows:
        print(f"{name:34} {rate:8.1f} MiB/s {per_cpu:10.1f} MiB/s {peak / MIB:17.1f} MiB "
              f"{rss / MIB:13.1f} MiB")
    print(f"{'AES-256-GCM seal_chunk (64 KiB)':34} {seal_rate:8.1f} MiB/s")
    print(f"{'AES-256-GCM open_chunk (64 KiB)':34} {open_rate:8.1f} MiB/s")
    print(f"{'SQLite alone: store the same bytes':34} {alone_rate:8.1f} MiB/s "
          f"{alone_cpu:10.1f} MiB/s   (commit and checkpoint in the call)")
    print(f"{'the kernel alone: a new file, fsync':34} {kernel_rate:8.1f} MiB/s "
          f"{kernel_cpu:10.1f} MiB/s   (SQLite writes the bytes twice: WAL, then checkpoint)")
    print(f"upload at {size / MIB / up_cpu / alone_cpu:.0%} of SQLite alone per CPU-second; "
          f"upload at {size / MIB / up_time / seal_rate:.0%} and download at "
          f"{size / MIB / down_time / open_rate:.0%} of raw AES-GCM; "
          f"database after {2 + args.repeat} uploads: {db_size / MIB:.0f} MiB")


if __name__ == "__main__":
    main()
