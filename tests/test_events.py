"""Decoding prediction and label events: what is accepted, how it is normalised, and the
reason each kind of bad input is refused with (the dead-letter header and metric label)."""

from __future__ import annotations

import json

import pytest

from daemon.stream.events import MAX_MAGNITUDE, REASONS, BadEvent, Label, Prediction, decode_label, decode_prediction

TS = 1_763_892_000.0  # 2025-11-23T10:00:00Z


def prediction(**fields) -> bytes:
    event = {"model": "fraud", "id": "p-1", "ts": TS, "features": {"amount": 12.5, "country": "DE"}, "prediction": 1}
    event.update(fields)
    return json.dumps({k: v for k, v in event.items() if v is not ...}).encode()


def label(**fields) -> bytes:
    event = {"model": "fraud", "id": "p-1", "ts": TS, "label": 1}
    event.update(fields)
    return json.dumps({k: v for k, v in event.items() if v is not ...}).encode()


# -- valid events ------------------------------------------------------------------------------

def test_a_valid_prediction_decodes_with_every_field():
    p = decode_prediction(prediction(score=0.93, model_version="7"))
    assert isinstance(p, Prediction)
    assert (p.model, p.id, p.ts, p.prediction, p.score, p.model_version) == ("fraud", "p-1", TS, 1, 0.93, "7")
    assert p.features == {"amount": 12.5, "country": "DE"}


def test_optional_fields_default_to_none_and_unknown_fields_are_ignored():
    p = decode_prediction(prediction(extra={"anything": [1, 2]}))
    assert p.score is None and p.model_version is None


def test_feature_values_may_be_numbers_strings_booleans_or_null():
    p = decode_prediction(prediction(features={"n": 3, "f": 0.5, "s": "x", "b": True, "missing": None}))
    assert p.features == {"n": 3.0, "f": 0.5, "s": "x", "b": True, "missing": None}
    assert type(p.features["b"]) is bool  # not turned into a number


@pytest.mark.parametrize("ts, expected", [
    (TS, TS),
    (int(TS), TS),
    (TS + 0.25, TS + 0.25),
    ("2025-11-23T10:00:00Z", TS),
    ("2025-11-23T10:00:00+00:00", TS),
    ("2025-11-23T11:30:00+01:30", TS),
    ("2025-11-23T05:00:00-05:00", TS),
    ("2025-11-23T10:00:00.250Z", TS + 0.25),
    # RFC 3339 allows t and z in lower case, and a leap second (the next minute's first)
    ("2025-11-23t10:00:00z", TS),
    ("2025-11-23T09:59:60Z", TS),
    ("2025-11-23T10:59:60.5+01:00", TS + 0.5),
])
def test_timestamps_are_epoch_seconds_or_rfc3339_with_an_offset(ts, expected):
    assert decode_prediction(prediction(ts=ts)).ts == pytest.approx(expected, abs=1e-6)
    assert decode_label(label(ts=ts)).ts == pytest.approx(expected, abs=1e-6)
    assert type(decode_prediction(prediction(ts=ts)).ts) is float


def test_an_integer_id_is_normalised_to_a_string_so_it_joins_with_the_same_id_as_text():
    assert decode_prediction(prediction(id=42)).id == "42"
    assert decode_label(label(id=42)).id == "42"
    assert decode_label(label(id="42")).id == decode_prediction(prediction(id=42)).id


@pytest.mark.parametrize("decode, make", [(decode_prediction, prediction), (decode_label, label)])
def test_an_empty_id_is_a_dead_letter(decode, make):
    """A new user's finding: `id: ""` was taken, and every event without an id joined any other."""
    with pytest.raises(BadEvent) as e:
        decode(make(id=""))
    assert e.value.reason == "wrong_type" and "$.id" in e.value.detail


def test_an_integer_model_version_is_normalised_to_a_string():
    assert decode_prediction(prediction(model_version=3)).model_version == "3"


def test_a_score_may_be_a_number_or_a_dict_of_class_probabilities():
    assert decode_prediction(prediction(score=0.25)).score == 0.25
    p = decode_prediction(prediction(prediction="fraud", score={"fraud": 0.8, "ok": 0.2}))
    assert p.score == {"fraud": 0.8, "ok": 0.2} and p.prediction == "fraud"


def test_names_of_255_characters_are_taken():
    event = decode_prediction(prediction(model="m" * 255, model_version="v" * 255, features={"f" * 255: 1}))
    assert (len(event.model), len(event.model_version), [len(f) for f in event.features]) == (255, 255, [255])


def test_a_valid_label_decodes():
    event = decode_label(label(label="fraud"))
    assert isinstance(event, Label)
    assert (event.model, event.id, event.ts, event.label) == ("fraud", "p-1", TS, "fraud")
    assert decode_label(label(label=3.5)).label == 3.5  # regression
    assert decode_label(label(label=True)).label is True


# -- bad events --------------------------------------------------------------------------------

def reason_of(decode, raw) -> str:
    with pytest.raises(BadEvent) as info:
        decode(raw)
    assert info.value.reason in REASONS
    assert str(info.value).startswith(info.value.reason + ": ") and info.value.detail
    return info.value.reason


BOTH = pytest.mark.parametrize("decode, make", [(decode_prediction, prediction), (decode_label, label)], ids=["prediction", "label"])


@BOTH
@pytest.mark.parametrize("raw", [
    b"not json at all",
    b"",
    b"\xff\xfe\x00",
    b"{",
    b'{"model": "fraud"',
    b"{'model': 'fraud'}",  # Python repr, not JSON
], ids=["garbage", "empty", "non-utf8", "open-brace", "truncated", "single-quotes"])
def test_not_json(decode, make, raw):
    assert reason_of(decode, raw) == "not_json"


@BOTH
def test_none_is_not_json(decode, make):
    assert reason_of(decode, None) == "not_json"  # a tombstone record has no value


@BOTH
def test_a_lone_surrogate_escape_at_the_end_is_named_not_called_truncated(decode, make):
    """A fuzzing user's finding: ``"\\ud800"`` as the event's last string was "Input data
    was truncated" (the decoder read on for the pair's low half)."""
    raw = make()[:-1] + b', "note": "\\ud800"}'
    with pytest.raises(BadEvent) as refused:
        decode(raw)
    assert refused.value.reason == "not_json"
    assert refused.value.detail.startswith("a lone UTF-16 surrogate escape \\ud800 (without its pair) at byte")


@BOTH
def test_invalid_utf8_inside_a_string_is_not_json_and_does_not_escape_as_another_error(decode, make):
    raw = make(model="XX").replace(b'"XX"', b'"\xff\xfe"')
    assert reason_of(decode, raw) == "not_json"


@BOTH
def test_trailing_garbage_after_the_object_is_not_json(decode, make):
    assert reason_of(decode, make() + b" trailing") == "not_json"


@BOTH
def test_garbage_that_mentions_nan_is_still_not_json(decode, make):
    # Malformed JSON that merely contains the word NaN in a string is not a non-finite number.
    assert reason_of(decode, b'{"model": "NaN", oops}') == "not_json"


@BOTH
@pytest.mark.parametrize("raw", [b"[1, 2, 3]", b'"a string"', b"42", b"null", b"true"],
                         ids=["array", "string", "number", "null", "bool"])
def test_not_object(decode, make, raw):
    assert reason_of(decode, raw) == "not_object"


@pytest.mark.parametrize("field", ["model", "id", "ts", "features", "prediction"])
def test_prediction_missing_field(field):
    assert reason_of(decode_prediction, prediction(**{field: ...})) == "missing_field"


@pytest.mark.parametrize("field", ["model", "id", "ts", "label"])
def test_label_missing_field(field):
    assert reason_of(decode_label, label(**{field: ...})) == "missing_field"


@pytest.mark.parametrize("fields", [
    {"features": [1, 2]},
    {"features": "amount=3"},
    {"features": {"nested": {"a": 1}}},
    {"features": {"list": [1]}},
    {"model": 3},
    {"model": None},
    {"model": ""},  # every metric of a model is labelled by its name: "" is no label
    {"id": 1.5},
    {"id": True},
    {"id": None},
    {"ts": True},
    {"ts": None},
    {"ts": [TS]},
    {"prediction": None},
    {"prediction": [1]},
    {"score": "high"},
    {"score": {"a": "b"}},
    {"model_version": 1.5},
    # Names label metric series: one of 300 kB in 15 events grew /metrics to 28 MB.
    {"model": "m" * 256},
    {"model_version": "v" * 256},
    {"features": {"f" * 256: 1}},
], ids=lambda f: "-".join(f"{k}={v!r}"[:40] for k, v in f.items()))
def test_prediction_wrong_type(fields):
    assert reason_of(decode_prediction, prediction(**fields)) == "wrong_type"


@pytest.mark.parametrize("fields", [{"label": None}, {"label": [1]}, {"label": {"a": 1}}, {"model": 1}, {"model": ""},
                                    {"id": 2.5}, {"model": "m" * 256}],
                         ids=lambda f: "-".join(f"{k}={v!r}" for k, v in f.items()))
def test_label_wrong_type(fields):
    assert reason_of(decode_label, label(**fields)) == "wrong_type"


def _with_number(make, field: str, literal: bytes, nested: bool) -> bytes:
    placeholder = 123456.5
    raw = make(**({"features": {"amount": placeholder}} if nested else {field: placeholder}))
    assert raw.count(b"123456.5") == 1
    return raw.replace(b"123456.5", literal)


def _matrix(literals: list, fields: list) -> list:
    """Every (literal, field, nested) but integers in features, which stay exact (see
    test_an_integer_feature_stays_exact_at_any_size_for_the_pipeline_to_judge)."""
    return [(literal, field, nested) for literal in literals for field, nested in fields
            if not (field == "features" and literal.isdigit())]


@pytest.mark.parametrize("literal, field, nested", _matrix(
    [b"NaN", b"Infinity", b"-Infinity", b"1e400", b"-1e400", b"1" + b"0" * 400],
    [("features", True), ("ts", False), ("score", False), ("prediction", False)]))
def test_prediction_non_finite(literal, field, nested):
    # A 400-digit integer is finite in Python but no float can hold it: float() of it in a
    # regression model's error stream raises OverflowError in the consumer loop.
    assert reason_of(decode_prediction, _with_number(prediction, field, literal, nested)) == "non_finite"


@pytest.mark.parametrize("literal", [b"NaN", b"Infinity", b"1e400", b"1" + b"0" * 400])
@pytest.mark.parametrize("field", ["label", "ts"])
def test_label_non_finite(literal, field):
    assert reason_of(decode_label, _with_number(label, field, literal, nested=False)) == "non_finite"


@BOTH
@pytest.mark.parametrize("ts", [
    "yesterday",
    "",
    "NaN",
    "1763892000",            # epoch seconds go in as a number, not a string
    "2025-13-01T00:00:00Z",  # no 13th month
    "2025-11-23T10:00:00 UTC",
    "2025-11-23T10:00:00Z\u0000",  # a fuzzing user's finding: fromisoformat ignored the NUL
], ids=["word", "empty", "nan-text", "epoch-text", "month-13", "tz-name", "trailing-nul"])
def test_bad_timestamp(decode, make, ts):
    assert reason_of(decode, make(ts=ts)) == "bad_timestamp"


@BOTH
@pytest.mark.parametrize("ts", ["2025-11-23T10:00:00", "2025-11-23 10:00:00", "2025-11-23"])
def test_a_timestamp_without_time_zone_is_refused_rather_than_read_as_local_time(decode, make, ts):
    assert reason_of(decode, make(ts=ts)) == "bad_timestamp"


def test_the_decoder_produces_every_reason_it_is_responsible_for():
    # oversize and unknown_model are decided by the partition (size limit, configuration).
    produced = {
        reason_of(decode_prediction, b"x"), reason_of(decode_prediction, b"[]"),
        reason_of(decode_prediction, prediction(id=...)), reason_of(decode_prediction, prediction(model=1)),
        reason_of(decode_prediction, _with_number(prediction, "features", b"NaN", True)),
        reason_of(decode_prediction, prediction(ts="never")),
        reason_of(decode_label, _nested(label(), 5000)),
    }
    # oversize, unknown_model, bad_timestamp bounds and internal_error are the partition's.
    assert produced == set(REASONS) - {"oversize", "unknown_model", "internal_error"}


@BOTH
@pytest.mark.parametrize("depth", [1000, 100_000])
def test_deep_nesting_in_a_field_driftd_does_not_read_is_too_deep_not_a_crash(decode, make, depth):
    # A RecursionError from the decoder used to escape the loop and crash the daemon.
    assert reason_of(decode, _nested(make(), depth)) == "too_deep"


@BOTH
def test_moderate_nesting_in_an_unknown_field_is_fine(decode, make):
    assert decode(_nested(make(), 50)).model == "fraud"


def _nested(raw: bytes, depth: int) -> bytes:
    """``raw`` with an unknown field holding ``depth`` nested arrays."""
    return raw[:-1] + b', "extra": ' + b"[" * depth + b"]" * depth + b"}"


@pytest.mark.parametrize("literal, field, nested", _matrix(
    [b"1e39", b"-1e39", b"1e308", b"-1e308", b"1" + b"0" * 39],
    [("features", True), ("score", False), ("prediction", False)]))
def test_prediction_numbers_beyond_float32_range_are_non_finite(literal, field, nested):
    # -1e308 as a regression prediction with a label of 1e308: the error overflows to inf
    # and the error-stream detector raised inside the loop.
    assert reason_of(decode_prediction, _with_number(prediction, field, literal, nested)) == "non_finite"


@pytest.mark.parametrize("literal", [b"1e308", b"-1e39", b"3" + b"0" * 39])
def test_label_numbers_beyond_float32_range_are_non_finite(literal):
    assert reason_of(decode_label, _with_number(label, "label", literal, nested=False)) == "non_finite"


def test_an_integer_feature_stays_exact_at_any_size_for_the_pipeline_to_judge():
    # A categorical id may be any integer; a numeric feature refuses one beyond 2**53
    # (daemon.stream.reference.check). msgspec itself refuses integers of thousands of digits.
    big = 10**39 + 1
    assert decode_prediction(prediction(features={"id": big})).features["id"] == big
    assert reason_of(decode_prediction, prediction(features={"id": 0}).replace(b'"id": 0', b'"id": ' + b"1" * 5000)) == "wrong_type"
    assert reason_of(decode_prediction, prediction(features={"x": 1e39})) == "non_finite"  # floats are bounded


@pytest.mark.parametrize("value", [MAX_MAGNITUDE, -MAX_MAGNITUDE, 1e38, 2**127, -(2**127)])
def test_numbers_up_to_float32_range_are_taken(value):
    assert decode_prediction(prediction(prediction=value, features={"x": value})).prediction == value
    assert decode_label(label(label=value)).label == value


@pytest.mark.parametrize("features, reason, named", [
    ('{"age": 41, "tags": ["a", "b"]}', "wrong_type", "$.features['tags']"),
    ('{"age": {"years": 41}}', "wrong_type", "$.features['age']"),
    ('{"amount": 1e39}', "non_finite", "$.features['amount']"),
])
def test_a_bad_feature_is_named_in_the_detail(features, reason, named):
    raw = ('{"model": "fraud", "id": "p-1", "ts": 1763891000, "features": %s, "prediction": 1}' % features).encode()
    with pytest.raises(BadEvent) as info:
        decode_prediction(raw)
    assert info.value.reason == reason and named in info.value.detail


@pytest.mark.parametrize("raw", [b'{"model": "fraud"} trailing', b'{"model": "fraud", "ts": 1} {"id": 2}'])
def test_an_object_followed_by_garbage_is_not_json_whatever_its_fields(raw):
    """A new user's finding: an object missing fields, then garbage, was a missing_field
    dead letter (the schema fails before the end of the message is read); a complete one,
    then garbage, was not_json. Both are not JSON."""
    with pytest.raises(BadEvent) as raised:
        decode_prediction(raw)
    assert raised.value.reason == "not_json" and "trailing characters" in raised.value.detail
