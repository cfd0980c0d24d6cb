"""No record can stop the loop: whatever a record holds, the partition's state either
processes it or sends it to the dead-letter topic with a reason, and every consumed record
is accounted for (processed + duplicates + dead-lettered == consumed). Event time is
bounded, so that no single event moves the clock for the others.

These run :class:`PartitionState` (the daemon's own decoding, checks, join, pipelines and
alerts) on consumer records built in the test; the same cases on the broker, with a
``driftd run`` process, are in test_daemon_records.py.
"""

from __future__ import annotations

import json
import logging
import math
import pickle
import time
from collections import Counter

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kafka.consumer.fetcher import ConsumerRecord

from daemon.config import from_dict
from daemon.stream.events import REASONS
from daemon.stream.partition import PartitionState
from daemon.stream.pipeline import ModelPipeline

NOW = time.time()
BASE = NOW - 30 * 86400  # the warm-up stream's time: a month ago
SMALL = {"reference_size": 40, "window": 20, "stride": 10, "ert": 200, "decay_reference_size": 20, "decay_window": 20}


def make_config(**join):
    return from_dict({
        "kafka": {"max_event_bytes": 20_000},
        "join": join,
        "model_defaults": SMALL,
        "models": {"clf": {}, "reg": {"task": "regression", "decay_metrics": ["mae", "rmse"]}},
    })


def record(topic: str, offset: int, value, timestamp_ms: int = -1, key=b"k", headers=()) -> ConsumerRecord:
    return ConsumerRecord(topic, 0, -1, offset, timestamp_ms, 0, key, value, list(headers), None,
                          len(key or b""), len(value or b""), -1)


def encode(event: dict) -> bytes:
    return json.dumps(event).encode()


class Rejects:
    """The dead-letter callback: collects (offset, reason, detail)."""

    def __init__(self):
        self.letters = []

    def __call__(self, record, reason, detail):
        assert isinstance(detail, str)
        self.letters.append((record.topic, record.offset, reason, detail))

    def reasons(self) -> Counter:
        return Counter(reason for _, _, reason, _ in self.letters)


def valid_stream(model: str, n: int, start: int = 0, base: float = BASE) -> tuple[list, list]:
    """n predictions and their labels for ``model`` (clf: classes 0/1; reg: numbers)."""
    predictions, labels = [], []
    for i in range(start, start + n):
        ts = base + i
        features = {"amount": float(i % 17), "country": "DEFRIT"[2 * (i % 3):2 * (i % 3) + 2]}
        if model == "clf":
            prediction, label = i % 2, (i // 3) % 2
        else:
            prediction, label = float(i % 11), float(i % 7)
        predictions.append(encode({"model": model, "id": f"{model}-{i}", "ts": ts, "features": features,
                                   "prediction": prediction, "score": 0.5}))
        labels.append(encode({"model": model, "id": f"{model}-{i}", "ts": ts + 5, "label": label}))
    return predictions, labels


class Feeder:
    """Feeds values to a state as the consumer would: offsets per topic, batches."""

    def __init__(self, state: PartitionState):
        self.state = state
        self.next = Counter()
        self.rejects = Rejects()

    def feed(self, topic: str, values: list, timestamp_ms: int = -1) -> list:
        records = []
        for value in values:
            records.append(record(topic, self.next[topic], value, timestamp_ms))
            self.next[topic] += 1
        if records:
            handle = self.state.handle_predictions if topic == "predictions" else self.state.handle_labels
            handle(records, self.rejects)
            list(self.state.finish_batch())
        return records


def accounted(state: PartitionState, rejects: Rejects) -> int:
    """Records the state accounts for: processed, duplicates (counted by the join, not
    processed) and dead letters."""
    duplicates = sum(v for (_, outcome), v in state.join.counts.items() if outcome == "duplicate_prediction")
    return sum(state.processed.values()) + duplicates + len(rejects.letters)


@pytest.fixture(scope="module")
def warm() -> bytes:
    """A state whose models have their reference, detectors and label baseline: arbitrary
    records then meet every stage of the pipeline. Pickled (as a checkpoint is), so that
    each example starts from a fresh copy."""
    config = make_config()
    state = PartitionState(0, config)
    feeder = Feeder(state)
    for model in ("clf", "reg"):
        predictions, labels = valid_stream(model, 120)
        for start in range(0, 120, 30):
            feeder.feed("predictions", predictions[start:start + 30])
            feeder.feed("labels", labels[start:start + 30])
    assert not feeder.rejects.letters, feeder.rejects.letters
    assert all(state.models[m].reference_complete for m in ("clf", "reg"))
    return pickle.dumps(state)


def fresh(warm: bytes) -> PartitionState:
    state = pickle.loads(warm)
    state.attach(make_config())
    return state


# -- arbitrary events ------------------------------------------------------------------------

class Raw:
    """A JSON text inserted as is: NaN, huge numbers, deep nesting."""

    def __init__(self, text: bytes):
        self.text = text

    def __repr__(self):
        return f"Raw({self.text[:40]!r}{'...' if len(self.text) > 40 else ''})"


def to_json(value) -> bytes:
    """JSON text of ``value``; a list of pairs (``Pairs``) is an object that may repeat a
    key; ``Raw`` goes in verbatim."""
    if isinstance(value, Raw):
        return value.text
    if isinstance(value, Pairs):
        return b"{" + b", ".join(json.dumps(k).encode() + b": " + to_json(v) for k, v in value) + b"}"
    if isinstance(value, list):
        return b"[" + b", ".join(to_json(v) for v in value) + b"]"
    if isinstance(value, dict):
        return to_json(Pairs(value.items()))
    if isinstance(value, float) and not math.isfinite(value):
        return b"NaN" if value != value else (b"Infinity" if value > 0 else b"-Infinity")
    return json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass")


class Pairs(list):
    pass


extreme_floats = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([1e308, -1e308, 3.4e38, 3.5e38, -3.5e38, 5e-324, -0.0, 1.76e12, 1.76e9]),
)
big_ints = st.one_of(st.integers(), st.integers(min_value=2**63, max_value=2**1100),
                     st.integers(min_value=-(2**1100), max_value=-(2**63)), st.just(10**400))


texts = st.one_of(
    st.text(max_size=20),
    st.text(alphabet=st.characters(min_codepoint=0x80, max_codepoint=0x10FFFF), max_size=10),
    st.integers(0, 40_000).map(lambda n: "x" * n),  # up to twice max_event_bytes
)
deep = st.integers(1, 3000).map(lambda n: Raw(b"[" * n + b"]" * n))
scalars = st.one_of(st.none(), st.booleans(), extreme_floats, big_ints, texts,
                    st.sampled_from([Raw(b"NaN"), Raw(b"-Infinity"), Raw(b"1e400"), Raw(b"-1e400"), Raw(b"1" + b"0" * 400)]))
json_values = st.recursive(scalars | deep, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
                           max_leaves=6)
timestamps = st.one_of(
    st.floats(BASE, BASE + 200),  # in time
    st.sampled_from([BASE * 1000, NOW + 3 * 86400, NOW + 3600, 0.0, -1.0, 946_684_799.0, 1e308]),
    st.sampled_from(["2025-11-23T10:00:00Z", "2025-11-23T10:00:00", "yesterday", "9999-12-31T23:59:59Z",
                     "0001-01-01T00:00:00+00:00"]),
    json_values,
)
models = st.one_of(st.sampled_from(["clf", "reg", "unknown"]), json_values)
ids = st.one_of(st.integers(0, 200).map(lambda i: f"clf-{i}"), st.integers(0, 200).map(lambda i: f"reg-{i}"),
                st.integers(0, 200), json_values)
features = st.one_of(
    st.dictionaries(st.sampled_from(["amount", "country", "other"]) | st.text(max_size=8), json_values | extreme_floats, max_size=4),
    json_values,
)
targets = st.one_of(st.integers(-1, 2), extreme_floats, big_ints, st.sampled_from(["0", "1", "fraud"]), json_values)
scores = st.one_of(st.none(), extreme_floats, st.dictionaries(st.text(max_size=4), extreme_floats | json_values, max_size=3), json_values)


@st.composite
def events(draw, kind: str) -> bytes:
    if draw(st.integers(0, 19)) == 0:  # not even JSON
        return draw(st.binary(max_size=200))
    fields = {"model": models, "id": ids, "ts": timestamps}
    if kind == "prediction":
        fields.update(features=features, prediction=targets, score=scores, model_version=st.sampled_from([None, "1", 2]) | json_values)
    else:
        fields["label"] = targets
    pairs = Pairs()
    for name, strategy in fields.items():
        if draw(st.integers(0, 9)) > 0:  # sometimes missing
            pairs.append((name, draw(strategy)))
    if draw(st.booleans()):  # an unknown field, perhaps nested deep
        pairs.append(("extra", draw(json_values)))
    if pairs and draw(st.integers(0, 9)) == 0:  # a key twice
        name, _ = draw(st.sampled_from(list(pairs)))
        pairs.append((name, draw(fields.get(name, json_values))))
    return to_json(pairs)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(batches=st.lists(st.tuples(st.sampled_from(["predictions", "labels"]),
                                  st.lists(st.one_of(events("prediction"), events("label")), min_size=1, max_size=8)),
                        min_size=1, max_size=4))
def test_no_record_stops_the_loop_and_every_record_is_accounted_for(warm, batches):
    state = fresh(warm)
    feeder = Feeder(state)
    before = accounted(state, feeder.rejects)
    consumed = 0
    for topic, values in batches:
        feeder.feed(topic, values)  # raises if anything escapes
        consumed += len(values)
    assert accounted(state, feeder.rejects) - before == consumed
    reasons = feeder.rejects.reasons()
    assert set(reasons) <= set(REASONS)
    # Nothing was contained as a bug: every refusal has a reason of its own.
    assert "internal_error" not in reasons, [d for _, _, r, d in feeder.rejects.letters if r == "internal_error"]


# -- the records, one by one ---------------------------------------------------------

def test_an_oversize_record_is_a_dead_letter(warm):
    state = fresh(warm)
    feeder = Feeder(state)
    feeder.feed("predictions", [b"x" * 2_000_000, b'{"model": "clf", "extra": "' + b"y" * 30_000 + b'"}'])
    assert [r for _, _, r, _ in feeder.rejects.letters] == ["oversize", "oversize"]


def test_a_label_with_a_thousand_nested_arrays_is_too_deep_and_the_model_carries_on(warm):
    state = fresh(warm)
    feeder = Feeder(state)
    processed = state.processed[("clf", "label")]
    deep = b'{"model": "clf", "id": "clf-1000", "ts": %r, "label": 1, "x": %s}' % (BASE + 1000, b"[" * 1000 + b"]" * 1000)
    _, labels = valid_stream("clf", 3, start=500)
    feeder.feed("labels", [labels[0], deep, labels[1], labels[2]])
    assert [(o, r) for _, o, r, _ in feeder.rejects.letters] == [(1, "too_deep")]
    assert state.processed[("clf", "label")] == processed + 3


def test_the_regression_overflow_pair_is_refused_and_the_model_carries_on(warm):
    """-1e308 and 1e308 are finite JSON, but their difference is not a float: the
    error-stream detector raised on the infinite error and the loop died."""
    state = fresh(warm)
    feeder = Feeder(state)
    n_seen = {name: d.n_seen for name, feature, d in state.models["reg"].detectors() if feature in ("<error>", "mae")}
    feeder.feed("predictions", [encode({"model": "reg", "id": "huge", "ts": BASE + 300, "features": {"amount": 1.0, "country": "DE"},
                                        "prediction": -1e308})])
    feeder.feed("labels", [encode({"model": "reg", "id": "huge", "ts": BASE + 301, "label": 1e308})])
    assert [(t, r) for t, _, r, _ in feeder.rejects.letters] == [("predictions", "non_finite"), ("labels", "non_finite")]
    predictions, labels = valid_stream("reg", 40, start=300)
    feeder.feed("predictions", predictions)
    feeder.feed("labels", labels)
    assert len(feeder.rejects.letters) == 2
    after = {name: d.n_seen for name, feature, d in state.models["reg"].detectors() if feature in ("<error>", "mae")}
    assert all(after[name] == n_seen[name] + 40 for name in n_seen), (n_seen, after)


# -- containment: a failure nobody foresaw -----------------------------------------------------

def test_an_unexpected_exception_in_one_record_is_contained_to_that_record(warm, monkeypatch, caplog):
    state = fresh(warm)
    feeder = Feeder(state)
    check = ModelPipeline.check

    def failing_check(self, event):  # a bug that only one event meets
        if event.id in ("clf-601", "clf-603"):
            raise KeyError("a bug")
        return check(self, event)

    monkeypatch.setattr(ModelPipeline, "check", failing_check)
    predictions, _ = valid_stream("clf", 4, start=600)
    processed = state.processed[("clf", "prediction")]
    with caplog.at_level(logging.ERROR, logger="driftd"):
        feeder.feed("predictions", predictions)
    assert [(o, r) for _, o, r, _ in feeder.rejects.letters] == [(1, "internal_error"), (3, "internal_error")]
    assert "KeyError" in feeder.rejects.letters[0][3]
    assert state.processed[("clf", "prediction")] == processed + 2
    assert state.dead_letters["internal_error"] == 2
    # One traceback per batch, the rest summed up: a bug every record meets does not flood the log.
    assert len([r for r in caplog.records if r.exc_info]) == 1
    assert any("2 records of the batch" in r.getMessage() for r in caplog.records)


def test_one_models_failing_batch_is_contained_to_that_models_records(warm, monkeypatch, caplog):
    """The last resort: a model's pipeline raising on a batch sends that model's records
    of the batch to the dead-letter topic; other models and later batches go on."""
    state = fresh(warm)
    feeder = Feeder(state)
    observe = ModelPipeline.observe_labels
    failing = {"reg"}

    def failing_observe(self, *args, **kwargs):
        if self.name in failing:
            raise RuntimeError("pipeline bug")
        return observe(self, *args, **kwargs)

    monkeypatch.setattr(ModelPipeline, "observe_labels", failing_observe)
    clf_p, clf_l = valid_stream("clf", 5, start=700)
    reg_p, reg_l = valid_stream("reg", 5, start=700)
    feeder.feed("predictions", clf_p + reg_p)
    before = dict(state.processed)
    with caplog.at_level(logging.ERROR, logger="driftd"):
        feeder.feed("labels", clf_l + reg_l)
    assert [(o, r) for _, o, r, _ in feeder.rejects.letters] == [(o, "internal_error") for o in range(5, 10)]
    assert all("model reg: RuntimeError: pipeline bug" in d for _, _, _, d in feeder.rejects.letters)
    assert state.processed[("clf", "label")] == before[("clf", "label")] + 5
    assert state.processed[("reg", "label")] == before[("reg", "label")]  # dead letters, not processed
    assert any("model reg failed" in r.getMessage() for r in caplog.records)
    failing.clear()  # the model works again: it carries on
    reg_p, reg_l = valid_stream("reg", 5, start=710)
    feeder.feed("predictions", reg_p)
    feeder.feed("labels", reg_l)
    assert state.processed[("reg", "label")] == before[("reg", "label")] + 5
    assert accounted(state, feeder.rejects) - accounted(fresh(warm), Rejects()) == 30


# -- event time ------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["predictions", "labels"])
@pytest.mark.parametrize("ts, why", [
    (NOW + 86400 + 6 * 3600, "a day and six hours ahead of the wall clock"),
    (BASE * 1000, "milliseconds"),
    (BASE * 1e6, "microseconds"),
    (946_684_799.0, "before 2000"),
    (0.0, "zero"),
    (-5.0, "negative"),
    ("1999-12-31T23:59:59Z", "before 2000, as text"),
    ("2999-01-01T00:00:00Z", "far ahead, as text"),
], ids=lambda value: value if isinstance(value, str) and not value[:1].isdigit() else "")  # no clock in the ids
def test_an_event_too_far_in_the_future_or_the_past_is_bad_timestamp(warm, kind, ts, why):
    state = fresh(warm)
    feeder = Feeder(state)
    model = "clf"
    predictions, labels = valid_stream(model, 3, start=800)
    values = predictions if kind == "predictions" else labels
    bad = json.loads(values[1])
    bad["ts"] = ts
    feeder.feed(kind, [values[0], encode(bad), values[2]])
    assert [(o, r) for _, o, r, _ in feeder.rejects.letters] == [(1, "bad_timestamp")], why
    detail = feeder.rejects.letters[0][3]
    assert "join.earliest_event_time" in detail or "join.max_future_skew_seconds" in detail


def test_the_future_bound_is_measured_from_when_the_record_was_produced(warm):
    """An event a week ahead of its record's Kafka timestamp is refused even though the
    wall clock is later still (a replay months afterwards decides the same); one within
    the skew of it is taken."""
    state = fresh(warm)
    feeder = Feeder(state)
    produced = BASE + 900  # the record's timestamp: a month ago
    ahead = json.loads(valid_stream("clf", 1, start=900)[0][0])
    ahead["ts"] = produced + 7 * 86400  # still three weeks before now
    within = dict(ahead, id="clf-901", ts=produced + 3600)
    feeder.feed("predictions", [encode(ahead), encode(within)], timestamp_ms=int(produced * 1000))
    assert [(o, r) for _, o, r, _ in feeder.rejects.letters] == [(0, "bad_timestamp")]
    # A record stamped ahead of the wall clock (a producer's clock off) loosens nothing.
    late = dict(ahead, id="clf-902", ts=NOW + 2 * 86400)
    feeder.feed("predictions", [encode(late)], timestamp_ms=int((NOW + 30 * 86400) * 1000))
    assert [r for _, _, r, _ in feeder.rejects.letters] == ["bad_timestamp", "bad_timestamp"]


def test_the_skew_and_the_earliest_time_are_settings():
    state = PartitionState(0, make_config(max_future_skew_seconds=60, earliest_event_time=BASE))
    feeder = Feeder(state)
    predictions, _ = valid_stream("clf", 1, start=0)
    early = dict(json.loads(predictions[0]), id="early", ts=BASE - 1)
    # Measured now, not at import: the suite may reach this test minutes after NOW.
    ahead = dict(json.loads(predictions[0]), id="ahead", ts=time.time() + 600)
    feeder.feed("predictions", [predictions[0], encode(early), encode(ahead)])
    assert [(o, r) for _, o, r, _ in feeder.rejects.letters] == [(1, "bad_timestamp"), (2, "bad_timestamp")]


@pytest.mark.parametrize("stray", [BASE * 1000, NOW + 20 * 3600], ids=["milliseconds", "within-the-skew"])
def test_one_label_stamped_ahead_does_not_make_the_joins_fall(stray):
    """The issue's case: one label in milliseconds among labels in seconds moved the label
    watermark years ahead; in a 3,000-event stream joins fell from 2,900 to 1,430. Refused
    (milliseconds), or taken but unable to move the clock alone (within the skew), it
    changes nothing for the others."""
    def run(with_stray: bool) -> Counter:
        state = PartitionState(0, from_dict({"model_defaults": SMALL, "models": {"clf": {}},
                                             "join": {"prediction_ttl_seconds": 600, "label_grace_seconds": 60}}))
        feeder = Feeder(state)
        predictions, labels = valid_stream("clf", 3000)
        for start in range(0, 3000, 100):
            feeder.feed("predictions", predictions[start:start + 100])
            # labels come 50 events (and 50 s) after their prediction; 1 in 30 never
            chunk = [v for i, v in enumerate(labels[max(0, start - 50):start + 50], max(0, start - 50)) if i % 30]
            if with_stray and start == 1500:
                chunk.insert(10, encode({"model": "clf", "id": "stray", "ts": stray, "label": 1}))
            feeder.feed("labels", chunk)
        return Counter({o: n for (m, o), n in state.join.counts.items()}), feeder.rejects.reasons()

    clean, clean_rejects = run(False)
    joins, rejects = run(True)
    assert clean["joined"] > 2800 and not clean_rejects
    assert joins["joined"] == clean["joined"]
    assert joins["prediction_expired"] == clean["prediction_expired"]
    assert rejects == (Counter(bad_timestamp=1) if stray == BASE * 1000 else Counter())


def test_a_refused_prediction_whose_time_has_no_float_does_not_stop_the_loop():
    """Found by the property test above: a refused prediction's label is orphaned at once,
    its time read from the raw event; an integer ts of 400 digits raised OverflowError
    there, out of the loop. It is a dead letter, and its label waits as any other."""
    state, rejects = PartitionState(0, make_config()), Rejects()
    huge = b'{"model": "clf", "id": "a", "ts": 1' + b"0" * 400 + b', "features": {}, "prediction": [1]}'
    state.handle_predictions([record("predictions", 0, huge)], rejects)
    state.handle_predictions([record("predictions", 1, encode({"model": "clf", "id": "b", "ts": BASE, "features": {},
                                                                "prediction": [1]}))], rejects)
    assert [letter[2] for letter in rejects.letters] == ["non_finite", "wrong_type"]
    state.handle_labels([record("labels", 0, encode({"model": "clf", "id": "b", "ts": BASE + 5, "label": 1}))], rejects)
    assert state.join.counts[("clf", "label_orphaned")] == 1  # b's prediction came, refused: at once


def test_a_future_ts_is_called_milliseconds_only_when_it_looks_like_milliseconds():
    """A ts three days ahead, in seconds, was asked "milliseconds instead of seconds?"."""
    from types import SimpleNamespace

    from daemon.stream import events
    from daemon.stream.events import TimeBounds

    config = from_dict({"models": {"m": {}}})
    bounds = TimeBounds(config.join)
    record = SimpleNamespace(timestamp=None)
    for ts, words in ((time.time() + 3 * 86_400, "a producer clock ahead?"),
                      (time.time() * 1000, "milliseconds instead of seconds?")):
        with pytest.raises(events.BadEvent) as info:
            bounds.check(ts, record)
        assert info.value.detail.endswith(words), info.value.detail


def test_auto_registered_models_stop_at_max_auto_registered_models_and_the_rest_are_unlabelled_dead_letters():
    """A new user's finding: with auto_register_models, 3,000 events each naming a new model
    (a request id in the name) made 3,001 models, 72k metric series and a 4.8 MB /status.
    Beyond max_auto_registered_models a new name's events are dead letters (unknown_model),
    counted without a model label; listed models are not counted, and are still taken."""
    config = from_dict({"auto_register_models": True, "max_auto_registered_models": 3, "models": {"listed": {}}})
    state = PartitionState(0, config)
    rejected = []
    names = ["listed", *(f"req-{i}" for i in range(6)), "req-0", "listed"]
    batch = [record("predictions", i, encode({"model": name, "id": f"p{i}", "ts": 1_750_000_000.0 + i,
                                        "features": {"x": 1.0}, "prediction": 1})) for i, name in enumerate(names)]
    state.handle_predictions(batch, lambda r, reason, detail: rejected.append((r.offset, reason, detail)))
    assert sorted(state.models) == ["listed", "req-0", "req-1", "req-2"]
    assert [(offset, reason) for offset, reason, _ in rejected] == [(4, "unknown_model"), (5, "unknown_model"),
                                                                    (6, "unknown_model")]
    assert "max_auto_registered_models (3)" in rejected[0][2]
    assert state.model_dead_letters == {}  # no series for the names refused
    assert state.processed[("req-0", "prediction")] == 2 and state.processed[("listed", "prediction")] == 2


def test_a_restored_state_takes_the_running_configurations_join_and_alert_settings():
    """A trial's finding: a daemon restarted with join.prediction_ttl_seconds 60 (was 3600)
    on its state kept the saved 3600, and every label 1,000 s late still joined: the
    runbook's "change the TTL" did nothing on a daemon with state."""
    from daemon.stream.join import LabelJoin

    before = PartitionState(0, from_dict({"join": {"prediction_ttl_seconds": 3600}, "models": {"m": {}}}))
    after = from_dict({"join": {"prediction_ttl_seconds": 60, "label_grace_seconds": 10, "max_pending": 50},
                       "alerts": {"clear_after": 1, "cooldown_seconds": 5}, "models": {"m": {}}})
    core = dict(before.sections(lambda join: [])[0][1])
    restored = PartitionState.from_sections(core, before.models, [pickle.loads(pickle.dumps(before.join))], after)
    assert (restored.join.ttl, restored.join.grace, restored.join.max_pending) == (60, 10, 50)
    assert (restored.episodes.clear_after, restored.episodes.cooldown_seconds) == (1, 5.0)
    join = restored.join
    assert isinstance(join, LabelJoin)
    join.add_prediction("m", "a", 1000.0, (1, None))
    assert join.add_label("m", "a", 2000.0, 1) is None  # 1,000 s late: beyond the running ttl
    assert join.counts[("m", "prediction_expired")] == 1


def test_a_restored_model_whose_settings_changed_says_it_keeps_its_own(caplog):
    before = PartitionState(0, from_dict({"models": {"m": {"window": 200}}}))
    before.pipeline("m")
    core = dict(before.sections(lambda join: [])[0][1])
    with caplog.at_level(logging.WARNING, logger="driftd"):
        restored = PartitionState.from_sections(core, before.models, [before.join],
                                                from_dict({"models": {"m": {"window": 300}}}))
    assert restored.models["m"].config.window == 200
    warned = [r.getMessage() for r in caplog.records]
    assert len(warned) == 1 and "model m keeps the settings its restored state was made with; changed since in the " \
                                "configuration: window." in warned[0], warned


def test_a_prediction_whose_ts_text_is_no_time_names_its_model_and_orphans_its_label_at_once():
    """A second trial's finding: a ts string that is no time (or has no time zone) was
    counted as a dead letter of model "" by the daemon (the replay named the model), and
    its label waited its grace, where other refused predictions' labels are orphaned at
    once (placed at the model's watermark: known after its first 64 predictions)."""
    state, rejects = PartitionState(0, make_config()), Rejects()
    good = [record("predictions", i, encode({"model": "clf", "id": f"g{i}", "ts": BASE + i, "features": {},
                                             "prediction": 1})) for i in range(100)]
    state.handle_predictions(good, rejects)
    for offset, ts in enumerate(("yesterday", "2025-11-20T10:00:00"), start=100):
        raw = encode({"model": "clf", "id": f"p{offset}", "ts": ts, "features": {}, "prediction": 1})
        state.handle_predictions([record("predictions", offset, raw)], rejects)
    assert [letter[2] for letter in rejects.letters] == ["bad_timestamp", "bad_timestamp"]
    assert state.model_dead_letters == {("clf", "bad_timestamp"): 2}
    labels = [record("labels", i, encode({"model": "clf", "id": f"p{i}", "ts": BASE + 101, "label": 1}))
              for i in (100, 101)]
    state.handle_labels(labels, rejects)
    assert state.join.counts[("clf", "label_orphaned")] == 2


def test_a_model_removed_from_models_is_no_longer_watched_after_a_restart(warm, caplog):
    """A tester's finding: a model deleted from ``models:`` (auto_register_models off) was
    still watched after a restart (its restored state kept it: events processed, series
    exported, no unknown_model), and could only be retired by clearing the partition's
    state, every other model's with it. Now its state goes, its open alert episodes are
    resolved (reason model_removed), and its events are dead letters."""
    state = pickle.loads(warm)
    state.attach(make_config())
    opened = state.episodes.observe(("reg", "ks", "amount"), True, BASE + 100, {}, origin=("predictions", 0, 7, BASE + 100))
    assert opened is not None and opened.status == "firing"
    saved = pickle.dumps(state)

    only_clf = from_dict({"kafka": {"max_event_bytes": 20_000}, "model_defaults": SMALL, "models": {"clf": {}}})
    with caplog.at_level(logging.WARNING, logger="driftd"):
        restored = pickle.loads(saved)
        restored.attach(only_clf)
    assert "model reg is no longer under models:" in caplog.text
    assert set(restored.models) == {"clf"} and not any(key[0] == "reg" for key in restored.processed)
    resolved = list(restored.alerts())
    assert [(a.model, a.detector, a.status, a.detail["reason"]) for a in resolved] == [("reg", "ks", "resolved", "model_removed")]
    assert resolved[0].event_time == max(ts for (m, _), ts in state.newest_ts.items() if m == "reg")
    assert list(restored.alerts()) == []  # once

    feeder = Feeder(restored)
    predictions, _ = valid_stream("reg", 3, start=200)
    more, _ = valid_stream("clf", 3, start=200)
    feeder.feed("predictions", predictions + more)
    assert feeder.rejects.reasons() == Counter({"unknown_model": 3}) and "reg" not in restored.models

    kept = pickle.loads(saved)  # the same configuration: nothing removed
    kept.attach(make_config())
    assert set(kept.models) == {"clf", "reg"} and list(kept.alerts()) == []
