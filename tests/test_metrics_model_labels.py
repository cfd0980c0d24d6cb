"""Operator polish of the metrics, on real partition states (issue 11):

- the label-delay histogram's buckets come from ``join.label_delay_buckets_seconds``, fit
  delays of seconds to days by default, and a restored state whose buckets differ (an older
  checkpoint, or a changed list) is re-binned, never mis-read;
- ``driftd_dead_letter_total`` names the watched model of a dead letter (``model=""`` when
  it is not known), its totals per reason unchanged;
- ``driftd_label_join_pending`` is per model;
- driftd's own decay alerts are ``critical``, as the shipped rule (other drift: ``warning``).
"""

from __future__ import annotations

import json
import pickle
import threading
from types import SimpleNamespace

import numpy as np
import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from daemon.config import DEFAULT_LABEL_DELAY_BUCKETS, ConfigError, from_dict
from daemon.stream.decisions import Observation
from daemon.stream.events import REASONS
from daemon.stream.partition import PartitionState
from daemon.stream.partition_state import LEGACY_DELAY_BUCKETS
from daemon.web.metrics import Metrics

T0 = 1_700_000_000.0
MODEL_DEFAULTS = {"reference_size": 200, "window": 100, "stride": 50, "decay_reference_size": 100, "decay_window": 100}


def _config(models=("fraud",), **join):
    return from_dict({"models": {m: {} for m in models}, "model_defaults": MODEL_DEFAULTS, "join": join})


def _record(offset: int, value, key: str = "fraud", partition: int = 0, produced: float = T0 + 10_000):
    raw = value if isinstance(value, bytes) else json.dumps(value).encode()
    return SimpleNamespace(topic="t", partition=partition, offset=offset, timestamp=int(produced * 1000),
                           value=raw, key=key.encode(), headers=[])


def _prediction(i: int, model: str = "fraud", **extra) -> dict:
    return {"model": model, "id": f"{model}-{i}", "ts": T0 + i, "features": {"x": float(i % 7)},
            "prediction": i % 2, "score": 0.25, **extra}


def _samples(states: dict) -> dict:
    """(sample name, frozenset of labels) -> value, scraped from a Metrics over ``states``."""
    text = generate_latest(Metrics(states, threading.Lock()).registry).decode()
    return {(s.name, frozenset(s.labels.items())): s.value for f in text_string_to_metric_families(text) for s in f.samples}


def _buckets(samples: dict, model: str) -> list[tuple[float, float]]:
    """[(le, cumulative count)] of the model's label-delay histogram, in bound order."""
    out = []
    for (name, labels), value in samples.items():
        labels = dict(labels)
        if name == "driftd_label_delay_seconds_bucket" and labels["model"] == model:
            out.append((float(labels["le"]), value))
    return sorted(out)


def _quantile(buckets: list[tuple[float, float]], q: float) -> float:
    """Prometheus's histogram_quantile: linear interpolation inside the bucket that holds the rank."""
    total = buckets[-1][1]
    rank, lower, below = q * total, 0.0, 0.0
    for bound, cumulative in buckets:
        if cumulative >= rank:
            return lower + (bound - lower) * (rank - below) / (cumulative - below)
        lower, below = bound, cumulative
    raise AssertionError("rank beyond the +Inf bucket")


def _joined_with_delay(config, delay: float, n: int = 50) -> PartitionState:
    state = PartitionState(0, config)
    state.handle_predictions([_record(i, _prediction(i)) for i in range(n)], _no_dead_letters)
    labels = [{"model": "fraud", "id": f"fraud-{i}", "ts": T0 + i + delay, "label": i % 2} for i in range(n)]
    state.handle_labels([_record(i, v, produced=v["ts"]) for i, v in enumerate(labels)], _no_dead_letters)
    return state


def _no_dead_letters(record, reason, detail):
    raise AssertionError(f"dead letter {reason}: {detail}")


# -- label delay ------------------------------------------------------------------------------
def test_a_2_s_label_delay_reads_within_its_bucket_not_5_5_s():
    """The former fixed buckets (1, 10, 60 s ...) put a 2 s delay's median at 5.5 s, the
    middle of 1 to 10 s; the defaults put it between 1 and 5 s, and finer configured
    buckets closer still."""
    default = _buckets(_samples({0: _joined_with_delay(_config(), 2.0)}), "fraud")
    assert [b for b, _ in default] == [*map(float, DEFAULT_LABEL_DELAY_BUCKETS), float("inf")]
    assert 1.0 < _quantile(default, 0.5) <= 5.0 and _quantile(default, 0.5) != 5.5
    legacy = [(b, 0.0 if b < 10 else 50.0) for b in LEGACY_DELAY_BUCKETS]  # what the old buckets held
    assert _quantile(legacy, 0.5) == 5.5

    fine = _buckets(_samples({0: _joined_with_delay(_config(label_delay_buckets_seconds=[0.5, 1, 1.5, 2, 3]), 2.0)}), "fraud")
    assert [b for b, _ in fine] == [0.5, 1.0, 1.5, 2.0, 3.0, float("inf")]
    assert 1.5 < _quantile(fine, 0.5) <= 2.0
    # Label delays of days land in the day buckets, not in +Inf.
    days = _buckets(_samples({0: _joined_with_delay(_config(prediction_ttl_seconds=3 * 86400), 1.5 * 86400)}), "fraud")
    assert days[-1][1] == 50  # all joined: within the TTL
    assert 86400 < _quantile(days, 0.5) <= 172800


def test_a_restored_state_with_other_buckets_is_rebinned():
    # A checkpoint of the fixed-bucket days: no delay_buckets, 12 counts.
    old = _joined_with_delay(_config(), 2.0)
    counts = np.zeros(len(LEGACY_DELAY_BUCKETS), dtype=np.int64)
    counts[[1, 2, 5, 11]] = [3, 4, 5, 1]  # <= 10 s, <= 60 s, <= 1 h, beyond a week
    old.label_delay = {"fraud": [counts, 12345.0]}
    del old.__dict__["delay_buckets"]
    restored = pickle.loads(pickle.dumps(old))
    restored.attach(_config())
    new_counts, total = restored.label_delay["fraud"]
    bounds = [*map(float, DEFAULT_LABEL_DELAY_BUCKETS), float("inf")]
    assert restored.delay_buckets == tuple(bounds) and len(new_counts) == len(bounds)
    # Each old count goes to the first new bound at or above its own: 10 -> 15, 60 -> 60, 3600 -> 3600, inf -> inf.
    assert {bounds[i]: int(n) for i, n in enumerate(new_counts) if n} == {15.0: 3, 60.0: 4, 3600.0: 5, float("inf"): 1}
    assert total == 12345.0
    # And again under a changed list, after a round trip: the counts follow.
    again = pickle.loads(pickle.dumps(restored))
    again.attach(_config(label_delay_buckets_seconds=[30, 3600]))
    assert list(again.label_delay["fraud"][0]) == [3, 4 + 5, 1]  # 15 -> 30; 60 and 3600 -> 3600
    # The scrape is a valid histogram: ascending cumulative counts, +Inf = count.
    samples = _samples({0: again})
    buckets = _buckets(samples, "fraud")
    assert buckets == [(30.0, 3.0), (3600.0, 12.0), (float("inf"), 13.0)]
    assert samples[("driftd_label_delay_seconds_count", frozenset({"model": "fraud"}.items()))] == 13.0


@pytest.mark.parametrize("bounds, words", [
    ([], "at least one"), ([5, 1], "ascending"), ([1, 1], "ascending"), ([0, 1], "above 0"), ([-1, 5], "above 0"),
])
def test_bad_label_delay_buckets_fail_at_start_naming_the_key(bounds, words):
    with pytest.raises(ConfigError, match=words) as caught:
        _config(label_delay_buckets_seconds=bounds)
    assert caught.value.key == "join.label_delay_buckets_seconds"


# -- dead letters and pending joins per model ---------------------------------------------------
def test_dead_letters_name_the_watched_model():
    state = PartitionState(0, _config(models=("fraud", "eta")))
    rejected = []
    batch = [
        _record(0, _prediction(0)),                                  # fine
        _record(1, _prediction(1, prediction=0.5)),                  # wrong_type, fraud
        _record(2, _prediction(2, ts=5)),                            # bad_timestamp, fraud
        _record(3, _prediction(3, model="nope")),                    # unknown_model: not watched, no label
        _record(4, b"not json at all"),                              # not_json: no model known
        _record(5, _prediction(5, model="nope", ts=5)),              # bad_timestamp of a model not watched
        _record(6, _prediction(6, model="eta", prediction=2.5)),     # wrong_type, eta
        # Refused by the decoder, the model read from the raw event where it is watched:
        _record(7, {"model": "fraud", "id": "f-7", "ts": T0 + 7}),   # missing_field, fraud
        _record(8, b'{"model": "eta", "id": "e-8", "ts": 1700000008, "features": {"x": NaN}, "prediction": 1}'),
        _record(9, {"model": "nope", "id": "n-9", "ts": T0 + 9}),    # missing_field of a model not watched
        _record(10, {"model": "fraud", "id": "f-10", "ts": T0 + 10, "features": [1], "prediction": 1}),  # wrong_type
    ]
    state.handle_predictions(batch, lambda record, reason, detail: rejected.append((record.offset, reason)))
    assert rejected == [(1, "wrong_type"), (2, "bad_timestamp"), (3, "unknown_model"), (4, "not_json"),
                        (5, "bad_timestamp"), (6, "wrong_type"), (7, "missing_field"), (8, "non_finite"),
                        (9, "missing_field"), (10, "wrong_type")]
    samples = _samples({0: state})
    dead = {(dict(labels)["reason"], dict(labels)["model"]): v for (name, labels), v in samples.items()
            if name == "driftd_dead_letter_total"}
    assert {k: v for k, v in dead.items() if v} == {
        ("wrong_type", "fraud"): 2, ("bad_timestamp", "fraud"): 1, ("wrong_type", "eta"): 1,
        ("missing_field", "fraud"): 1, ("non_finite", "eta"): 1,
        ("unknown_model", ""): 1, ("not_json", ""): 1, ("bad_timestamp", ""): 1, ("missing_field", ""): 1}
    # Every reason without a model from the start; per watched model, the reasons it can have.
    assert {r for r, m in dead if m == ""} == set(REASONS)
    assert {(r, m) for r, m in dead if m} == {(r, m) for r in ("missing_field", "wrong_type", "non_finite", "too_deep",
                                                              "bad_timestamp", "internal_error") for m in ("fraud", "eta")}
    # Summed over models, the counts per reason are the state's (and /status's).
    for reason in REASONS:
        assert sum(v for (r, _), v in dead.items() if r == reason) == state.dead_letters[reason]


def test_pending_joins_are_per_model():
    config = _config(models=("fraud", "eta"))
    state = PartitionState(3, config)
    state.handle_predictions([_record(i, _prediction(i)) for i in range(3)]
                             + [_record(3 + i, _prediction(i, model="eta")) for i in range(2)], _no_dead_letters)
    state.handle_labels([_record(0, {"model": "eta", "id": "eta-9", "ts": T0 + 1, "label": 1})], _no_dead_letters)
    pending = {dict(labels)["model"]: v for (name, labels), v in _samples({3: state}).items()
               if name == "driftd_label_join_pending" and dict(labels)["partition"] == "3"}
    assert pending == {"fraud": 3, "eta": 3} and state.join.pending == 6
    # One model on the partition: the whole buffer is its own.
    alone = PartitionState(1, _config())
    alone.handle_predictions([_record(i, _prediction(i)) for i in range(4)], _no_dead_letters)
    assert {k: v for k, v in _samples({1: alone}).items() if k[0] == "driftd_label_join_pending"} == {
        ("driftd_label_join_pending", frozenset({"partition": "1", "model": "fraud"}.items())): 4}


# -- severities ----------------------------------------------------------------------------------
class _Decisions:
    """A model's pending decisions, as a pipeline hands them to the partition."""

    def __init__(self, observations):
        self.observations = list(observations)

    def pop_observations(self):
        out, self.observations = self.observations, []
        return out


def test_driftds_own_decay_alerts_are_critical_as_the_shipped_rule():
    state = PartitionState(0, _config())
    state.models["fraud"] = _Decisions([
        Observation("decay", "accuracy", True, T0, 10, "labels", 1, {"statistic": 4.2}),
        Observation("psi", "x", True, T0, 11, "data", 1, {"statistic": 0.4}),
        Observation("adwin", "<error>", True, T0, 12, "labels", 1, {}),
    ])
    severities = {(a.detector, a.status): a.severity for a in state.alerts()}
    assert severities == {("decay", "firing"): "critical", ("psi", "firing"): "warning", ("adwin", "firing"): "warning"}
