"""The throughput paths give the results of the plain ones: KS p-values computed when read
(not at every alarm), windows moved by slices per batch, categorical values binned per
distinct value, columns fed per distinct level."""

import pickle
from types import SimpleNamespace

import numpy as np
import pytest

from daemon.alerting.episodes import Episodes
from daemon.config import ModelConfig
from daemon.runtime.calibrator import calibrate_now
from daemon.stream import encoding as enc
from daemon.stream.pipeline import LazyDetail, ModelPipeline
from daemon.stream.reference import level
from detectors import KS, PSI, ChiSquare, RateTest, ks
from detectors.binning import CategoricalBins, _is_missing, _level
from detectors.windowed import DeferredDecision


def _drifting_ks():
    rng = np.random.default_rng(3)
    detector = KS(rng.normal(size=3000), window=200, stride=20, threshold=0.15)
    stream = np.concatenate([rng.normal(size=600), rng.normal(0.8, size=600)])
    return detector, stream


def test_a_ks_alarm_carries_its_p_value_computed_when_read():
    detector, stream = _drifting_ks()
    decisions, p_args = [], []
    ks._p_values.clear()  # scipy's p-values computed so far (a cache)
    for x in stream:
        detector.update(x)
        for d in detector.pop_decisions():
            decisions.append(d)
            p_args.append(detector._p_args)
    assert ks._p_values == {}  # nothing computed while testing
    drifting = [(d, ks.ks_p_value(*args, method=detector.method)) for d, args in zip(decisions, p_args) if d.drift]
    assert len(drifting) > 10 and all(isinstance(d, DeferredDecision) for d, _ in drifting)
    copy = pickle.loads(pickle.dumps(drifting[0][0]))
    for d, p in drifting:
        assert d.p_pending and d.p_value == p and not d.p_pending and 0 <= p < 1e-3
    assert copy.p_pending and copy.p_value == drifting[0][1] and copy == drifting[0][0]
    assert all(d.p_value is None for d in decisions if not d.drift and not d.warning)


def test_an_alert_reads_the_p_value_the_decision_would_have_carried():
    rng = np.random.default_rng(4)
    config = ModelConfig(reference_size=2000, window=200, stride=50, ert=20_000, reconstruction="off",
                         numeric_tests=["ks"])
    pipeline = ModelPipeline("m", config)
    values = np.concatenate([rng.normal(size=2600), rng.normal(1.0, size=600)])
    events = [SimpleNamespace(features={"x": float(v)}, prediction=1, score=None, model_version=None, ts=1.7e9 + i)
              for i, v in enumerate(values)]
    pipeline.observe_predictions(events[:2100])
    calibrate_now(pipeline)
    pipeline.observe_predictions(events[2100:])
    found = [o for o in pipeline.pop_observations() if o.detector == "ks" and o.drift]
    assert found and all(isinstance(o.detail, LazyDetail) for o in found)
    first = found[0]
    expected = first.detail.decision.__dict__["_pending"]
    p = expected[0](*expected[1])
    alert = Episodes().observe(("m", "ks", "x"), True, first.event_time, first.detail)
    assert alert.detail["p_value"] == p == first.detail["p_value"]
    assert dict(first.detail) == {"statistic": first.detail["statistic"], "threshold": first.detail["threshold"],
                                  "p_value": p, "model_version": None}
    assert pickle.loads(pickle.dumps(first.detail)) == first.detail
    assert len(first.detail) == 4 and first.detail.get("missing") is None


def _cases():
    rng = np.random.default_rng(8)
    numbers = rng.normal(size=3000)
    numbers[rng.random(3000) < 0.05] = np.nan
    stream = list(np.concatenate([rng.normal(size=2000), rng.normal(0.5, size=2000)]))
    for i in rng.choice(4000, 300, replace=False):
        stream[i] = None
    levels = ["a", "b", "c", 1, 2.0, True]
    categorical = [levels[i] for i in rng.integers(0, 6, 2000)] + [None] * 10
    cat_stream = [levels[i] if i < 6 else ("new" if i == 6 else None) for i in rng.integers(0, 8, 4000)]
    flags = np.zeros(4000, dtype=bool)
    flags[[5, 900, 2500]] = True
    flags[3000:3040] = True
    for window, stride in ((10, 1), (50, 7), (200, 200), (300, 100)):
        yield f"ks-{window}-{stride}", lambda: KS(numbers, window=window, stride=stride, threshold=0.2), stream
        yield f"psi-{window}-{stride}", lambda: PSI(numbers, window=window, stride=stride, threshold=0.2,
                                                    missing="ignore"), stream
        yield f"chi-{window}-{stride}", lambda: ChiSquare(categorical, window=window, stride=stride, threshold=9.0,
                                                          unseen="ignore", missing="ignore"), cat_stream
        yield f"chi-count-{window}-{stride}", lambda: ChiSquare(categorical, window=window, stride=stride,
                                                                threshold=9.0), cat_stream
        yield f"rate-{window}-{stride}", lambda: RateTest(np.zeros(1000, dtype=bool), window=window, stride=stride,
                                                          threshold=0.5), list(flags)


@pytest.mark.parametrize("name, make, stream", list(_cases()), ids=[c[0] for c in _cases()])
def test_batches_of_any_size_give_the_value_by_value_decisions_and_state(name, make, stream):
    one, batched, binned = make(), make(), make()
    for x in stream:
        one.update(x)
    expected = one.pop_decisions()
    rng = np.random.default_rng(len(name))
    got, got_binned, i = [], [], 0
    while i < len(stream):
        size = int(rng.choice([2, 3, 49, 100, 333, 1000]))
        batched.update_many(stream[i:i + size])
        binned.update_bins(binned.binning.index(stream[i:i + size]))
        got += batched.pop_decisions()
        got_binned += binned.pop_decisions()
        i += size
    assert got == expected == got_binned and len(expected) == one.n_tests > 0
    for d in (batched, binned):
        assert d.counts.tolist() == one.counts.tolist() and d.counts.dtype == one.counts.dtype
        assert d._window_bins().tolist() == one._window_bins().tolist()
        assert (d.n_seen, d.n_skipped, d._filled, d._until_test) == (one.n_seen, one.n_skipped, one._filled,
                                                                     one._until_test)
        assert d.statistic == one.statistic and d.p_value == one.p_value


MIXED = ["DE", True, 1, 1.0, "1", None, float("nan"), np.str_("DE"), "true", 2**60, 2**60 + 1, -0.0, 2.5, False, 0]


def test_categorical_bins_by_distinct_value_are_the_per_value_bins():
    bins = CategoricalBins(MIXED * 3 + ["DE"] * 20)
    expected = [bins.missing_bin if _is_missing(v) else bins.levels.get(_level(v), bins.other_bin)
                for v in MIXED + ["FR", 7]]
    assert bins.index(MIXED + ["FR", 7]).tolist() == expected
    assert bins.index(v for v in MIXED + ["FR", 7]).tolist() == expected  # a generator
    assert bins.index([]).tolist() == []
    levels: dict = {}
    for v in MIXED * 3 + ["DE"] * 20:
        if not _is_missing(v):
            levels[_level(v)] = levels.get(_level(v), 0) + 1
    assert {lv: int(bins.reference_counts[b]) for lv, b in bins.levels.items()} == levels
    assert int(bins.reference_counts[bins.missing_bin]) == 6
    strings = CategoricalBins(["b"] * 30 + ["a"] * 30 + [None] * 4)
    assert strings.levels == {"a": 0, "b": 1} and strings.reference_counts.tolist() == [30, 30, 0, 4]
    with pytest.raises(ValueError, match="expected a string, number or boolean"):
        bins.index(["DE", ["a", "list"]])
    with pytest.raises(ValueError, match="expected a string, number or boolean"):
        CategoricalBins(["DE"] * 30 + [{"a": 1}])


def test_a_batch_of_categorical_values_is_coded_per_distinct_value():
    values = [v for v in MIXED if type(v) is not np.str_]  # JSON's types
    codes, levels = enc.level_codes(values)
    assert [levels[c] for c in codes.tolist()] == [level(v) for v in values]
    assert levels.count("1") == 3 and "true" in levels  # 1, 1.0 and "1" one level, True another
    with pytest.raises(TypeError, match="expected a string, number, boolean or null"):
        enc.level_codes(["DE", ["a"]])


def test_a_categorical_column_fed_per_distinct_level_decides_as_value_by_value():
    rng = np.random.default_rng(9)
    choices = ["a", "b", 3, 3.0, True, None, "zz"]

    def event(i):
        late = i >= 1500
        value = choices[int(rng.choice(7, p=[0.3, 0.3, 0.1, 0.1, 0.1, 0.05, 0.05] if late else
                                       [0.4, 0.2, 0.15, 0.15, 0.1, 0.0, 0.0]))]
        return SimpleNamespace(features={"code": value, "x": float(rng.normal())}, prediction=i % 2, score=None,
                               model_version=None, ts=1.7e9 + i)

    events = [event(i) for i in range(3000)]
    config = ModelConfig(reference_size=1000, window=200, stride=50, ert=20_000, reconstruction="off",
                         features={"code": "categorical"}, categorical_tests=["chisquare", "psi"])
    runs = []
    for batch in (1, 250):
        pipeline = ModelPipeline("m", config)
        for i in range(0, len(events), batch):
            pipeline.observe_predictions(events[i:i + batch])
            if pipeline.reference_complete and pipeline.uncalibrated:
                calibrate_now(pipeline)
        runs.append([(o.detector, o.feature, o.drift, o.position, o.detail["statistic"])
                     for o in pipeline.pop_observations()])
        runs[-1].append(sorted(pipeline.schema.items()))
    assert runs[0] == runs[1]
    tests = {(d, f) for d, f, *_ in runs[0][:-1]}
    assert {("chisquare", "code"), ("psi", "code"), ("unseen_rate", "code"), ("missing_rate", "code")} <= tests
    assert any(d == "unseen_rate" and drift for d, f, drift, *_ in runs[0][:-1])


def test_the_reconstruction_rows_of_a_batch_are_the_per_value_rows():
    events = [{"x": v, "c": c} for v, c in zip([1, 2.5, None, True, "7", 2**60, -0.0, float("nan")] * 3,
                                                  ["a", 1, 1.0, None, True, "b", "1", "zz"] * 3)]
    events[5].pop("x")
    events[6].pop("c")
    encoding = (("x", None), ("c", ("a", "1", "true")))
    nan = float("nan")
    expected = []
    for f in events:
        x = f.get("x")
        row = [x if type(x) is float or type(x) is int else nan]
        lv = level(f.get("c"))
        row += [nan if lv is None else float(lv == wanted) for wanted in ("a", "1", "true")]
        expected.append(row)
    for raws in (None, {"x": [f.get("x") for f in events]}):
        got = enc.encode_events(events, encoding, raws)
        assert got.shape == (len(events), 4)
        np.testing.assert_array_equal(got, np.array(expected))
        np.testing.assert_array_equal(enc.encode(events, encoding), got)
    numbers = [{"x": v} for v in (1, 2.5, None, 2**60)]
    np.testing.assert_array_equal(enc.encode_events(numbers, (("x", None),))[:, 0], [1.0, 2.5, nan, float(2**60)])
