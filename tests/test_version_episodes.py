"""A new model version without a feature ends the alert episodes of that feature's tests.

Before, an episode of a test the new version no longer had (a dropped feature) stayed
open for ever: no decision of that test would come again to resolve it. Real parts: the
partition state, its pipelines, their calibration (in this thread, as replay does) and the
alert episodes; the records are built in memory.
"""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest

from daemon.config import ModelConfig, from_dict
from daemon.runtime.calibrator import calibrate_now
from daemon.stream.partition import PartitionState
from daemon.stream.pipeline import ModelPipeline
from daemon.web.status import partition_models

T0 = 1_700_000_000.0
CONFIG = {"models": {"fraud": {}}, "alerts": {"clear_after": 2, "cooldown_seconds": 0},
          "model_defaults": {"reference_size": 300, "window": 100, "stride": 50, "ert": 20_000}}


def _stream() -> list:
    """Version 1 (features a, b): 300 reference events, then b shifted by 4 sd for 400; then
    version 2 (feature a only): 300 reference events and 200 more."""
    rng = np.random.default_rng(11)
    events = []
    for i in range(1200):
        version = "1" if i < 700 else "2"
        features = {"a": round(float(rng.normal()), 4)}
        if version == "1":
            features["b"] = round(float(rng.normal() + (4.0 if i >= 300 else 0.0)), 4)
        events.append({"model": "fraud", "id": str(i), "ts": T0 + i, "features": features,
                       "prediction": int(rng.random() < 0.5), "model_version": version})
    return [SimpleNamespace(topic="predictions", partition=0, offset=i, timestamp=int((T0 + 10_000) * 1000),
                            value=json.dumps(e).encode(), key=b"fraud", headers=[]) for i, e in enumerate(events)]


def _alerts(records: list, batch: int, calibrate_each_batch: bool) -> list:
    state = PartitionState(0, from_dict(CONFIG))
    alerts = []

    def reject(record, reason, detail):
        raise AssertionError(f"dead letter {reason}: {detail}")

    for start in range(0, len(records), batch):
        state.handle_predictions(records[start:start + batch], reject)
        alerts += list(state.finish_batch())
        if calibrate_each_batch:
            calibrate_now(state)
            alerts += list(state.alerts())
    calibrate_now(state)
    alerts += list(state.alerts())
    return alerts


@pytest.fixture(scope="module")
def records():
    return _stream()


def test_the_dropped_features_episodes_resolve_when_the_new_version_is_built(records):
    alerts = _alerts(records, batch=50, calibrate_each_batch=True)
    fired = {(a.detector, a.feature) for a in alerts if a.status == "firing"}
    assert ("ks", "b") in fired, sorted(fired)
    resolved = {(a.detector, a.feature): a for a in alerts if a.status == "resolved"}
    # Every episode of b (and of the two features together) ends with the version-2 build,
    # at the event that completed its reference (event 999), with the reason.
    for key in sorted(k for k in fired if k[1] in ("b", "<all>")):
        assert key in resolved, (key, sorted(resolved))
        end = resolved[key]
        assert end.detail["reason"] == "test_gone" and end.detail["model_version"] == "2", end.detail
        assert end.event_time == T0 + 999 and end.detail["started_at"] < T0 + 700, end
    # No episode is left open.
    last = {}
    for a in alerts:
        last[(a.detector, a.feature)] = a.status
    assert set(last.values()) == {"resolved"}, last


@pytest.mark.parametrize("batch, calibrate_each_batch", [(1, True), (137, True), (700, False), (1200, False)])
def test_the_same_alerts_whatever_the_batches_and_the_calibrations_speed(records, batch, calibrate_each_batch):
    """Calibrated after each batch, or only once the version has changed (version 1's held
    decisions are then decided at version 2's build, before the ends): the same alerts."""
    expected = [(a.id, a.status, a.detector, a.feature, a.event_time) for a in _alerts(records, 50, True)]
    got = [(a.id, a.status, a.detector, a.feature, a.event_time) for a in _alerts(records, batch, calibrate_each_batch)]
    assert sorted(got) == sorted(expected)


def test_an_episode_a_new_version_keeps_ends_at_its_reference_with_the_reason():
    """A new user's finding: a new model version (a rollback) started a reference on data
    already drifted, and its clean tests then resolved every open episode with nothing
    saying why, read as "the drift went away". Version 2 keeps b, still shifted: b's
    episodes end at the event that completed version 2's reference, reason
    new_reference, and do not fire again (the new reference has the shift)."""
    records = _stream()
    for record in records:
        event = json.loads(record.value)
        if event["model_version"] == "2":
            event["features"]["b"] = round(float(np.random.default_rng(int(event["id"])).normal() + 4.0), 4)
            record.value = json.dumps(event).encode()
    for batch, calibrate_each_batch in ((50, True), (1200, False)):
        alerts = _alerts(records, batch, calibrate_each_batch)
        b = [a for a in alerts if a.feature == "b"]
        assert {a.detector for a in b if a.status == "firing"} >= {"ks", "psi"}, b
        assert all(a.event_time < T0 + 700 for a in b if a.status == "firing"), b
        resolved = [a for a in b if a.status == "resolved"]
        assert {a.detector for a in resolved} == {a.detector for a in b if a.status == "firing"}, b
        for a in resolved:
            assert a.event_time == T0 + 999 and a.detail["reason"] == "new_reference", a
            assert a.detail["model_version"] == "2" and "reference is complete" in a.detail["why"]
            assert a.detail["previous_version"] == "1", a


def test_the_detection_counters_go_on_across_a_new_version():
    """A new user's finding: driftd_drift_detections_total fell back to 0 at a new model
    version (its detectors start afresh), so an increase() over the change could see none
    of the new detections. The exported counts go on from the earlier version's."""
    from daemon.web.metrics import _read_detectors

    records = _stream()
    state = PartitionState(0, from_dict(CONFIG))

    def reject(record, reason, detail):
        raise AssertionError(detail)

    exported = []  # (detections, tests) of ks/a after each batch
    for start in range(0, len(records), 50):
        state.handle_predictions(records[start:start + 50], reject)
        calibrate_now(state)
        list(state.alerts())
        pipeline = state.models["fraud"]
        readings = {(name, feature): (d, t) for name, feature, *_, d, t, _ in _read_detectors(
            [("fraud", pipeline, {})], None)[0][2]}
        if ("ks", "a") in readings:
            exported.append(readings[("ks", "a")])
    assert pipeline.builds == 2 and pipeline.ended_counts[("ks", "a")][1] > 0
    assert all(later >= earlier for earlier, later in zip(exported, exported[1:])), exported  # never back
    # Version 1 tested a 400 times (stride 50: 8 tests); version 2, 200 more values: 4 more.
    assert exported[-1][1] == pipeline.ended_counts[("ks", "a")][1] + pipeline.data_detectors[("ks", "a")].n_tests
    # /status says the same totals beside the current detector's own counts.
    shown = partition_models(state)["fraud"]["detectors"]["ks/a"]
    assert (shown["detections_total"], shown["tests_total"]) == exported[-1]
    assert shown["n_tests"] == pipeline.data_detectors[("ks", "a")].n_tests < shown["tests_total"]


def test_the_per_test_sums_over_features_go_on_when_a_feature_is_dropped():
    """driftd_feature_drift_detections_total summed the current version's features only:
    version 2 without feature b took b's detections out of the sum, which fell (read by
    Prometheus as a counter reset, and by increase() as new detections)."""
    from daemon.web.metrics import _feature_tests, _read_detectors

    records = _stream()
    state = PartitionState(0, from_dict(CONFIG))

    def reject(record, reason, detail):
        raise AssertionError(detail)

    sums = []  # the ks entries summed over the model's features, after each batch
    for start in range(0, len(records), 50):
        state.handle_predictions(records[start:start + 50], reject)
        calibrate_now(state)
        list(state.alerts())
        pipeline = state.models["fraud"]
        by_test = dict(_read_detectors([("fraud", pipeline, _feature_tests(pipeline))], None)[0][3])
        sums.append(sum(entry[2] for entry in by_test.get("ks", [])))
    assert pipeline.builds == 2 and pipeline.ended_counts[("ks", "b")][0] >= 1  # b drifted in version 1
    assert all(later >= earlier for earlier, later in zip(sums, sums[1:])), sums
    assert sums[-1] == pipeline.ended_counts[("ks", "a")][0] + pipeline.ended_counts[("ks", "b")][0] + \
        pipeline.data_detectors[("ks", "a")].n_detections


def _versions(names: list) -> list:
    return [SimpleNamespace(features={"x": float(i % 7)}, prediction=1, score=0.5, model_version=name,
                            ts=1.75e9 + i) for i, name in enumerate(names)]


def test_two_versions_interleaved_are_warned_about_once_and_shown(caplog):
    """A new user's finding: during a rollout, late predictions of the old version made
    the version flap (each change starts a version anew: a new reference, the label tests
    anew), silently. Going back to the version before while the other's reference is
    incomplete is counted, shown in /status and warned about once at the third time."""
    flapping = ModelPipeline("m", ModelConfig(reference_size=100))
    with caplog.at_level("WARNING", logger="driftd.stream.pipeline"):
        flapping.observe_predictions(_versions(["a"] * 150 + ["b", "a"] * 10 + ["b"] * 10))
    warned = [r.getMessage() for r in caplog.records if "went back" in r.getMessage()]
    assert flapping.version_returns == 20 and len(warned) == 1  # 21 changes, the first to b no return
    assert "model m: model_version went back to" in warned[0] and "rolling deployment" in warned[0]
    caplog.clear()
    rollback = ModelPipeline("m", ModelConfig(reference_size=100))  # a -> b -> a, b's reference complete
    with caplog.at_level("WARNING", logger="driftd.stream.pipeline"):
        rollback.observe_predictions(_versions(["a"] * 150 + ["b"] * 150 + ["a"] * 150))
    assert rollback.version_returns == 0 and rollback.version_changes == 2
    assert not [r for r in caplog.records if "went back" in r.getMessage()]


def test_the_status_shows_version_changes_and_returns():
    state = PartitionState(0, from_dict({"models": {"m": {"reference_size": 100}}}))
    pipeline = state.models["m"] = ModelPipeline("m", ModelConfig(reference_size=100))
    pipeline.observe_predictions(_versions(["a"] * 10 + ["b", "a", "b", "a"]))
    status = partition_models(state)["m"]
    assert (status["version_changes"], status["version_returns"]) == (4, 3)  # (a -> b is not a return)
