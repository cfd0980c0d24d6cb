"""The reference collected a batch at a time (``ReferenceSample.add_many``, issue 8's
throughput) is the reference collected event by event (``add``): the same sample, pickled
byte for byte, after every batch, whatever the batch size; and a pipeline fed through it
builds the same reference and takes the same decisions as one fed event by event."""

from __future__ import annotations

import math
import pickle
from types import SimpleNamespace

import numpy as np
import pytest

from daemon.config import ModelConfig
from daemon.runtime.calibrator import calibrate_now
from daemon.stream.pipeline import ModelPipeline
from daemon.stream.reference import Column, Numbers, ReferenceSample

SIZES = (1, 7, 500)


def _one_by_one(sample: ReferenceSample, features, predictions, scores, task="classification") -> None:
    for f, p, s in zip(features, predictions, scores):
        sample.add(f, p, s, task)


def _same_samples(events: list, size: int, declared: dict, batch: int, max_features: int = 100,
                  task: str = "classification") -> ReferenceSample:
    """Feed ``events`` (features, prediction, score) both ways in batches of ``batch``, at
    most ``size`` in all; assert the two samples pickle the same after every batch."""
    one = ReferenceSample(size, declared, max_features)
    many = ReferenceSample(size, declared, max_features)
    events = events[:size]
    for i in range(0, len(events), batch):
        part = events[i:i + batch]
        args = ([e[0] for e in part], [e[1] for e in part], [e[2] for e in part], task)
        _one_by_one(one, *args)
        many.add_many(*args)
        assert pickle.dumps(many) == pickle.dumps(one), (batch, i)
    assert many.n == len(events)
    return many


# -- streams ----------------------------------------------------------------------------------
def _numeric(rng, n: int) -> list:
    """Numbers of every form, ints and floats mixed, missing in every way, -0.0, new names
    (one a few events into the stream, one late), a column that turns categorical."""
    special = [0.0, -0.0, math.inf, -math.inf, None, math.nan, 1e300, 5e-324, 2 ** 53, -2 ** 53, 127, 128,
               -129, 32767, 2 ** 31 - 1, 0.1, 1e-9, 0.30000000000000004]
    out = []
    for i in range(n):
        f = {}
        if rng.random() > 0.1:
            f["dec"] = round(float(rng.normal(0, 100)), int(rng.integers(0, 4)))  # few decimals
        f["f32"] = float(np.float32(rng.normal())) if i < n // 2 else float(rng.normal())  # then float64
        f["int"] = int(rng.integers(-300, 300)) if rng.random() > 0.05 else None
        f["mix"] = float(rng.random()) if i % 3 else int(rng.integers(0, 10))
        f["special"] = special[int(rng.integers(0, len(special)))]
        if i > 5:
            f["soon"] = -0.0 if i % 4 == 0 else float(i)
        if i > n * 2 // 3:
            f["late"] = 1.5
        f["turns"] = float(i) if i < n // 3 else ("a" if i % 2 else 2)  # numbers, then strings too
        if i % 7 == 0:
            f["flag"] = bool(i % 2)  # booleans: categorical levels
        out.append((f, int(rng.integers(0, 3)), float(rng.random()) if i % 5 else None))
    return out


def _categorical(rng, n: int, levels: int = 300) -> list:
    """Declared categoricals: strings (more than 127 levels: int16 codes), ints beyond 2**53
    next to their float64 neighbour, 1 / 1.0 / "1" (one level), booleans, floats, NaN."""
    big = [2 ** 53 + 1, 2 ** 53, 2 ** 64 + 7, -(2 ** 70)]
    out = []
    for i in range(n):
        f = {"s": f"v{int(rng.integers(0, levels))}" if rng.random() > 0.05 else None,
             "big": big[int(rng.integers(0, len(big)))],
             "one": [1, 1.0, "1", -0.0, 0, 2.5, math.nan, None][int(rng.integers(0, 8))],
             "b": [True, False, "true", None][int(rng.integers(0, 4))]}
        if i % 11 == 3:
            f["k"] = f"late{i % 5}"
        out.append((f, [True, "class1", 2, 2.0][int(rng.integers(0, 4))], None))  # booleans too
    return out


@pytest.mark.parametrize("batch", SIZES)
def test_numeric_streams_give_the_same_sample(batch):
    rng = np.random.default_rng(batch)
    events = _numeric(rng, 1500)
    many = _same_samples(events, 1200, {}, batch)  # 1200 of 1500: complete mid-batch at 7 and 500
    assert many.complete and many.column("turns").kind == "categorical"
    assert {many.column(c).numbers.form for c in ("dec", "f32", "int")} == {"int", "float64"}


@pytest.mark.parametrize("batch", SIZES)
def test_declared_categorical_streams_give_the_same_sample(batch):
    rng = np.random.default_rng(10 + batch)
    declared = {"s": "categorical", "big": "categorical", "one": "categorical", "b": "categorical",
                "k": "categorical"}
    many = _same_samples(_categorical(rng, 1000), 1000, declared, batch)
    assert many.column("s").codes.typecode == "h"  # past 127 levels
    assert set(many.column("big").levels) == {str(2 ** 53 + 1), str(2 ** 53), str(2 ** 64 + 7), str(-(2 ** 70))}
    assert set(many.column("one").levels) == {"1", "0", "2.5"}


def test_codes_widen_to_int32_past_32767_levels():
    events = [({"s": f"v{i}", "n": i}, i % 2, None) for i in range(33_000)]
    many = _same_samples(events, 33_000, {"s": "categorical", "n": "categorical"}, 5000)
    assert many.column("s").codes.typecode == many.column("n").codes.typecode == "i"


@pytest.mark.parametrize("batch", SIZES)
def test_regression_big_ints_and_names_beyond_the_limits(batch):
    """A numeric prediction; ints beyond 2**53 given to add directly (the pipeline refuses
    them in an undeclared feature) rounded as add rounds them; reserved, ignored and unwatched
    names (max_features) and more names than MAX_NAMES."""
    rng = np.random.default_rng(20 + batch)
    events = []
    for i in range(1300):
        f = {"x": float(rng.normal()), "huge": [2 ** 53 + 1, 2 ** 60 + 12345, -(2 ** 64) - 7, 1.5][i % 4],
             "<reserved>": 1, "dropped": 2.0}
        if i < 1100:
            f[f"name{i}"] = 1.0  # a new name an event, past MAX_NAMES
        events.append((f, float(rng.normal()), None))
    declared = {"dropped": "ignore", "<score>": "ignore"}
    many = _same_samples(events, 1300, declared, batch, max_features=5, task="regression")
    assert many.too_many_names and many.n_unwatched > 0 and many.column("<prediction>").kind == "numeric"


def test_the_empty_feature_name_is_no_column():
    """A feature named "" would export ``feature=""``, which Prometheus reads as no label."""
    events = [({"": float(i), "x": float(i % 7)}, i % 2, None) for i in range(100)]
    sample = _same_samples(events, 100, {}, 30)
    assert [c.name for c in sample.columns()] == ["x", "<prediction>", "<score>"] and "" in sample.names


def test_missing_values_are_the_one_nan_add_keeps():
    """A NaN with another payload or sign is missing, kept as add keeps every missing value."""
    odd = np.frombuffer(np.array([0xFFF8000000000001], dtype=np.uint64).tobytes(), dtype=np.float64)[0]
    values = [1.5, float(odd), -math.nan, None, 2.25] * 60
    one, many = Column("x", None, 0), Column("x", None, 0)
    for v in values:
        one.add(v)
    many.add_many(values)
    assert pickle.dumps(one) == pickle.dumps(many) and many.n_missing == 180


def test_numbers_extend_flushes_where_append_does():
    rng = np.random.default_rng(5)
    for sizes in ([255, 1, 300], [1] * 600, [700], [0, 256, 3]):
        # Few decimals first, then full floats: the form depends on where chunks end.
        x = np.concatenate([np.round(rng.normal(size=400), 2), rng.normal(size=400)])
        one, many = Numbers(3), Numbers(3)
        start = 0
        for size in sizes:
            for v in x[start:start + size].tolist():
                one.append(v)
            many.extend(x[start:start + size])
            start += size
            assert pickle.dumps(one) == pickle.dumps(many), sizes


def test_an_empty_batch_changes_nothing():
    sample = ReferenceSample(10, {}, 10)
    sample.add_many([], [], [])
    assert sample.n == 0 and sample.columns() == []


# -- downstream -------------------------------------------------------------------------------
def _events(n: int) -> list:
    rng = np.random.default_rng(7)
    out = []
    for i in range(n):
        shift = 0.8 if i > n * 2 // 3 else 0.0
        f = {"amount": round(float(rng.lognormal(shift, 1)), 2), "count": int(rng.poisson(3 + 3 * shift)),
             "country": ["DE", "FR", "IT", "ES"][int(rng.integers(0, 4 if shift else 3))],
             "code": [2 ** 53 + 1, 2 ** 53, 16][int(rng.integers(0, 3))], "on": bool(rng.random() < 0.3 + shift / 2)}
        if rng.random() < 0.05:
            f["amount"] = None
        if rng.random() < 0.03:
            del f["country"]
        if i > 150:
            f["later"] = float(rng.normal(shift))
        if i % 97 == 0:
            f["rare"] = -0.0
        score = {"a": float(rng.random()), "b": 0.1} if i % 3 else (None if i % 2 else float(rng.random()))
        out.append(SimpleNamespace(features=f, prediction=int(rng.integers(0, 2)), score=score, model_version=None,
                                   ts=1.7e9 + i))
    return out


def _observed(events: list, batch: int) -> tuple:
    """The reference handed to the build (pickled) and every observation, fed in batches."""
    config = ModelConfig(reference_size=1003, window=200, stride=50, ert=5_000,
                         features={"code": "categorical", "country": "categorical"})
    pipeline = ModelPipeline("m", config)
    built = []
    build = pipeline._build
    pipeline._build = lambda: (built.append(pickle.dumps(pipeline.reference)), build())
    for i in range(0, len(events), batch):
        part = events[i:i + batch]
        for e in part:
            pipeline.check(e)
        pipeline.observe_predictions(part)
        if pipeline.reference_complete:
            calibrate_now(pipeline)
    return built, pipeline.pop_observations(), pipeline.features, pipeline.skipped


def test_the_pipeline_builds_the_same_reference_and_decides_the_same(monkeypatch):
    """Same batch size, add_many against add one by one: the same reference, the same
    observations in the same order. Across batch sizes the order of observations of
    different detectors depends on the batches (each batch's are sorted by position): the
    same decisions, in the same order per detector. (Their statistics are not compared
    across batch sizes: the reconstruction test's differs in the last bit between batch
    sizes, with the reference collected one by one as well.)"""
    events = _events(4000)
    batched = {batch: _observed(events, batch) for batch in SIZES}
    monkeypatch.setattr(ReferenceSample, "add_many", _one_by_one)  # as before add_many
    plain = {batch: _observed(events, batch) for batch in SIZES}
    assert len(plain[500][0]) == 1 and any(o.drift for o in plain[500][1]) and "later" in plain[500][2]
    for batch in SIZES:
        assert batched[batch][0] == plain[batch][0], batch  # the same reference, byte for byte
        assert batched[batch][1:] == plain[batch][1:], batch  # the same decisions, at the same events
        assert batched[batch][0] == plain[500][0], batch
        assert _per_detector(batched[batch][1]) == _per_detector(plain[500][1]), batch
        assert batched[batch][2:] == plain[500][2:], batch


def _per_detector(observations: list) -> dict:
    out = {}
    for o in observations:
        out.setdefault((o.detector, o.feature), []).append((o.drift, o.position, o.offset, o.event_time, o.side))
    return out


def test_a_column_of_strings_gives_its_values_with_their_tally():
    """A declared categorical column's values carry their tally, counted from the codes
    (the tests' bins take it instead of counting the values again): the values' own."""
    from collections import Counter

    from detectors.binning import Tallied

    column = Column("plan", "categorical", 3)  # three missing values first
    column.add_many(["b", None, "a", "b", "c"] * 20)
    values = column.values()
    assert type(values) is Tallied and values == [None] * 3 + ["b", None, "a", "b", "c"] * 20
    assert dict(values.tally) == dict(Counter(values))
    mixed = Column("plan", None, 0)  # numbers among the levels: no tally
    mixed.add_many(["b", 1.5, None, "a"] * 10)
    assert type(mixed.values()) is list
