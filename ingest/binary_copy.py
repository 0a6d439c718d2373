"""PostgreSQL's binary ``COPY`` format written from columns at once, for the SenML fast path's readings.

psycopg formats a ``COPY`` row by row, each value through its dumper: about 0.9 us a traffic reading,
a tenth of the gateway's time on packs. The fast path already holds a pack's readings as columns
(:class:`~urbanpulse.ingest.batch.ReadingColumns`, times as Unix seconds), so :func:`encode` lays a
whole batch out with numpy: one packed big-endian record a row (field count, then each field's length
and value), the chunks with text of the same lengths in one array. The bytes are those psycopg's
formatter writes for the same rows (the tests compare them), sent whole with psycopg's
``Copy.write`` ("block mode": signature, rows and trailer included).

It takes only what it lays out exactly: every chunk a ``ReadingColumns`` (valid readings: a float
field's values are floats, an int field's ints) whose ``time`` is
:class:`~urbanpulse.ingest.batch.UnixTimes`, each column either NULL throughout a chunk or nowhere in
it, ints that fit int8, and each text column one value within a chunk (a device's pack); otherwise
:func:`encode` returns ``None`` and the writer formats row by row. The rows are grouped by layout,
so their order may differ from the chunks' (``COPY`` into the table does not care: a duplicate key
fails it either way, and the writer's idempotent route, where the first copy of a key wins, formats
row by row in arrival order).

The format: https://www.postgresql.org/docs/current/sql-copy.html#id-1.9.3.55.9.4
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import chain
from typing import Any, cast

import numpy as np
from numpy.typing import NDArray
from psycopg.abc import Buffer

from urbanpulse.ingest.batch import Chunk, ReadingColumns, UnixTimes
from urbanpulse.ingest.columns import BATCH_ID, RECEIVED_AT, Column

__all__ = ["encode", "unix_microseconds"]

SIGNATURE = b"PGCOPY\n\xff\r\n\x00" + bytes(8)  # then flags and header extension length, both 0
TRAILER = b"\xff\xff"
_PG_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)
_PG_EPOCH_US = (_PG_EPOCH - datetime(1970, 1, 1, tzinfo=UTC)) // _US  # in Unix microseconds
_FORMAT = {"int8": ">i8", "float8": ">f8", "timestamptz": ">i8"}  # big-endian, as COPY wants
_TYPE = {"int8": np.int64, "float8": np.float64}


def unix_microseconds(seconds: NDArray[np.float64]) -> NDArray[np.int64]:
    """The microseconds since 1970 of ``datetime.fromtimestamp(s, UTC)`` for each ``s``: CPython splits
    whole seconds from the fraction and rounds the fraction's microseconds half to even."""
    fraction, whole = np.modf(seconds)
    micro = np.rint(fraction * 1e6)  # numpy rounds half to even
    over, under = micro >= 1e6, micro < 0
    whole = whole + over - under
    micro = micro - 1e6 * over + 1e6 * under
    out: NDArray[np.int64] = whole.astype(np.int64) * 1_000_000 + micro.astype(np.int64)
    return out


@dataclass(frozen=True, slots=True)
class _Chunk:
    """A chunk as laid out: its readings, when received, each text column's one value (encoded) and the
    columns that are NULL throughout."""

    readings: ReadingColumns
    received: datetime
    texts: tuple[bytes, ...]
    nulls: frozenset[str]

    @property
    def shape(self) -> tuple[tuple[int, ...], frozenset[str]]:
        """What decides its rows' layout: the texts' lengths, the NULL columns."""
        return tuple(map(len, self.texts)), self.nulls


def _chunk(readings: ReadingColumns, received: datetime, columns: Sequence[Column]) -> _Chunk | None:
    """The chunk, or None if a text column varies in it or is empty, or a column is NULL only in part
    (numbers are checked as they are laid out), or its times are not Unix seconds."""
    texts, nulls = [], set()
    for column in columns:
        if column.name in (RECEIVED_AT, BATCH_ID):
            continue
        values = readings.columns[column.name]
        if column.pg_type == "timestamptz":
            if type(values) is not UnixTimes:
                return None
            continue
        first = values[0]
        if first is None:
            if list(values).count(None) != len(values):
                return None
            nulls.add(column.name)
        elif column.pg_type == "text":
            if type(first) is not str or not first or list(values).count(first) != len(values):
                return None
            texts.append(first.encode())
    return _Chunk(readings, received, tuple(texts), frozenset(nulls))


def _layout(columns: Sequence[Column], chunk: _Chunk) -> np.dtype[Any]:
    """A row's record: the field count, then each field's length and its value (none for a NULL)."""
    fields = [("count", ">i2")]
    lengths = iter(map(len, chunk.texts))
    for k, column in enumerate(columns):
        fields.append((f"length{k}", ">i4"))
        if column.name not in chunk.nulls:
            fields.append((f"value{k}", f"S{next(lengths)}" if column.pg_type == "text" else _FORMAT[column.pg_type]))
    return np.dtype(fields)  # packed: no padding between fields


def _group(columns: Sequence[Column], chunks: list[_Chunk], batch_id: int) -> NDArray[Any]:
    """The rows of chunks of one shape, as one array of records."""
    lengths = [chunk.readings.length for chunk in chunks]
    rows = np.empty(sum(lengths), _layout(columns, chunks[0]))
    rows["count"] = len(columns)
    text = 0
    for k, column in enumerate(columns):
        value = f"value{k}"
        if column.name in chunks[0].nulls:
            rows[f"length{k}"] = -1
            continue
        rows[f"length{k}"] = rows.dtype[value].itemsize
        if column.pg_type == "text":
            rows[value] = np.repeat(np.array([chunk.texts[text] for chunk in chunks]), lengths)
            text += 1
        elif column.name == BATCH_ID:
            rows[value] = batch_id
        elif column.name == RECEIVED_AT:  # one a chunk
            received = [(chunk.received - _PG_EPOCH) // _US for chunk in chunks]
            rows[value] = np.repeat(np.array(received, np.int64), lengths)
        elif column.pg_type == "timestamptz":  # Unix seconds
            seconds = chain.from_iterable(cast(UnixTimes, c.readings.columns[column.name]).seconds for c in chunks)
            rows[value] = unix_microseconds(np.fromiter(seconds, np.float64, rows.shape[0])) - _PG_EPOCH_US
        else:
            cells = chain.from_iterable(c.readings.columns[column.name] for c in chunks)
            numbers = np.fromiter(cells, _TYPE[column.pg_type], rows.shape[0])  # None raises for an int
            if column.pg_type == "float8" and np.isnan(numbers).any():  # NaN: a None (valid readings hold no NaN)
                raise ValueError
            rows[value] = numbers
    return rows


def encode(columns: Sequence[Column], chunks: Sequence[Chunk], batch_id: int) -> list[Buffer] | None:
    """The binary ``COPY`` data of the chunks' readings as rows of ``columns`` (the reading's, then
    ``received_at`` and ``batch_id``): the signature, the rows, the trailer, as buffers to send in turn;
    None when a chunk is not one it lays out."""
    if any(c.pg_type not in _FORMAT and c.pg_type != "text" for c in columns):
        return None
    shapes: dict[tuple[tuple[int, ...], frozenset[str]], list[_Chunk]] = {}
    for readings, received in chunks:
        if type(readings) is not ReadingColumns or not readings.length:
            return None
        chunk = _chunk(readings, received, columns)
        if chunk is None:
            return None
        shapes.setdefault(chunk.shape, []).append(chunk)
    try:
        rows = [_group(columns, group, batch_id).view(np.uint8).data for group in shapes.values()]
    except (TypeError, ValueError, OverflowError):  # a NULL among numbers, or a number its column cannot hold
        return None
    return [SIGNATURE, *rows, TRAILER]
