"""The simulated streams of detectors/streams.py: the windows' counts are those of the
plain computation (a search per value or a multinomial draw per chunk, windows as sums of
chunks), whatever the parts the runs are worked on in and the integer type of the counts."""

import math

import numpy as np
import pytest

from detectors import streams


def _reference_windows(alpha, window: int, stride: int, n_runs: int, seed: int) -> np.ndarray:
    """stream_windows written plainly (a search per value or a multinomial draw per chunk,
    a count per chunk, windows as sums of chunks): what the fast path must give."""
    rng = np.random.default_rng(seed)
    chunk = math.gcd(window, stride)
    n_chunks = (window + stride * (streams.RUN_TESTS - 1)) // chunk
    batch = max(1, min(n_runs, streams._BATCH_CELLS // (n_chunks * alpha.size)))
    by_value = 3 * alpha.size > chunk
    out = []
    for first in range(0, n_runs, batch):
        runs = min(batch, n_runs - first)
        p = rng.standard_gamma(alpha, size=(runs, alpha.size))
        p /= p.sum(axis=1, keepdims=True)
        if by_value:
            u = rng.random((runs, n_chunks * chunk))
        for run in range(runs):
            if by_value:
                cdf = np.cumsum(p[run])
                cdf /= cdf[-1]
                bins = np.searchsorted(cdf, u[run], side="right")
                chunks = np.array([np.bincount(c, minlength=alpha.size) for c in bins.reshape(n_chunks, chunk)])
            else:
                chunks = np.array([rng.multinomial(chunk, p[run]) for _ in range(n_chunks)])
            starts = np.arange(streams.RUN_TESTS) * (stride // chunk)
            out.append([chunks[s:s + window // chunk].sum(axis=0) for s in starts])
    return np.array(out)


def _fast(alpha, window, stride, n_runs, seed):
    # Each array is overwritten by the next: copied as it comes.
    return np.concatenate([w.copy() for w in streams.stream_windows(alpha, window, stride, n_runs,
                                                                    np.random.default_rng(seed))])


@pytest.mark.parametrize("cells, window, stride", [(257, 1000, 100), (40, 300, 70), (12, 300, 100)])
def test_stream_windows_draws_what_the_plain_computation_draws(cells, window, stride):
    alpha = np.random.default_rng(cells).integers(0, 40, cells) + 0.5
    fast = _fast(alpha, window, stride, 30, seed=4)
    assert fast.dtype == streams.count_dtype(window, stride)
    assert np.array_equal(fast, _reference_windows(alpha, window, stride, 30, seed=4))


@pytest.mark.parametrize("work_cells, work_values", [(1, 1), (10**9, 10**9)])
def test_the_parts_worked_on_at_once_change_no_count(work_cells, work_values, monkeypatch):
    alpha = np.random.default_rng(3).integers(0, 40, 200) + 0.5
    expected = _fast(alpha, 400, 100, 12, seed=5)
    monkeypatch.setattr(streams, "_WORK_CELLS", work_cells)
    monkeypatch.setattr(streams, "_WORK_VALUES", work_values)
    assert np.array_equal(_fast(alpha, 400, 100, 12, seed=5), expected)


def test_counts_take_the_narrowest_type_that_holds_a_run():
    assert streams.count_dtype(1000, 100) == np.int16  # 5,900 values a run
    assert streams.count_dtype(30_000, 100) == np.int32  # 34,900
    assert streams.count_dtype(2**31, 1) == np.int64
    # The same integers in a wider type: a window of 40,000 values (int32).
    alpha = np.array([30.5, 20.5, 10.5, 5.5])
    wide = _fast(alpha, 40_000, 100, 2, seed=6)
    assert wide.dtype == np.int32 and np.all(wide.sum(axis=-1) == 40_000)
    assert np.array_equal(wide, _reference_windows(alpha, 40_000, 100, 2, seed=6))
