"""Features and tests a model's reference cannot test as usual (daemon/stream/columns.py):

- a feature missing in every reference event is a constant whose value is "missing": its
  ``value_change`` test fires when values appear (any type, any batch size), it is
  reported once as untestable (no distribution to test), and a wide CSV's empty
  ``feature.`` columns are that case;
- a reference too small for the contract skips the tests that can never fire, alone, with
  the reason: the column's other tests keep their thresholds and detect a drift; one
  test's calibration error is that test's alone.

Real pipelines fed decoded events (bench/feeding.py) or ``driftd replay``'s files, real
calibration. No timing is asserted.
"""

from __future__ import annotations

import csv
import json
import logging
import threading
from collections import Counter
from dataclasses import replace

import numpy as np
import pytest

from bench.feeding import Fed, predictions
from daemon.config import ModelConfig, from_dict
from daemon.offline.replay import Replay, events as replay_events
from daemon.stream.calibration_jobs import thresholds_of
from daemon.stream.columns import DataTests
from daemon.stream.events import BadEvent, decode_prediction
from daemon.stream.reference import ReferenceSample
from detectors import calibration
from daemon.web.status import partition_models

REASON = "missing in all 2000 reference events; values appearing are tested as a change (value_change)"
CHANGE = 3000  # the first event with a value of the feature missing in the reference


def fed_detections(config: ModelConfig, events: list, batch: int):
    """The model's detections, fed ``batch`` events at a time, and its pipeline."""
    fed = Fed("m", config)
    found = []
    for start in range(0, len(events), batch):
        found += fed.feed(events[start:start + batch])
    return found, fed.pipeline


def missing_then(values: list, seed: int = 0, absent_too: bool = True) -> list:
    """5,000 events: x ~ N(0, 1), flag constant 0, and feature ``never`` missing (null, or
    absent from every third event) until event CHANGE, then ``values`` (cycled)."""
    rng = np.random.default_rng(seed)
    n = 5000
    never = [None] * CHANGE + [values[i % len(values)] for i in range(n - CHANGE)]
    events = predictions("m", {"x": rng.normal(size=n).tolist(), "flag": [0] * n, "never": never},
                         (rng.random(n) < 0.5).astype(int).tolist())
    if absent_too:
        for i in range(0, CHANGE, 3):
            del events[i].features["never"]
    return events


CONFIG = ModelConfig(reference_size=2000, window=500, stride=100, ert=1e6)


@pytest.mark.parametrize("values", [
    np.random.default_rng(1).normal(5, 1, 2000).tolist(),  # numbers, N(5, 1)
    ["promo-a", "promo-b"],  # strings
], ids=["numbers", "strings"])
def test_values_appearing_in_a_feature_missing_in_every_reference_event_are_detected(values):
    events = missing_then(values)
    runs = {batch: fed_detections(CONFIG, events, batch) for batch in (1, 37, 500)}
    found, pipeline = runs[500]
    # The same detections whatever the batch size: one entry of value_change, at the first
    # test whose window holds values (every stride of 100 after the reference).
    assert [(d.at, d.test, d.column) for d in found] == [(3099, "value_change", "never")]
    assert all(other == found for other, _ in runs.values())
    # Reported once, as it was, with what is tested; no missing-rate test (it cannot rise);
    # values appearing are a detection, not a cause to rebuild the reference.
    assert pipeline.untestable == {"never": REASON} and pipeline.builds == 1
    assert ("missing_rate", "never") not in pipeline.data_detectors
    assert not [key for key in pipeline.skipped if key[1] == "never"]
    # The constant's mechanism: the same null (no flag in 2,000), so the same threshold as
    # the constant feature's, under the same share (a column's values weigh 1).
    tests = pipeline.watch.tests
    never, flag = tests.columns["never"].tests["value_change"], tests.columns["flag"].tests["value_change"]
    assert never.null_model() == flag.null_model() and never.threshold == flag.threshold
    assert tests.weights[("value_change", "never")] == tests.weights[("value_change", "flag")] == 1.0
    assert tests.schema[("missing", "never")] == CHANGE - 2000  # counted while it stayed missing


def test_a_feature_that_stays_missing_raises_nothing():
    found, pipeline = fed_detections(CONFIG, missing_then([None]), 500)
    assert found == [] and pipeline.untestable == {"never": REASON}


def test_a_feature_absent_from_every_reference_event_is_an_unknown_feature():
    # Never named in the reference: not a column, but its name appearing is the change.
    events = missing_then([1.0, 2.0], absent_too=False)
    for e in events[:CHANGE]:
        del e.features["never"]
    found, pipeline = fed_detections(CONFIG, events, 500)
    assert [(d.at, d.test, d.column) for d in found] == [(3099, "unknown_features", "<features>")]
    assert pipeline.unknown_features == ["never"] and pipeline.untestable == {}


@pytest.mark.parametrize("declared, value, refused", [
    (None, "yes", False), (None, 7, False),  # its type is unknown: any value is a change, no dead letter
    ("categorical", 7, False), ("numeric", "yes", True),  # a declared type is checked as ever
])
def test_the_type_of_a_feature_missing_in_the_reference_is_its_declared_one(declared, value, refused):
    config = replace(CONFIG, features={"never": declared} if declared else {})
    events = missing_then([value])
    found, pipeline = fed_detections(config, events[:2000], 500)
    assert pipeline.features["never"] == (declared or "categorical")
    later = decode_prediction(json.dumps({"model": "m", "id": "z", "ts": 1.0e9, "features": {"never": value},
                                          "prediction": 1}).encode())
    if refused:
        with pytest.raises(BadEvent, match="never"):
            pipeline.check(later)
    else:
        pipeline.check(later)
        pipeline.observe_predictions([later] * 500)
        assert pipeline.watch.tests.columns["never"].tests["value_change"].drift


def test_a_wide_csv_whose_feature_column_is_empty_in_the_reference_alerts_and_says_so(tmp_path, caplog):
    """The trial's case: ``driftd replay`` of a CSV with one column per feature, promo
    empty until the promotion starts. Its name is in every row: the change is promo's
    values appearing, detected, reported in /status and the untestable gauge."""
    from prometheus_client import generate_latest

    from daemon.web.metrics import Metrics

    rng = np.random.default_rng(4)
    path = tmp_path / "events.csv"
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["model", "id", "ts", "prediction", "feature.x", "feature.promo"])
        for i in range(5000):
            writer.writerow(["m", str(i), 1_700_000_000 + i, i % 2, round(float(rng.normal()), 4),
                             "" if i < CHANGE else round(float(rng.normal(5, 1)), 4)])
    config = from_dict({"kafka": {"predictions_topic": "predictions", "labels_topic": "labels"},
                        "models": {"m": {"reference_size": 2000, "window": 500, "stride": 100, "ert": 1e6}},
                        "alerts": {"clear_after": 3, "cooldown_seconds": 0}})
    with caplog.at_level(logging.WARNING):
        result = Replay(config).run(replay_events([(str(path), False)]))
    assert not result.dead_letters
    firing = [(a.detector, a.feature) for a in result.alerts if a.status == "firing"]
    assert firing == [("value_change", "promo")]
    state = result.states[0]
    assert partition_models(state)["m"]["untestable_features"] == {"promo": REASON}
    text = generate_latest(Metrics({0: state}, threading.Lock()).registry).decode()
    assert 'driftd_untestable_features{model="m"} 1.0' in text
    said = [r.getMessage() for r in caplog.records if "promo" in r.getMessage()]
    assert said == [f"model m: the distribution of promo is not tested: {REASON}"]  # once


# -- a reference too small for the contract --------------------------------------------------

def small_reference_events(seed: int) -> list:
    """3,000 events of a model with three numeric features (N(10, 2)), a count and a
    score; x0 moves to N(16, 2) at event 1,500."""
    rng = np.random.default_rng(seed)
    n = 3000
    columns = {f"x{j}": rng.normal(10, 2, n).round(2) for j in range(3)}
    columns["x0"][1500:] += 6
    columns["count"] = rng.poisson(3, n)
    return predictions("m", columns, (np.arange(n) % 2).tolist(), rng.random(n).round(3).tolist())


def test_a_reference_of_30_skips_only_the_tests_that_can_never_fire_and_detects_a_drift():
    """Reference 30 at the default contract (ert 1e8): no CUSUM threshold is reachable.
    Each CUSUM is skipped alone, saying so; PSI, KS and the missing-rate tests of the
    same columns keep theirs, and the drift of x0 is found."""
    events = small_reference_events(0)
    config = ModelConfig(reference_size=30)
    runs = {batch: fed_detections(config, events, batch) for batch in (1, 37, 500)}
    found, pipeline = runs[500]
    assert all(other == found for other, _ in runs.values())
    assert {(d.test, d.column) for d in found} == {("psi", "x0"), ("ks", "x0")}
    assert all(1500 <= d.at < 1500 + config.window for d in found)
    numeric = ["x0", "x1", "x2", "count", "<score>"]
    detectors = pipeline.data_detectors
    for column in numeric:
        assert ("psi", column) in detectors and ("ks", column) in detectors, column
        assert column == "<score>" or ("missing_rate", column) in detectors
        why = pipeline.skipped[("cusum", column)]
        assert why.startswith("can never fire at this contract: ") and "a larger reference_size" in why, why
    assert not any("calibration failed" in why for why in pipeline.skipped.values()), pipeline.skipped
    assert not set(numeric) & set(pipeline.untestable)


# -- one test's calibration failure is its own ---------------------------------------------

def model_tests() -> DataTests:
    sample = ReferenceSample(size=500, declared={}, max_features=10)
    rng = np.random.default_rng(2)
    for _ in range(500):
        sample.add({"amount": float(rng.normal()), "gappy": None if rng.random() < 0.2 else float(rng.normal())},
                   prediction=int(rng.integers(2)), score=None)
    return DataTests(sample, ModelConfig(window=100, stride=10, ert=10_000), Counter())


def test_a_test_whose_calibration_fails_is_skipped_alone():
    tests = model_tests()
    job = next(j for j in tests.calibration_jobs() if j.column == "amount")
    assert job.tests == ("psi", "ks", "cusum", "missing_rate")
    normal = thresholds_of(job)
    # The missing-rate test's calibration fails (an ERT below a stride): its entry is the
    # error, the value tests' thresholds are those of the whole job, bit for bit.
    erts = list(job.erts)
    erts[3] = 1.0
    got = thresholds_of(replace(job, erts=tuple(erts)))
    assert got[:3] == normal[:3]
    assert got[3] == "ValueError: ert must be at least stride (10) values, got 1.0"
    # The CUSUM's fails inside the union of the value tests: PSI and KS are calibrated
    # again for their own union at their shares (the same thresholds, to rounding), the
    # missing-rate test as before.
    broken = calibration.NullModel("cusum", job.null_models[2].counts, 100, 10, (("shift", 0.5),))
    models = list(job.null_models)
    models[2] = broken
    got = thresholds_of(replace(job, null_models=tuple(models)))
    assert got[0] == pytest.approx(normal[0], rel=1e-9) and got[1] == pytest.approx(normal[1], rel=1e-9)
    assert got[2] == "KeyError: 'z'" and got[3] == normal[3]
    tests.apply(job, got, None)
    column = tests.columns["amount"]
    assert sorted(column.tests) == ["ks", "missing_rate", "psi"] and all(d.calibrated for d in column.tests.values())
    assert tests.skipped[("cusum", "amount")] == "calibration failed: KeyError: 'z'"
    assert "amount" not in tests.untestable
    # Every test failing is the whole job's error, as it always was.
    with pytest.raises(ValueError, match="ert must be at least stride"):
        thresholds_of(replace(job, erts=(1.0,) * 4, joint=None))


def test_a_column_left_without_a_test_of_its_values_is_untestable():
    tests = model_tests()
    job = next(j for j in tests.calibration_jobs() if j.column == "gappy")
    thresholds = thresholds_of(job)
    failed = ["RuntimeError: no" if test != "missing_rate" else t for test, t in zip(job.tests, thresholds)]
    tests.apply(job, failed, None)
    assert sorted(tests.columns["gappy"].tests) == ["missing_rate"]
    assert tests.untestable["gappy"] == ("psi: calibration failed: RuntimeError: no; ks: calibration failed: "
                                         "RuntimeError: no; cusum: calibration failed: RuntimeError: no")


# -- identifiers: a categorical whose reference levels are nearly all seen once ------------

def identifier_events(seed: int = 0) -> list:
    """5,000 events: x ~ N(0, 1); ``request`` a fresh id per event, missing from event
    CHANGE on; ``amount`` distinct floats with one stray string (categorical by its type);
    ``sku`` long-tailed (a few frequent levels, 60% of values from 20,000 rare ids)."""
    rng = np.random.default_rng(seed)
    n = 5000
    request = [f"req-{rng.integers(2**62):x}" for _ in range(CHANGE)] + [None] * (n - CHANGE)
    amount = rng.lognormal(3, 1, n).tolist()
    amount[7] = "n/a"
    sku = [f"sku-{k}" if k < 5 else f"sku-{rng.integers(20_000) + 5}"
           for k in rng.choice(6, size=n, p=[0.1] * 4 + [0.0, 0.6])]
    return predictions("m", {"x": rng.normal(size=n).tolist(), "request": request, "amount": amount, "sku": sku},
                       (rng.random(n) < 0.5).astype(int).tolist())


def test_an_identifier_is_untestable_with_the_reason_and_its_missing_rate_still_tested(caplog):
    """A column of ids (or of numbers made categorical by one string) has a level test that
    sees almost nothing: a stationary window holds almost only levels the reference never
    had. It was kept anyway, silently never firing, and not reported as untestable."""
    events = identifier_events()
    with caplog.at_level(logging.WARNING):
        runs = {batch: fed_detections(CONFIG, events, batch) for batch in (1, 37, 500)}
    found, pipeline = runs[500]
    assert all(other == found for other, _ in runs.values())
    for column, seen_once in (("request", "2,000 of its 2,000"), ("amount", "2,000 of its 2,000")):
        why = pipeline.untestable[column]
        assert why.startswith(f"{seen_once} present reference values are levels seen once"), why
        assert "declare it ignore under features:" in why
        assert {test for test, c in pipeline.data_detectors if c == column} == {"missing_rate"}
    # The stray string is named too, with the way out (declare it numeric), in the same
    # line: it also said "amount is tested as categorical", which it is not.
    line = next(r.getMessage() for r in caplog.records if "distribution of amount is not tested" in r.getMessage())
    assert "; 1,999 of its 2,000 present reference values are numbers, the others strings ('n/a'" in line, line
    assert "declare it numeric under features:" in line
    assert "amount is tested as categorical" not in caplog.text
    # A long-tailed categorical whose frequent levels hold 40% of the values is still tested.
    assert "sku" not in pipeline.untestable
    assert {test for test, c in pipeline.data_detectors if c == "sku"} >= {"chisquare", "cusum"}
    # The ids stopping (missing from CHANGE on) is still seen, by its missing-rate test.
    assert {(d.test, d.column) for d in found} == {("missing_rate", "request")}
    assert all(CHANGE <= d.at < CHANGE + CONFIG.window for d in found)


def test_declared_numeric_the_stray_string_column_is_tested_as_numbers():
    events = identifier_events()
    config = replace(CONFIG, features={"amount": "numeric"})
    fed = Fed("m", config)
    fed.feed(events)
    assert "amount" not in fed.pipeline.untestable
    assert {test for test, c in fed.pipeline.data_detectors if c == "amount"} >= {"psi", "ks", "cusum"}
