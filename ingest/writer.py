"""The write path: one transaction per batch, binary COPY into staging, idempotent insert.

Readings are first COPYed (binary) straight into their table inside a savepoint: when none of them is
stored yet -- the usual case -- that is all. If the COPY hits the primary key (a redelivered or
duplicated reading: same device and time), the savepoint is rolled back and the readings go the
idempotent way: COPY into a temporary staging table, then ``INSERT ... SELECT ... ON CONFLICT DO
NOTHING``, so a duplicate is stored once. Dead letters and the batch record go in the same
transaction, and a ``NOTIFY urbanpulse_batches`` wakes consumers when it commits.

Error policy: any error rolls the whole batch back and is raised to the caller (the gateway), which
keeps the messages unacknowledged and retries; nothing is half-written.
"""

from __future__ import annotations

from psycopg import AsyncConnection, errors, sql
from psycopg.rows import TupleRow

from urbanpulse.contract import Kind
from urbanpulse.ingest.batch import Batch, BatchResult
from urbanpulse.ingest.columns import reading_columns, table_columns, table_name

NOTIFY_CHANNEL = "urbanpulse_batches"
_DEAD_LETTER_COLUMNS = ("received_at", "topic", "payload", "reason", "field", "device_id", "kind", "batch_id")
_DEAD_LETTER_TYPES = ("timestamptz", "text", "bytea", "text", "text", "text", "text", "int8")


async def _copy(conn: AsyncConnection[TupleRow], kind: Kind, batch: Batch, batch_id: int, target: str) -> None:
    columns = table_columns(kind)
    names = [c.name for c in reading_columns(kind)]
    column_list = sql.SQL(", ").join(sql.Identifier(c.name) for c in columns)
    copy_sql = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(sql.Identifier(target), column_list)
    async with conn.cursor().copy(copy_sql) as copy:
        copy.set_types([c.pg_type for c in columns])
        for reading, received in zip(batch.readings[kind], batch.received_at[kind], strict=True):
            values = reading.__dict__
            await copy.write_row([*(values[name] for name in names), received, batch_id])


async def _stage(conn: AsyncConnection[TupleRow], kind: Kind, batch: Batch, batch_id: int) -> int:
    table = table_name(kind)
    try:
        async with conn.transaction():  # a savepoint: a duplicate undoes only this COPY
            await _copy(conn, kind, batch, batch_id, table)
        return len(batch.readings[kind])
    except errors.UniqueViolation:
        pass  # some readings are stored already (or repeat within the batch): the idempotent way
    stage = f"stage_{table}"
    columns = table_columns(kind)
    await conn.execute(
        sql.SQL("CREATE TEMP TABLE IF NOT EXISTS {} (LIKE {} INCLUDING DEFAULTS) ON COMMIT DELETE ROWS").format(
            sql.Identifier(stage), sql.Identifier(table)
        )
    )
    column_list = sql.SQL(", ").join(sql.Identifier(c.name) for c in columns)
    await _copy(conn, kind, batch, batch_id, stage)
    cur = await conn.execute(
        sql.SQL("INSERT INTO {} ({cols}) SELECT {cols} FROM {} ON CONFLICT DO NOTHING").format(
            sql.Identifier(table), sql.Identifier(stage), cols=column_list
        )
    )
    return cur.rowcount


async def write_batch(conn: AsyncConnection[TupleRow], batch: Batch) -> BatchResult:
    """Store ``batch`` in one transaction; returns only after the commit."""
    async with conn.transaction():
        cur = await conn.execute(
            "INSERT INTO ingest_batches (readings, stored, dead_letters) VALUES (%s, 0, %s) RETURNING id",
            [batch.reading_count, len(batch.dead_letters)],
        )
        row = await cur.fetchone()
        assert row is not None
        batch_id = int(row[0])
        stored = 0
        for kind in batch.readings:
            if batch.readings[kind]:
                stored += await _stage(conn, kind, batch, batch_id)
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
        await conn.execute("UPDATE ingest_batches SET stored = %s WHERE id = %s", [stored, batch_id])
        notify = sql.SQL("NOTIFY {}, {}").format(sql.Identifier(NOTIFY_CHANNEL), sql.Literal(str(batch_id)))
        await conn.execute(notify)
    return BatchResult(
        batch_id=batch_id,
        stored=stored,
        duplicates=batch.reading_count - stored,
        dead_letters=len(batch.dead_letters),
    )
