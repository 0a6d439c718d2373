"""The write path: one transaction per batch, binary COPY, idempotent on the key (time, device_id).

The usual case -- none of the readings stored yet -- is one transaction of three statements: the batch
record (whose ``pg_notify('urbanpulse_batches', id)`` wakes consumers when it commits), a binary COPY of
the readings straight into their table, a COPY of the dead letters. If the COPY hits the primary key (a
redelivered or duplicated reading: same time and device), that transaction is rolled back and the batch
written again the idempotent way: COPY into a temporary staging table, then ``INSERT ... SELECT ... ON
CONFLICT DO NOTHING``, so a duplicate is stored once. (A savepoint around the COPY would avoid
repeating the batch record, at two more round trips for every batch.)

The readings' rows: when they all come from the SenML fast path as columns, laid out at once by
:mod:`~urbanpulse.ingest.binary_copy` and sent whole; else formatted row by row by psycopg.

Error policy: any error rolls the whole batch back and is raised to the caller (the gateway), which
keeps the messages unacknowledged and retries; nothing is half-written.
"""

from __future__ import annotations

from collections.abc import Iterator
from operator import itemgetter
from typing import Any

from psycopg import AsyncConnection, errors, sql
from psycopg.pq import TransactionStatus
from psycopg.rows import TupleRow

from urbanpulse.contract import Kind
from urbanpulse.ingest import binary_copy
from urbanpulse.ingest.batch import Batch, BatchResult, ReadingColumns
from urbanpulse.ingest.columns import reading_columns, table_columns, table_name
from urbanpulse.ingest.horizon import INGEST_LOCK

NOTIFY_CHANNEL = "urbanpulse_batches"
_DEAD_LETTER_COLUMNS = ("received_at", "topic", "payload", "reason", "field", "device_id", "kind", "batch_id")
_DEAD_LETTER_TYPES = ("timestamptz", "text", "bytea", "text", "text", "text", "text", "int8")


def _rows(kind: Kind, batch: Batch, batch_id: int) -> Iterator[tuple[Any, ...]]:
    """The kind's readings as table rows: the reading's columns, received_at, batch_id."""
    names = [c.name for c in reading_columns(kind)]
    fields = itemgetter(*names)  # a reading's values in column order
    for readings, received in batch.chunks.get(kind, []):
        if isinstance(readings, ReadingColumns):  # no model per reading: zip the columns
            yield from readings.rows(names, received, batch_id)
        else:
            for reading in readings:
                yield (*fields(reading.__dict__), received, batch_id)


async def _copy(
    conn: AsyncConnection[TupleRow], kind: Kind, batch: Batch, batch_id: int, target: str, *, in_order: bool = False
) -> None:
    """COPY the kind's readings into ``target``; ``in_order``: rows in arrival order (the staging table's,
    where the first copy of a key wins), else possibly grouped by layout."""
    columns = table_columns(kind)
    column_list = sql.SQL(", ").join(sql.Identifier(c.name) for c in columns)
    copy_sql = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(sql.Identifier(target), column_list)
    async with conn.cursor().copy(copy_sql) as copy:
        image = None
        if not in_order and conn.info.encoding == "utf-8":  # binary_copy writes text as UTF-8
            image = binary_copy.encode(columns, batch.chunks.get(kind, []), batch_id)
        if image is not None:  # the fast path's columns, laid out at once: sent whole (psycopg's block mode)
            for block in image:
                await copy.write(block)
            return
        copy.set_types([c.pg_type for c in columns])
        # What ``await copy.write_row(row)`` does, without a coroutine per row (a quarter of the time of the
        # rows' formatting): the formatter (psycopg 3.2/3.3, pinned) packs each row into its buffer and
        # hands back a block of about 32 kB to send now and then.
        write_row = copy.formatter.write_row
        for row in _rows(kind, batch, batch_id):
            if block := write_row(row):
                await copy.write(block)


async def _stage(conn: AsyncConnection[TupleRow], kind: Kind, batch: Batch, batch_id: int) -> int:
    """The idempotent way: COPY into a temporary staging table, then insert what is not stored yet."""
    table = table_name(kind)
    stage = f"stage_{table}"
    columns = table_columns(kind)
    await conn.execute(
        sql.SQL("CREATE TEMP TABLE IF NOT EXISTS {} (LIKE {} INCLUDING DEFAULTS) ON COMMIT DELETE ROWS").format(
            sql.Identifier(stage), sql.Identifier(table)
        )
    )
    column_list = sql.SQL(", ").join(sql.Identifier(c.name) for c in columns)
    await _copy(conn, kind, batch, batch_id, stage, in_order=True)
    cur = await conn.execute(
        sql.SQL("INSERT INTO {} ({cols}) SELECT {cols} FROM {} ON CONFLICT DO NOTHING").format(
            sql.Identifier(table), sql.Identifier(stage), cols=column_list
        )
    )
    return cur.rowcount


async def _write(conn: AsyncConnection[TupleRow], batch: Batch, *, idempotent: bool) -> BatchResult:
    """One transaction: the batch row (its NOTIFY sent at commit), the readings, the dead letters."""
    async with conn.transaction():
        cur = await conn.execute(
            "INSERT INTO ingest_batches (readings, stored, dead_letters) VALUES (%s, %s, %s)"
            " RETURNING id, pg_notify(%s, id::text)",
            [batch.reading_count, 0 if idempotent else batch.reading_count, len(batch.dead_letters), NOTIFY_CHANNEL],
        )
        row = await cur.fetchone()
        assert row is not None
        batch_id = int(row[0])
        stored = 0
        for kind, chunks in batch.chunks.items():
            count = sum(len(readings) for readings, _ in chunks)
            if not count:
                continue
            if idempotent:
                stored += await _stage(conn, kind, batch, batch_id)
            else:  # a duplicate makes this COPY fail, and write_batch start over the idempotent way
                await _copy(conn, kind, batch, batch_id, table_name(kind))
                stored += count
        if batch.dead_letters:
            copy_sql = sql.SQL("COPY dead_letters ({}) FROM STDIN (FORMAT BINARY)").format(
                sql.SQL(", ").join(sql.Identifier(c) for c in _DEAD_LETTER_COLUMNS)
            )
            async with conn.cursor().copy(copy_sql) as copy:
                copy.set_types(list(_DEAD_LETTER_TYPES))
                for d in batch.dead_letters:
                    await copy.write_row(
                        [d.received_at, d.topic, d.payload, d.reason, d.field, d.device_id, d.kind, batch_id]
                    )
        if idempotent:
            await conn.execute("UPDATE ingest_batches SET stored = %s WHERE id = %s", [stored, batch_id])
    return BatchResult(
        batch_id=batch_id,
        stored=stored,
        duplicates=batch.reading_count - stored,
        dead_letters=len(batch.dead_letters),
    )


async def write_batch(conn: AsyncConnection[TupleRow], batch: Batch) -> BatchResult:
    """Store ``batch`` in one transaction; returns only after the commit.

    On a connection inside a transaction of the caller's (a savepoint, then), that transaction takes the
    ingest lock first (:mod:`~urbanpulse.ingest.horizon`): rolling back the savepoint of a first attempt
    that hit a duplicate would release a lock taken inside it, and the second attempt would be refused.
    The batch must still be that transaction's first write (the trigger refuses it otherwise)."""
    if conn.info.transaction_status == TransactionStatus.INTRANS:
        # only before the transaction has an id: a lock taken after that would come too late (the trigger
        # then refuses the batch, as it should)
        await conn.execute("SELECT pg_advisory_xact_lock_shared(%s, %s) WHERE pg_current_xact_id_if_assigned() IS NULL",
                           INGEST_LOCK)
    try:
        return await _write(conn, batch, idempotent=False)
    except errors.UniqueViolation:  # some readings are stored already (or repeat within the batch)
        return await _write(conn, batch, idempotent=True)
