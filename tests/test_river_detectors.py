"""River's detectors through driftd's wrapper give River's documented detection points."""

import random

import pytest

from detectors import RiverDetector


def _first(detector, stream):
    warning = None
    for i, x in enumerate(stream):
        detector.update(x)
        if detector.warning and warning is None:
            warning = i
        if detector.drift:
            return warning, i
    return warning, None


def _numeric_stream():
    rng = random.Random(12345)
    return rng.choices([0, 1], k=1000) + rng.choices(range(4, 8), k=1000)


def _binary_stream():
    rng = random.Random(42)
    return rng.choices([0, 1], k=1000) + rng.choices([0, 1], k=1000, weights=[0.3, 0.7])


@pytest.mark.parametrize("kind, params, index", [
    ("ADWIN", {}, 1023),
    ("PageHinkley", {}, 1006),
    ("KSWIN", {"alpha": 0.0001, "seed": 42}, 1016),
])
def test_numeric_detection_points(kind, params, index):
    assert _first(RiverDetector(kind, **params), _numeric_stream())[1] == index


@pytest.mark.parametrize("kind, params, warning, index", [
    ("DDM", {}, 1084, 1334),
    ("EDDM", {"alpha": 0.8, "beta": 0.75}, 1059, 1278),
    ("HDDM_W", {}, 451, 1077),
    ("HDDM_A", {}, 451, 1206),
])
def test_binary_detection_points(kind, params, warning, index):
    assert _first(RiverDetector(kind, **params), _binary_stream()) == (warning, index)


def test_a_detection_inside_a_batch_is_not_lost():
    stream = _numeric_stream()
    adwin = RiverDetector("ADWIN")
    adwin.update_many(stream[:1100])
    assert adwin.drift and adwin.n_detections == 1
    adwin.update_many(stream[1100:1110])
    assert not adwin.drift and adwin.n_detections == 1


def test_batch_and_single_updates_agree():
    stream = _binary_stream()
    one, many = RiverDetector("DDM"), RiverDetector("DDM")
    for x in stream:
        one.update(x)
    for i in range(0, len(stream), 97):
        many.update_many(stream[i:i + 97])
    assert (one.n_detections, one.statistic, one.n_seen) == (many.n_detections, many.statistic, many.n_seen)


def test_state_reads_out():
    adwin = RiverDetector("ADWIN", delta=0.01)
    assert adwin.statistic is None and adwin.threshold == 0.01 and adwin.p_value is None
    adwin.update_many([1.0, 2.0, 3.0])
    assert adwin.statistic == pytest.approx(2.0) and adwin.n_seen == 3
    kswin = RiverDetector("KSWIN", seed=1)
    kswin.update_many([0.5] * 200)
    assert 0 <= kswin.p_value <= 1


@pytest.mark.parametrize("kind, value, message", [
    ("DDM", 2, "0 .correct. or 1"),
    ("ADWIN", float("nan"), "non-finite"),
    ("ADWIN", "3", "takes numbers"),
])
def test_bad_values_raise(kind, value, message):
    with pytest.raises(ValueError, match=message):
        RiverDetector(kind).update(value)


def test_bad_configuration_raises():
    with pytest.raises(ValueError, match="unknown River detector"):
        RiverDetector("CUSUM9")
    with pytest.raises(ValueError, match="bad parameter for River ADWIN"):
        RiverDetector("ADWIN", nonsense=1)


def test_reset_forgets():
    adwin = RiverDetector("ADWIN")
    adwin.update_many(_numeric_stream())
    adwin.reset()
    assert (adwin.n_seen, adwin.n_detections, adwin.statistic) == (0, 0, None)
    assert _first(adwin, _numeric_stream())[1] == 1023
