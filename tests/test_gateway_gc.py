"""The gateway process's garbage-collector settings (``service.tune_gc``), in a child process of their own."""

from __future__ import annotations

import json
import subprocess
import sys

CHILD = """
import gc, json
from urbanpulse.gateway.service import GC_THRESHOLDS, tune_gc
before = gc.get_freeze_count()
tune_gc()
print(json.dumps({"thresholds": gc.get_threshold(), "expected": GC_THRESHOLDS,
                  "frozen_before": before, "frozen_after": gc.get_freeze_count()}))
"""


def test_tune_gc_raises_the_thresholds_and_freezes_start_up_objects() -> None:
    done = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, check=True, timeout=120)
    found = json.loads(done.stdout)
    assert found["thresholds"] == found["expected"] == [50_000, 20, 100]
    assert found["frozen_before"] == 0
    assert found["frozen_after"] > 1000  # modules, classes, settings: out of every later collection
