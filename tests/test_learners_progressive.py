"""learners.progressive (predict, then learn) and learners.replay (bounded replay buffer)."""

from __future__ import annotations

import copy
import pickle
import random

import pytest
from river import base
from river.datasets import synth
from scipy import stats

from learners.progressive import Learner, outcome
from learners.replay import ReplayBuffer
from learners.spec import build


class Spy(base.Classifier):
    """Predicts the last label it learned (None before any) and records the call order."""

    def __init__(self):
        self.calls = []
        self.last = None

    def learn_one(self, x, y):
        self.calls.append(("learn", y))
        self.last = y

    def predict_one(self, x):
        self.calls.append(("predict", self.last))
        return self.last


def test_prediction_is_made_before_learning():
    learner = Learner("spy", Spy())
    assert learner.update({"a": 1}, "cat") is None  # knew nothing of the first label
    assert learner.update({"a": 1}, "dog") == "cat"
    assert learner.estimator.calls == [("predict", None), ("learn", "cat"), ("predict", "cat"), ("learn", "dog")]
    assert list(learner.recent) == [0.0, 0.0]
    assert learner.n_learned == 2 and learner.n_predicted == 2


def test_update_returns_what_predict_said_before_learning():
    learner = Learner("ht", build({"HoeffdingTreeClassifier": {"grace_period": 50}}), window=100)
    hits = 0
    for i, (x, y) in enumerate(synth.Agrawal(classification_function=0, seed=3).take(600)):
        before = copy.deepcopy(learner).predict_one(x) if i % 10 == 0 else None
        y_pred = learner.update(x, y)
        assert i % 10 or y_pred == before
        hits += y_pred == y
    assert learner.metric.get() == pytest.approx(hits / 600)
    assert len(learner.recent) == 100  # bounded
    assert learner.recent_score == pytest.approx(sum(learner.recent) / 100)


def test_regression_scores_absolute_errors():
    learner = Learner("lin", build(["StandardScaler", "LinearRegression"]))
    assert learner.task == "regression"
    assert learner.update({"x": 1.0}, 3.0) == 0.0  # LinearRegression starts at 0
    assert list(learner.recent) == [3.0]
    assert learner.metric.get() == 3.0
    assert outcome("regression", 2.0, None) == 2.0
    assert outcome("classification", 1, None) == 0.0
    assert outcome("classification", 1, True) == 1.0  # River's binary classifiers predict booleans
    with pytest.raises(ValueError, match="not a finite number"):
        outcome("regression", float("nan"), 1.0)


def test_task_mismatch_and_window_are_checked():
    with pytest.raises(ValueError, match="does regression, but the task is classification"):
        Learner("x", build("LinearRegression"), task="classification")
    with pytest.raises(ValueError, match="window must be at least 1"):
        Learner("x", build("GaussianNB"), window=0)


def test_learner_pickles_mid_stream_and_continues_identically():
    data = list(synth.Agrawal(classification_function=1, seed=5).take(1200))
    learner = Learner("hat", build({"HoeffdingAdaptiveTreeClassifier": {"seed": 2, "grace_period": 50}}))
    for x, y in data[:600]:
        learner.update(x, y)
    restored = pickle.loads(pickle.dumps(learner))
    a = [learner.update(x, y) for x, y in data[600:]]
    b = [restored.update(x, y) for x, y in data[600:]]
    assert a == b and learner.metric.get() == restored.metric.get()


# -- replay buffer -------------------------------------------------------------------------
def test_buffer_is_bounded_unique_and_in_order():
    buf = ReplayBuffer(reservoir_size=50, recent_size=20, seed=1)
    for i in range(10_000):
        buf.update({"i": i}, i % 2, t=float(i))
        assert len(buf) <= 70
    sample = [x["i"] for x, _ in buf.sample()]
    assert sample == sorted(set(sample))
    assert sample[-20:] == list(range(9980, 10_000))  # the recent window, newest last
    assert 50 <= len(sample) <= 70
    assert [x["i"] for x, _ in buf.sample(recent_only=True)] == list(range(9980, 10_000))
    assert buf.time_span(recent_only=True) == (9980.0, 9999.0)
    assert buf.n_seen == 10_000


def test_buffer_fills_before_sampling():
    buf = ReplayBuffer(reservoir_size=5, recent_size=3, seed=0)
    for i in range(4):
        buf.update(i, -i)
    assert buf.sample() == [(0, 0), (1, -1), (2, -2), (3, -3)]
    assert buf.time_span() == (None, None)
    assert ReplayBuffer(0, 3).sample(recent_only=True) == []


def test_reservoir_is_uniform_over_the_stream():
    # Each of 200 seeded reservoirs of 100 out of 10 000 events: the share of kept events in
    # each tenth of the stream should be 10%. Deterministic (seeded), so not flaky.
    counts = [0] * 10
    for seed in range(200):
        buf = ReplayBuffer(reservoir_size=100, recent_size=0, seed=seed)
        for i in range(10_000):
            buf.update(i, None)
        for i, _ in buf.sample():
            counts[i // 1000] += 1
    assert sum(counts) == 20_000
    assert stats.chisquare(counts).pvalue > 0.01
    assert max(counts) / min(counts) < 1.1


def test_buffer_is_deterministic_and_pickles():
    def run(buf, events):
        for i in events:
            buf.update(i, i)
        return buf.sample()

    a, b = ReplayBuffer(30, 10, seed=9), ReplayBuffer(30, 10, seed=9)
    assert run(a, range(500)) == run(b, range(500))
    restored = pickle.loads(pickle.dumps(a))
    assert run(a, range(500, 1000)) == run(restored, range(500, 1000))
    assert run(ReplayBuffer(30, 10, seed=10), range(1000)) != a.sample()


@pytest.mark.parametrize("sizes", [(-1, 5), (5, -1), (0, 0)])
def test_buffer_sizes_are_checked(sizes):
    with pytest.raises(ValueError, match="sizes must be"):
        ReplayBuffer(*sizes)


def test_random_module_state_is_not_touched():
    random.seed(123)
    expected = random.random()
    random.seed(123)
    buf = ReplayBuffer(2, 1, seed=0)
    for i in range(100):
        buf.update(i, i)
    assert random.random() == expected
