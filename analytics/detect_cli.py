"""``urbanpulse detect INPUT.csv -o OUTPUT.csv --detector NAME``: score a CSV file as a stream.

Plain functions, for the command line to wire up. The input has a header and the columns
``timestamp`` (ISO 8601, ``YYYY-MM-DD HH:MM:SS``; no zone means UTC) and ``value``; the output is
the same rows, in the same order, with ``anomaly_score`` added: row ``i`` is scored from rows
``<= i`` only. Empty or non-numeric values score 0.0 and are not learned; :class:`Scored` counts
them, and the rows stamped before the row above them (scored in file order all the same), for the
command to report.

>>> import tempfile
>>> from pathlib import Path
>>> folder = Path(tempfile.mkdtemp())
>>> rows = [f"2024-01-01 00:{m:02d}:00,{v}" for m, v in enumerate([5.0] * 40 + [50.0])]
>>> _ = (folder / "in.csv").write_text("timestamp,value\\n" + "\\n".join(rows) + "\\n")
>>> detect_csv(folder / "in.csv", folder / "out.csv", "ewma")
Scored(rows=41, without_value=0, out_of_order=0)
>>> (folder / "out.csv").read_text().splitlines()[-1]
'2024-01-01 00:40:00,50.0,1.0'
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np
import polars as pl

from urbanpulse.analytics.base import Detector
from urbanpulse.analytics.registry import BEST, DETECTORS, create

__all__ = ["BEST", "DETECTORS", "Scored", "detect_csv", "detector_names"]


class Scored(NamedTuple):
    """What :func:`detect_csv` wrote: rows, rows without a numeric value (scored 0.0, not learned),
    rows stamped before the row above them."""

    rows: int
    without_value: int
    out_of_order: int


def detector_names() -> list[str]:
    """The names ``--detector`` accepts, sorted."""
    return sorted(DETECTORS)


def detect_csv(input: Path, output: Path, detector: str = BEST) -> Scored:
    """Score ``input`` (``timestamp,value``) into ``output`` (``timestamp,value,anomaly_score``).

    Raises ``KeyError`` for an unknown detector, ``ValueError`` for a file without those columns or
    with a timestamp that does not parse (naming its line), ``OSError`` for a file that cannot be read.
    """
    model: Detector = create(detector)
    frame = pl.read_csv(input, schema_overrides={"timestamp": pl.String, "value": pl.String})
    missing = {"timestamp", "value"} - set(frame.columns)
    if missing:
        msg = f"{input}: no column {', '.join(sorted(missing))} (the header must name timestamp and value)"
        raise ValueError(msg)
    stamps = frame["timestamp"].str.to_datetime(time_unit="us", strict=False)
    bad = stamps.is_null().arg_true()
    if len(bad):
        line, text = int(bad[0]) + 2, frame["timestamp"][int(bad[0])]  # line 1 is the header
        msg = (f"{input}, line {line}: timestamp {text!r} does not parse ({len(bad)} such rows; ISO 8601 "
               "expected, such as 2024-01-01 00:05:00, UTC unless it has a zone)")
        raise ValueError(msg)
    if stamps.dtype.time_zone is not None:  # type: ignore[attr-defined]
        stamps = stamps.dt.convert_time_zone("UTC").dt.replace_time_zone(None)
    seconds = stamps.dt.epoch("us").to_numpy().astype(np.float64) / 1e6
    values = frame["value"].cast(pl.Float64, strict=False).fill_null(np.nan).to_numpy().astype(np.float64)
    scores = model.score_learn(np.zeros(len(values), np.int64), seconds, values)
    out = frame.select("timestamp", "value").with_columns(pl.Series("anomaly_score", scores))
    output.parent.mkdir(parents=True, exist_ok=True)
    out.write_csv(output, float_precision=None)
    return Scored(out.height, int((~np.isfinite(values)).sum()), int((np.diff(seconds) < 0).sum()))
