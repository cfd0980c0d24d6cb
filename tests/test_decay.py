"""Performance decay: metrics by definition, a threshold calibrated to a run length between
false alarms, decisions that do not depend on batching or on when calibration ran."""

import pickle

import numpy as np
import pytest

from detectors import PerformanceDecay, calibration


def _classification(rng, n, accuracy):
    y = rng.integers(0, 2, n)
    flip = rng.random(n) > accuracy
    return y, np.where(flip, 1 - y, y)


def _regression(rng, n, noise=1.0):
    y = rng.normal(size=n)
    return y, y + rng.normal(0, noise, n)


@pytest.mark.parametrize("metric", ["accuracy", "precision", "recall", "f1"])
def test_classification_metrics_by_definition(metric):
    y_true = [1, 1, 1, 0, 0, 1, 0, 1, 0, 0]
    y_pred = [1, 0, 1, 1, 0, 1, 0, 0, 1, 0]
    tp, fp, fn, tn = 3, 2, 2, 3
    expected = {
        "accuracy": (tp + tn) / 10, "precision": tp / (tp + fp),
        "recall": tp / (tp + fn), "f1": 2 * tp / (2 * tp + fp + fn),
    }[metric]
    decay = PerformanceDecay(metric, reference_size=10, window=10, threshold=3.0)
    decay.update_many(y_true * 2, y_pred * 2)
    assert decay.baseline == pytest.approx(expected) and decay.current == pytest.approx(expected)
    assert decay.statistic == pytest.approx(0.0) and decay.p_value == pytest.approx(0.5) and not decay.drift


@pytest.mark.parametrize("metric, expected", [("mae", 1.5), ("rmse", (10 / 4) ** 0.5)])
def test_regression_metrics_by_definition(metric, expected):
    decay = PerformanceDecay(metric, reference_size=4, window=4, threshold=3.0)
    decay.update_many([0.0, 0.0, 0.0, 0.0] * 2, [1.0, -1.0, 2.0, -2.0] * 2)
    assert decay.baseline == pytest.approx(expected) and decay.current == pytest.approx(expected)


def test_undefined_metric_reads_none():
    decay = PerformanceDecay("precision", reference_size=4, window=4, threshold=3.0)
    decay.update_many([1, 0, 1, 0], [0, 0, 0, 0])  # no predicted positive
    assert decay.baseline is None


def test_statistic_counts_both_periods_uncertainty():
    decay = PerformanceDecay("accuracy", reference_size=1000, window=500, stride=500, threshold=3.0)
    decay.update_many([1] * 1000, [1] * 900 + [0] * 100)
    decay.update_many([1] * 500, [1] * 425 + [0] * 75)
    a0, b0, a1, b1 = 900.5, 100.5, 425.5, 75.5
    z = (a0 / (a0 + b0) - a1 / (a1 + b1)) / np.sqrt(a0 * b0 / (a0 + b0) ** 3 + a1 * b1 / (a1 + b1) ** 3)
    assert decay.statistic == pytest.approx(z) and decay.drift == (z > 3.0)


def test_a_small_dip_is_not_a_change_a_large_one_is():
    rng = np.random.default_rng(0)
    decay = PerformanceDecay("accuracy", reference_size=2000, window=500, stride=500, ert=100_000)
    decay.update_many(*_classification(rng, 2000, 0.85))
    decay.update_many(*_classification(rng, 500, 0.84))
    assert not decay.drift and decay.statistic < decay.threshold
    decay.update_many(*_classification(rng, 500, 0.70))
    assert decay.drift and decay.p_value < 1e-6 and decay.n_detections == 1
    assert decay.baseline - decay.current > 0.1


def _pooled_ratio(metric, make, n_references, events, ert, **settings):
    """Observed over asked false alarms on stationary streams, pooled over independent
    reference periods (the contract holds on average over them)."""
    rng = np.random.default_rng(7)
    alarms = 0
    for r in range(n_references):
        decay = PerformanceDecay(metric, ert=ert, calibration_seed=r, **settings)
        decay.update_many(*make(rng, settings["reference_size"] + events))
        alarms += decay.n_detections
    return alarms / (n_references * events / ert)


def test_false_alarms_come_once_every_ert_labelled_events_accuracy():
    ratio = _pooled_ratio("accuracy", lambda rng, n: _classification(rng, n, 0.8), 60, 30_000, 4000,
                          window=200, stride=40, reference_size=800)
    assert 0.5 <= ratio <= 2, ratio


def test_false_alarms_come_once_every_ert_labelled_events_mae():
    ratio = _pooled_ratio("mae", _regression, 40, 30_000, 4000, window=200, stride=40, reference_size=800)
    assert 0.5 <= ratio <= 2, ratio


def test_a_real_decay_is_caught_quickly_at_a_production_contract():
    rng = np.random.default_rng(3)
    decay = PerformanceDecay("accuracy", reference_size=2000, window=1000, ert=20_000_000)
    decay.update_many(*_classification(rng, 2000 + 5000, 0.9))
    assert decay.n_detections == 0
    decay.update_many(*_classification(rng, 2000, 0.75))
    assert decay.n_detections == 1 and decay.last_detection_at - 7000 <= 600


def test_regression_decay():
    rng = np.random.default_rng(2)
    decay = PerformanceDecay("mae", reference_size=1000, window=300, stride=300, ert=100_000)
    decay.update_many(*_regression(rng, 1300))
    assert not decay.drift
    decay.update_many(*_regression(rng, 300, noise=2.0))
    assert decay.drift and decay.current > decay.baseline


def test_a_reference_of_identical_losses_makes_any_worse_window_a_change():
    decay = PerformanceDecay("mae", reference_size=100, window=10, stride=10, ert=10_000)
    decay.update_many([1.0] * 110, [1.0] * 110)
    assert decay.threshold == 0.0 and not decay.drift
    decay.update_many([1.0] * 10, [1.0] * 9 + [1.5])
    assert decay.drift


def test_decisions_do_not_depend_on_batching():
    rng = np.random.default_rng(4)
    y, p = _classification(rng, 3000, 0.85)
    p[2200:] = 1 - y[2200:]
    one = PerformanceDecay("f1", reference_size=1000, window=300, stride=70, ert=50_000)
    many = PerformanceDecay("f1", reference_size=1000, window=300, stride=70, ert=50_000)
    for i in range(3000):
        one.update((y[i], p[i]))
    for i in range(0, 3000, 333):
        many.update_many(y[i:i + 333], p[i:i + 333])
    decisions = one.pop_decisions()
    assert decisions == many.pop_decisions() and len(decisions) == one.n_tests == 25
    assert [d.at for d in decisions] == list(range(1300, 3001, 70)) and one.n_detections == 1


def test_deferred_calibration_gives_the_decisions_of_a_synchronous_one():
    rng = np.random.default_rng(5)
    y, p = _regression(rng, 4000)
    p[3000:] += rng.normal(0, 2, 1000)
    now = PerformanceDecay("rmse", reference_size=1000, window=500, stride=100, ert=50_000)
    later = PerformanceDecay("rmse", reference_size=1000, window=500, stride=100, ert=50_000, defer_calibration=True)
    now.update_many(y, p)
    assert later.null_model() is None
    later.update_many(y[:3500], p[:3500])
    assert not later.calibrated and later.threshold is None and later.pop_decisions() == []
    assert not later.drift and later.n_tests == 0 and later.statistic is not None
    model = pickle.loads(pickle.dumps(later.null_model()))
    later.set_thresholds(*calibration.calibrate(model, 50_000))
    later.update_many(y[3500:], p[3500:])
    assert later.calibrated and (later.threshold, later.warning_threshold) == (now.threshold, now.warning_threshold)
    assert later.pop_decisions() == now.pop_decisions()
    assert (later.n_detections, later.last_detection_at) == (now.n_detections, now.last_detection_at) != (0, None)


def test_null_model_depends_on_the_reference_only():
    rng = np.random.default_rng(6)
    a = PerformanceDecay("accuracy", reference_size=500, window=100, ert=10_000, defer_calibration=True)
    b = PerformanceDecay("accuracy", reference_size=500, window=100, ert=10_000, defer_calibration=True)
    a.update_many([1] * 500, [1] * 450 + [0] * 50)
    b.update_many(*_classification(rng, 500, 0.5))
    b.reset()
    b.update_many([0] * 500, [1] * 25 + [0] * 450 + [1] * 25)  # the same table, in another order
    assert a.null_model().key == b.null_model().key and a.null_model().counts == (50, 450)


def test_reference_from_elsewhere():
    decay = PerformanceDecay("accuracy", reference_size=10_000, window=10, threshold=2.0)
    decay.set_reference([1] * 100, [1] * 100)
    decay.update_many([1] * 10, [0] * 10)
    assert decay.baseline == 1.0 and decay.drift
    decay.reset()
    assert decay.baseline == 1.0 and not decay.drift and decay.n_seen == 0
    decay.update_many([1] * 10, [0] * 10)
    assert decay.drift


def test_reset_forgets_a_stream_reference_and_its_calibration():
    decay = PerformanceDecay("accuracy", reference_size=100, window=20, ert=10_000, defer_calibration=True)
    decay.update_many([1] * 100, [1] * 90 + [0] * 10)
    decay.set_thresholds(2.5, 1.5)
    decay.reset()
    assert decay.baseline is None and decay.null_model() is None and not decay.calibrated


def test_state_pickles_with_its_outbox():
    rng = np.random.default_rng(8)
    decay = PerformanceDecay("recall", reference_size=300, window=100, ert=5_000)
    decay.update_many(*_classification(rng, 600, 0.8))
    copy = pickle.loads(decay.snapshot())
    assert copy.pop_decisions() == decay.pop_decisions() != []
    batch = _classification(rng, 300, 0.6)
    copy.update_many(*batch)
    decay.update_many(*batch)
    assert copy.pop_decisions() == decay.pop_decisions()


@pytest.mark.parametrize("metric, y_true, y_pred, message", [
    ("mae", [1.0, 2.0, float("nan")], [1.0, 1.0, 1.0], "pair 2 of the batch: .*finite"),
    ("mae", [1.0, 1e308], [1.0, -1e308], r"pair 1 .*loss inf is beyond 1e\+100"),
    ("rmse", [0.0, 1e60], [0.0, 0.0], r"pair 1 .*the rmse loss [0-9.e+]* is beyond 1e\+100"),
    ("mae", [1.0, "b"], [1.0, 1.0], "pair 1 .*numbers"),
    ("accuracy", [1, None], [1, 1], "pair 1 .*missing"),
    ("accuracy", [1, 1], [1], "2 labels but 1 predictions"),
])
def test_bad_input_raises_and_feeds_nothing(metric, y_true, y_pred, message):
    decay = PerformanceDecay(metric, reference_size=2, window=2, threshold=3.0)
    with pytest.raises(ValueError, match=message):
        decay.update_many(y_true, y_pred)
    assert decay.n_seen == 0 and decay.baseline is None
    if len(y_true) == len(y_pred):
        with pytest.raises(ValueError, match="pair 0"):
            decay.check((y_true[-1], y_pred[-1]))


def test_bad_configuration_raises():
    with pytest.raises(ValueError, match="unknown metric"):
        PerformanceDecay("auc", threshold=3.0)
    with pytest.raises(ValueError, match="exactly one of threshold= or ert="):
        PerformanceDecay("accuracy")
    with pytest.raises(ValueError, match="exactly one of threshold= or ert="):
        PerformanceDecay("accuracy", threshold=3.0, ert=10_000)
    with pytest.raises(ValueError, match="ert must be at least stride"):
        PerformanceDecay("accuracy", window=100, stride=50, ert=10)
    with pytest.raises(ValueError, match="stride must be between 1 and window"):
        PerformanceDecay("accuracy", window=100, stride=101, threshold=3.0)
    with pytest.raises(ValueError, match="at least 2"):
        PerformanceDecay("accuracy", window=1, threshold=3.0)
