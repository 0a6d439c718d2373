"""Detector speed, apart from correctness: ``python bench/detectors.py [--series N] [--points M]``.

Reports the kernel's first-call time (compile or cache load), its throughput over many interleaved
series, and the per-point ``score_one`` / ``learn_one`` path for comparison.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from urbanpulse.analytics.ewma import EwmaState, RobustEwmaZScore, score_learn


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--series", type=int, default=10_000)
    parser.add_argument("--points", type=int, default=2_000_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    series = rng.integers(0, args.series, args.points).astype(np.int64)
    values = rng.lognormal(3.0, 0.2, args.points)
    floors = np.zeros(args.series)

    state = EwmaState.empty(args.series)
    started = time.perf_counter()
    score_learn(series[:10], values[:10], floors, state.mean, state.spread, state.count, 0.05, 30, 3.0, 3.0)
    print(f"first call (compile or cache load): {time.perf_counter() - started:.3f} s")

    started = time.perf_counter()
    score_learn(series, values, floors, state.mean, state.spread, state.count, 0.05, 30, 3.0, 3.0)
    elapsed = time.perf_counter() - started
    print(f"kernel: {args.points:,} points over {args.series:,} series in {elapsed:.3f} s "
          f"({args.points / elapsed / 1e6:.1f} M points/s)")

    detector = RobustEwmaZScore()
    n = min(args.points, 200_000)
    started = time.perf_counter()
    for x in values[:n].tolist():
        detector.score_one(x)
        detector.learn_one(x)
    elapsed = time.perf_counter() - started
    print(f"score_one + learn_one: {n:,} points in {elapsed:.3f} s ({n / elapsed / 1e3:.0f} k points/s)")
    print(f"checkpoint state: {len(state.to_bytes()) / args.series:.0f} bytes per series")


if __name__ == "__main__":
    main()
