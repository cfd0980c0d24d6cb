"""River Hoeffding trees compiled to arrays (detectors/compiled_tree.py): a trained tree
predicts River's numbers, bit for bit, missing values included, whatever the batch; models
it does not know are left to River."""

from __future__ import annotations

import numpy as np
import pytest
from river import linear_model, tree

from detectors.compiled_tree import from_river

PREDICTION = "<prediction>"


def _river(**kw):
    return tree.HoeffdingTreeRegressor(**{"grace_period": 50, "delta": 0.1, "leaf_prediction": "mean", **kw})


def _trained(seed: int = 1, n: int = 6000):
    """A tree on three features and the prediction, one feature often missing while it learns."""
    rng = np.random.default_rng(seed)
    model = _river()
    for a, b, c, p in rng.normal(size=(n, 4)):
        x = {"a": a, "b": b, PREDICTION: p}
        if rng.random() > 0.3:
            x["c"] = c
        model.learn_one(x, abs(a) + (c > 0.5) + 0.5 * (p > 1) + rng.normal(0, 0.2))
    return model


def _river_predictions(model, compiled, rows):
    """River's predict_one of rows given as the compiled columns (NaN: the feature left out,
    except the prediction, which River always gets)."""
    out = []
    for row in rows:
        x = {n: v for n, v in zip(compiled.names, row.tolist()) if v == v or n == PREDICTION}
        out.append(model.predict_one(x))
    return np.array(out)


def test_a_trained_tree_predicts_rivers_numbers_missing_values_included():
    model = _trained()
    compiled = from_river(model, PREDICTION)
    assert compiled.names[-1] == PREDICTION and set(compiled.names) <= {"a", "b", "c", PREDICTION}
    assert compiled.n_leaves == model.n_leaves > 10 and compiled.depth == model.height - 1
    rng = np.random.default_rng(2)
    rows = rng.normal(0, 1.5, (3000, len(compiled.names)))
    rows[rng.random(rows.shape) < 0.15] = np.nan  # every column, the prediction's too (NaN goes right)
    assert np.array_equal(compiled.predict(rows), _river_predictions(model, compiled, rows))


def test_a_row_is_predicted_the_same_in_any_batch():
    compiled = from_river(_trained(seed=3), PREDICTION)
    rng = np.random.default_rng(4)
    rows = rng.normal(size=(1000, len(compiled.names)))
    rows[::7, 0] = np.nan
    whole = compiled.predict(rows)
    assert np.array_equal(whole, np.concatenate([compiled.predict(rows[i:i + 13]) for i in range(0, 1000, 13)]))
    assert np.array_equal(whole, np.array([compiled.predict(row)[0] for row in rows]))
    assert compiled.predict(rows[:0]).shape == (0,)


def test_a_tree_that_never_split_is_its_leaf():
    model = _river()
    for k in range(20):
        model.learn_one({"a": float(k), PREDICTION: 1.0}, float(k % 3))
    compiled = from_river(model, PREDICTION)
    assert compiled.names == (PREDICTION,) and compiled.depth == 0
    assert compiled.predict(np.array([[0.5], [np.nan]])).tolist() == [model.predict_one({PREDICTION: 0.5})] * 2


@pytest.mark.parametrize("model", [
    tree.HoeffdingTreeRegressor(leaf_prediction="model"),
    tree.HoeffdingTreeRegressor(leaf_prediction="adaptive"),
    tree.HoeffdingAdaptiveTreeRegressor(leaf_prediction="mean", seed=1),
    linear_model.LinearRegression(),
], ids=["model leaves", "adaptive leaves", "adaptive tree", "linear model"])
def test_other_models_are_left_to_river(model):
    for k in range(300):
        model.learn_one({"a": float(k % 17), PREDICTION: 1.0}, float(k % 17 > 8))
    assert from_river(model, PREDICTION) is None


def test_an_untrained_tree_or_a_nominal_split_is_left_to_river():
    assert from_river(_river(), PREDICTION) is None
    model = _river(grace_period=20)
    rng = np.random.default_rng(5)
    for _ in range(2000):
        colour = str(rng.choice(["red", "blue"]))
        model.learn_one({"colour": colour, PREDICTION: 0.0}, (colour == "red") + rng.normal(0, 0.1))
    assert model.n_leaves > 1  # split on the nominal feature
    assert from_river(model, PREDICTION) is None
