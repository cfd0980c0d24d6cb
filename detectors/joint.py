"""Joint calibration of the tests of one column that watch one stream (PSI and KS of a
numeric feature; chi-square and PSI of a categorical one): thresholds for the *union* of
their alarms.

Two windowed tests of one column see the same windows when they leave out the same
values: for categorical bins when both count or both ignore missing values, and for
numbers when PSI ignores them as KS does (``missing="ignore"``), or when the reference
had none (without any in the reference the null never draws one). Their bins then both
group the column's values in one order (by value, or by the reference's level order), so
their null models have a common refinement: the *atoms*, cut wherever either test's
cumulative reference counts step. Empty atoms stay empty under the null (see
:mod:`detectors.calibration`), so the refinement needs the counts only, no value. :func:`joint_simulation` draws each simulated
run's stream once over the atoms (Dirichlet with Jeffreys' prior on every atom, as
:func:`~detectors.calibration.simulate` does per bin) and computes every test's statistic
on the same windows: one set of random draws for the column instead of one per test.

The union of the alarms is an entry of the column into drift: a test at which at least
one statistic is above its threshold, the previous test having none. :func:`union_levels`
gives every test the threshold of one common per-test up-crossing rate ``r``
(:func:`~detectors.calibration.level_for_rate`), ``r`` chosen so that the union's rate is
the one asked. When the simulation saw enough union entries for that rate, ``r`` is found
by bisection on the simulated union itself; otherwise (long ERTs, the usual case) the
overlap factor ``q = union rate / r``, between 1 (the tests always alarm together) and
the number of tests (never together), is measured at the lowest rate with
``UNION_CROSSINGS`` union entries, and ``r = rate / q``, each level extrapolated as for a
single test. That assumes the overlap stays as measured further in the tail: where the
tests alarm together less often there, the union alarms more often than asked, at most
``number of tests / q`` times (``q`` at the number of tests is the Bonferroni split, the
bound).

>>> from detectors.calibration import NullModel
>>> psi = NullModel("psi", (10, 10, 10, 10, 0), window=20, stride=5, params=(("smoothing", 0.5),))
>>> ks = NullModel("ks", (5, 5, 5, 5, 5, 5, 5, 5), window=20, stride=5)
>>> joint_atoms([psi, ks]).tolist()
[5, 5, 5, 5, 5, 5, 5, 5]
>>> sharing_groups([psi, ks, NullModel("ks", (40,), window=20, stride=10)])
[[0, 1], [2]]
"""

from __future__ import annotations

import hashlib

import numpy as np

from . import calibration

#: Union entries a measure of the overlap factor needs.
UNION_CROSSINGS = 60
#: Bisection steps on the per-test rate when the union's rate is observable.
_STEPS = 30


def sharing_groups(null_models) -> list[list[int]]:
    """Indices of ``null_models`` (tests of one column) grouped by the stream they share:
    same window and stride, the same total reference count (so the same values enter
    their windows), no open bin, a simulated (not exact) null. Others are alone."""
    groups: dict = {}
    for i, m in enumerate(null_models):
        simulated = getattr(calibration.KINDS[m.kind], "exact_thresholds", None) is None
        key = (int(m.window), int(m.stride), int(sum(m.counts))) if simulated and not m.open_bins else ("alone", i)
        groups.setdefault(key, []).append(i)
    return list(groups.values())


def joint_atoms(null_models) -> np.ndarray:
    """Reference counts of the atoms: the common refinement of the models' bins, read as
    groups of one order of the column's values (see the module docs)."""
    bounds = np.unique(np.concatenate([np.cumsum(m.counts) for m in null_models]))
    bounds = bounds[bounds > 0]
    return np.diff(bounds, prepend=0)


def _bin_ends(null_model, bounds: np.ndarray) -> np.ndarray:
    """Per bin of ``null_model`` (and a leading 0): how many atoms end at or before it."""
    return np.concatenate([[0], np.searchsorted(bounds, np.cumsum(null_model.counts), side="right")])


def joint_key(null_models) -> str:
    return hashlib.sha256(repr([m.key for m in null_models]).encode()).hexdigest()


def joint_simulation(null_models, n_tests: int):
    """Simulate the tests of ``null_models`` (one group of :func:`sharing_groups`) on the
    same streams: the statistics of each test, shape (runs, RUN_TESTS) per model, and
    the number of values the consecutive pairs of tests span."""
    atoms = joint_atoms(null_models)
    bounds = np.cumsum(atoms)
    ends = [_bin_ends(m, bounds) for m in null_models]
    kinds = [calibration.KINDS[m.kind] for m in null_models]
    references = [np.asarray(m.counts, dtype=np.int64) for m in null_models]
    params = [dict(m.params) for m in null_models]
    first = null_models[0]
    n_runs = max(2, -(-n_tests // calibration.RUN_TESTS))
    seed = int(joint_key(null_models)[:16], 16)
    rng = np.random.default_rng([seed, calibration.VERSION])
    alpha = atoms + calibration.PRIOR
    stats = [[] for _ in null_models]
    for windows in calibration.stream_windows(alpha, first.window, first.stride, n_runs, rng):
        cum = np.zeros(windows.shape[:-1] + (atoms.size + 1,), dtype=np.int32)
        np.cumsum(windows, axis=-1, out=cum[..., 1:])
        for out, kind, reference, end, param in zip(stats, kinds, references, ends, params):
            out.append(kind.batch_statistic(reference, cum[..., end[1:]] - cum[..., end[:-1]], param))
    n_values = n_runs * (calibration.RUN_TESTS - 1) * int(first.stride)
    return [np.concatenate(s) for s in stats], n_values


def _rising(stats: np.ndarray):
    previous, following = stats[:, :-1].ravel(), stats[:, 1:].ravel()
    rising = following > previous
    return previous[rising], following[rising]


def _entries(stats, levels) -> int:
    """Entries of the union into drift: tests above a level, the previous test not."""
    drift = np.zeros(stats[0].shape, dtype=bool)
    for s, level in zip(stats, levels):
        drift |= s > level
    return int(np.count_nonzero(drift[:, 1:] & ~drift[:, :-1]))


class _Tail:
    """One test's up-crossing counts per level, for reading many rates quickly: the same
    levels as :func:`~detectors.calibration.level_for_rate`, which it asks only when a rate
    must be extrapolated."""

    def __init__(self, stats: np.ndarray, n_values: int, power: float, log_power: float):
        self.starts, self.ends = _rising(stats)
        self.n_values, self.power, self.log_power = n_values, power, log_power
        levels = np.unique(self.ends)
        counts = calibration._crossings(self.starts, self.ends, levels)
        peak = int(np.argmax(counts)) if counts.size else 0
        self.levels = levels[peak:]
        # The most crossings at or above each level: the last level crossed more often
        # than asked is the last whose bound passes it.
        self.bound = np.maximum.accumulate(counts[peak:][::-1])[::-1]

    def level(self, rate: float) -> float:
        wanted = rate * self.n_values
        if wanted < calibration.MIN_CROSSINGS or self.levels.size == 0:
            return calibration.level_for_rate(self.starts, self.ends, self.n_values, rate, self.power, self.log_power)
        first_within = int(np.searchsorted(-self.bound, -wanted, side="left"))
        return float(self.levels[min(first_within, self.levels.size - 1)])


def union_levels(null_models, stats, n_values: int, rates) -> list[list[float]]:
    """For each of ``rates`` (union entries per value), every test's level (see the module
    docs): ``levels[model][rate]``. ValueError as :func:`~detectors.calibration.level_for_rate`."""
    tails = [_Tail(s, n_values, calibration.KINDS[m.kind].TAIL_POWER, calibration.KINDS[m.kind].tail_log_power(m))
             for s, m in zip(stats, null_models)]

    def levels_at(r: float) -> list[float]:
        return [tail.level(r) for tail in tails]

    def largest_rate(top: float, entries: float) -> float:
        """The largest per-test rate in [top / g, top] whose union stays within ``entries``."""
        low, high = np.log(top / g), np.log(top)
        for _ in range(_STEPS):
            middle = (low + high) / 2
            low, high = (middle, high) if _entries(stats, levels_at(np.exp(middle))) <= entries else (low, middle)
        return float(np.exp(low))

    g = len(null_models)
    out = []
    for rate in rates:
        wanted = rate * n_values
        if wanted >= UNION_CROSSINGS:
            out.append(levels_at(largest_rate(rate, wanted)))
            continue
        # The overlap factor where the union is seen UNION_CROSSINGS times, then r = rate / q.
        r0 = largest_rate(UNION_CROSSINGS / n_values, UNION_CROSSINGS)
        q = min(max(_entries(stats, levels_at(r0)) / (r0 * n_values), 1.0), float(g))
        out.append(levels_at(rate / q))
    return [list(levels) for levels in zip(*out)]
