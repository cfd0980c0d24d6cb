"""Simulated stationary streams in bin space: the counts per bin of the windows a
windowed test sees when nothing changes (:mod:`detectors.calibration` calibrates on them).

A stream is drawn over bins (a test's bins, or the atoms of several tests' bins,
:mod:`detectors.joint`) from ``alpha``, the Dirichlet parameters of its bin
probabilities, in *runs* of :data:`RUN_TESTS` consecutive tests. Each run draws its own
probabilities from Dirichlet(``alpha``) (the Bayesian bootstrap; Rubin, 1981), then its
values chunk by chunk, ``gcd(window, stride)`` values a chunk, so that every window is a
whole number of chunks. A chunk's counts per bin come from one multinomial draw when the
bins are few (``3 * bins <= chunk``), else value by value: each value's bin by inversion
of the run's cumulative probabilities, started from a guide table (Chen and Asau, 1974;
Devroye, 1986, ch. III.2) and stepped forward to the exact bin. A window's counts
are the difference of the running counts over the chunks at its two ends.

The random numbers are taken in a fixed order (the runs' probabilities a batch of
:data:`_BATCH_CELLS` cells at a time, then the batch's values run after run), so the
streams are a function of ``alpha``, the window, the stride, the number of runs and the
generator's seed alone; how many runs are worked on at once (:data:`_WORK_CELLS`) and
the buffers reused are speed only.

>>> windows = next(stream_windows(np.array([5.5, 3.5, 1.5]), window=20, stride=5, n_runs=2,
...                               rng=np.random.default_rng(0)))
>>> windows.shape, bool((windows.sum(axis=-1) == 20).all())
((2, 50, 3), True)

Sources: D. B. Rubin, "The Bayesian bootstrap", Ann. Statist. 9 (1981); H.-C. Chen and
Y. Asau, "On generating random variates from an empirical distribution", AIIE
Transactions 6 (1974); L. Devroye, *Non-Uniform Random Variate Generation*, Springer
(1986).
"""

from __future__ import annotations

import functools
import math

import numpy as np

#: Tests per simulated run; each run draws its own stream probabilities, and that luck
#: dominates the false-alarm rate, so many short runs beat few long ones.
RUN_TESTS = 50
#: Simulated cells per batch of random draws: the batches fix the order in which the
#: draws are taken, so this is part of the simulation (changing it changes thresholds).
_BATCH_CELLS = 1_500_000
#: Cells worked on at once within a batch (2 to 8 B each, :func:`count_dtype`): a few
#: hundred kB, so that the passes over them (counts, cumulative sums, statistics) run in
#: cache. Speed only: the draws are the same.
_WORK_CELLS = 160_000
#: Values drawn at once within a batch when they are drawn one by one (four arrays of
#: 8 B a value). Speed only, as _WORK_CELLS.
_WORK_VALUES = 50_000


def count_dtype(window: int, stride: int) -> np.dtype:
    """The integer type of :func:`stream_windows`' counts for ``window`` and ``stride`` (in
    values): the narrowest of int16, int32 and int64 that holds a run's values (the
    largest running count), so that the passes over the counts move as few bytes as they
    can. The counts are the same integers whatever their type."""
    per_run = int(window) + int(stride) * (RUN_TESTS - 1)
    for dtype in (np.int16, np.int32):
        if per_run <= np.iinfo(dtype).max:
            return np.dtype(dtype)
    return np.dtype(np.int64)


def stream_windows(alpha: np.ndarray, window: int, stride: int, n_runs: int, rng):
    """The windows' counts per bin of ``n_runs`` simulated stationary streams, a few runs
    at a time: arrays of shape (runs, RUN_TESTS, bins) and type :func:`count_dtype`, each
    overwritten by the next (use one before asking for the next). ``alpha``: float64 of
    shape (bins,), positive (a bin at 0 stays empty); ``window`` and ``stride`` in
    values; ``rng`` a numpy Generator, advanced. Each run draws its bin probabilities from
    Dirichlet(``alpha``), then its values chunk by chunk (see the module docs)."""
    window, stride = int(window), int(stride)
    chunk = math.gcd(window, stride)
    span, step = window // chunk, stride // chunk
    n_chunks = span + step * (RUN_TESTS - 1)
    cells = alpha.size
    dtype = count_dtype(window, stride)
    by_value = 3 * cells > chunk
    batch = max(1, min(n_runs, _BATCH_CELLS // (n_chunks * cells)))
    work = max(1, min(batch, _WORK_CELLS // (n_chunks * cells),
                      _WORK_VALUES // (n_chunks * chunk) if by_value else batch))
    by_value = _ByValue(work, n_chunks, chunk, cells, dtype) if by_value else None
    # Running counts over the chunks (the first row stays 0) and the windows: the same
    # memory for every part. Fresh arrays of this size would cost a page fault every few
    # kB each time (glibc maps large blocks anew), as much as the arithmetic on them.
    cum_buffer = np.zeros((n_chunks + 1, work, cells), dtype=dtype)
    window_buffer = np.empty((work, RUN_TESTS, cells), dtype=dtype)
    for first in range(0, n_runs, batch):
        runs = min(batch, n_runs - first)
        p = rng.standard_gamma(alpha, size=(runs, cells))
        p /= p.sum(axis=1, keepdims=True)
        for part in range(0, runs, work):
            # Runs draw their values one after the other, so drawing a batch's runs a few
            # at a time takes the same numbers from rng.
            if by_value is None:
                counts = _draw_by_bin(rng, p[part:part + work], n_chunks, chunk)
            else:
                counts = by_value(rng, p[part:part + work])
            some = counts.shape[1]
            cum, windows = cum_buffer[:, :some], window_buffer[:some]
            if counts[0].size >= 64:
                # numpy accumulates along a leading axis element by element; a slab at a
                # time is several times faster.
                for c in range(n_chunks):
                    np.add(cum[c], counts[c], out=cum[c + 1])
            else:
                np.cumsum(counts, axis=0, out=cum[1:])
            # Test t's window is chunks [t * step, t * step + span).
            np.subtract(cum[span:span + step * RUN_TESTS:step].transpose(1, 0, 2),
                        cum[:step * RUN_TESTS:step].transpose(1, 0, 2), out=windows)
            yield windows


def _draw_by_bin(rng, p: np.ndarray, n_chunks: int, chunk: int) -> np.ndarray:
    """Counts per bin of ``n_chunks`` chunks of ``chunk`` values per run (rows of ``p``),
    shape (n_chunks, runs, bins): one multinomial draw per chunk (cheap when bins are few)."""
    return rng.multinomial(chunk, p[:, None, :], size=(p.shape[0], n_chunks)).transpose(1, 0, 2)


class _ByValue:
    """Counts per bin of ``n_chunks`` chunks of ``chunk`` values per run (rows of ``p``, at
    most ``runs``), shape (n_chunks, runs, bins) and type ``dtype``, each value's bin
    drawn by inversion with a guide table (cheap when bins are many): a value's bin is
    found from the bucket of its uniform, then the few steps to the bin whose cumulative
    probability passes it. The arrays, a value or a count each, are kept from call to
    call: fresh ones would cost a page fault every few kB (glibc maps large blocks anew,
    always so under the daemon's fixed mmap threshold, ``daemon/runtime/allocator.py``)."""

    def __init__(self, runs: int, n_chunks: int, chunk: int, cells: int, dtype=np.int64):
        self.n_chunks, self.chunk = n_chunks, chunk
        self.buckets = 4 * cells
        # The buckets' lower ends, and each run's first bucket and first bin.
        self.grid = np.arange(self.buckets) / self.buckets
        self.bucket_base = (np.arange(runs) * (self.buckets + 1))[:, None]
        self.bin_base = (np.arange(runs) * cells)[:, None]
        n = runs * n_chunks * chunk
        self.u = np.empty(n)
        self.scaled = np.empty(n)
        self.slot = np.empty(n, dtype=np.intp)
        self.found = np.empty(n, dtype=np.intp)
        self.behind = np.empty(n, dtype=bool)
        self.counts = np.empty(n_chunks * runs * cells, dtype=dtype)

    def __call__(self, rng, p: np.ndarray) -> np.ndarray:
        runs, cells = p.shape
        n = runs * self.n_chunks * self.chunk
        cdf = np.cumsum(p, axis=1)
        cdf /= cdf[:, -1:]
        buckets = self.buckets
        # guide[run, j]: the first bin (numbered across runs) whose cdf passes j / buckets,
        # i.e. how many bins of the run have cdf <= j / buckets; counted for all runs at
        # once from the first j at or above each cdf (the comparisons of a search per run).
        first_j = np.searchsorted(self.grid, cdf, side="left")
        first_j += self.bucket_base[:runs]
        guide = np.bincount(first_j.ravel(), minlength=runs * (buckets + 1)).reshape(runs, buckets + 1)
        guide = np.cumsum(guide[:, :buckets], axis=1)
        guide += self.bin_base[:runs]
        u, slot, found = self.u[:n], self.slot[:n], self.found[:n]
        rng.random(out=u)  # the numbers of rng.random((runs, values per run))
        # The bucket: the integer part of u * buckets (the cast truncates), then per run.
        np.multiply(u, buckets, out=slot, casting="unsafe")
        slot += _run_offsets(runs, n // runs, buckets)
        # mode="clip" (the indices are in range): "raise" would copy through a fresh array.
        np.take(guide.ravel(), slot, out=found, mode="clip")
        flat_cdf = cdf.ravel()
        passed = np.less_equal(np.take(flat_cdf, found, out=self.scaled[:n], mode="clip"), u, out=self.behind[:n])
        behind = np.flatnonzero(passed)
        while behind.size:
            found[behind] += 1
            behind = behind[flat_cdf[found[behind]] <= u[behind]]
        # From run * cells + bin to (chunk * runs + run) * cells + bin, then counted.
        found += _chunk_offsets(runs, self.n_chunks, self.chunk, cells)
        counts = self.counts[:self.n_chunks * runs * cells]
        counts.fill(0)
        # A one of the counts' type: another takes numpy's slow path (casts each value).
        np.add.at(counts, found, counts.dtype.type(1))
        return counts.reshape(self.n_chunks, runs, cells)


def _draw_by_value(rng, p: np.ndarray, n_chunks: int, chunk: int) -> np.ndarray:
    """Counts per bin of ``n_chunks`` chunks of ``chunk`` values per run (rows of ``p``),
    shape (n_chunks, runs, bins), drawn value by value (:class:`_ByValue`)."""
    return _ByValue(p.shape[0], n_chunks, chunk, p.shape[1])(rng, p).copy()


@functools.lru_cache(maxsize=8)
def _run_offsets(runs: int, per_run: int, step: int) -> np.ndarray:
    """``run * step`` for each of ``per_run`` values of ``runs`` runs (flat, read-only)."""
    offsets = np.repeat(np.arange(runs) * step, per_run)
    offsets.flags.writeable = False
    return offsets


@functools.lru_cache(maxsize=8)
def _chunk_offsets(runs: int, n_chunks: int, chunk: int, cells: int) -> np.ndarray:
    """Per value of ``runs`` runs of ``n_chunks`` chunks of ``chunk`` values (flat, in run
    order, read-only): its chunk times runs * cells, the step from the value's index
    run * cells + bin to (chunk * runs + run) * cells + bin."""
    offsets = np.tile(np.repeat(np.arange(n_chunks) * (runs * cells), chunk), runs)
    offsets.flags.writeable = False
    return offsets
