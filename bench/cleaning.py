"""Peak memory of one submission with hidden information removed (issue 20, item 6).

    .venv/bin/python bench/cleaning.py          # the rows alone
    (bench/run.py prints the same rows under its table)

Each kind of file is submitted once, with cleaning, through ``POST /api/v1/concerns`` (the
Flask test client, real SQLite, real crypto), in a fresh Python process of its own, so that
the kernel's high-water marks are that submission's alone:

- the worker: growth of the process's peak RSS (VmHWM, reset through
  /proc/self/clear_refs) over the submission; images are decoded here, under
  ``MAX_IMAGE_MEMORY_BYTES`` (estimated from the header before decoding);
- the PDF child (whistle.confined): its peak RSS (``getrusage(RUSAGE_CHILDREN)``);
  it may grow by ``MAX_PDF_MEMORY_BYTES`` over what it holds once started (RLIMIT_AS).

"Holds" says the growth stayed within the ceiling that applies (the worker's growth also
holds the file itself, its sealed copy and the request's own buffers, so images are
compared with the ceiling plus four times the file's size). The rows include the inputs
that cost the most before issue 20: a small PNG that decodes to hundreds of MiB, and a
small PDF whose object stream inflates past the PDF ceiling (refused, ``cannot_clean``).
"""

from __future__ import annotations

import io
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

MIB = 1024 * 1024
KINDS = ("jpeg-12mp", "png-36mp-small-file", "pdf-20mib", "pdf-inflating")


def _file(kind: str) -> tuple[str, bytes]:
    from PIL import Image

    if kind == "jpeg-12mp":
        from bench.attachments import noisy_jpeg

        return "photo.jpg", noisy_jpeg(4000, 3000)
    if kind == "png-36mp-small-file":  # one colour: a small file, 36 megapixels decoded
        out = io.BytesIO()
        Image.new("RGB", (6000, 6000), (200, 30, 30)).save(out, "PNG", optimize=True)
        return "flat.png", out.getvalue()
    import pikepdf

    pdf = pikepdf.new()
    if kind == "pdf-20mib":  # 40 pages, each with a 0.5 MiB image stream (incompressible)
        for _ in range(40):
            page = pdf.add_blank_page()
            image = pikepdf.Stream(pdf, os.urandom(MIB // 2))
            image.Type, image.Subtype = pikepdf.Name.XObject, pikepdf.Name.Image
            image.Width, image.Height = 512, 1024
            image.ColorSpace, image.BitsPerComponent = pikepdf.Name.DeviceGray, 8
            page.Resources = pikepdf.Dictionary(XObject=pikepdf.Dictionary(Im0=image))
        pdf.docinfo["/Author"] = "Bench Author"
    else:  # one 600 MiB string in a compressed object stream: under 1 MiB sent
        pdf.add_blank_page()
        pdf.Root.Big = pdf.make_indirect(pikepdf.String(b"a" * 600 * MIB))
    out = io.BytesIO()
    pdf.save(out, object_stream_mode=pikepdf.ObjectStreamMode.generate)
    return "document.pdf", out.getvalue()


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def one(kind: str) -> dict[str, Any]:
    """Submit one file of ``kind`` with cleaning; measured in this process."""
    from bench.attachments import build, multipart
    from tests.support import services
    from whistle import settings_of
    from whistle.people import accounts
    from whistle.store import db

    name, content = _file(kind)
    with tempfile.TemporaryDirectory() as tmpdir, services.smtp_server() as smtp:
        app = build(Path(tmpdir), smtp)
        cfg = settings_of(app)
        with db.new_session(app) as s:
            for n in range(2):
                accounts.enrol(s, cfg, f"Bench {n}", f"bench{n}@example.org",
                               "benchmark password, long enough", None, False, False, False,
                               True, keys=app.extensions["whistle_keys"])
        client = app.test_client()
        body, ctype = multipart({"category": "conduct", "details": "bench",
                                 "clean_metadata": True}, name, content)
        Path("/proc/self/clear_refs").write_text("5")
        before = _status_kib("VmRSS")
        started = time.perf_counter()
        response = client.post("/api/v1/concerns", input_stream=io.BytesIO(body),
                               content_type=ctype,
                               headers={"Content-Length": str(len(body))})
        seconds = time.perf_counter() - started
        growth = max(0, _status_kib("VmHWM") - before) * 1024
        child = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
        return {"kind": kind, "file_bytes": len(content), "status": response.status_code,
                "error": (response.get_json() or {}).get("error"), "seconds": seconds,
                "worker_growth": growth, "child_peak": child,
                "image_ceiling": cfg.max_image_memory_bytes,
                "pdf_ceiling": cfg.max_pdf_memory_bytes}


def measure() -> list[dict[str, Any]]:
    """Every kind, each in a fresh process."""
    out = []
    for kind in KINDS:
        done = subprocess.run([sys.executable, str(Path(__file__)), "--one", kind],
                              capture_output=True, text=True, check=False, cwd=ROOT)
        if done.returncode != 0:
            raise SystemExit(f"bench/cleaning.py --one {kind} failed:\n{done.stderr[-2000:]}")
        out.append(json.loads(done.stdout.strip().splitlines()[-1]))
    return out


def rows(found: list[dict[str, Any]]) -> list[str]:
    """The Markdown rows: one per kind, with the ceiling that applies and whether it held."""
    lines = ["| submission, cleaned | file | answer | seconds | worker peak RSS growth | "
             "PDF child peak RSS | ceiling | holds |",
             "|---|---:|---|---:|---:|---:|---|---|"]
    for r in found:
        pdf = r["kind"].startswith("pdf")
        if pdf:
            # The child may grow by the ceiling over its start (interpreter and libraries).
            ceiling = f"MAX_PDF_MEMORY_BYTES {r['pdf_ceiling'] / MIB:.0f} MiB over its start"
            held = r["child_peak"] <= r["pdf_ceiling"] + 256 * MIB and \
                r["worker_growth"] <= 4 * r["file_bytes"] + 64 * MIB
        else:
            ceiling = f"MAX_IMAGE_MEMORY_BYTES {r['image_ceiling'] / MIB:.0f} MiB"
            held = r["worker_growth"] <= r["image_ceiling"] + 4 * r["file_bytes"]
        answer = f"{r['status']}" + (f" {r['error']}" if r["error"] else "")
        child = f"{r['child_peak'] / MIB:.0f} MiB" if pdf else ""
        lines.append(f"| {r['kind']} | {r['file_bytes'] / MIB:.2f} MiB | {answer} | "
                     f"{r['seconds']:.2f} | {r['worker_growth'] / MIB:.0f} MiB | {child} | "
                     f"{ceiling} | {'yes' if held else 'NO'} |")
    return lines


def main(argv: list[str]) -> int:
    if argv[:1] == ["--one"]:
        print(json.dumps(one(argv[1])))
        return 0
    print("\n".join(rows(measure())))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
