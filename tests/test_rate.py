"""Rate tests: the exact crossing rates agree with a simulation, a constant feature that
changes value fires, a stationary rare-event stream holds the contract."""

import numpy as np
import pytest
from scipy import stats

from detectors import RateTest, calibration
from detectors.rate import _crossing_rates


@pytest.mark.parametrize("p, window, stride", [(0.003, 200, 20), (0.05, 100, 100), (0.01, 300, 7)])
def test_crossing_rates_agree_with_a_simulation(p, window, stride):
    # A posterior concentrated on p: the rate of a known p.
    exact = _crossing_rates(p * 1e10, (1 - p) * 1e10, window, stride)
    rng = np.random.default_rng(1)
    n_tests = 400_000
    flags = rng.random(window + stride * (n_tests - 1)) < p
    cum = np.r_[0, np.cumsum(flags)]
    ends = window + stride * np.arange(n_tests)
    counts = cum[ends] - cum[ends - window]
    for level in range(1, int(counts.max()) + 1):
        seen = np.count_nonzero((counts[:-1] < level) & (counts[1:] >= level))
        expected = exact[level] * (n_tests - 1)
        assert abs(seen - expected) <= 4 * np.sqrt(expected) + 2, (level, seen, expected)


def test_a_constant_feature_that_changes_value_fires_at_once():
    # Flags: "the value differs from the reference's only value" -- never in the reference.
    rate = RateTest(np.zeros(5000, dtype=bool), window=1000, stride=100, ert=10_000_000)
    rate.update_many(np.zeros(20_000, dtype=bool))
    assert rate.n_detections == 0 and rate.threshold >= 0.5
    rate.update_many(np.ones(300, dtype=bool))
    decisions = rate.pop_decisions()
    assert rate.drift and rate.n_detections == 1
    first = next(d for d in decisions if d.drift)
    assert first.at == 20_100 and first.statistic == 100.0 and first.p_value < 1e-9


def test_a_stationary_rare_event_stream_holds_the_contract():
    # Events at rate 3e-4; references of 5000 flags often hold none or one.
    ert, n_refs, n_values = 200_000, 30, 400_000
    rng = np.random.default_rng(2)
    alarms, asked = 0, n_refs * n_values / ert
    for _ in range(n_refs):
        rate = RateTest(rng.random(5000) < 3e-4, window=1000, stride=100, ert=ert)
        rate.update_many(rng.random(n_values) < 3e-4)
        alarms += rate.n_detections
    # Counts are whole numbers: the threshold is the lowest count within the contract,
    # so the rate is at most as asked, and may be well under it.
    assert alarms <= 2 * asked, f"{alarms} false alarms, {asked:.0f} asked"


def test_threshold_is_the_lowest_count_within_the_contract():
    model = RateTest(np.r_[np.zeros(4990, bool), np.ones(10, bool)], window=500, stride=50, threshold=1.0).null_model()
    threshold, warning = calibration.calibrate(model, 100_000)
    crossings = _crossing_rates(10.5, 4990.5, 500, 50) / 50
    level = int(threshold + 0.5)
    assert np.all(crossings[level:] <= 1 / 100_000) and crossings[level - 1] > 1 / 100_000
    assert warning < threshold


def test_p_value_is_the_posterior_predictive_tail():
    rate = RateTest([True] * 50 + [False] * 950, window=100, threshold=10.0)
    rate.update_many([True] * 12 + [False] * 88)
    assert rate.p_value == pytest.approx(stats.betabinom.sf(11, 100, 50.5, 950.5))
    assert rate.reference_rate == pytest.approx(50.5 / 1001)


@pytest.mark.parametrize("bad", [[None, True], [2, 0], ["yes"], [0.5]])
def test_flags_must_be_booleans(bad):
    rate = RateTest([False] * 100, window=10, threshold=1.0)
    with pytest.raises(ValueError, match="flags must be True or False"):
        rate.update_many(bad)
    assert rate.n_seen == 0
