"""Performance decay: is the model's metric over its last labelled events worse than over
its reference period, beyond what chance gives once every ``ert`` labelled events?

Feed ``(y_true, y_pred)`` pairs. The first ``reference_size`` pairs are the reference
period (or call :meth:`PerformanceDecay.set_reference` with pairs from elsewhere); after
that the last ``window`` pairs are tested against it every ``stride`` pairs, one-sided (is
the window worse?), with a standardized statistic ``z`` that counts the reference's own
uncertainty as well as the window's (:mod:`detectors.decay_null`):

- classification (``accuracy``, ``precision``, ``recall``, ``f1``; the last three for the
  ``positive`` class): the difference of the metric over the two periods divided by its
  delta-method standard error;
- regression (``mae``, ``rmse``): Welch's statistic on the per-event losses (absolute or
  squared errors).

The test is repeated every ``stride`` labelled events, so its threshold is not a
significance level: it is calibrated to an expected run length (ERT) between false
alarms. With ``ert=``, ``drift`` (``z > threshold``) is entered by chance once every
``ert`` labelled events on average on a stationary stream, pooled over reference periods;
the threshold comes from the test's null distribution given the reference period (exact
for accuracy, simulated for the others: :func:`detectors.decay_null.thresholds`).
``threshold=`` gives the threshold on ``z`` directly instead.

The reference period comes from the stream, so calibration happens when it is complete:
at once inside :meth:`~PerformanceDecay.update_many` (milliseconds for accuracy, up to
some tenths of a second for the others), or, with ``defer_calibration=True``, by the
caller: :meth:`~PerformanceDecay.null_model` is available once the reference is complete,
``calibration.calibrate(null_model, ert)`` computes the thresholds anywhere, and
:meth:`~PerformanceDecay.set_thresholds` decides the tests held meanwhile, in order.

``statistic`` is ``z``; ``p_value`` is its nominal one-sided p-value for one test under
the normal approximation, ``P(N(0, 1) > z)``, not corrected for the repetition (the
threshold is); ``baseline`` and ``current`` are the metric over the reference and the
last window (None where undefined, e.g. precision without predicted positives). Each test
puts a :class:`~detectors.base.DescribedDecision` in the outbox, its ``detail`` the metric
over the test's window (``current``) and the ``baseline``: a report draws the metric at
each test, an alert says how far it fell.

Bad input raises ValueError and changes nothing: a batch is checked whole before any of it
is fed, and the message names the pair (:meth:`~PerformanceDecay.check` tests one pair).
Regression losses must be finite and at most :data:`MAX_LOSS` (an error of -1e308 against
a label of 1e308 overflows to infinity; sums and variances of such losses would too).

>>> decay = PerformanceDecay("accuracy", reference_size=1000, window=500, ert=100_000)
>>> decay.update_many([1] * 1000, [1] * 900 + [0] * 100)    # reference: 90% right
>>> decay.calibrated, 2 < decay.threshold < 4
(True, True)
>>> decay.update_many([1] * 500, [1] * 450 + [0] * 50)      # 90% right
>>> decay.drift, decay.baseline, decay.current
(False, 0.9, 0.9)
>>> decay.update_many([1] * 100, [1] * 10 + [0] * 90)       # the last 100 mostly wrong
>>> decay.drift, decay.current, round(decay.statistic, 1), decay.p_value < 1e-9
(True, 0.72, 8.1, True)
>>> [(d.at, d.drift, d.detail["current"]) for d in decay.pop_decisions()]   # one per test
[(1500, False, 0.9), (1550, True, 0.82), (1600, True, 0.72)]
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import ndtr

from . import calibration, decay_null
from .base import Decision, DeferredThresholds, DescribedDecision

_REGRESSION = {"mae": np.abs, "rmse": np.square}
METRICS = tuple(decay_null.CATEGORIES) + tuple(_REGRESSION)
#: Largest per-event loss (absolute error for mae, squared error for rmse) taken.
MAX_LOSS = 1e100


class PerformanceDecay(DeferredThresholds):
    """Is the model's ``metric`` over the last ``window`` labelled events worse than over
    its reference period? See the module docs for the statistic and its calibration.

    ``window`` and ``reference_size`` (at least 2) and ``stride`` (1 to ``window``,
    default ``window // 10``) count labelled events. Give exactly one of ``threshold`` (on
    ``z``) or ``ert`` (labelled events between false alarms, at least ``stride``);
    ``warning_threshold`` defaults to the one for a ``calibration.WARNING_FACTOR`` times
    shorter ERT with ``ert``, else to no warning. ``positive`` is the class that precision,
    recall and F1 are about; ``calibration_seed`` seeds the calibration's simulation.
    ValueError on a bad setting.
    """

    KIND = "decay"

    def __init__(
        self,
        metric: str = "accuracy",
        window: int = 500,
        reference_size: int = 1000,
        stride: int | None = None,
        *,
        threshold: float | None = None,
        ert: float | None = None,
        warning_threshold: float | None = None,
        defer_calibration: bool = False,
        positive=1,
        calibration_seed: int = 0,
    ):
        if metric not in METRICS:
            raise ValueError(f"unknown metric {metric!r}; choose one of {', '.join(METRICS)}")
        if window < 2 or reference_size < 2:
            raise ValueError("window and reference_size must be at least 2")
        stride = max(1, window // 10) if stride is None else stride
        if not 1 <= stride <= window:
            raise ValueError(f"stride must be between 1 and window ({window}), got {stride}")
        if (threshold is None) == (ert is None):
            raise ValueError("give exactly one of threshold= or ert=")
        if threshold is not None and math.isnan(threshold):
            raise ValueError("threshold must be a number, got NaN")
        if ert is not None and not ert >= stride:
            raise ValueError(f"ert must be at least stride ({stride}) labelled events, got {ert}")
        self.metric = metric
        self.window = int(window)
        self.reference_size = int(reference_size)
        self.stride = int(stride)
        self.ert = ert
        self.defer_calibration = defer_calibration
        self.positive = positive
        self.calibration_seed = int(calibration_seed)
        self._regression = metric in _REGRESSION
        self._given_threshold = None if threshold is None else float(threshold)
        self._given_warning = warning_threshold
        self._given_reference = None  # codes from set_reference, kept across reset()
        self.reset()

    def reset(self) -> None:
        """Forget the window, and the reference period unless it was given with
        :meth:`set_reference`; the decisions in the outbox stay."""
        dtype = np.float64 if self._regression else np.uint8
        self._buffer = np.zeros(self.window, dtype=dtype)
        self._head = self._filled = 0
        self._until_test = self.window
        self._collected = np.zeros(0 if self._given_reference is not None else self.reference_size, dtype=dtype)
        self._n_collected = 0
        self._reference = None  # confusion table, or the losses (regression)
        self.baseline = self._last = None
        self._threshold = self._given_threshold
        self.warning_threshold = self._given_warning
        self._z = self._p = None
        self._held: list = []
        self.n_seen = self.n_detections = self.n_tests = 0
        self.last_detection_at = None
        self.drift = self.warning = False
        if self._given_reference is not None:
            self._reference_complete(self._given_reference)

    # -- feeding ----------------------------------------------------------------------------
    def update(self, x) -> None:
        """Feed one ``(y_true, y_pred)`` pair."""
        y_true, y_pred = x
        self.update_many([y_true], [y_pred])

    def update_many(self, y_true, y_pred=None) -> None:
        """Feed pairs: two equal-length sequences, or one sequence of pairs."""
        codes = self._encode(y_true, y_pred)
        seen_before = self.n_seen
        self.n_seen += codes.size
        start = 0
        if self._reference is None:
            start = min(codes.size, self.reference_size - self._n_collected)
            self._collected[self._n_collected : self._n_collected + start] = codes[:start]
            self._n_collected += start
            if self._n_collected == self.reference_size:
                reference, self._collected = self._collected, self._collected[:0].copy()
                self._reference_complete(reference)
        while start < codes.size:
            end = min(codes.size, start + self._until_test)
            self._push(codes[start:end])
            self._until_test -= end - start
            start = end
            if self._until_test == 0:
                self._run_test(seen_before + end)
                self._until_test = self.stride

    def check(self, x) -> None:
        """Raise ValueError if :meth:`update` would refuse the pair ``x``; change nothing."""
        y_true, y_pred = x
        self._encode([y_true], [y_pred])

    def set_reference(self, y_true, y_pred) -> None:
        """Take the reference period from these pairs instead of the first events (kept
        across :meth:`reset`); with ``ert`` the threshold is calibrated again."""
        codes = self._encode(y_true, y_pred)
        if codes.size < 2:
            raise ValueError("a reference period needs at least 2 labelled events")
        self._given_reference = codes
        self._collected = self._collected[:0].copy()
        self._reference_complete(codes)

    def _encode(self, y_true, y_pred) -> np.ndarray:
        """Per event: the loss (regression) or the confusion-table cell."""
        if y_pred is None:
            pairs = list(y_true)
            y_true, y_pred = [p[0] for p in pairs], [p[1] for p in pairs]
        if len(y_true) != len(y_pred):
            raise ValueError(f"{len(y_true)} labels but {len(y_pred)} predictions")
        if self._regression:
            return _losses(self.metric, y_true, y_pred)
        if not (_numeric_array(y_true) and _numeric_array(y_pred)):
            for i, (t, p) in enumerate(zip(y_true, y_pred)):
                if t is None or p is None:
                    raise ValueError(f"pair {i} of the batch: labels and predictions must not be missing")
        if self.metric == "accuracy":
            if _numeric_array(y_true) and _numeric_array(y_pred):
                return (y_true == y_pred).astype(np.uint8)
            return np.fromiter((t == p for t, p in zip(y_true, y_pred)), dtype=np.uint8, count=len(y_true))
        pos = self.positive
        return np.fromiter(
            (2 * (t == pos) + (p == pos) for t, p in zip(y_true, y_pred)), dtype=np.uint8, count=len(y_true)
        )

    def _reference_complete(self, codes: np.ndarray) -> None:
        if self._regression:
            # The losses themselves (float64 already, never written to), not a copy: a
            # reference given with set_reference is not held twice (np.asarray would copy
            # an unpickled array, whose dtype is another instance).
            self._reference = codes if codes.dtype == np.float64 else np.array(codes, dtype=np.float64)
            self._ref_stats = (codes.size, float(codes.mean()), float(codes.var(ddof=1)))
        else:
            self._reference = np.bincount(codes, minlength=decay_null.CATEGORIES[self.metric])
        self.baseline = self._value(self._ref_stats[1] if self._regression else self._reference)
        if self.ert is not None:
            self._threshold = None  # a new reference is a new null
            if not self.defer_calibration:
                self.set_thresholds(*calibration.calibrate(self.null_model(), self.ert))

    def _push(self, codes: np.ndarray) -> None:
        slots = (self._head + np.arange(codes.size)) % self.window
        self._buffer[slots] = codes
        self._head = (self._head + codes.size) % self.window
        self._filled = min(self.window, self._filled + codes.size)

    # -- testing ----------------------------------------------------------------------------
    def _value(self, summary) -> float | None:
        """The metric of a confusion table or of a mean loss; None where undefined."""
        if self._regression:
            return math.sqrt(summary) if self.metric == "rmse" else summary
        value = float(decay_null.table_metric(self.metric, summary))
        return None if math.isnan(value) else value

    def _run_test(self, at: int) -> None:
        window = self._buffer[: self._filled]
        if self._regression:
            n0, m0, v0 = self._ref_stats
            self._last = float(window.mean())
            z = decay_null.welch_z(m0, v0, n0, self._last, float(window.var(ddof=1)), window.size)
        else:
            self._last = np.bincount(window, minlength=self._reference.size)
            z = decay_null.table_z(self.metric, self._reference, self._last)
        self._z, self._p = float(z), float(ndtr(-z))
        self._judge_or_hold(at, self._z, self._p, self.current)

    def _judge(self, at: int, z: float, p: float, current: float | None = None) -> None:
        """Decide one test (the ``at``-th pair completed it) and put it in the outbox, with
        the metric over its window (``current``) and the ``baseline`` in its detail."""
        self.n_tests += 1
        was = self.drift
        self.drift = bool(z > self._threshold)
        if self.drift and not was:
            self.n_detections += 1
            self.last_detection_at = at
        self.warning = bool(not self.drift and self.warning_threshold is not None and z > self.warning_threshold)
        self._decide(DescribedDecision.of(Decision(at=at, drift=self.drift, warning=self.warning, statistic=z,
                                                   threshold=self._threshold, p_value=p),
                                          {"current": current, "baseline": self.baseline}))

    # -- calibration ------------------------------------------------------------------------
    def null_model(self) -> calibration.NullModel | None:
        """What the test's null distribution depends on (the reference's confusion table,
        or its losses for regression): give it to :func:`detectors.calibration.calibrate`.
        None until the reference period is complete."""
        if self._reference is None:
            return None
        version = ("version", decay_null.VERSION)
        if self._regression:
            counts, params = (), (("losses", self._reference.tobytes()), ("metric", self.metric), version)
        else:
            counts, params = tuple(int(c) for c in self._reference), (("metric", self.metric), version)
        return calibration.NullModel(self.KIND, counts, self.window, self.stride, params, self.calibration_seed)

    def _warning_given(self) -> bool:
        return self._given_warning is not None

    @staticmethod
    def exact_thresholds(null_model: calibration.NullModel, rates) -> list[float]:
        """Thresholds for ``rates`` (per labelled event) from the decay test's own null
        (:func:`detectors.decay_null.thresholds`): what
        :func:`detectors.calibration.calibrate` calls for this kind."""
        params = dict(null_model.params)
        losses = params.get("losses")
        return decay_null.thresholds(
            params["metric"], null_model.counts, None if losses is None else np.frombuffer(losses),
            window=int(null_model.window), stride=int(null_model.stride), rates=rates, seed=null_model.seed)

    # -- reading ----------------------------------------------------------------------------
    @property
    def current(self) -> float | None:
        """The metric over the window of the last test (None before it, or where undefined)."""
        return None if self._last is None else self._value(self._last)

    @property
    def statistic(self) -> float | None:
        """``z`` of the last test (positive: the window is worse than the reference)."""
        return self._z

    @property
    def p_value(self) -> float | None:
        """The nominal one-sided p-value of the last test (see the module docs)."""
        return self._p


calibration.KINDS[PerformanceDecay.KIND] = PerformanceDecay


def _losses(metric: str, y_true, y_pred) -> np.ndarray:
    """Per-event losses; ValueError naming the first pair that cannot give one."""
    try:
        t = np.asarray(y_true, dtype=np.float64)
        p = np.asarray(y_pred, dtype=np.float64)
        if t.ndim != 1 or p.ndim != 1:
            raise TypeError
    except (TypeError, ValueError):
        i = next((i for i, pair in enumerate(zip(y_true, y_pred)) if not all(_is_number(v) for v in pair)), 0)
        raise ValueError(f"pair {i} of the batch: labels and predictions must be numbers for a regression "
                         f"metric") from None
    with np.errstate(over="ignore", invalid="ignore"):
        losses = _REGRESSION[metric](p - t)
    bad = np.flatnonzero(~(losses <= MAX_LOSS))  # NaN compares False
    if bad.size:
        i = int(bad[0])
        label, prediction, loss = float(t[i]), float(p[i]), float(losses[i])
        if not (math.isfinite(label) and math.isfinite(prediction)):
            raise ValueError(f"pair {i} of the batch: labels and predictions must be finite numbers "
                             f"(got label {label!r}, prediction {prediction!r})")
        raise ValueError(f"pair {i} of the batch: label {label!r}, prediction {prediction!r}: the {metric} "
                         f"loss {loss!r} is beyond {MAX_LOSS:g}, more than the test can sum")
    return losses


def _numeric_array(values) -> bool:
    return isinstance(values, np.ndarray) and values.ndim == 1 and values.dtype.kind in "biuf"


def _is_number(value) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return not isinstance(value, (str, bytes))
