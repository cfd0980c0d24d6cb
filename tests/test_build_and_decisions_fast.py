"""The cheaper build and decision paths give exactly what the plain ones gave (issue 8's
peer benchmark): categorical reference counts per distinct level (or from a column's
codes), the CUSUM fed its KS test's bins, decisions and observations made without the
frozen dataclasses' __init__, source look-ups per batch, a column's binnings by edges
found together, a reference sorted once for PSI and KS, the p-values of a batch's tests
together, a categorical reference column's values by numpy."""

import pickle
from collections import Counter

import numpy as np
import pytest

from daemon.stream.columns import _same_slots
from daemon.stream.encoding import level_codes as _level_codes, level_counts as _level_counts
from daemon.stream.decisions import Observation, SourceLog
from daemon.stream.decisions import observation as _observation
from daemon.stream.reference import Column, level
from detectors import CUSUM, KS, ChiSquare, RateTest
from detectors.base import Decision, new_decision
from detectors.binning import KSSlots, QuantileBins, index_together


def _plain_level_counts(values):
    """What the build computed before: a sorted set, a flag per value, a Counter."""
    counts = Counter(v for v in values if v is not None)
    return (sorted({v for v in values if v is not None}),
            np.fromiter((v is None for v in values), dtype=bool, count=len(values)),
            np.fromiter((v is not None and counts[v] == 1 for v in values), dtype=bool, count=len(values)))


@pytest.mark.parametrize("seed", range(5))
def test_level_counts_match_the_plain_passes(seed):
    rng = np.random.default_rng(seed)
    levels = [None] + [f"l{i}" for i in range(int(rng.integers(1, 60)))]
    values = [levels[i] for i in np.minimum(rng.zipf(1.5, size=2000) - 1, len(levels) - 1)]
    if seed == 0:
        values = [v for v in values if v is not None]  # no missing value at all
    got, want = _level_counts(values), _plain_level_counts(values)
    assert got[0] == want[0]
    assert np.array_equal(got[1], want[1]) and np.array_equal(got[2], want[2])


def test_level_codes_of_strings_match_the_typed_keys():
    raw = ["b", None, "a", "b", None, "c"]
    codes, levels = _level_codes(raw)
    assert codes.tolist() == [0, 1, 2, 0, 1, 3] and levels == ["b", None, "a", "c"]
    # Mixed types keep the typed keys: True, 1 and 1.0 stay apart.
    codes, levels = _level_codes(["1", 1, True, 1.0, None])
    assert codes.tolist() == [0, 1, 2, 3, 4] and levels == ["1", "1", "true", "1", None]


@pytest.mark.parametrize("batch", [1, 37, 500])
def test_cusum_fed_the_ks_bins_is_the_cusum_fed_values(batch):
    rng = np.random.default_rng(4)
    reference = rng.normal(size=5000)
    reference[::11] = np.nan
    stream = np.concatenate([rng.normal(size=3000), rng.normal(loc=0.7, size=1500)])
    stream[::13] = np.nan
    plain = CUSUM(reference, window=500, stride=50, ert=1e5)
    shared = CUSUM(reference, window=500, stride=50, ert=1e5)
    ks = KS(reference, window=500, stride=50, ert=1e5, defer_calibration=True)
    assert _same_slots(ks, shared)
    for i in range(0, stream.size, batch):
        values = stream[i:i + batch]
        plain.update_many(values)
        shared.update_slots(ks.binning.index(values), np.isnan(values))
    assert plain.pop_decisions() == shared.pop_decisions()
    assert plain.state() == shared.state() and plain.n_missing == shared.n_missing
    assert not _same_slots(ks, CUSUM(reference, window=500, stride=50, ert=1e5, n_slots=64))


def test_fast_decisions_and_observations_are_the_dataclasses():
    for fast, plain in [(new_decision(7, True, False, 0.25, 0.2, None), Decision(7, True, False, 0.25, 0.2, None)),
                        (_observation("ks", "x", True, 1.5, 9, "data", 7, {"p_value": 0.1}),
                         Observation("ks", "x", True, 1.5, 9, "data", 7, {"p_value": 0.1}))]:
        assert fast == plain and repr(fast) == repr(plain)
        assert pickle.dumps(fast) == pickle.dumps(plain)
        with pytest.raises(AttributeError):  # still frozen
            fast.drift = False


    decision = new_decision(7, True, False, 0.25, 0.2, None)
    assert hash(decision) == hash(Decision(7, True, False, 0.25, 0.2, None))


def test_source_log_get_many_is_get():
    log = SourceLog()
    log.extend([1.5, 2.5, 3.5], [10, 11, 12])
    assert log.get_many([3, 1]) == ([3.5, 1.5], [12, 10])
    log.extend([4.5], [13])  # two chunks: position by position
    assert log.get_many([4, 2]) == ([log.get(4)[0], log.get(2)[0]], [13, 11])
    log.forget()
    log.extend([5.5], [14])
    with pytest.raises(KeyError):
        log.get_many([4])
    with pytest.raises(KeyError):
        log.get_many([6])


def test_binnings_of_one_batch_found_together_are_each_ones():
    rng = np.random.default_rng(6)
    reference = np.concatenate([rng.normal(size=3000), np.zeros(500), rng.poisson(3, 700).astype(float)])
    binnings = [QuantileBins(reference, 10), KSSlots(reference, 128), KSSlots(reference[3000:], 128)]
    for size in (0, 1, 7, 500):
        values = np.round(rng.normal(scale=3, size=size), 1)
        values[::5] = np.nan
        for given in (values, values.tolist()):
            for binning, bins in zip(binnings, index_together(binnings, given)):
                assert bins.dtype == binning.index(given).dtype and np.array_equal(bins, binning.index(given))
    with pytest.raises(ValueError, match="infinite"):
        index_together(binnings, [1.0, np.inf])


def test_a_reference_given_sorted_makes_the_same_bins():
    rng = np.random.default_rng(7)
    reference = np.concatenate([rng.normal(size=2000), [0.0, -0.0] * 50, rng.poisson(2, 500).astype(float)])
    reference[::9] = np.nan
    rng.shuffle(reference)
    missing = np.isnan(reference)
    ordered = np.concatenate([np.sort(reference[~missing]), reference[missing]])  # as DataTests gives it
    for make in (lambda r: QuantileBins(r, 10), lambda r: KSSlots(r, 128), lambda r: KSSlots(r, 4000)):
        plain, given = make(reference), make(ordered)
        assert plain.key() == given.key() and pickle.dumps(plain) == pickle.dumps(given)


def test_p_values_of_a_batch_are_each_tests():
    rng = np.random.default_rng(8)
    chi = ChiSquare(["a"] * 60 + ["b"] * 40, window=50, stride=10, threshold=5.0)
    args = [(float(s), int(d)) for s, d in zip(rng.exponential(5, 300), rng.integers(0, 6, 300))]
    assert chi._p_values(args) == [chi._p_value(a) for a in args] and chi._p_values([]) == []
    rate = RateTest([False] * 980 + [True] * 20, window=100, stride=10, threshold=5.5)
    args = [(int(e), 100) for e in rng.integers(0, 4, 50)] + [(3, 60)]
    assert rate._p_values(args) == [rate._p_value(a) for a in args]


@pytest.mark.parametrize("declared", [None, "categorical"])
def test_categorical_reference_values_are_the_plain_pass(declared):
    rng = np.random.default_rng(9)
    pool = [None, float("nan"), 1, 2.5, -0.0, "a", "b", "1", True] + [f"l{i}" for i in range(300)]
    column = Column("f", declared, 3)
    for i in rng.integers(0, len(pool), 2000):
        column.add(pool[i])
    names = list(column.levels)
    numbers = column.numbers.values().tolist() if column.numbers is not None else None
    plain = [names[code] if code >= 0 else level(numbers[i]) if numbers is not None and numbers[i] == numbers[i]
             else None for i, code in enumerate(column.codes)]
    got = column.values()
    assert got == plain and list(map(type, got)) == list(map(type, plain))


@pytest.mark.parametrize("seed", range(3))
def test_level_counts_from_a_columns_codes_are_those_of_its_values(seed):
    rng = np.random.default_rng(seed)
    column = Column("f", "categorical", 2)
    levels = [None] + [f"l{i}" for i in range(int(rng.integers(1, 300)))] + [7, True]
    column.add_many([levels[i] for i in np.minimum(rng.zipf(1.3, size=3000) - 1, len(levels) - 1)])
    coded = (np.frombuffer(column.codes, dtype=column.codes.typecode), list(column.levels))
    got, want = _level_counts(None, coded), _plain_level_counts(column.values())
    assert got[0] == want[0] and np.array_equal(got[1], want[1]) and np.array_equal(got[2], want[2])
