"""Detector speed, apart from correctness: ``python bench/detectors.py [--series N] [--points M] [--runs R]``.

For each detector: points per second of its ``numba`` kernel over ``--series`` interleaved series
(one core; each series first warmed with ``--warm`` readings, untimed), per second of wall-clock
time and, in brackets, per second of the process's CPU time (what a core gives it when the machine
is shared); of the same algorithm in plain numpy, vectorised across the same series
(``numpy_detectors.py``: those that vectorise; its scores and state are checked equal to the kernel's
first); of the very same code in
plain Python (``NUMBA_DISABLE_JIT=1``, in a child process) and of river's closest detector if river
is installed (one model per series), both on ``--slow-series`` series, warmed alike, and fewer
points. Medians of ``--runs`` runs (half as many for plain Python and numpy), and the ratios; the
kernel's runs alternate with river's, and the river ratio is the median of each pair's.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import NDArray
from numpy_detectors import NUMPY

from urbanpulse.analytics.registry import create

NAMES = ["ewma", "seasonal", "cusum", "flatline", "shape", "context", "ensemble"]
STEP = 300.0


def workload(
    series: int, points: int, seed: int, warm: int = 0
) -> tuple[NDArray[np.int64], NDArray[np.float64], NDArray[np.float64]]:
    """``points`` readings of ``series`` series in random order, 5 minutes apart per series, each series'
    first one ``warm`` steps after the warm-up's first (so they follow :func:`warmed`'s readings)."""
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, series, points).astype(np.int64)
    by_series = np.argsort(idx, kind="stable")  # the k-th reading of a series comes k steps after its first
    counts = np.bincount(idx, minlength=series)
    order = np.empty(points, np.float64)
    order[by_series] = np.arange(points) - np.repeat(np.cumsum(counts) - counts, counts)
    times = 1.7e9 + (order + warm) * STEP
    values = 20 + 5 * np.sin(2 * np.pi * order / 288) + rng.normal(0, 1, points)
    return idx, times, values


def warmed(name: str, series: int, warm: int) -> Any:
    """A detector whose ``series`` series have each learned ``warm`` readings of a daily cycle."""
    detector = create(name)
    k = np.arange(warm)
    detector.score_learn(
        np.tile(np.arange(series, dtype=np.int64), warm),
        np.repeat(1.7e9 + k * STEP, series),
        np.repeat(20 + 5 * np.sin(2 * np.pi * k / 288), series),
    )
    return detector


def kernel_once(name: str, series: int, points: int, warm: int, run: int) -> tuple[float, float]:
    """Points per second of wall-clock time and per second of this process's CPU time, one run."""
    detector = warmed(name, series, warm)
    s, t, v = workload(series, points, seed=run, warm=warm)  # ready before the clock starts
    started, started_cpu = time.perf_counter(), time.process_time()
    detector.score_learn(s, t, v)
    return points / (time.perf_counter() - started), points / max(time.process_time() - started_cpu, 1e-9)


def numpy_rate(name: str, series: int, points: int, warm: int, runs: int) -> float:
    """Median points per second of the numpy version, once its scores and state equal the kernel's."""
    detector = warmed(name, series, warm)
    state = {f.name: detector.state[f.name].copy() for f in detector.layout}
    s, t, v = workload(series, points, seed=runs, warm=warm)
    scores = NUMPY[name](state, s, t, v, detector)
    if not np.allclose(scores, detector.score_learn(s, t, v), rtol=1e-9, atol=1e-12):
        msg = f"{name}: the numpy version's scores differ from the kernel's"
        raise AssertionError(msg)
    if any(not np.allclose(state[f.name], detector.state[f.name], rtol=1e-9) for f in detector.layout):
        msg = f"{name}: the numpy version's state differs from the kernel's"
        raise AssertionError(msg)
    rates = []
    for run in range(runs):
        detector = warmed(name, series, warm)
        state = {f.name: detector.state[f.name].copy() for f in detector.layout}
        s, t, v = workload(series, points, seed=run, warm=warm)
        started = time.perf_counter()
        NUMPY[name](state, s, t, v, detector)
        rates.append(points / (time.perf_counter() - started))
    return statistics.median(rates)


_PLAIN = """
import json, sys, time
import numpy as np
sys.path.insert(0, sys.argv[1])
from detectors import warmed, workload
name, series, points, warm, runs = sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
rates = []
for run in range(runs):
    detector = warmed(name, series, warm)
    s, t, v = workload(series, points, seed=run, warm=warm)
    started = time.perf_counter()
    detector.score_learn(s, t, v)
    rates.append(points / (time.perf_counter() - started))
print(json.dumps(sorted(rates)[len(rates) // 2]))
"""


def plain_rate(name: str, series: int, points: int, warm: int, runs: int) -> float:
    env = {**os.environ, "NUMBA_DISABLE_JIT": "1"}
    here = os.path.dirname(os.path.abspath(__file__))
    argv = [sys.executable, "-c", _PLAIN, here, name, str(series), str(points), str(warm), str(runs)]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, check=True)
    rate: float = json.loads(done.stdout)
    return rate


Step = Callable[[Any, float], None]


def _dict_step(model: Any, x: float) -> None:
    model.score_one({"x": x})
    model.learn_one({"x": x})


def _target_step(model: Any, x: float) -> None:
    model.score_one(None, x)
    model.learn_one(None, x)


def _forecast_step(model: Any, x: float) -> None:
    with contextlib.suppress(IndexError):  # Holt-Winters forecasts only once a season is learned
        model.score_one(None, x)
    model.learn_one(None, x)


def _drift_step(model: Any, x: float) -> None:
    model.update(x)


def river_models() -> dict[str, tuple[str, Callable[[], Any], Step]] | None:
    """River's closest detector to each of ours, or None without river."""
    try:
        from river import anomaly, drift, time_series  # noqa: PLC0415
    except ImportError:
        return None

    def seasonal() -> Any:
        holt_winters: Any = time_series.HoltWinters  # untyped
        return anomaly.PredictiveAnomalyDetection(
            holt_winters(alpha=0.1, beta=0.01, gamma=0.1, seasonality=24), horizon=1
        )

    def half_space_trees() -> Any:
        # HalfSpaceTrees expects features in [0, 1] unless told their range: on the workload's readings
        # (20 +- 5, and noise) its default put every reading in one leaf, one score for all (ROC AUC 0.5
        # on spikes; 0.99 with the range given), and ran about 10 % faster than a working model.
        return anomaly.HalfSpaceTrees(limits={"x": (0.0, 40.0)})

    return {
        "ewma": ("anomaly.StandardAbsoluteDeviation", anomaly.StandardAbsoluteDeviation, _target_step),
        "seasonal": ("PredictiveAnomalyDetection(HoltWinters)", seasonal, _forecast_step),
        "cusum": ("drift.PageHinkley", drift.PageHinkley, _drift_step),
        "shape": ("anomaly.HalfSpaceTrees(limits)", half_space_trees, _dict_step),
        "ensemble": ("anomaly.HalfSpaceTrees(limits)", half_space_trees, _dict_step),
    }


def river_once(make: Callable[[], Any], step: Step, series: int, points: int, warm: int, run: int) -> float:
    """Points per second of river's detector (one model per series), one run."""
    models = [make() for _ in range(series)]
    for m in models:  # warmed like ours, untimed
        for k in range(warm):
            step(m, 20 + 5 * math.sin(2 * math.pi * k / 288))
    s, _, v = workload(series, points, seed=run)
    started = time.perf_counter()
    for i, x in zip(s.tolist(), v.tolist(), strict=True):
        step(models[i], x)
    return points / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--series", type=int, default=10_000)
    parser.add_argument("--points", type=int, default=2_000_000, help="timed kernel points per run")
    parser.add_argument("--warm", type=int, default=300, help="untimed readings per series first")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--python-points", type=int, default=20_000)
    parser.add_argument("--river-points", type=int, default=20_000)
    parser.add_argument("--slow-series", type=int, default=20, help="series of the plain-Python and river runs")
    parser.add_argument("--detector", action="append", choices=NAMES)
    args = parser.parse_args()
    river = river_models()
    if river is None:
        print("river is not installed: no river column (pip install -e '.[bench]' to add it)")
    names = args.detector or NAMES
    print(
        f"{'detector':10s} {'kernel M/s':>10s} {'(cpu M/s)':>9s} {'numpy M/s':>9s} {'x numpy':>7s} "
        f"{'python k/s':>10s} {'x python':>9s}  "
        f"{'river k/s':>9s} {'x river':>8s}  river model"
    )
    for name in names:
        started = time.perf_counter()
        create(name).score_learn(np.zeros(3, np.int64), np.zeros(3), np.ones(3))
        compile_s = time.perf_counter() - started
        # The kernel's runs alternate with river's, and "x river" is the median of each pair's ratio: the
        # shared machine's speed drifts by up to 2x within minutes, which two separate medians would take in.
        rival = river.get(name) if river is not None else None
        walls, cpus, rivals, ratios = [], [], [], []
        for run in range(args.runs):
            wall, cpu = kernel_once(name, args.series, args.points, args.warm, run)
            walls.append(wall)
            cpus.append(cpu)
            if rival is not None:
                rivals.append(river_once(rival[1], rival[2], args.slow_series, args.river_points, args.warm, run))
                ratios.append(wall / rivals[-1])
        fast, fast_cpu = statistics.median(walls), statistics.median(cpus)
        slow = plain_rate(name, args.slow_series, args.python_points, args.warm, max(1, args.runs // 2))
        cells = f"{name:10s} {fast / 1e6:10.2f} {fast_cpu / 1e6:9.2f} "
        if name in NUMPY:
            vectorised = numpy_rate(name, args.series, args.points, args.warm, max(1, args.runs // 2))
            cells += f"{vectorised / 1e6:9.2f} {fast / vectorised:7.1f} "
        else:
            cells += f"{'-':>9s} {'-':>7s} "
        cells += f"{slow / 1e3:10.1f} {fast / slow:9.0f}"
        if rival is not None:
            r, ratio = statistics.median(rivals), statistics.median(ratios)
            cells += f"  {r / 1e3:9.1f} {ratio:8.0f}  {rival[0]}"
        else:
            cells += f"  {'-':>9s} {'-':>8s}  {'(none close)' if river is not None else ''}"
        print(cells + f"   [first call {compile_s:.2f} s]", flush=True)
    state = create("ensemble")
    state.score_learn(np.arange(1000, dtype=np.int64), np.zeros(1000), np.ones(1000))
    print(f"ensemble state: {len(state.snapshot()) / 1000:,.0f} bytes per series")


if __name__ == "__main__":
    main()
