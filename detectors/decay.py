"""Performance decay: a rolling metric over the last labelled events, tested against the
same metric over a reference period.

Feed ``(y_true, y_pred)`` pairs. The first ``reference_size`` pairs are the reference
period (or call :meth:`PerformanceDecay.set_reference` with pairs from elsewhere); after
that the last ``window`` pairs are compared with it every ``stride`` pairs, one-sided
(is the window worse?):

- classification (``accuracy``, ``precision``, ``recall``, ``f1``; the last three for the
  ``positive`` class): a parametric bootstrap of both confusion tables, the p-value being
  the share of resamples in which the window is not worse;
- regression (``mae``, ``rmse``): Welch's t-test on the per-event absolute or squared
  errors.

``drift`` is ``p_value < threshold`` (the significance level ``alpha``), ``warning`` is
``p_value < warning_alpha``. ``statistic`` is the degradation, positive when worse:
``baseline - current`` for scores, ``current - baseline`` for errors.

>>> decay = PerformanceDecay("accuracy", reference_size=500, window=200)
>>> decay.update_many([1] * 500, [1] * 450 + [0] * 50)      # reference: 90% right
>>> decay.update_many([1] * 200, [1] * 180 + [0] * 20)      # 90% right
>>> decay.drift, decay.baseline, decay.current
(False, 0.9, 0.9)
>>> decay.update_many([1] * 200, [1] * 120 + [0] * 80)      # 60% right
>>> decay.drift, round(decay.statistic, 2), decay.p_value < 0.01
(True, 0.3, True)
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats

from .base import Detector

# metric -> (categories in the table, higher is better)
_CLASSIFICATION = {"accuracy": 2, "precision": 4, "recall": 4, "f1": 4}
_REGRESSION = {"mae": np.abs, "rmse": np.square}
METRICS = tuple(_CLASSIFICATION) + tuple(_REGRESSION)


def _score(metric: str, counts: np.ndarray) -> np.ndarray:
    """The metric of one table (last axis: categories) or of a stack of tables."""
    counts = counts.astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        if metric == "accuracy":
            return counts[..., 1] / counts.sum(axis=-1)
        tp, fp, fn = counts[..., 3], counts[..., 1], counts[..., 2]
        if metric == "precision":
            return tp / (tp + fp)
        if metric == "recall":
            return tp / (tp + fn)
        return 2 * tp / (2 * tp + fp + fn)


class PerformanceDecay(Detector):
    """Is the model's ``metric`` over the last ``window`` labelled events worse than over
    its reference period? See the module docs for the tests."""

    def __init__(
        self,
        metric: str = "accuracy",
        window: int = 500,
        reference_size: int = 1000,
        stride: int | None = None,
        alpha: float = 0.01,
        warning_alpha: float = 0.05,
        positive=1,
        n_bootstrap: int = 2000,
        seed: int = 0,
    ):
        if metric not in METRICS:
            raise ValueError(f"unknown metric {metric!r}; choose one of {', '.join(METRICS)}")
        if window < 2 or reference_size < 2:
            raise ValueError("window and reference_size must be at least 2")
        if not 0 < alpha <= warning_alpha < 1:
            raise ValueError(f"need 0 < alpha ({alpha}) <= warning_alpha ({warning_alpha}) < 1")
        self.metric = metric
        self.window = window
        self.reference_size = reference_size
        self.stride = stride or max(1, window // 10)
        self.alpha = alpha
        self.warning_alpha = warning_alpha
        self.positive = positive
        self.n_bootstrap = n_bootstrap
        self.seed = seed
        self._regression = metric in _REGRESSION
        self._given_reference = None
        self.reset()

    def reset(self) -> None:
        """Forget the window, and the reference period unless it was given with
        :meth:`set_reference`."""
        self._rng = np.random.default_rng(self.seed)
        self._reference: list = []
        self._reference_summary = self._given_reference
        self._buffer = np.zeros(self.window)
        self._head = self._filled = 0
        self._until_test = self.window
        self.baseline = None if self._reference_summary is None else self._value(self._reference_summary)
        self.current = self._statistic = self._p = None
        self.n_seen = self.n_detections = self.n_tests = 0
        self.last_detection_at = None
        self.drift = self.warning = False

    # -- feeding ----------------------------------------------------------------------------
    def update(self, x) -> None:
        y_true, y_pred = x
        self.update_many([y_true], [y_pred])

    def update_many(self, y_true, y_pred=None) -> None:
        """Feed pairs: two equal-length sequences, or one sequence of pairs."""
        if y_pred is None:
            pairs = list(y_true)
            y_true, y_pred = [p[0] for p in pairs], [p[1] for p in pairs]
        if len(y_true) != len(y_pred):
            raise ValueError(f"{len(y_true)} labels but {len(y_pred)} predictions")
        codes = self._encode(y_true, y_pred)
        seen_before = self.n_seen
        self.n_seen += codes.size
        start = 0
        if self._reference_summary is None:
            start = min(codes.size, self.reference_size - len(self._reference))
            self._reference.extend(codes[:start].tolist())
            if len(self._reference) == self.reference_size:
                self._set_reference_codes(np.asarray(self._reference))
        while start < codes.size:
            end = min(codes.size, start + self._until_test)
            self._push(codes[start:end])
            self._until_test -= end - start
            start = end
            if self._until_test == 0:
                if self._test():
                    self.last_detection_at = seen_before + end
                self._until_test = self.stride

    def set_reference(self, y_true, y_pred) -> None:
        """Take the reference period from these pairs instead of the first events."""
        codes = self._encode(y_true, y_pred)
        if codes.size < 2:
            raise ValueError("a reference period needs at least 2 labelled events")
        self._set_reference_codes(codes)
        self._given_reference = self._reference_summary

    def _encode(self, y_true, y_pred) -> np.ndarray:
        """Per event: the loss (regression) or the confusion-table category."""
        if self._regression:
            t = _finite(y_true, "label")
            p = _finite(y_pred, "prediction")
            return _REGRESSION[self.metric](p - t)
        if any(v is None for v in y_true) or any(v is None for v in y_pred):
            raise ValueError("labels and predictions must not be missing")
        if self.metric == "accuracy":
            return np.fromiter((t == p for t, p in zip(y_true, y_pred)), dtype=np.float64, count=len(y_true))
        pos = self.positive
        return np.fromiter(
            (2 * (t == pos) + (p == pos) for t, p in zip(y_true, y_pred)), dtype=np.float64, count=len(y_true)
        )

    def _set_reference_codes(self, codes: np.ndarray) -> None:
        self._reference = []
        self._reference_summary = self._summary(codes)
        self.baseline = self._value(self._reference_summary)

    def _push(self, codes: np.ndarray) -> None:
        slots = (self._head + np.arange(codes.size)) % self.window
        self._buffer[slots] = codes
        self._head = (self._head + codes.size) % self.window
        self._filled = min(self.window, self._filled + codes.size)

    # -- testing ----------------------------------------------------------------------------
    def _summary(self, codes: np.ndarray):
        if self._regression:
            return codes.size, float(codes.mean()), float(codes.std(ddof=1)) if codes.size > 1 else 0.0
        return np.bincount(codes.astype(np.intp), minlength=_CLASSIFICATION[self.metric])

    def _value(self, summary) -> float:
        if self._regression:
            mean = summary[1]
            return math.sqrt(mean) if self.metric == "rmse" else mean
        return float(_score(self.metric, summary))

    def _test(self) -> bool:
        """Run the test on the window; True if it enters drift."""
        window = self._summary(self._buffer[: self._filled])
        self.current = self._value(window)
        ref = self._reference_summary
        if self._regression:
            self._statistic = self.current - self.baseline
            n1, m1, s1 = window
            n0, m0, s0 = ref
            result = stats.ttest_ind_from_stats(m1, s1, n1, m0, s0, n0, equal_var=False, alternative="greater")
            p = float(result.pvalue)
            self._p = 0.0 if math.isnan(p) and m1 > m0 else (1.0 if math.isnan(p) else p)
        else:
            self._statistic = self.baseline - self.current
            self._p = self._bootstrap_p(ref, window)
        self.n_tests += 1
        was = self.drift
        self.drift = bool(self._p < self.alpha)
        self.n_detections += self.drift and not was
        self.warning = bool(not self.drift and self._p < self.warning_alpha)
        return self.drift and not was

    def _bootstrap_p(self, ref: np.ndarray, window: np.ndarray) -> float:
        b = self.n_bootstrap
        ref_draws = _score(self.metric, self._rng.multinomial(ref.sum(), ref / ref.sum(), size=b))
        win_draws = _score(self.metric, self._rng.multinomial(window.sum(), window / window.sum(), size=b))
        valid = ~(np.isnan(ref_draws) | np.isnan(win_draws))
        if not valid.any():
            return 1.0
        not_worse = np.count_nonzero(win_draws[valid] >= ref_draws[valid])
        return float((not_worse + 1) / (valid.sum() + 1))

    # -- reading ----------------------------------------------------------------------------
    @property
    def statistic(self) -> float | None:
        return self._statistic

    @property
    def threshold(self) -> float:
        return self.alpha

    @property
    def p_value(self) -> float | None:
        return self._p


def _finite(values, what: str) -> np.ndarray:
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{what}s must be numbers for a regression metric") from None
    if not np.isfinite(arr).all():
        raise ValueError(f"{what}s must be finite numbers (got NaN, infinity or a missing value)")
    return arr
