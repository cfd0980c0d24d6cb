"""River estimators built from configuration, by allow-listed class names only.

A spec is one step, ``{ClassName: {param: value, ...}}`` (or the bare string
``ClassName`` for no parameters), or a list of steps: a pipeline, composed with River's
``|``. A parameter whose value is itself a one-key mapping naming an allow-listed class is
built too, where River expects an object (``optimizer: {SGD: {lr: 0.05}}``,
``drift_detector: {ADWIN: {delta: 0.001}}``, ``leaf_model: {LinearRegression: {}}``).
``{Union: [spec, spec, ...]}`` joins transformers side by side (River's ``+``).

Names are looked up in :data:`ALLOWED`, an explicit dict: nothing is imported or evaluated
from configuration. An unknown class, an unknown parameter, a value of the wrong kind or
outside the range River documents for it (:mod:`learners.ranges`: River's constructors
check few, and a learner built with ``delta: 2`` never learned), or a constructor that
refuses its arguments raises ``ValueError`` naming the configuration key.

Features arrive as dicts of numbers, strings, booleans and None; pass them through
:func:`clean_features`. What accepts what (River 0.26):

- string (categorical) features: tree models (``HoeffdingTree*Classifier``,
  ``ARFClassifier``) split on them natively; regression trees only with
  ``leaf_prediction: mean`` (their default leaf model is linear). Linear models, scalers and
  ``GaussianNB`` take numbers only: select by type and one-hot encode the strings, e.g.
  ``[{Union: [[Numeric, StandardScaler], [Categorical, OneHotEncoder]]}, LogisticRegression]``
  (``OneHotEncoder`` alone would one-hot the numbers too).

>>> model = build([{"StandardScaler": {}},
...                {"LogisticRegression": {"optimizer": {"SGD": {"lr": 0.05}}}}])
>>> print(model)
StandardScaler | LogisticRegression
>>> task_of(model)
'classification'
>>> build({"LogisticRegresion": {}}, key="models.fraud.learners[0].model")
Traceback (most recent call last):
...
ValueError: models.fraud.learners[0].model: unknown class 'LogisticRegresion'; allowed: ...
"""

from __future__ import annotations

import inspect
import math
import numbers
from collections.abc import Mapping

from . import ranges
from river import base, compose, drift, forest, linear_model, naive_bayes, optim, preprocessing, tree


def _numeric():
    """Keep only the numeric features (booleans count, as 0/1)."""
    return compose.SelectType(numbers.Number)


def _categorical():
    """Keep only the string (categorical) features."""
    return compose.SelectType(str)


def _discard(features: list):
    """Drop the named features (River's ``Select`` would fail on a missing one)."""
    return compose.Discard(*features)


ALLOWED: dict[str, object] = {
    # feature selection and preprocessing
    "Numeric": _numeric, "Categorical": _categorical, "Discard": _discard,
    "StandardScaler": preprocessing.StandardScaler, "MinMaxScaler": preprocessing.MinMaxScaler,
    "OneHotEncoder": preprocessing.OneHotEncoder,
    # linear models
    "LogisticRegression": linear_model.LogisticRegression, "Perceptron": linear_model.Perceptron,
    "PAClassifier": linear_model.PAClassifier, "SoftmaxRegression": linear_model.SoftmaxRegression,
    "LinearRegression": linear_model.LinearRegression, "PARegressor": linear_model.PARegressor,
    # trees and forests
    "HoeffdingTreeClassifier": tree.HoeffdingTreeClassifier,
    "HoeffdingAdaptiveTreeClassifier": tree.HoeffdingAdaptiveTreeClassifier,
    "HoeffdingTreeRegressor": tree.HoeffdingTreeRegressor,
    "HoeffdingAdaptiveTreeRegressor": tree.HoeffdingAdaptiveTreeRegressor,
    "ARFClassifier": forest.ARFClassifier, "ARFRegressor": forest.ARFRegressor,
    "GaussianNB": naive_bayes.GaussianNB,
    # wrappers, and objects given as parameters
    "DriftRetrainingClassifier": drift.DriftRetrainingClassifier,
    "ADWIN": drift.ADWIN, "PageHinkley": drift.PageHinkley,
    "SGD": optim.SGD, "Adam": optim.Adam, "AdaGrad": optim.AdaGrad, "RMSProp": optim.RMSProp,
    "Log": optim.losses.Log, "Hinge": optim.losses.Hinge, "Squared": optim.losses.Squared,
    "Absolute": optim.losses.Absolute, "Huber": optim.losses.Huber,
}

_SIMPLE = {"int": (int,), "float": (int, float), "str": (str,), "bool": (bool,),
           "list": (list,), "dict": (dict,), "None": (type(None),)}


def build(spec, key: str = "model"):
    """A fresh River estimator (or pipeline) from ``spec``; ``key`` names it in errors."""
    if isinstance(spec, list):
        if not spec:
            raise ValueError(f"{key}: an empty pipeline")
        steps = [build(step, f"{key}[{i}]") for i, step in enumerate(spec)]
        model = steps[0]
        for step in steps[1:]:
            model = model | step
        return model
    name, params = _one_step(spec, key)
    if name == "Union":
        if not isinstance(params, list) or len(params) < 2:
            raise ValueError(f"{key}.Union: expected a list of at least two specs")
        return compose.TransformerUnion(*(build(s, f"{key}.Union[{i}]") for i, s in enumerate(params)))
    factory = ALLOWED.get(name)
    if factory is None:
        raise ValueError(f"{key}: unknown class {name!r}; allowed: {', '.join(sorted(ALLOWED))}")
    if not isinstance(params, Mapping):
        raise ValueError(f"{key}.{name}: parameters must be a mapping, got {type(params).__name__}")
    signature = inspect.signature(factory)
    params = ranges.read_flags(name, params, [q for q, p in signature.parameters.items() if isinstance(p.default, bool)])
    kwargs = {}
    for param, value in params.items():
        where = f"{key}.{name}.{param}"
        p = signature.parameters.get(param)
        if p is None or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            accepted = [q for q in signature.parameters if q not in ("args", "kwargs")]
            raise ValueError(f"{where}: {name} has no parameter {param!r}; accepted: {', '.join(accepted) or 'none'}")
        # Where learners.ranges has the parameter's rule, it says the types too (River's
        # annotations can be narrower than its docs: ARF's max_features takes a fraction).
        kwargs[param] = _value(value, p, where, typed=param not in ranges.RANGES.get(name, {}))
    ranges.check(name, params, f"{key}.{name}")
    # DriftRetrainingClassifier reads its detector's warning zone on every learn_one: with
    # a detector that has none (ADWIN, PageHinkley: all that ALLOWED offers) it built fine
    # and then raised AttributeError on every event, a learner that never learned.
    detector = kwargs.get("drift_detector")
    if name == "DriftRetrainingClassifier" and detector is not None and not isinstance(
            detector, (base.DriftAndWarningDetector, base.BinaryDriftAndWarningDetector)):
        raise ValueError(f"{key}.{name}.drift_detector: needs a detector with a warning zone (such as "
                         f"River's default, DDM); {type(detector).__name__} has none: leave drift_detector out")
    try:
        return factory(**kwargs)
    except (TypeError, ValueError, AttributeError) as e:
        raise ValueError(f"{key}.{name}: cannot build with these parameters: {e}") from None


def _one_step(spec, key):
    if isinstance(spec, str):
        return spec, {}
    if not isinstance(spec, Mapping) or len(spec) != 1:
        raise ValueError(f"{key}: expected {{ClassName: {{params}}}}, a class name or a list of those, got {spec!r}")
    ((name, params),) = spec.items()
    if not isinstance(name, str):
        raise ValueError(f"{key}: class name must be a string, got {name!r}")
    return name, ({} if params is None else params)


def _is_spec(value) -> bool:
    """A one-key mapping naming a class: an allow-listed one, or one that reads as a class
    name (``{Foo: {lr: 0.1}}``), which :func:`build` then refuses by name (passed on as a
    plain dict, it failed on every ``learn_one`` of a learner that never learned)."""
    if not (isinstance(value, Mapping) and len(value) == 1):
        return False
    ((name, params),) = value.items()
    return name in ALLOWED or (isinstance(name, str) and name[:1].isupper() and name.isidentifier()
                               and (params is None or isinstance(params, Mapping)))


def _value(value, p: inspect.Parameter, where: str, typed: bool = True):
    if _is_spec(value):
        return build(value, where)
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{where}: {value!r} is not a finite number")
    allowed = _allowed_types(p) if typed else None
    if allowed is not None and not _fits(value, allowed):
        want = " or ".join(sorted({t.__name__ for t in allowed}))
        raise ValueError(f"{where}: expected {want}, got {type(value).__name__} {value!r}")
    return value


def _allowed_types(p: inspect.Parameter):
    """The simple types a parameter takes, when its annotation or default says so, else None."""
    ann = p.annotation
    if isinstance(ann, str):
        names = [part.strip() for part in ann.split("|")]
        if all(n in _SIMPLE for n in names):
            return tuple(t for n in names for t in _SIMPLE[n])
        return None
    if ann is not p.empty:
        return None
    if isinstance(p.default, bool):
        return (bool,)
    if isinstance(p.default, (int, float)):
        return (int, float)
    return None


def _fits(value, allowed) -> bool:
    if isinstance(value, bool):  # bool is an int to Python, not to a configuration
        return bool in allowed
    return isinstance(value, allowed)


def task_of(estimator) -> str:
    """``"classification"`` or ``"regression"``: what the estimator (or a pipeline's last
    step) predicts; ValueError for a transformer-only spec."""
    final = estimator
    if isinstance(estimator, compose.Pipeline):
        final = list(estimator.steps.values())[-1]
    if isinstance(final, base.Classifier):
        return "classification"
    if isinstance(final, base.Regressor):
        return "regression"
    raise ValueError(f"{type(final).__name__} predicts nothing: end the pipeline with a classifier or regressor")


def clean_features(x: Mapping) -> dict:
    """Features River can take: None and NaN (missing) dropped, booleans as 0/1, numbers and
    strings kept. Anything else (lists, dicts, infinities) raises ValueError naming the feature.

    >>> clean_features({"amount": 12.5, "country": "DE", "age": None, "vip": True})
    {'amount': 12.5, 'country': 'DE', 'vip': 1}
    """
    out = {}
    for name, v in x.items():
        if v is None:
            continue
        if isinstance(v, bool):
            out[name] = int(v)
        elif isinstance(v, str):
            out[name] = v
        elif isinstance(v, numbers.Real):
            v = float(v) if not isinstance(v, int) else v
            if isinstance(v, float) and math.isnan(v):
                continue
            if isinstance(v, float) and math.isinf(v):
                raise ValueError(f"feature {name!r}: infinite value")
            out[name] = v
        else:
            raise ValueError(f"feature {name!r}: expected a number, string, boolean or null, got {type(v).__name__}")
    return out
