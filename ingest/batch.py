"""What the gateway hands to ingest: accepted readings and rejected messages, written together.

Readings come as a list of models, or -- from the gateway's SenML fast path -- as ``ReadingColumns``:
a sequence of one kind's readings held as one list per field, which the writer copies row by row
without a model per reading.

>>> from datetime import UTC, datetime
>>> from urbanpulse.contract import TrafficReading
>>> t = [datetime(2026, 3, 1, 12, m, tzinfo=UTC) for m in (0, 1)]
>>> columns = ReadingColumns.of(TrafficReading, {"device_id": "tr-1", "time": t, "seq": [1, 2],
...     "vehicle_count": [3, 4], "interval_s": [60, 60], "speed_kmh": [40.0, 41.0], "occupancy_pct": [2.0, 3.0]})
>>> len(columns), columns[1].speed_kmh, columns[1].model_fields_set >= {"seq", "speed_kmh"}
(2, 41.0, True)
>>> columns == [columns[0], columns[1]]
True
>>> list(columns.rows(("seq", "speed_kmh"), "then this"))
[(1, 40.0, 'then this'), (2, 41.0, 'then this')]
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import repeat
from typing import Any, overload

from urbanpulse.contract import Kind, Reading

_new_object = object.__new__
_set = object.__setattr__


def construct(model: type[Reading], values: dict[str, Any], given: set[str]) -> Reading:
    """An instance of ``model`` from values already proved valid: what ``model_construct`` builds, without
    its per-field loop (``values`` holds every field in model order, ``given`` those sent)."""
    reading = _new_object(model)
    _set(reading, "__dict__", values)
    _set(reading, "__pydantic_fields_set__", given)
    _set(reading, "__pydantic_extra__", None)
    _set(reading, "__pydantic_private__", None)
    return reading


def _same_items(ours: Sequence[Any], other: object) -> bool:
    """``==`` of a lazy sequence: equal to any sequence (not text) of the same items in the same order."""
    if not isinstance(other, Sequence) or isinstance(other, str | bytes):
        return NotImplemented  # type: ignore[no-any-return]
    return len(ours) == len(other) and all(a == b for a, b in zip(ours, other, strict=True))


@dataclass(frozen=True, slots=True, eq=False)
class UnixTimes(Sequence[datetime]):
    """A time column held as Unix seconds: each time is ``datetime.fromtimestamp(s, UTC)``, built only when
    read. The SenML fast path's times, which the writer encodes from the seconds without a ``datetime``
    each (:mod:`~urbanpulse.ingest.binary_copy`).

    >>> times = UnixTimes([1772366400.0, 1772366400.0000005])
    >>> times[1], list(times) == [times[0], times[1]]
    (datetime.datetime(2026, 3, 1, 12, 0, tzinfo=datetime.timezone.utc), True)
    """

    seconds: list[float]

    def __len__(self) -> int:
        return len(self.seconds)

    @overload
    def __getitem__(self, index: int) -> datetime: ...
    @overload
    def __getitem__(self, index: slice) -> list[datetime]: ...
    def __getitem__(self, index: int | slice) -> datetime | list[datetime]:
        if isinstance(index, slice):
            return list(map(datetime.fromtimestamp, self.seconds[index], repeat(UTC)))
        return datetime.fromtimestamp(self.seconds[index], UTC)

    def __iter__(self) -> Iterator[datetime]:
        return map(datetime.fromtimestamp, self.seconds, repeat(UTC))

    def __eq__(self, other: object) -> bool:
        return _same_items(self, other)

    __hash__ = None  # type: ignore[assignment]


@dataclass(frozen=True, slots=True, eq=False)
class ReadingColumns(Sequence[Reading]):
    """Valid readings of one model as columns: ``columns`` holds every field of the model, in model order,
    each a list of ``length`` values (``time`` may be :class:`UnixTimes`); ``given`` the fields the device
    sent. Indexing builds a model."""

    model: type[Reading]
    columns: dict[str, Sequence[Any]]
    length: int
    given: frozenset[str]

    @classmethod
    def of(cls, model: type[Reading], given: dict[str, Any]) -> ReadingColumns:
        """From the fields sent: a list per field, or one value for all; the model's defaults fill the rest."""
        length = max(len(v) for v in given.values() if isinstance(v, list | UnixTimes))
        columns: dict[str, Sequence[Any]] = {}
        for name, info in model.model_fields.items():
            value = given.get(name, info.default)
            columns[name] = value if isinstance(value, list | UnixTimes) else [value] * length
        return cls(model, columns, length, frozenset(given))

    def __len__(self) -> int:
        return self.length

    def __eq__(self, other: object) -> bool:
        """Equal to any sequence of the same readings (a list of models included)."""
        return _same_items(self, other)

    __hash__ = None  # type: ignore[assignment]

    @overload
    def __getitem__(self, index: int) -> Reading: ...
    @overload
    def __getitem__(self, index: slice) -> list[Reading]: ...
    def __getitem__(self, index: int | slice) -> Reading | list[Reading]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(self.length))]
        if not -self.length <= index < self.length:
            raise IndexError(index)
        values = {name: column[index] for name, column in self.columns.items()}
        return construct(self.model, values, set(self.given))

    def rows(self, names: Sequence[str], *after: Any) -> Iterator[tuple[Any, ...]]:
        """Each reading's values of ``names``, then the values ``after`` (the same for every row), as tuples."""
        return zip(*(self.columns[name] for name in names), *map(repeat, after))  # noqa: B905 - repeat is endless


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A message (or one reading of it) that was refused, with the reason a person can act on."""

    topic: str
    payload: bytes
    reason: str
    received_at: datetime
    field: str | None = None
    device_id: str | None = None
    kind: str | None = None


Chunk = tuple[Sequence[Reading], datetime]
"""Readings that arrived together, and when."""


@dataclass(slots=True)
class Batch:
    """Readings by kind, in chunks that arrived together, plus dead letters; stored in one transaction or
    not at all."""

    chunks: dict[Kind, list[Chunk]] = field(default_factory=dict)
    dead_letters: list[DeadLetter] = field(default_factory=list)

    def add(self, kind: Kind, reading: Reading, received_at: datetime) -> None:
        chunks = self.chunks.setdefault(kind, [])
        if chunks and chunks[-1][1] == received_at and type(chunks[-1][0]) is list:
            chunks[-1][0].append(reading)
        else:
            chunks.append(([reading], received_at))

    def extend(self, kind: Kind, readings: Sequence[Reading], received_at: datetime) -> None:
        """Readings received together (a list is copied: later changes to it do not reach the batch)."""
        if readings:
            chunk = list(readings) if type(readings) is list else readings
            self.chunks.setdefault(kind, []).append((chunk, received_at))

    def reject(self, letter: DeadLetter) -> None:
        self.dead_letters.append(letter)

    @property
    def reading_count(self) -> int:
        return sum(len(chunk) for chunks in self.chunks.values() for chunk, _ in chunks)

    def __len__(self) -> int:
        return self.reading_count + len(self.dead_letters)


@dataclass(frozen=True, slots=True)
class BatchResult:
    """What a committed batch did: its id, readings new to the database, duplicates skipped."""

    batch_id: int
    stored: int
    duplicates: int
    dead_letters: int
