"""The null of the reconstruction test (:mod:`detectors.reconstruction`): stationary streams
of the reference's held-out row errors, simulated by the Bayesian bootstrap.

:class:`ReconstructionNull` carries what the null depends on (the row errors, window,
stride, seed; no raw value) and its cache key; :func:`simulate` runs the test on
stationary streams drawn from it, as the Polya urn that is the Bayesian bootstrap with its
Dirichlet weights integrated out (:func:`urn_rows`), and returns the up-crossings that
:func:`detectors.calibration.level_for_rate` turns into a threshold.

Sources: D. B. Rubin, "The Bayesian bootstrap", Annals of Statistics 9 (1981); D. Blackwell
and J. B. MacQueen, "Ferguson distributions via Polya urn schemes", Annals of Statistics
1 (1973).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np

from . import calibration

#: Simulated tests per calibration (more than the binned tests' 10,000: a simulated test
#: is cheap here, and more of them leave less of the tail to extrapolation).
N_TESTS = 20_000
#: Elements (rows or draws) of the simulation's runs worked through at a time: 125 kB a
#: float64 array, in the CPU's cache and below glibc's mmap threshold (128 KiB, fixed so by
#: the daemon's allocator, ``daemon/runtime/allocator.py``: a larger temporary is mapped
#: anew at a page fault every 4 kB, which cost as much as the simulation's arithmetic).
#: Speed only: see :func:`simulate`.
CACHE_ELEMENTS = 16_000
#: Bumped when the simulation changes (cached calibrations are not reused): 2 when its
#: Bayesian bootstrap became the Polya urn (the same distribution, other random numbers).
SIMULATION_VERSION = 2


@dataclass(frozen=True, eq=False)
class ReconstructionNull:
    """The null of a reconstruction test: ``errors``, the reference rows' out-of-sample
    errors (float64, shape ``(rows,)``, about 1 on average), ``window``, ``stride``,
    the simulation's ``seed`` and the test's ``statistic_version``. Given to :func:`detectors.calibration.calibrate` like a
    :class:`~detectors.calibration.NullModel` (``kind`` names :class:`Reconstruction`)."""

    errors: np.ndarray = field(repr=False)
    window: int
    stride: int
    seed: int = 0
    statistic_version: int = 1  # the test's (its VERSION): part of the key
    kind: str = "reconstruction"

    @property
    def key(self) -> str:
        digest = hashlib.sha256(np.ascontiguousarray(self.errors, dtype=np.float64).tobytes())
        digest.update(repr((int(self.statistic_version), SIMULATION_VERSION, calibration.VERSION, N_TESTS, int(self.window),
                            int(self.stride), int(self.seed))).encode())
        return digest.hexdigest()


def simulate(null: ReconstructionNull, n_tests: int):
    """Run the test on about ``n_tests`` windows of stationary streams bootstrapped from
    ``null.errors`` (see the module docs): the (previous, next) statistics of consecutive
    tests that rose, the rows they span, and the largest statistic seen.

    Each run's rows are drawn by the Polya urn (:func:`urn_rows`) that is the Bayesian
    bootstrap with its Dirichlet weights integrated out: the same distribution of
    streams, from one uniform per drawn row (instead of a weight for every reference row,
    then a uniform and a search per drawn row). The uniforms are drawn in batches of runs
    (the order fixes the result), and each batch is then worked through a few runs at a
    time (:data:`CACHE_ELEMENTS`), so that its arrays stay in the CPU's cache; how many
    at a time changes the speed only, never a number."""
    errors = np.asarray(null.errors, dtype=np.float64)
    window, stride, tests = int(null.window), int(null.stride), calibration.RUN_TESTS
    length = window + stride * (tests - 1)
    n_runs = max(2, -(-n_tests // tests))
    rng = np.random.default_rng([int(null.seed), SIMULATION_VERSION, calibration.VERSION])
    positions = np.arange(tests) * stride
    batch = max(1, min(n_runs, 2_000_000 // length))  # about 16 MB of uniforms at most
    few = max(1, CACHE_ELEMENTS // length)
    starts, ends, top = [], [], -np.inf
    for first in range(0, n_runs, batch):
        runs = min(batch, n_runs - first)
        uniforms = rng.random((runs, length))
        for a in range(0, runs, few):
            b = min(runs, a + few)
            values = errors[urn_rows(uniforms[a:b], errors.size)]
            cum = np.zeros((b - a, length + 1))
            np.cumsum(values, axis=1, out=cum[:, 1:])
            stats = (cum[:, positions + window] - cum[:, positions]) / window
            top = max(top, float(stats.max()))
            previous, following = stats[:, :-1].ravel(), stats[:, 1:].ravel()
            rising = following > previous
            starts.append(previous[rising])
            ends.append(following[rising])
    return np.concatenate(starts), np.concatenate(ends), n_runs * (tests - 1) * stride, top


def urn_rows(u: np.ndarray, n: int) -> np.ndarray:
    """Row numbers (in ``0..n-1``) of runs drawn by the Polya urn from uniforms ``u``
    (shape (runs, length), in [0, 1)): same shape.

    The Bayesian bootstrap draws a run's weights on the ``n`` rows from a flat Dirichlet,
    then its rows independently from those weights. With the weights integrated out, the
    ``k``-th draw (0-based) is row ``i`` with probability ``(1 + c_i) / (n + k)``, ``c_i``
    the earlier draws of row ``i`` (the Dirichlet's predictive rule: Blackwell and
    MacQueen, 1973): that is, a row chosen uniformly with probability ``n / (n + k)``,
    else a copy of one of the ``k`` earlier draws chosen uniformly. One uniform does both:
    ``floor(u * (n + k))`` is that row if below ``n``, else the earlier draw it copies
    (``- n``). A copy of a copy is followed back to a fresh draw, all copies a step at a
    time (a few steps: a draw is a copy with probability ``k / (n + k)``, so chains are
    short).

    >>> urn_rows(np.array([[0.5, 0.9, 0.2]]), 2).tolist()   # row 1; copy of draw 0; row 0
    [[1, 1, 0]]
    """
    runs, length = u.shape
    # floor(u * (n + k)) < n + k: u is below 1 by at least 2**-53, which keeps the product
    # more than half a unit in the last place below n + k (it never rounds up to it).
    pick = (u * (n + np.arange(length, dtype=np.float64))).astype(np.intp).ravel()
    copies = np.flatnonzero(pick >= n)
    # Each copy's source, as a place in the flat (runs * length) array: in its own run.
    source = pick[copies] - n + copies // length * length
    pending = np.arange(copies.size)
    while pending.size:  # a source that is itself a copy: follow it (a few rounds)
        further = pick[source[pending]]
        chained = further >= n
        pending = pending[chained]
        source[pending] = further[chained] - n + copies[pending] // length * length
    pick[copies] = pick[source]
    return pick.reshape(runs, length)
