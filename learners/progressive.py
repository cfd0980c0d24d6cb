"""One online learner under progressive validation: every labelled event is first
predicted, then learned, so each prediction is made without knowledge of its own label.

:meth:`Learner.update` does both and scores the prediction: a running River metric over
everything (``Accuracy`` for classification, ``MAE`` for regression) and the last
``window`` per-event outcomes (:func:`outcome`) for comparisons over recent events.

>>> from learners.spec import build
>>> learner = Learner("lr", build(["StandardScaler", "LogisticRegression"]))
>>> learner.update({"x": 1.0}, True)        # predicted before it knew anything
False
>>> for _ in range(50):
...     _ = learner.update({"x": 1.0}, True)
...     _ = learner.update({"x": -1.0}, False)
>>> learner.predict_one({"x": 2.0}), learner.n_learned, round(learner.metric.get(), 2)
(True, 101, 0.98)
"""

from __future__ import annotations

import math
from collections import deque

from river import metrics

from .spec import clean_features, task_of

TASKS = ("classification", "regression")


def outcome(task: str, y_true, y_pred) -> float:
    """One event's score: 1.0/0.0 (right/wrong) for classification, the absolute error for
    regression. A missing prediction (None, a learner that knows nothing yet) is wrong; in
    regression it counts as predicting 0."""
    if task == "classification":
        return 1.0 if y_pred is not None and y_pred == y_true else 0.0
    err = abs(float(y_true) - (0.0 if y_pred is None else float(y_pred)))
    if not math.isfinite(err):
        raise ValueError(f"regression label {y_true!r} or prediction {y_pred!r} is not a finite number")
    return err


def higher_is_better(task: str) -> bool:
    """Accuracy (classification) grows with quality, absolute error (regression) shrinks."""
    return task == "classification"


class Learner:
    """A named River estimator with progressive validation and scores.

    ``task`` defaults to what the estimator predicts (:func:`~learners.spec.task_of`); a
    given task that does not match raises ValueError. ``spec`` is kept for reference
    (manifests, retraining). Features go through :func:`~learners.spec.clean_features`.
    """

    def __init__(self, name: str, estimator, task: str | None = None, window: int = 1000, spec=None):
        actual = task_of(estimator)
        if task is not None and task != actual:
            raise ValueError(f"learner {name!r}: the model does {actual}, but the task is {task}")
        if window < 1:
            raise ValueError(f"learner {name!r}: window must be at least 1, got {window}")
        self.name = name
        self.estimator = estimator
        self.task = actual
        self.spec = spec
        self.metric = metrics.Accuracy() if actual == "classification" else metrics.MAE()
        self.recent: deque[float] = deque(maxlen=window)
        self.n_learned = 0
        self.n_predicted = 0
        #: the learner this one was retrained from, if any
        self.parent: str | None = None

    def predict_one(self, x):
        """The estimator's prediction for features ``x`` (None when it cannot tell yet)."""
        return self.estimator.predict_one(clean_features(x))

    def learn_one(self, x, y) -> None:
        """Learn one labelled event, without scoring it."""
        self.estimator.learn_one(clean_features(x), y)
        self.n_learned += 1

    def update(self, x, y):
        """Progressive validation: predict ``x``, score against ``y``, then learn; returns
        the prediction (made before learning). An event the estimator cannot learn raises
        and is not scored either: a model that predicts but never learns (a constant, from
        its empty state) must not look better than the learners that do."""
        x = clean_features(x)
        y_pred = self.estimator.predict_one(x)
        self.estimator.learn_one(x, y)
        self.n_learned += 1
        score = outcome(self.task, y, y_pred)
        self.n_predicted += 1
        self.recent.append(score)
        if self.task == "classification":
            self.metric.update(y, y_pred)
        else:
            self.metric.update(float(y), 0.0 if y_pred is None else float(y_pred))
        return y_pred

    @property
    def recent_score(self) -> float | None:
        """Mean outcome over the last ``window`` events: accuracy or MAE; None before any."""
        return sum(self.recent) / len(self.recent) if self.recent else None

    def __repr__(self) -> str:
        return f"Learner({self.name!r}, {self.estimator!r}, n_learned={self.n_learned})"
