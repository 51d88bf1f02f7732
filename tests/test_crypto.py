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


# -- signatures: Ed25519 + ML-DSA-65 ---------------------------------------------------

SIGNER = crypto.generate_signing_key()
SIGNER_PUBLIC = crypto.signing_public_key(SIGNER)


def test_a_signature_verifies_only_its_message_under_its_key() -> None:
    signature = crypto.sign(SIGNER, b"roster entry")
    assert len(SIGNER) == crypto.SIGNING_KEY_SIZE == 64
    assert len(SIGNER_PUBLIC) == crypto.SIGNING_PUBLIC_SIZE
    assert len(signature) == crypto.SIGNATURE_SIZE and signature[:1] == b"\x01"
    assert crypto.verify_signature(SIGNER_PUBLIC, b"roster entry", signature) is True
    assert crypto.verify_signature(SIGNER_PUBLIC, b"roster entrY", signature) is False
    other = crypto.signing_public_key(crypto.generate_signing_key())
    assert crypto.verify_signature(other, b"roster entry", signature) is False
    assert crypto.signing_public_key(SIGNER) == SIGNER_PUBLIC  # the public half is derived


def test_both_halves_of_the_hybrid_must_verify() -> None:
    """Neither algorithm alone is enough: a forger who breaks one still fails."""
    good = crypto.sign(SIGNER, b"m")
    other = crypto.sign(SIGNER, b"another message")
    ed_only = good[:65] + other[65:]  # a valid Ed25519 half, an ML-DSA half for another message
    ml_only = other[:65] + good[65:]
    for forged in (ed_only, ml_only, good[:65] + bytes(len(good) - 65),
                   bytes(65) + good[65:]):
        assert crypto.verify_signature(SIGNER_PUBLIC, b"m", forged) is False
    # The public key's halves are bound too: another key's ML-DSA half fails.
    stranger = crypto.signing_public_key(crypto.generate_signing_key())
    assert crypto.verify_signature(SIGNER_PUBLIC[:33] + stranger[33:], b"m", good) is False


def test_flipped_bits_in_a_signature_or_key_are_detected() -> None:
    signature = crypto.sign(SIGNER, b"m")
    for where in (0, 1, 40, 64, 65, 1000, len(signature) - 1):
        tampered = bytearray(signature)
        tampered[where] ^= 0x01
        assert crypto.verify_signature(SIGNER_PUBLIC, b"m", bytes(tampered)) is False
    for where in (0, 1, 32, 33, 500, len(SIGNER_PUBLIC) - 1):
        tampered = bytearray(SIGNER_PUBLIC)
        tampered[where] ^= 0x01
        assert crypto.verify_signature(bytes(tampered), b"m", signature) is False


@given(st.binary(max_size=4000), st.binary(max_size=64), st.binary(max_size=4000))
@settings(max_examples=80, deadline=None)
def test_verifying_malformed_input_never_raises(public: bytes, message: bytes,
                                               signature: bytes) -> None:
    assert crypto.verify_signature(public, message, signature) is False
    assert crypto.verify_signature(SIGNER_PUBLIC, message, signature) is False


def test_wrong_types_and_truncations_are_false_not_errors() -> None:
    signature = crypto.sign(SIGNER, b"m")
    for public, message, sig in ((None, b"m", signature), (SIGNER_PUBLIC, None, signature),
                                 (SIGNER_PUBLIC, b"m", None), ("text", b"m", signature),
                                 (SIGNER_PUBLIC, b"m", signature[:-1]),
                                 (SIGNER_PUBLIC, b"m", signature + b"\x00"),
                                 (SIGNER_PUBLIC[:-1], b"m", signature),
                                 (b"\x02" + SIGNER_PUBLIC[1:], b"m", signature),
                                 (SIGNER_PUBLIC, b"m", b"\x02" + signature[1:])):
        assert crypto.verify_signature(public, message, sig) is False  # type: ignore[arg-type]


def test_a_malformed_signing_key_is_a_crypto_error() -> None:
    for bad in (b"", b"\x00" * 63, b"\x00" * 65):
        with pytest.raises(crypto.CryptoError):
            crypto.sign(bad, b"m")
        with pytest.raises(crypto.CryptoError):
            crypto.signing_public_key(bad)


def test_the_signing_key_layout_is_frozen() -> None:
    """Ed25519 and ML-DSA-65 public keys are determined by their seeds: a fixed private key
    always gives this public key (0x01 | Ed25519 | ML-DSA-65), so a signing key file made
    today keeps its public half, and its signatures keep verifying, after any upgrade."""
    public = crypto.signing_public_key(bytes(range(64)))
    assert public[:1] == b"\x01"
    assert crypto.digest(public).hex() == \
        "3a40c6595622531409761745bf2adb84aded006013dd8cb88487c9070c7db617"
