"""The encrypted upload spool: what Werkzeug writes a file part into while it parses a request.

Every 64 KiB written is sealed under a random key that exists only in this process's memory
(``crypto.seal_chunk``); the ciphertext stays in memory or, past 1 MiB, goes to an unlinked
temporary file. Limits are enforced as bytes arrive, so an oversized upload stops at the
first byte over. Nothing plaintext ever reaches the disk (Werkzeug's default would spool
file parts over 500 KB to temporary files in plaintext).
"""

from __future__ import annotations

import io
import tempfile
from typing import IO, Any, cast

from whistle import crypto
from whistle.errors import InvalidInput, Text

CHUNK_SIZE = 64 * 1024
TAG = 16
_SPOOL_MEMORY = 1024 * 1024


def too_large(message: str) -> InvalidInput:
    return InvalidInput(message, "attachment", code="too_large", status=413)


def mebibytes(n: int) -> str:
    """A size in MiB as people write it: ``10``, ``0.5``."""
    return f"{n / 1048576:g}"


# The limits as messages (whistle.errors.Text: the pages say them in the reader's language).
def file_too_large(max_bytes: int) -> InvalidInput:
    return too_large(Text("a file is larger than %(mib)s MiB", mib=mebibytes(max_bytes)))


def files_too_large(max_total: int) -> InvalidInput:
    return too_large(Text("the files together are larger than %(mib)s MiB",
                          mib=mebibytes(max_total)))


def too_many_files(max_files: int) -> InvalidInput:
    return too_large(Text("at most %(n)s files can be attached", n=max_files))


class Budget:
    """Bytes still allowed for all the files of one request."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.left = total

    def take(self, n: int) -> None:
        self.left -= n
        if self.left < 0:
            raise files_too_large(self.total)


class EncryptedSpool(io.RawIOBase):
    """A byte stream, written once then read, whose contents exist outside memory only encrypted.

    Written bytes are sealed in 64 KiB chunks (``crypto.seal_chunk``, nonce =
    index and last flag) under a key made here and never stored; ciphertext is
    kept in memory up to ``memory_limit`` bytes, then in an unlinked temporary
    file. The first ``seek`` or ``read`` seals the final chunk; reads decrypt
    one chunk at a time. ``max_bytes`` and ``budget`` stop a write that would
    go over a limit (InvalidInput, 413) before anything more is kept.
    """

    _CONTEXT = "upload-spool"

    def __init__(self, max_bytes: int | None = None, budget: Budget | None = None,
                 memory_limit: int = _SPOOL_MEMORY) -> None:
        super().__init__()
        self._key: bytes | None = crypto.random_key()
        self._pending = bytearray()
        self._store: IO[bytes] = io.BytesIO()
        self._on_disk = False
        self._memory_limit = memory_limit
        self._max_bytes = max_bytes
        self._budget = budget
        self._size = 0
        self._chunks = 0
        self._sealed = False
        self._pos = 0
        self._cached: tuple[int, bytes] | None = None

    @property
    def size(self) -> int:
        return self._size

    @property
    def on_disk(self) -> bool:
        return self._on_disk

    def readable(self) -> bool:
        return True

    def writable(self) -> bool:
        return not self._sealed

    def seekable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        if self._sealed or self.closed:
            raise ValueError("the spool is read-only once reading has started")
        n = len(data)
        if self._max_bytes is not None and self._size + n > self._max_bytes:
            raise file_too_large(self._max_bytes)
        if self._budget is not None:
            self._budget.take(n)
        self._size += n
        self._pending += data
        while len(self._pending) >= CHUNK_SIZE:
            self._put(bytes(self._pending[:CHUNK_SIZE]), last=False)
            del self._pending[:CHUNK_SIZE]
        return n

    def _key_or_fail(self) -> bytes:
        if self._key is None:
            raise ValueError("the spool is closed")
        return self._key

    def _put(self, plain: bytes, last: bool) -> None:
        blob = crypto.seal_chunk(self._key_or_fail(), self._chunks, last, plain, self._CONTEXT)
        self._store.seek(0, io.SEEK_END)
        self._store.write(blob)
        self._chunks += 1
        if not self._on_disk and self._store.tell() > self._memory_limit:
            disk = tempfile.TemporaryFile()  # noqa: SIM115 - lives as long as the spool
            disk.write(cast(io.BytesIO, self._store).getbuffer())
            self._store = disk
            self._on_disk = True

    def _seal(self) -> None:
        if not self._sealed:
            # Every stream ends with a chunk flagged last (empty if need be).
            self._put(bytes(self._pending), last=True)
            self._pending = bytearray()
            self._sealed = True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        self._seal()
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        if base + offset < 0:
            raise ValueError("negative seek position")
        self._pos = base + offset
        return self._pos

    def tell(self) -> int:
        return self._pos if self._sealed else self._size

    def _chunk(self, index: int) -> bytes:
        if self._cached is not None and self._cached[0] == index:
            return self._cached[1]
        key = self._key_or_fail()
        last = index == self._chunks - 1
        length = (self._size - index * CHUNK_SIZE if last else CHUNK_SIZE) + TAG
        self._store.seek(index * (CHUNK_SIZE + TAG))
        blob = self._store.read(length)
        plain = crypto.open_chunk(key, index, last, blob, self._CONTEXT)
        self._cached = (index, plain)
        return plain

    def read(self, size: int | None = -1) -> bytes:
        """Up to ``size`` bytes (all if negative); a read never crosses a chunk boundary."""
        if self.closed:
            raise ValueError("read from a closed spool")
        self._seal()
        if self._pos >= self._size:
            return b""
        if size is None or size < 0:
            parts = []
            while self._pos < self._size:
                parts.append(self.read(CHUNK_SIZE))
            return b"".join(parts)
        index, offset = divmod(self._pos, CHUNK_SIZE)
        data = self._chunk(index)[offset:offset + size]
        self._pos += len(data)
        return data

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[:len(data)] = data
        return len(data)

    def close(self) -> None:
        if not self.closed:
            self._key = None
            self._cached = None
            self._pending = bytearray()
            self._store.close()
        super().close()
