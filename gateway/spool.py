"""A bounded, durable on-disk spool for messages the database could not take yet.

While PostgreSQL is unreachable the gateway appends each batch's raw messages here -- written to a
temporary file, fsynced, renamed into place and the folder fsynced -- and only then acknowledges
them to the broker. When the database is back the spool is replayed oldest first (messages are
parsed again, so a replay is exactly what a live delivery would have been) and each file is deleted
only after its batch committed. A crash between commit and delete replays the file once more; the
idempotent write stores it once.

When the spool holds ``max_bytes`` the gateway stops acknowledging instead, and the broker keeps the
backlog: nothing is dropped.

File format: one spool file per batch, a sequence of records ``<u32 topic length><topic utf-8>
<u32 payload length><payload><f64 received_at (Unix seconds)>``, big-endian.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

_LEN = struct.Struct(">I")
_TIME = struct.Struct(">d")


@dataclass(frozen=True, slots=True)
class SpooledMessage:
    topic: str
    payload: bytes
    received_at: datetime


def encode(messages: Iterable[SpooledMessage]) -> bytes:
    parts: list[bytes] = []
    for m in messages:
        topic = m.topic.encode("utf-8", "surrogatepass")
        parts += [
            _LEN.pack(len(topic)),
            topic,
            _LEN.pack(len(m.payload)),
            m.payload,
            _TIME.pack(m.received_at.timestamp()),
        ]
    return b"".join(parts)


def decode(data: bytes) -> list[SpooledMessage]:
    out = []
    view = memoryview(data)
    pos = 0
    while pos < len(data):
        (n,) = _LEN.unpack_from(view, pos)
        topic = bytes(view[pos + 4 : pos + 4 + n]).decode("utf-8", "surrogatepass")
        pos += 4 + n
        (n,) = _LEN.unpack_from(view, pos)
        payload = bytes(view[pos + 4 : pos + 4 + n])
        pos += 4 + n
        (stamp,) = _TIME.unpack_from(view, pos)
        pos += _TIME.size
        out.append(SpooledMessage(topic, payload, datetime.fromtimestamp(stamp, UTC)))
    return out


class Spool:
    """Spool files ``NNNNNNNNNNNN.spool`` in ``folder``, at most ``max_bytes`` in all."""

    def __init__(self, folder: Path, max_bytes: int) -> None:
        self.folder = Path(folder)
        self.max_bytes = max_bytes
        self.folder.mkdir(parents=True, exist_ok=True)
        for stale in self.folder.glob("*.tmp"):  # a crash mid-append: never acknowledged
            stale.unlink()
        files = self.files()
        self._next = int(files[-1].stem) + 1 if files else 0
        self._bytes = sum(f.stat().st_size for f in files)

    def files(self) -> list[Path]:
        return sorted(self.folder.glob("*.spool"))

    @property
    def bytes(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self.files())

    def has_room(self, size: int) -> bool:
        return self._bytes + size <= self.max_bytes

    def append(self, messages: Iterable[SpooledMessage]) -> Path:
        """Write ``messages`` durably as the newest file; returns its path."""
        data = encode(messages)
        path = self.folder / f"{self._next:012d}.spool"
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        tmp.rename(path)
        dir_fd = os.open(self.folder, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        self._next += 1
        self._bytes += len(data)
        return path

    def oldest(self) -> Iterator[tuple[Path, list[SpooledMessage]]]:
        """Spool files oldest first, with their messages."""
        for path in self.files():
            yield path, decode(path.read_bytes())

    def remove(self, path: Path) -> None:
        size = path.stat().st_size
        path.unlink()
        self._bytes -= size
