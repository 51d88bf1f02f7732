"""How hard a password is to guess (issue 21): zxcvbn's estimate, said on the server, so the
"meter" works without JavaScript.

A reviewer's password locks their private key: a stolen database lets an attacker guess it
offline against Argon2id. Passwords zxcvbn rates 0 or 1 (fewer than about a million
guesses: common passwords, repeats, keyboard runs, a name with a year) are refused; 2 to 4
are accepted and the rating is shown after a change. Only the first ``_EVALUATED``
characters are rated (zxcvbn's time grows with length; longer passwords are long anyway).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from zxcvbn import zxcvbn

from whistle.errors import InvalidInput

_EVALUATED = 72
WEAKEST_ACCEPTED = 2
LABELS = {0: "very weak", 1: "weak", 2: "fair", 3: "good", 4: "strong"}
TOO_GUESSABLE = ("this password is easy to guess: use a longer passphrase of several "
                 "unrelated words")


@dataclass(frozen=True)
class Rating:
    score: int  # 0 (guessed at once) to 4 (very hard to guess)
    label: str  # one of LABELS' values


def rate(password: str, personal: Iterable[str] = ()) -> Rating:
    """zxcvbn's score, counting the account's own name and address as easy guesses."""
    inputs = [w for item in personal for w in item.replace("@", " ").replace(".", " ").split()
              if len(w) > 2]
    score = int(zxcvbn(password[:_EVALUATED], user_inputs=inputs[:20])["score"])
    return Rating(score, LABELS[score])


def check(password: str, personal: Iterable[str] = ()) -> Rating:
    """The rating, or InvalidInput when the password is too easy to guess."""
    rating = rate(password, personal)
    if rating.score < WEAKEST_ACCEPTED:
        raise InvalidInput(TOO_GUESSABLE, "password", "weak_password")
    return rating
