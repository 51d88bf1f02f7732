"""Fast tests of the crypto helpers that identity release (issue 22) and referrals (issue 23)
added: 2-of-n key sharing (``split_key``/``combine_key``) and age packages
(``check_age_recipient``/``age_encrypt``). No app is built, so mutation testing
(``scripts/mutate``) runs them for every mutant of these functions."""

from __future__ import annotations

import itertools
import shutil
import subprocess  # nosec B404 - runs the real age tool on files the test wrote
from pathlib import Path

import pytest
from Crypto.Protocol.SecretSharing import Shamir
from pyrage import x25519

from tests.conftest import need
from whistle import crypto

KEY = bytes(range(100, 132))


def test_split_gives_one_33_byte_share_per_holder_indexed_from_one() -> None:
    for holders in (2, 3, 7, 255):
        shares = crypto.split_key(KEY, holders)
        assert len(shares) == holders
        assert [s[0] for s in shares] == list(range(1, holders + 1))
        assert {len(s) for s in shares} == {crypto.SHARE_SIZE} == {33}


def test_any_two_shares_give_the_key_back_and_more_than_two_do_too() -> None:
    shares = crypto.split_key(KEY, 5)
    for a, b in itertools.permutations(shares, 2):
        assert crypto.combine_key([a, b]) == KEY
    assert crypto.combine_key(shares) == KEY
    assert crypto.combine_key(shares[2:]) == KEY


def test_the_share_layout_is_index_then_the_two_halves_shared_apart() -> None:
    """Bytes 1-16 share the key's first half and 17-32 its second, each with the share's
    index: pycryptodome's Shamir alone gives each half back (the documented construction)."""
    a, b = crypto.split_key(KEY, 3)[:2]
    assert Shamir.combine([(a[0], a[1:17]), (b[0], b[1:17])]) == KEY[:16]
    assert Shamir.combine([(a[0], a[17:]), (b[0], b[17:])]) == KEY[16:]


def test_shares_are_fresh_each_time_and_one_share_alone_is_not_the_key() -> None:
    first, second = crypto.split_key(KEY, 2), crypto.split_key(KEY, 2)
    assert first != second  # random coefficients
    for share in first + second:
        assert KEY[:16] not in share and KEY[16:] not in share
    assert crypto.combine_key([first[0], second[1]]) != KEY  # two different splittings


def test_split_refuses_a_key_of_the_wrong_size_or_a_holder_count_out_of_range() -> None:
    for key, holders in ((KEY[:31], 2), (KEY + b"\x00", 2), (b"", 2), (KEY, 1), (KEY, 0),
                         (KEY, 256), (KEY, -2)):
        with pytest.raises(crypto.CryptoError,
                           match="^cannot split: a 32-byte key over 2 to 255 holders$"):
            crypto.split_key(key, holders)


def test_combine_needs_two_well_formed_shares_with_different_indices() -> None:
    a, b = crypto.split_key(KEY, 2)
    refused = [
        [], [a], [a, a], [a, bytes(a)],            # one index only
        [a, b[:-1]], [a, b + b"\x00"],             # the other share malformed
        [a, b"\x00" + b[1:]],                      # index 0 is not a share
        [a[:-1], b[:-1]],
    ]
    for shares in refused:
        with pytest.raises(crypto.CryptoError,
                           match="^two shares with different indices are needed$"):
            crypto.combine_key(shares)
    # A malformed share beside two good ones is ignored, not fatal.
    assert crypto.combine_key([b"\x03" + b"x" * 5, a, b]) == KEY


def test_the_two_lowest_indices_are_the_ones_combined() -> None:
    a, b, c = crypto.split_key(KEY, 3)
    damaged = c[:1] + bytes(x ^ 0xFF for x in c[1:])
    assert crypto.combine_key([damaged, b, a]) == KEY  # c is never read
    assert crypto.combine_key([damaged, a]) != KEY


# -- age ------------------------------------------------------------------------------


def test_a_real_age_recipient_is_accepted_in_its_canonical_form() -> None:
    public = str(x25519.Identity.generate().to_public())
    assert crypto.check_age_recipient(public) == public


def test_anything_but_an_age_x25519_recipient_is_refused() -> None:
    public = str(x25519.Identity.generate().to_public())
    broken = public[:-1] + ("q" if public[-1] != "q" else "p")  # checksum no longer holds
    secret = str(x25519.Identity.generate())
    for bad in ("", "age1", broken, public + "q", public[:-2], "x" + public[1:],
                public + "q" * 100, secret, "ssh-ed25519 AAAA", 12345, None, b"age1"):
        with pytest.raises(crypto.CryptoError, match="^not an age X25519 recipient$"):
            crypto.check_age_recipient(bad)  # type: ignore[arg-type]


def test_age_encrypt_makes_a_package_only_the_recipient_opens(tmp_path: Path) -> None:
    import pyrage

    identity, other = x25519.Identity.generate(), x25519.Identity.generate()
    data = b"manifest\n\x00\xff" + bytes(range(256)) * 40
    package = crypto.age_encrypt(data, str(identity.to_public()))
    assert package.startswith(b"age-encryption.org/v1\n-> X25519 ")
    assert data not in package
    assert bytes(pyrage.decrypt(package, [identity])) == data
    with pytest.raises(pyrage.DecryptError):
        pyrage.decrypt(package, [other])
    assert crypto.age_encrypt(data, str(identity.to_public())) != package  # fresh each time
    # The real age tool opens it (the interoperable format agencies use).
    tool = shutil.which("age")
    if tool is None:
        need("the age tool", FileNotFoundError("age"))
        return
    (tmp_path / "key.txt").write_text(str(identity) + "\n")
    (tmp_path / "package.age").write_bytes(package)
    opened = subprocess.run([tool, "-d", "-i", str(tmp_path / "key.txt"),  # nosec B603
                             str(tmp_path / "package.age")], capture_output=True, check=True)
    assert opened.stdout == data


def test_age_encrypt_refuses_a_bad_recipient_with_its_own_message() -> None:
    for bad in ("age1notarecipient", "", "AGE-SECRET-KEY-1XYZ"):
        with pytest.raises(crypto.CryptoError, match="^cannot encrypt to this age recipient$"):
            crypto.age_encrypt(b"data", bad)


def test_shares_are_told_apart_by_their_index_byte_alone() -> None:
    """Two shares whose share bytes happen to begin alike are still two shares: found by
    searching splittings until the first byte after the index repeats (about 1 in 256)."""
    for _ in range(20000):
        a, b = crypto.split_key(KEY, 2)
        if a[1] == b[1]:
            break
    else:
        pytest.fail("no splitting with a repeated byte found")
    assert crypto.combine_key([a, b]) == KEY
