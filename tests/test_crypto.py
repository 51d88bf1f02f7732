"""The envelope (whistle.crypto): round trips, tamper and swap detection, frozen format."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from whistle import crypto

KEY = bytes(range(32))
FAST = crypto.KdfParams(memory_cost=1024, iterations=1, lanes=1)


@given(st.binary(max_size=4096), st.text(max_size=40))
@settings(max_examples=60, deadline=None)
def test_seal_then_open_returns_the_plaintext(plaintext: bytes, context: str) -> None:
    assert crypto.open_sealed(KEY, crypto.seal(KEY, plaintext, context), context) == plaintext


def test_sealed_blob_moved_to_another_part_or_case_fails_to_open() -> None:
    blob = crypto.seal(KEY, b"details", "case:A:details")
    for other in ("case:B:details", "case:A:identity"):
        with pytest.raises(crypto.CryptoError):
            crypto.open_sealed(KEY, blob, other)


def test_every_flipped_bit_in_a_sealed_blob_is_detected() -> None:
    blob = bytearray(crypto.seal(KEY, b"0123456789abcdef", "c"))
    for i in range(len(blob) * 8):
        tampered = bytearray(blob)
        tampered[i // 8] ^= 1 << (i % 8)
        with pytest.raises(crypto.CryptoError):
            crypto.open_sealed(KEY, bytes(tampered), "c")


def test_truncated_or_extended_blobs_fail() -> None:
    blob = crypto.seal(KEY, b"hello", "c")
    for bad in (blob[:-1], blob + b"\x00", b"", blob[:5]):
        with pytest.raises(crypto.CryptoError):
            crypto.open_sealed(KEY, bad, "c")


def test_nonces_never_repeat() -> None:
    nonces = {crypto.seal(KEY, b"", "c")[1:13] for _ in range(20000)}
    assert len(nonces) == 20000


def test_wrapped_key_opens_only_for_its_recipient_and_context() -> None:
    alice, bob = crypto.generate_keypair(), crypto.generate_keypair()
    assert len(alice.public) == crypto.PUBLIC_KEY_SIZE
    wrapped = crypto.wrap_key(KEY, alice.public, "case:A:case:reviewer:alice")
    assert crypto.unwrap_key(wrapped, alice.private, "case:A:case:reviewer:alice") == KEY
    with pytest.raises(crypto.CryptoError):
        crypto.unwrap_key(wrapped, bob.private, "case:A:case:reviewer:alice")
    with pytest.raises(crypto.CryptoError):
        crypto.unwrap_key(wrapped, alice.private, "case:A:case:reviewer:bob")
    tampered = bytearray(wrapped)
    tampered[-1] ^= 1
    with pytest.raises(crypto.CryptoError):
        crypto.unwrap_key(bytes(tampered), alice.private, "case:A:case:reviewer:alice")


def test_keypair_is_reproducible_from_its_seed() -> None:
    pair = crypto.generate_keypair()
    assert crypto.keypair_from_seed(pair.private) == pair


def test_password_locked_key_needs_the_password() -> None:
    pair = crypto.generate_keypair()
    locked, check = crypto.lock_private_key(pair.private, "right password!", FAST)
    assert pair.private not in locked
    assert crypto.unlock_private_key(locked, "right password!", check) == pair.private
    with pytest.raises(crypto.CryptoError):
        crypto.unlock_private_key(locked, "wrong password!", check)


def test_locked_key_refuses_absurd_argon2_parameters() -> None:
    locked, check = crypto.lock_private_key(b"\x01" * 96, "pw-pw-pw-pw-pw", FAST)
    hostile = locked[:1] + (2**31).to_bytes(4, "big") + locked[5:]
    with pytest.raises(crypto.CryptoError):
        crypto.unlock_private_key(hostile, "pw-pw-pw-pw-pw", check)


def test_reporter_keypair_depends_on_token_and_pepper() -> None:
    a = crypto.reporter_keypair(b"t" * 16, b"p" * 32)
    assert a == crypto.reporter_keypair(b"t" * 16, b"p" * 32)
    assert a != crypto.reporter_keypair(b"u" * 16, b"p" * 32)
    assert a != crypto.reporter_keypair(b"t" * 16, b"q" * 32)


def test_chunks_cannot_be_reordered_truncated_or_swapped() -> None:
    k = crypto.file_key(KEY, "case:A:attachment:1")
    c0 = crypto.seal_chunk(k, 0, False, b"first", "f1")
    c1 = crypto.seal_chunk(k, 1, True, b"last", "f1")
    assert crypto.open_chunk(k, 1, True, c1, "f1") == b"last"
    with pytest.raises(crypto.CryptoError):
        crypto.open_chunk(k, 1, False, c0, "f1")  # reordered
    with pytest.raises(crypto.CryptoError):
        crypto.open_chunk(k, 0, True, c0, "f1")  # truncated: chunk 0 posing as the last
    with pytest.raises(crypto.CryptoError):
        crypto.open_chunk(k, 1, True, c1, "f2")  # swapped into another file


# A version-1 blob made once (key bytes 0..31, nonce bytes 0..11) and kept:
# format changes must never stop old cases from opening.
FROZEN_V1 = "01000102030405060708090a0b2c6cb96cabc5a375fe36f2f95645980240b51189d27d02377c0cbb00"


def test_version_one_blob_still_opens() -> None:
    assert crypto.open_sealed(KEY, bytes.fromhex(FROZEN_V1), "kat") == b"known answer"
