"""PDF cleaning under a memory and CPU ceiling: in a child process that the OS limits.

An image's cost is read from its header before anything is decoded (``MAX_IMAGE_PIXELS``,
``MAX_IMAGE_MEMORY_BYTES``, whistle.metadata). A PDF's is not: pikepdf (qpdf) holds the
whole object graph and decodes object streams to read the objects in them, so a 200 KB PDF
can ask for gigabytes (one long string in a compressed object stream) and a 3 MB one for
half a minute of CPU (hundreds of thousands of tiny objects). So a PDF is cleaned in a
child process (``python -m whistle.confined``) whose address space may grow by at most
``MAX_PDF_MEMORY_BYTES`` over what it holds once started (``RLIMIT_AS``), with at most
``PDF_CPU_SECONDS`` of CPU (``RLIMIT_CPU``) and ``PDF_WALL_SECONDS`` in all. Past any of
them the child fails or is killed and the PDF is refused (``CannotClean``): never stored as
cleaned; the reporter may untick cleaning to send it exactly as it is. The plaintext goes
through pipes only, never to a file, and the child gets no environment (no secrets).
"""

from __future__ import annotations

import os
import resource
import subprocess  # nosec B404 - our own interpreter and module, no shell, no user input
import sys

from whistle import metadata

PDF_CPU_SECONDS = 30
PDF_WALL_SECONDS = 60
TOO_COSTLY = "it is too large or too complex to clean safely"
_REFUSED = 3  # the child's exit status for a PDF metadata.clean refused (reason on stderr)
_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The reasons the child may name (anything else reads as TOO_COSTLY).
_REASONS = frozenset({"it is password-protected", "it could not be read as a PDF",
                      "it holds hidden parts that could not all be removed"})


def clean(data: bytes, detected: str | None, max_pixels: int, max_image_memory: int | None,
          max_pdf_memory: int | None) -> metadata.Cleaned:
    """``metadata.clean``, with PDFs cleaned in a confined child when ``max_pdf_memory``."""
    if detected != metadata.PDF or max_pdf_memory is None:
        return metadata.clean(data, detected, max_pixels, max_image_memory)
    return metadata.Cleaned(clean_pdf(data, max_pdf_memory), metadata.PDF_NOTE)


def clean_pdf(data: bytes, max_memory: int) -> bytes:
    """The cleaned PDF, or CannotClean (a refusal of metadata's, or over a ceiling)."""
    # -I: no environment variables, no user site, not the current directory on the path.
    command = [sys.executable, "-I", "-c",
               "import sys; sys.path.insert(0, sys.argv[1]); "
               "from whistle.confined import main; main(int(sys.argv[2]))",
               _ROOT, str(max_memory)]
    try:
        done = subprocess.run(  # nosec B603 - fixed argv, no shell
            command, input=data, capture_output=True, timeout=PDF_WALL_SECONDS, env={},
            check=False)
    except subprocess.TimeoutExpired as exc:
        raise metadata.CannotClean(TOO_COSTLY) from exc
    if done.returncode == 0:
        return done.stdout
    reason = done.stderr.decode("utf-8", "replace").strip()
    if done.returncode == _REFUSED and reason in _REASONS:
        raise metadata.CannotClean(reason)
    raise metadata.CannotClean(TOO_COSTLY)


def _status(field: str) -> int:
    """A size from /proc/self/status, in bytes."""
    with open("/proc/self/status", encoding="ascii") as status:
        return next(int(line.split()[1]) * 1024 for line in status
                    if line.startswith(field + ":"))


def _limit_self(max_memory: int) -> int:
    """This process may grow by ``max_memory`` bytes from here, and use PDF_CPU_SECONDS;
    returns the address-space limit."""
    limit = _status("VmSize") + max_memory
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    resource.setrlimit(resource.RLIMIT_CPU, (PDF_CPU_SECONDS, PDF_CPU_SECONDS))
    return limit


def main(max_memory: int) -> None:
    """The child: limits first, then the PDF from stdin, the cleaned PDF to stdout."""
    limit = _limit_self(max_memory)  # pikepdf and Pillow are loaded (whistle.metadata) first
    try:
        data = sys.stdin.buffer.read()
        out = metadata.clean(data, metadata.PDF).data
    except metadata.CannotClean as exc:
        # qpdf often reports memory it could not get as a PDF it could not read: when the
        # child came near its ceiling, say so (one large allocation refused at once still
        # reads as unreadable: either way the PDF is refused, nothing is stored).
        reason = TOO_COSTLY if _status("VmPeak") > limit - max_memory // 8 else exc.reason
        sys.stderr.write(reason)
        sys.exit(_REFUSED)
    except MemoryError:
        sys.exit(4)
    sys.stdout.buffer.write(out or b"")
