"""Every detector: one interface, picklable, batch-size independent, explicit reset."""

import pickle

import numpy as np
import pytest

from detectors import CUSUM, KS, PSI, ChiSquare, Decision, Detector, PerformanceDecay, RateTest, RiverDetector, restore

rng = np.random.default_rng(11)
NUMERIC_REF = rng.normal(size=1000)
NUMERIC_STREAM = np.concatenate([rng.normal(size=1500), rng.normal(1.0, size=1500)])
LEVELS = np.array(["a", "b", "c"], dtype=object)
CATEGORICAL_REF = list(rng.choice(LEVELS, 1000, p=[0.6, 0.3, 0.1]))
CATEGORICAL_STREAM = list(rng.choice(LEVELS, 1500, p=[0.6, 0.3, 0.1])) + list(rng.choice(LEVELS, 1500, p=[0.2, 0.3, 0.5]))
ERRORS = list((rng.random(3000) < np.r_[np.full(1500, 0.1), np.full(1500, 0.5)]).astype(int))
PAIRS = [(1, 1 - e) for e in ERRORS]
FLAGS_REF = rng.random(1000) < 0.01
FLAGS = list(rng.random(3000) < np.r_[np.full(1500, 0.01), np.full(1500, 0.05)])

CASES = {
    "PSI": (lambda: PSI(NUMERIC_REF, window=200, stride=50, threshold=0.2), list(NUMERIC_STREAM)),
    "PSI categorical": (lambda: PSI(CATEGORICAL_REF, window=200, stride=50, threshold=0.2, categorical=True), CATEGORICAL_STREAM),
    "KS": (lambda: KS(NUMERIC_REF, window=200, stride=50, threshold=0.2), list(NUMERIC_STREAM)),
    "CUSUM": (lambda: CUSUM(NUMERIC_REF, window=200, stride=50, threshold=20.0), list(NUMERIC_STREAM)),
    "ChiSquare": (lambda: ChiSquare(CATEGORICAL_REF, window=200, stride=50, threshold=20.0), CATEGORICAL_STREAM),
    "RateTest": (lambda: RateTest(FLAGS_REF, window=200, stride=50, threshold=6.5), FLAGS),
    "ADWIN": (lambda: RiverDetector("ADWIN"), list(NUMERIC_STREAM)),
    "DDM": (lambda: RiverDetector("DDM"), ERRORS),
    "PerformanceDecay": (lambda: PerformanceDecay("accuracy", reference_size=1000, window=200, threshold=3.0), PAIRS),
}


def _states(detector, stream, batch):
    out = []
    for i in range(0, len(stream), batch):
        chunk = stream[i:i + batch]
        if isinstance(detector, PerformanceDecay):
            detector.update_many([p[0] for p in chunk], [p[1] for p in chunk])
        else:
            detector.update_many(chunk)
        out.append(detector.state())
    return out


@pytest.mark.parametrize("name", CASES)
def test_detects_the_change_and_not_before(name):
    make, stream = CASES[name]
    detector = make()
    assert isinstance(detector, Detector)
    detector.update_many(stream[:1400]) if not isinstance(detector, PerformanceDecay) else \
        detector.update_many(stream[:1400])
    assert detector.n_detections == 0, name
    for x in stream[1400:]:
        detector.update(x)
    assert detector.n_detections >= 1 and detector.n_seen == len(stream)


@pytest.mark.parametrize("name", [n for n in CASES if n not in ("ADWIN", "DDM")])
def test_tests_fall_at_the_same_values_whatever_the_batch_size(name):
    make, stream = CASES[name]
    one_by_one = make()
    for x in stream:
        one_by_one.update(x)
    batched = make()
    _states(batched, stream, 73)
    assert one_by_one.state() == batched.state()


@pytest.mark.parametrize("name", CASES)
def test_snapshot_restores_an_equal_detector(name):
    make, stream = CASES[name]
    original = make()
    _states(original, stream[:1700], 100)
    copy = restore(original.snapshot())
    assert copy.state() == original.state()
    assert _states(copy, stream[1700:], 100) == _states(original, stream[1700:], 100)
    assert pickle.loads(pickle.dumps(original)).state() == original.state()


@pytest.mark.parametrize("name", CASES)
def test_reset_forgets_values_but_keeps_configuration(name):
    make, stream = CASES[name]
    detector = make()
    threshold = detector.threshold
    _states(detector, stream, 500)
    detector.reset()
    state = detector.state()
    assert (state.n_seen, state.n_detections, state.drift, state.statistic) == (0, 0, False, None)
    assert detector.threshold == threshold


WINDOWED = ["PSI", "PSI categorical", "KS", "ChiSquare", "RateTest"]


@pytest.mark.parametrize("name", WINDOWED)
def test_one_decision_per_test_whatever_the_batch_size(name):
    make, stream = CASES[name]
    one_by_one, batched = make(), make()
    for x in stream:
        one_by_one.update(x)
    decisions = one_by_one.pop_decisions()
    drained = []
    for i in range(0, len(stream), 73):
        batched.update_many(stream[i:i + 73])
        drained += batched.pop_decisions()
    assert drained == decisions and len(decisions) == one_by_one.n_tests
    assert all(isinstance(d, Decision) for d in decisions)
    assert [d.at for d in decisions] == list(range(200, len(stream) + 1, 50))
    entries = [d.at for prev, d in zip([None, *decisions], decisions) if d.drift and not (prev and prev.drift)]
    assert len(entries) == one_by_one.n_detections and entries[-1] == one_by_one.last_detection_at
    last = decisions[-1]
    assert (last.statistic, last.threshold, last.drift) == (one_by_one.statistic, one_by_one.threshold, one_by_one.drift)
    assert last.p_value == one_by_one.p_value or (name == "KS" and last.p_value is None and not last.warning)
    assert name.startswith("PSI") or all(d.p_value is not None for d in decisions if d.drift)


def test_undrained_decisions_are_pickled_and_kept_across_reset():
    make, stream = CASES["PSI"]
    detector = make()
    detector.update_many(stream[:1000])
    copy = restore(detector.snapshot())
    detector.reset()
    assert copy.pop_decisions() == detector.pop_decisions() != []
    assert detector.pop_decisions() == []


def test_restore_refuses_other_objects():
    with pytest.raises(ValueError, match="not a Detector"):
        restore(pickle.dumps({"a": 1}))
