"""The reference's compact column store (:class:`daemon.stream.reference.Numbers`, issue 8's
memory goal): every value comes back exactly, whatever form the column chose; the form is
the most compact one the values allow (decimal-scaled int8/16/32, float32, float64); a
checkpoint (pickle) taken while the reference is collected restores and goes on as if
uninterrupted, old checkpoints (float64 arrays) included; and a model's tests conclude the
same whatever the form (same thresholds, same detections as with float64 columns).

Memory itself is a figure of ``bench/scale.py`` (``--decimals``), never asserted here.
"""

from __future__ import annotations

import json
import math
import pickle
from array import array
from collections import Counter

import numpy as np
import pytest

from daemon.config import ModelConfig
from daemon.stream import reference
from daemon.stream.columns import DataTests
from daemon.stream.reference import Column, Numbers, ReferenceSample


def _same(got: np.ndarray, want: list) -> bool:
    """Bit for bit (the sign of zero too), NaN where missing."""
    want = np.array([math.nan if v is None else float(v) for v in want], dtype=np.float64)
    if got.shape != want.shape or not np.array_equal(np.isnan(got), np.isnan(want)):
        return False
    present = ~np.isnan(want)
    return np.array_equal(got[present].view(np.int64), want[present].view(np.int64))


def _kept(values, missing: int = 0, flush: bool = True) -> Numbers:
    numbers = Numbers(missing)
    for v in values:
        numbers.append(v)
    if flush:  # the form is chosen a chunk at a time
        numbers.flush()
    return numbers


# -- exactness --------------------------------------------------------------------------------
SPECIAL = [0.0, -0.0, math.inf, -math.inf, None, math.nan, 1e300, 5e-324, 2 ** 53, -2 ** 53, 1.5, 127, 128,
           -128, -129, 32767, -32768, 2 ** 31 - 1, -2 ** 31, 0.1, 1e-9, 123456789.123, 0.30000000000000004]


def _values(rng, kind: str, n: int) -> list:
    if kind == "decimals":
        digits = int(rng.integers(0, 7))
        return [float(json.loads(f"{v:.{digits}f}")) for v in rng.normal(0, 10.0 ** rng.integers(0, 5), n)]
    if kind == "float32":
        return [float(np.float32(v)) for v in rng.normal(size=n)]
    if kind == "float64":
        return rng.normal(size=n).tolist()
    if kind == "int":
        top = 10 ** int(rng.integers(1, 12))
        return [int(v) for v in rng.integers(-top, top, n)]
    return [SPECIAL[i] for i in rng.integers(0, len(SPECIAL), n)]


def test_every_value_comes_back_exactly_whatever_the_mix():
    rng = np.random.default_rng(0)
    for _ in range(600):
        kinds = rng.choice(["decimals", "float32", "float64", "int", "special"], size=int(rng.integers(1, 4)))
        values = [v for kind in kinds for v in _values(rng, kind, int(rng.integers(0, 40)))]
        if rng.random() < 0.5:
            values = [values[i] for i in rng.permutation(len(values))]
        missing = int(rng.integers(0, 3))
        numbers = _kept(values, missing, flush=bool(rng.random() < 0.5))  # values() includes the buffer
        assert len(numbers) == missing + len(values)
        assert _same(numbers.values(), [None] * missing + values), (list(kinds), numbers.form)


def test_values_come_back_exactly_across_chunks():
    """Chunks of different forms one after the other (each moves the column on)."""
    rng = np.random.default_rng(1)
    chunk = Numbers.CHUNK
    values = [*rng.integers(-100, 100, chunk).tolist(), *np.round(rng.normal(size=chunk), 2).tolist(), None,
              *np.round(rng.normal(size=chunk) * 1e4, 3).tolist(), -0.0,
              *[float(np.float32(v)) for v in rng.normal(size=chunk)], *rng.normal(size=chunk).tolist()]
    numbers = Numbers()
    forms = []
    for v in values:
        numbers.append(v)
        if len(numbers) % chunk == 0:
            forms.append((numbers.form, numbers.typecode))
    assert forms == [("int", "b"), ("int", "h"), ("int", "i"), ("float64", "d"), ("float64", "d")]
    assert _same(numbers.values(), values)


def _state(numbers: Numbers) -> tuple:
    return (numbers.form, numbers.decimals, numbers.typecode, numbers.data.tobytes(), numbers._low, numbers._wide,
            numbers._buffer.tobytes())


def test_extend_leaves_what_appending_value_by_value_leaves():
    """extend stores whole chunks at once when they keep the form: the same store, form,
    decimals, type and buffer as appending the values one by one, whatever the batches
    (a chunk that changes the form among them included)."""
    rng = np.random.default_rng(2)
    chunk = Numbers.CHUNK
    for _ in range(300):
        missing = int(rng.integers(0, 3))
        by_value, by_batch = Numbers(missing), Numbers(missing)
        for _ in range(int(rng.integers(1, 5))):
            kind = rng.choice(["decimals", "float32", "float64", "int", "special"])
            n = int(rng.choice([1, chunk - 1, chunk, chunk + 1, 3 * chunk, 10 * chunk + 7]))
            values = _values(rng, kind, n)
            for v in values:
                by_value.append(v)
            by_batch.extend(np.array([math.nan if v is None else float(v) for v in values], dtype=np.float64))
            assert _state(by_batch) == _state(by_value), kind


@pytest.mark.parametrize("values, form, typecode, decimals", [
    ([1, 2, -5, None, 100], "int", "b", 0),                       # small integers: 1 byte
    ([12.34, -5.5, 0.07, 99.99], "int", "h", 2),                  # 2 decimals, |x| < 327.67: 2 bytes
    ([1234.5678, -0.0001, 3.0], "int", "i", 4),                   # 4 decimals: 4 bytes
    ([float(np.float32(0.1)), 2.5, 0.5 ** 30], "float32", "f", 0),  # a model's float32 features
    ([0.1 + 0.2, 1.0], "float64", "d", 0),                        # full precision: 8 bytes
    ([0.5, -0.0, round(-0.004, 2)], "int", "b", 1),              # -0.0 (a rounded small negative) has its code
    ([1.5, 2 ** 40], "float32", "f", 0),                          # too wide for int32, a float32 exactly
    ([1.5, 2 ** 40 + 1], "float64", "d", 0),                      # neither
])
def test_the_column_chooses_the_most_compact_exact_form(values, form, typecode, decimals):
    numbers = _kept(values)
    assert (numbers.form, numbers.typecode, numbers.decimals) == (form, typecode, decimals)
    assert numbers.nbytes == len(values) * array(typecode).itemsize
    assert _same(numbers.values(), values)


def test_a_value_that_does_not_fit_moves_the_column_on_never_back():
    numbers = _kept([1.5] * 10 + [None])
    assert (numbers.form, numbers.typecode, numbers.decimals) == ("int", "b", 1)
    numbers.append(0.25)  # one more decimal: int8 cannot hold 150 any more
    numbers.flush()
    assert (numbers.typecode, numbers.decimals) == ("h", 2)
    numbers.append(0.1 + 0.2)  # full precision
    numbers.flush()
    assert numbers.form == "float64"
    numbers.append(3)
    numbers.flush()
    assert numbers.form == "float64"
    assert _same(numbers.values(), [1.5] * 10 + [None, 0.25, 0.1 + 0.2, 3])


# -- checkpoints ------------------------------------------------------------------------------
def _events(n: int, seed: int = 1, decimals: int | None = 2):
    rng = np.random.default_rng(seed)
    for i in range(n):
        x = rng.normal(size=3) * [1.0, 10.0, 100.0]
        if decimals is not None:
            x = np.round(x, decimals)
        features = {"a": float(x[0]), "b": float(x[1]), "c": None if i % 17 == 0 else float(x[2]),
                    "code": int(i % 5), "plan": "xyz"[i % 3]}
        yield features, i % 2, float(rng.random())


def test_a_checkpoint_taken_while_collecting_goes_on_as_if_uninterrupted():
    events = list(_events(400))
    whole = ReferenceSample(size=400, declared={}, max_features=10)
    part = ReferenceSample(size=400, declared={}, max_features=10)
    for features, prediction, score in events[:150]:
        whole.add(features, prediction, score)
        part.add(features, prediction, score)
    part = pickle.loads(pickle.dumps(part, protocol=pickle.HIGHEST_PROTOCOL))
    for features, prediction, score in events[150:]:
        whole.add(features, prediction, score)
        part.add(features, prediction, score)
    assert part.complete and [c.name for c in part.columns()] == [c.name for c in whole.columns()]
    for a, b in zip(whole.columns(), part.columns()):
        assert a.kind == b.kind and a.n_missing == b.n_missing
        if a.kind == "numeric":
            assert _same(b.values(), a.values().tolist())
        else:
            assert a.values() == b.values()
    assert whole.column("a").numbers.form == "int" and whole.column("c").n_missing == 24


def test_a_checkpoint_of_float64_columns_restores():
    """A reference saved before the compact store: its numbers were array('d')."""
    column = Column("a", None, 0)
    state = {"name": "a", "declared": None, "numbers": array("d", [1.5, math.nan, 2.25]), "codes": None,
             "levels": {}, "n_missing": 1}
    column.__setstate__((None, state))
    column.add(0.1 + 0.2)
    assert column.numbers.form == "float64" and column.n_present == 3
    assert _same(column.values(), [1.5, None, 2.25, 0.1 + 0.2])


def test_many_levels_widen_the_codes():
    column = Column("id", None, 2)
    for i in range(300):
        column.add(f"level-{i}")
    assert column.codes.typecode == "h" and column.kind == "categorical"
    assert column.values() == [None, None] + [f"level-{i}" for i in range(300)]


# -- the same conclusions ---------------------------------------------------------------------
class _Float64(Numbers):
    """The store as it was: float64 from the first value."""

    def __init__(self, missing: int = 0):
        super().__init__(missing)
        self.form, self.data = "float64", array("d", [math.nan]) * missing


@pytest.mark.parametrize("decimals", [2, None])
def test_tests_built_from_any_form_conclude_the_same(monkeypatch, decimals):
    """The same reference kept compactly or as float64: the same thresholds, and the same
    decisions on a stream whose feature ``b`` drifts."""
    config = ModelConfig(reference_size=600, window=200, stride=50, ert=20_000)
    built = []
    for store in (Numbers, _Float64):
        monkeypatch.setattr(reference, "Numbers", store)
        sample = ReferenceSample(size=600, declared={}, max_features=10)
        for features, prediction, score in _events(600, decimals=decimals):
            sample.add(features, prediction, score)
        tests = DataTests(sample, config, Counter())
        for job in tests.calibration_jobs():
            from daemon.stream.calibration_jobs import thresholds_of
            tests.apply(job, thresholds_of(job), None)
        stream = list(_events(1200, seed=2, decimals=decimals))
        for i, (features, _, _) in enumerate(stream[600:]):
            features["b"] += 8.0  # drift in b from the 601st event
        for start in range(0, len(stream), 100):
            batch = stream[start:start + 100]
            tests.update_many([f for f, _, _ in batch], [p for _, p, _ in batch], [s for _, _, s in batch])
        built.append({key: (d.threshold, d.warning_threshold, d.pop_decisions()) for key, d in tests.detectors()})
    compact, wide = built
    assert compact.keys() == wide.keys() and ("reconstruction", "<all>") in compact
    assert compact == wide
    assert any(decision.drift for _, _, decisions in compact.values() for decision in decisions)
