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
import math
import threading

import numpy as np

from . import calibration, streams

#: Union entries a measure of the overlap factor needs.
UNION_CROSSINGS = 60
#: Bisection steps on the per-test rate when the union's rate is observable.
_STEPS = 30
#: Largest table of KS gaps (bins + 1 times window + 1 floats, 8 B each), kept by each
#: calibrating thread.
_TABLE_CELLS = 1 << 19


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


class _Gather:
    """One model's statistic per window, its kind's ``batch_statistic`` on its counts per
    bin, from windows' counts per atom (last axis, shape (runs, tests, atoms)) given part
    by part (:meth:`add`, then :meth:`result`). Bins the reference left empty get 0, or
    are left out (with the reference's) when the kind says they change nothing
    (``IGNORES_EMPTY_BINS``).

    Each bin is a run of atoms, summed by ``np.add.reduceat`` when the runs are long on
    average, else as their first atom plus the next ones (reduceat over many short runs
    costs a call per run). The counts of all ``n_runs`` runs are kept (up to
    ``calibration._KEPT_CELLS``) and the statistic computed at the end, on
    ``calibration._CALL_CELLS`` counts per call: a call per part costs more than its
    arithmetic on a few runs of a few bins, one call on all of them page faults on its
    temporaries under the daemon's allocator. They are laid out bins
    outermost, as the joint simulation has always given them: PSI and chi-square sum
    floats over the bins, in an order that numpy takes from the layout, so their
    thresholds stay the same to the bit (a window's floats do not depend on how many
    windows a call has)."""

    def __init__(self, kind, reference: np.ndarray, end: np.ndarray, n_atoms: int, params: dict, n_runs: int):
        self.kind, self.params = kind, params
        self.n_bins = end.size - 1
        self.filled = np.flatnonzero(end[1:] > end[:-1])
        self.starts = end[:-1][self.filled]
        self.lengths = np.diff(end)[self.filled]
        drop = kind.IGNORES_EMPTY_BINS
        self.reference = reference[self.filled] if drop else reference
        self.out_bins = self.filled.size if drop else self.n_bins
        self.reduce = 4 * self.filled.size <= n_atoms
        cells = self.out_bins * n_runs * calibration.RUN_TESTS
        self.kept = np.zeros((self.out_bins, n_runs, calibration.RUN_TESTS), dtype=np.int64) \
            if cells <= calibration._KEPT_CELLS else None
        self.runs = 0
        self.stats: list = []

    def counts(self, windows: np.ndarray, out: np.ndarray) -> None:
        """Write the model's counts per bin from ``windows`` into ``out`` (shape (runs,
        tests, bins), zero in the bins left empty)."""
        sums = out if self.out_bins == self.filled.size else np.empty(out.shape[:-1] + self.filled.shape, out.dtype)
        if self.reduce:
            # Summed in the windows' type (the sums fit: at most a window): in another,
            # numpy casts element by element.
            np.add.reduceat(windows, self.starts, axis=-1, dtype=windows.dtype, out=sums)
        else:
            sums[...] = windows[..., self.starts]
            for k in range(1, int(self.lengths.max())):
                longer = np.flatnonzero(self.lengths > k)
                sums[..., longer] += windows[..., self.starts[longer] + k]
        if sums is not out:
            out[..., self.filled] = sums

    def add(self, windows: np.ndarray) -> None:
        runs, tests = windows.shape[:-1]
        if self.kept is not None:
            self.counts(windows, self.kept[:, self.runs:self.runs + runs].transpose(1, 2, 0))
        else:
            out = np.zeros((self.out_bins, runs, tests), dtype=np.int64).transpose(1, 2, 0)
            self.counts(windows, out)
            self.stats.append(self.kind.batch_statistic(self.reference, out, self.params))
        self.runs += runs

    def result(self) -> np.ndarray:
        """The statistic of every window added, shape (runs, tests)."""
        if self.kept is not None:
            # A few runs per call (calibration._CALL_CELLS): the same floats, no page faults.
            step = max(1, calibration._CALL_CELLS // (self.out_bins * calibration.RUN_TESTS))
            return np.concatenate([
                self.kind.batch_statistic(self.reference, self.kept[:, a:min(a + step, self.runs)].transpose(1, 2, 0),
                                          self.params)
                for a in range(0, self.runs, step)])
        return np.concatenate(self.stats)


class _KSFromRunningCounts:
    """The KS distance of every window, the floats of ``KS.batch_statistic`` (see
    :mod:`detectors.ks`), from the windows' running counts over the atoms: the KS bins
    end at atoms, so its window CDF is the running count at each bin's last atom over the
    window's size. Cheaper than counts per bin: no gathering of bins that are mostly
    single atoms. Every window of the simulation holds ``window`` values, so each gap
    ``|reference CDF - count / window|`` is read from a table of the gaps of every bin
    and count (the floats ``KS.batch_statistic`` computes), with a row of zeros for the
    atoms within a bin (a gap of 0 never raises the maximum of the others): the running
    counts, each plus its atom's row offset, index it in one take. Without the table
    (beyond ``_TABLE_CELLS``, or windows of other sizes) the quotients ``count / window``
    are read from a table of their ``window + 1`` values. Empty bins are left out (they
    repeat their predecessor's gap, or add a zero one), as ``IGNORES_EMPTY_BINS`` says.
    ``slot`` names the thread's scratch memory the instance uses: distinct for instances
    used together."""

    def __init__(self, reference: np.ndarray, end: np.ndarray, n_atoms: int, window: int, slot: int = 0):
        filled = np.flatnonzero(end[1:] > end[:-1])
        kept = reference[filled]
        self.reference_cdf = np.cumsum(kept) / kept.sum()
        self.last = end[1:][filled] - 1  # each bin's last atom
        self.all_atoms = self.last.size == n_atoms
        self.window = int(window)
        self.shares = np.arange(self.window + 1) / self.window
        self.slot = slot
        self.stats: list = []
        self.table = None
        width = self.window + 1
        if (self.last.size + 1) * width <= _TABLE_CELLS:
            table = _scratch(f"ks table {slot}", ((self.last.size + 1) * width,), np.float64)
            gaps = table[:-width].reshape(self.last.size, width)
            np.subtract(self.reference_cdf[:, None], self.shares, out=gaps)
            np.abs(gaps, out=gaps)
            table[-width:] = 0.0
            self.table = table
            row = np.full(n_atoms, self.last.size)
            row[self.last] = np.arange(self.last.size)
            offsets = row * width
            # Added to each atom's count before the running sum, which then carries them.
            self.steps = np.diff(offsets, prepend=0).astype(np.intp)
            self.full = self.window + int(offsets[-1])  # the last atom's: the window's size

    def _buffer(self, name: str, shape: tuple, dtype) -> np.ndarray:
        return _scratch(f"ks {name} {self.slot}", shape, dtype)

    def __call__(self, windows: np.ndarray) -> np.ndarray:
        if self.table is not None:
            at = np.add(windows, self.steps, out=self._buffer("at", windows.shape, np.intp))
            np.cumsum(at, axis=-1, out=at)
            if np.all(at[..., -1] == self.full):
                gaps = np.take(self.table, at, out=self._buffer("gaps", windows.shape, np.float64), mode="clip")
                return gaps.max(axis=-1)
        # Indices of the platform's type: numpy's take casts others element by element.
        running = np.cumsum(windows, axis=-1, dtype=np.intp, out=self._buffer("running", windows.shape, np.intp))
        if not self.all_atoms:
            taken = self._buffer("taken", windows.shape[:-1] + self.last.shape, np.intp)
            running = np.take(running, self.last, axis=-1, out=taken, mode="clip")
        sizes = running[..., -1:]
        gaps = self._buffer("gaps", running.shape, np.float64)
        if np.all(sizes == self.window):
            np.take(self.shares, running, out=gaps, mode="clip")
        else:
            np.divide(running, sizes, out=gaps)
        np.subtract(self.reference_cdf, gaps, out=gaps)
        np.abs(gaps, out=gaps)
        return gaps.max(axis=-1)

    def add(self, windows: np.ndarray) -> None:
        self.stats.append(self(windows))

    def result(self) -> np.ndarray:
        return np.concatenate(self.stats)


_scratches = threading.local()


def _scratch(name: str, shape: tuple, dtype) -> np.ndarray:
    """An uninitialised C-contiguous array of ``shape`` and ``dtype``, in memory this thread
    keeps for ``name`` from one simulation to the next (grown when too small): the same
    memory for every part of the simulation and every column, as fresh arrays this large
    cost a page fault every 4 kB (see :func:`detectors.streams.stream_windows`). At most
    a few MB (the gap table: ``_TABLE_CELLS`` floats)."""
    dtype = np.dtype(dtype)
    size = math.prod(shape) * dtype.itemsize
    found = getattr(_scratches, name, None)
    if found is None or found.size < size:
        found = np.empty(size, dtype=np.uint8)
        setattr(_scratches, name, found)
    return found[:size].view(dtype).reshape(shape)


def _statistic(kind, reference: np.ndarray, end: np.ndarray, n_atoms: int, params: dict, window: int, n_runs: int,
               slot: int = 0):
    """One model's statistic per window, from windows' counts per atom given part by part
    (``add(windows)``, then ``result()``: shape (runs, tests)); ``slot``: its place among
    the statistics computed together."""
    if kind.KIND == "ks":
        return _KSFromRunningCounts(reference, end, n_atoms, window, slot)
    return _Gather(kind, reference, end, n_atoms, params, n_runs)


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
    statistics = [_statistic(kind, reference, end, atoms.size, param, first.window, n_runs, slot)
                  for slot, (kind, reference, end, param) in enumerate(zip(kinds, references, ends, params))]
    for windows in streams.stream_windows(alpha, first.window, first.stride, n_runs, rng):
        for statistic in statistics:
            statistic.add(windows)
    n_values = n_runs * (calibration.RUN_TESTS - 1) * int(first.stride)
    return [statistic.result() for statistic in statistics], n_values


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
        if self.ends.size:
            self.levels, self.counts = calibration.crossing_curve(self.starts, self.ends)
        else:
            self.levels = self.counts = np.zeros(0)
        # The most crossings at or above each level: the last level crossed more often
        # than asked is the last whose bound passes it.
        self.bound = np.maximum.accumulate(self.counts[::-1])[::-1]
        self._falling = -self.bound  # ascending, for searchsorted
        self._extrapolated: dict = {}

    def level(self, rate: float) -> float:
        wanted = rate * self.n_values
        if self.levels.size == 0:
            return calibration.level_for_rate(self.starts, self.ends, self.n_values, rate, self.power, self.log_power)
        if wanted < calibration.MIN_CROSSINGS:
            # Read again and again while the union's rate is searched for: kept.
            if rate not in self._extrapolated:
                self._extrapolated[rate] = calibration.level_on_curve(self.levels, self.counts, self.n_values, rate,
                                                                      self.power, self.log_power)
            return self._extrapolated[rate]
        first_within = int(np.searchsorted(self._falling, -wanted, side="left"))
        return float(self.levels[min(first_within, self.levels.size - 1)])


def union_levels(null_models, stats, n_values: int, rates) -> list[list[float]]:
    """For each of ``rates`` (union entries per value), every test's level (see the module
    docs): ``levels[model][rate]``. ValueError as :func:`~detectors.calibration.level_for_rate`."""
    tails = [_Tail(s, n_values, calibration.KINDS[m.kind].TAIL_POWER, calibration.KINDS[m.kind].tail_log_power(m))
             for s, m in zip(stats, null_models)]

    def levels_at(r: float) -> list[float]:
        return [tail.level(r) for tail in tails]

    # Neighbouring rates of a search often give the same levels: each set is counted once.
    counted: dict = {}

    def entries_at(levels: list[float]) -> int:
        key = tuple(levels)
        if key not in counted:
            counted[key] = _entries(stats, levels)
        return counted[key]

    def largest_rate(top: float, entries: float) -> float:
        """The largest per-test rate in [top / g, top] whose union stays within ``entries``."""
        low, high = np.log(top / g), np.log(top)
        for _ in range(_STEPS):
            middle = (low + high) / 2
            low, high = (middle, high) if entries_at(levels_at(np.exp(middle))) <= entries else (low, middle)
        return float(np.exp(low))

    g = len(null_models)
    out = []
    overlap = None  # q, the same for every rate: measured once
    for rate in rates:
        wanted = rate * n_values
        if wanted >= UNION_CROSSINGS:
            out.append(levels_at(largest_rate(rate, wanted)))
            continue
        # The overlap factor where the union is seen UNION_CROSSINGS times, then r = rate / q.
        if overlap is None:
            r0 = largest_rate(UNION_CROSSINGS / n_values, UNION_CROSSINGS)
            overlap = min(max(entries_at(levels_at(r0)) / (r0 * n_values), 1.0), float(g))
        out.append(levels_at(rate / overlap))
    return [list(levels) for levels in zip(*out)]
