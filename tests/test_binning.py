"""Binning rules: exact big integers as levels, refused as numbers; KS slots exact or
bounded; the point-mass rule."""

import numpy as np
import pytest
from scipy import stats

from detectors import KS, PSI, ChiSquare
from detectors.binning import CategoricalBins, KSSlots, QuantileBins

BIG = 9007199254740993  # 2**53 + 1: float64 would make it 2**53


def test_big_integers_are_distinct_categorical_levels():
    bins = CategoricalBins([BIG] * 30 + [BIG - 1] * 20)
    assert bins.levels == {str(BIG): 0, str(BIG - 1): 1}
    assert bins.index([BIG, BIG - 1, np.int64(BIG), float(BIG - 1), "x"]).tolist() == [0, 1, 0, 1, 2]
    chi = ChiSquare([BIG] * 500 + [BIG - 1] * 500, window=100, threshold=20.0)
    chi.update_many([BIG] * 100)
    assert chi.drift


@pytest.mark.parametrize("reference", [
    [BIG] + list(range(50)),
    np.array([BIG] + list(range(50)), dtype=np.int64),
    [-BIG] + list(range(50)),
])
def test_big_integers_are_refused_as_numbers(reference):
    with pytest.raises(ValueError, match=r"beyond \+/-2\*\*53.*categorical"):
        KS(reference, threshold=0.1)
    with pytest.raises(ValueError, match=r"beyond \+/-2\*\*53"):
        PSI(reference, threshold=0.1)


def test_integers_up_to_two_to_the_53_are_numbers():
    ks = KS([2**53] * 10 + list(range(50)), window=10, threshold=0.5)
    ks.update_many([2**53, -(2**53)])
    with pytest.raises(ValueError, match="beyond"):
        ks.update_many([BIG])


def test_ks_slots_are_exact_up_to_n_slots_distinct_values():
    exact = KSSlots(np.repeat(np.arange(100.0), 3), n_slots=100)
    bounded = KSSlots(np.repeat(np.arange(101.0), 3), n_slots=100)
    assert exact.exact and not bounded.exact
    assert exact.n_bins == 2 * 100 + 2 and bounded.n_bins <= 2 * 100 + 2


@pytest.mark.parametrize("seed", range(4))
def test_bounded_ks_is_a_close_lower_bound(seed):
    rng = np.random.default_rng(seed)
    reference = np.r_[rng.normal(size=3000), np.zeros(400)]  # a point mass among continuous values
    window = np.r_[rng.normal(0.2 * seed, size=500), np.zeros(30)]
    ks = KS(reference, window=window.size, threshold=1.0, n_slots=64)
    ks.update_many(window)
    exact = stats.ks_2samp(reference, window).statistic
    widest = np.sort(ks.binning.reference_counts)[-2]  # the point mass (400) has a slot of its own
    assert not ks.exact and exact - widest / reference.size - 1e-12 <= ks.statistic <= exact + 1e-12


def test_point_mass_threshold_is_half_a_bins_share():
    base = list(np.linspace(1, 2, 950))
    just = QuantileBins([0.0] * 50 + base, n_bins=10)      # 5%: a point mass
    under = QuantileBins([0.0] * 49 + base[:-1] + [2.5], n_bins=10)
    assert 0.0 in just.edges and np.nextafter(0.0, 1.0) in just.edges
    assert np.nextafter(0.0, 1.0) not in under.edges


def test_a_value_seen_once_is_no_point_mass_even_in_a_small_reference():
    """20 distinct values and 10 bins: each holds 5% alone, half a bin's share. Given bins
    of their own, continuous window values never landed on them while the calibration
    assumed they would, and PSI alarmed on ~97% of stationary tests."""
    rng = np.random.default_rng(0)
    bins = QuantileBins(rng.random(20), n_bins=10)
    assert bins.edges.size < 19  # quantile edges only: no single-value bins
    psi = PSI(rng.random(20), window=20, stride=20, ert=1e8)
    psi.update_many(rng.random(4000))
    assert sum(d.drift for d in psi.pop_decisions()) <= 2
