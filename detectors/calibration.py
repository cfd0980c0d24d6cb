"""Thresholds from an expected run length (ERT) between false alarms.

A test repeated on every window alarms by chance now and then. Rather than a raw
threshold, a user can state how rarely that may happen: ``ert`` is the mean number of
values between false alarms (entries into drift) on a stationary stream.

Everything a windowed test needs for that is its :class:`NullModel`: the test's kind and
settings and the reference's counts per bin, no raw value. :func:`calibrate` simulates the
test under no change, in bin space and vectorised over many runs at once (source: the
Bayesian bootstrap; Rubin, 1981). Each run draws the stream's bin probabilities from
their posterior given the reference counts, Dirichlet with Jeffreys' prior (half a value)
on every bin that the reference filled, and on the empty bins that a test declares open
(``NullModel.open_bins``: the events of a rate test, which must stay sound when the
reference had none). Other empty bins stay empty: values between a numeric reference's
values, levels it never had, missing values where it had none are themselves a change,
which the rate tests (:mod:`detectors.rate`) watch under their own share of the contract;
a distribution test calibrated for them too would only lose power. Chi-square and
categorical PSI built with ``unseen="ignore"`` leave unseen levels out of their windows,
so this is exactly their null even on a stream that keeps bringing new rare levels; with
``unseen="count"`` such a stream alarms more often than ``ert`` says. For
continuous data this is the exact null of quantile bins, whose probabilities are spacings
of uniform order statistics, Dirichlet-distributed with the reference counts. Each run
then draws its stream's bin counts chunk by chunk (``gcd(window, stride)`` values each),
gets every window's counts from cumulative sums (:mod:`detectors.streams` draws the
streams), and the statistics of consecutive tests give the up-crossings of each level:
an entry into drift at that threshold.

The threshold is the lowest level crossed no more often than once every ``ert`` values
(:func:`level_for_rate`). When ``ert`` is too long for the ``N_TESTS`` simulated tests to
see enough crossings, the tail of the crossing rate is extrapolated from the highest
levels that they did see, with the shape of the statistic's tail: chi-square-like for
PSI and chi-square, Gaussian-like for KS. A test kind may instead give its thresholds
exactly (:mod:`detectors.rate` does). Several tests of one column that see the same
windows are simulated together, on the same streams, and calibrated for the union of
their alarms (:func:`calibrate_union`, :mod:`detectors.joint`).

The null depends on the counts and settings only, so references with the same counts
share one calibration: every continuous feature (no ties) of one reference size with one
configuration, whatever its values. Calibrations are cached by ``NullModel.key`` and
``ert`` within the process; :func:`calibrate` is pure, deterministic (the simulation is
seeded by ``NullModel.seed``) and thread-safe.

>>> model = NullModel("chisquare", (500, 300, 200, 0, 0), window=200, stride=50, open_bins=(3, 4))
>>> threshold, warning = calibrate(model, ert=20_000)
>>> warning < threshold, calibrate(model, ert=20_000) == (threshold, warning)
(True, True)
"""

from __future__ import annotations

import collections
import hashlib
import threading
from dataclasses import dataclass

import numpy as np
from scipy import optimize

from .streams import RUN_TESTS, stream_windows

#: Simulated tests per calibration.
N_TESTS = 10_000
#: Levels seen crossed fewer times than this are not trusted for the estimate.
MIN_CROSSINGS = 15
#: The tail is fitted over levels crossed up to this many times as often as the highest.
FIT_SPAN = 100
#: The warning threshold is the one for a run length this many times shorter.
WARNING_FACTOR = 10
#: Pseudo-count per bin of the prior (Jeffreys).
PRIOR = 0.5
#: Window counts kept for one call of a statistic, at most (8 B each).
_KEPT_CELLS = 500_000
#: Window counts given to a statistic per call, at most, when they are kept: its float
#: temporaries (8 B a cell) then stay below glibc's mmap threshold (128 KiB, fixed so by
#: the daemon's allocator, ``daemon/runtime/allocator.py``), which would map each anew at
#: a page fault every 4 kB. Speed only: a window's floats do not depend on how many
#: windows a call has.
_CALL_CELLS = 16_000
#: Bumped when the simulation changes, so that saved calibrations are not reused.
VERSION = 2

#: Test kinds by name (``NullModel.kind``): filled in by the windowed tests' classes.
KINDS: dict[str, type] = {}


@dataclass(frozen=True)
class NullModel:
    """What the null distribution of a windowed test depends on: its ``kind`` (a key of
    :data:`KINDS`), the reference's ``counts`` per bin (the bins the stream is drawn
    over), ``window`` and ``stride`` in values, other ``params`` of the statistic as
    sorted (name, value) pairs, and the simulation's ``seed``. Small, picklable, and
    identified by :attr:`key`."""

    kind: str
    counts: tuple
    window: int
    stride: int
    params: tuple = ()
    seed: int = 0
    #: Bins that may fill although the reference left them empty (a rate test's events):
    #: they get the prior; other empty bins stay empty in the simulation.
    open_bins: tuple = ()

    @property
    def key(self) -> str:
        text = repr((VERSION, self.kind, tuple(self.counts), int(self.window), int(self.stride),
                     tuple(self.params), int(self.seed), tuple(int(b) for b in self.open_bins)))
        return hashlib.sha256(text.encode()).hexdigest()

    def prior_counts(self) -> np.ndarray:
        """The Dirichlet parameters of the stream's bin probabilities: the reference counts
        plus :data:`PRIOR` on every bin that filled or may fill."""
        counts = np.asarray(self.counts, dtype=np.float64)
        alpha = np.where(counts > 0, counts + PRIOR, 0.0)
        alpha[list(self.open_bins)] = counts[list(self.open_bins)] + PRIOR
        return alpha


_lock = threading.Lock()
#: Thresholds by (NullModel.key, ert), the oldest forgotten beyond _MAX_CACHED.
_cache: collections.OrderedDict = collections.OrderedDict()
_MAX_CACHED = 200_000
_simulations: collections.OrderedDict = collections.OrderedDict()
_MAX_SIMULATIONS = 8


def calibrate(null_model: NullModel, ert: float) -> tuple[float, float]:
    """(threshold, warning threshold) for which the test of ``null_model`` enters drift
    once every ``ert`` values on a stationary stream (the warning: every
    ``ert / WARNING_FACTOR``). ValueError if ``ert`` is shorter than a stride."""
    if ert < null_model.stride:
        raise ValueError(f"ert must be at least stride ({null_model.stride}) values, got {ert}")
    key = (null_model.key, float(ert))
    with _lock:
        if key in _cache:
            return _cache[key]
    kind = KINDS[null_model.kind]
    exact = getattr(kind, "exact_thresholds", None)
    if exact is not None:
        result = exact(null_model, [1.0 / ert, WARNING_FACTOR / ert])
    else:
        starts, ends, n_values, top = _simulation(null_model)
        if ends.size == 0:
            # The statistic never moves under the null (a constant reference): any change
            # of it is a change of the stream.
            result = (top, top)
        else:
            log_power = kind.tail_log_power(null_model)
            result = tuple(level_for_rate(starts, ends, n_values, rate, kind.TAIL_POWER, log_power)
                           for rate in (1.0 / ert, WARNING_FACTOR / ert))
    result = (float(result[0]), float(result[1]))
    with _lock:
        _cache[key] = result
        while len(_cache) > _MAX_CACHED:
            _cache.popitem(last=False)
    return result


def calibrate_union(null_models, ert: float) -> list[tuple[float, float]]:
    """(threshold, warning threshold) for each of several tests of one column, so that
    together they raise one false alarm every ``ert`` values.

    Each test has an equal share of the rate ``1 / ert``. Tests whose statistic is a count
    (rate tests) cannot use a whole share: each is calibrated for its share alone
    (exactly), and what its threshold leaves unused goes, in equal parts, to the tests
    with a simulated statistic. Those that watch one stream (:func:`detectors.joint.sharing_groups`:
    PSI and KS of a numeric column without missing reference values, chi-square and PSI
    of a categorical one) are simulated together, once, and their thresholds set for the
    *union* of their alarms to come at their shares' summed rate
    (:func:`detectors.joint.union_levels`: one common per-test rate, searched for); a
    test alone is calibrated for its share (:func:`calibrate`). Without rate tests and
    without tests sharing a stream this is the equal split, each test calibrated to ``ert
    * len(null_models)``. Deterministic and cached, as :func:`calibrate`.

    >>> psi = NullModel("psi", (100,) * 10 + (0,), window=200, stride=50, params=(("smoothing", 0.5),))
    >>> ks = NullModel("ks", (10,) * 100, window=200, stride=50)
    >>> levels = calibrate_union([psi, ks], 50_000)   # simulated once, together
    >>> levels == calibrate_union([psi, ks], 50_000), all(warning < threshold for threshold, warning in levels)
    (True, True)
    """
    from . import joint

    models = list(null_models)
    if not models:
        return []
    n = len(models)
    discrete = [getattr(KINDS[m.kind], "exact_rate", None) for m in models]
    out = [calibrate(m, ert * n) if rate_of else None for m, rate_of in zip(models, discrete)]
    fluid = [i for i in range(n) if discrete[i] is None]
    if not fluid:
        return out
    # Per simulated test: the rate of its share, threshold and warning.
    rates = []
    for position, factor in ((0, 1.0), (1, WARNING_FACTOR)):
        spent = sum(discrete[i](models[i], out[i][position]) for i in range(n) if discrete[i])
        rates.append((factor / ert - spent) / len(fluid))
    for group in joint.sharing_groups([models[i] for i in fluid]):
        members = [fluid[j] for j in group]
        levels = None
        if len(members) > 1:
            levels = _joint_levels([models[i] for i in members], [r * len(members) for r in rates])
        for k, i in enumerate(members):
            if levels is not None:
                out[i] = levels[k]
            elif len(fluid) == n:
                out[i] = calibrate(models[i], ert * n)
            else:
                out[i] = (calibrate(models[i], 1.0 / rates[0])[0], calibrate(models[i], WARNING_FACTOR / rates[1])[1])
    return out


def _joint_levels(models, rates):
    """(threshold, warning) per model for the union of their alarms at ``rates`` (see
    :mod:`detectors.joint`), or None where a joint calibration cannot be made (a
    statistic that never moves, too few alarms seen): the caller then calibrates each alone."""
    from . import joint

    key = ("union", joint.joint_key(models), tuple(float(r) for r in rates))
    with _lock:
        if key in _cache:
            return _cache[key]
    with _lock:
        found = _simulations.get(key[1])
    if found is None:
        found = joint.joint_simulation(models, N_TESTS)
        with _lock:
            _simulations[key[1]] = found
            while len(_simulations) > _MAX_SIMULATIONS:
                _simulations.popitem(last=False)
    stats, n_values = found
    try:
        levels = joint.union_levels(models, stats, n_values, rates)
    except ValueError:
        return None
    result = [(float(threshold), float(warning)) for threshold, warning in levels]
    with _lock:
        _cache[key] = result
        while len(_cache) > _MAX_CACHED:
            _cache.popitem(last=False)
    return result


def _simulation(null_model: NullModel):
    """The simulation of ``null_model`` (it does not depend on ert): the last few are kept."""
    with _lock:
        found = _simulations.get(null_model.key)
        if found is not None:
            _simulations.move_to_end(null_model.key)
            return found
    result = simulate(null_model, N_TESTS)
    with _lock:
        _simulations[null_model.key] = result
        while len(_simulations) > _MAX_SIMULATIONS:
            _simulations.popitem(last=False)
    return result


def simulate(null_model: NullModel, n_tests: int):
    """Run the test of ``null_model`` on about ``n_tests`` windows of stationary streams;
    return the (previous, next) statistics of the consecutive pairs of tests that rose,
    the number of values all pairs span, and the largest statistic seen."""
    kind = KINDS[null_model.kind]
    params = dict(null_model.params)
    reference = np.asarray(null_model.counts, dtype=np.int64)
    alpha = null_model.prior_counts()
    if kind.IGNORES_EMPTY_BINS:
        # Bins that stay empty in reference and stream change nothing: leave them out.
        reference, alpha = reference[alpha > 0], alpha[alpha > 0]
    n_runs = max(2, -(-n_tests // RUN_TESTS))
    # The windows of all runs are kept (when not too many) for one call of the statistic:
    # a call per part of a few runs costs more than its arithmetic. A window's floats do
    # not depend on how many windows a call has.
    kept = np.empty((n_runs, RUN_TESTS, alpha.size), dtype=np.int64) if n_runs * RUN_TESTS * alpha.size <= _KEPT_CELLS \
        else None
    parts, done = [], 0
    for windows in stream_windows(alpha, null_model.window, null_model.stride, n_runs,
                                  np.random.default_rng([int(null_model.seed), VERSION])):
        if kept is None:
            # The statistics take int64 counts (narrower ones could change their floats'
            # types under older numpy promotion rules).
            parts.append(kind.batch_statistic(reference, windows.astype(np.int64), params))
        else:
            kept[done:done + windows.shape[0]] = windows
        done += windows.shape[0]
    if kept is not None:
        step = max(1, _CALL_CELLS // (RUN_TESTS * alpha.size))
        parts = [kind.batch_statistic(reference, kept[a:a + step], params) for a in range(0, n_runs, step)]
    stats = np.concatenate(parts)
    previous, following = stats[:, :-1].ravel(), stats[:, 1:].ravel()
    rising = following > previous
    return previous[rising], following[rising], n_runs * (RUN_TESTS - 1) * null_model.stride, float(stats.max())


def level_for_rate(starts, ends, n_values: int, rate: float, tail_power: float,
                   tail_log_power: float = 0.0) -> float:
    """The lowest level above which rising pairs of consecutive statistics
    (``starts[i] < ends[i]``) cross no more often than ``rate`` per value, over the
    ``n_values`` values they span.

    When the rate is too low to observe, the tail of the crossing counts is extrapolated:
    ``log(crossings) = a + b * level**tail_power + tail_log_power * log(level)``, ``a`` and
    ``b`` fitted over the highest levels crossed at least ``MIN_CROSSINGS`` times (and at
    most ``FIT_SPAN`` times as often as the highest of them). ``tail_log_power`` fixes the
    shape from theory: a chi-square-like statistic with ``k`` degrees of freedom has
    up-crossings ~ ``c**((k - 1) / 2) * exp(-c / 2)`` (Rice's formula), the KS distance
    ``d * exp(-2 n d**2)``. ValueError if the statistic never rose or too few crossings
    were seen to extrapolate.
    """
    levels, counts = crossing_curve(starts, ends)
    return level_on_curve(levels, counts, n_values, rate, tail_power, tail_log_power)


def crossing_curve(starts, ends) -> tuple[np.ndarray, np.ndarray]:
    """The upper tail of the crossing counts of rising pairs (``starts[i] < ends[i]``):
    the levels (the distinct ends from the busiest one up, float64) and how many pairs
    cross each. ValueError if the statistic never rose."""
    starts, ends = np.asarray(starts, dtype=np.float64), np.asarray(ends, dtype=np.float64)
    if ends.size == 0:
        raise ValueError("calibration: the statistic never varied under the null; nothing to test")
    # Each level (a distinct end) is crossed by the pairs with start <= level < end: the
    # starts at or below it less the ends at or below it, read from the sorted ends (the
    # first of each run of equal ends, as np.unique keeps it, and where the next begins).
    e = np.sort(ends)
    first = np.flatnonzero(np.concatenate(([True], e[1:] != e[:-1])))
    levels = e[first]
    counts = np.searchsorted(np.sort(starts), levels, side="right") - np.append(first[1:], e.size)
    # Crossings are rare at low levels too (the statistic stays above them): only the
    # upper tail, above the busiest level, is the false-alarm curve.
    peak = int(np.argmax(counts))
    return levels[peak:], counts[peak:]


def level_on_curve(levels: np.ndarray, counts: np.ndarray, n_values: int, rate: float, tail_power: float,
                   tail_log_power: float = 0.0) -> float:
    """:func:`level_for_rate` on a :func:`crossing_curve` already computed (a curve read
    for several rates is computed once)."""
    wanted = rate * n_values
    if wanted >= MIN_CROSSINGS:
        too_many = np.nonzero(counts > wanted)[0]
        # The lowest level above which the false-alarm rate stays within what was asked.
        return float(levels[min(too_many[-1] + 1, levels.size - 1)]) if too_many.size else float(levels[0])
    seen = np.nonzero(counts >= MIN_CROSSINGS)[0]
    if seen.size < 2:
        raise ValueError("calibration saw too few false alarms to extrapolate from")
    fit = slice(seen[0], seen[-1] + 1)
    fit_levels, fit_counts = levels[fit], counts[fit]
    # (A level between two seen ones may have no crossing at all: no log of 0.)
    keep = (fit_counts <= fit_counts[-1] * FIT_SPAN) & (fit_levels > 0) & (fit_counts > 0)
    x = fit_levels[keep]
    slope, intercept = np.polyfit(x ** tail_power, np.log(fit_counts[keep]) - tail_log_power * np.log(x), 1)
    last = float(fit_levels[-1])
    if slope >= 0 or x.size < 2:
        return last

    def excess(level: float) -> float:
        return intercept + slope * level ** tail_power + tail_log_power * np.log(level) - np.log(wanted)

    high = last
    while excess(high) > 0:
        high *= 1.5
    if excess(last) <= 0:
        return last
    return float(optimize.brentq(excess, last, high, xtol=1e-12 * high))
