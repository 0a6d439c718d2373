"""The Numenta Anomaly Benchmark's scoring, in numpy: windows, scaled sigmoid, one threshold per profile.

A detector's output for a corpus is one score in [0, 1] per row of every file. For each profile
the single corpus-wide threshold that maximises the total is chosen; rows scoring at or above it
are detections. Row by row (Lavin & Ahmad 2015, NAB v1.1 ``nab/sweeper.py``):

- the first ``min(floor(0.15 n), 750)`` rows of a file of ``n`` rows are a probation period and
  never scored;
- a labelled window is entered on the row whose timestamp equals its start and left after the row
  equal to its end (rows are paired by position: timestamps are compared, never sorted). Inside it,
  row ``i`` is worth ``tp * sigma(-(right - i + 1) / width) / sigma(-1)``, with
  ``sigma(x) = 2 / (1 + exp(5x)) - 1`` (-1 beyond ``x > 3``), ``right`` the first row equal to the
  window's end and ``width`` its rows: the full ``tp`` weight on the first row, about 0 on the last.
  Only the best (earliest) detection of a window counts; a window without one costs ``-fn``;
- a detection outside every window costs ``fp * sigma(|right_prev - i| / (width_prev - 1))``, after
  the previous window, or ``-fp`` before the first: less right after a window closes.

The total is normalised so that the null detector (a constant 0.5, thresholded optimally) scores 0
and a perfect one (a detection on the first row of every window, nothing else) scores 100. NAB's
runner takes the perfect total as ``tp`` times the number of windows; the two agree unless a
window starts inside a probation period, where no detector can earn the full weight.

>>> import numpy as np
>>> ts = np.arange(np.datetime64("2024-01-01T00:00"), np.datetime64("2024-01-01T01:40"), np.timedelta64(1, "m"))
>>> f = prepare("a.csv", ts, [(ts[60], ts[69])])
>>> scores = np.zeros(100)
>>> scores[62] = 1.0  # third row of the window
>>> result = score_corpus([f], [scores])["standard"]
>>> round(result.raw, 4), result.threshold, round(result.normalised, 1)
(0.9771, 1.0, 98.9)

Reference: A. Lavin and S. Ahmad, "Evaluating real-time anomaly detection algorithms -- the Numenta
Anomaly Benchmark", IEEE ICMLA 2015, doi:10.1109/ICMLA.2015.141.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

__all__ = ["PROFILES", "Prepared", "Profile", "ProfileScore", "optimise", "prepare", "scaled_sigmoid",
           "score_at", "score_corpus"]

PROBATION_PERCENT = 0.15
PROBATION_CAP_ROWS = 5000  # NAB caps the probation at PROBATION_PERCENT of 5000 rows: 750


@dataclass(frozen=True, slots=True)
class Profile:
    """Weights of a NAB application profile (``config/profiles.json``)."""

    tp: float
    fn: float
    fp: float


PROFILES: Mapping[str, Profile] = {
    "standard": Profile(tp=1.0, fn=1.0, fp=0.11),
    "reward_low_FP_rate": Profile(tp=1.0, fn=1.0, fp=0.22),
    "reward_low_FN_rate": Profile(tp=1.0, fn=2.0, fp=0.11),
}


def scaled_sigmoid(x: NDArray[np.float64]) -> NDArray[np.float64]:
    """NAB's ``2 / (1 + exp(5x)) - 1``, and -1 where ``x > 3`` (far past a window)."""
    out: NDArray[np.float64] = np.where(x > 3.0, -1.0, 2.0 / (1.0 + np.exp(np.minimum(5.0 * x, 700.0))) - 1.0)
    return out


@dataclass(frozen=True, slots=True)
class Prepared:
    """One file's rows as the scorer sees them, independent of the detector and the profile.

    ``window[i]`` is the index of the window row ``i`` is in (-1 outside); ``weight[i]`` the row's
    unweighted worth: the tp share in a window, the (negative) fp share outside; ``scored[i]`` is
    False in the probation period. ``windows`` counts the windows with at least one scored row.
    """

    name: str
    window: NDArray[np.int64]
    weight: NDArray[np.float64]
    scored: NDArray[np.bool_]
    windows: int
    first_rows: tuple[int, ...]  # the first row of each window, for the perfect detector

    def __len__(self) -> int:
        return int(self.window.shape[0])


def probation_rows(n: int, percent: float = PROBATION_PERCENT) -> float:
    """Rows a file of ``n`` rows is not scored on: ``min(floor(percent * n), percent * 5000)``."""
    return min(math.floor(percent * n), percent * PROBATION_CAP_ROWS)


def prepare(
    name: str, timestamps: NDArray[np.datetime64], windows: Sequence[tuple[np.datetime64, np.datetime64]],
    probation_percent: float = PROBATION_PERCENT,
) -> Prepared:
    """Assign the rows of one file (timestamps in row order) to its labelled ``[start, end]`` windows."""
    n = int(timestamps.shape[0])
    window = np.full(n, -1, np.int64)
    weight = np.empty(n, np.float64)
    rows = np.arange(n, dtype=np.float64)
    max_tp = float(scaled_sigmoid(np.array([-1.0]))[0])
    firsts: list[int] = []
    prev_exit, prev_width, cursor = -1, 0.0, 0
    weight[:] = -1.0  # before the first window: as if far past one
    for k, (start, end) in enumerate(windows):
        at_start = np.flatnonzero(timestamps[cursor:] == start)
        if at_start.shape[0] == 0:
            msg = f"{name}: window start {start} is not one of the file's timestamps (after row {cursor})"
            raise ValueError(msg)
        enter = cursor + int(at_start[0])
        at_end = np.flatnonzero(timestamps[enter:] == end)
        if at_end.shape[0] == 0:
            msg = f"{name}: window end {end} is not one of the file's timestamps (after row {enter})"
            raise ValueError(msg)
        leave = enter + int(at_end[0])
        right = int(np.flatnonzero(timestamps == end)[0])  # NAB: timestamps.index(end)
        width = float(right - int(np.flatnonzero(timestamps == start)[0]) + 1)
        if prev_exit >= 0:  # rows between the previous window and this one
            gap = slice(prev_exit + 1, enter)
            weight[gap] = scaled_sigmoid(np.abs(prev_exit - rows[gap]) / (prev_width - 1.0))
        inside = slice(enter, leave + 1)
        window[inside] = k
        weight[inside] = scaled_sigmoid(-(right - rows[inside] + 1.0) / width) / max_tp
        firsts.append(enter)
        prev_exit, prev_width, cursor = leave, width, leave + 1
    if prev_exit >= 0:
        tail = slice(prev_exit + 1, n)
        weight[tail] = scaled_sigmoid(np.abs(prev_exit - rows[tail]) / (prev_width - 1.0))
    scored = np.arange(n) >= probation_rows(n, probation_percent)
    present = np.unique(window[scored & (window >= 0)]).shape[0]
    return Prepared(name, window, weight, scored, int(present), tuple(firsts))


def _rows(files: Sequence[Prepared], scores: Sequence[NDArray[np.float64]]) -> tuple[
        NDArray[np.float64], NDArray[np.int64], NDArray[np.float64]]:
    """Scored rows of the corpus: score, corpus-wide window id (-1 outside), unweighted worth."""
    parts_s, parts_w, parts_u = [], [], []
    offset = 0
    for f, s in zip(files, scores, strict=True):
        if s.shape[0] != len(f):
            msg = f"{f.name}: {s.shape[0]} scores for {len(f)} rows"
            raise ValueError(msg)
        parts_s.append(np.asarray(s, np.float64)[f.scored])
        w = f.window[f.scored]
        parts_w.append(np.where(w >= 0, w + offset, -1))
        parts_u.append(f.weight[f.scored])
        offset += len(f.first_rows)
    return np.concatenate(parts_s), np.concatenate(parts_w), np.concatenate(parts_u)


def optimise(
    files: Sequence[Prepared], scores: Sequence[NDArray[np.float64]], profile: Profile
) -> tuple[float, float]:
    """The corpus-wide ``(threshold, total)`` maximising the total; the highest threshold on ties.

    Every distinct score is a candidate (rows at or above it are detections), and so is "above
    every score" (no detection), reported as threshold 1.1 like NAB.
    """
    s, win, u = _rows(files, scores)
    order = np.argsort(-s, kind="stable")
    s, win, u = s[order], win[order], u[order]
    gain = np.where(win < 0, profile.fp * u, 0.0)
    # A window's worth is the best detection so far: its running max, as increments over -fn.
    in_win = np.flatnonzero(win >= 0)
    by_window = in_win[np.argsort(win[in_win], kind="stable")]
    worth = np.maximum(profile.tp * u[by_window], -profile.fn)
    span = 4.0 * (profile.tp + profile.fn) + 1.0  # separates the windows for one running max
    group = win[by_window].astype(np.float64)
    best = np.maximum.accumulate(worth + group * span) - group * span
    first = np.ones(best.shape[0], np.bool_)
    first[1:] = win[by_window][1:] != win[by_window][:-1]
    before = np.where(first, -profile.fn, np.concatenate([[0.0], best[:-1]]))
    gain[by_window] = best - before
    present = np.unique(win[in_win]).shape[0]
    totals = -profile.fn * present + np.cumsum(gain)
    last_of_value = np.flatnonzero(np.concatenate([s[1:] != s[:-1], [True]])) if s.shape[0] else np.zeros(0, int)
    candidates = np.concatenate([[-profile.fn * present], totals[last_of_value]])
    thresholds = np.concatenate([[1.1], s[last_of_value]])
    k = int(np.argmax(candidates))
    return float(thresholds[k]), float(candidates[k])


def score_at(
    files: Sequence[Prepared], scores: Sequence[NDArray[np.float64]], profile: Profile, threshold: float
) -> list[tuple[float, int, int, int]]:
    """Per file at ``threshold``: ``(total, detected windows, missed windows, false-positive rows)``."""
    out = []
    for f, sc in zip(files, scores, strict=True):
        hit = f.scored & (np.asarray(sc) >= threshold)
        fp_rows = hit & (f.window < 0)
        total = profile.fp * float(f.weight[fp_rows].sum())
        found = 0
        for k in np.unique(f.window[f.scored & (f.window >= 0)]).tolist():
            rows = hit & (f.window == k)
            if rows.any():
                found += 1
                total += max(-profile.fn, profile.tp * float(f.weight[rows].max()))
            else:
                total -= profile.fn
        out.append((total, found, f.windows - found, int(fp_rows.sum())))
    return out


@dataclass(frozen=True, slots=True)
class ProfileScore:
    """A corpus' result for one profile: threshold, raw total, baselines, normalised score."""

    threshold: float
    raw: float
    null: float
    perfect: float

    @property
    def normalised(self) -> float:
        return 100.0 * (self.raw - self.null) / (self.perfect - self.null)


def perfect_scores(f: Prepared) -> NDArray[np.float64]:
    """The perfect detector's output for a file: 1 on the first row of every window, 0 elsewhere."""
    out = np.zeros(len(f), np.float64)
    out[list(f.first_rows)] = 1.0
    return out


def score_corpus(
    files: Sequence[Prepared], scores: Sequence[NDArray[np.float64]],
    profiles: Mapping[str, Profile] = PROFILES,
) -> dict[str, ProfileScore]:
    """Optimise the threshold and normalise, for every profile."""
    null = [np.full(len(f), 0.5) for f in files]
    perfect = [perfect_scores(f) for f in files]
    out = {}
    for name, profile in profiles.items():
        threshold, raw = optimise(files, scores, profile)
        out[name] = ProfileScore(threshold, raw, optimise(files, null, profile)[1],
                                 optimise(files, perfect, profile)[1])
    return out
