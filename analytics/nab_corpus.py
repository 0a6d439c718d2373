"""NAB-layout corpora on disk: read ``data/<category>/<file>.csv`` and labels, write detector results.

A corpus is a folder of ``timestamp,value`` CSV files one level down (``<category>/<file>.csv``)
and a JSON label file mapping each ``"<category>/<file>.csv"`` to its ``[start, end]`` windows.
Results go where NAB's own scorer looks for them:
``<results>/<detector>/<category>/<detector>_<file>.csv`` with ``timestamp,value,anomaly_score,label``,
rows in the data file's order.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
from numpy.typing import NDArray

from urbanpulse.analytics.base import Detector
from urbanpulse.analytics.nab_scoring import Prepared, prepare

__all__ = ["DataFile", "epoch_seconds", "read_corpus", "read_series", "write_result"]


@dataclass(frozen=True, slots=True)
class DataFile:
    """One series of a corpus: its key (``category/file.csv``), rows, and scorer view."""

    key: str
    timestamps: NDArray[np.datetime64]
    values: NDArray[np.float64]
    text_timestamps: list[str]  # as written in the file, echoed into results
    prepared: Prepared

    @property
    def labels(self) -> NDArray[np.int64]:
        return (self.prepared.window >= 0).astype(np.int64)


def read_series(path: Path) -> tuple[list[str], NDArray[np.datetime64], NDArray[np.float64]]:
    """A ``timestamp,value`` CSV: timestamps as written and parsed (µs), values as float64."""
    frame = pl.read_csv(path, schema_overrides={"timestamp": pl.String, "value": pl.Float64})
    text = frame["timestamp"].to_list()
    parsed = frame["timestamp"].str.to_datetime(time_unit="us", strict=True).to_numpy()
    return text, parsed.astype("datetime64[us]"), frame["value"].to_numpy().astype(np.float64)


def epoch_seconds(timestamps: NDArray[np.datetime64]) -> NDArray[np.float64]:
    """Seconds since 1970-01-01 (the timestamps are taken as UTC wall-clock)."""
    out: NDArray[np.float64] = timestamps.astype("datetime64[us]").astype(np.int64) / 1e6
    return out


def _window(pair: list[str]) -> tuple[np.datetime64, np.datetime64]:
    start, end = (np.datetime64(s.strip().replace(" ", "T"), "us") for s in pair)
    return start, end


def read_corpus(data_dir: Path, labels: Path) -> list[DataFile]:
    """Every ``<category>/<file>.csv`` under ``data_dir`` (sorted), with its windows from ``labels``.

    Raises ``KeyError`` for a data file the labels do not mention; label keys without a data file
    are ignored.
    """
    windows: dict[str, list[list[str]]] = json.loads(labels.read_text())
    out = []
    for path in sorted(data_dir.glob("*/*.csv")):
        key = path.relative_to(data_dir).as_posix()
        if key not in windows:
            msg = f"{key} has no entry in {labels}"
            raise KeyError(msg)
        text, stamps, values = read_series(path)
        prepared = prepare(key, stamps, [_window(w) for w in windows[key]])
        out.append(DataFile(key, stamps, values, text, prepared))
    return out


def result_path(results_dir: Path, detector: str, key: str) -> Path:
    category, name = key.split("/")
    return results_dir / detector / category / f"{detector}_{name}"


def write_result(results_dir: Path, detector: str, f: DataFile, scores: NDArray[np.float64]) -> Path:
    """Write one file's scores in NAB's results layout; returns the path written."""
    path = result_path(results_dir, detector, f.key)
    path.parent.mkdir(parents=True, exist_ok=True)
    pl.DataFrame({
        "timestamp": f.text_timestamps, "value": f.values, "anomaly_score": scores, "label": f.labels,
    }).write_csv(path, float_precision=None)
    return path


def run_detector(detector: Detector, files: list[DataFile]) -> list[NDArray[np.float64]]:
    """Score every file as its own series, as a stream (row ``i`` from rows ``<= i``), in one kernel call."""
    series = np.concatenate([np.full(f.values.shape[0], k, np.int64) for k, f in enumerate(files)])
    times = np.concatenate([epoch_seconds(f.timestamps) for f in files])
    values = np.concatenate([f.values for f in files])
    scores = detector.score_learn(series, times, values)
    return np.split(scores, np.cumsum([f.values.shape[0] for f in files])[:-1])
