"""Estimated performance: a model's metrics over its recent predictions, before their labels.

Two estimators, fitted once on labelled reference events, then fed unlabelled predictions:

- :class:`ClassificationEstimate` (confidence-based performance estimation, CBPE): the
  model's scores are calibrated on the reference with isotonic regression
  (:class:`IsotonicCalibrator`); per prediction, the calibrated probability of each class
  is the expected share of that class among predictions with this score, so the expected
  confusion matrix of a window is the sum of those probabilities. Accuracy is the mean
  probability of the predicted class; precision, recall and F1 (of the ``positive``
  class) come from the expected table; ROC AUC is the area under the expected ROC curve
  (the predictions ranked by their raw score, each counted as a calibrated fraction of a
  positive and of a negative).
- :class:`RegressionEstimate` (direct loss estimation, DLE): an online River model of the
  absolute error, and one of the squared error, as a function of the features and the
  prediction, trained on the reference (River's Hoeffding tree regressor by default,
  predicted over arrays once trained: :mod:`detectors.compiled_tree`); the estimated MAE
  of a window is the mean of the predicted absolute errors, the RMSE the square root of
  the mean predicted squared error.

Both keep the last ``window`` predictions' per-event estimates, and, once labels come, the
estimate's error against the realised metric over the last ``window`` labelled predictions
(:meth:`~ClassificationEstimate.error`, estimated minus realised). :class:`EstimateDecay`
is the decay test of :mod:`detectors.decay` on the per-prediction expected loss (expected
error of a classifier, ``1 - P(correct)``; a regressor's predicted absolute error),
calibrated the same way to an ERT between false alarms, counted in predictions.

The assumption: the relation between inputs and labels does not change (no concept
drift). The estimate follows a change of the inputs towards regions where the model is
less (or more) accurate, since the calibrator or the loss model knows how accurate it was
there on the reference; it cannot see a change of the labelling rule, since it never sees
a label after the reference.

Sources: NannyML's documentation of CBPE and DLE (the reference implementation of both
ideas); B. Zadrozny and C. Elkan, "Transforming classifier scores into accurate multiclass
probability estimates", KDD 2002 (isotonic calibration, one-vs-rest for multiclass); A.
Niculescu-Mizil and R. Caruana, "Predicting good probabilities with supervised learning",
ICML 2005; the pool-adjacent-violators algorithm as in ``scipy.optimize.isotonic_regression``;
E. Ikonomovska et al., "Learning model trees from evolving data streams", 2011 (River's
Hoeffding tree regressor).

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

from .compiled_tree import from_river
from .decay import PerformanceDecay

#: Metrics each estimator gives.
CLASSIFICATION_METRICS = ("accuracy", "precision", "recall", "f1", "roc_auc")
REGRESSION_METRICS = ("mae", "rmse")
#: Reference events the loss models of :class:`RegressionEstimate` learn from by default
#: (passes over a smaller reference, up to 3).
LEARN_STEPS = 6000
#: The metric whose estimate the decay test watches, per task.
TESTED = {"classification": "accuracy", "regression": "mae"}
#: The input of the loss models that is the prediction.
PREDICTION = "<prediction>"


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


class _Ring:
    """The last ``size`` rows of a few float columns (float32: means of a window need no
    more), allocated at the first push (a model whose estimate never runs holds none)."""

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
        slots = (self.head + np.arange(len(rows))) % self.size
        self.data[slots] = rows
        self.head = (self.head + len(rows)) % self.size
        self.filled = min(self.size, self.filled + len(rows))

    def rows(self) -> np.ndarray:
        if self.data is None:
            return np.zeros((0, self.columns))
        return self.data[: self.filled].astype(np.float64)


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
    usable events; ValueError otherwise, or if the scores mix numbers and mappings).
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
        self._recent = _Ring(self.window, 4)
        # Per labelled prediction: the same, plus whether it was right and truly positive.
        self._labelled = _Ring(self.window, 6)
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
            self.classes = sorted({str(k) for s in scores for k in s} | {str(t) for t in y_true})
            matrix = self._matrix(scores)
            self.calibrators = [IsotonicCalibrator().fit(matrix[:, k], [str(t) == c for t in y_true])
                                for k, c in enumerate(self.classes)]
        else:
            self.classes = None
            self.calibrators = [IsotonicCalibrator().fit(scores, [_same(t, self.positive) for t in y_true])]
        self.reference_losses = 1.0 - self._rows(scores, y_pred)[:, 3]
        return self

    @staticmethod
    def usable(score) -> bool:
        """Whether a score can be estimated from: a finite number, or a non-empty mapping."""
        if isinstance(score, dict):
            return bool(score)
        return isinstance(score, (int, float, np.number)) and not isinstance(score, bool) and math.isfinite(score)

    @classmethod
    def _usable(cls, scores, *columns):
        keep = [i for i, s in enumerate(scores) if cls.usable(s)]
        kinds = {isinstance(scores[i], dict) for i in keep}
        if len(kinds) > 1:
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

    def _rows(self, scores, y_pred) -> np.ndarray:
        """Per event: raw positive score, calibrated P(positive), predicted positive, P(correct)."""
        n = len(scores)
        out = np.zeros((n, 4))
        positive = [_same(p, self.positive) for p in y_pred]
        out[:, 2] = positive
        if self.classes is None:
            raw = np.asarray(scores, dtype=np.float64)
            q = self.calibrators[0].transform(raw)
            out[:, 0], out[:, 1] = raw, q
            out[:, 3] = np.where(positive, q, 1.0 - q)
            return out
        matrix = self._matrix(scores)
        calibrated = np.column_stack([c.transform(matrix[:, k]) for k, c in enumerate(self.calibrators)])
        totals = calibrated.sum(axis=1, keepdims=True)
        calibrated = np.where(totals > 0, calibrated / np.where(totals > 0, totals, 1), 1.0 / len(self.classes))
        index = {c: k for k, c in enumerate(self.classes)}
        k_pos = index.get(str(self.positive))
        if k_pos is not None:
            out[:, 0], out[:, 1] = matrix[:, k_pos], calibrated[:, k_pos]
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
        (those with a usable score), the stream :class:`EstimateDecay` watches."""
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


def _default_loss_model():
    """A Hoeffding tree regressor with the mean of each leaf as its prediction: it learns
    the regions of the input space where the model errs more (the splits), in passes over
    a reference of a few thousand events; once trained it is predicted over arrays
    (:func:`detectors.compiled_tree.from_river`, the same numbers as River's). Measured on
    the streams of tests/estimation_streams.py, linear leaf models, or
    a linear model alone, were less stable: their gradient steps over repeated passes
    overshoot on skewed absolute errors, and a model's error is rarely linear in its inputs.
    Trees need no scaling of the inputs. ``delta=0.1`` (a loose split confidence; River's
    default is 1e-7) because the tree learns a fixed reference of a few thousand events,
    not an endless stream: at River's default it would hardly split at all."""
    from river import tree

    return tree.HoeffdingTreeRegressor(grace_period=50, delta=0.1, leaf_prediction="mean")


def _number(value) -> bool:
    """Whether a feature value enters the loss models: a finite int or float, not a bool."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _columns(features, y_pred, names) -> np.ndarray:
    """The loss models' inputs as columns: shape (events, len(names)), ``names[-1]`` the
    prediction (:data:`PREDICTION`), NaN where a feature is missing or not a number."""
    features = list(features)
    out = np.full((len(features), len(names)), np.nan)
    out[:, -1] = np.asarray(y_pred, dtype=np.float64).reshape(-1)
    for k, name in enumerate(names[:-1]):
        # A finite float as it is (``v - v == 0`` is False for inf and NaN), the rest checked.
        out[:, k] = [v if type(v) is float and v - v == 0.0 else float(v) if _number(v) else math.nan
                     for v in [f.get(name) for f in features]]
    return out


def _freeze(model) -> None:
    """Drop a trained Hoeffding tree's split statistics (River's ``deactivate`` of its
    leaves): the estimate never learns after the reference, and they are three quarters of
    its pickled state (about 270 kB -> 70 kB for the default models). Other models are
    left as they are."""
    root = getattr(model, "_root", None)
    if root is None:
        return
    for leaf in (root.iter_leaves() if hasattr(root, "iter_leaves") else [root]):
        if hasattr(leaf, "deactivate"):
            leaf.deactivate()


class RegressionEstimate:
    """Direct loss estimation (see the module docs) of a regressor over its last ``window``
    predictions (default 1000).

    Inputs of the loss models: the numeric features (a mapping name -> value; others, and
    missing values, are left out) and the prediction, as ``<prediction>``. ``model``: a
    factory of River regressors, called twice (absolute and squared error), each learning
    the reference one event at a time; default: a Hoeffding tree regressor with the leaf's
    mean as prediction (:func:`_default_loss_model`). A trained Hoeffding tree's split
    statistics are dropped (:func:`_freeze`), and it is predicted over arrays
    (:func:`detectors.compiled_tree.from_river`: River's numbers, a batch at a time);
    other models predict one event at a time. ``epochs``: passes over the reference,
    shuffled each time (``seed``: the shuffle's, default 0); default (None) as many as it
    takes to learn from :data:`LEARN_STEPS` events, at most 3 (repeated passes let the
    tree split on a reference of a couple of thousand events; on a larger one a single
    pass does as well, at a third of the cost). Predicted losses are clipped at 0. MAE
    and RMSE are in the label's units; None before any prediction.

    >>> import numpy as np
    >>> rng = np.random.default_rng(1)
    >>> x = rng.uniform(-1, 1, 3000)
    >>> y_pred = 2 * x
    >>> y_true = y_pred + rng.normal(0, 0.1 + 0.4 * (x > 0))   # errs more for x > 0
    >>> est = RegressionEstimate(window=1000).fit([{"x": v} for v in x[:2000]], y_pred[:2000], y_true[:2000])
    >>> _ = est.update_many([{"x": v} for v in x[2000:]], y_pred[2000:])
    >>> realised = float(np.mean(np.abs(y_true[2000:] - y_pred[2000:])))
    >>> abs(est.metrics()["mae"] - realised) < 0.03
    True
    """

    task = "regression"
    METRICS = REGRESSION_METRICS

    def __init__(self, window: int = 1000, model=None, epochs: int | None = None, seed: int = 0):
        if window < 2:
            raise ValueError("window must be at least 2")
        if epochs is not None and epochs < 1:
            raise ValueError("epochs must be at least 1")
        self.window = int(window)
        self.epochs = epochs
        self.seed = int(seed)
        factory = model or _default_loss_model
        self.abs_model, self.sq_model = factory(), factory()
        self._compiled = None  # the trained trees as arrays (compiled_tree.from_river); () if not trees
        self.reference_losses: np.ndarray | None = None  # predicted absolute errors on the reference
        self._recent = _Ring(self.window, 2)  # predicted absolute, squared error
        self._labelled = _Ring(self.window, 4)  # the same, realised absolute, squared error
        self.n_seen = 0

    @property
    def fitted(self) -> bool:
        return self.reference_losses is not None

    @staticmethod
    def _inputs(features, prediction) -> dict:
        x = {k: float(v) for k, v in features.items() if _number(v)}
        x[PREDICTION] = float(prediction)
        return x

    def fit(self, features, y_pred, y_true) -> "RegressionEstimate":
        """Train the loss models on labelled reference events: features (mappings),
        predictions and labels (numbers). ValueError on fewer than 2 events."""
        if len(features) < 2:
            raise ValueError("the estimate needs at least 2 labelled reference events")
        errors = np.asarray(y_true, dtype=np.float64) - np.asarray(y_pred, dtype=np.float64)
        inputs = [self._inputs(f, p) for f, p in zip(features, y_pred)]
        self._compiled = None  # compiled after this fit, when the trees have stopped learning
        rng = np.random.default_rng(self.seed)
        epochs = self.epochs or min(3, math.ceil(LEARN_STEPS / len(inputs)))
        # The targets as Python floats, and the methods bound, once: River learns one event
        # at a time, and each call's own cost is all that is left in the loop.
        absolute, squared = np.abs(errors).tolist(), (errors * errors).tolist()
        learn_abs, learn_sq = self.abs_model.learn_one, self.sq_model.learn_one
        for _ in range(epochs):
            for i in rng.permutation(len(inputs)).tolist():  # shuffled: a tree must not learn the order
                learn_abs(inputs[i], absolute[i])
                learn_sq(inputs[i], squared[i])
        _freeze(self.abs_model)
        _freeze(self.sq_model)
        self.reference_losses = self._predict(features, y_pred)[:, 0]
        return self

    def _predict(self, features, y_pred) -> np.ndarray:
        """Predicted (absolute, squared) error per event, shape (events, 2)."""
        # The models learn no more after the reference: a Hoeffding tree is compiled once to
        # arrays that predict the same numbers (compiled_tree.from_river); other models (and
        # trees it does not know) predict one event at a time.
        trees = getattr(self, "_compiled", None)  # a state saved before the arrays has none
        if trees is None:
            trees = tuple(from_river(m, PREDICTION) for m in (self.abs_model, self.sq_model))
            self._compiled = trees = trees if None not in trees else ()
        if trees:
            return self._clipped(np.column_stack([t.predict(_columns(features, y_pred, t.names)) for t in trees]))
        inputs = [self._inputs(f, p) for f, p in zip(features, y_pred)]
        return self._clipped(np.array([[self.abs_model.predict_one(x), self.sq_model.predict_one(x)]
                                       for x in inputs], dtype=np.float64).reshape(-1, 2))

    def __getstate__(self) -> dict:
        # The compiled arrays are made again from the River models after loading: a saved
        # state holds the models alone.
        return {**self.__dict__, "_compiled": None}

    @staticmethod
    def _clipped(out: np.ndarray) -> np.ndarray:
        return np.clip(np.nan_to_num(out, nan=0.0), 0.0, None)

    def update_many(self, features, y_pred) -> np.ndarray:
        """Feed predictions (features as mappings, predictions as numbers); returns their
        predicted absolute errors, the stream :class:`EstimateDecay` watches."""
        if not self.fitted:
            raise ValueError("the estimate is not fitted")
        if not len(features):
            return np.zeros(0)
        rows = self._predict(features, y_pred)
        self._recent.push(rows)
        self.n_seen += len(rows)
        return rows[:, 0]

    def observe_labelled(self, features, y_pred, y_true) -> None:
        """Feed labelled predictions after the reference: the estimate's error is measured on them."""
        if not len(features) or not self.fitted:
            return
        rows = self._predict(features, y_pred)
        e = np.asarray(y_true, dtype=np.float64) - np.asarray(y_pred, dtype=np.float64)
        self._labelled.push(np.column_stack([rows, np.abs(e), e ** 2]))

    def metrics(self) -> dict[str, float | None]:
        """Estimated ``mae`` and ``rmse`` over the last ``window`` predictions (empty before any)."""
        rows = self._recent.rows()
        return {"mae": float(rows[:, 0].mean()), "rmse": math.sqrt(rows[:, 1].mean())} if len(rows) else {}

    def realised(self) -> dict[str, float | None]:
        rows = self._labelled.rows()
        return {"mae": float(rows[:, 2].mean()), "rmse": math.sqrt(rows[:, 3].mean())} if len(rows) else {}

    def error(self) -> dict[str, float | None]:
        """Metric -> estimated minus realised over the last ``window`` labelled predictions."""
        rows = self._labelled.rows()
        if not len(rows):
            return {}
        return {"mae": float(rows[:, 0].mean() - rows[:, 2].mean()),
                "rmse": math.sqrt(rows[:, 1].mean()) - math.sqrt(rows[:, 3].mean())}


class EstimateDecay(PerformanceDecay):
    """The decay test (:class:`~detectors.decay.PerformanceDecay`, Welch's statistic on
    losses) on an estimate's per-prediction expected losses: is the estimated ``metric``
    (``accuracy``: losses are ``1 - P(correct)``; ``mae``: predicted absolute errors) over
    the last ``window`` predictions worse than over the reference? The reference is the
    estimator's own reference losses (``reference_losses``); with ``ert`` the threshold is
    calibrated (bootstrapping those losses) to ``ert`` predictions between false alarms on
    a stationary stream. ``baseline`` and ``current`` are in the metric's units. Feed the
    losses :meth:`ClassificationEstimate.update_many` returns with :meth:`update_losses`.
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

    def update_losses(self, losses) -> None:
        """Feed per-prediction expected losses (non-negative numbers)."""
        losses = np.asarray(losses, dtype=np.float64)
        if losses.size:
            self.update_many(np.zeros(losses.size), losses)

    def _value(self, summary) -> float | None:
        value = super()._value(summary)
        return None if value is None else (1.0 - value if self.estimated_metric == "accuracy" else value)
