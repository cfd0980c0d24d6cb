"""Streams for the estimated-performance tests and bench (tests/test_estimation*.py,
bench/label_free.py): a fixed model scoring inputs that move, with labels drawn from a rule
that stays (covariate shift) or changes (concept drift).

Each function returns numpy arrays for ``n`` events, the change at event ``change`` (None:
stationary). The models are fixed functions of the inputs, as a deployed model is.
"""

from __future__ import annotations

import numpy as np


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def binary(n: int, change: int | None = None, kind: str = "covariate", seed: int = 0):
    """Two features; the truth ``P(y=1 | x) = sigmoid(3 x0 + x1)``; the model's score
    ``sigmoid(2 x0 + 0.8 x1 + 0.2)`` (ranked right, miscalibrated: isotonic calibration has
    work to do), prediction ``score > 0.5``. Before ``change`` x0 ~ N(0, 1.6); after it,
    ``covariate``: x0 ~ N(0, 0.5), inputs near the boundary, where the model is less sure
    and less often right (accuracy ~0.87 -> ~0.70); ``concept``: the same inputs, the
    labelling rule flipped for x1 > 0.5 (accuracy drops; the scores do not move).
    Returns (x (n, 2), score, y_pred, y_true)."""
    rng = np.random.default_rng(seed)
    after = np.zeros(n, dtype=bool) if change is None else np.arange(n) >= change
    x0 = np.where(after & (kind == "covariate"), rng.normal(0, 0.5, n), rng.normal(0, 1.6, n))
    x1 = rng.normal(0, 1, n)
    truth = _sigmoid(3 * x0 + x1)
    y_true = (rng.uniform(size=n) < truth).astype(int)
    if kind == "concept":
        flip = after & (x1 > 0.5)
        y_true = np.where(flip, 1 - y_true, y_true)
    score = _sigmoid(2 * x0 + 0.8 * x1 + 0.2)
    return np.column_stack([x0, x1]), score, (score > 0.5).astype(int), y_true


def multiclass(n: int, change: int | None = None, seed: int = 0):
    """Three classes; the truth a softmax of ``(2.5 x0, 0, -2.5 x0) + noise terms``, the
    model's scores a sharper softmax of the same logits (overconfident); x0 ~ N(0, 1.5)
    before ``change`` and N(0, 0.4) after (covariate shift to the uncertain middle).
    Returns (x0, scores as dicts "0"/"1"/"2" -> probability, y_pred, y_true)."""
    rng = np.random.default_rng(seed)
    after = np.zeros(n, dtype=bool) if change is None else np.arange(n) >= change
    x0 = np.where(after, rng.normal(0, 0.4, n), rng.normal(0, 1.5, n))
    logits = np.column_stack([2.5 * x0, np.zeros(n), -2.5 * x0])
    truth = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    y_true = np.array([rng.choice(3, p=p) for p in truth])
    sharp = np.exp(1.5 * logits)
    model = sharp / sharp.sum(axis=1, keepdims=True)
    y_pred = model.argmax(axis=1)
    scores = [{"0": float(a), "1": float(b), "2": float(c)} for a, b, c in model]
    return x0, scores, y_pred, y_true


def regression(n: int, change: int | None = None, kind: str = "covariate", seed: int = 0):
    """Two features; the truth ``y = x0 + 0.5 x1 + noise`` whose spread grows with x0
    (``0.2 + 0.8 sigmoid(3 (x0 - 1))``), the model's prediction ``x0 + 0.5 x1`` (right on
    average, errs more for large x0). Before ``change`` x0 ~ N(0, 1); after it,
    ``covariate``: x0 ~ N(1, 1) (MAE ~0.29 -> ~0.47); ``concept``: the same inputs, the
    truth shifted by +0.6 (MAE rises; inputs and predictions do not move).
    Returns (x (n, 2), y_pred, y_true)."""
    rng = np.random.default_rng(seed)
    after = np.zeros(n, dtype=bool) if change is None else np.arange(n) >= change
    x0 = np.where(after & (kind == "covariate"), rng.normal(1.0, 1, n), rng.normal(0, 1, n))
    x1 = rng.normal(0, 1, n)
    y_pred = x0 + 0.5 * x1
    y_true = y_pred + rng.normal(0, 1, n) * (0.2 + 0.8 * _sigmoid(3 * (x0 - 1)))
    if kind == "concept":
        y_true = y_true + 0.6 * after
    return np.column_stack([x0, x1]), y_pred, y_true


def features(x: np.ndarray) -> list[dict]:
    """Rows of ``x`` as feature mappings ``{"x0": ..., "x1": ...}``."""
    return [{f"x{k}": float(v) for k, v in enumerate(row)} for row in np.atleast_2d(x.T).T]
