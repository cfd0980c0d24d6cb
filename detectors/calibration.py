"""Thresholds from an expected run length (ERT) between false alarms.

A test repeated on every window alarms by chance now and then. Rather than a raw
threshold, a user can state how rarely that may happen: ``ert`` is the mean number of
values between false alarms (entries into drift) on a stationary stream.

The threshold is found by simulating the detector itself under no change: for each run a
pseudo-reference is drawn with replacement from the reference sample (so the simulated
reference is as noisy as the real one was), a stream is drawn the same way, and the
detector's test statistics are recorded. The up-crossings of a level ``c`` between
consecutive tests are the false alarms at threshold ``c``; the threshold is the lowest
level at which they come no more often than once every ``ert`` values. When ``ert`` is too
long for the simulation budget to see enough crossings, the tail of the crossing rate is
extrapolated (log-linear in ``c ** TAIL_POWER``) from the highest levels that it did see.

The detectors calibrated here are rank-based on numbers (quantile bins, KS): on a reference
of distinct numbers their null behaviour depends on its size, not on its values. Such
references are simulated as ``0, 1, ..., n-1``, so that every continuous feature with the
same configuration shares one calibration. Calibrations are cached within the process.
"""

from __future__ import annotations

import hashlib

import numpy as np

#: Simulated values per calibration: at least this many ...
MIN_BUDGET = 400_000
#: ... and at most this many, aiming at this many expected false alarms.
MAX_BUDGET = 2_000_000
TARGET_ALARMS = 100
#: ... and at most this many tests: a short stride must not make calibration crawl.
MAX_TESTS = 20_000
#: Levels seen crossed fewer times than this are not trusted for the estimate.
MIN_CROSSINGS = 15
#: The warning threshold is the one for a run length this many times shorter.
WARNING_FACTOR = 10
#: Tests per simulated run; each run draws its own pseudo-reference, and the reference's
#: luck dominates the false-alarm rate, so many short runs beat few long ones.
RUN_TESTS = 50

_cache: dict = {}


def calibrate(detector, ert: float) -> tuple[float, float]:
    """(threshold, warning threshold) for ``detector``'s configuration and reference."""
    reference = _canonical(detector._reference_sample())
    key = (
        type(detector).__name__,
        repr(sorted(detector._params().items())),
        float(ert),
        hashlib.sha256(_reference_bytes(reference)).hexdigest(),
    )
    if key not in _cache:
        starts, ends, n_values = _simulate(detector, reference, ert)
        _cache[key] = (
            _level_for_rate(starts, ends, n_values, 1.0 / ert, detector.TAIL_POWER),
            _level_for_rate(starts, ends, n_values, WARNING_FACTOR / ert, detector.TAIL_POWER),
        )
    return _cache[key]


def _canonical(reference: np.ndarray) -> np.ndarray:
    """Distinct present numbers become their ranks, missing ones (NaN) follow them;
    anything else is kept as it is."""
    if reference.dtype.kind != "f":
        return reference
    missing = np.isnan(reference)
    present = reference[~missing]
    if np.unique(present).size != present.size:
        return reference
    return np.concatenate([np.arange(present.size, dtype=np.float64), np.full(missing.sum(), np.nan)])


def _reference_bytes(reference: np.ndarray) -> bytes:
    if reference.dtype == object:
        return repr(reference.tolist()).encode()
    return reference.tobytes()


def _simulate(detector, reference: np.ndarray, ert: float):
    """Run null copies of ``detector``; return the (previous, next) statistic of each
    consecutive pair of tests, and the number of values those pairs span."""
    rng = np.random.default_rng(detector.calibration_seed)
    window, stride = detector.window, detector.stride
    budget = int(min(MAX_BUDGET, MAX_TESTS * stride, max(MIN_BUDGET, TARGET_ALARMS * ert)))
    run_tests = RUN_TESTS
    run_length = window + stride * (run_tests - 1)
    n_runs = max(2, budget // (stride * (run_tests - 1)))
    params = {**detector._params(), "threshold": np.inf, "ert": None}
    previous, following = [], []
    for _ in range(n_runs):
        pseudo_reference = reference[rng.integers(0, reference.size, reference.size)]
        null = type(detector)(pseudo_reference, **params)
        stream = reference[rng.integers(0, reference.size, run_length)]
        stats = np.empty(run_tests)
        null.update_many(stream[:window])
        stats[0] = null.statistic
        for k in range(1, run_tests):
            chunk = stream[window + (k - 1) * stride : window + k * stride]
            null.update_many(chunk)
            stats[k] = null.statistic
        previous.append(stats[:-1])
        following.append(stats[1:])
    starts, ends = np.concatenate(previous), np.concatenate(following)
    rising = ends > starts
    return starts[rising], ends[rising], n_runs * (run_tests - 1) * stride


def _crossings(starts: np.ndarray, ends: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """How many rising pairs cross each level: start <= level < end."""
    s, e = np.sort(starts), np.sort(ends)
    return np.searchsorted(s, levels, side="right") - np.searchsorted(e, levels, side="right")


def _level_for_rate(starts, ends, n_values: int, rate: float, tail_power: float) -> float:
    levels = np.unique(ends)
    counts = _crossings(starts, ends, levels)
    # Crossings are rare at low levels too (the statistic stays above them): only the
    # upper tail, above the busiest level, is the false-alarm curve.
    peak = int(np.argmax(counts))
    levels, counts = levels[peak:], counts[peak:]
    wanted = rate * n_values
    if wanted >= MIN_CROSSINGS:
        too_many = np.nonzero(counts > wanted)[0]
        # The lowest level above which the false-alarm rate stays within what was asked.
        return float(levels[min(too_many[-1] + 1, levels.size - 1)]) if too_many.size else float(levels[0])
    # Too rare to observe: fit log(crossings) against level**tail_power over the
    # highest well-observed levels and solve for the wanted count.
    seen = np.nonzero(counts >= MIN_CROSSINGS)[0]
    if seen.size < 2:
        raise ValueError("calibration saw too few false alarms to extrapolate from; raise the budget")
    fit = slice(seen[0], seen[-1] + 1)
    fit_counts = counts[fit]
    keep = fit_counts <= fit_counts[-1] * 20
    x = levels[fit][keep] ** tail_power
    slope, intercept = np.polyfit(x, np.log(fit_counts[keep]), 1)
    if slope >= 0:
        return float(levels[seen[-1]])
    return float(((np.log(wanted) - intercept) / slope) ** (1.0 / tail_power))
