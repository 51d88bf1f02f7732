"""Photos inside a PDF keep their own hidden information: a JPEG image (``/DCTDecode``) can
carry EXIF (camera, time, GPS position), XMP, IPTC and comments in its header segments,
whatever was removed from the PDF around it. whistle.metadata's PDF cleaning calls ``clean``
to drop those segments and ``left`` to check the saved file.

Only the header is rewritten: the segments before the scan (``SOS``) are copied except
APP1 to APP13, APP15 and COM; APP0 (JFIF) and APP14 (Adobe, which says how the colours are
coded) are kept, and the compressed picture is copied byte for byte, so nothing is decoded
and the picture is unchanged. A JPEG whose header cannot be read is refused (``ValueError``)
rather than stored as cleaned.
"""

from __future__ import annotations

import pikepdf

SOI, SOS, COM = 0xD8, 0xDA, 0xFE
_KEPT_APP = frozenset({0xE0, 0xEE})  # JFIF; Adobe (colour transform: needed to decode)


def _dropped(marker: int) -> bool:
    return (0xE0 <= marker <= 0xEF and marker not in _KEPT_APP) or marker == COM


def _segments(data: bytes) -> list[tuple[int, int, int]]:
    """(marker, start, end) of each header segment before the scan; ValueError if the
    header is not a well-formed JPEG one."""
    if data[:2] != bytes((0xFF, SOI)):
        raise ValueError("not a JPEG")
    found: list[tuple[int, int, int]] = []
    i = 2
    while i + 4 <= len(data):
        if data[i] != 0xFF:
            raise ValueError("JPEG header broken")
        marker = data[i + 1]
        if marker == 0xFF:  # a fill byte before a marker
            i += 1
            continue
        if marker == SOS:
            return found
        end = i + 2 + int.from_bytes(data[i + 2:i + 4], "big")
        if end <= i + 3 or end > len(data):
            raise ValueError("JPEG segment runs past the end")
        found.append((marker, i, end))
        i = end
    raise ValueError("JPEG without a scan")


def strip_jpeg(data: bytes) -> bytes:
    """``data`` without the JPEG header segments that carry metadata (ValueError if the
    header cannot be read)."""
    segments = _segments(data)
    scan = segments[-1][2] if segments else 2
    kept = b"".join(data[start:end] for marker, start, end in segments if not _dropped(marker))
    return data[:2] + kept + data[scan:]


def _jpegs(pdf: pikepdf.Pdf) -> list[pikepdf.Stream]:
    return [obj for obj in pdf.objects if isinstance(obj, pikepdf.Stream)
            and obj.get("/Subtype") == pikepdf.Name.Image
            and obj.get("/Filter") in (pikepdf.Name.DCTDecode, pikepdf.Array([
                pikepdf.Name.DCTDecode]))]


def clean(pdf: pikepdf.Pdf) -> None:
    """Drop the metadata segments of every JPEG image in ``pdf`` (in place)."""
    for image in _jpegs(pdf):
        raw = image.read_raw_bytes()
        stripped = strip_jpeg(raw)
        if stripped != raw:
            parms = image.get("/DecodeParms")
            if isinstance(parms, pikepdf.Array) and len(parms) == 1:
                parms = parms[0]  # the one filter's parameters (ColorTransform)
            image.write(stripped, filter=pikepdf.Name.DCTDecode,
                        decode_parms=parms if isinstance(parms, pikepdf.Dictionary) else None)


def left(pdf: pikepdf.Pdf) -> str | None:
    """The first metadata segment still in a JPEG image of ``pdf`` (its marker), or None."""
    for image in _jpegs(pdf):
        try:
            markers = [m for m, _s, _e in _segments(image.read_raw_bytes())]
        except ValueError:
            return "unreadable JPEG"
        dropped = [m for m in markers if _dropped(m)]
        if dropped:
            return f"JPEG marker 0x{dropped[0]:02X}"
    return None
