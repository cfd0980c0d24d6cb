"""Thresholds from an expected run length: on stationary streams the false alarms come
about as rarely as asked (within a factor 2, pooled over several reference samples)."""

import numpy as np
import pytest

from detectors import KS, PSI


@pytest.mark.parametrize("cls", [PSI, KS])
def test_false_alarm_rate_is_within_a_factor_two_of_the_asked(cls):
    ert, n_refs, n_values = 10_000, 6, 300_000
    rng = np.random.default_rng(2026)
    alarms = 0
    for _ in range(n_refs):
        detector = cls(rng.normal(size=5000), window=1000, stride=100, ert=ert)
        detector.update_many(rng.normal(size=n_values))
        alarms += detector.n_detections
    ratio = alarms / (n_refs * n_values / ert)
    assert 0.5 <= ratio <= 2.0, f"observed/asked false-alarm rate {ratio:.2f}"


def test_calibrated_threshold_still_detects_a_real_shift():
    rng = np.random.default_rng(5)
    ks = KS(rng.normal(size=5000), window=1000, stride=100, ert=50_000)
    ks.update_many(rng.normal(size=5000))
    assert ks.n_detections == 0
    ks.update_many(rng.normal(0.3, size=1000))
    assert ks.drift and ks.warning_threshold < ks.threshold


def test_longer_run_lengths_give_higher_thresholds():
    ref = np.random.default_rng(6).normal(size=3000)
    thresholds = [PSI(ref, window=500, stride=100, ert=ert).threshold for ert in (2_000, 20_000, 500_000)]
    assert thresholds == sorted(thresholds) and len(set(thresholds)) == 3


def test_ert_shorter_than_a_test_is_refused():
    with pytest.raises(ValueError, match="ert must be at least stride"):
        PSI(np.arange(100.0), window=50, stride=50, ert=10)
