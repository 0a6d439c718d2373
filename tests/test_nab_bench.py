"""``bench/nab.py`` end to end on a two-file corpus in NAB's layout."""

from __future__ import annotations

import json
import runpy
import sys
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench" / "nab.py"


def corpus(root: Path) -> tuple[Path, Path]:
    rng = np.random.default_rng(0)
    data = root / "data"
    windows: dict[str, list[list[str]]] = {}
    for k, category in enumerate(("alpha", "beta")):
        (data / category).mkdir(parents=True)
        stamps = np.datetime64("2024-01-01T00:00") + np.arange(1200) * np.timedelta64(5, "m")
        values = 10 + rng.normal(0, 1, 1200)
        values[900 + 50 * k:] += 8  # a lasting jump in each
        text = [str(s).replace("T", " ") + ":00" for s in stamps]
        rows = "\n".join(f"{t},{v:.4f}" for t, v in zip(text, values, strict=True))
        (data / category / f"s{k}.csv").write_text("timestamp,value\n" + rows + "\n")
        lo, hi = 850 + 50 * k, 950 + 50 * k
        windows[f"{category}/s{k}.csv"] = [[f"{text[lo]}.000000", f"{text[hi]}.000000"]]
    labels = root / "labels.json"
    labels.write_text(json.dumps(windows))
    return data, labels


def test_writes_nabs_layout_and_prints_every_profile(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    data, labels = corpus(tmp_path)
    out = tmp_path / "results"
    monkeypatch.setattr(sys, "argv", ["nab.py", "--data-dir", str(data), "--labels", str(labels), "--results-dir",
                                      str(out), "--detector", "ensemble", "--detector", "ewma", "--null"])
    runpy.run_path(str(BENCH), run_name="__main__")
    printed = capsys.readouterr().out
    assert "2 files, 2,400 rows, 2 windows" in printed
    assert "reward_low_FP_rate" in printed
    for det in ("ensemble", "ewma", "null"):
        assert (out / det / "alpha" / f"{det}_s0.csv").is_file()
        assert (out / det / "beta" / f"{det}_s1.csv").is_file()
    final = json.loads((out / "final_results.json").read_text())
    assert set(final) == {"ensemble", "ewma"}
    assert final["ensemble"]["standard"] > 50.0  # both jumps found, early
