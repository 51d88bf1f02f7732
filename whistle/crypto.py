"""All of Whistle's cryptography, and the only module that imports ``cryptography``.

Pure: bytes and keys in, bytes out. No Flask, no I/O, no globals, no
environment reads. Every failure raises :class:`CryptoError`.

Format version 1 (every blob starts with the version byte ``0x01``)
-------------------------------------------------------------------

Sealed content (``seal`` / ``open_sealed``)::

    0x01 | nonce (12) | AES-256-GCM ciphertext + tag (16)
    associated data = b"whistle:1:seal:" + context

``context`` names the row and the part, e.g. ``case:<id>:details``, so a
blob moved to another case or part fails to open.

Wrapped keys (``wrap_key`` / ``unwrap_key``)::

    0x01 | HPKE(ML-KEM-768 + X25519, HKDF-SHA256, AES-256-GCM) ciphertext
    info = b"whistle:1:wrap:" + context     (context binds case, key kind, recipient)

The wrapped plaintext is one 32-byte key, or two keys together (64 bytes: a
case's case key then its thread key, key kind ``case+thread``: one hybrid KEM
operation per recipient instead of two; see whistle.cases.keys).

Hybrid key pairs: the private key is 96 bytes (ML-KEM-768 64-byte seed |
X25519 32-byte scalar); the public key is 1,216 bytes (ML-KEM-768 1,184 |
X25519 32).

Password-locked private keys (``lock_private_key`` / ``unlock_private_key``)::

    0x01 | m_cost KiB (u32) | t_cost (u32) | lanes (u32) | salt (16) | sealed private key
    Argon2id(password, salt) -> 64 bytes: first 32 = key-encryption key,
    last 32 = password verifier (its SHA-256 is stored beside the blob).

Attachment chunks (``seal_chunk`` / ``open_chunk``)::

    ciphertext + tag of one chunk; nonce = chunk index (u64, 11 bytes BE) | last flag (1)
    key = HKDF-SHA256(case key, info=b"whistle:1:file:" + context)
    associated data = b"whistle:1:chunk:" + context

The nonce carries the index and the last-chunk flag, so dropping the tail,
reordering chunks or swapping chunks between files all fail to open.

Signatures (``sign`` / ``verify_signature``): a hybrid of Ed25519 and ML-DSA-65
(FIPS 204), so a forgery needs both broken (ML-DSA against a future quantum
computer, Ed25519 against a flaw in the young ML-DSA implementations)::

    private key (64)     = Ed25519 seed (32) | ML-DSA-65 seed (32)
    public key (1,985)   = 0x01 | Ed25519 public key (32) | ML-DSA-65 public key (1,952)
    signature (3,374)    = 0x01 | Ed25519 signature (64) | ML-DSA-65 signature (3,309)
    signed bytes (both)  = b"whistle:1:sign:" + message; ML-DSA context = b"whistle:1"

A signature verifies only if both halves verify over the same message. The
instance signing key (whistle.keys) signs roster entries (whistle.people.roster).
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import os
import struct
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, hpke
from cryptography.hazmat.primitives.asymmetric import ed25519, mldsa, mlkem, x25519
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.argon2 import Argon2id
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

VERSION = 1
_V = bytes([VERSION])
KEY_SIZE = 32
NONCE_SIZE = 12
PRIVATE_KEY_SIZE = 96
PUBLIC_KEY_SIZE = 1216
_MLKEM_PUB = 1184
SIGNING_KEY_SIZE = 64
SIGNING_PUBLIC_SIZE = 1 + 32 + 1952
SIGNATURE_SIZE = 1 + 64 + 3309
_SIGNED = b"whistle:1:sign:"
_MLDSA_CONTEXT = b"whistle:1"
_SUITE = hpke.Suite(hpke.KEM.MLKEM768_X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_256_GCM)
# Upper bounds on Argon2 parameters read back from a blob: a tampered row
# must not make login allocate gigabytes.
_MAX_M_COST = 1024 * 1024
_MAX_T_COST = 16
_MAX_LANES = 8


class CryptoError(Exception):
    """Any cryptographic failure: wrong key, tampered or malformed data."""


@dataclass(frozen=True)
class KdfParams:
    """Argon2id cost: memory in KiB, iterations, lanes."""

    memory_cost: int = 65536
    iterations: int = 3
    lanes: int = 1


@dataclass(frozen=True)
class KeyPair:
    private: bytes
    public: bytes


def random_key() -> bytes:
    """A fresh 256-bit symmetric key from the OS CSPRNG."""
    return os.urandom(KEY_SIZE)


def _context_bytes(label: str, context: str) -> bytes:
    return b"whistle:1:" + label.encode() + b":" + context.encode("utf-8")


# -- sealed content -------------------------------------------------------


def seal(key: bytes, plaintext: bytes, context: str) -> bytes:
    """Encrypt ``plaintext`` under ``key``; only the same key and ``context`` open it."""
    nonce = os.urandom(NONCE_SIZE)
    try:
        body = AESGCM(key).encrypt(nonce, plaintext, _context_bytes("seal", context))
    except (ValueError, TypeError) as exc:
        raise CryptoError("cannot seal") from exc
    return _V + nonce + body


def open_sealed(key: bytes, blob: bytes, context: str) -> bytes:
    """Decrypt a blob from :func:`seal`; raises CryptoError on any mismatch."""
    if len(blob) < 1 + NONCE_SIZE + 16 or blob[:1] != _V:
        raise CryptoError("malformed sealed blob")
    try:
        return AESGCM(key).decrypt(
            blob[1 : 1 + NONCE_SIZE], blob[1 + NONCE_SIZE :], _context_bytes("seal", context)
        )
    except (InvalidTag, ValueError, TypeError) as exc:
        raise CryptoError("sealed blob does not open") from exc


# -- hybrid key pairs and wrapping ----------------------------------------


def _private_from_bytes(private: bytes) -> hpke.MLKEM768X25519PrivateKey:
    if len(private) != PRIVATE_KEY_SIZE:
        raise CryptoError("malformed private key")
    try:
        return hpke.MLKEM768X25519PrivateKey(
            mlkem.MLKEM768PrivateKey.from_seed_bytes(private[:64]),
            x25519.X25519PrivateKey.from_private_bytes(private[64:]),
        )
    except (ValueError, TypeError) as exc:
        raise CryptoError("malformed private key") from exc


def _public_from_bytes(public: bytes) -> hpke.MLKEM768X25519PublicKey:
    return _decoded_public(bytes(public))


@functools.lru_cache(maxsize=512)
def _decoded_public(public: bytes) -> hpke.MLKEM768X25519PublicKey:
    """Decoded once per process for each key (reviewers' and the recovery key are used on
    every submission; decoding is a noticeable part of a wrap). Public keys are public, and a
    key that does not decode raises, which is not cached."""
    if len(public) != PUBLIC_KEY_SIZE:
        raise CryptoError("malformed public key")
    try:
        return hpke.MLKEM768X25519PublicKey(
            mlkem.MLKEM768PublicKey.from_public_bytes(public[:_MLKEM_PUB]),
            x25519.X25519PublicKey.from_public_bytes(public[_MLKEM_PUB:]),
        )
    except (ValueError, TypeError) as exc:
        raise CryptoError("malformed public key") from exc


def keypair_from_seed(seed: bytes) -> KeyPair:
    """The hybrid key pair determined by a 96-byte seed (64 ML-KEM + 32 X25519)."""
    if len(seed) != PRIVATE_KEY_SIZE:
        raise CryptoError("seed must be 96 bytes")
    mk = mlkem.MLKEM768PrivateKey.from_seed_bytes(seed[:64])
    xk = x25519.X25519PrivateKey.from_private_bytes(seed[64:])
    public = mk.public_key().public_bytes_raw() + xk.public_key().public_bytes_raw()
    return KeyPair(private=bytes(seed), public=public)


def generate_keypair() -> KeyPair:
    """A fresh ML-KEM-768 + X25519 key pair."""
    return keypair_from_seed(os.urandom(PRIVATE_KEY_SIZE))


def check_public_key(public: bytes) -> None:
    """Raise CryptoError unless ``public`` is a well-formed hybrid public key."""
    _public_from_bytes(public)


def wrap_key(key: bytes, recipient_public: bytes, context: str) -> bytes:
    """HPKE-encrypt a symmetric key so only the holder of the matching private key reads it."""
    return wrap_keys([(key, context)], recipient_public)[0]


def wrap_keys(keys: list[tuple[bytes, str]], recipient_public: bytes) -> list[bytes]:
    """``wrap_key`` for several (key, context) pairs to one recipient (its public key is
    decoded once)."""
    public = _public_from_bytes(recipient_public)
    try:
        return [_V + _SUITE.encrypt(key, public, _context_bytes("wrap", context))
                for key, context in keys]
    except CryptoError:
        raise
    except Exception as exc:  # noqa: BLE001 - the young HPKE API raises several types
        raise CryptoError("cannot wrap key") from exc


def unwrap_key(blob: bytes, recipient_private: bytes, context: str, size: int = KEY_SIZE
               ) -> bytes:
    """Open a blob from :func:`wrap_key`; CryptoError for a wrong key, context or tampering,
    or if what it holds is not ``size`` bytes (two keys wrapped together: 64)."""
    return _unwrap(blob, _private_from_bytes(recipient_private), context, size)


def unwrap_keys(blobs: list[tuple[bytes, str]], recipient_private: bytes) -> list[bytes]:
    """``unwrap_key`` for several (blob, context) pairs of one recipient (its key is
    expanded once: the ML-KEM private key from its seed is most of the work)."""
    private = _private_from_bytes(recipient_private)
    return [_unwrap(blob, private, context) for blob, context in blobs]


def _unwrap(blob: bytes, private: hpke.MLKEM768X25519PrivateKey, context: str,
            size: int = KEY_SIZE) -> bytes:
    if len(blob) < 2 or blob[:1] != _V:
        raise CryptoError("malformed wrapped key")
    try:
        key = _SUITE.decrypt(blob[1:], private, _context_bytes("wrap", context))
    except CryptoError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise CryptoError("wrapped key does not open") from exc
    if len(key) != size:
        raise CryptoError("wrapped key has the wrong size")
    return key


# -- passwords -----------------------------------------------------------


def _argon2(password: str, salt: bytes, params: KdfParams) -> bytes:
    if not (8 <= params.memory_cost <= _MAX_M_COST and 1 <= params.iterations <= _MAX_T_COST
            and 1 <= params.lanes <= _MAX_LANES):
        raise CryptoError("Argon2 parameters out of range")
    kdf = Argon2id(
        salt=salt, length=64, iterations=params.iterations, lanes=params.lanes,
        memory_cost=max(params.memory_cost, 8 * params.lanes),
    )
    return kdf.derive(password.encode("utf-8"))


def lock_private_key(private: bytes, password: str, params: KdfParams) -> tuple[bytes, bytes]:
    """Encrypt a private key under a password. Returns (locked blob, password check).

    The password check is SHA-256 of an Argon2id output separate from the
    key-encryption key, so storing it reveals nothing about the KEK.
    """
    salt = os.urandom(16)
    derived = _argon2(password, salt, params)
    header = _V + struct.pack(">III", params.memory_cost, params.iterations, params.lanes) + salt
    sealed = seal(derived[:32], private, "private-key:" + header.hex())
    return header + sealed, hashlib.sha256(derived[32:]).digest()


def unlock_private_key(locked: bytes, password: str, check: bytes) -> bytes:
    """Recover the private key; CryptoError if the password is wrong or the blob altered."""
    if len(locked) < 29 or locked[:1] != _V:
        raise CryptoError("malformed locked key")
    m, t, p = struct.unpack(">III", locked[1:13])
    header, sealed = locked[:29], locked[29:]
    derived = _argon2(password, locked[13:29], KdfParams(m, t, p))
    if not hmac.compare_digest(hashlib.sha256(derived[32:]).digest(), check):
        raise CryptoError("wrong password")
    return open_sealed(derived[:32], sealed, "private-key:" + header.hex())


def burn_password_time(password: str, params: KdfParams) -> None:
    """Spend the same Argon2id work as a real check, for unknown accounts."""
    _argon2(password, b"\x00" * 16, params)


# -- secrets held by a client (sessions) and keyed hashes ----------------


def derive_key(secret: bytes, label: str, length: int = KEY_SIZE) -> bytes:
    """HKDF-SHA256 of a high-entropy secret, separated by ``label``."""
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=None,
                info=b"whistle:1:kdf:" + label.encode()).derive(secret)


def keyed_hash(pepper: bytes, label: str, data: bytes) -> bytes:
    """HMAC-SHA256 under a server-side pepper; used as a lookup id."""
    return hmac.new(pepper, b"whistle:1:" + label.encode() + b":" + data, hashlib.sha256).digest()


def digest(data: bytes) -> bytes:
    """SHA-256."""
    return hashlib.sha256(data).digest()


def chain_hash(previous: bytes, record: bytes) -> bytes:
    """One link of a hash chain: SHA-256(previous | record)."""
    return hashlib.sha256(b"whistle:1:chain:" + previous + record).digest()


def reporter_private_key(token_entropy: bytes, pepper: bytes) -> bytes:
    """The reporter's private key alone: what a status check needs (no public-key computation)."""
    return HKDF(algorithm=hashes.SHA256(), length=PRIVATE_KEY_SIZE, salt=pepper,
                info=b"whistle:1:reporter-key").derive(token_entropy)


def reporter_keypair(token_entropy: bytes, pepper: bytes) -> KeyPair:
    """The reporter's hybrid key pair, derived from the token and a server pepper."""
    return keypair_from_seed(reporter_private_key(token_entropy, pepper))


# -- attachments: chunked streams ---------------------------------------


def file_key(case_key: bytes, context: str) -> bytes:
    """Per-file key derived from the case key."""
    return derive_key(case_key, "file:" + context)


def _chunk_nonce(index: int, last: bool) -> bytes:
    if not 0 <= index < 2**64:
        raise CryptoError("chunk index out of range")
    return index.to_bytes(11, "big") + (b"\x01" if last else b"\x00")


def seal_chunk(key: bytes, index: int, last: bool, data: bytes, context: str) -> bytes:
    """Encrypt chunk ``index`` of a stream; ``last`` marks the final chunk."""
    return AESGCM(key).encrypt(_chunk_nonce(index, last), data, _context_bytes("chunk", context))


def open_chunk(key: bytes, index: int, last: bool, blob: bytes, context: str) -> bytes:
    """Decrypt one chunk; CryptoError if it is not chunk ``index`` (and ``last``) of this stream."""
    try:
        return AESGCM(key).decrypt(_chunk_nonce(index, last), blob,
                                   _context_bytes("chunk", context))
    except (InvalidTag, ValueError) as exc:
        raise CryptoError("chunk does not open") from exc


# -- signatures: Ed25519 + ML-DSA-65 -------------------------------------


def generate_signing_key() -> bytes:
    """A fresh hybrid signing key: 64 bytes (Ed25519 seed | ML-DSA-65 seed)."""
    return os.urandom(SIGNING_KEY_SIZE)


@functools.lru_cache(maxsize=8)
def _signing_keys(private: bytes) -> tuple[ed25519.Ed25519PrivateKey, mldsa.MLDSA65PrivateKey]:
    """Expanded once per process (ML-DSA's expansion from the seed is most of the work). A
    key that does not expand raises, which is not cached."""
    if len(private) != SIGNING_KEY_SIZE:
        raise CryptoError("malformed signing key")
    try:
        return (ed25519.Ed25519PrivateKey.from_private_bytes(private[:32]),
                mldsa.MLDSA65PrivateKey.from_seed_bytes(private[32:]))
    except (ValueError, TypeError) as exc:
        raise CryptoError("malformed signing key") from exc


def signing_public_key(private: bytes) -> bytes:
    """The public half of a signing key from :func:`generate_signing_key` (1,985 bytes)."""
    ed, ml = _signing_keys(bytes(private))
    return _V + ed.public_key().public_bytes_raw() + ml.public_key().public_bytes_raw()


def sign(private: bytes, message: bytes) -> bytes:
    """Both signatures over ``message``: 0x01 | Ed25519 (64) | ML-DSA-65 (3,309)."""
    ed, ml = _signing_keys(bytes(private))
    signed = _SIGNED + message
    try:
        return _V + ed.sign(signed) + ml.sign(signed, _MLDSA_CONTEXT)
    except Exception as exc:  # noqa: BLE001 - the young ML-DSA API raises several types
        raise CryptoError("cannot sign") from exc


@functools.lru_cache(maxsize=8)
def _verifying_keys(public: bytes
                    ) -> tuple[ed25519.Ed25519PublicKey, mldsa.MLDSA65PublicKey] | None:
    if len(public) != SIGNING_PUBLIC_SIZE or public[:1] != _V:
        return None
    try:
        return (ed25519.Ed25519PublicKey.from_public_bytes(public[1:33]),
                mldsa.MLDSA65PublicKey.from_public_bytes(public[33:]))
    except (ValueError, TypeError):
        return None


def verify_signature(public: bytes, message: bytes, signature: bytes) -> bool:
    """True only if both halves of ``signature`` verify ``message`` under ``public``.
    Never raises: a malformed key or signature is simply False."""
    try:
        found = _verifying_keys(bytes(public))
        signature = bytes(signature)
        if found is None or len(signature) != SIGNATURE_SIZE or signature[:1] != _V:
            return False
        signed = _SIGNED + bytes(message)
        found[0].verify(signature[1:65], signed)
        found[1].verify(signature[65:], signed, _MLDSA_CONTEXT)
    except Exception:  # noqa: BLE001 - InvalidSignature, or anything odd about the input
        return False
    return True


# -- age (referral packages to outside agencies, issue 23) --------------------------------


def check_age_recipient(text: str) -> str:
    """The canonical form of an age X25519 recipient (``age1...``, Bech32); CryptoError
    for anything else."""
    from pyrage import x25519

    if not isinstance(text, str) or not text.startswith("age1") or len(text) > 100:
        raise CryptoError("not an age X25519 recipient")
    try:
        return str(x25519.Recipient.from_str(text))
    except Exception as exc:  # noqa: BLE001 - pyrage raises its own types for bad keys
        raise CryptoError("not an age X25519 recipient") from exc


def age_encrypt(data: bytes, recipient: str) -> bytes:
    """``data`` encrypted to one age X25519 recipient, in the binary age format (opens with
    ``age -d -i key.txt`` or ``rage``). Only the recipient's identity can read it."""
    import pyrage
    from pyrage import x25519

    try:
        return bytes(pyrage.encrypt(data, [x25519.Recipient.from_str(recipient)]))
    except Exception as exc:  # noqa: BLE001
        raise CryptoError("cannot encrypt to this age recipient") from exc


# -- 2-of-n threshold sharing of a key (a reporter's identity key) -------------------------
#
# Shamir's secret sharing over GF(2^128) (pycryptodome's ``Crypto.Protocol.SecretSharing``,
# which shares 16-byte secrets): a 32-byte key is shared as its two 16-byte halves, each
# split 2-of-n with the same share indices. One share (33 bytes) = index (1 byte, 1..255)
# | share of the first half (16) | share of the second half (16). Any two shares with
# different indices give the key back; one share alone says nothing about it.

MAX_SHARES = 255
SHARE_SIZE = 1 + KEY_SIZE


def split_key(key: bytes, holders: int) -> list[bytes]:
    """Split a 32-byte key 2-of-``holders`` (2..255); share i has index i + 1."""
    # pycryptodome (maintained), which installs as ``Crypto`` like the retired PyCrypto.
    from Crypto.Protocol.SecretSharing import Shamir  # nosec B413

    if len(key) != KEY_SIZE or not 2 <= holders <= MAX_SHARES:
        raise CryptoError("cannot split: a 32-byte key over 2 to 255 holders")
    first = Shamir.split(2, holders, key[:16])
    second = Shamir.split(2, holders, key[16:])
    return [bytes([i]) + a + b for (i, a), (_j, b) in zip(first, second)]


def combine_key(shares: list[bytes]) -> bytes:
    """The key from two (or more) shares of :func:`split_key` with different indices;
    CryptoError for malformed or too few shares. (Two shares of different keys combine to
    a wrong key: the caller opens a sealed blob with it to know.)"""
    from Crypto.Protocol.SecretSharing import Shamir  # nosec B413 - pycryptodome

    found = {s[0]: s for s in shares if len(s) == SHARE_SIZE and s[0] >= 1}
    if len(found) < 2:
        raise CryptoError("two shares with different indices are needed")
    two = [found[i] for i in sorted(found)[:2]]
    try:
        return (Shamir.combine([(s[0], s[1:17]) for s in two])
                + Shamir.combine([(s[0], s[17:]) for s in two]))
    except (ValueError, TypeError) as exc:
        raise CryptoError("shares do not combine") from exc
