"""The windowed tests decide the tests of a batch together (window counts from one
cumulative sum, statistics from one vectorised ``_measure_many``, judged in one loop):
the same floats, decisions and state as one test at a time."""

import pickle

import numpy as np
import pytest

from detectors import KS, PSI, ChiSquare, RateTest
from detectors.windowed import WindowedTest


def _detectors():
    rng = np.random.default_rng(21)
    numbers = np.round(rng.lognormal(size=4000), 1)  # ties: some slots hold many values
    levels = [f"l{i}" for i in rng.integers(0, 40, 3000)] + [None] * 30
    yield "ks", KS(numbers, window=300, stride=30, threshold=0.1), lambda r, n: r.lognormal(size=n)
    yield "ks-many-slots", KS(rng.normal(size=4000), window=300, stride=30, threshold=0.1, n_slots=512), \
        lambda r, n: r.normal(size=n)
    yield "psi", PSI(numbers, window=300, stride=30, threshold=0.1, missing="ignore"), lambda r, n: r.lognormal(size=n)
    yield "chisquare", ChiSquare(levels, window=300, stride=30, threshold=30.0), \
        lambda r, n: [f"l{i}" if i < 45 else None for i in r.integers(0, 48, n)]
    yield "rate", RateTest(rng.random(3000) < 0.01, window=300, stride=30, threshold=8.5), \
        lambda r, n: r.random(n) < 0.02


@pytest.mark.parametrize("name, detector, draw", list(_detectors()), ids=[d[0] for d in _detectors()])
def test_many_windows_measure_as_one_at_a_time(name, detector, draw):
    rng = np.random.default_rng(len(name))
    windows = []
    for _ in range(40):  # windows of the detector's own, as the stream moves
        detector.update_many(draw(rng, int(rng.integers(1, 200))))
        windows.append((detector.counts.copy(), detector._filled))
    counts = np.array([c for c, _ in windows], dtype=np.int64)
    filled = np.array([f for _, f in windows], dtype=np.int64)
    stats, p_args = detector._measure_many(counts, filled)
    expected = WindowedTest._measure_many(detector, counts, filled)  # _measure, window by window
    assert stats == expected[0] and p_args == expected[1]
    assert all(type(s) is float for s in stats)


@pytest.mark.parametrize("name, detector, draw", list(_detectors()), ids=[d[0] for d in _detectors()])
def test_a_small_stride_and_a_large_batch_are_fed_in_pieces(name, detector, draw, monkeypatch):
    """A batch holding more tests than a piece's room (tests times bins) gives the
    decisions of small batches."""
    import detectors.windowed as windowed

    rng = np.random.default_rng(5)
    stream = draw(rng, 3000)
    small = pickle.loads(pickle.dumps(detector))
    monkeypatch.setattr(windowed, "_TESTS_PER_PIECE", 3 * detector.counts.size)  # 3 tests a piece
    detector.update_many(stream)
    for i in range(0, 3000, 7):
        small.update_many(stream[i:i + 7])
    assert detector.pop_decisions() == small.pop_decisions()
    assert detector.counts.tolist() == small.counts.tolist()
    assert detector._window_bins().tolist() == small._window_bins().tolist()
    assert (detector.n_tests, detector._until_test, detector.statistic) == (small.n_tests, small._until_test,
                                                                           small.statistic)


def test_a_full_outbox_counts_what_a_batch_drops():
    detector = RateTest(np.zeros(1000, dtype=bool), window=10, stride=1, threshold=0.5)
    detector.MAX_DECISIONS = 25
    detector.update_many(np.zeros(40, dtype=bool))  # 31 tests
    assert detector.decisions_dropped == 6 and len(detector.pop_decisions()) == 25
    detector.update_many(np.zeros(3, dtype=bool))
    assert detector.decisions_dropped == 6 and [d.at for d in detector.pop_decisions()] == [41, 42, 43]


@pytest.mark.parametrize("kind", ["psi", "ks", "chisquare"])
def test_the_window_at_the_first_detection_depends_on_the_values_alone(kind):
    """The window's counts at the test of the first detection: the same whatever the batch
    sizes and whether the threshold was known from the start or came late (the tests held
    meanwhile keep the windows that may turn out to be the first detection's, a few, not
    all). It is the window of that test: counted again from the values fed, it matches."""
    rng = np.random.default_rng(5)
    if kind == "chisquare":
        reference = [f"l{i}" for i in rng.integers(0, 10, 3000)]
        stream = [f"l{i}" for i in np.r_[rng.integers(0, 10, 900), rng.integers(0, 5, 600)]]
        make = lambda **kw: ChiSquare(reference, window=300, stride=30, **kw)  # noqa: E731
        threshold = 40.0
    else:
        reference = rng.normal(size=3000)
        stream = np.r_[rng.normal(size=900), rng.normal(0.6, 1.0, 600)]
        cls = PSI if kind == "psi" else KS
        make = lambda **kw: cls(reference, window=300, stride=30, **kw)  # noqa: E731
        threshold = 0.12 if kind == "psi" else 0.1
    seen = []
    for batch in (1, 29, 500, 1500):
        for late in (False, True):
            detector = make(ert=10_000, defer_calibration=True) if late else make(threshold=threshold)
            for start in range(0, len(stream), batch):
                detector.update_many(stream[start:start + batch])
                if late and start >= 1100:
                    detector.set_thresholds(threshold)
            if late and not detector.calibrated:
                detector.set_thresholds(threshold)
            assert detector._candidates is None  # nothing kept once decided
            seen.append(detector.first_detection_window())
    assert seen[0] is not None and all(s == seen[0] for s in seen), seen
    at, counts = seen[0]
    assert 900 < at <= 1200
    window = make(threshold=1e9)
    window.update_many(stream[at - 300:at])
    assert counts == window.counts.tolist()


def _bulk_detectors():
    from detectors import CUSUM, LevelCUSUM

    yield from _detectors()
    rng = np.random.default_rng(8)
    yield "cusum", CUSUM(rng.normal(size=3000), window=300, stride=30, threshold=12.0, warning_threshold=2.0), \
        lambda r, n: np.where(r.random(n) < 0.05, np.nan, r.normal(0.0, 1, n))
    levels = [f"l{i}" for i in rng.integers(0, 6, 3000)]
    yield "level-cusum", LevelCUSUM(levels, window=300, stride=30, threshold=12.0, warning_threshold=2.0), \
        lambda r, n: [f"l{i}" for i in r.integers(0, 6, n)]


@pytest.mark.parametrize("name, detector, draw", list(_bulk_detectors()), ids=[d[0] for d in _bulk_detectors()])
def test_decisions_taken_in_bulk_are_those_taken_one_at_a_time(name, detector, draw):
    """A batch's decisions go out as a run (by column); read in bulk or as objects, and
    pickled undrained, they are those of the values fed one at a time."""
    from detectors.base import DecisionRun

    stream = draw(np.random.default_rng(9), 900)
    bulk, single = pickle.loads(pickle.dumps(detector)), pickle.loads(pickle.dumps(detector))
    bulk.update_many(stream)
    for x in stream:
        single.update(x)
    assert pickle.dumps(bulk) == pickle.dumps(single)
    expected = single.pop_decisions()
    assert pickle.loads(pickle.dumps(bulk)).pop_decisions() == expected
    items = bulk.pop_decision_runs()
    assert any(type(item) is DecisionRun for item in items)
    assert [d for item in items for d in (item.decisions() if type(item) is DecisionRun else [item])] == expected
