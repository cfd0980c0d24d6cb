"""Reconstruction drift in a model (issue 12), through the daemon's own per-model pipeline
(:class:`~daemon.stream.pipeline.ModelPipeline`, :mod:`daemon.stream.columns`) and
partition state (/status, metrics):

- two features whose correlation flips sign (+0.8 to -0.8) while both stay standard
  normals: every univariate test of the model stays silent over the whole run, the
  reconstruction test (``reconstruction`` on ``<all>``) fires soon after the flip, and the
  flipped features carry the largest contributions;
- on stationary streams of correlated features the model as a whole (reconstruction
  included) holds its contract: false alarms observed / asked within a factor 2, pooled
  over references, counted as ``tests/test_model_false_alarms.py`` counts them;
- ``reconstruction: off`` builds no such test; a model with fewer than two numeric
  features that are not constant gets none, reported as skipped with the reason;
- the contributions reach /status (the detector's state) and the statistic the metrics.
"""

from __future__ import annotations

import json
import threading
from types import SimpleNamespace

import numpy as np
import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from daemon.config import ConfigError, ModelConfig, from_dict
from daemon.runtime.calibrator import calibrate_now
from daemon.stream.columns import ALL
from daemon.stream.events import Prediction
from daemon.stream.partition import PartitionState
from daemon.stream.pipeline import ModelPipeline
from daemon.web.metrics import Metrics
from daemon.web.status import partition_models

from .test_model_false_alarms import model_alarms

T0 = 1.7e9


def _events(rows: list[dict], first: int, rng) -> list[Prediction]:
    classes = (rng.random(len(rows)) < 0.3).astype(int).tolist()  # independent of the features
    return [Prediction(model="m", id=str(first + i), ts=T0 + first + i, features=row, prediction=c)
            for i, (row, c) in enumerate(zip(rows, classes))]


def _flip_rows(rng, n: int, rho: float) -> list[dict]:
    """x and y standard normals with correlation ``rho``; z an independent normal, w a
    lognormal, plan a category: marginals that do not depend on ``rho``."""
    a, b, z = rng.normal(size=(3, n))
    y = rho * a + np.sqrt(1 - rho ** 2) * b
    w = rng.lognormal(0, 0.5, n)
    plans = rng.choice(["basic", "plus", "pro"], n, p=[0.5, 0.3, 0.2])
    return [{"x": float(a[i]), "y": float(y[i]), "z": float(z[i]), "w": float(w[i]), "plan": str(plans[i])}
            for i in range(n)]


# -- a relation changes, no marginal does ---------------------------------------------------
def test_a_correlation_flip_fires_reconstruction_only_and_names_the_flipped_features():
    rng = np.random.default_rng(12)
    config = ModelConfig(reference_size=2000, window=500, stride=100, ert=1_000_000.0)
    pipeline = ModelPipeline("m", config)
    pipeline.observe_predictions(_events(_flip_rows(rng, 2000, 0.8), 0, rng))
    assert calibrate_now(pipeline) > 0 and pipeline.uncalibrated == 0
    assert ("reconstruction", ALL) in pipeline.data_detectors
    # Numeric features by name (not in the events' key order), then indicators of plan's
    # levels but the most frequent (basic).
    assert pipeline.data_detectors[("reconstruction", ALL)].names == ("w", "x", "y", "z", "plan=plus", "plan=pro")
    observations = pipeline.pop_observations()
    before, after = 4000, 4000
    for start in range(0, before, 1000):
        pipeline.observe_predictions(_events(_flip_rows(rng, 1000, 0.8), 2000 + start, rng))
        observations += pipeline.pop_observations()
    state_before = pipeline.data_detectors[("reconstruction", ALL)].state()
    for start in range(0, after, 1000):
        pipeline.observe_predictions(_events(_flip_rows(rng, 1000, -0.8), 2000 + before + start, rng))
        observations += pipeline.pop_observations()

    univariate = {(o.detector, o.feature) for o in observations if o.detector != "reconstruction"}
    assert {("psi", "x"), ("ks", "y"), ("chisquare", "plan"), ("missing_rate", "w"), ("chisquare", "<prediction>"),
            ("unknown_features", "<features>")} <= univariate  # they ran ...
    fired = [(o.detector, o.feature, o.position) for o in observations if o.drift and o.detector != "reconstruction"]
    assert fired == []  # ... and none fired
    reconstruction = [o for o in observations if o.detector == "reconstruction"]
    assert len(reconstruction) == (before + after - config.window) // config.stride + 1
    assert not any(o.drift for o in reconstruction if o.position <= before)
    first = next(o.position for o in reconstruction if o.drift)
    assert before < first <= before + 2 * config.stride, f"first detection {first - before} events after the flip"
    assert all(o.drift for o in reconstruction if o.position >= before + config.window)  # stays in drift

    assert sorted(state_before.contributions.values())[-1] < 0.5  # stationary: no feature stands out
    shares = pipeline.data_detectors[("reconstruction", ALL)].state().contributions
    top = sorted(shares, key=shares.get, reverse=True)
    others = max(v for k, v in shares.items() if k not in ("x", "y"))
    assert set(top[:2]) == {"x", "y"} and min(shares["x"], shares["y"]) > 3 * others, shares


def test_a_category_that_changes_its_numbers_fires_and_names_both():
    """x is about +1 for plan pro and -1 for basic, then the other way round: plan's shares
    and x's distribution (an even mixture of the two) stay as they were."""
    def rows(n, sign):
        plans = rng.choice(["basic", "pro"], n)
        x = sign * np.where(plans == "pro", 1.0, -1.0) + rng.normal(size=n)
        return [{"x": float(a), "y": float(b), "plan": str(p)} for a, b, p in zip(x, rng.normal(size=n), plans)]
    rng = np.random.default_rng(21)
    config = ModelConfig(reference_size=2000, window=500, stride=100, ert=1_000_000.0)
    pipeline = ModelPipeline("m", config)
    pipeline.observe_predictions(_events(rows(2000, 1), 0, rng))
    calibrate_now(pipeline)
    names = pipeline.data_detectors[("reconstruction", ALL)].names  # plan: one indicator, the other level the baseline
    assert names[:2] == ("x", "y") and names[2:] in (("plan=pro",), ("plan=basic",))
    pipeline.observe_predictions(_events(rows(2000, 1), 2000, rng))
    pipeline.observe_predictions(_events(rows(2000, -1), 4000, rng))
    observations = pipeline.pop_observations()
    assert not [o for o in observations if o.drift and o.detector != "reconstruction"]
    fired = [o.position for o in observations if o.drift and o.detector == "reconstruction"]
    assert fired and 2000 < fired[0] <= 2200
    shares = pipeline.data_detectors[("reconstruction", ALL)].contributions
    assert shares["x"] > 3 * shares["y"] and shares["plan"] > 3 * shares["y"], shares


def test_categorical_features_enter_as_indicators_of_their_frequent_levels():
    from daemon.stream.encoding import MAX_INDICATORS, MIN_LEVEL_COUNT
    from daemon.stream.encoding import encode as _encode, reconstruction_encoding as _encoding

    values = ["a"] * 100 + ["b"] * 50 + ["c"] * MIN_LEVEL_COUNT + ["d"] * (MIN_LEVEL_COUNT - 1) + [None] * 5
    encoding = _encoding(["x", "y"], {"plan": values, "many": [f"v{i % 30}" for i in range(600)]})
    # a is the baseline, d too rare; "many" gets its most frequent levels after the first.
    assert encoding[:3] == (("x", None), ("y", None), ("plan", ("b", "c")))
    assert encoding[3][0] == "many" and len(encoding[3][1]) == MAX_INDICATORS
    rows = _encode([{"x": 1.5, "y": "oops", "plan": "b"}, {"x": None, "plan": "c"}, {"x": 2, "plan": "zzz"},
                    {"x": 3.0, "y": True}], encoding[:3])
    nan = float("nan")
    np.testing.assert_array_equal(rows, [[1.5, nan, 1, 0], [nan, nan, 0, 1], [2, nan, 0, 0], [3, nan, nan, nan]])


# -- the switch and the skip ----------------------------------------------------------------
def _built(config: ModelConfig, rows: list[dict]) -> ModelPipeline:
    rng = np.random.default_rng(0)
    pipeline = ModelPipeline("m", config)
    pipeline.observe_predictions(_events(rows, 0, rng))
    assert pipeline.reference_complete
    return pipeline


def test_reconstruction_off_builds_no_test_and_says_nothing():
    rows = _flip_rows(np.random.default_rng(1), 300, 0.8)
    on = _built(ModelConfig(reference_size=300, window=100, stride=50), rows)
    off = _built(ModelConfig(reference_size=300, window=100, stride=50, reconstruction="off"), rows)
    assert ("reconstruction", ALL) in on.data_detectors
    assert not any(test == "reconstruction" for test, _ in off.data_detectors)
    assert not any(test == "reconstruction" for test, _ in off.skipped)
    # One more column under the contract: each other test's share shrinks by one column's weight.
    assert on.watch.tests.total_weight == off.watch.tests.total_weight + 1
    assert ALL not in on.features and ALL not in on.untestable


def test_a_bad_reconstruction_setting_stops_the_start_naming_the_key():
    with pytest.raises(ConfigError) as raised:
        from_dict({"models": {"fraud": {"reconstruction": "always"}}})
    assert raised.value.key == "models.fraud.reconstruction" and "must be auto (or on, yes, true) or off" in str(raised.value)
    assert from_dict({"model_defaults": {"reconstruction": "off"}}).model_defaults.reconstruction == "off"


def test_fewer_than_two_numeric_features_that_vary_get_none_with_the_reason():
    rng = np.random.default_rng(2)
    rows = [{"x": float(v), "flag": 0, "plan": str(p)} for v, p in zip(rng.normal(size=300), rng.choice(["a", "b"], 300))]
    pipeline = _built(ModelConfig(reference_size=300, window=100, stride=50), rows)
    assert not any(test == "reconstruction" for test, _ in pipeline.data_detectors)
    assert pipeline.skipped[("reconstruction", ALL)] == (
        "needs at least two numeric features that are not constant; the reference has 1 (x)")
    assert ALL not in pipeline.untestable


# -- the model's contract on stationary streams ----------------------------------------------
CONFIG = ModelConfig(reference_size=1000, window=200, stride=50, ert=2000.0)
REFERENCES, EVENTS, BATCH = 10, 10_000, 2500  # 50 false alarms asked


def _correlated_source(rng):
    """n -> rows of 6 correlated features (a random correlation matrix; one lognormal, one
    a count, one 10% missing), as JSON values."""
    d = 6
    root = rng.normal(size=(d, d))
    cov = root @ root.T + 0.5 * np.eye(d)
    scale = np.sqrt(np.diag(cov))
    cov /= np.outer(scale, scale)

    def draw(n):
        x = rng.multivariate_normal(np.zeros(d), cov, size=n)
        rows = []
        for r in x:
            row = {"f0": float(r[0]), "f1": float(np.exp(r[1])), "f2": int(round(4 * r[2])),
                   "f3": float(r[3]), "f4": float(r[4]), "f5": float(r[5])}
            if rng.random() < 0.1:
                row["f3"] = None
            rows.append(row)
        return rows
    return draw


def _stationary_alarms(seed: int) -> tuple[int, int]:
    """(false alarms of the model, of its reconstruction test) on EVENTS stationary events."""
    rng = np.random.default_rng([seed, 1212])
    draw = _correlated_source(rng)
    pipeline = ModelPipeline("m", CONFIG)
    pipeline.observe_predictions(_events(draw(CONFIG.reference_size), 0, rng))
    assert calibrate_now(pipeline) > 0 and pipeline.uncalibrated == 0
    assert ("reconstruction", ALL) in pipeline.data_detectors
    observations = pipeline.pop_observations()
    for start in range(0, EVENTS, BATCH):
        pipeline.observe_predictions(_events(draw(BATCH), CONFIG.reference_size + start, rng))
        observations += pipeline.pop_observations()
    return model_alarms(observations), pipeline.data_detectors[("reconstruction", ALL)].n_detections


def test_a_model_with_correlated_features_holds_its_contract():
    counts = [_stationary_alarms(seed) for seed in range(REFERENCES)]
    asked = REFERENCES * EVENTS / CONFIG.ert
    ratio = sum(model for model, _ in counts) / asked
    assert 0.5 <= ratio <= 2, f"{sum(m for m, _ in counts)} false alarms for {asked:.0f} asked (ratio {ratio:.2f}); {counts}"


# -- /status and metrics ----------------------------------------------------------------------
def test_contributions_on_status_and_the_statistic_in_the_metrics():
    config = from_dict({"models": {"fraud": {"reference_size": 300, "window": 100, "stride": 50, "ert": 100_000}}})
    state = PartitionState(0, config)
    rng = np.random.default_rng(3)
    rows = _flip_rows(rng, 300, 0.8) + _flip_rows(rng, 200, -0.8)
    records = [SimpleNamespace(topic="t", partition=0, offset=i, timestamp=int((T0 + 10_000) * 1000), key=b"fraud",
                               headers=[], value=json.dumps({"model": "fraud", "id": f"e{i}", "ts": T0 + i,
                                                             "features": row, "prediction": i % 2}).encode())
               for i, row in enumerate(rows)]

    def reject(record, reason, detail):
        raise AssertionError(f"dead letter {reason}: {detail}")
    state.handle_predictions(records, reject)
    assert calibrate_now(state) > 0
    status = json.loads(json.dumps(partition_models(state)))["fraud"]  # JSON as /status serves it
    detector = status["detectors"]["reconstruction/<all>"]
    assert detector["drift"] and set(detector["contributions"]) == {"x", "y", "z", "w", "plan"}
    assert max(detector["contributions"], key=detector["contributions"].get) in ("x", "y")
    text = generate_latest(Metrics({0: state}, threading.Lock()).registry).decode()
    samples = {(s.name, frozenset(s.labels.items())): s.value
               for family in text_string_to_metric_families(text) for s in family.samples}
    labels = frozenset({"model": "fraud", "detector": "reconstruction", "feature": "<all>"}.items())
    assert samples[("driftd_drift_statistic", labels)] == detector["statistic"]
    assert samples[("driftd_drift_active", labels)] == 1


# -- restarts ---------------------------------------------------------------------------------
def test_a_pipeline_restored_before_its_thresholds_came_decides_as_one_that_never_stopped():
    """Checkpointed (pickled) while the reconstruction test holds its decisions, restored,
    asked again for its thresholds: the same decisions as without the restart."""
    import pickle

    config = ModelConfig(reference_size=500, window=200, stride=50, ert=50_000.0)
    rng = np.random.default_rng(4)
    batches = [_events(_flip_rows(rng, 500, 0.8), 0, rng), _events(_flip_rows(rng, 400, 0.8), 500, rng),
               _events(_flip_rows(rng, 400, -0.8), 900, rng), []]
    straight = ModelPipeline("m", config)
    for batch in batches:
        straight.observe_predictions(batch)
    calibrate_now(straight)
    restarted = ModelPipeline("m", config)
    restarted.observe_predictions(batches[0])
    restarted.observe_predictions(batches[1])
    restarted = pickle.loads(pickle.dumps(restarted))
    restarted.observe_predictions(batches[2])
    restarted.observe_predictions(batches[3])  # an empty batch is a no-op
    assert restarted.uncalibrated > 0
    calibrate_now(restarted)

    def mine(pipeline):
        return [(o.drift, o.position, o.detail["statistic"]) for o in pipeline.pop_observations() if o.detector == "reconstruction"]
    decisions = mine(straight)
    assert decisions == mine(restarted) and any(drift for drift, _, _ in decisions)
