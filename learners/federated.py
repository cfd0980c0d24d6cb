"""Federated averaging of linear River learners: the pure part (no Kafka, no clock).

Several deployments train the same learner on their own data, which never leaves them;
what they exchange is the change of the learner's parameters. A round goes:

1. every participant starts from the same global parameters ``base``;
2. it learns locally, then sends ``delta = local - base`` and ``n``, the number of labelled
   events behind it (:func:`update_of`);
3. the aggregator refuses implausible deltas (norm above ``max_norm``), clips the others to
   ``clip_norm``, and adds their average weighted by ``n`` to ``base`` (:func:`aggregate`):
   FedAvg (McMahan et al., "Communication-Efficient Learning of Deep Networks from
   Decentralized Data", AISTATS 2017, algorithm 1, server learning rate 1);
4. every participant merges the new global parameters into its learner, keeping what it
   learned since it sent its update (:func:`merge`).

Non-IID participants (each sees a different part of the input space) pull their local
models apart between rounds. FedProx (Li et al., "Federated Optimization in Heterogeneous
Networks", MLSys 2020) adds ``mu / 2 * ||w - w_global||^2`` to each local objective; its
gradient step is applied here between events as a decay of the local drift,
:func:`proximal_pull` (``mu = 0``: plain FedAvg).

Clipping an update's L2 norm (and refusing one far above any plausible norm) bounds what
a single poisoned or broken participant can do to the global model in one round: the
standard defence of norm-bounded aggregation (Sun et al., "Can You Really Backdoor
Federated Learning?", 2019).

Parameters are ``{"weights": {feature: float}, "intercept": float}``. Only learners whose
parameters form such a vector can be averaged (:func:`federable`): River's
``LogisticRegression``, ``Perceptron`` and ``LinearRegression``, alone or after
stateless feature selection (``Numeric``, ``Discard``). Everything else is refused with
the reason (:class:`NotFederable`): trees and forests (a structure of splits, not a
vector: the average of two trees is not a tree), naive Bayes, multiclass and
passive-aggressive models, and the stateful preprocessors (see :func:`federable`).

>>> from river import linear_model
>>> base = params_of(linear_model.LogisticRegression())
>>> base
{'weights': {}, 'intercept': 0.0}
>>> a = {"weights": {"x": 1.0}, "intercept": 0.5}     # participant A after its round
>>> b = {"weights": {"x": 4.0, "z": 2.0}, "intercept": 0.0}
>>> new = aggregate(base, [(100, delta(a, base)), (300, delta(b, base))])
>>> new                                   # (100 * A + 300 * B) / 400
{'weights': {'x': 3.25, 'z': 1.5}, 'intercept': 0.125}
>>> poisoned = {"weights": {"x": 1e9}, "intercept": 0.0}
>>> aggregate(base, [(100, delta(a, base)), (1, poisoned)], max_norm=100)   # refused: A alone
{'weights': {'x': 1.0}, 'intercept': 0.5}
>>> aggregate(base, [(1, poisoned)], max_norm=100)
Traceback (most recent call last):
...
learners.federated.NoUpdates: every update was refused: norm (1)
"""

from __future__ import annotations

import math
from collections import Counter

from river import compose, linear_model

#: Linear models whose parameters are one weight per feature and an intercept.
_LINEAR = (linear_model.LogisticRegression, linear_model.LinearRegression)  # Perceptron is a LogisticRegression
#: Steps that may come before the model: they hold no state learnt from the data.
_STATELESS = (compose.SelectType, compose.Discard, compose.Select)

_REASONS = {
    "StandardScaler": "it keeps running means and variances of its own participant's inputs: with non-IID "
                      "participants each scales differently, so averaged weights would meet inputs scaled "
                      "another way (and sharing those statistics would reveal the inputs' distribution); "
                      "drop it and give the features fixed scales upstream",
    "MinMaxScaler": "it keeps the minimum and maximum of its own participant's inputs (see StandardScaler)",
    "OneHotEncoder": "its parameter names would carry category values onto the federation topic",
    "TransformerUnion": "a union of transformers may hold per-participant state",
}


class NotFederable(ValueError):
    """The learner's parameters cannot be averaged; the message says why."""


class NoUpdates(ValueError):
    """No update of the round could be used (all refused): the global model stays."""


def federable(estimator) -> str | None:
    """None if ``estimator`` (a River estimator or pipeline) can be federated, else the
    reason it cannot.

    >>> from river import tree, preprocessing
    >>> print(federable(linear_model.LogisticRegression()))
    None
    >>> federable(tree.HoeffdingTreeClassifier())
    'HoeffdingTreeClassifier: a tree is a structure of splits, not a vector of parameters: two trees cannot be averaged'
    >>> federable(preprocessing.StandardScaler() | linear_model.LinearRegression()).split(":")[0]
    'StandardScaler'
    """
    steps = list(estimator.steps.values()) if isinstance(estimator, compose.Pipeline) else [estimator]
    *before, model = steps
    for step in before:
        if not isinstance(step, _STATELESS):
            name = type(step).__name__
            return f"{name}: {_REASONS.get(name, 'a preprocessing step with state learnt from its own participant data')}"
    name = type(model).__name__
    if isinstance(model, _LINEAR):
        return None
    if "Tree" in name or "ARF" in name or "Forest" in name:
        return f"{name}: a tree is a structure of splits, not a vector of parameters: two trees cannot be averaged"
    if name == "SoftmaxRegression":
        return f"{name}: multiclass weights are not supported (LogisticRegression, Perceptron or LinearRegression are)"
    return f"{name}: only LogisticRegression, Perceptron and LinearRegression (after Numeric or Discard) are federated"


def check(estimator) -> None:
    """Raise :class:`NotFederable` with the reason if ``estimator`` cannot be averaged."""
    reason = federable(estimator)
    if reason is not None:
        raise NotFederable(reason)


def _model(estimator):
    check(estimator)
    return list(estimator.steps.values())[-1] if isinstance(estimator, compose.Pipeline) else estimator


def params_of(estimator) -> dict:
    """The parameters of a federable estimator: ``{"weights": {feature: float}, "intercept": float}``."""
    model = _model(estimator)
    return {"weights": {str(k): float(v) for k, v in dict(model.weights).items()}, "intercept": float(model.intercept)}


def set_params(estimator, params: dict) -> None:
    """Replace the estimator's weights and intercept with ``params`` (in place; the
    optimizer's own state, e.g. Adam's moments, is kept)."""
    model = _model(estimator)
    weights = model._weights  # River's VectorDict: cleared and refilled keeps its type
    for k in list(dict(weights)):
        del weights[k]
    for k, v in params["weights"].items():
        weights[k] = float(v)
    model.intercept = float(params["intercept"])


def _combine(a: dict, b: dict, fa: float, fb: float) -> dict:
    keys = a["weights"].keys() | b["weights"].keys()
    return {"weights": {k: fa * a["weights"].get(k, 0.0) + fb * b["weights"].get(k, 0.0) for k in sorted(keys)},
            "intercept": fa * a["intercept"] + fb * b["intercept"]}


def delta(local: dict, base: dict) -> dict:
    """``local - base``, feature by feature (a feature missing on one side counts 0)."""
    return _combine(local, base, 1.0, -1.0)


def add(base: dict, step: dict, scale: float = 1.0) -> dict:
    """``base + scale * step``."""
    return _combine(base, step, 1.0, scale)


def norm(params: dict) -> float:
    """L2 norm of all weights and the intercept together."""
    return math.sqrt(sum(v * v for v in params["weights"].values()) + params["intercept"] ** 2)


def clip(update: dict, max_norm: float) -> dict:
    """``update`` scaled down to L2 norm ``max_norm`` if it is longer (0 or less: unchanged).

    >>> clip({"weights": {"x": 30.0}, "intercept": 40.0}, 5.0)
    {'weights': {'x': 3.0}, 'intercept': 4.0}
    """
    length = norm(update)
    if max_norm <= 0 or length <= max_norm:
        return update
    return _combine(update, update, max_norm / length, 0.0)


def screen(updates: list[tuple[int, dict]], clip_norm: float = 0.0, max_norm: float = 0.0):
    """(kept updates, clipped, Counter of refusal reasons): an update is refused as
    ``norm`` if its norm exceeds ``max_norm`` (> 0), as ``not_finite`` if it holds NaN or
    infinity, as ``no_events`` if ``n < 1``; kept ones are clipped to ``clip_norm`` (> 0)."""
    kept, refused, clipped = [], Counter(), 0
    for n, update in updates:
        length = norm(update)
        if not math.isfinite(length):
            refused["not_finite"] += 1
        elif n < 1:
            refused["no_events"] += 1
        elif max_norm > 0 and length > max_norm:
            refused["norm"] += 1
        else:
            short = clip(update, clip_norm)
            clipped += short is not update
            kept.append((n, short))
    return kept, clipped, refused


def aggregate(base: dict, updates: list[tuple[int, dict]], clip_norm: float = 0.0, max_norm: float = 0.0) -> dict:
    """FedAvg: ``base + sum(n_i * clip(delta_i)) / sum(n_i)`` over the updates that
    :func:`screen` keeps. ``updates``: ``(n labelled events, delta)`` pairs. Raises
    :class:`NoUpdates` (naming the refusal reasons) if none is kept."""
    kept, _, refused = screen(updates, clip_norm, max_norm)
    if not kept:
        reasons = ", ".join(f"{r} ({c})" for r, c in sorted(refused.items())) or "none given"
        raise NoUpdates(f"every update was refused: {reasons}")
    total = sum(n for n, _ in kept)
    out = base
    for n, update in kept:
        out = add(out, update, n / total)
    return out


def proximal_pull(local: dict, anchor: dict, mu: float, lr: float, steps: int) -> dict:
    """FedProx's proximal term applied after ``steps`` local SGD steps of learning rate
    ``lr``: each step's gradient of ``mu / 2 * ||w - anchor||^2`` shrinks the drift from the
    global model ``anchor`` by ``(1 - lr * mu)``; so ``anchor + (local - anchor) * (1 - lr * mu) ** steps``
    (the proximal part of the steps, applied after their data part: operator splitting).

    >>> proximal_pull({"weights": {"x": 2.0}, "intercept": 0.0}, {"weights": {"x": 1.0}, "intercept": 0.0}, mu=10, lr=0.01, steps=1)
    {'weights': {'x': 1.9}, 'intercept': 0.0}
    """
    if mu <= 0 or steps <= 0:
        return local
    keep = max(0.0, 1.0 - lr * mu) ** steps
    return add(anchor, delta(local, anchor), keep)


def learning_rate(estimator, default: float = 0.01) -> float:
    """The learning rate of the estimator's optimizer now (``default`` if it has none)."""
    rate = getattr(getattr(_model(estimator), "optimizer", None), "learning_rate", None)
    return float(rate) if isinstance(rate, (int, float)) and rate > 0 else default


def average(parts: list[tuple[int, dict]]) -> dict:
    """The ``n``-weighted average of parameter sets (e.g. one learner's copies in several
    partitions of one deployment); the plain average if every ``n`` is 0."""
    total = sum(n for n, _ in parts)
    weights = [(n / total if total else 1 / len(parts)) for n, _ in parts]
    out = {"weights": {}, "intercept": 0.0}
    for w, (_, p) in zip(weights, parts):
        out = add(out, p, w)
    return out
