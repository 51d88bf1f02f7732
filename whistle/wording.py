"""How the pages say the domain's refusals: plain sentences, in the reader's language.

The domain refuses in terse English: fixed strings, or ``whistle.errors.Text`` when a
value goes into the sentence (a field, a limit, a file name). The JSON API and the English
pages show that English as it is. A Polish or Arabic page passes it through the ``tr``
filter (``whistle.i18n.translate``), which finds it here and says it plainly, as one whole
sentence of the catalogue, so that a translator never has to assemble a sentence from parts:

- ``FIXED``: a fixed domain string -> the sentence a page shows;
- ``PATTERNS``: a ``Text`` pattern -> the sentence a page shows, with the same values
  (``%(field)s`` becomes the field's name as the page labels it, ``FIELD_NAMES``);
- ``KNOWN``: fixed English that pages show as it is, listed so that extraction finds it.

Wording that depends on a configurable number (a limit, ``MIN_REVIEWERS``) is written so
that it is right for every number: "The limit is %(n)s", not "at most %(n)s files".
``tests/test_i18n_reporter.py`` checks that every ``Text`` pattern in the code has a
sentence here, and renders each refusal a reporter can meet in Polish and Arabic.
"""

from __future__ import annotations

from typing import Any

from flask_babel import lazy_gettext as _l

from whistle.errors import Text

# What each field is called where a refusal names it: the page's own label for it.
FIELD_NAMES = {
    "category": _l("What is it about?"),
    "unit": _l("Part of the organisation"),
    "details": _l("Your concern"),
    "identity": _l("Your name"),
    "identity.name": _l("Your name"),
    "identity.role": _l("Role"),
    "identity.contact": _l("How to contact you"),
    "exclude_reviewers": _l("Who must not see it"),
    "about_senior": _l("This is about a senior person"),
    "clean_metadata": _l("Remove hidden information from my files (recommended)"),
    "body": _l("Reply to the reviewers"),
    "token": _l("Your 12-word token"),
    # Matching escrow (issue 25): the "about whom" section.
    "about": _l("Who is your concern about?"),
    "about.email": _l("Their work email address"),
    "about.name": _l("Their name (optional)"),
    "about.role": _l("Their role (optional)"),
    "escrow": _l("Hold my concern until someone else raises a concern about the same person"),
}
SOME_FIELD = _l("A field of the form")

_UNREADABLE_FORM = _l("Whistle could not read part of this form. Reload the page and send it "
                      "again.")
_BAD_ADDRESS = _l("This address is not valid. Start again from Whistle's home page.")
_UNREADABLE_TEXT = _l("%(field)s: Whistle could not read some of this text. Type it again and "
                      "send it once more.")
_UNREADABLE_CHOICE = _l("%(field)s: Whistle could not read this choice. Reload the page and "
                        "choose again.")
TOO_LARGE = _l("What you sent is too large. Check the limits on files and text, then try "
               "again.")

FIXED = {
    # A password too easy to guess (issue 21, whistle.people.strength).
    "this password is easy to guess: use a longer passphrase of several unrelated words": _l(
        "This password is easy to guess. Use a longer passphrase of several unrelated words."),
    # The detriment check-in (issue 23, whistle.cases.checkins).
    "answer must be yes or no": _l("Choose yes or no."),
    "the check-in opens once the case is closed": _l(
        "You can answer this question once your report is closed."),
    "choose at least one file": _l("Choose at least one file to add."),
    "the request is too large: see the limits on files and text": TOO_LARGE,
    "this form was sent from another site": _l(
        "This form was sent from another website, so Whistle did not accept it. Open "
        "Whistle's address yourself and fill in the form there."),
    "the form is not valid UTF-8": _UNREADABLE_FORM,
    "the form has too many fields": _UNREADABLE_FORM,
    "send the form as a web form": _UNREADABLE_FORM,
    "the address is not valid UTF-8": _BAD_ADDRESS,
    "the address contains control characters": _BAD_ADDRESS,
    "a parameter was sent more than once": _BAD_ADDRESS,
    "token must be text": _l("Type your 12 words."),
    "token is too long": _l("That is too long to be your 12 words. Type only the 12 words, "
                            "with spaces between them."),
    # Why hidden information could not be removed from a file (whistle.metadata).
    "it is password-protected": _l("it is password-protected"),
    "it could not be read as an image": _l("it could not be read as an image"),
    "it could not be read as a PDF": _l("it could not be read as a PDF"),
    "it holds hidden parts that could not all be removed": _l(
        "it holds hidden parts that could not all be removed"),
    "it is too large or too complex to clean safely": _l(
        "it is too large or too complex to clean safely"),
    "the image is too large to clean safely": _l(
        "the picture is too large for its hidden information to be removed safely"),
    # Matching escrow (issue 25, whistle.cases.about and escrow).
    "escrow needs the email address of the person the concern is about": _l(
        "To hold your concern until someone else speaks up, give the work email address of "
        "the person it is about."),
    "the email address of the person the concern is about is needed": _l(
        "Give the work email address of the person your concern is about, or leave their "
        "name and role empty."),
    "about.email is not an email address": _l(
        "This is not an email address. Check the address of the person your concern is "
        "about, for example name@example.org."),
    "about must be an object with email, name, role": _UNREADABLE_FORM,
    "a held concern cannot carry files: add them once it is sent on": _l(
        "A held concern cannot carry files. Send it without them, and add them once it has "
        "gone to the reviewers."),
    "this concern is held until someone else raises a concern about the same person: send "
    "it now or withdraw it": _l(
        "Your concern is held until someone else raises a concern about the same person. "
        "Send it on now, or withdraw it, first."),
    "this concern is not held: it has already been sent to reviewers": _l(
        "Your concern is not held: it has already gone to the reviewers."),
}

PATTERNS = {
    # whistle.validation
    "%(field)s contains invalid characters": _UNREADABLE_TEXT,
    "%(field)s is not valid UTF-8 text": _UNREADABLE_TEXT,
    "%(field)s must be text": _UNREADABLE_TEXT,
    "%(field)s is required": _l("%(field)s: please fill this in."),
    "%(field)s must be a single line without control characters": _l(
        "%(field)s: write this on one line, without line breaks or other control characters."),
    "%(field)s contains an invisible or text-direction character (%(char)s): remove it": _l(
        "%(field)s: this contains an invisible character, or one that changes the direction "
        "of the text (%(code)s). Remove it, for example by typing the text again instead of "
        "pasting it."),
    "%(field)s is longer than %(n)s characters": _l(
        "%(field)s: this is too long. The limit is %(n)s characters."),
    "%(field)s contains control characters": _l(
        "%(field)s: this contains control characters, which are not text. Type the text "
        "again, or paste it as plain text."),
    "%(field)s contains a character that reverses the text after it (%(char)s): remove it":
        _l("%(field)s: this contains a character that makes the text after it read backwards "
           "(%(code)s). Remove it, for example by typing that part again."),
    "%(field)s must be true or false": _UNREADABLE_CHOICE,
    "%(field)s must be a list of ids": _UNREADABLE_CHOICE,
    # whistle.web.common and whistle.cases.intake (forms and the JSON API)
    "%(key)s is not valid text": _UNREADABLE_FORM,
    "%(key)s was sent more than once": _UNREADABLE_FORM,
    "%(name)s is not allowed": _UNREADABLE_FORM,
    "duplicate key %(key)s": _UNREADABLE_FORM,
    "unknown field: %(name)s": _UNREADABLE_FORM,
    # whistle.cases.spool and whistle.cases.attachments: the limits on files
    "at most %(n)s files can be attached": _l(
        "Too many files. You can attach at most %(n)s at a time."),
    "a file is larger than %(mib)s MiB": _l(
        "A file is too large. The limit is %(mib)s MiB for each file."),
    "the files together are larger than %(mib)s MiB": _l(
        "The files are too large together. The limit is %(mib)s MiB for all of them."),
    "at most %(n)s files can be attached to a concern; it has %(files)s": _l(
        "Too many files for one report. It can have at most %(n)s in all, and it already "
        "has %(files)s."),
    "the files of a concern together may not exceed %(mib)s MiB": _l(
        "With these files, your report's files would be too large. The limit is %(mib)s MiB "
        "for all of them together."),
    "%(name)s: %(reason)s": _l(
        "%(name)s: %(reason)s. Send a smaller picture, or untick the box to keep files exactly "
        "as they are."),
    "Hidden information could not be removed from %(name)s: %(reason)s. Send it without that "
    "file, or untick the box to keep files exactly as they are.": _l(
        "Hidden information could not be removed from %(name)s: %(reason)s. Send it without "
        "that file, or untick the box to keep files exactly as they are."),
    # whistle.metadata
    "the image is too large (%(width)s x %(height)s pixels; at most %(most)s pixels can be "
    "cleaned)": _l("the picture is too large for its hidden information to be removed "
                   "(%(width)s × %(height)s pixels)"),
}

# Fixed English that pages show as it is (translated by its own text).
KNOWN = [
    _l("Thank you. Your answer was recorded."),  # the check-in (whistle.web.checkin_page)
    # Referral, erasure and agency pages (issue 23, whistle.web.lifecycle_pages).
    _l("Referral proposed: another reviewer of this case must approve it."),
    _l("Referral approved: the package is ready."),
    _l("Referral rejected."),
    _l("Erasure proposed: another reviewer of this case must approve it."),
    _l("Erased."),
    _l("Erasure rejected."),
    _l("Agency proposed: another administrator must approve it under Changes to approve."),
    _l("New key proposed: another administrator must approve it under Changes to approve."),
    _l("adding files after sending a concern is turned off"),
    _l("This case's data failed its integrity check; nothing was changed. Tell the "
       "administrators."),
    _l("Two-factor sign-in is on: you will need a code from your app each time."),
    _l("Two-factor sign-in is off."),
    # whistle.web.errors: Werkzeug's own answers, as an HTML page says them.
    _l("Whistle could not read what your browser sent. Go back, reload the page and try "
       "again."),
    _l("This page cannot be used that way. Start again from Whistle's home page."),
    # whistle.cases.kept: files kept between the form's pages (issue 20).
    _l("Files you chose earlier are no longer kept (they are kept for a few hours). "
       "Choose them again."),
]


def _isolated(value: Any) -> str:
    """A value someone typed (a file name), kept in its own direction inside the sentence."""
    return f"\u2068{value}\u2069"


def say(text: Any) -> str | None:
    """``text`` as a page says it in the current language, or None if it is not listed."""
    fixed = FIXED.get(str(text))
    if fixed is not None:
        return str(fixed)
    if not isinstance(text, Text):
        return None
    wording = PATTERNS.get(text.pattern)
    if wording is None:
        return None
    values: dict[str, Any] = {}
    for key, value in text.params.items():
        if key == "field":
            values[key] = str(FIELD_NAMES.get(str(value), SOME_FIELD))
        elif key == "name":
            values[key] = _isolated(value)
        elif isinstance(value, str):
            values[key] = say(value) or value
        else:
            values[key] = value
    try:
        return str(wording) % values
    except (KeyError, ValueError, TypeError):  # a catalogue entry that lost a placeholder
        return None
