"""The ranges River documents for the parameters of the classes driftd builds from
configuration: learners, optimisers, losses and drift detectors.

River's constructors check few of them. Outside its range a parameter builds and then
misbehaves without a word: a Hoeffding tree with ``delta: 2`` raises on every
``learn_one`` (a learner that never learns), an ``ARFClassifier`` with ``n_models: 0``
predicts nothing, ``SGD`` with ``lr: -0.1`` climbs the loss, ``ADWIN`` with ``delta: -1``
never fires, ``split_criterion: gin`` falls back to the default with a print. So each
parameter listed here is checked before the class is built; a parameter not listed is
River's to check (objects, seeds, feature lists).

Sources: River 0.26's docstrings and the methods' papers (Domingos & Hulten 2000 for the
Hoeffding tree's ``delta`` and ``tau``; Gomes et al. 2017 for ARF's ``lambda_value``;
Kingma & Ba 2015 for Adam's betas; Crammer et al. 2006 for the passive-aggressive ``C``
and modes; Bifet & Gavaldà 2007 for ADWIN; Page 1954 for Page-Hinkley).

>>> check("HoeffdingTreeClassifier", {"grace_period": 50, "delta": 1e-5})
>>> check("HoeffdingTreeClassifier", {"grace_period": -10}, "models.fraud.learners.tree")
Traceback (most recent call last):
...
ValueError: models.fraud.learners.tree.grace_period: River's HoeffdingTreeClassifier takes a whole number, at least 1, got -10
>>> check("ARFClassifier", {"max_features": "sqrt"}), check("ARFClassifier", {"max_features": 0.5})
(None, None)
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Callable, NamedTuple


class Rule(NamedTuple):
    """What a parameter takes: ``ok(value)`` and the words for it."""

    ok: Callable[[object], bool]
    want: str


def _is_real(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def whole(least: int, most: int | None = None) -> Rule:
    """A whole number (not a boolean), at least ``least`` (and at most ``most``)."""
    if most is None:
        return Rule(lambda v: type(v) is int and v >= least, f"a whole number, at least {least}")
    return Rule(lambda v: type(v) is int and least <= v <= most, f"a whole number from {least} to {most:,}")


def real(low: float, high: float | None = None, low_in: bool = True, high_in: bool = True) -> Rule:
    """A finite number above ``low`` (or equal, ``low_in``) and below ``high`` (or equal,
    ``high_in``; None: no upper bound)."""
    def ok(v) -> bool:
        return _is_real(v) and (v >= low if low_in else v > low) and (
            high is None or (v <= high if high_in else v < high))
    want = f"a number {'>=' if low_in else '>'} {low:g}"
    if high is not None:
        want += f" and {'<=' if high_in else '<'} {high:g}"
    return Rule(ok, want)


def choice(*values) -> Rule:
    """One of ``values``."""
    return Rule(lambda v: type(v) in (str, int) and v in values, "one of " + ", ".join(map(str, values)))


def either(*rules: Rule) -> Rule:
    """What any of ``rules`` takes."""
    return Rule(lambda v: any(r.ok(v) for r in rules), " or ".join(r.want for r in rules))


FLAG = Rule(lambda v: isinstance(v, bool), "true or false")
NONE = Rule(lambda v: v is None, "null")
PROBABILITY = real(0.0, 1.0, False, False)
POSITIVE = real(0.0, low_in=False)
NOT_NEGATIVE = real(0.0)

_TREE = {
    "grace_period": whole(1), "max_depth": either(whole(1), NONE), "delta": PROBABILITY, "tau": NOT_NEGATIVE,
    "binary_split": FLAG, "max_size": POSITIVE, "memory_estimate_period": whole(1),
    "stop_mem_management": FLAG, "remove_poor_attrs": FLAG, "merit_preprune": FLAG,
}
_TREE_CLASSIFIER = {
    **_TREE, "split_criterion": choice("gini", "info_gain", "hellinger"), "leaf_prediction": choice("mc", "nb", "nba"),
    "nb_threshold": whole(0), "min_branch_fraction": real(0.0, 0.5, True, False),
    "max_share_to_split": real(0.0, 1.0, False, True),
}
_TREE_REGRESSOR = {
    **_TREE, "leaf_prediction": choice("mean", "model", "adaptive"), "model_selector_decay": real(0.0, 1.0, False, True),
    "min_samples_split": whole(1),
}
_ADAPTIVE = {"bootstrap_sampling": FLAG, "drift_window_threshold": whole(1), "switch_significance": PROBABILITY}
#: Trees of a forest at most: each learns every label, and River builds them all at once
#: (``n_models: 100000000`` never finished building). Not River's bound: driftd's.
MAX_TREES = 1000

_FOREST = {
    "n_models": whole(1, MAX_TREES), "lambda_value": whole(1), "disable_weighted_vote": FLAG,
    "max_features": either(whole(1), real(0.0, 1.0, False, True), choice("sqrt", "log2"), NONE),
}
_LINEAR = {"l2": NOT_NEGATIVE, "l1": NOT_NEGATIVE, "intercept_lr": NOT_NEGATIVE, "clip_gradient": POSITIVE}
_PASSIVE_AGGRESSIVE = {"C": POSITIVE, "mode": choice(0, 1, 2), "learn_intercept": FLAG}
_WINDOW = {"window_size": either(whole(1), NONE)}

#: class name -> parameter -> :class:`Rule`.
RANGES: dict[str, dict[str, Rule]] = {
    "StandardScaler": {**_WINDOW, "with_std": FLAG},
    "MinMaxScaler": _WINDOW,
    "OneHotEncoder": {"drop_zeros": FLAG, "drop_first": FLAG},
    "LogisticRegression": _LINEAR,
    "LinearRegression": _LINEAR,
    "Perceptron": {"l2": NOT_NEGATIVE, "clip_gradient": POSITIVE},
    "SoftmaxRegression": {"l2": NOT_NEGATIVE},
    "PAClassifier": _PASSIVE_AGGRESSIVE,
    "PARegressor": {**_PASSIVE_AGGRESSIVE, "eps": NOT_NEGATIVE},
    "HoeffdingTreeClassifier": _TREE_CLASSIFIER,
    "HoeffdingAdaptiveTreeClassifier": {**_TREE_CLASSIFIER, **_ADAPTIVE},
    "HoeffdingTreeRegressor": _TREE_REGRESSOR,
    "HoeffdingAdaptiveTreeRegressor": {**_TREE_REGRESSOR, **_ADAPTIVE},
    "ARFClassifier": {**_TREE_CLASSIFIER, **_FOREST},
    "ARFRegressor": {**_TREE_REGRESSOR, **_FOREST, "aggregation_method": choice("mean", "median")},
    "DriftRetrainingClassifier": {"train_in_background": FLAG},
    "SGD": {"lr": POSITIVE},
    "Adam": {"lr": POSITIVE, "beta_1": real(0.0, 1.0, True, False), "beta_2": real(0.0, 1.0, True, False), "eps": POSITIVE},
    "AdaGrad": {"lr": POSITIVE, "eps": POSITIVE},
    "RMSProp": {"lr": POSITIVE, "rho": PROBABILITY, "eps": POSITIVE},
    "Log": {"weight_pos": POSITIVE, "weight_neg": POSITIVE},
    "Hinge": {"threshold": NOT_NEGATIVE},
    "Huber": {"epsilon": POSITIVE},
    # drift detectors (on the error stream, or inside a learner)
    "ADWIN": {"delta": PROBABILITY, "clock": whole(1), "max_buckets": whole(1), "min_window_length": whole(1),
              "grace_period": whole(0)},
    "PageHinkley": {"min_instances": whole(1), "delta": NOT_NEGATIVE, "threshold": POSITIVE,
                    "alpha": real(0.0, 1.0, False, True), "mode": choice("up", "down", "both")},
    "KSWIN": {"alpha": PROBABILITY, "window_size": whole(2), "stat_size": whole(1)},
    "DDM": {"warm_start": whole(1), "warning_threshold": POSITIVE, "drift_threshold": POSITIVE},
    "EDDM": {"warm_start": whole(1), "alpha": real(0.0, 1.0, False, True), "beta": real(0.0, 1.0, False, True)},
    "HDDM_A": {"drift_confidence": PROBABILITY, "warning_confidence": PROBABILITY, "two_sided_test": FLAG},
    "HDDM_W": {"drift_confidence": PROBABILITY, "warning_confidence": PROBABILITY,
               "lambda_val": real(0.0, 1.0, False, True), "two_sided_test": FLAG},
}


#: Words for true and false that YAML 1.1 reads as booleans and driftd's configuration,
#: read as YAML 1.2 (daemon.config.loading), keeps as strings: a flag still takes them.
FLAG_WORDS = {"true": True, "yes": True, "on": True, "false": False, "no": False, "off": False}


def read_flags(kind: str, params: Mapping, flags=()) -> dict:
    """``params`` of River class ``kind`` with the value of each flag (a :data:`FLAG` of
    :data:`RANGES`, or one of ``flags``) that is one of :data:`FLAG_WORDS`, any case, as
    its boolean."""
    rules = RANGES.get(kind, {})
    return {name: FLAG_WORDS[value.lower()] if isinstance(value, str) and value.lower() in FLAG_WORDS
            and (rules.get(name) is FLAG or name in flags) else value for name, value in params.items()}


def check(kind: str, params: Mapping, key: str = "") -> None:
    """Each of ``params`` of River class ``kind`` within its documented range
    (:data:`RANGES`); a value that is itself a class spec (a one-key mapping, such as a
    learning-rate scheduler) is left to its own check. Raises ``ValueError``
    ``"<key>.<parameter>: <reason>"`` (the parameter first without ``key``)."""
    found = problem(kind, params)
    if found is not None:
        name, reason = found
        raise ValueError(f"{key + '.' if key else ''}{name}: {reason}")


def problem(kind: str, params: Mapping) -> tuple[str, str] | None:
    """``(parameter, reason)`` of the first of ``params`` out of its range (see
    :func:`check`), or None."""
    rules = RANGES.get(kind, {})
    for name, value in params.items():
        rule = rules.get(name)
        if rule is None or (isinstance(value, Mapping) and len(value) == 1):
            continue
        if not rule.ok(value):
            return name, f"River's {kind} takes {rule.want}, got {value!r}"
    if kind == "KSWIN" and params.get("stat_size", 30) >= params.get("window_size", 100):
        return "stat_size", f"must be less than window_size ({params.get('window_size', 100)})"
    return None
