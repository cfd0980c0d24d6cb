"""learners.spec: River estimators from configuration, by allow-list only."""

from __future__ import annotations

import math
import pickle

import pytest
from river import compose, drift, forest, linear_model, optim, preprocessing, tree

from learners.spec import ALLOWED, build, clean_features, task_of

MIXED = [{"amount": float(i % 17), "country": ["DE", "FR", "US"][i % 3], "vip": i % 5 == 0, "age": None}
         for i in range(300)]


def test_pipeline_with_nested_optimizer():
    model = build([{"StandardScaler": {}}, {"LogisticRegression": {"optimizer": {"SGD": {"lr": 0.05}}, "l2": 0.001}}])
    assert isinstance(model, compose.Pipeline)
    scaler, lr = model.steps.values()
    assert isinstance(scaler, preprocessing.StandardScaler)
    assert isinstance(lr, linear_model.LogisticRegression)
    assert isinstance(lr.optimizer, optim.SGD) and lr.optimizer.learning_rate == 0.05
    assert lr.l2 == 0.001
    assert task_of(model) == "classification"


def test_shorthands_and_nested_detector():
    assert isinstance(build("GaussianNB"), type(build({"GaussianNB": None})))
    arf = build({"ARFClassifier": {"n_models": 3, "seed": 1, "drift_detector": {"ADWIN": {"delta": 0.001}}}})
    assert isinstance(arf, forest.ARFClassifier) and arf.n_models == 3
    assert isinstance(arf.drift_detector, drift.ADWIN) and arf.drift_detector.delta == 0.001
    wrapped = build({"DriftRetrainingClassifier": {"model": {"HoeffdingTreeClassifier": {"grace_period": 50}}}})
    assert isinstance(wrapped.model, tree.HoeffdingTreeClassifier) and wrapped.model.grace_period == 50
    htr = build({"HoeffdingTreeRegressor": {"leaf_model": {"LinearRegression": {}}}})
    assert task_of(htr) == "regression" and isinstance(htr.leaf_model, linear_model.LinearRegression)


@pytest.mark.parametrize("spec", [
    ["HoeffdingTreeClassifier"],
    [{"HoeffdingAdaptiveTreeClassifier": {"seed": 1}}],
    [{"ARFClassifier": {"n_models": 2, "seed": 1}}],
    [{"Union": [["Numeric", "StandardScaler"], ["Categorical", "OneHotEncoder"]]}, "LogisticRegression"],
    [{"Union": [["Numeric", "MinMaxScaler"], ["Categorical", "OneHotEncoder"]]}, "GaussianNB"],
], ids=["ht", "hat", "arf", "union-lr", "union-nb"])
def test_documented_specs_take_mixed_features(spec):
    model = build(spec)
    for i, x in enumerate(MIXED):
        model.predict_one(clean_features(x))
        model.learn_one(clean_features(x), x["country"] == "DE" and x["amount"] > 3)
    assert model.predict_one(clean_features(MIXED[0])) in (True, False)
    pickle.loads(pickle.dumps(model))


def test_numbers_only_models_refuse_strings_as_documented():
    model = build(["StandardScaler", "LogisticRegression"])
    with pytest.raises(TypeError):
        model.learn_one(clean_features(MIXED[0]), True)


@pytest.mark.parametrize("name", sorted(set(ALLOWED) - {"Discard", "DriftRetrainingClassifier"}))
def test_every_allowed_class_builds_bare_and_pickles(name):
    pickle.loads(pickle.dumps(build({name: {}})))


@pytest.mark.parametrize("name", ["os.system", "__import__", "eval", "builtins.open", "exec",
                                  "river.linear_model.LogisticRegression", "LogisticRegression()",
                                  "logisticregression", "pickle.loads", "__builtins__"])
def test_names_outside_the_allow_list_are_refused(name, monkeypatch):
    import builtins
    imported = []
    real_import = builtins.__import__
    monkeypatch.setattr(builtins, "__import__", lambda n, *a, **k: imported.append(n) or real_import(n, *a, **k))
    with pytest.raises(ValueError, match=r"^models\.fraud\.learners\.x\[1\]: unknown class"):
        build(["StandardScaler", {name: {}}], key="models.fraud.learners.x")
    assert imported == []  # nothing was imported on the configuration's say-so


def test_parameter_strings_are_data_not_code():
    discard = build({"Discard": {"features": ["__import__('os').system('false')", "id"]}})
    assert discard.transform_one({"amount": 1.0, "id": 2}) == {"amount": 1.0}


@pytest.mark.parametrize("spec, message", [
    ({"LogisticRegression": {"lr": 0.1}},
     r"^k\.LogisticRegression\.lr: LogisticRegression has no parameter 'lr'; accepted: optimizer, loss"),
    ({"LogisticRegression": {"optimizer": {"SGD": {"learning_rate": 1}}}},
     r"^k\.LogisticRegression\.optimizer\.SGD\.learning_rate: SGD has no parameter"),
    ({"HoeffdingTreeClassifier": {"grace_period": "fast"}},
     r"^k\.HoeffdingTreeClassifier\.grace_period: River's HoeffdingTreeClassifier takes a whole number, at least 1, got 'fast'$"),
    ({"HoeffdingTreeClassifier": {"grace_period": True}}, r"grace_period: River's HoeffdingTreeClassifier takes a whole number, at least 1, got True$"),
    ({"LogisticRegression": {"l2": "much"}}, r"l2: River's LogisticRegression takes a number >= 0, got 'much'$"),
    ({"LogisticRegression": {"l2": math.inf}}, r"l2: inf is not a finite number"),
    ({"GaussianNB": {"x": 1}}, r"GaussianNB has no parameter 'x'; accepted: none"),
    ({"StandardScaler": [1, 2]}, r"^k\.StandardScaler: parameters must be a mapping"),
    ({"A": {}, "B": {}}, r"^k: expected \{ClassName: \{params\}\}"),
    ([], r"^k: an empty pipeline"),
    (42, r"^k: expected"),
    ({"Union": [["Numeric"]]}, r"^k\.Union: expected a list of at least two specs"),
    ({"Discard": {}}, r"^k\.Discard: cannot build with these parameters: .*features"),
    # A nested class outside the allow-list was passed on as a plain dict: the learner
    # built, then failed on every learn_one ('dict' object has no attribute 'look_ahead').
    ({"LogisticRegression": {"optimizer": {"Foo": {"lr": 0.1}}}},
     r"^k\.LogisticRegression\.optimizer: unknown class 'Foo'; allowed: "),
    ({"DriftRetrainingClassifier": {"model": {"HoeffdingTreeClassifier": {}}, "drift_detector": {"KSWIN": {}}}},
     r"^k\.DriftRetrainingClassifier\.drift_detector: unknown class 'KSWIN'"),
])
def test_bad_specs_fail_naming_the_key(spec, message):
    with pytest.raises(ValueError, match=message):
        build(spec, key="k")


def test_task_of():
    assert task_of(build("HoeffdingTreeRegressor")) == "regression"
    assert task_of(build(["MinMaxScaler", "PARegressor"])) == "regression"
    assert task_of(build({"ARFClassifier": {"seed": 1}})) == "classification"
    with pytest.raises(ValueError, match="predicts nothing"):
        task_of(build(["StandardScaler"]))


def test_clean_features():
    assert clean_features({"a": 1, "b": 2.5, "c": "x", "d": True, "e": False, "f": None, "g": math.nan}) == \
        {"a": 1, "b": 2.5, "c": "x", "d": 1, "e": 0}
    with pytest.raises(ValueError, match="feature 'z': infinite"):
        clean_features({"z": -math.inf})
    with pytest.raises(ValueError, match="feature 'l': expected a number, string, boolean or null, got list"):
        clean_features({"l": [1]})


# Each built and then misbehaved without a word (River checks few of its parameters).
@pytest.mark.parametrize("spec, where, words", [
    ({"HoeffdingTreeClassifier": {"grace_period": -10}}, "HoeffdingTreeClassifier.grace_period",
     "River's HoeffdingTreeClassifier takes a whole number, at least 1, got -10"),
    ({"HoeffdingTreeClassifier": {"delta": 2.0}}, "HoeffdingTreeClassifier.delta",
     "a number > 0 and < 1, got 2.0"),  # "math domain error" on every learn_one: never learned
    ({"HoeffdingTreeClassifier": {"split_criterion": "gin"}}, "HoeffdingTreeClassifier.split_criterion",
     "one of gini, info_gain, hellinger, got 'gin'"),  # printed a line and used info_gain
    ({"HoeffdingTreeRegressor": {"leaf_prediction": "nba"}}, "HoeffdingTreeRegressor.leaf_prediction",
     "one of mean, model, adaptive, got 'nba'"),
    ({"ARFClassifier": {"n_models": 0}}, "ARFClassifier.n_models", "from 1 to 1,000, got 0"),  # predicted nothing
    ({"ARFRegressor": {"n_models": 10**8}}, "ARFRegressor.n_models", "from 1 to 1,000, got 100000000"),  # never built
    ({"ARFClassifier": {"max_features": 1.5}}, "ARFClassifier.max_features",
     "a whole number, at least 1 or a number > 0 and <= 1 or one of sqrt, log2 or null, got 1.5"),
    ({"LogisticRegression": {"optimizer": {"SGD": {"lr": -0.1}}}}, "LogisticRegression.optimizer.SGD.lr",
     "a number > 0, got -0.1"),  # climbed the loss
    ({"LogisticRegression": {"l2": -1}}, "LogisticRegression.l2", "a number >= 0, got -1"),
    ({"LogisticRegression": {"optimizer": {"Adam": {"beta_1": 2}}}}, "LogisticRegression.optimizer.Adam.beta_1", "a number >= 0 and < 1, got 2"),
    ({"PAClassifier": {"mode": 7}}, "PAClassifier.mode", "one of 0, 1, 2, got 7"),  # a KeyError from River
    ({"HoeffdingAdaptiveTreeClassifier": {"drift_detector": {"ADWIN": {"delta": -1}}}},
     "HoeffdingAdaptiveTreeClassifier.drift_detector.ADWIN.delta", "a number > 0 and < 1, got -1"),
    ([{"StandardScaler": {"window_size": 0}}, "LogisticRegression"], "[0].StandardScaler.window_size",
     "a whole number, at least 1 or null, got 0"),
])
def test_parameters_outside_rivers_documented_range_fail_naming_the_key(spec, where, words):
    with pytest.raises(ValueError) as e:
        build(spec, key="k")
    assert str(e.value).startswith(f"k{'' if where.startswith('[') else '.'}{where}: ")
    assert str(e.value).endswith(words)


def test_the_ranges_name_real_parameters_and_take_rivers_defaults():
    """The table keeps in step with River: every listed parameter exists, and River's
    own default value is within its range."""
    import inspect

    from detectors.river import _CLASSES
    from learners.ranges import RANGES

    classes = {**ALLOWED, **{name: river_class for name, (river_class, _, _) in _CLASSES.items()}}
    for kind, rules in RANGES.items():
        parameters = inspect.signature(classes[kind]).parameters
        for name, rule in rules.items():
            assert name in parameters, (kind, name)
            assert rule.ok(parameters[name].default), (kind, name, parameters[name].default)


def test_good_parameters_build():
    build({"ARFClassifier": {"n_models": 2, "max_features": 0.5, "seed": 1, "lambda_value": 3}})
    build({"ARFRegressor": {"n_models": 2, "max_features": None, "aggregation_method": "mean", "seed": 1}})
    build({"HoeffdingTreeClassifier": {"max_depth": None, "tau": 0, "split_criterion": "gini"}})
    build({"LinearRegression": {"optimizer": {"Adam": {"lr": 0.01, "beta_1": 0}}, "intercept_lr": 0}})
