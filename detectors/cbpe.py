"""Confidence-based performance estimation (CBPE): a classifier's metrics over its recent
predictions, from its scores, before the labels come.

The model's scores are calibrated on a labelled reference with isotonic regression
(:class:`IsotonicCalibrator`); per prediction, the calibrated probability of each class is
the expected share of that class among predictions with this score, so the expected
confusion matrix of a window is the sum of those probabilities. Accuracy is the mean
probability of the predicted class; precision, recall and F1 (of the ``positive`` class)
come from the expected table; ROC AUC is the area under the expected ROC curve (the
predictions ranked by their raw score, each counted as a calibrated fraction of a positive
and of a negative). :mod:`detectors.estimation` has what the estimators share (the window
of recent estimates, the decay test on them) and the assumption they rest on.

Sources: NannyML's documentation of CBPE (the reference implementation of the idea); B.
Zadrozny and C. Elkan, "Transforming classifier scores into accurate multiclass probability
estimates", KDD 2002 (isotonic calibration, one-vs-rest for multiclass); A. Niculescu-Mizil
and R. Caruana, "Predicting good probabilities with supervised learning", ICML 2005; the
pool-adjacent-violators algorithm as in ``scipy.optimize.isotonic_regression``.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> score = rng.uniform(size=4000)                      # P(class 1), well calibrated
>>> y_true = (rng.uniform(size=4000) < score).astype(int)
>>> y_pred = (score > 0.5).astype(int)
>>> est = ClassificationEstimate(window=2000).fit(score[:2000], y_true[:2000], y_pred[:2000])
>>> _ = est.update_many(score[2000:], y_pred[2000:])
>>> estimated = est.metrics()
>>> realised = float(np.mean(y_true[2000:] == y_pred[2000:]))
>>> abs(estimated["accuracy"] - realised) < 0.02, sorted(estimated)
(True, ['accuracy', 'f1', 'precision', 'recall', 'roc_auc'])
"""

from __future__ import annotations

import math

import numpy as np
from scipy.optimize import isotonic_regression

from .estimation import CLASSIFICATION_METRICS, Ring


class IsotonicCalibrator:
    """A non-decreasing map from a score to a probability, fitted by isotonic regression.

    :meth:`fit` takes scores (numbers) and outcomes (0/1, or any numbers in [0, 1]); equal
    scores are pooled first. :meth:`transform` interpolates linearly between the fitted
    knots and is constant beyond them (as scikit-learn's ``IsotonicRegression`` with
    ``out_of_bounds="clip"``). Non-finite scores map to the mean outcome. ValueError on
    fewer than 2 finite scores or on lengths that differ.

    >>> cal = IsotonicCalibrator().fit([0.1, 0.2, 0.3, 0.4], [0, 1, 0, 1])
    >>> cal.transform([0.0, 0.1, 0.25, 0.35, 1.0]).round(2).tolist()
    [0.0, 0.0, 0.5, 0.75, 1.0]
    """

    def __init__(self):
        self.knots = self.values = None
        self.mean = None

    def fit(self, scores, outcomes) -> "IsotonicCalibrator":
        x = np.asarray(scores, dtype=np.float64)
        y = np.asarray(outcomes, dtype=np.float64)
        if x.shape != y.shape or x.ndim != 1:
            raise ValueError(f"{x.size} scores but {y.size} outcomes")
        ok = np.isfinite(x)
        x, y = x[ok], y[ok]
        if x.size < 2:
            raise ValueError("isotonic calibration needs at least 2 finite scores")
        knots, inverse, counts = np.unique(x, return_inverse=True, return_counts=True)
        sums = np.bincount(inverse, weights=y, minlength=knots.size)
        fitted = np.clip(isotonic_regression(sums / counts, weights=counts.astype(np.float64), increasing=True).x, 0, 1)
        # Only the ends of each constant block matter to the interpolation: the rest is
        # dropped (a few dozen knots instead of one per distinct reference score, in the state).
        change = np.flatnonzero(np.diff(fitted) != 0)
        keep = np.unique(np.r_[0, change, change + 1, knots.size - 1])
        self.knots, self.values, self.mean = knots[keep], fitted[keep], float(y.mean())
        return self

    def transform(self, scores) -> np.ndarray:
        """The calibrated probabilities of ``scores`` (an array of their shape)."""
        if self.knots is None:
            raise ValueError("the calibrator is not fitted")
        x = np.asarray(scores, dtype=np.float64)
        out = np.interp(x, self.knots, self.values)
        return np.where(np.isfinite(x), out, self.mean)


def _same(a, b) -> bool:
    """Class labels are equal, or print the same (JSON object keys are strings: a score
    ``{"1": 0.8}`` is about the prediction ``1``)."""
    return a == b or str(a) == str(b)


def _some(classes: set, most: int = 5) -> str:
    """A few classes, sorted, for a message."""
    shown = sorted(classes)[:most]
    return ", ".join(shown) + (", ..." if len(classes) > most else "")


class ClassificationEstimate:
    """Confidence-based performance estimation (see the module docs) of a binary or
    multiclass classifier over its last ``window`` predictions (default 1000).

    Scores: a number, the ``positive`` class's probability (binary); or a mapping class ->
    probability (any number of classes; one isotonic calibrator per class, one-vs-rest,
    the calibrated probabilities of an event normalised to sum to 1). A missing score
    (None) is a prediction the estimate cannot use: it is left out. Precision, recall, F1
    and ROC AUC are those of the ``positive`` class (default 1) against the rest, like
    the decay tests'. Values are fractions in [0, 1]; None where undefined (no expected
    positive, a window without scores).

    :meth:`fit` takes the labelled reference: scores, labels and predictions (at least 2
    usable events; ValueError otherwise, if the scores mix numbers and mappings, or if they
    calibrate to the same probabilities for every event, as a constant score does: the
    estimate would then follow only the mix of predicted classes). Once
    fitted, a score of the other form than the reference's (a number where the reference
    had mappings, or the reverse) cannot be calibrated: it is left out like a missing one
    (:meth:`takes`).
    """

    task = "classification"
    METRICS = CLASSIFICATION_METRICS

    def __init__(self, window: int = 1000, positive=1):
        if window < 2:
            raise ValueError("window must be at least 2")
        self.window = int(window)
        self.positive = positive
        self.classes: list[str] | None = None  # multiclass: the classes, as strings
        self.calibrators: list[IsotonicCalibrator] = []
        self.reference_losses: np.ndarray | None = None  # 1 - P(correct) on the reference
        # Per prediction: raw positive score, calibrated P(positive), predicted positive, P(correct).
        self._recent = Ring(self.window, 4)
        # Per labelled prediction: the same, plus whether it was right and truly positive.
        self._labelled = Ring(self.window, 6)
        self.n_seen = 0

    @property
    def fitted(self) -> bool:
        return self.reference_losses is not None

    # -- fitting ----------------------------------------------------------------------------
    def fit(self, scores, y_true, y_pred) -> "ClassificationEstimate":
        scores, y_true, y_pred = self._usable(scores, y_true, y_pred)
        if len(scores) < 2:
            raise ValueError("the estimate needs at least 2 labelled reference events with a score")
        if isinstance(scores[0], dict):
            keys = {str(k) for s in scores for k in s}
            predicted = {str(p) for p in y_pred}
            if not keys & predicted:
                raise ValueError(f"the scores' classes ({_some(keys)}) include none of the predicted classes "
                                 f"({_some(predicted)}): a score maps each class, named as the predictions name it, "
                                 "to its probability")
            self.classes = sorted(keys | {str(t) for t in y_true})
            matrix = self._matrix(scores)
            self.calibrators = [IsotonicCalibrator().fit(matrix[:, k], [str(t) == c for t in y_true])
                                for k, c in enumerate(self.classes)]
        else:
            self.classes = None
            self.calibrators = [IsotonicCalibrator().fit(scores, [_same(t, self.positive) for t in y_true])]
        probabilities = self._probabilities(scores)
        if float(np.ptp(probabilities[1], axis=0).max()) == 0.0:
            # Every event gets the same probabilities: the estimate would move only with the
            # mix of predicted classes, whatever the model gets right (a constant score
            # alarmed at a mirrored input shift that left the accuracy at 0.96).
            self.calibrators, self.classes = [], None
            raise ValueError("the scores calibrate to the same probability for every labelled reference event "
                             "(a constant score, or one unrelated to the outcome): they say nothing of which "
                             "predictions are right")
        self.reference_losses = 1.0 - self._rows(scores, y_pred, probabilities)[:, 3]
        return self

    @staticmethod
    def usable(score) -> bool:
        """Whether a score can be estimated from: a finite number, or a non-empty mapping."""
        if isinstance(score, dict):
            return bool(score)
        return isinstance(score, (int, float, np.number)) and not isinstance(score, bool) and math.isfinite(score)

    def takes(self, score) -> bool:
        """Whether the fitted estimate uses ``score``: a usable score of the reference's
        form (a number, or a class -> probability mapping).

        >>> est = ClassificationEstimate().fit([0.2, 0.9, 0.7, 0.1], [0, 1, 1, 0], [0, 1, 1, 0])
        >>> est.takes(0.4), est.takes({"1": 0.4}), est.takes(None)
        (True, False, False)
        """
        return self.usable(score) and isinstance(score, dict) == (self.classes is not None)

    def _usable(self, scores, *columns):
        if self.fitted:
            keep = [i for i, s in enumerate(scores) if self.takes(s)]
        else:
            keep = [i for i, s in enumerate(scores) if self.usable(s)]
            if len({isinstance(scores[i], dict) for i in keep}) > 1:
                raise ValueError("scores mix numbers and class -> probability mappings")
        return ([scores[i] for i in keep], *[[c[i] for i in keep] for c in columns])

    def _matrix(self, scores) -> np.ndarray:
        index = {c: k for k, c in enumerate(self.classes)}
        out = np.zeros((len(scores), len(self.classes)))
        for i, s in enumerate(scores):
            for key, p in s.items():
                k = index.get(str(key))
                if k is not None and p is not None:
                    out[i, k] = float(p)
        return out

    def _probabilities(self, scores) -> tuple[np.ndarray, np.ndarray]:
        """(raw, calibrated) probabilities per event, each of shape (events, 1), P(positive),
        for binary scores, or (events, classes) for mappings, the calibrated ones normalised
        to sum to 1."""
        if self.classes is None:
            raw = np.asarray(scores, dtype=np.float64)[:, None]
            return raw, self.calibrators[0].transform(raw[:, 0])[:, None]
        raw = self._matrix(scores)
        calibrated = np.column_stack([c.transform(raw[:, k]) for k, c in enumerate(self.calibrators)])
        totals = calibrated.sum(axis=1, keepdims=True)
        return raw, np.where(totals > 0, calibrated / np.where(totals > 0, totals, 1), 1.0 / len(self.classes))

    def _rows(self, scores, y_pred, probabilities: tuple | None = None) -> np.ndarray:
        """Per event: raw positive score, calibrated P(positive), predicted positive, P(correct)
        (``probabilities``: :meth:`_probabilities` of ``scores``, when known)."""
        n = len(scores)
        out = np.zeros((n, 4))
        positive = [_same(p, self.positive) for p in y_pred]
        out[:, 2] = positive
        raw, calibrated = probabilities if probabilities is not None else self._probabilities(scores)
        if self.classes is None:
            q = calibrated[:, 0]
            out[:, 0], out[:, 1] = raw[:, 0], q
            out[:, 3] = np.where(positive, q, 1.0 - q)
            return out
        index = {c: k for k, c in enumerate(self.classes)}
        k_pos = index.get(str(self.positive))
        if k_pos is not None:
            out[:, 0], out[:, 1] = raw[:, k_pos], calibrated[:, k_pos]
        predicted = np.array([index.get(str(p), -1) for p in y_pred])
        known = predicted >= 0
        out[known, 3] = calibrated[np.flatnonzero(known), predicted[known]]
        return out

    # -- feeding ----------------------------------------------------------------------------
    def expected_correct(self, scores, y_pred) -> np.ndarray:
        """P(correct) per prediction with a usable score (the others are left out)."""
        scores, y_pred = self._usable(scores, y_pred)
        return self._rows(scores, y_pred)[:, 3] if scores else np.zeros(0)

    def update_many(self, scores, y_pred) -> np.ndarray:
        """Feed predictions (no labels); returns their expected losses ``1 - P(correct)``
        (those with a usable score), the stream :class:`~detectors.estimation.EstimateDecay` watches."""
        if not self.fitted:
            raise ValueError("the estimate is not fitted")
        scores, y_pred = self._usable(scores, y_pred)
        if not scores:
            return np.zeros(0)
        rows = self._rows(scores, y_pred)
        self._recent.push(rows)
        self.n_seen += len(rows)
        return 1.0 - rows[:, 3]

    def observe_labelled(self, scores, y_pred, y_true) -> None:
        """Feed labelled predictions after the reference: the estimate's error is measured on them."""
        scores, y_pred, y_true = self._usable(scores, y_pred, y_true)
        if not scores or not self.fitted:
            return
        rows = self._rows(scores, y_pred)
        right = np.array([_same(t, p) for t, p in zip(y_true, y_pred)], dtype=np.float64)
        truly = np.array([_same(t, self.positive) for t in y_true], dtype=np.float64)
        self._labelled.push(np.column_stack([rows, right, truly]))

    # -- reading ----------------------------------------------------------------------------
    def metrics(self) -> dict[str, float | None]:
        """Estimated metric -> value over the last ``window`` predictions (empty before any)."""
        rows = self._recent.rows()
        return _expected_metrics(rows) if len(rows) else {}

    def error(self) -> dict[str, float | None]:
        """Metric -> estimated minus realised, over the last ``window`` labelled predictions
        fed to :meth:`observe_labelled` (empty before any; None where either is undefined)."""
        rows = self._labelled.rows()
        if not len(rows):
            return {}
        estimated = _expected_metrics(rows[:, :4])
        realised = _realised_metrics(rows[:, 0], rows[:, 2], rows[:, 4], rows[:, 5])
        return {m: None if estimated[m] is None or realised[m] is None else estimated[m] - realised[m]
                for m in self.METRICS}

    def realised(self) -> dict[str, float | None]:
        """The realised metrics over the labelled window (see :meth:`error`)."""
        rows = self._labelled.rows()
        return _realised_metrics(rows[:, 0], rows[:, 2], rows[:, 4], rows[:, 5]) if len(rows) else {}


def _ratio(a: float, b: float) -> float | None:
    return None if b <= 0 else float(a / b)


def _expected_metrics(rows: np.ndarray) -> dict[str, float | None]:
    raw, q, predicted, correct = rows.T
    tp, fp = float(np.sum(q * predicted)), float(np.sum((1 - q) * predicted))
    fn = float(np.sum(q * (1 - predicted)))
    return {"accuracy": float(correct.mean()), "precision": _ratio(tp, tp + fp), "recall": _ratio(tp, tp + fn),
            "f1": _ratio(2 * tp, 2 * tp + fp + fn), "roc_auc": expected_roc_auc(raw, q)}


def _realised_metrics(raw, predicted, right, truly) -> dict[str, float | None]:
    tp = float(np.sum(predicted * truly))
    fp, fn = float(np.sum(predicted * (1 - truly))), float(np.sum((1 - predicted) * truly))
    return {"accuracy": float(right.mean()), "precision": _ratio(tp, tp + fp), "recall": _ratio(tp, tp + fn),
            "f1": _ratio(2 * tp, 2 * tp + fp + fn), "roc_auc": expected_roc_auc(raw, truly)}


def expected_roc_auc(scores, positives) -> float | None:
    """Area under the ROC curve of ``scores`` where event i is ``positives[i]`` of a positive
    and ``1 - positives[i]`` of a negative: the realised AUC for 0/1 labels (ties count
    half), CBPE's expected AUC for calibrated probabilities. None without positive or
    negative mass.

    >>> expected_roc_auc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1])
    0.75
    """
    s = np.asarray(scores, dtype=np.float64)
    w = np.asarray(positives, dtype=np.float64)
    order = np.argsort(-s, kind="stable")
    s, w = s[order], w[order]
    tps, fps = np.cumsum(w), np.cumsum(1.0 - w)
    if tps.size == 0 or tps[-1] <= 0 or fps[-1] <= 0:
        return None
    last = np.r_[np.flatnonzero(np.diff(s) != 0), s.size - 1]  # the end of each run of equal scores
    tpr = np.r_[0.0, tps[last] / tps[-1]]
    fpr = np.r_[0.0, fps[last] / fps[-1]]
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))
