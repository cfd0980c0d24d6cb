"""A model's pipeline without a broker: feature types, columns and their tests, schema
drift, the false-alarm budget, calibration off the loop, and alerts that are a function of
the stream alone (any batching, any calibration speed, restarts).

Real detectors and real calibration throughout; records are plain objects with the
fields of a Kafka record.
"""

from __future__ import annotations

import json
import pickle
from types import SimpleNamespace

import numpy as np
import pytest

from daemon.runtime.calibrator import calibrate_now
from daemon.stream.calibration_jobs import thresholds_of
from daemon.config import ConfigError, ModelConfig, from_dict
from daemon.stream.events import BadEvent, decode_prediction
from daemon.stream.partition import PartitionState
from daemon.stream.pipeline import ModelPipeline
from daemon.web.status import partition_models

from . import streams

PRED, LAB = "predictions", "labels"
SMALL = {"reference_size": 1000, "window": 300, "stride": 50, "ert": 20_000, "label_ert": 20_000,
         "decay_reference_size": 500, "decay_window": 300}


def model_config(**settings) -> ModelConfig:
    return from_dict({"models": {"m": {**SMALL, **settings}}}).models["m"]


def prediction(i: int, features: dict, prediction=1, score=0.5, version=None):
    return decode_prediction(json.dumps({"model": "m", "id": f"e-{i}", "ts": streams.ts(i), "features": features,
                                         "prediction": prediction, "score": score, "model_version": version}).encode())


def feed(pipeline: ModelPipeline, events: list, batch: int = 100) -> list:
    """Feed in batches, calibrating as soon as asked; the observations, in order."""
    out = []
    for start in range(0, len(events), batch):
        pipeline.observe_predictions(events[start:start + batch])
        calibrate_now(pipeline)
        out += pipeline.pop_observations()
    return out


def entries(observations, test: str, column: str) -> list[int]:
    """Stream indices (0-based, after the reference) where a test entered drift."""
    found, was = [], False
    for o in observations:
        if (o.detector, o.feature) == (test, column):
            if o.drift and not was:
                found.append(o.position - 1)
            was = o.drift
    return found


# -- feature types ---------------------------------------------------------------------------

def test_integer_codes_declared_categorical_are_tested_as_levels():
    rng = np.random.default_rng(1)
    pipeline = ModelPipeline("m", model_config(features={"education": "categorical"}))
    events = [prediction(i, {"education": int(rng.integers(16, 24)), "sex": int(rng.integers(1, 3))}) for i in range(1000)]
    feed(pipeline, events)
    assert pipeline.features["education"] == "categorical" and pipeline.features["sex"] == "numeric"
    tests = set(pipeline.data_detectors)
    assert {("chisquare", "education"), ("unseen_rate", "education")} <= tests
    assert not {("ks", "education"), ("psi", "education")} & tests
    assert {("ks", "sex"), ("psi", "sex")} <= tests
    # A code the reference never had is an unseen level, not a number between two others.
    pipeline.observe_predictions([prediction(1000, {"education": 99, "sex": 1})])
    assert pipeline.schema[("unseen", "education")] == 1


def test_integers_beyond_2_53_stay_exact_as_declared_levels_and_are_refused_elsewhere():
    big, neighbour = 9007199254740993, 9007199254740992
    declared = ModelPipeline("m", model_config(reference_size=40, features={"account": "categorical"}))
    events = [prediction(i, {"account": big if i % 2 else neighbour}) for i in range(40)]
    for e in events:
        declared.check(e)
    feed(declared, events)
    assert declared.watch.tests.columns["account"].levels == {str(big), str(neighbour)}

    undeclared = ModelPipeline("m", model_config(reference_size=40))
    with pytest.raises(BadEvent) as refused:
        undeclared.check(prediction(0, {"account": big}))
    assert refused.value.reason == "wrong_type"
    assert "'account'" in refused.value.detail and "2**53" in refused.value.detail and "categorical" in refused.value.detail
    undeclared.check(prediction(0, {"account": 2**53}))  # exact: fine


def test_a_regression_prediction_or_label_beyond_2_53_is_refused_without_feature_advice():
    """A fuzzing user's finding: it was refused as "feature 'label'", advising to declare it
    categorical, which a label or a prediction cannot be."""
    pipeline = ModelPipeline("m", model_config(task="regression"))
    big = 2**53 + 1
    for field, refuse in (("prediction", lambda: pipeline.check(prediction(0, {}, prediction=big))),
                          ("label", lambda: pipeline.check_label(big))):
        with pytest.raises(BadEvent) as refused:
            refuse()
        assert refused.value.reason == "wrong_type"
        assert f"a regression {field} must be a number a float holds exactly" in refused.value.detail
        assert "categorical" not in refused.value.detail and refused.value.detail.endswith(f"`$.{field}`")
    pipeline.check(prediction(0, {}, prediction=2**53))
    pipeline.check_label(-(2**53))


def test_declared_numeric_refuses_strings_from_the_first_event():
    pipeline = ModelPipeline("m", model_config(features={"amount": "numeric"}))
    with pytest.raises(BadEvent, match="'amount' is numeric"):
        pipeline.check(prediction(0, {"amount": "12.5"}))


@pytest.mark.parametrize("task, prediction_value, kind, tests", [
    ("classification", "cat", "categorical", {"chisquare", "cusum", "unseen_rate"}),
    ("regression", 2.5, "numeric", {"psi", "ks", "cusum"}),
])
def test_the_prediction_is_watched_like_a_feature(task, prediction_value, kind, tests):
    rng = np.random.default_rng(2)
    pipeline = ModelPipeline("m", model_config(task=task, decay_metrics=["mae"] if task == "regression" else ["accuracy"],
                                               error_detector="ADWIN"))
    def value(i):
        if task == "regression":
            return float(rng.normal(prediction_value, 1.0))
        return ["cat", "dog", "bird"][int(rng.integers(3))]
    feed(pipeline, [prediction(i, {"x": float(rng.normal())}, prediction=value(i)) for i in range(1000)])
    assert pipeline.features["<prediction>"] == kind
    assert {t for t, c in pipeline.data_detectors if c == "<prediction>"} == tests


def test_a_constant_feature_is_watched_for_a_change_of_value():
    rng = np.random.default_rng(3)
    pipeline = ModelPipeline("m", model_config())
    events = [prediction(i, {"x": float(rng.normal()), "flag": "0" if i < 2000 else "1", "zero": 0.0}) for i in range(2400)]
    observations = feed(pipeline, events)
    assert ("value_change", "flag") in pipeline.data_detectors and ("value_change", "zero") in pipeline.data_detectors
    assert "flag" not in pipeline.untestable
    (entry,) = entries(observations, "value_change", "flag")
    assert 1000 <= entry < 1000 + SMALL["window"]  # the change came at index 2000, i.e. value 1000 after the reference
    assert entries(observations, "value_change", "zero") == []


def test_an_unusable_model_is_built_once_and_says_why():
    pipeline = ModelPipeline("m", model_config(reference_size=200))
    events = [prediction(i, {"const": "0", "always_null": None, "rare": float(i) if i % 50 == 0 else None}, score=None)
              for i in range(2000)]
    feed(pipeline, events)
    assert pipeline.builds == 1 and pipeline.reference_complete
    untestable = pipeline.untestable
    assert set(untestable) == {"always_null", "rare"}
    # Always missing: a constant "missing", watched for values appearing (value_change).
    assert untestable["always_null"] == ("missing in all 200 reference events; values appearing are tested as a "
                                         "change (value_change)")
    assert ("value_change", "always_null") in pipeline.data_detectors
    assert "4 usable values, need at least 20" in untestable["rare"]  # the words of the test that refused
    # 98% missing in the reference: no window can be missing more often than the contract
    # allows by chance, so its missing-rate test could never fire, and says so.
    assert "missing_rate: can never fire at this contract" in untestable["rare"]
    assert ("missing_rate", "rare") not in pipeline.data_detectors
    assert ("value_change", "const") in pipeline.data_detectors
    assert ("value_change", "<prediction>") in pipeline.data_detectors  # always class 1: a constant too


# -- schema drift ----------------------------------------------------------------------------

def test_schema_drift_is_counted_and_tested():
    rng = np.random.default_rng(4)
    pipeline = ModelPipeline("m", model_config())
    def features(i):
        f = {"x": float(rng.normal()), "country": str(rng.choice(["DE", "FR", "IT"]))}
        if 1500 <= i < 1900:
            f["country"] = "ES"  # a level the reference never had
        if i >= 2000:
            del f["x"]           # a feature that went missing
            f["new"] = 1.0       # and one that appeared
        return f
    observations = feed(pipeline, [prediction(i, features(i)) for i in range(2500)])
    assert pipeline.schema[("unseen", "country")] == 400
    assert pipeline.schema[("missing", "x")] == 500
    assert pipeline.schema[("unknown", "<features>")] == 500
    assert pipeline.unknown_features == ["new"]
    (unseen,) = entries(observations, "unseen_rate", "country")
    assert 500 <= unseen < 500 + SMALL["window"]
    (missing,) = entries(observations, "missing_rate", "x")
    assert 1000 <= missing < 1000 + SMALL["window"]
    (unknown,) = entries(observations, "unknown_features", "<features>")
    assert 1000 <= unknown < 1000 + SMALL["window"]


# -- the contract ----------------------------------------------------------------------------

def test_the_model_budget_is_split_across_its_columns_and_tests():
    rng = np.random.default_rng(5)
    pipeline = ModelPipeline("m", model_config(ert=1_000_000))
    pipeline.observe_predictions([prediction(i, {"a": float(rng.normal()), "b": str(rng.choice(["u", "v"]))}) for i in range(1000)])
    tests = pipeline.watch.tests
    assert set(tests.columns) == {"a", "b", "<prediction>", "<score>", "<features>"}
    jobs = [job for _, job in pipeline.calibration_jobs()]
    assert sorted(job.column for job in jobs) == sorted(tests.columns)
    assert pipeline.uncalibrated == sum(len(c.tests) for c in tests.columns.values())
    erts = {(test, job.column): ert for job in jobs for test, ert in zip(job.tests, job.erts)}
    # Weights: a column's values 1 (psi, ks and cusum of "a" a third each; chi-square and
    # the level CUSUM of "b" half each; the constant prediction and score one test each),
    # each rate test 0.1: 1.1 + 1.2 + 1 + 1 + 0.1 = 4.4.
    assert erts[("ks", "a")] == erts[("psi", "a")] == erts[("cusum", "a")] == pytest.approx(1_000_000 * 4.4 * 3)
    assert erts[("chisquare", "b")] == erts[("cusum", "b")] == pytest.approx(1_000_000 * 4.4 * 2)
    assert erts[("missing_rate", "a")] == erts[("unknown_features", "<features>")] == pytest.approx(1_000_000 * 4.4 / 0.1)
    assert {job.column: job.joint for job in jobs if job.joint} == {"a": pytest.approx(1_000_000 * 4.4),
                                                                    "b": pytest.approx(1_000_000 * 4.4)}
    # The false-alarm rates add up to the model's contract.
    assert sum(1 / ert for ert in erts.values()) == pytest.approx(1 / 1_000_000)
    assert all(len(t) == 2 for job in jobs for t in thresholds_of(job))


@pytest.mark.parametrize("features, key, reason", [
    ({"x": "number"}, "models.m.features.x", "numeric, categorical or ignore"),
    ({"<prediction>": "numeric"}, "models.m.features.<prediction>", "can only be ignored"),
    ({"<label>": "ignore"}, "models.m.features.<label>", "reserved"),
    ({f"f{i}": "numeric" for i in range(3)}, "models.m.features", "more than max_features (2)"),
])
def test_impossible_feature_declarations_are_refused_with_the_key(features, key, reason):
    with pytest.raises(ConfigError) as e:
        from_dict({"models": {"m": {"features": features, "max_features": 2}}})
    assert e.value.key == key and reason in str(e.value)


# -- alerts: a function of the stream alone --------------------------------------------------

CONFIG = {"kafka": {"predictions_topic": PRED, "labels_topic": LAB},
          "alerts": {"clear_after": 3, "cooldown_seconds": 0},
          "model_defaults": SMALL, "models": {"m": {}}}


def as_records(records: list) -> list:
    offsets: dict = {}
    out = []
    for topic, key, value in records:
        offset = offsets.get(topic, 0)
        offsets[topic] = offset + 1
        out.append(SimpleNamespace(topic=topic, partition=0, offset=offset, key=key, value=value, headers=[], timestamp=None))
    return out


def consume(records: list, batch: int, calibration_delay: int = 0, restart_at: int | None = None,
            replay: int = 0, config: dict = CONFIG) -> list:
    """What the daemon would alert, fed ``batch`` records per poll (each topic's records of
    a poll in order), applying each calibration ``calibration_delay`` polls after it was
    asked for. ``restart_at``: after that many polls the state is checkpointed, ``replay``
    polls later the process "dies", and a restart restores the checkpoint and reads on from
    its offsets (the replayed polls' alerts are sent again)."""
    cfg = from_dict(config)
    state = PartitionState(0, cfg)
    sent, waiting, checkpoint, restarted = [], [], None, False
    batches = [records[i:i + batch] for i in range(0, len(records), batch)]
    n = 0
    while n < len(batches):
        if n == restart_at and checkpoint is None:
            checkpoint = pickle.dumps(state)
        if checkpoint is not None and not restarted and n == restart_at + replay:
            state = pickle.loads(checkpoint)  # the crash: back to the checkpoint,
            state.attach(cfg)
            waiting, n, restarted = [], restart_at, True  # a fresh worker, reading from its offsets
        for item in [w for w in waiting if w[0] <= n]:
            waiting.remove(item)
            _, owner, job = item
            state.apply_calibration(owner, job, thresholds_of(job))
            sent += state.alerts()
        chunk = batches[n]
        state.handle_predictions([r for r in chunk if r.topic == PRED], _no_dead_letters)
        state.handle_labels([r for r in chunk if r.topic == LAB], _no_dead_letters)
        sent += state.finish_batch()
        waiting += [(n + calibration_delay, owner, job) for owner, job in state.calibration_jobs(new_only=True)]
        n += 1
    for _, owner, job in waiting:
        state.apply_calibration(owner, job, thresholds_of(job))
    sent += state.alerts()
    return sent


def _no_dead_letters(record, reason, detail):
    raise AssertionError(f"dead letter {reason}: {detail}")


def canonical(alerts: list) -> list:
    """The alert sequence as a receiver de-duplicating by id keeps it, in event-time order
    (each key's own order is the stream's)."""
    unique = {a.id: a.to_dict() for a in alerts}
    return sorted(unique.values(), key=lambda a: (a["event_time"], a["id"]))


@pytest.fixture(scope="module")
def stream():
    return as_records(streams.records(4500, PRED, LAB))


@pytest.fixture(scope="module")
def reference_run(stream):
    return consume(stream, 100)


def test_drift_episodes_fire_and_resolve_where_the_stream_changes(reference_run):
    alerts = canonical(reference_run)
    by_key: dict = {}
    for a in alerts:
        by_key.setdefault((a["detector"], a["feature"]), []).append((a["status"], streams.index(a["event_time"])))
    ks = by_key[("ks", "x")]
    assert [s for s, _ in ks] == ["firing", "resolved"]
    assert 2000 <= ks[0][1] < 2000 + SMALL["window"] and 2700 <= ks[1][1] < 2700 + 2 * SMALL["window"]
    decay = by_key[("decay", "accuracy")]
    assert decay[0][0] == "firing" and 3000 <= decay[0][1] < 3000 + SMALL["decay_window"] + 200
    assert ("value_change", "const") not in by_key  # it never changed
    assert len({a["id"] for a in alerts}) == len(alerts)


def test_alerts_do_not_depend_on_batch_sizes(stream, reference_run):
    expected = canonical(reference_run)
    for batch in (1, 7, 5000):
        assert canonical(consume(stream, batch)) == expected, batch


def test_alerts_do_not_depend_on_how_long_calibration_takes(stream, reference_run):
    expected = canonical(reference_run)
    assert canonical(consume(stream, 100, calibration_delay=15)) == expected
    assert canonical(consume(stream, 100, calibration_delay=1000)) == expected  # only at the end


def test_alerts_repeat_with_the_same_ids_after_a_crash(stream, reference_run):
    expected = canonical(reference_run)
    # Checkpointed while thresholds were pending, killed after more polls, restored.
    for restart_at, replay in ((12, 5), (24, 10), (40, 3)):
        assert canonical(consume(stream, 100, calibration_delay=4, restart_at=restart_at, replay=replay)) == expected


def test_an_episode_inside_one_polled_batch_is_alerted():
    """The issue's case: an accuracy-only model alerts the same fed in batches of 100 or
    5,000, and a detection that starts and ends inside one batch is alerted."""
    config = {**CONFIG, "models": {"m": {"error_detector": "", "numeric_tests": [], "categorical_tests": [],
                                         "features": {"<prediction>": "ignore", "<score>": "ignore"}}}}
    records = as_records(streams.records(4500, PRED, LAB, data_shift=None, accuracy_drop=(3000, 3500)))
    small, large = consume(records, 100, config=config), consume(records, 5000, config=config)
    assert canonical(small) == canonical(large)
    decay = [(a.status, streams.index(a.event_time)) for a in large if a.detector == "decay"]
    assert [s for s, _ in decay] == ["firing", "resolved"]
    assert 3000 <= decay[0][1] < decay[1][1] < 4500  # both inside the one batch of 5,000 records


def test_untestable_features_and_schema_drift_are_exported_and_on_status():
    import threading

    from prometheus_client import generate_latest

    from daemon.web.metrics import Metrics

    def event(i):
        features = {"x": float(i % 97), "always_null": None, "country": "DE" if i < 1000 else "XX"}
        if i >= 1000:
            features["extra"] = 1.0
        return (PRED, b"m", json.dumps({"model": "m", "id": f"e-{i}", "ts": streams.ts(i), "features": features,
                                        "prediction": i % 2}).encode())

    state = PartitionState(0, from_dict(CONFIG))
    state.handle_predictions(as_records([event(i) for i in range(1200)]), _no_dead_letters)
    text = generate_latest(Metrics({0: state}, threading.Lock()).registry).decode()
    assert 'driftd_untestable_features{model="m"} 1.0' in text
    # Untestable, but watched for values appearing: its test's series, its missing count.
    assert 'driftd_drift_active{detector="value_change",feature="always_null",model="m"} 0.0' in text
    assert 'driftd_feature_missing_total{feature="always_null",model="m"} 200.0' in text
    assert 'driftd_feature_unseen_levels_total{feature="country",model="m"} 200.0' in text
    assert 'driftd_unknown_features_total{model="m"} 200.0' in text
    assert 'driftd_tests_uncalibrated{model="m"}' in text
    status = partition_models(state)["m"]
    assert status["untestable_features"] == {"always_null": "missing in all 1000 reference events; values appearing "
                                                            "are tested as a change (value_change)"}
    assert status["unknown_features"] == ["extra"] and status["schema"]["unknown"] == 200
    json.dumps(status, allow_nan=False)


def test_a_test_no_window_can_fire_is_skipped_with_the_reason():
    """A reference of 40 values of two levels cannot support a run length of 10^12: the
    chi-square threshold is above the statistic of any window of known levels, so the test
    would stay silent for ever. It is dropped, and /status says why."""
    rng = np.random.default_rng(5)
    pipeline = ModelPipeline("m", model_config(reference_size=40, window=40, stride=20, ert=1e12))
    feed(pipeline, [prediction(i, {"c": str(rng.choice(["a", "b"]))}, score=None) for i in range(200)])
    assert ("chisquare", "c") not in pipeline.data_detectors
    assert "can never fire at this contract" in pipeline.watch.tests.skipped[("chisquare", "c")]
    assert ("unseen_rate", "c") in pipeline.data_detectors  # the rate tests still can


def test_an_event_without_a_version_does_not_reset_the_model():
    """A stray prediction without model_version (a producer that left it out) is of the
    version the model has: it must not start a new reference, drop the tests and their open
    alerts, and start again when the version comes back."""
    pipeline = ModelPipeline("m", model_config())
    events = [prediction(i, {"x": float(i % 50)}, version="7") for i in range(1200)]
    events[1100:1105] = [prediction(i, {"x": float(i % 50)}, version=None) for i in range(1100, 1105)]
    feed(pipeline, events)
    assert (pipeline.version, pipeline.version_changes, pipeline.reference_complete) == ("7", 0, True)
    assert pipeline.n_predictions == 1200  # every one counted as the version's
    pipeline.observe_labels([(("1", 0.5, None, streams.ts(1101), None), "1")])  # a label of one of them
    assert pipeline.labels.n_fed == 1


def test_a_state_saved_with_the_learners_parts_in_the_pipeline_learns_on_the_same():
    """States saved before the learners' part had its class (daemon/stream/learning.py
    Learning) held the lifecycle, the promotions, the held events and the signals in the
    pipeline itself: such a state loads and learns as one saved now, here with labelled
    events held while the label tests wait for their thresholds and an error-rate change
    (ADWIN's drift signal) still to come."""
    config = ModelConfig(**{**SMALL, "learners": {"tree": {"HoeffdingTreeClassifier": {}}}, "numeric_tests": [],
                            "categorical_tests": [], "promotion_min_events": 50, "promotion_window": 200})
    rng = np.random.default_rng(5)
    xs = rng.normal(size=3000)
    pipeline = ModelPipeline("m", config)
    pipeline.observe_predictions([prediction(i, {"x": float(xs[i])}, int(xs[i] > 0)) for i in range(3000)])

    def pairs(lo, hi):  # right 90% of the time, then 40% from 2000 on
        wrong = rng.random(hi - lo) > np.where(np.arange(lo, hi) < 2000, 0.9, 0.4)
        return [((int(xs[i] > 0), 0.5, None, streams.ts(i), {"x": float(xs[i])}), int(xs[i] > 0) ^ int(w))
                for i, w in zip(range(lo, hi), wrong)]

    pipeline.observe_labels(pairs(0, 1200))  # label tests' reference complete: their events held
    assert pipeline.learning.held and pipeline.uncalibrated
    state = pickle.loads(pickle.dumps(pipeline)).__getstate__()
    learning = state.pop("learning")  # the layout before: in the pipeline
    state.update(lifecycle=learning.lifecycle, pending_promotions=learning.promotions, learning_errors=learning.errors,
                 _learning_held=learning.held, _signals=learning.signals)
    old = ModelPipeline.__new__(ModelPipeline)
    old.__setstate__(state)
    assert old.learning.held and old.lifecycle is learning.lifecycle
    rest = pairs(1200, 3000)
    seen = []
    for p in (pipeline, old):
        calibrate_now(p)
        p.observe_labels(rest)
        calibrate_now(p)
        cc = p.lifecycle
        seen.append((cc.n_labelled, dict(cc.retrains), dict(cc.decisions), len(p.pending_promotions), p.learning_errors,
                     [(o.detector, o.offset, o.drift) for o in p.pop_observations()]))
    assert seen[0] == seen[1] and seen[0][0] == 3000 and sum(seen[0][1].values()) >= 1, seen[0][:5]


def test_a_fractional_prediction_of_a_classifier_suggests_the_regression_task():
    """An auto-registered regressor (classification by default) had every prediction
    refused with "a class must be a label or a whole number", no word of the task."""
    pipeline = ModelPipeline("m", model_config())
    with pytest.raises(BadEvent) as info:
        pipeline.check(prediction(0, {"x": 1.0}, 50.238))
    assert "task: regression" in info.value.detail and info.value.detail.endswith("- at `$.prediction`")


def test_a_binary_score_sent_as_a_mapping_is_the_same_score_column():
    """A new user's finding: a binary model whose scores went from a number (the positive
    class's probability) to a mapping {"0": 1 - p, "1": p} of the same probabilities raised
    psi, ks and cusum drift on <score>: the column took a mapping's highest probability
    (max(p, 1 - p)), not p. A two-class mapping now gives its positive class's probability."""
    rng = np.random.default_rng(8)
    p = rng.beta(2, 5, size=4000).round(4)
    events = [prediction(i, {"x": float(rng.normal())}, int(p[i] > 0.5),
                         float(p[i]) if i < 2000 else {"0": float(1 - p[i]), "1": float(p[i])}) for i in range(4000)]
    pipeline = ModelPipeline("m", model_config())
    found = feed(pipeline, events)
    tested = {(o.detector, o.feature) for o in found if o.feature == "<score>"}
    assert {("psi", "<score>"), ("ks", "<score>")} <= tested, tested
    assert not [key for key in tested if entries(found, *key)], [(key, entries(found, *key)) for key in tested]
    # A state saved before (its reference took the highest probability) keeps that rule
    # for its version: the column must not change its meaning mid-version.
    state = pickle.loads(pickle.dumps(ModelPipeline("m", model_config()))).__getstate__()
    del state["binary_scores_by_positive"]
    old = ModelPipeline.__new__(ModelPipeline)
    old.__setstate__(state)
    assert old._positive_key is None and pipeline._positive_key == "1"


@pytest.mark.parametrize("batch", [7, 100, 1000])
def test_a_learner_that_cannot_take_the_features_loses_no_label(batch, monkeypatch):
    """A new user's finding: a learner given a string feature it cannot take (GaussianNB
    here) raised at the retrain that the concept drift asked for, and the batch's labels
    became internal_error dead letters: more at larger batches (10 at polls of 7, 4,674 at
    5,000). Every label reaches the tests now, at every batch size; the failures are
    counted and in /status with the last message."""
    monkeypatch.setenv("DRIFTD_REGISTRY_KEY", "a key for the registry")
    config = from_dict({**CONFIG, "models": {"m": {"learners": {"nb": ["GaussianNB"]}, "retrain_cooldown": 100,
                                                   "replay_reservoir_size": 200, "replay_recent_size": 100}}})
    state = PartitionState(0, config)
    records = as_records(streams.records(4500, PRED, LAB))
    for start in range(0, len(records), batch):
        chunk = records[start:start + batch]
        state.handle_predictions([r for r in chunk if r.topic == PRED], _no_dead_letters)
        state.handle_labels([r for r in chunk if r.topic == LAB], _no_dead_letters)
        state.finish_batch()
        calibrate_now(state)
    status = partition_models(state)["m"]
    assert status["processed"] == {"prediction": 4500, "label": 4500} and status["join"]["joined"] == 4500
    learning = status["learning"]
    # Every labelled event, and the retrains the concept drift asked for (4,500 events).
    assert learning["learners"]["nb"]["errors"] == learning["errors"] > 4500
    assert "TypeError" in learning["learners"]["nb"]["last_error"] and learning["retrains"] == {}
    assert state.models["m"].labels.n_fed == 4500


def _with_strays(n: int = 3000) -> list:
    """Predictions of model m whose reference (1,000) completes, then a version 2 whose
    reference completes too, with values the completed references' types refuse, shortly
    after each completion."""
    rng = np.random.default_rng(8)
    records = []
    for i in range(n):
        version = "1" if i < 1500 else "2"
        age = round(float(rng.normal(40, 10)), 2)
        if i in (1050, 2550):
            age = "forty"  # a string where the reference made age numeric
        if i in (1060, 2560):
            age = True
        value = {"model": "m", "model_version": version, "id": f"p{i}", "ts": streams.ts(i),
                 "features": {"age": age, "x": round(float(rng.normal()), 3)}, "prediction": int(rng.random() < 0.3)}
        records.append((PRED, b"m", json.dumps(value).encode()))
    return as_records(records)


def test_a_stray_value_after_a_reference_completes_is_one_dead_letter_at_any_batch_size():
    """A new user's finding: with a reference completing inside a poll, the predictions
    after it in the same poll were checked against the reference still collecting (types
    undecided), then fed to the tests typed by it: one "age": "forty" 50 predictions later
    made the whole poll (1,202 records at polls of 5,000) internal_error dead letters, with
    the reference built from them and the tests fed none; "age": true was taken as 1.0. At
    polls of 7, each was one wrong_type dead letter. A prediction is checked against the
    model as the ones before it left it, whatever the poll."""
    outcomes = []
    for batch in (1, 7, 1000, 5000):
        state = PartitionState(0, from_dict({**CONFIG, "models": {"m": {}}}))
        dead = []
        records = _with_strays()
        for start in range(0, len(records), batch):
            state.handle_predictions(records[start:start + batch], lambda r, reason, detail: dead.append((r.offset, reason)))
            calibrate_now(state)
        pipeline = state.models["m"]
        outcomes.append((dead, state.processed[("m", "prediction")], pipeline.version, pipeline.builds,
                         {key: (d.n_seen, d.n_tests) for key, d in pipeline.data_detectors.items()}))
    assert all(o == outcomes[0] for o in outcomes[1:]), [o[:4] for o in outcomes]
    assert outcomes[0][0] == [(1050, "wrong_type"), (1060, "wrong_type"), (2550, "wrong_type"), (2560, "wrong_type")]
    assert outcomes[0][1:4] == (2996, "2", 2)


@pytest.mark.parametrize("batch", [1, 5000])
def test_the_first_prediction_of_a_new_version_is_checked_as_its_reference_value(batch):
    """It starts the version's reference, whose types are undecided: the earlier version's
    (age numeric) do not refuse it, in a poll of its own or not."""
    records = _with_strays(1600)
    value = json.loads(records[1500].value)
    value["features"]["age"] = "forty"
    records[1500].value = json.dumps(value).encode()
    state = PartitionState(0, from_dict({**CONFIG, "models": {"m": {}}}))
    dead = []
    for start in range(0, len(records), batch):
        state.handle_predictions(records[start:start + batch], lambda r, reason, detail: dead.append((r.offset, reason)))
    assert dead == [(1050, "wrong_type"), (1060, "wrong_type")]
    assert state.models["m"].version == "2" and state.models["m"].reference.n == 100
