"""The reporter's token: 128 bits shown once as 12 BIP-39 words with a checksum.

Accepted back case-insensitively, with any mix of spaces and dashes between
words. The server keeps only a keyed hash (see ``lookup_id``).
"""

from __future__ import annotations

import re
import secrets

from mnemonic import Mnemonic

from whistle import crypto

TOKEN_BYTES = 16
WORDS = 12
MAX_TOKEN_CHARS = 256  # longer input is refused before any hashing or lookup
_SEPARATORS = re.compile(r"[\s\-_.,]+")
_mnemonic = Mnemonic("english")
_wordset = frozenset(_mnemonic.wordlist)
_index = {w: i for i, w in enumerate(_mnemonic.wordlist)}  # BIP-39: 11 bits per word


def new_token() -> tuple[str, bytes]:
    """A fresh token: (the 12 words to show once, its 16 bytes of entropy)."""
    entropy = secrets.token_bytes(TOKEN_BYTES)
    return _mnemonic.to_mnemonic(entropy), entropy


def parse(text: str) -> bytes | None:
    """The entropy behind a typed token, or None if it cannot be one of ours."""
    if len(text) > MAX_TOKEN_CHARS:
        return None
    words = [w for w in _SEPARATORS.split(text.strip().lower()) if w]
    if len(words) != WORDS or any(w not in _wordset for w in words):
        return None
    # BIP-39 by hand (the mnemonic package searches its word list linearly, twice):
    # 12 words x 11 bits = 128 bits of entropy, then the first 4 bits of its SHA-256.
    bits = 0
    for w in words:
        bits = (bits << 11) | _index[w]
    checksum_bits = WORDS * 11 - TOKEN_BYTES * 8
    entropy = (bits >> checksum_bits).to_bytes(TOKEN_BYTES, "big")
    if crypto.digest(entropy)[0] >> (8 - checksum_bits) != bits & ((1 << checksum_bits) - 1):
        return None
    return entropy


def lookup_id(pepper: bytes, entropy: bytes) -> bytes:
    """The only form in which a token is stored: HMAC-SHA256 under a pepper kept outside the DB."""
    return crypto.keyed_hash(pepper, "token", entropy)
