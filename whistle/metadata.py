"""What an attachment really is, and removing the hidden information it carries.

Two jobs, both on plaintext that exists only in memory:

- ``sniff`` names a file's type from its first bytes (magic numbers), never
  from the client's Content-Type or the file name; ``mismatch`` says when the
  content does not match the name's extension (a ``.jpg`` that is HTML, an
  executable called ``.pdf``), so reviewers are warned.
- ``clean`` removes hidden information: images are decoded and their pixels
  copied into a brand-new image (EXIF with GPS and camera serials, XMP, IPTC,
  ICC profiles, PNG text chunks and comments are simply not copied), after
  applying the EXIF orientation so the picture still looks right; PDFs lose
  the ``/Info`` dictionary, XMP ``/Metadata``, ``/PieceInfo`` and
  ``/LastModified`` in every object (pages and images included), annotations'
  authors, dates and ids, embedded files and file-attachment annotations,
  JavaScript, the open action and every action other than going to a place in
  the document, following a web link or a viewer's named action, and get a
  content-derived ``/ID``. The saved result is parsed again and checked: a PDF
  that still holds any of these is refused (``CannotClean``), never stored as
  cleaned; the reporter may untick cleaning to send it exactly as it is.

Cleaning needs the whole file in memory (Pillow decodes every pixel, pikepdf
parses the object graph). That is acceptable for images and PDFs only, and
bounded: a file is at most ``MAX_ATTACHMENT_BYTES`` and an image at most
``max_pixels`` pixels, checked from the header before any pixel is decoded,
so a pixel flood (a tiny PNG claiming 50,000 x 50,000) is refused at once.
Every other format is stored exactly as sent, and the reporter is told so.

Limits, said to the reporter too: images embedded inside a PDF keep their own
EXIF (the PDF's streams are copied, not decoded); Office documents, HEIC
photos, audio and video are not cleaned at all; animated and multi-page images
are kept as sent.
"""

from __future__ import annotations

import io
import re
import struct
import warnings
from dataclasses import dataclass
from typing import Any

import pikepdf
from PIL import Image, UnidentifiedImageError

from whistle import pdf_images
from whistle.errors import Text

# Pillow's own guard against decompression bombs, tightened from its default
# (about 89 megapixels, an error only at twice that). ``clean`` checks the
# caller's limit explicitly as well.
DEFAULT_MAX_PIXELS = 60_000_000
Image.MAX_IMAGE_PIXELS = DEFAULT_MAX_PIXELS

# Detected type -> Pillow format name, for the images we can clean.
_IMAGE_FORMATS = {
    "image/jpeg": "JPEG", "image/png": "PNG", "image/gif": "GIF", "image/webp": "WEBP",
    "image/tiff": "TIFF", "image/bmp": "BMP",
}
PDF = "application/pdf"
PDF_NOTE = ("hidden document information removed (pictures inside a PDF may still carry "
            "their own)")
CLEANABLE = frozenset(_IMAGE_FORMATS) | {PDF}
CLEANABLE_NAMES = "JPEG, PNG, GIF, WebP, TIFF and BMP images, and PDF documents"

_EXECUTABLES = frozenset({"application/x-msdownload", "application/x-elf",
                          "application/x-mach-binary", "text/x-shellscript"})


class CannotClean(Exception):
    """A file of a cleanable type that could not be cleaned; ``reason`` is for the reporter."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class TooManyPixels(CannotClean):
    """An image whose header claims more pixels than we are willing to decode."""


@dataclass(frozen=True)
class Cleaned:
    """The outcome of :func:`clean`: new bytes, or None when the format is kept as sent."""

    data: bytes | None
    note: str


# -- what is it? ----------------------------------------------------------


def sniff(head: bytes) -> str | None:
    """The MIME type the first bytes of a file announce, or None if unrecognised."""
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return "audio/wav"
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return "image/tiff"
    if head[:2] == b"BM" and len(head) >= 26:
        return "image/bmp"
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand in (b"heic", b"heix", b"mif1", b"msf1", b"heim", b"heis", b"hevc"):
            return "image/heic"
        if brand == b"qt  ":
            return "video/quicktime"
        if brand in (b"M4A ", b"M4B "):
            return "audio/mp4"
        return "video/mp4"
    if head.startswith(b"%PDF-") or b"%PDF-" in head[:1024]:
        return PDF
    if head.startswith(b"PK\x03\x04") or head.startswith(b"PK\x05\x06"):
        return "application/zip"
    if head.startswith(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"):
        return "application/x-ole-storage"
    if head.startswith(b"{\\rtf"):
        return "text/rtf"
    if head.startswith(b"ID3") or (len(head) > 1 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0):
        return "audio/mpeg"
    if head.startswith(b"OggS"):
        return "audio/ogg"
    if head.startswith(b"fLaC"):
        return "audio/flac"
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "video/webm"
    if head.startswith(b"Rar!\x1a\x07"):
        return "application/vnd.rar"
    if head.startswith(b"7z\xbc\xaf\x27\x1c"):
        return "application/x-7z-compressed"
    if head.startswith(b"\x1f\x8b"):
        return "application/gzip"
    if head.startswith(b"MZ"):
        return "application/x-msdownload"
    if head.startswith(b"\x7fELF"):
        return "application/x-elf"
    if head[:4] in (b"\xfe\xed\xfa\xce", b"\xfe\xed\xfa\xcf", b"\xce\xfa\xed\xfe",
                    b"\xcf\xfa\xed\xfe", b"\xca\xfe\xba\xbe"):
        return "application/x-mach-binary"
    return _sniff_text(head)


def _sniff_text(head: bytes) -> str | None:
    if not head or b"\x00" in head:
        return None
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        # A multi-byte character cut at the end of the sample is still text.
        if exc.start < len(head) - 3:
            return None
        text = head[:exc.start].decode("utf-8")
    start = text.lstrip("\ufeff \t\r\n").lower()
    if start.startswith("#!"):
        return "text/x-shellscript"
    if start.startswith(("<!doctype html", "<html", "<head", "<body", "<script", "<svg", "<?xml")):
        return "image/svg+xml" if "<svg" in start[:2048] else (
            "text/xml" if start.startswith("<?xml") else "text/html")
    return "text/plain"


# Extension -> the types its content may have. Extensions not listed are
# unknown to us: no mismatch unless the content is an executable.
_ZIP = frozenset({"application/zip"})
_OLE = frozenset({"application/x-ole-storage"})
_TEXT = frozenset({"text/plain"})
_EXPECTED: dict[str, frozenset[str]] = {
    **{e: frozenset({"image/jpeg"}) for e in ("jpg", "jpeg", "jpe", "jfif")},
    "png": frozenset({"image/png"}), "gif": frozenset({"image/gif"}),
    "webp": frozenset({"image/webp"}), "tif": frozenset({"image/tiff"}),
    "tiff": frozenset({"image/tiff"}), "bmp": frozenset({"image/bmp"}),
    "heic": frozenset({"image/heic"}), "heif": frozenset({"image/heic"}),
    "pdf": frozenset({PDF}),
    **{e: _ZIP for e in ("zip", "docx", "xlsx", "pptx", "odt", "ods", "odp", "epub", "docm",
                         "xlsm", "pptm", "pages", "numbers", "key")},
    **{e: _OLE for e in ("doc", "xls", "ppt", "msg")},
    "rtf": frozenset({"text/rtf"}),
    **{e: _TEXT for e in ("txt", "csv", "tsv", "log", "md", "eml", "json", "ics", "vcf")},
    "html": frozenset({"text/html", "text/plain"}), "htm": frozenset({"text/html", "text/plain"}),
    "xml": frozenset({"text/xml", "text/plain"}), "svg": frozenset({"image/svg+xml", "text/xml"}),
    "mp3": frozenset({"audio/mpeg"}), "wav": frozenset({"audio/wav"}),
    "m4a": frozenset({"audio/mp4", "video/mp4"}), "ogg": frozenset({"audio/ogg"}),
    "oga": frozenset({"audio/ogg"}), "opus": frozenset({"audio/ogg"}),
    "flac": frozenset({"audio/flac"}), "webm": frozenset({"video/webm"}),
    "mp4": frozenset({"video/mp4"}), "m4v": frozenset({"video/mp4"}),
    "mov": frozenset({"video/quicktime", "video/mp4"}),
    "gz": frozenset({"application/gzip"}), "7z": frozenset({"application/x-7z-compressed"}),
    "rar": frozenset({"application/vnd.rar"}),
    "exe": frozenset({"application/x-msdownload"}), "dll": frozenset({"application/x-msdownload"}),
}


def extension(filename: str) -> str:
    """The lower-case extension of a display name, without the dot ('' if none)."""
    stem, dot, ext = filename.rpartition(".")
    return ext.lower() if dot and stem and re.fullmatch(r"[A-Za-z0-9]{1,10}", ext) else ""


def mismatch(filename: str, detected: str | None) -> bool:
    """True when the content does not match the name: reviewers should be careful."""
    expected = _EXPECTED.get(extension(filename))
    if expected is None:
        return detected in _EXECUTABLES
    return detected not in expected


# -- removing hidden information ------------------------------------------


def clean(data: bytes, detected: str | None, max_pixels: int = DEFAULT_MAX_PIXELS,
          max_memory: int | None = None) -> Cleaned:
    """Remove hidden information from an image or PDF held in memory.

    Returns the cleaned bytes, or ``data=None`` with a note when the format is
    one we cannot clean (the caller keeps the file as sent). Raises
    TooManyPixels for images over ``max_pixels`` or whose decoded copies would take more
    than ``max_memory`` bytes (both read from the header, before decoding), and CannotClean when a file
    of a cleanable type cannot be read: the reporter asked for cleaning, so
    storing it uncleaned would break their choice silently.
    """
    if detected in _IMAGE_FORMATS:
        return _clean_image(data, _IMAGE_FORMATS[detected], max_pixels, max_memory)
    if detected == PDF:
        return Cleaned(_clean_pdf(data), PDF_NOTE)
    return Cleaned(None, "kept as sent: hidden information cannot be removed from this kind "
                         "of file")


_ORIENTATION = 0x0112
_TRANSPOSE = {
    2: (Image.Transpose.FLIP_LEFT_RIGHT,), 3: (Image.Transpose.ROTATE_180,),
    4: (Image.Transpose.FLIP_TOP_BOTTOM,), 5: (Image.Transpose.TRANSPOSE,),
    6: (Image.Transpose.ROTATE_270,), 7: (Image.Transpose.TRANSVERSE,),
    8: (Image.Transpose.ROTATE_90,),
}


# Bytes per pixel as Pillow holds an image in memory (RGB, LA and PA take four, as RGBA).
_PIXEL_BYTES = {"1": 1, "L": 1, "P": 1, "I;16": 2, "I;16L": 2, "I;16B": 2, "I;16N": 2}


def decoded_bytes(mode: str, width: int, height: int, copies: int = 1) -> int:
    """What ``copies`` decoded copies of an image take in memory."""
    return width * height * _PIXEL_BYTES.get(mode, 4) * copies


def _check_memory(src: Image.Image, max_memory: int | None) -> None:
    # The source, the fresh copy, and one more if the image is turned upright (whether it
    # is, EXIF says, and reading a PNG's EXIF decodes it: count the copy anyway).
    width, height = src.size
    need = decoded_bytes(src.mode, width, height, copies=3)
    if max_memory is not None and need > max_memory:
        raise TooManyPixels("the image is too large to clean safely")


def _clean_image(data: bytes, fmt: str, max_pixels: int, max_memory: int | None = None
                 ) -> Cleaned:
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            with Image.open(io.BytesIO(data), formats=[fmt]) as src:
                width, height = src.size
                if width * height > max_pixels:
                    raise TooManyPixels(Text(
                        "the image is too large (%(width)s x %(height)s pixels; at most "
                        "%(most)s pixels can be cleaned)", width=width, height=height,
                        most=f"{max_pixels:,}"))
                # Before anything that may decode (a PNG's getexif does).
                _check_memory(src, max_memory)
                if getattr(src, "n_frames", 1) > 1:
                    return Cleaned(None, "kept as sent: hidden information cannot be removed "
                                         "from animated or multi-page images")
                orientation = src.getexif().get(_ORIENTATION, 1)
                src.load()
                pixels: Image.Image = src
                for step in _TRANSPOSE.get(orientation, ()):
                    pixels = pixels.transpose(step)
                # A brand-new image gets the pixels and nothing else: no info
                # dictionary, no EXIF, XMP, ICC profile, comment or text chunk.
                fresh = Image.new(pixels.mode, pixels.size)
                fresh.paste(pixels)
                if pixels.mode in ("P", "PA") and pixels.palette is not None:
                    fresh.putpalette(pixels.palette.tobytes(), rawmode=pixels.palette.mode)
                options: dict[str, object] = {}
                if "transparency" in src.info and pixels.mode in ("P", "L", "RGB", "LA"):
                    options["transparency"] = src.info["transparency"]
                del pixels
            out = io.BytesIO()
            if fmt == "JPEG":
                # No ``optimize``: it buffers the whole compressed image in libjpeg and
                # costs much more CPU and peak memory (bench/results/README.md) to save a
                # few per cent of size.
                options.update(quality=95)
            elif fmt == "WEBP":
                options.update(quality=95, method=4)
            elif fmt == "TIFF":
                options.update(compression="tiff_adobe_deflate")
            fresh.save(out, fmt, **options)
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise TooManyPixels("the image is too large to clean safely") from exc
        except CannotClean:
            raise
        except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError, KeyError,
                IndexError, TypeError, struct.error) as exc:
            raise CannotClean("it could not be read as an image") from exc
    return Cleaned(out.getvalue(), "hidden information removed")


# Keys removed from every dictionary and stream of a PDF, wherever they are: XMP metadata
# (``/Metadata``), application data and its dates (``/PieceInfo``, ``/LastModified``),
# additional actions run on opening, closing, printing or hovering (``/AA``), JavaScript
# (``/JS``), embedded files (``/EF`` in a file specification, ``/AF`` associated files)
# and XFA forms (XML that may hold scripts and metadata).
_PDF_DROP_KEYS = ("/Metadata", "/PieceInfo", "/LastModified", "/AA", "/JS", "/EF", "/AF",
                  "/XFA")
# Keys of an annotation that say who made it and when (the author ``/T``, the dates ``/M``
# and ``/CreationDate`` with their time zones, the unique name ``/NM`` that tools fill with
# ids). A form field's ``/T`` is its name, not an author: widgets keep it. What a comment
# says (``/Contents``) is the content itself and stays, as on the page.
_ANNOTATION_DROP_KEYS = ("/T", "/M", "/CreationDate", "/NM")
# A signature's signer, place, reason and time.
_SIGNATURE_DROP_KEYS = ("/Name", "/M", "/Location", "/Reason", "/ContactInfo", "/Prop_Build")
# Catalogue entries: the document's open action, embedded-file collection (portfolio).
_CATALOG_DROP_KEYS = ("/OpenAction", "/Collection", "/URI")
# Name trees of the catalogue's /Names: document JavaScript and embedded files.
_NAMES_DROP_KEYS = ("/JavaScript", "/EmbeddedFiles", "/AlternatePresentations")
# Actions kept: going to a place in this document, following a web link, and the viewer's
# own named actions (next page...). Everything else (JavaScript, Launch, SubmitForm,
# ImportData, GoToR/GoToE into other or embedded files, Rendition, Sound, Movie...) goes.
_SAFE_ACTIONS = frozenset({"/GoTo", "/URI", "/Named"})
# Annotations removed altogether: they carry files or media.
_DROP_ANNOTATIONS = frozenset({"/FileAttachment", "/Sound", "/Movie", "/Screen",
                               "/RichMedia", "/3D"})
_ANNOTATION_TYPES = frozenset({
    "/Text", "/Link", "/FreeText", "/Line", "/Square", "/Circle", "/Polygon", "/PolyLine",
    "/Highlight", "/Underline", "/Squiggly", "/StrikeOut", "/Stamp", "/Caret", "/Ink",
    "/Popup", "/FileAttachment", "/Sound", "/Movie", "/Widget", "/Screen", "/PrinterMark",
    "/TrapNet", "/Watermark", "/3D", "/Redact", "/Projection", "/RichMedia"})


def _safe_action(action: object) -> bool:
    return (isinstance(action, pikepdf.Dictionary) and _name(action, "/S") in _SAFE_ACTIONS
            and "/Next" not in action)


def _name(obj: pikepdf.Object, key: str) -> str:
    """The name under ``key`` as text ('' when absent or not a name)."""
    value = obj.get(key)
    return str(value) if isinstance(value, pikepdf.Name) else ""


def _is_annotation(obj: pikepdf.Dictionary) -> bool:
    return _name(obj, "/Type") == "/Annot" or (
        _name(obj, "/Subtype") in _ANNOTATION_TYPES and ("/Rect" in obj or "/Parent" in obj))


def _scrub_pdf_object(obj: pikepdf.Object) -> None:
    """Remove what the module's lists name from ``obj`` and its direct (inline) children;
    indirect children are visited on their own (``pdf.objects``)."""
    stack: list[Any] = [obj]
    while stack:
        here = stack.pop()
        if isinstance(here, pikepdf.Array):
            items = [here[i] for i in range(len(here))]
        elif isinstance(here, (pikepdf.Dictionary, pikepdf.Stream)):
            for key in _PDF_DROP_KEYS:
                if key in here:
                    del here[key]
            if _name(here, "/Type") == "/Catalog":
                for key in _CATALOG_DROP_KEYS:
                    if key in here:
                        del here[key]
            if "/Names" in here and isinstance(here["/Names"], pikepdf.Dictionary):
                for key in _NAMES_DROP_KEYS:
                    if key in here["/Names"]:
                        del here["/Names"][key]
            if isinstance(here, pikepdf.Dictionary) and _is_annotation(here):
                for key in _ANNOTATION_DROP_KEYS:
                    if key in here and not (key == "/T" and _name(here, "/Subtype") == "/Widget"):
                        del here[key]
            if _name(here, "/Type") == "/Sig" or (
                    "/ByteRange" in here and "/Contents" in here and "/Filter" in here):
                for key in _SIGNATURE_DROP_KEYS:
                    if key in here:
                        del here[key]
            if "/A" in here and not _safe_action(here["/A"]):
                del here["/A"]
            annots: Any = here.get("/Annots")
            if isinstance(annots, pikepdf.Array):
                kept = [a for a in (annots[i] for i in range(len(annots))) if not (
                    isinstance(a, pikepdf.Dictionary) and _name(a, "/Subtype") in _DROP_ANNOTATIONS)]
                if len(kept) != len(annots):
                    here["/Annots"] = pikepdf.Array(kept)
            if _name(here, "/S") == "/JavaScript" or (
                    _name(here, "/Type") == "/Filespec" and "/Desc" in here):
                for key in ("/Desc", "/JS"):
                    if key in here:
                        del here[key]
            items = [here[k] for k in here.keys()]
        else:
            continue
        stack.extend(i for i in items if isinstance(
            i, (pikepdf.Array, pikepdf.Dictionary)) and not i.is_indirect)


def _left_in_pdf(pdf: pikepdf.Pdf) -> str | None:
    """What hidden information a cleaned PDF still holds (a key's name), or None."""
    if "/Info" in pdf.trailer:
        return "/Info"
    names = pdf.Root.get("/Names")
    if isinstance(names, pikepdf.Dictionary) and any(k in names for k in _NAMES_DROP_KEYS):
        return "/Names"
    if any(k in pdf.Root for k in _CATALOG_DROP_KEYS):
        return "/OpenAction"
    for obj in pdf.objects:
        stack: list[Any] = [obj] if isinstance(obj, (pikepdf.Dictionary, pikepdf.Stream)) else []
        while stack:
            here = stack.pop()
            items: list[Any] = ([here[i] for i in range(len(here))]
                                if isinstance(here, pikepdf.Array) else [])
            if isinstance(here, (pikepdf.Dictionary, pikepdf.Stream)):
                for key in _PDF_DROP_KEYS:
                    if key in here:
                        return key
                if "/A" in here and not _safe_action(here["/A"]):
                    return "/A"
                if isinstance(here, pikepdf.Dictionary) and _is_annotation(here):
                    if _name(here, "/Subtype") in _DROP_ANNOTATIONS:
                        return _name(here, "/Subtype")
                    for key in _ANNOTATION_DROP_KEYS:
                        if key in here and not (key == "/T" and _name(here, "/Subtype") == "/Widget"):
                            return key
                items = [here[k] for k in here.keys()]
            stack.extend(i for i in items if isinstance(
                i, (pikepdf.Array, pikepdf.Dictionary)) and not i.is_indirect)
    return None


def _clean_pdf(data: bytes) -> bytes:
    try:
        with pikepdf.open(io.BytesIO(data)) as pdf:
            if "/Info" in pdf.trailer:
                del pdf.trailer["/Info"]
            _scrub_pdf_object(pdf.trailer)
            for obj in pdf.objects:
                if isinstance(obj, (pikepdf.Dictionary, pikepdf.Stream, pikepdf.Array)):
                    _scrub_pdf_object(obj)
            pdf_images.clean(pdf)  # the photos' own EXIF, XMP, IPTC and comments
            out = io.BytesIO()
            # Streams are copied without decoding (no deflate bomb is inflated);
            # QPDF rewrites the file from the object graph, so earlier
            # revisions (incremental updates) and unreferenced objects (the files
            # and scripts taken out above) are gone.
            pdf.save(out, deterministic_id=True, fix_metadata_version=False,
                     stream_decode_level=pikepdf.StreamDecodeLevel.none)
        # Check the result as a reader would see it: anything left is refused, never
        # stored as "cleaned".
        with pikepdf.open(io.BytesIO(out.getvalue())) as saved:
            left = _left_in_pdf(saved) or pdf_images.left(saved)
    except pikepdf.PasswordError as exc:
        raise CannotClean("it is password-protected") from exc
    except (pikepdf.PdfError, ValueError, RuntimeError, TypeError, KeyError) as exc:
        raise CannotClean("it could not be read as a PDF") from exc
    if left is not None:
        raise CannotClean("it holds hidden parts that could not all be removed")
    return out.getvalue()
