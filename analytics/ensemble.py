"""Ensemble with anomaly likelihood: four views of a series, each calibrated, new extremes, routine held.

Four raw detectors score every reading, each from a different angle:

- the step from the last reading, ``|x - previous|``, as a robust EWMA z-score against a slow
  baseline of such steps (memory about 100 readings, the parameters of the streaming service's slow
  view): is the series moving more than it does? (spikes, jumps, a burst of variability, a sensor
  turning noisy)
- the seasonal profile (:mod:`.seasonal`): is it far from this hour of the week/day? (broken routine)
- shape novelty (:mod:`.shape`): has the stretch it ends ever been seen? (odd patterns, flat stretches)
- flat line (:mod:`.flatline`): is the sensor repeating itself more than it ever does? (stuck)

The first three raw score streams go through their own anomaly likelihood (:mod:`.likelihood`), so a
view that is often surprised by a series stops alarming on it. The flat-line view's surprise is
already the probability of its run under the series' own habit (``p ** r``), so it is scored as that
probability on the likelihoods' scale (:func:`run_score`: one alarm a run): through a likelihood,
whose mean and variance sit at their floors for a view that is 0 nearly always, any run of three
repeats became an alarm. The step view's raw score is also judged alone, a window of one reading
(:func:`~urbanpulse.analytics.likelihood.lone_score`): averaged over ten readings, a single reading ten
sigmas off moves the window's mean little, and it scored under most normal readings; alone it scores,
from the yellow line (0.3) up to at most :data:`LONE_TAIL`'s 0.4 (one in 10 000): a warning, never an
alarm. NAB's real series are full of lone extreme readings nobody labelled: let through as alarms,
they cost 17 points there (bench/journal/nab.md). The ensemble's score is the largest of these.
The seasonal view counts only while it has forecast the series better than the level of a fast EWMA
(memory about 20 readings; it learns every reading but does not vote, the step view took its place: see
bench/journal/nab.md), a prequential check (Dawid 1984: the mean absolute error of each forecast,
made before the reading is learned, over the series' past, memory ``history``): on a series without
a routine, its profile is noise and its surprises are false alarms (it still learns, and its
likelihood too, so it counts again as soon as a routine shows). As in Numenta's NAB detector, a
reading beyond the range seen so far by more than ``spatial`` of that range scores 1.0 outright
(once the warm-up is over, as every other score). The score reads as Numenta's log-likelihood: 0.5
when the likeliest explanation is a one-in-100 000 event. An alarm (0.5 or more) in an hour of the
day in which the series alarmed on each of the ``recur_days`` days before is routine, a nightly job
say, and shows as the yellow line's 0.3 (:mod:`.recurring`); a new extreme never is (worse than
ever, a fault growing night after night). Views tried and dropped: bench/journal/nab.md.

The kernel fuses the views into one pass and walks a batch's points grouped by series
(:func:`~urbanpulse.analytics.arrays.by_series`), so each series' state (7.6 kB) is in cache while
its points are scored, whatever the order the points came in.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

from urbanpulse.analytics.arrays import Field, by_series, jit, jit_inline, ungroup
from urbanpulse.analytics.base import SCORE, SCORE_LEARN, Detector
from urbanpulse.analytics.ewma import SLOW_ALPHA, SLOW_CLIP, ewma_fields, ewma_step
from urbanpulse.analytics.flatline import flatline_fields, flatline_surprise, value_class
from urbanpulse.analytics.likelihood import (
    RED_TAIL,
    YELLOW_TAIL,
    likelihood_fields,
    likelihood_score,
    log_score,
    lone_score,
)
from urbanpulse.analytics.recurring import MAX_DAYS, recurring_fields, unless_recurring
from urbanpulse.analytics.seasonal import seasonal_fields, seasonal_step, slots_of
from urbanpulse.analytics.shape import shape_fields, shape_step

__all__ = ["LikelihoodEnsemble"]

# The views' own parameters: each detector's defaults (see its class).
EWMA_ALPHA, EWMA_WARMUP, CLIP, SCALE = 0.05, 30, 3.0, 3.0
SEASONAL_ALPHA, SEASONAL_MIN_COUNT = 0.1, 3
SHAPE_WIDTH, SHAPE_STEP, SHAPE_STRIDE, SHAPE_BANK, SHAPE_MEMORY = 8, 4, 8, 64, 2000
SHAPE_SKIP = -(-SHAPE_WIDTH * SHAPE_STEP // SHAPE_STRIDE)
FLAT_MIN_RUN, FLAT_MEMORY, FLAT_WARMUP = 3, 2000, 30
LONE_TAIL = 1e-4  # the lone reading's likelihood shows at most this tail (a warning, 0.4): never red
SLOW_WARMUP = round(1 / SLOW_ALPHA)  # the step view scores once its baseline has its full memory
VIEWS = 3  # through the likelihood: step, seasonal, shape (the flat-line view scores its own run)
_RED_SURPRISE = -math.log(RED_TAIL)  # a run this improbable is in the red zone
SEASONAL = 1  # the seasonal view's index among the views
PREQUENTIAL_WARMUP = 30  # forecasts compared before the seasonal view may count
Floats = NDArray[np.float64]
Ints = NDArray[np.int64]


@jit_inline
def seasonal_hidden(
    p_seasonal: Floats, p_ewma: Floats, p_n: Ints, i: int, seasonal_miss: float, ewma_miss: float, history: int,
    learn: bool,
) -> int:
    """``SEASONAL`` while series ``i``'s seasonal forecasts have missed by more than its EWMA level on
    average (or fewer than ``PREQUENTIAL_WARMUP`` were compared), else -1; then learns this pair of
    misses if ``learn``: running means, then exponentially weighted with memory ``history``."""
    n = p_n[i]
    hidden = -1 if n >= PREQUENTIAL_WARMUP and p_seasonal[i] < p_ewma[i] else SEASONAL
    if learn:
        rate = max(1.0 / (n + 1), 1.0 / history)
        p_seasonal[i] += rate * (seasonal_miss - p_seasonal[i])
        p_ewma[i] += rate * (ewma_miss - p_ewma[i])
        p_n[i] = n + 1
    return hidden


@jit_inline
def run_score(surprise: float, run: int) -> float:
    """The flat-line view's score for a run of ``run`` repeats whose probability is ``exp(-surprise)``:
    :func:`~urbanpulse.analytics.likelihood.log_score` of that probability, on the likelihoods' scale
    (0.5 at one in 100 000), but only for the run's first scored reading (``FLAT_MIN_RUN`` repeats)
    or the one that takes it into the red zone; its later readings show at most the yellow line's
    score (0.3), so a stuck sensor raises one alarm, as a red run of a likelihood does."""
    score = log_score(math.exp(-surprise))
    if run > FLAT_MIN_RUN and surprise * (run - 1) / run >= _RED_SURPRISE:  # one reading shorter, it was red
        return min(score, log_score(YELLOW_TAIL))
    return score


@jit_inline
def beyond_range(x: float, lo: float, hi: float, spatial: float) -> bool:
    """Numenta's new-extreme rule: ``x`` beyond ``[lo, hi]`` by more than ``spatial`` of ``hi - lo``."""
    if spatial <= 0.0 or hi <= lo:
        return False
    tolerance = (hi - lo) * spatial
    return x > hi + tolerance or x < lo - tolerance


@jit_inline
def step_score(
    d_mean: Floats, d_spread: Floats, d_count: Ints, i: int, x: float, last: float, has_last: bool, learn: bool
) -> float:
    """The step view's raw score: ``|x - last|`` as a robust z-score against series ``i``'s slow EWMA
    baseline of such steps (0.0 while there is no ``last`` reading); learns the step if ``learn``."""
    if not has_last:
        return 0.0
    score, m, s, n = ewma_step(d_mean[i], d_spread[i], d_count[i], 0.0, abs(x - last), SLOW_ALPHA, SLOW_WARMUP,
                               SLOW_CLIP, SCALE)
    if learn:
        d_mean[i], d_spread[i], d_count[i] = m, s, n
    return score


@jit
def _run(
    series: Ints,
    times: Floats,
    values: Floats,
    e_mean: Floats,
    e_spread: Floats,
    e_count: Ints,
    s_level: Floats,
    s_spread: Floats,
    s_count: Ints,
    k_recent: Floats,
    k_bank: NDArray[np.float32],
    k_kept: Ints,
    k_n: Ints,
    k_dist: Floats,
    k_dn: Ints,
    l_ring: Floats,
    l_n: Ints,
    l_mean: Floats,
    l_var: Floats,
    l_red: NDArray[np.int8],
    f_last: Floats,
    f_run: Ints,
    f_count: Ints,
    f_steps: NDArray[np.float64],
    f_repeats: NDArray[np.float64],
    lo: Floats,
    hi: Floats,
    seen: Ints,
    p_seasonal: Floats,
    p_ewma: Floats,
    p_n: Ints,
    d_mean: Floats,
    d_spread: Floats,
    d_count: Ints,
    lone_mean: Floats,
    lone_var: Floats,
    r_day: NDArray[np.int32],
    r_streak: NDArray[np.int8],
    learning: int,
    estimation: int,
    history: int,
    spatial: float,
    recur_days: int,
    mode: int,
) -> Floats:
    grouped = np.empty(values.shape[0], np.float64)
    learn = mode != SCORE
    view_mode = SCORE if mode == SCORE else SCORE_LEARN  # learning the likelihoods needs the raw scores
    raw = np.empty(VIEWS, np.float64)
    vec = np.empty(SHAPE_WIDTH, np.float64)
    scratch = np.empty(k_bank.shape[2], np.float64)
    order, ends, points = by_series(series, times, values, seen.shape[0])  # one series' state at a time
    i = 0
    for p in range(order.shape[0]):
        while p >= ends[i]:
            i += 1
        t, x = points[p, 0], points[p, 1]
        if not math.isfinite(x):
            grouped[p] = 0.0
            continue
        e_forecast, e_known = e_mean[i], e_count[i] > 0  # the fast EWMA's level before it learns x
        _, e_m, e_s, e_n = ewma_step(e_mean[i], e_spread[i], e_count[i], 0.0, x, EWMA_ALPHA, EWMA_WARMUP, CLIP, SCALE)
        raw[0] = step_score(d_mean, d_spread, d_count, i, x, f_last[i], f_count[i] > 0, learn)
        if learn:
            e_mean[i], e_spread[i], e_count[i] = e_m, e_s, e_n
        raw[1] = 0.0
        hidden = SEASONAL  # until it has forecast better than the EWMA level
        if math.isfinite(t):
            w, d = slots_of(t)
            if e_known and s_count[i, d] >= SEASONAL_MIN_COUNT:  # both views forecast x: compare them
                s_forecast = s_level[i, w] if s_count[i, w] >= SEASONAL_MIN_COUNT else s_level[i, d]
                miss = abs(x - s_forecast)
                hidden = seasonal_hidden(p_seasonal, p_ewma, p_n, i, miss, abs(x - e_forecast), history, learn)
            raw[1], wl, ws, wn, dl, ds, dn = seasonal_step(s_level[i, w], s_spread[i, w], s_count[i, w], s_level[i, d],
                                                           s_spread[i, d], s_count[i, d], x, SEASONAL_ALPHA,
                                                           SEASONAL_MIN_COUNT, CLIP, SCALE, 0.0)
            if learn:
                s_level[i, w], s_spread[i, w], s_count[i, w] = wl, ws, wn
                s_level[i, d], s_spread[i, d], s_count[i, d] = dl, ds, dn
        raw[2] = shape_step(
            k_recent,
            k_bank,
            k_kept,
            k_n,
            k_dist,
            k_dn,
            i,
            x,
            SHAPE_STEP,
            SHAPE_STRIDE,
            SHAPE_SKIP,
            SHAPE_MEMORY,
            SCALE,
            view_mode,
            vec,
            scratch,
        )
        c = value_class(x, lo[i], hi[i], seen[i])
        surprise, la, ru, n, st, re = flatline_surprise(f_last[i], f_run[i], f_count[i], f_steps[i, c],
                                                        f_repeats[i, c], x, 0.0, FLAT_MIN_RUN, FLAT_MEMORY,
                                                        FLAT_WARMUP)
        if learn:
            f_last[i], f_run[i], f_count[i], f_steps[i, c], f_repeats[i, c] = la, ru, n, st, re
        k = l_n[i]  # the likelihoods' count of this series' raw scores, before they learn this one
        score = max(
            likelihood_score(l_ring, l_n, l_mean, l_var, l_red, i, raw, learning, estimation, history, learn, hidden),
            lone_score(lone_mean, lone_var, i, raw[0], k, learning, estimation, history, learn, LONE_TAIL),
        )
        warm = seen[i] >= learning + estimation
        if warm and surprise > 0.0:
            score = max(score, run_score(surprise, ru))
        score = unless_recurring(score, r_day, r_streak, i, t, recur_days, learn)
        if warm and beyond_range(x, lo[i], hi[i], spatial):
            score = 1.0  # after the recurring check: a new extreme, worse than ever, is never routine
        if learn:
            lo[i] = x if seen[i] == 0 else min(lo[i], x)
            hi[i] = x if seen[i] == 0 else max(hi[i], x)
            seen[i] += 1
        grouped[p] = score
    return ungroup(order, grouped)


class LikelihoodEnsemble(Detector):
    """The largest of three views' likelihoods, a lone step's, a stuck run's, new extremes; recurring alarms held.

    Parameters
    ----------
    learning
        Raw scores of a view not used for its likelihood: the view is still settling.
    estimation
        Raw scores after that to estimate their distribution before the first score; until
        ``learning + estimation`` readings every score is 0.0 (250 by default: under a day of
        5-minute readings).
    history
        Memory, in readings, of the distribution of averaged raw scores (a running mean and
        variance, then exponentially weighted): 8640, a month of 5-minute readings, as Numenta's.
    window
        Raw scores averaged before they are compared with that distribution (Numenta's 10).
    spatial
        A reading beyond ``[min, max]`` seen so far by more than this share of ``max - min`` scores
        1.0 (Numenta's 5 %); 0 turns the rule off.
    recur_days
        An alarm (a score of 0.5 or more) in an hour of the day (UTC) in which the series alarmed on
        each of this many days before shows as the yellow line's 0.3: a recurring alarm is routine
        (a nightly job, a daily peak), except a new extreme (1.0 whenever it comes: worse than
        ever is news); a held alarm is still recorded, so the next day's is held too
        (:mod:`.recurring`). 0 turns the rule off; at most 126.

    Examples
    --------
    >>> import math, random
    >>> rng = random.Random(11)
    >>> detector = LikelihoodEnsemble()
    >>> hour = 3600.0
    >>> day = [50 + 20 * math.sin(2 * math.pi * h / 24) for h in range(24)]
    >>> scores = []
    >>> for k in range(24 * 28):  # four weeks of hourly readings
    ...     x = day[k % 24] + rng.gauss(0, 1) + (15 if 24 * 25 <= k < 24 * 25 + 6 else 0)
    ...     scores.append(detector.score_one(x, k * hour))
    ...     detector.learn_one(x, k * hour)
    >>> max(scores[:24 * 25]) < 0.5  # three weeks and a half of routine
    True
    >>> max(scores[24 * 25:24 * 25 + 6]) > 0.5  # six hours 15 above the routine
    True

    References
    ----------
    S. Ahmad, A. Lavin, S. Purdy and Z. Agha, "Unsupervised real-time anomaly detection for
    streaming data", Neurocomputing 262, 134-147, 2017 (likelihood, spatial rule). A. P. Dawid,
    "Statistical theory: the prequential approach", Journal of the Royal Statistical Society A
    147(2), 278-292, 1984 (the check on the seasonal view). See the views' modules for theirs.
    """

    def __init__(
        self,
        learning: int = 150,
        estimation: int = 100,
        history: int = 8640,
        window: int = 10,
        spatial: float = 0.05,
        recur_days: int = 2,
    ) -> None:
        self.learning = learning
        self.estimation = estimation
        self.history = history
        self.window = window
        self.spatial = spatial
        self.recur_days = recur_days

    @property
    def layout(self) -> tuple[Field, ...]:
        return (
            *ewma_fields("e_"),
            *seasonal_fields("s_"),
            *shape_fields("k_", SHAPE_WIDTH, SHAPE_STEP, SHAPE_BANK),
            *flatline_fields("f_", bounds=False),  # the bounds are lo and hi
            *likelihood_fields("l_", self.window, VIEWS),
            Field("lo"),
            Field("hi"),
            Field("seen", dtype="int64"),
            Field("p_seasonal"),
            Field("p_ewma"),
            Field("p_n", dtype="int64"),
            *ewma_fields("d_"),  # the step view
            Field("lone_mean"),  # the step view's raw score alone (its count is l_n)
            Field("lone_var"),
            *recurring_fields("r_"),  # alarms recurring at an hour of the day
        )

    def _run(self, series: Ints, times: Floats, values: Floats, mode: int) -> Floats:
        if not 0 <= self.recur_days <= MAX_DAYS:
            msg = f"recur_days must be from 0 to {MAX_DAYS}, not {self.recur_days}"
            raise ValueError(msg)
        s = self.state
        out: Floats = _run(
            series,
            times,
            values,
            s["e_mean"],
            s["e_spread"],
            s["e_count"],
            s["s_level"],
            s["s_spread"],
            s["s_count"],
            s["k_recent"],
            s["k_bank"],
            s["k_kept"],
            s["k_n"],
            s["k_dist"],
            s["k_dn"],
            s["l_ring"],
            s["l_n"],
            s["l_mean"],
            s["l_var"],
            s["l_red"],
            s["f_last"],
            s["f_run"],
            s["f_count"],
            s["f_steps"],
            s["f_repeats"],
            s["lo"],
            s["hi"],
            s["seen"],
            s["p_seasonal"],
            s["p_ewma"],
            s["p_n"],
            s["d_mean"],
            s["d_spread"],
            s["d_count"],
            s["lone_mean"],
            s["lone_var"],
            s["r_day"],
            s["r_streak"],
            int(self.learning),
            int(self.estimation),
            int(self.history),
            float(self.spatial),
            int(self.recur_days),
            mode,
        )
        return out
