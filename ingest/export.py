"""``urbanpulse export``: readings (or a rollup) of a time range to Parquet or CSV, through polars.

``kind`` is a reading kind (``air``, ``traffic``, ``ispeed``: filtered on ``time``) or the name of a
rollup view (``air_hourly``, ``ispeed_1d``, ...: filtered on ``bucket``); the range is
``[time_from, time_to)``. A view without a time (``traffic_typical_speed``: a speed per detector and
hour of the week) is exported whole. Rows are read with a server-side cursor in blocks of ``block_rows`` and
ordered by time; the whole result is held in memory once as a polars frame before it is written
(about the size of the Parquet file times ten for CSV-like data: export a month at a time for the
biggest tables). Times are written in UTC.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Literal

import polars as pl
import psycopg
from psycopg import sql

from urbanpulse.contract import Kind
from urbanpulse.ingest.columns import table_name
from urbanpulse.ingest.rollups import UNTIMED, VIEWS

Format = Literal["parquet", "csv"]


def _source(kind: str) -> tuple[str, str | None]:
    """The relation of ``kind`` and its time column (``None``: it has none, exported whole)."""
    if kind in {k.value for k in Kind}:
        return table_name(Kind(kind)), "time"
    if kind in VIEWS:
        return kind, None if kind in UNTIMED else "bucket"
    msg = f"nothing to export under {kind!r}: a reading kind ({', '.join(k.value for k in Kind)}) or a rollup" \
          f" ({', '.join(VIEWS)})"
    raise ValueError(msg)


def export(dsn: str, kind: str, time_from: datetime, time_to: datetime, fmt: Format, out: Path,
           block_rows: int = 100_000) -> int:
    """Write the rows of ``kind`` in ``[time_from, time_to)`` to ``out`` as ``fmt``; returns the row count."""
    relation, column = _source(kind)
    query, params = sql.SQL("SELECT * FROM {}").format(sql.Identifier(relation)), []
    if column is not None:
        query = sql.SQL("SELECT * FROM {} WHERE {col} >= %s AND {col} < %s ORDER BY {col}").format(
            sql.Identifier(relation), col=sql.Identifier(column))
        params = [time_from, time_to]
    frames: list[pl.DataFrame] = []
    with psycopg.connect(dsn) as conn:
        conn.execute("SET TimeZone = 'UTC'")
        with conn.cursor(name="urbanpulse_export") as cur:
            cur.execute(query, params)
            names = [d.name for d in cur.description or []]
            while rows := cur.fetchmany(block_rows):
                frames.append(pl.DataFrame(rows, schema=names, orient="row", infer_schema_length=None))
            if not frames:
                frames.append(pl.DataFrame(schema=names))
    frame = pl.concat(frames, how="vertical_relaxed")
    out.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "parquet":
        frame.write_parquet(out)
    elif fmt == "csv":
        frame.write_csv(out)
    else:
        msg = f"unknown export format {fmt!r} (parquet or csv)"
        raise ValueError(msg)
    return frame.height
