"""Issue 20, item 5: every kind of hidden information in a PDF is gone after cleaning.

Each PDF is built with pikepdf and carries one kind of hidden information with a random
marker in it (annotation authors and dates with time zones, embedded files with their
descriptions, JavaScript and actions, XMP on a page and on an image, the document
``/Info``, page-level ``/PieceInfo``). It goes through the real app (the reporter API, with
cleaning on), a reviewer downloads and decrypts it through the API, and the marker must be
nowhere: not in the file's bytes, and not in any object or decoded stream pikepdf parses
from it. The visible page content must still be there.
"""

from __future__ import annotations

import io
import json
import secrets
from collections.abc import Callable
from typing import Any

import pikepdf
import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from tests.support.factories import login, make_reviewer
from whistle import confined, metadata
from whistle.store import db
from whistle.store.models import Attachment, Concern

VISIBLE = "VISIBLE-PAGE-TEXT-4e1d"


def mark(kind: str) -> str:
    return f"{kind}-MARK-{secrets.token_hex(6)}"


def base_pdf() -> pikepdf.Pdf:
    """One page with visible text (an uncompressed content stream) and a font."""
    pdf = pikepdf.new()
    pdf.add_blank_page(page_size=(612, 792))
    page = pdf.pages[0]
    font = pdf.make_indirect(pikepdf.Dictionary(Type=pikepdf.Name.Font,
                                                Subtype=pikepdf.Name.Type1,
                                                BaseFont=pikepdf.Name.Helvetica))
    page.obj.Resources = pikepdf.Dictionary(Font=pikepdf.Dictionary(F1=font))
    page.obj.Contents = pdf.make_stream(f"BT /F1 24 Tf 72 700 Td ({VISIBLE}) Tj ET".encode())
    return pdf


def saved(pdf: pikepdf.Pdf) -> bytes:
    out = io.BytesIO()
    pdf.save(out, compress_streams=False, object_stream_mode=pikepdf.ObjectStreamMode.disable)
    return out.getvalue()


def xmp(text: str) -> bytes:
    return ('<?xpacket begin="" id="W5M0MpCehiHzreSzNTczkc9d"?><x:xmpmeta xmlns:x="adobe:ns:'
            'meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
            '<rdf:Description xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:creator>'
            f'{text}</dc:creator></rdf:Description></rdf:RDF></x:xmpmeta>'
            '<?xpacket end="w"?>').encode()


def with_annotations(m: str) -> bytes:
    """A sticky note (indirect) and a highlight (inline in /Annots), both with an author,
    dates with a time zone and a unique name."""
    pdf = base_pdf()

    def note(subtype: str) -> pikepdf.Dictionary:
        return pikepdf.Dictionary(
            Type=pikepdf.Name.Annot, Subtype=pikepdf.Name(subtype),
            Rect=[72, 600, 200, 650], T=pikepdf.String(f"{m} Author"),
            M=pikepdf.String("D:20260102030405+05'30'"),
            CreationDate=pikepdf.String("D:20251231235959-08'00'"),
            NM=pikepdf.String(f"{m}-uuid"), Contents=pikepdf.String("Comment: see page"))
    pdf.pages[0].obj.Annots = pikepdf.Array([pdf.make_indirect(note("/Text")),
                                             note("/Highlight")])
    return saved(pdf)


def with_embedded_files(m: str) -> bytes:
    """A document-level embedded file with a description, and a file-attachment annotation."""
    pdf = base_pdf()

    def filespec(name: str) -> pikepdf.Object:
        stream = pdf.make_stream(f"secret attachment body {m}".encode(),
                                 Type=pikepdf.Name.EmbeddedFile,
                                 Params=pikepdf.Dictionary(
                                     ModDate=pikepdf.String("D:20260102030405+01'00'")))
        return pdf.make_indirect(pikepdf.Dictionary(
            Type=pikepdf.Name.Filespec, F=pikepdf.String(name), UF=pikepdf.String(name),
            Desc=pikepdf.String(f"description {m}"), EF=pikepdf.Dictionary(F=stream)))
    pdf.Root.Names = pikepdf.Dictionary(EmbeddedFiles=pikepdf.Dictionary(
        Names=pikepdf.Array([pikepdf.String(f"{m}.txt"), filespec(f"{m}.txt")])))
    pdf.pages[0].obj.Annots = pikepdf.Array([pdf.make_indirect(pikepdf.Dictionary(
        Type=pikepdf.Name.Annot, Subtype=pikepdf.Name.FileAttachment, Rect=[10, 10, 30, 30],
        FS=filespec(f"{m}-2.txt"), Contents=pikepdf.String(f"attached {m}")))])
    return saved(pdf)


def with_javascript_and_actions(m: str) -> bytes:
    """Document JavaScript, an open action, page and field actions, a launch link; plus an
    internal link and a web link, which stay."""
    pdf = base_pdf()
    pdf.add_blank_page()

    def js(text: str) -> pikepdf.Dictionary:
        return pikepdf.Dictionary(S=pikepdf.Name.JavaScript,
                                  JS=pikepdf.String(f"app.alert('{text} {m}');"))
    pdf.Root.Names = pikepdf.Dictionary(JavaScript=pikepdf.Dictionary(
        Names=pikepdf.Array([pikepdf.String("init"), pdf.make_indirect(js("doc"))])))
    pdf.Root.OpenAction = pdf.make_indirect(js("open"))
    pdf.Root.AA = pikepdf.Dictionary(WC=js("close"))
    page = pdf.pages[0].obj
    page.AA = pikepdf.Dictionary(O=js("page"))
    launch = pikepdf.Dictionary(S=pikepdf.Name.Launch, F=pikepdf.String(f"C:\\{m}.exe"))
    submit = pikepdf.Dictionary(S=pikepdf.Name.SubmitForm,
                                F=pikepdf.Dictionary(FS=pikepdf.Name.URL,
                                                     F=pikepdf.String(f"https://{m}.example")))

    def link(**entries: Any) -> pikepdf.Object:
        return pdf.make_indirect(pikepdf.Dictionary(Type=pikepdf.Name.Annot,
                                                    Subtype=pikepdf.Name.Link, **entries))
    page.Annots = pikepdf.Array([
        link(Rect=[0, 0, 10, 10], A=launch),
        link(Rect=[0, 20, 10, 30], A=submit),
        link(Rect=[0, 40, 10, 50], A=pikepdf.Dictionary(
            S=pikepdf.Name.GoTo, D=pikepdf.Array([pdf.pages[1].obj, pikepdf.Name.Fit]))),
        link(Rect=[0, 60, 10, 70], A=pikepdf.Dictionary(
            S=pikepdf.Name.URI, URI=pikepdf.String("https://example.org/policy"))),
    ])
    return saved(pdf)


def with_xmp_everywhere(m: str) -> bytes:
    """XMP on the catalogue, on the page and on an image drawn on the page."""
    pdf = base_pdf()
    page = pdf.pages[0].obj
    image = pdf.make_stream(b"\xff\x00\x00" * 4, Type=pikepdf.Name.XObject,
                            Subtype=pikepdf.Name.Image, Width=2, Height=2,
                            ColorSpace=pikepdf.Name.DeviceRGB, BitsPerComponent=8)
    image.Metadata = pdf.make_stream(xmp(f"image {m}"), Type=pikepdf.Name.Metadata,
                                     Subtype=pikepdf.Name.XML)
    page.Resources.XObject = pikepdf.Dictionary(Im1=image)
    page.Contents = pdf.make_stream(
        f"q 100 0 0 100 72 400 cm /Im1 Do Q BT /F1 24 Tf 72 700 Td ({VISIBLE}) Tj ET".encode())
    page.Metadata = pdf.make_stream(xmp(f"page {m}"), Type=pikepdf.Name.Metadata,
                                    Subtype=pikepdf.Name.XML)
    pdf.Root.Metadata = pdf.make_stream(xmp(f"doc {m}"), Type=pikepdf.Name.Metadata,
                                        Subtype=pikepdf.Name.XML)
    return saved(pdf)


def with_info_and_pieceinfo(m: str) -> bytes:
    """The document /Info (author, tool, dates with a time zone) and a page's /PieceInfo."""
    pdf = base_pdf()
    pdf.trailer.Info = pdf.make_indirect(pikepdf.Dictionary(
        Author=pikepdf.String(f"{m} Author"), Creator=pikepdf.String(f"Writer {m}"),
        Producer=pikepdf.String(f"Producer {m}"),
        CreationDate=pikepdf.String("D:20260102030405+05'30'")))
    page = pdf.pages[0].obj
    page.PieceInfo = pikepdf.Dictionary(Illustrator=pikepdf.Dictionary(
        LastModified=pikepdf.String("D:20260102030405-07'00'"),
        Private=pikepdf.String(f"private {m}")))
    page.LastModified = pikepdf.String("D:20260102030405-07'00'")
    return saved(pdf)


def photo_jpeg(m: str) -> bytes:
    """A small photo whose own header carries EXIF (description, artist, GPS), XMP and a
    comment, each with the marker."""
    from PIL import Image

    exif = Image.Exif()
    exif[0x010E], exif[0x013B] = f"Description {m}", f"Artist {m}"
    exif.get_ifd(0x8825)[2] = (51.0, 30.0, 0.0)  # GPS latitude
    out = io.BytesIO()
    Image.new("RGB", (32, 24), (200, 10, 10)).save(
        out, "JPEG", exif=exif.tobytes(), comment=f"comment {m}".encode(),
        xmp=xmp(m))
    return out.getvalue()


def with_photo_metadata(m: str) -> bytes:
    """A page showing a JPEG photo (``/DCTDecode``) that carries its own metadata."""
    pdf = base_pdf()
    photo = pdf.make_stream(photo_jpeg(m), Type=pikepdf.Name.XObject,
                            Subtype=pikepdf.Name.Image, Width=32, Height=24,
                            ColorSpace=pikepdf.Name.DeviceRGB, BitsPerComponent=8,
                            Filter=pikepdf.Name.DCTDecode)
    page = pdf.pages[0].obj
    page.Resources.XObject = pikepdf.Dictionary(Im1=photo)
    page.Contents = pdf.make_stream(page.Contents.read_bytes() + b" q 32 0 0 24 72 600 cm /Im1 Do Q")
    return saved(pdf)


BUILDERS: dict[str, Callable[[str], bytes]] = {
    "photo metadata": with_photo_metadata,
    "annotations": with_annotations,
    "embedded files": with_embedded_files,
    "javascript and actions": with_javascript_and_actions,
    "xmp everywhere": with_xmp_everywhere,
    "info and pieceinfo": with_info_and_pieceinfo,
}
DATES = ("20260102030405", "20251231235959")


def everything_in(data: bytes) -> bytes:
    """The file's bytes, and every object and decoded stream pikepdf parses from it."""
    parts = [data]
    with pikepdf.open(io.BytesIO(data)) as pdf:
        parts.append(pdf.trailer.unparse())
        for obj in pdf.objects:
            if isinstance(obj, pikepdf.Stream):
                parts.append(obj.stream_dict.unparse())
                try:
                    parts.append(obj.read_bytes())
                except pikepdf.PdfError:  # a photo (/DCTDecode): its bytes as stored
                    parts.append(obj.read_raw_bytes())
            elif isinstance(obj, (pikepdf.Dictionary, pikepdf.Array, pikepdf.String)):
                parts.append(obj.unparse())
    return b"\n".join(parts)


def submit_pdf(client: FlaskClient, content: bytes, clean: bool = True) -> Any:
    boundary = "pdfclean" + secrets.token_hex(8)
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"concern\"\r\n\r\n"
            + json.dumps({"category": "conduct", "details": "See the document.",
                          "clean_metadata": clean})
            + f"\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"attachment\"; "
              "filename=\"evidence.pdf\"\r\nContent-Type: application/pdf\r\n\r\n"
            ).encode() + content + f"\r\n--{boundary}--\r\n".encode()
    return client.post("/api/v1/concerns", data=body,
                       content_type=f"multipart/form-data; boundary={boundary}")


def stored_file(client: FlaskClient, headers: dict[str, str], case_ref: str) -> tuple[Any, bytes]:
    case = client.get(f"/api/v1/cases/{case_ref}", headers=headers)
    assert case.status_code == 200, case.get_data(as_text=True)
    att = case.get_json()["attachments"][0]
    got = client.get(f"/api/v1/cases/{case_ref}/attachments/{att['id']}", headers=headers)
    assert got.status_code == 200
    return att, got.data


@pytest.fixture
def headers(app: Flask, client: FlaskClient) -> dict[str, str]:
    ann = make_reviewer(app, "Ann Reviewer")
    make_reviewer(app, "Bob Reviewer")
    return login(client, ann)


def count(app: Flask, model: Any) -> int:
    with db.new_session(app) as s:
        return s.scalar(select(func.count()).select_from(model)) or 0


@pytest.mark.parametrize("kind", list(BUILDERS))
def test_each_kind_of_hidden_pdf_information_is_gone_and_the_page_stays(
        client: FlaskClient, headers: dict[str, str], kind: str) -> None:
    m = mark(kind.split()[0].upper())
    original = BUILDERS[kind](m)
    assert m.encode() in original  # the marker really is in what is sent
    response = submit_pdf(client, original)
    assert response.status_code == 201, response.get_data(as_text=True)
    assert response.get_json()["attachment_notes"] == [
        "evidence.pdf: hidden document information removed (pictures inside a PDF may still "
        "carry their own)"]
    att, cleaned = stored_file(client, headers, response.get_json()["case_ref"])
    assert att["cleaned"] is True
    assert_cleaned(kind, m, cleaned)


@pytest.mark.parametrize("kind", list(BUILDERS))
def test_cleaning_alone_removes_each_kind(kind: str) -> None:
    """The same, on ``metadata.clean`` itself (fast, and pins the cleaner's own contract)."""
    m = mark(kind.split()[0].upper())
    result = metadata.clean(BUILDERS[kind](m), metadata.PDF)
    assert result.data is not None
    assert_cleaned(kind, m, result.data)


def assert_cleaned(kind: str, m: str, cleaned: bytes) -> None:
    found = everything_in(cleaned)
    assert m.encode() not in found and m.lower().encode() not in found
    for date in DATES:
        assert date.encode() not in found, date
    with pikepdf.open(io.BytesIO(cleaned)) as pdf:
        assert VISIBLE.encode() in pdf.pages[0].Contents.read_bytes()
        assert "/Info" not in pdf.trailer and "/Metadata" not in pdf.Root
        for key in ("/OpenAction", "/AA"):
            assert key not in pdf.Root
        names: Any = pdf.Root.get("/Names", pikepdf.Dictionary())
        assert "/EmbeddedFiles" not in names and "/JavaScript" not in names
        page = pdf.pages[0].obj
        for key in ("/Metadata", "/PieceInfo", "/LastModified", "/AA"):
            assert key not in page, key
        listed: Any = page.get("/Annots", pikepdf.Array())
        annots = list(listed)
        for annot in annots:
            for key in ("/T", "/M", "/CreationDate", "/NM"):
                assert key not in annot, (kind, key)
            assert str(annot.Subtype) != "/FileAttachment"
            if "/A" in annot:
                assert str(annot.A.S) in ("/GoTo", "/URI")
        if kind == "annotations":  # the comments themselves stay, as the page shows them
            assert [str(a.Subtype) for a in annots] == ["/Text", "/Highlight"]
            assert all(str(a.Contents) == "Comment: see page" for a in annots)
        if kind == "javascript and actions":  # plain links stay
            kept = sorted(str(a.A.S) for a in annots if "/A" in a)
            assert kept == ["/GoTo", "/URI"]
            assert [str(a.A.URI) for a in annots if "/A" in a and a.A.S == "/URI"] == [
                "https://example.org/policy"]
        if kind == "xmp everywhere":  # the picture stays, without its XMP
            image = page.Resources.XObject.Im1
            assert image.read_bytes() == b"\xff\x00\x00" * 4 and "/Metadata" not in image


def test_a_pdf_that_cannot_be_fully_cleaned_is_refused_with_a_clear_message(
        app: Flask, client: FlaskClient, headers: dict[str, str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The check after cleaning refuses anything left (here: a scrubber that missed it)."""
    m = mark("LEFT")
    original = with_javascript_and_actions(m)
    monkeypatch.setattr(metadata, "_scrub_pdf_object", lambda obj: None)
    # in this process, where the broken scrubber is (PDFs are cleaned in a child otherwise)
    monkeypatch.setattr(confined, "clean_pdf", lambda data, _most: metadata._clean_pdf(data))
    refused = submit_pdf(client, original)
    assert refused.status_code == 400
    body = refused.get_json()
    assert body["error"] == "cannot_clean"
    assert body["message"] == (
        "Hidden information could not be removed from evidence.pdf: it holds hidden parts "
        "that could not all be removed. Send it without that file, or untick the box to keep "
        "files exactly as they are.")
    assert count(app, Concern) == 0 and count(app, Attachment) == 0
    # At the reporter's explicit choice it is stored exactly as sent, and said so.
    kept = submit_pdf(client, original, clean=False)
    assert kept.status_code == 201, kept.get_data(as_text=True)
    att, stored = stored_file(client, headers, kept.get_json()["case_ref"])
    assert att["cleaned"] is False and stored == original


@pytest.mark.parametrize(("lang", "expected"), [
    ("pl", "zawiera ukryte elementy, których nie udało się w całości usunąć"),
    ("ar", "يحتوي على أجزاء مخفية تعذّرت إزالتها كلها")])
def test_the_new_refusal_reads_in_polish_and_arabic(app: Flask, lang: str,
                                                    expected: str) -> None:
    from whistle import i18n
    from whistle.errors import Text

    reason = "it holds hidden parts that could not all be removed"
    refusal = Text("Hidden information could not be removed from %(name)s: %(reason)s. "
                   "Send it without that file, or untick the box to keep files exactly as "
                   "they are.", name="evidence.pdf", reason=reason)
    with app.test_request_context(f"/?lang={lang}"):
        assert i18n.translate(reason) == expected
        said = str(i18n.translate(refusal))
        assert expected in said and "evidence.pdf" in said and "hidden" not in said


def test_an_unreadable_pdf_is_still_refused_as_unreadable() -> None:
    with pytest.raises(metadata.CannotClean) as caught:
        metadata.clean(b"%PDF-1.7\n" + b"\x00garbage" * 50, metadata.PDF)
    assert caught.value.reason in ("it could not be read as a PDF",
                                   "it holds hidden parts that could not all be removed")


def test_a_photo_inside_a_pdf_loses_its_metadata_and_keeps_its_picture() -> None:
    """Only the photo's header segments go: the compressed picture is the same bytes, so it
    decodes to the same pixels; and ``pdf_images.left`` finds nothing left."""
    from PIL import Image

    from whistle import pdf_images

    m = mark("PHOTO")
    cleaned = metadata.clean(with_photo_metadata(m), metadata.PDF).data
    assert cleaned is not None
    original = photo_jpeg(m)
    with pikepdf.open(io.BytesIO(cleaned)) as pdf:
        image = pdf.pages[0].Resources.XObject.Im1
        raw = image.read_raw_bytes()
        assert pdf_images.left(pdf) is None
    assert m.encode() not in raw and b"Exif" not in raw
    before, after = Image.open(io.BytesIO(original)), Image.open(io.BytesIO(raw))
    assert after.size == before.size and list(after.getdata()) == list(before.getdata())
    assert raw.endswith(original[original.index(b"\xff\xda"):])  # the scan, byte for byte
    # A JPEG whose header is broken is refused, never stored as cleaned.
    broken = with_photo_metadata(m).replace(b"\xff\xd8\xff", b"\xff\xd8\x00", 1)
    with pytest.raises(metadata.CannotClean):
        metadata.clean(broken, metadata.PDF)
