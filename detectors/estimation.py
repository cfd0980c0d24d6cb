"""Estimated performance: a model's metrics over its recent predictions, before their labels.

Two estimators, fitted once on labelled reference events, then fed unlabelled predictions:
:class:`~detectors.cbpe.ClassificationEstimate` (confidence-based performance estimation,
CBPE: calibrated scores give the expected confusion matrix) and
:class:`~detectors.dle.RegressionEstimate` (direct loss estimation, DLE: River models of
the absolute and squared error). Both keep the last ``window`` predictions' per-event
estimates (:class:`Ring`), and, once labels come, the estimate's error against the realised
metric over the last ``window`` labelled predictions (``error()``, estimated minus
realised). :class:`EstimateDecay` is the decay test of :mod:`detectors.decay` on the
per-prediction expected loss (expected error of a classifier, ``1 - P(correct)``; a
regressor's predicted absolute error), calibrated the same way to an ERT between false
alarms, counted in predictions.

The assumption: the relation between inputs and labels does not change (no concept
drift). The estimate follows a change of the inputs towards regions where the model is
less (or more) accurate, since the calibrator or the loss model knows how accurate it was
there on the reference; it cannot see a change of the labelling rule, since it never sees
a label after the reference.

Source: NannyML's documentation of CBPE and DLE (the reference implementation of both
ideas); each estimator's module names its own.
"""

from __future__ import annotations

import numpy as np

from .decay import PerformanceDecay

#: Metrics each estimator gives.
CLASSIFICATION_METRICS = ("accuracy", "precision", "recall", "f1", "roc_auc")
REGRESSION_METRICS = ("mae", "rmse")
#: Reference events the loss models of :class:`~detectors.dle.RegressionEstimate` learn
#: from by default (passes over a smaller reference, up to 3).
LEARN_STEPS = 6000
#: The metric whose estimate the decay test watches, per task.
TESTED = {"classification": "accuracy", "regression": "mae"}
#: The input of the loss models that is the prediction.
PREDICTION = "<prediction>"


_FLOAT32_MAX = float(np.finfo(np.float32).max)


class Ring:
    """The last ``size`` rows of a few float columns, allocated at the first push (a model
    whose estimate never runs holds none). float32 (means of a window need no more) until
    a value beyond float32's range comes (a regressor's squared errors of 1e20): float64
    from then on, rather than an infinite RMSE.

    >>> ring = Ring(3, 1)
    >>> ring.push(np.array([[1.5], [2.5]]))
    >>> ring.data.dtype.name, ring.rows().ravel().tolist()
    ('float32', [1.5, 2.5])
    >>> ring.push(np.array([[1e40]]))
    >>> ring.data.dtype.name, ring.rows().ravel().tolist()
    ('float64', [1.5, 2.5, 1e+40])
    """

    def __init__(self, size: int, columns: int):
        self.size, self.columns = size, columns
        self.data = None
        self.head = self.filled = 0

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        if "size" not in state:  # saved before the ring was lazy: its data is there
            self.size, self.columns = self.data.shape

    def push(self, rows: np.ndarray) -> None:
        if self.data is None:
            self.data = np.zeros((self.size, self.columns), dtype=np.float32)
        rows = rows[-self.size:]
        if self.data.dtype == np.float32 and np.any(np.abs(rows) > _FLOAT32_MAX):
            self.data = self.data.astype(np.float64)
        slots = (self.head + np.arange(len(rows))) % self.size
        self.data[slots] = rows
        self.head = (self.head + len(rows)) % self.size
        self.filled = min(self.size, self.filled + len(rows))

    def rows(self) -> np.ndarray:
        if self.data is None:
            return np.zeros((0, self.columns))
        return self.data[: self.filled].astype(np.float64)


def _same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    """The same float64 values, bit for bit (-0.0 is not 0.0)."""
    return a.shape == b.shape and a.dtype == b.dtype == np.float64 and np.array_equal(a.view(np.uint64),
                                                                                        b.view(np.uint64))


#: Saved states name the ring by its first name.
_Ring = Ring


class EstimateDecay(PerformanceDecay):
    """The decay test (:class:`~detectors.decay.PerformanceDecay`, Welch's statistic on
    losses) on an estimate's per-prediction expected losses: is the estimated ``metric``
    (``accuracy``: losses are ``1 - P(correct)``; ``mae``: predicted absolute errors) over
    the last ``window`` predictions worse than over the reference? The reference is the
    estimator's own reference losses (``reference_losses``); with ``ert`` the threshold is
    calibrated (bootstrapping those losses) to ``ert`` predictions between false alarms on
    a stationary stream. ``baseline`` and ``current`` are in the metric's units. Feed the
    losses :meth:`~detectors.cbpe.ClassificationEstimate.update_many` returns with :meth:`update_losses`.
    Other parameters as :class:`~detectors.decay.PerformanceDecay`.

    >>> import numpy as np
    >>> rng = np.random.default_rng(2)
    >>> test = EstimateDecay("accuracy", rng.uniform(0, 0.2, 2000), window=500, ert=100_000)
    >>> test.update_losses(rng.uniform(0, 0.2, 1000)); test.drift, round(test.baseline, 2)
    (False, 0.9)
    >>> test.update_losses(rng.uniform(0.1, 0.3, 500)); test.drift, round(test.current, 2)
    (True, 0.8)
    """

    def __init__(self, metric: str, reference_losses, window: int = 1000, stride: int | None = None, **kw):
        if metric not in TESTED.values():
            raise ValueError(f"an estimate's decay test watches {' or '.join(TESTED.values())}, not {metric!r}")
        losses = np.asarray(reference_losses, dtype=np.float64)
        super().__init__("mae", window=window, reference_size=max(2, losses.size), stride=stride, **kw)
        self.estimated_metric = metric
        self.set_reference(np.zeros(losses.size), losses)
        if _same_bits(self._given_reference, losses):
            # The estimator's own array (its reference_losses), not a copy of it: the
            # reference is then held once per model, in memory and in checkpoints.
            self._given_reference = self._reference = losses

    def update_losses(self, losses) -> None:
        """Feed per-prediction expected losses (non-negative numbers)."""
        losses = np.asarray(losses, dtype=np.float64)
        if losses.size:
            self.update_many(np.zeros(losses.size), losses)

    def _value(self, summary) -> float | None:
        value = super()._value(summary)
        return None if value is None else (1.0 - value if self.estimated_metric == "accuracy" else value)


#: The estimators lived in this module before they had their own: saved states (pickles)
#: and imports name them here.
_MOVED = {"IsotonicCalibrator": "cbpe", "ClassificationEstimate": "cbpe", "expected_roc_auc": "cbpe",
          "RegressionEstimate": "dle"}


def __getattr__(name: str):
    if name in _MOVED:
        import importlib

        return getattr(importlib.import_module(f"{__package__}.{_MOVED[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
