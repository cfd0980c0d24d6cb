"""Every dead letter's detail names the offending field, as msgspec writes a path
(`` - at `$.features['age']` ``): the operator reading the dead-letter topic, the log or
the README's table learns which field of which event to fix, for every reason that has a
field (``not_json``, ``not_object`` and ``oversize`` concern the whole message)."""

from __future__ import annotations

import json

import pytest

from daemon.config import from_dict
from daemon.stream.events import BadEvent, decode_label, decode_prediction
from daemon.stream.pipeline import ModelPipeline

TS = 1_763_892_000


def raw_prediction(**replace) -> bytes:
    """A prediction as bytes, with each ``name=bytes`` put in place of its JSON value
    (so that what JSON cannot say, NaN or 1e999, can be tested)."""
    event = {"model": "fraud", "id": "p-1", "ts": TS, "features": {"amount": 12.5, "country": "DE"},
             "prediction": 1, "score": {"0": 0.2, "1": 0.8}}
    text = json.dumps({k: f"@{k}@" if k in replace else v for k, v in event.items()}).encode()
    for name, value in replace.items():
        text = text.replace(f'"@{name}@"'.encode(), value)
    return text


def detail(decode, raw) -> tuple[str, str]:
    with pytest.raises(BadEvent) as info:
        decode(raw)
    return info.value.reason, info.value.detail


@pytest.mark.parametrize("replace, reason, named", [
    # NaN and Infinity are not JSON: the parser stops there, and used to say only that.
    ({"features": b'{"amount": NaN, "country": "DE"}'}, "non_finite", "$.features['amount']"),
    ({"features": b'{"amount": 1, "age": -Infinity}'}, "non_finite", "$.features['age']"),
    ({"score": b'{"0": 0.5, "1": Infinity}'}, "non_finite", "$.score['1']"),
    ({"score": b"NaN"}, "non_finite", "$.score"),
    ({"prediction": b"NaN"}, "non_finite", "$.prediction"),
    ({"ts": b"Infinity"}, "non_finite", "$.ts"),
    # Values the untyped decoder cannot hold either: the key is still found.
    ({"features": b'{"amount": 1e999}'}, "non_finite", "$.features['amount']"),
    ({"features": b'{"id": 1' + b"0" * 5000 + b"}"}, "wrong_type", "$.features['id']"),
    ({"features": b'{"amount": 1, "tags": [NaN]}'}, "wrong_type", "$.features['tags']"),
    ({"features": b'{"a": 1, "deep": ' + b"[" * 5000 + b"]" * 5000 + b"}"}, "wrong_type", "$.features['deep']"),
    ({"features": b'{"x\\"y": {"z": 1}}'}, "wrong_type", """$.features['x"y']"""),
    ({"score": b'{"0": 0.5, "1": true}'}, "wrong_type", "$.score['1']"),
    ({"model": b"3"}, "wrong_type", "$.model"),
    ({"id": b"1.5"}, "wrong_type", "$.id"),
    ({"prediction": b"[1]"}, "wrong_type", "$.prediction"),
    ({"prediction": b"1" + b"0" * 400}, "non_finite", "prediction"),
    ({"ts": b'"yesterday"'}, "bad_timestamp", "ts"),
    ({"features": b"[1, 2]"}, "wrong_type", "$.features"),
], ids=lambda v: v if isinstance(v, str) else None)
def test_a_bad_prediction_names_its_field(replace, reason, named):
    got_reason, got_detail = detail(decode_prediction, raw_prediction(**replace))
    assert (got_reason, named in got_detail) == (reason, True), got_detail


@pytest.mark.parametrize("depth", [1_000, 100_000])
def test_too_deep_names_the_field_that_nests(depth):
    raw = raw_prediction()[:-1] + b', "extra": {"a": ' + b"[" * depth + b"]" * depth + b"}}"
    assert detail(decode_prediction, raw) == ("too_deep", "nested deeper than the decoder's recursion limit - at `$.extra`")


def test_the_first_of_several_non_finite_numbers_is_named():
    raw = raw_prediction(features=b'{"a": 1, "b": NaN, "c": Infinity}', prediction=b"NaN")
    assert detail(decode_prediction, raw)[1].endswith("at `$.features['b']`")


def test_a_non_finite_number_in_a_truncated_event_is_still_named():
    assert detail(decode_prediction, b'{"model": "m", "features": {"a": NaN')[1].endswith("at `$.features['a']`")


@pytest.mark.parametrize("value, reason, named", [
    (b"NaN", "non_finite", "$.label"), (b"1e39", "non_finite", "$.label"), (b"null", "wrong_type", "$.label"),
])
def test_a_bad_label_names_its_field(value, reason, named):
    raw = b'{"model": "fraud", "id": "p-1", "ts": %d, "label": %s}' % (TS, value)
    got_reason, got_detail = detail(decode_label, raw)
    assert (got_reason, named in got_detail) == (reason, True), got_detail


def test_a_missing_field_is_named():
    assert "`label`" in detail(decode_label, b'{"model": "fraud", "id": "p-1", "ts": %d}' % TS)[1]


# -- what the model's pipeline refuses ---------------------------------------------------------

def pipeline(**settings) -> ModelPipeline:
    config = from_dict({"models": {"m": {"reference_size": 1000, "window": 300, "stride": 50, **settings}}})
    return ModelPipeline("m", config.models["m"])


def test_a_fractional_class_names_the_prediction_or_the_label():
    clf = pipeline()
    event = decode_prediction(raw_prediction(prediction=b"1.5"))
    with pytest.raises(BadEvent) as info:
        clf.check(event)
    assert info.value.reason == "wrong_type" and "$.prediction" in info.value.detail
    with pytest.raises(BadEvent) as info:
        clf.check_label(2.5)
    assert info.value.reason == "wrong_type" and "$.label" in info.value.detail


def test_a_value_that_does_not_fit_a_declared_feature_names_the_feature():
    model = pipeline(features={"amount": "numeric"})
    event = decode_prediction(raw_prediction(features=b'{"amount": "twelve"}'))
    with pytest.raises(BadEvent) as info:
        model.check(event)
    assert info.value.reason == "wrong_type" and "'amount'" in info.value.detail


def test_a_regression_prediction_that_is_no_number_says_prediction():
    model = pipeline(task="regression", decay_metrics=["mae"])
    with pytest.raises(BadEvent) as info:
        model.check(decode_prediction(raw_prediction(prediction=b'"high"')))
    assert "prediction" in info.value.detail
