"""Direct loss estimation (DLE): a regressor's MAE and RMSE over its recent predictions,
before the labels come.

An online River model of the absolute error, and one of the squared error, as a function
of the features and the prediction, is trained on a labelled reference (River's Hoeffding
tree regressor by default, predicted over arrays once trained:
:mod:`detectors.compiled_tree`); the estimated MAE of a window is the mean of the predicted
absolute errors, the RMSE the square root of the mean predicted squared error.
:mod:`detectors.estimation` has what the estimators share (the window of recent estimates,
the decay test on them) and the assumption they rest on.

Sources: NannyML's documentation of DLE (the reference implementation of the idea); E.
Ikonomovska et al., "Learning model trees from evolving data streams", 2011 (River's
Hoeffding tree regressor).
"""

from __future__ import annotations

import math

import numpy as np

from .compiled_tree import from_river
from .estimation import LEARN_STEPS, PREDICTION, REGRESSION_METRICS, Ring


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
        self._recent = Ring(self.window, 2)  # predicted absolute, squared error
        self._labelled = Ring(self.window, 4)  # the same, realised absolute, squared error
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
        predicted absolute errors, the stream :class:`~detectors.estimation.EstimateDecay` watches."""
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
