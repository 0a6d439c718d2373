"""Score detectors on a NAB-layout corpus, NAB's way.

``python bench/nab.py --data-dir DIR --labels FILE --results-dir OUT [--detector NAME ...] [--null]``

Runs each detector (default: all registered) over every ``DIR/<category>/<file>.csv`` as a stream
(row ``i`` scored from rows ``<= i``; every file is its own series, all in one kernel call), writes
``OUT/<detector>/<category>/<detector>_<file>.csv`` (``timestamp,value,anomaly_score,label``) as
NAB's scorer expects, and prints the normalised score of each profile with its threshold (see
:mod:`urbanpulse.analytics.nab_scoring`). ``--null`` also writes NAB's null detector (a constant
0.5), which NAB's own runner needs to normalise. ``OUT/final_results.json`` gets the scores in
NAB's format.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from urbanpulse.analytics.nab_corpus import read_corpus, run_detector, write_result
from urbanpulse.analytics.nab_scoring import PROFILES, score_at, score_corpus
from urbanpulse.analytics.registry import DETECTORS, create


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, required=True, help="NAB-layout data: <category>/<file>.csv")
    parser.add_argument("--labels", type=Path, required=True, help="combined_windows.json")
    parser.add_argument("--results-dir", type=Path, required=True)
    parser.add_argument("--detector", action="append", choices=sorted(DETECTORS), help="repeatable; default all")
    parser.add_argument("--null", action="store_true", help="also write the null detector's results")
    parser.add_argument("--files", action="store_true", help="print each file's result (standard profile)")
    args = parser.parse_args(argv)

    corpus = read_corpus(args.data_dir, args.labels)
    files = [f.prepared for f in corpus]
    windows = sum(len(f.first_rows) for f in files)
    print(f"{len(corpus)} files, {sum(len(f) for f in files):,} rows, {windows} windows")
    if args.null:
        for f in corpus:
            write_result(args.results_dir, "null", f, np.full(len(f.prepared), 0.5))
    names = args.detector or list(DETECTORS)
    final: dict[str, dict[str, float]] = {}
    print(f"{'detector':10s} " + " ".join(f"{p:>26s}" for p in PROFILES) + "   seconds")
    for name in names:
        started = time.perf_counter()
        scores = run_detector(create(name), corpus)
        elapsed = time.perf_counter() - started
        for f, s in zip(corpus, scores, strict=True):
            write_result(args.results_dir, name, f, s)
        result = score_corpus(files, scores)
        final[name] = {p: r.normalised for p, r in result.items()}
        cells = " ".join(f"{r.normalised:8.2f} (thr {r.threshold:.4f})" for r in result.values())
        print(f"{name:10s} {cells} {elapsed:9.2f}")
        if args.files:
            standard = result["standard"]
            per_file = score_at(files, scores, PROFILES["standard"], standard.threshold)
            for prepared, (total, found, missed, fp) in zip(files, per_file, strict=True):
                print(f"    {prepared.name:60s} {total:7.3f}  found {found} missed {missed} fp rows {fp}")
    args.results_dir.mkdir(parents=True, exist_ok=True)
    (args.results_dir / "final_results.json").write_text(json.dumps(final, indent=2, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
