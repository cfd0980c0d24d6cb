"""The series count of each ``metrics.per_feature`` setting equals the formula in README
"Metric cardinality", on real partition states: M models of F numeric features, past
their reference, calibrated (thresholds given, so that none drifts by chance), tested, with
labels joined; then a few features put in drift or warning.

Per model (default tests: psi, ks and cusum on a numeric feature, missing_rate on every feature):

    all       BASE + OWN + SUMMARY + F * PER_FEATURE
    alerting  BASE + OWN + SUMMARY + A * PER_FEATURE   (A: features in warning or drift, or held)
    none      BASE + OWN + SUMMARY

and PROCESS + PER_PARTITION * partitions series that name no model.
"""

from __future__ import annotations

import json
import random
import threading
from types import SimpleNamespace

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from daemon.config import MetricsConfig, from_dict
from daemon.runtime.calibrator import calibrate_now
from daemon.stream.partition import PartitionState
from daemon.web.metrics import Metrics

#: README "Metric cardinality": series per model, whatever its features ...
BASE = 53  # events 2, label joins 5, label delay 19, dead letters of the model 6, join buffer 1, version, reference, unwatched, untestable, uncalibrated, unknown features, performance 2, estimated performance 5, estimate error 5, event age 2
OWN = 72  # the model's own tests: <prediction> chisquare + cusum (6) + unseen_rate, <score> psi + ks + cusum (6), <features> unknown_features, <error> adwin, decay accuracy, estimated_decay accuracy (7), <all> reconstruction (6)
SUMMARY_PER_TEST = 4  # features in drift, in warning, largest statistic/threshold, drift entries
#: ... and per numeric feature shown: psi 6 (no p-value), ks 7, cusum 6 (no p-value), missing_rate 7.
PER_FEATURE = 26
NUMERIC_TESTS = ("psi", "ks", "cusum", "missing_rate")
#: Series that name no model: dead letters 10, batch time histogram 16, checkpoint time, ready, assigned
#: partitions and calibrations pending 4;
#: per partition: join buffer, offset resets.
PROCESS = 30
PER_PARTITION = 1

T0 = 1_700_000_000.0


def per_model(setting: str, features: int, shown: int) -> int:
    summary = SUMMARY_PER_TEST * len(NUMERIC_TESTS)
    return BASE + OWN + summary + PER_FEATURE * {"all": features, "alerting": shown, "none": 0}[setting]


def build(models: int, features: int, partitions: int = 1) -> dict:
    """partition -> PartitionState holding ``models`` models (spread over the partitions)."""
    config = from_dict({
        "models": {f"m{i}": {} for i in range(models)},
        "model_defaults": {"reference_size": 200, "window": 100, "stride": 50, "ert": 4000,
                           "decay_reference_size": 100, "decay_window": 100},
    })
    states = {p: PartitionState(p, config) for p in range(partitions)}
    rng = random.Random(3)
    for i in range(models):
        state, model = states[i % partitions], f"m{i}"
        predictions, labels = [], []
        for n in range(400):
            event = {"model": model, "id": f"{model}-{n}", "ts": T0 + n,
                     "features": {f"f{j}": round(rng.gauss(0, 1), 3) for j in range(features)},
                     "prediction": rng.randint(0, 1), "score": round(rng.random(), 3)}
            predictions.append(_record(n, event))
            labels.append(_record(n, {"model": model, "id": f"{model}-{n}", "ts": T0 + n + 1, "label": rng.randint(0, 1)}))
        state.handle_predictions(predictions[:250], _keep)
        pipeline = state.models[model]
        # Thresholds a window can reach but a stationary stream does not: no drift by
        # chance; the held tests are decided.
        calibrate_now(pipeline, compute=_thresholds)
        state.handle_predictions(predictions[250:], _keep)
        state.handle_labels(labels, _keep)
        calibrate_now(pipeline, compute=_thresholds)
        list(state.finish_batch())
        # The newest event time of each stream (event age), as the partition keeps it.
        state.newest_ts = {**getattr(state, "newest_ts", {}), (model, "prediction"): T0 + 399, (model, "label"): T0 + 400}
    return states


#: (threshold, warning threshold) per test: above anything a stationary stream of 100-value windows gives.
THRESHOLDS = {"psi": 2.0, "ks": 0.9, "cusum": 60.0, "missing_rate": 50.0, "chisquare": 60.0, "unseen_rate": 50.0,
              "unknown_features": 50.0, "decay": 8.0, "estimated_decay": 8.0, "reconstruction": 30.0}


def _thresholds(job) -> list:
    return [(THRESHOLDS[test], None) for test in job.tests]


def _record(offset: int, event: dict):
    return SimpleNamespace(topic="t", partition=0, offset=offset, timestamp=int((T0 + 10_000) * 1000),
                           value=json.dumps(event).encode(), key=event["model"].encode(), headers=[])


def _keep(record, reason, detail):
    raise AssertionError(f"dead letter {reason}: {detail}")


def _samples(metrics: Metrics) -> list:
    text = generate_latest(metrics.registry).decode()
    return [s for f in text_string_to_metric_families(text) for s in f.samples]


def series(metrics: Metrics) -> list[tuple[str, dict]]:
    return [(s.name, s.labels) for s in _samples(metrics)]


def count_by_model(samples) -> dict:
    counts: dict = {}
    for _, labels in samples:
        key = labels.get("model") or None
        counts[key] = counts.get(key, 0) + 1
    return counts


def drift(states, model: str, feature: str, test: str = "psi", warning: bool = False) -> None:
    for state in states.values():
        if model in state.models:
            detector = state.models[model].data_detectors[(test, feature)]
            if warning:
                detector.warning = True
            else:
                detector.drift, detector.n_detections = True, detector.n_detections + 1


M, F = 3, 20


@pytest.mark.parametrize("setting", ["all", "alerting", "none"])
def test_series_count_is_the_readme_formula(setting):
    states = build(M, F)
    drift(states, "m0", "f3")
    drift(states, "m0", "f7", test="missing_rate", warning=True)
    drift(states, "m1", "f3", test="ks")
    shown = {"m0": 2, "m1": 1, "m2": 0}
    metrics = Metrics(states, threading.Lock(), MetricsConfig(per_feature=setting))
    samples = series(metrics)
    counts = count_by_model(samples)
    for model, alerting in shown.items():
        assert counts[model] == per_model(setting, F, alerting), (setting, model, counts[model])
    assert counts[None] == PROCESS + PER_PARTITION * len(states), sorted(
        {name for name, labels in samples if "model" not in labels})
    assert len(samples) == PROCESS + PER_PARTITION * len(states) + sum(per_model(setting, F, a) for a in shown.values())
    # The summaries say what the per-feature series would.
    by = {(s.name, s.labels["model"], s.labels["detector"]): s.value for s in _samples(metrics)
          if s.name in ("driftd_features_in_drift", "driftd_features_in_warning")}
    assert by[("driftd_features_in_drift", "m0", "psi")] == 1 and by[("driftd_features_in_warning", "m0", "missing_rate")] == 1
    assert by[("driftd_features_in_drift", "m1", "ks")] == 1 and by[("driftd_features_in_drift", "m2", "psi")] == 0


def test_a_feature_keeps_its_series_for_the_hold_after_its_drift_ends():
    states = build(1, 4)
    now = [1_000.0]
    metrics = Metrics(states, threading.Lock(), MetricsConfig(per_feature="alerting", per_feature_hold_seconds=600),
                      clock=lambda: now[0])

    def features_shown():
        return {labels["feature"] for name, labels in series(metrics)
                if name == "driftd_drift_active" and labels["feature"].startswith("f")}

    assert features_shown() == set()
    drift(states, "m0", "f1")
    assert features_shown() == {"f1"}
    states[0].models["m0"].data_detectors[("psi", "f1")].drift = False  # back under the threshold
    now[0] += 599
    assert features_shown() == {"f1"}  # held: one series through a flapping drift
    now[0] += 2
    assert features_shown() == set()
    # An entry into drift that ended between two scrapes still shows.
    detector = states[0].models["m0"].data_detectors[("ks", "f2")]
    detector.n_detections += 1
    assert features_shown() == {"f2"}


def test_a_scrape_builds_the_per_detector_families_after_releasing_the_loops_lock(monkeypatch):
    """With 1,000 models the per-detector series and the KS p-values are most of a scrape's
    work (seconds at `all`): they are built from readings taken under the lock, once it is
    released, so the loop does not wait for them. The same series either way."""
    from prometheus_client.core import GaugeMetricFamily

    states = build(models=2, features=3)
    lock = threading.Lock()
    metrics = Metrics(states, lock, MetricsConfig(per_feature="all"))
    def drift_samples():
        text = generate_latest(metrics.registry).decode()
        return {(s.name, tuple(sorted(s.labels.items())), s.value) for f in text_string_to_metric_families(text)
                for s in f.samples if s.name.startswith(("driftd_drift_", "driftd_feature"))}

    before = drift_samples()
    built = []  # (family, lock held) for every sample added
    add = GaugeMetricFamily.add_metric

    def watched(self, labels, value, timestamp=None):
        built.append((self.name, lock.locked()))
        return add(self, labels, value, timestamp)

    monkeypatch.setattr(GaugeMetricFamily, "add_metric", watched)
    # A KS p-value not yet read since its test is computed after the lock too.
    import detectors.ks as ks
    computed = []
    p_value = ks.ks_p_value
    monkeypatch.setattr(ks, "ks_p_value", lambda *a, **k: computed.append(lock.locked()) or p_value(*a, **k))
    assert drift_samples() == before and len(before) > 50
    assert computed and not any(computed), computed
    statistic = [held for name, held in built if name == "driftd_drift_statistic"]
    assert statistic and not any(statistic), statistic
    # The per-model families (events processed, ages...) are still built under the lock.
    assert any(held for name, held in built if name == "driftd_event_age_seconds")


def test_a_models_counters_are_there_at_zero_before_their_first_count():
    """A trial's finding: a model with predictions and no label yet had no
    driftd_events_processed_total{kind="label"} series and no driftd_label_join_total at
    all, so the DriftdLabelJoinFailing runbook's queries read "no data", and the first
    count of a series born above 0 is one increase() cannot see."""
    config = from_dict({"models": {"m": {}}, "model_defaults": {"reference_size": 200}})
    state = PartitionState(0, config)
    state.handle_predictions([_record(n, {"model": "m", "id": str(n), "ts": T0 + n, "features": {"x": 1.0},
                                          "prediction": 1}) for n in range(5)], _keep)
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for s in _samples(Metrics({0: state}, threading.Lock(), MetricsConfig()))}
    assert samples[("driftd_events_processed_total", (("kind", "prediction"), ("model", "m")))] == 5
    assert samples[("driftd_events_processed_total", (("kind", "label"), ("model", "m")))] == 0
    from daemon.stream.join import OUTCOMES

    for outcome in OUTCOMES:
        assert samples[("driftd_label_join_total", (("model", "m"), ("outcome", outcome)))] == 0, outcome
