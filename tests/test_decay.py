"""Performance decay: metrics by definition, significance not a bare threshold."""

import numpy as np
import pytest

from detectors import PerformanceDecay


def _classification(rng, n, accuracy):
    y = rng.integers(0, 2, n)
    flip = rng.random(n) > accuracy
    return y, np.where(flip, 1 - y, y)


@pytest.mark.parametrize("metric", ["accuracy", "precision", "recall", "f1"])
def test_classification_metrics_by_definition(metric):
    y_true = [1, 1, 1, 0, 0, 1, 0, 1, 0, 0]
    y_pred = [1, 0, 1, 1, 0, 1, 0, 0, 1, 0]
    tp, fp, fn, tn = 3, 2, 2, 3
    expected = {
        "accuracy": (tp + tn) / 10, "precision": tp / (tp + fp),
        "recall": tp / (tp + fn), "f1": 2 * tp / (2 * tp + fp + fn),
    }[metric]
    decay = PerformanceDecay(metric, reference_size=10, window=10)
    decay.update_many(y_true * 2, y_pred * 2)
    assert decay.baseline == pytest.approx(expected) and decay.current == pytest.approx(expected)
    assert not decay.drift and decay.p_value > 0.3


@pytest.mark.parametrize("metric, expected", [("mae", 1.5), ("rmse", (0.5 + 4.5) ** 0.5 / 1)])
def test_regression_metrics_by_definition(metric, expected):
    decay = PerformanceDecay(metric, reference_size=4, window=4)
    decay.update_many([0.0, 0.0, 0.0, 0.0] * 2, [1.0, -1.0, 2.0, -2.0] * 2)
    assert decay.baseline == pytest.approx(expected if metric == "mae" else (10 / 4) ** 0.5)


def test_a_small_dip_is_not_significant_a_large_one_is():
    rng = np.random.default_rng(0)
    decay = PerformanceDecay("accuracy", reference_size=2000, window=500, stride=500)
    decay.update_many(*_classification(rng, 2000, 0.85))
    decay.update_many(*_classification(rng, 500, 0.84))
    assert not decay.drift and decay.p_value > 0.01
    decay.update_many(*_classification(rng, 500, 0.70))
    assert decay.drift and decay.p_value < 0.001 and decay.n_detections == 1
    assert decay.statistic == pytest.approx(decay.baseline - decay.current)


def test_false_alarm_rate_of_the_test_is_near_alpha():
    rng = np.random.default_rng(1)
    alarms = 0
    for _ in range(200):
        decay = PerformanceDecay("accuracy", reference_size=500, window=300, stride=300, alpha=0.05,
                                 warning_alpha=0.1, n_bootstrap=500, seed=int(rng.integers(1 << 30)))
        decay.update_many(*_classification(rng, 800, 0.8))
        alarms += decay.drift
    assert 2 <= alarms <= 25  # 10 expected at alpha = 0.05


def test_regression_decay_uses_welch():
    rng = np.random.default_rng(2)
    decay = PerformanceDecay("mae", reference_size=1000, window=300, stride=300)
    y = rng.normal(size=1300)
    decay.update_many(y, y + rng.normal(0, 1.0, 1300))
    assert not decay.drift
    y = rng.normal(size=300)
    decay.update_many(y, y + rng.normal(0, 2.0, 300))
    assert decay.drift and decay.current > decay.baseline


def test_reference_from_elsewhere():
    decay = PerformanceDecay("accuracy", reference_size=10_000, window=10)
    decay.set_reference([1] * 100, [1] * 100)
    decay.update_many([1] * 10, [0] * 10)
    assert decay.baseline == 1.0 and decay.drift
    decay.reset()
    assert decay.baseline == 1.0 and not decay.drift
    decay.update_many([1] * 10, [0] * 10)
    assert decay.drift


@pytest.mark.parametrize("metric, y_true, y_pred, message", [
    ("mae", [1.0, float("nan")], [1.0, 1.0], "finite"),
    ("mae", ["a", "b"], [1.0, 1.0], "numbers"),
    ("accuracy", [1, None], [1, 1], "missing"),
    ("accuracy", [1, 1], [1], "2 labels but 1 predictions"),
])
def test_bad_input_raises(metric, y_true, y_pred, message):
    with pytest.raises(ValueError, match=message):
        PerformanceDecay(metric).update_many(y_true, y_pred)


def test_bad_configuration_raises():
    with pytest.raises(ValueError, match="unknown metric"):
        PerformanceDecay("auc")
    with pytest.raises(ValueError, match="alpha"):
        PerformanceDecay(alpha=0.1, warning_alpha=0.05)
