"""``binary_copy``: the fast path's readings laid out as binary COPY at once are the bytes psycopg writes
row by row, land in the table as the same rows, and anything it does not lay out goes row by row."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import psycopg
import pytest
from psycopg import AsyncConnection
from psycopg._copy_base import BinaryFormatter
from psycopg.adapt import Transformer

from urbanpulse.contract import Kind, Reading, reading_topic
from urbanpulse.gateway.parse import parse_message
from urbanpulse.ingest import binary_copy
from urbanpulse.ingest.batch import Batch, ReadingColumns, UnixTimes
from urbanpulse.ingest.columns import reading_columns, table_columns
from urbanpulse.ingest.writer import _rows, write_batch

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)

def _number(rnd: random.Random) -> float | int:
    return rnd.choice([rnd.uniform(0, 40), rnd.randint(0, 9)])  # an int where the contract wants a float, too


FIELDS: dict[Kind, dict[str, Any]] = {
    Kind.TRAFFIC: {"vehicle_count": lambda r: r.randint(0, 3000), "interval_s": lambda r: r.randint(1, 3000),
                   "speed_kmh": _number, "occupancy_pct": _number},
    Kind.AIR: {"pm25": _number, "pm10": _number, "temperature": _number, "humidity": _number, "no2": _number},
    Kind.ISPEED: {"download_mbps": _number, "upload_mbps": _number, "latency_ms": _number, "jitter_ms": _number,
                  "packet_loss_pct": _number, "rsrp_dbm": lambda r: r.uniform(-140, -44), "lat": _number,
                  "lon": _number, "operator": "Viettel", "network": "4G", "province": "Quảng Ninh"},
}


def pack(rnd: random.Random, kind: Kind, device: str, count: int, start: float) -> bytes:
    """A regular SenML pack of ``count`` readings of ``device``, one second apart from ``start`` and a
    random fraction of a microsecond."""
    records: list[dict[str, Any]] = []
    for i in range(count):
        t = i + rnd.choice([0.0, 5e-7, rnd.random() * 1e-5])
        for name, make in FIELDS[kind].items():
            records.append({"n": name, "t": t, **({"vs": make} if isinstance(make, str) else {"v": make(rnd)})})
        records.append({"n": "seq", "v": rnd.randint(0, 2**53), "t": t})
    records[0] = {"bn": f"{device}:", "bt": start, **records[0]}
    return json.dumps(records).encode()


def fast_batch(kind: Kind, devices: Sequence[str], seed: int = 1) -> Batch:
    rnd = random.Random(seed)
    batch = Batch()
    for n, device in enumerate(devices):
        start = NOW.timestamp() - 3600 + rnd.uniform(0, 600)
        parsed = parse_message(reading_topic(kind, device), pack(rnd, kind, device, rnd.randint(1, 30), start), NOW)
        assert isinstance(parsed.readings, ReadingColumns), parsed.rejected
        assert isinstance(parsed.readings.columns["time"], UnixTimes)
        batch.extend(kind, parsed.readings, NOW + timedelta(microseconds=n))
    return batch


def psycopg_image(kind: Kind, batch: Batch, batch_id: int) -> bytes:
    """What the writer's row-by-row path sends: psycopg's binary formatter over the batch's rows."""
    transformer = Transformer()
    types = [psycopg.adapters.types[c.pg_type].oid for c in table_columns(kind)]
    transformer.set_dumper_types(types, psycopg.pq.Format.BINARY)
    formatter = BinaryFormatter(transformer)
    blocks = [formatter.write_row(row) for row in _rows(kind, batch, batch_id)]
    return b"".join([*blocks, formatter.end()])


def laid_out(kind: Kind, batch: Batch, batch_id: int) -> bytes | None:
    image = binary_copy.encode(table_columns(kind), batch.chunks.get(kind, []), batch_id)
    return None if image is None else b"".join(image)


@pytest.mark.parametrize("kind", list(Kind))
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_bytes_are_those_psycopg_writes_row_by_row(kind: Kind, seed: int) -> None:
    batch = fast_batch(kind, [f"{kind.value}-{k:03d}" for k in range(40)], seed)
    assert laid_out(kind, batch, 2**40 + seed) == psycopg_image(kind, batch, 2**40 + seed)


def test_devices_of_other_id_lengths_are_laid_out_in_groups_of_the_same_rows() -> None:
    batch = fast_batch(Kind.TRAFFIC, ["t-1", "t-22", "t-333", "t-4", "t-55"])
    by_length = Batch()
    for k in (0, 3, 1, 4, 2):  # the groups in the order their lengths first come
        by_length.extend(Kind.TRAFFIC, *batch.chunks[Kind.TRAFFIC][k])
    assert laid_out(Kind.TRAFFIC, batch, 7) == psycopg_image(Kind.TRAFFIC, by_length, 7)


def test_unix_microseconds_round_as_datetime_does() -> None:
    rng = np.random.default_rng(5)
    whole = rng.integers(0, 4_000_000_000, 20_000).astype(np.float64)
    micro = rng.integers(0, 1_000_000, 20_000)
    seconds = np.concatenate([
        whole + rng.random(20_000),
        whole + (micro + 0.5) / 1e6,  # about half a microsecond
        whole + (2 * rng.integers(0, 64, 20_000) + 1) / 128,  # exactly: j / 128 s is j * 7812.5 us, rounded to even
        whole + 0.9999995 + rng.random(20_000) * 1e-6,  # the fraction rounds up to the next second
        -rng.random(2_000) * 1e9,  # before 1970
    ])
    expected = [(datetime.fromtimestamp(s, UTC) - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)
                for s in seconds.tolist()]
    assert binary_copy.unix_microseconds(seconds).tolist() == expected


def models(batch: Batch, kind: Kind) -> Batch:
    """The same readings as a list of models (what the full path hands over)."""
    out = Batch()
    for readings, received in batch.chunks[kind]:
        out.extend(kind, list(readings), received)
    return out


def with_column(batch: Batch, kind: Kind, name: str, change: Any) -> Batch:
    out = Batch()
    for k, (readings, received) in enumerate(batch.chunks[kind]):
        assert isinstance(readings, ReadingColumns)
        columns = dict(readings.columns)
        if k == 1:
            columns[name] = change(list(columns[name]))
        out.extend(kind, ReadingColumns(readings.model, columns, readings.length, readings.given), received)
    return out


@pytest.mark.parametrize(
    ("kind", "name", "change"),
    [
        (Kind.TRAFFIC, "speed_kmh", lambda c: [None, *c[1:]]),  # NULL in part of a column
        (Kind.TRAFFIC, "speed_kmh", lambda c: [*c[:-1], None]),  # ... wherever it is
        (Kind.TRAFFIC, "vehicle_count", lambda c: [*c[:-1], None]),
        (Kind.TRAFFIC, "seq", lambda c: [2**63, *c[1:]]),  # beyond int8: psycopg's error, row by row
        (Kind.TRAFFIC, "time", lambda c: c),  # datetimes, not Unix seconds
        (Kind.ISPEED, "operator", lambda c: ["Mobifone", *c[1:]]),  # a text that varies in a chunk
        (Kind.ISPEED, "operator", lambda c: [""] * len(c)),  # an empty text
    ],
)
def test_what_it_does_not_lay_out_goes_row_by_row(kind: Kind, name: str, change: Any) -> None:
    batch = fast_batch(kind, ["d-1", "d-2", "d-3"])
    assert laid_out(kind, batch, 1) is not None
    assert laid_out(kind, with_column(batch, kind, name, change), 1) is None
    assert laid_out(kind, models(batch, kind), 1) is None


def test_a_column_null_throughout_a_chunk_is_laid_out_as_nulls() -> None:
    batch = fast_batch(Kind.AIR, ["a-1", "a-2", "a-3"])  # no o3, so2, co, noise: NULL in every chunk
    nulls = with_column(batch, Kind.AIR, "no2", lambda c: [None] * len(c))  # and no2 in the second one
    assert laid_out(Kind.AIR, nulls, 3) is not None
    reordered = Batch()
    for k in (0, 2, 1):  # the second chunk's rows have another layout: a group of their own, after
        reordered.extend(Kind.AIR, *nulls.chunks[Kind.AIR][k])
    assert laid_out(Kind.AIR, nulls, 3) == psycopg_image(Kind.AIR, reordered, 3)


def stored(dsn: str, kind: Kind) -> list[tuple[Any, ...]]:
    names = ", ".join(c.name for c in reading_columns(kind))
    with psycopg.connect(dsn) as conn:
        return conn.execute(f"SELECT {names} FROM {kind.value}_readings ORDER BY device_id, time").fetchall()


def expected(batch: Batch, kind: Kind) -> list[tuple[Any, ...]]:
    readings: list[Reading] = [r for chunk, _ in batch.chunks[kind] for r in chunk]
    names = [c.name for c in reading_columns(kind)]
    return sorted((tuple(r.__dict__[n] for n in names) for r in readings), key=lambda row: (row[0], row[1]))


@pytest.mark.parametrize("kind", list(Kind))
def test_the_database_stores_the_readings_as_they_were_parsed(database: str, kind: Kind) -> None:
    batch = fast_batch(kind, [f"{kind.value}-{k}" for k in range(12)])  # ids of one and two digits
    assert laid_out(kind, batch, 1) is not None

    async def write() -> None:
        async with await AsyncConnection.connect(database, autocommit=True) as conn:
            result = await write_batch(conn, batch)
            assert result.stored == batch.reading_count
            again = await write_batch(conn, batch)  # redelivered: the idempotent way, stored once
            assert (again.stored, again.duplicates) == (0, batch.reading_count)

    asyncio.run(write())
    assert stored(database, kind) == expected(batch, kind)


def test_the_writer_lays_out_the_usual_batch_and_stages_a_redelivery_row_by_row(
    database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[bool] = []
    encode = binary_copy.encode

    def spy(*args: Any) -> Any:
        image = encode(*args)
        calls.append(image is not None)
        return image

    monkeypatch.setattr(binary_copy, "encode", spy)
    batch = fast_batch(Kind.TRAFFIC, ["t-1", "t-22", "t-3"])

    async def write() -> None:
        async with await AsyncConnection.connect(database, autocommit=True) as conn:
            await write_batch(conn, batch)
            assert calls == [True]  # laid out at once
            await write_batch(conn, batch)  # every key stored: the COPY fails, staging takes over
            assert calls == [True, True]  # the failed COPY; the staging table's rows went in arrival order

    asyncio.run(write())
    assert stored(database, Kind.TRAFFIC) == expected(batch, Kind.TRAFFIC)


def test_a_client_encoding_other_than_utf8_goes_row_by_row(database: str, monkeypatch: pytest.MonkeyPatch) -> None:
    batch = with_every(fast_batch(Kind.ISPEED, ["i-1", "i-2"]), "province", "Café Düsseldorf")
    assert laid_out(Kind.ISPEED, batch, 1) is not None
    laid: list[bool] = []
    encode = binary_copy.encode
    monkeypatch.setattr(binary_copy, "encode", lambda *args: laid.append(True) or encode(*args))

    async def write() -> None:
        async with await AsyncConnection.connect(database, autocommit=True) as conn:
            await conn.execute("SET client_encoding TO 'LATIN1'")
            assert conn.info.encoding != "utf-8"
            await write_batch(conn, batch)

    asyncio.run(write())
    assert laid == []  # psycopg encoded the text for the connection, as before
    assert {row[-1] for row in stored(database, Kind.ISPEED)} == {"Café Düsseldorf"}


def with_every(batch: Batch, name: str, value: Any) -> Batch:
    out = Batch()
    for readings, received in batch.chunks[Kind.ISPEED]:
        assert isinstance(readings, ReadingColumns)
        columns = {**readings.columns, name: [value] * readings.length}
        out.extend(Kind.ISPEED, ReadingColumns(readings.model, columns, readings.length, readings.given), received)
    return out
