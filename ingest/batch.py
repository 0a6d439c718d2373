"""What the gateway hands to ingest: accepted readings and rejected messages, written together."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from urbanpulse.contract import Kind, Reading


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


@dataclass(slots=True)
class Batch:
    """Readings by kind plus dead letters; stored in one transaction or not at all."""

    readings: dict[Kind, list[Reading]] = field(default_factory=dict)
    received_at: dict[Kind, list[datetime]] = field(default_factory=dict)
    dead_letters: list[DeadLetter] = field(default_factory=list)

    def add(self, kind: Kind, reading: Reading, received_at: datetime) -> None:
        self.readings.setdefault(kind, []).append(reading)
        self.received_at.setdefault(kind, []).append(received_at)

    def reject(self, letter: DeadLetter) -> None:
        self.dead_letters.append(letter)

    @property
    def reading_count(self) -> int:
        return sum(len(rows) for rows in self.readings.values())

    def __len__(self) -> int:
        return self.reading_count + len(self.dead_letters)


@dataclass(frozen=True, slots=True)
class BatchResult:
    """What a committed batch did: its id, readings new to the database, duplicates skipped."""

    batch_id: int
    stored: int
    duplicates: int
    dead_letters: int
