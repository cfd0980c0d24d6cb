"""The decay test's statistic and its null distribution (see :mod:`detectors.decay`).

The statistic ``z`` compares a metric over a window of labelled events with the same
metric over the reference period, counting both periods' uncertainty:

- confusion-table metrics are ratios of counts ``a / (a + b)`` (accuracy: right, wrong;
  precision: tp, fp; recall: tp, fn) or ``2a / (2a + b)`` (F1: ``a = tp``, ``b = fp +
  fn``); with half a count added to ``a`` and ``b`` (Jeffreys) their delta-method
  variances are ``ab / (a + b)**3`` and ``4ab(a + b) / (2a + b)**4``, and
  :func:`table_z` is ``(metric_ref - metric_win) / sqrt(var_ref + var_win)``;
- losses (regression) give Welch's statistic, :func:`welch_z`.

:func:`thresholds` finds the thresholds on ``z`` entered by chance at given rates per
labelled event on a stationary stream, pooled over reference periods:

- accuracy exactly, as :mod:`detectors.rate` does for event counts: ``z`` is an increasing
  function of the window's number of errors, so its up-crossings between consecutive
  windows are those of that count, sums of binomial terms averaged over the error rate's
  posterior given the reference (Jeffreys);
- the other metrics by simulation, vectorised: each run draws a pseudo-reference of the
  reference's size and a stream from the same distribution (the reference's smoothed
  proportions, drawn chunk by chunk; or its losses, bootstrapped), since the reference's
  own luck is most of the false alarms; the up-crossings of each level between consecutive
  tests go to :func:`detectors.calibration.level_for_rate`, which extrapolates rates too
  low to observe from a Gaussian tail (``TAIL_POWER = 2``). Losses that are all equal have
  no spread to simulate: the threshold is then 0 (any worse window is a change).

Cost (one core): milliseconds for accuracy; for the others a few hundredths of a second at
short run lengths, up to about a third of a second when the rate is too low to observe.

Sources: the delta method for ratios of multinomial counts; B. L. Welch, "The
generalization of Student's problem when several different population variances are
involved", Biometrika 34 (1947); Jeffreys' prior, half a count per cell; the bootstrap (B.
Efron, 1979) for the reference's luck; up-crossings counted as in
:mod:`detectors.calibration`.

>>> z = table_z("accuracy", np.array([100, 900]), np.array([[100, 900], [150, 850]]))
>>> np.round(z, 2)                          # the same accuracy; 5 points worse
array([0.  , 3.38])
>>> threshold, warning = thresholds("accuracy", (100, 900), window=500, stride=50,
...                                 rates=[1e-5, 1e-4])     # once per 100,000, 10,000
>>> round(threshold, 2), round(warning, 2)
(2.94, 2.16)
"""

from __future__ import annotations

import math

import numpy as np

from . import calibration
from .rate import _crossing_rates  # the rate test's exact computation, shared

#: Confusion-table cells per metric: accuracy (wrong, right); the others (tn, fp, fn, tp)
#: for the positive class ...
CATEGORIES = {"accuracy": 2, "precision": 4, "recall": 4, "f1": 4}
#: ... of which each metric tells some apart: (tp, fp, the rest), (tp, fn, the rest), (tp,
#: fp or fn, tn). The simulation draws only those.
_GROUPS = {"precision": [[0, 2], [1], [3]], "recall": [[0, 1], [2], [3]], "f1": [[0], [1, 2], [3]]}
#: Pseudo-count per cell (Jeffreys).
PRIOR = 0.5
#: The statistic's tail: log P(z > c) ~ -c**2.
TAIL_POWER = 2

# The simulation's size: aim at this many false alarms at the lowest asked rate, ...
TARGET_ALARMS = 100
#: ... within these many simulated tests, ...
MIN_TESTS, MAX_TESTS = 20_000, 500_000
#: ... drawn table cells (tables are drawn as chunk counts) ...
MAX_CELLS = 6_000_000
#: ... or simulated losses (regression).
MIN_VALUES, MAX_VALUES = 1_000_000, 8_000_000
#: Tests per simulated run (each run has its own pseudo-reference).
RUN_TESTS = 50
#: Simulated cells or losses held in memory at once.
_BATCH = 1_000_000
#: Bumped when the statistic or its null changes (part of the null model's key).
VERSION = 1


def table_metric(metric: str, counts: np.ndarray) -> np.ndarray:
    """The metric of confusion tables (last axis: cells), NaN where undefined."""
    counts = counts.astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        if metric == "accuracy":
            return counts[..., 1] / counts.sum(axis=-1)
        tp, fp, fn = counts[..., 3], counts[..., 1], counts[..., 2]
        if metric == "precision":
            return tp / (tp + fp)
        if metric == "recall":
            return tp / (tp + fn)
        return 2 * tp / (2 * tp + fp + fn)


def _smoothed(metric: str, counts: np.ndarray):
    """The metric of tables with half a count added to ``a`` and ``b``, and its variance."""
    counts = counts.astype(np.float64)
    if metric == "accuracy":
        a, b = counts[..., 1], counts[..., 0]
    elif metric == "precision":
        a, b = counts[..., 3], counts[..., 1]
    elif metric == "recall":
        a, b = counts[..., 3], counts[..., 2]
    else:
        a, b = counts[..., 3], counts[..., 1] + counts[..., 2]
    a, b = a + PRIOR, b + PRIOR
    if metric == "f1":
        d = 2 * a + b
        return 2 * a / d, 4 * a * b * (a + b) / d**4
    n = a + b
    return a / n, a * b / n**3


def table_z(metric: str, reference: np.ndarray, window: np.ndarray) -> np.ndarray:
    """``z`` of window tables against reference tables (broadcast; last axis: cells);
    positive when the window is worse."""
    m0, v0 = _smoothed(metric, reference)
    m1, v1 = _smoothed(metric, window)
    return (m0 - m1) / np.sqrt(v0 + v1)


def welch_z(m0, v0, n0, m1, v1, n1) -> np.ndarray:
    """Welch's statistic of a window's mean loss ``m1`` (variance ``v1``, ``n1`` losses)
    against the reference's; with no spread at all, +inf if the window is worse, else 0."""
    m1 = np.asarray(m1, dtype=np.float64)
    se = np.sqrt(np.asarray(v0 / n0 + v1 / n1, dtype=np.float64))
    with np.errstate(divide="ignore", invalid="ignore"):
        z = (m1 - m0) / se
    return np.where(se > 0, z, np.where(m1 > m0, np.inf, 0.0))


def thresholds(metric: str, counts=(), losses=None, *, window: int, stride: int, rates, seed: int = 0) -> list[float]:
    """Thresholds on ``z`` entered by chance ``rate`` times per labelled event, for each
    of ``rates``, for a reference with confusion table ``counts`` or ``losses`` (a float
    array, regression). Deterministic for given arguments."""
    rng = np.random.default_rng([int(seed), 1])
    lowest = min(rates)
    if losses is not None:
        losses = np.asarray(losses, dtype=np.float64)
        if np.all(losses == losses[0]):
            return [0.0 for _ in rates]
        n_tests = np.clip(TARGET_ALARMS / (lowest * stride), MIN_TESTS, MAX_TESTS)
        n_values = int(np.clip(n_tests * stride, min(MIN_VALUES, MAX_TESTS * stride), MAX_VALUES))
        starts, ends, span = _simulate_losses(losses, window, stride, n_values, rng)
    else:
        counts = np.asarray(counts, dtype=np.int64)
        if metric == "accuracy":
            exact = _accuracy_thresholds(counts, window, stride, rates)
            if exact is not None:
                return exact
        starts, ends, span = _simulate_tables(metric, counts, window, stride, lowest, rng)
    return [_level(starts, ends, span, rate) for rate in rates]


def _accuracy_thresholds(counts, window: int, stride: int, rates) -> list[float] | None:
    """Accuracy's thresholds, exactly (see the module docs); None if ``z`` were not
    increasing in the number of errors (it is, for any reference)."""
    errors = np.arange(window + 1)
    z = table_z("accuracy", counts, np.stack([errors, window - errors], axis=-1))
    if not np.all(np.diff(z) > 0):
        return None
    per_value = _crossing_rates(counts[0] + PRIOR, counts[1] + PRIOR, window, stride) / stride
    # As in level_for_rate: only the upper tail, above the most crossed count, is the
    # false-alarm curve (below it the test would sit in drift, entering it seldom).
    peak = max(1, int(np.argmax(per_value)))
    out = []
    for rate in rates:
        too_many = np.flatnonzero(per_value[peak:] > rate)
        first = peak + (too_many[-1] + 1 if too_many.size else 0)  # the fewest errors that alarm
        out.append(float(z[-1]) if first > window else float((z[first - 1] + z[first]) / 2))
    return out


def _simulate_tables(metric, counts, window, stride, lowest_rate, rng):
    """Rising pairs of consecutive ``z`` on simulated stationary streams of tables, and
    the number of labelled events they span."""
    n0 = int(counts.sum())
    groups = _GROUPS.get(metric, [[i] for i in range(counts.size)])
    p = (counts + PRIOR) / (n0 + PRIOR * counts.size)
    p = np.array([p[g].sum() for g in groups])
    landing = np.array([g[0] for g in groups])  # each group's count goes to its first cell
    chunk = math.gcd(window, stride)
    n_chunks = (window + stride * (RUN_TESTS - 1)) // chunk
    n_tests = int(np.clip(TARGET_ALARMS / (lowest_rate * stride), MIN_TESTS, MAX_TESTS))
    n_tests = int(max(MIN_TESTS // 4, min(n_tests, MAX_CELLS * (RUN_TESTS - 1) / (n_chunks * p.size))))
    n_runs = max(2, -(-n_tests // (RUN_TESTS - 1)))
    tests = window // chunk + np.arange(RUN_TESTS) * (stride // chunk)
    batch = max(1, _BATCH // (n_chunks * p.size))
    starts, ends = [], []
    for first in range(0, n_runs, batch):
        runs = min(batch, n_runs - first)
        references = np.zeros((runs, 1, counts.size), dtype=np.int64)
        references[:, 0, landing] = rng.multinomial(n0, p, size=runs)
        drawn = rng.multinomial(chunk, p, size=(runs, n_chunks)).astype(np.int32)
        cum = np.zeros((runs, n_chunks + 1, p.size), dtype=np.int32)
        np.cumsum(drawn, axis=1, out=cum[:, 1:])
        windows = np.zeros((runs, tests.size, counts.size), dtype=np.int32)
        windows[..., landing] = cum[:, tests] - cum[:, tests - window // chunk]
        _rising(table_z(metric, references, windows), starts, ends)
    return np.concatenate(starts), np.concatenate(ends), n_runs * (RUN_TESTS - 1) * stride


def _simulate_losses(losses, window, stride, n_values, rng):
    """As :func:`_simulate_tables` for losses, bootstrapped. Runs are at least as long as
    the reference, so drawing pseudo-references costs no more than drawing streams."""
    n0 = losses.size
    x = losses - losses.mean()  # z does not move; the sums keep their precision
    chunk = math.gcd(window, stride)
    run_tests = max(RUN_TESTS, -(-n0 // stride) + 1)
    length = window + stride * (run_tests - 1)
    n_runs = max(2, -(-n_values // (stride * (run_tests - 1))))
    tests = window // chunk + np.arange(run_tests) * (stride // chunk)
    batch = max(1, _BATCH // (n0 + length))
    starts, ends = [], []
    for first in range(0, n_runs, batch):
        runs = min(batch, n_runs - first)
        reference = x[rng.integers(0, n0, size=(runs, n0))]
        stream = x[rng.integers(0, n0, size=(runs, length))].reshape(runs, -1, chunk)
        sums = []
        for power in (stream, stream * stream):
            cum = np.zeros((runs, power.shape[1] + 1))
            np.cumsum(power.sum(axis=2), axis=1, out=cum[:, 1:])
            sums.append(cum[:, tests] - cum[:, tests - window // chunk])
        s1, s2 = sums
        variance = np.maximum(s2 - s1 * s1 / window, 0.0) / (window - 1)
        z = welch_z(reference.mean(axis=1)[:, None], reference.var(axis=1, ddof=1)[:, None], n0,
                    s1 / window, variance, window)
        _rising(z, starts, ends)
    return np.concatenate(starts), np.concatenate(ends), n_runs * (run_tests - 1) * stride


def _rising(z: np.ndarray, starts: list, ends: list) -> None:
    previous, following = z[:, :-1].ravel(), z[:, 1:].ravel()
    rising = following > previous
    starts.append(previous[rising])
    ends.append(following[rising])


def _level(starts, ends, span: int, rate: float) -> float:
    """:func:`calibration.level_for_rate`; where the null's steps are too coarse to
    extrapolate from, the highest level the simulation reached (the best it can tell)."""
    try:
        return calibration.level_for_rate(starts, ends, span, rate, TAIL_POWER)
    except ValueError:
        return float(ends.max()) if ends.size else 0.0
