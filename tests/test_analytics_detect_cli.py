"""``detect_csv``: a timestamp,value CSV in, the same rows with anomaly_score out."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest

from urbanpulse.analytics.detect_cli import BEST, DETECTORS, detect_csv, detector_names
from urbanpulse.analytics.registry import create


def write_input(path: Path, values: list[str]) -> None:
    rows = [f"2024-03-01 {h:02d}:{m:02d}:00,{v}" for (h, m), v in zip(
        ((k // 12, 5 * (k % 12)) for k in range(len(values))), values, strict=True)]
    path.write_text("timestamp,value\n" + "\n".join(rows) + "\n")


@pytest.mark.parametrize("name", sorted(DETECTORS))
def test_scores_every_row_as_the_detector_does(tmp_path: Path, name: str) -> None:
    rng = np.random.default_rng(1)
    values = [f"{v:.3f}" for v in 10 + rng.normal(0, 1, 280)] + ["60.0"]
    write_input(tmp_path / "in.csv", values)
    assert detect_csv(tmp_path / "in.csv", tmp_path / "out" / "scored.csv", name) == (281, 0, 0)
    out = pl.read_csv(tmp_path / "out" / "scored.csv")
    assert out.columns == ["timestamp", "value", "anomaly_score"]
    assert out["timestamp"][0] == "2024-03-01 00:00:00"
    times = (1709251200.0 + 300.0 * np.arange(281)).astype(np.float64)
    expected = create(name).score_learn(np.zeros(281, np.int64), times, np.array(values, np.float64))
    np.testing.assert_array_equal(out["anomaly_score"].to_numpy(), expected)


def test_blank_and_text_values_score_zero(tmp_path: Path) -> None:
    write_input(tmp_path / "in.csv", ["1.0"] * 40 + ["", "n/a", "1.0"])
    assert detect_csv(tmp_path / "in.csv", tmp_path / "out.csv", "ewma").without_value == 2
    out = pl.read_csv(tmp_path / "out.csv", schema_overrides={"value": pl.String})
    assert out["anomaly_score"].to_list()[-3:] == [0.0, 0.0, 0.0]
    assert out["value"].to_list()[-3:] == [None, "n/a", "1.0"]


def test_unknown_detector_and_bad_files_are_refused(tmp_path: Path) -> None:
    write_input(tmp_path / "in.csv", ["1.0"])
    with pytest.raises(KeyError, match="known: "):
        detect_csv(tmp_path / "in.csv", tmp_path / "out.csv", "nope")
    (tmp_path / "bad.csv").write_text("time,reading\n2024-01-01 00:00:00,1\n")
    with pytest.raises(ValueError, match="no column"):
        detect_csv(tmp_path / "bad.csv", tmp_path / "out.csv", "ewma")
    (tmp_path / "bad2.csv").write_text("timestamp,value\n2024-01-01 00:00:00,1\nyesterday,1\n,2\n")
    with pytest.raises(ValueError, match=r"line 3: timestamp 'yesterday' does not parse \(2 such rows"):
        detect_csv(tmp_path / "bad2.csv", tmp_path / "out.csv", "ewma")


def test_rows_out_of_time_order_are_counted(tmp_path: Path) -> None:
    rows = ["2024-01-01 00:10:00,1", "2024-01-01 00:05:00,2", "2024-01-01 00:15:00,3", "2024-01-01 00:15:00,4"]
    (tmp_path / "in.csv").write_text("timestamp,value\n" + "\n".join(rows) + "\n")
    assert detect_csv(tmp_path / "in.csv", tmp_path / "out.csv", "ewma") == (4, 0, 1)


def test_names_and_default() -> None:
    assert detector_names() == sorted(DETECTORS)
    assert BEST in DETECTORS
