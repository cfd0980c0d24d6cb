"""The CUSUM mean-shift test (detectors/cusum.py): its statistic by hand, its delay on a
0.5 sigma shift, its false alarms against the asked run length, decisions that do not
depend on batch sizes or on when the thresholds arrive, and its place among a column's
tests (daemon/stream/columns.py). No timing is asserted."""

from __future__ import annotations

import math
import pickle
from collections import Counter

import numpy as np
import pytest

from daemon.config import ModelConfig
from daemon.stream.calibration_jobs import thresholds_of
from daemon.stream.columns import DataTests
from daemon.stream.reference import ReferenceSample
from detectors import CUSUM, LevelCUSUM, calibration, restore
from detectors.arl import OVERSHOOT, LogARL


def decisions(detector) -> list[tuple]:
    return [(d.at, d.drift, d.warning, d.statistic, d.threshold) for d in detector.pop_decisions()]


def test_statistic_matches_a_hand_computation():
    # Reference -1 and 1, ten each: mean 0, sd 1; two slots, represented by -1 and 1. The
    # empty slot between them is represented by 0, and a value beyond the reference by its
    # extreme (5 counts as 1).
    cusum = CUSUM([-1.0, 1.0] * 10, window=6, stride=3, threshold=1.2, shift=1.0)
    k = 0.5
    up = down = 0.0
    expected = []
    for x, z in zip([1, 1, 1, 0, -1, 5], [1, 1, 1, 0, -1, 1]):
        up, down = max(0.0, up + z - k), max(0.0, down - z - k)
        cusum.update(x)
        expected.append(max(up, down))
        assert cusum.value == pytest.approx(max(up, down), abs=1e-6)
    assert expected == pytest.approx([0.5, 1.0, 1.5, 1.0, 0.5, 0.5])
    # Value 3 passes 1.2: an entry into drift there; the first block (values 1-3) ends in
    # drift; the second (4-6) peaks at 1.0: out of drift.
    made = decisions(cusum)
    assert [(at, drift) for at, drift, *_ in made] == [(3, True), (3, True), (6, False)]
    assert [stat for *_, stat, _ in made] == pytest.approx([1.5, 1.5, 1.0], abs=1e-6)
    assert cusum.n_detections == 1 and cusum.last_detection_at == 3


def test_missing_values_are_left_out_and_positions_count_every_value():
    cusum = CUSUM([-1.0, 1.0] * 10, window=6, stride=3, threshold=1.2, shift=1.0)
    cusum.update_many([1.0, None, float("nan"), 1.0, 1.0])
    assert cusum.n_missing == 2 and cusum.n_seen == 5
    assert [(at, drift) for at, drift, *_ in decisions(cusum)] == [(5, True), (5, True)]


def test_the_sums_are_capped_at_block_ends():
    # After a long drift the statistic comes back within about a window of values.
    cusum = CUSUM([-1.0, 1.0] * 10, window=10, stride=5, threshold=2.0, shift=1.0)
    cusum.update_many([1.0] * 1000)
    assert cusum.value == pytest.approx(0.5 * 10, abs=1e-6)  # k * window
    # Values at the reference's mean (z = 0): S+ falls by k = 0.5 a value.
    cusum.update_many([0.0] * 5)
    assert cusum.drift  # the block peaked at 4.5 > 2: still
    cusum.update_many([0.0] * 5)
    assert not cusum.drift  # peaked at 2.0


def arl_gaussian(h: float, drift: float) -> float:
    """Siegmund's ARL of a one-sided CUSUM of N(drift, 1) increments to ``h``."""
    b = h + 2 * OVERSHOOT
    x = -2 * drift * b
    return (math.expm1(x) - x) / (2 * drift * drift)


def test_a_half_sigma_shift_is_detected_within_the_derived_bound():
    """The walk S+ rises by 0.5 - 0.25 = 0.25 a value after the shift; it passes ``h``
    after about ``b / 0.25`` values (``b = h + 1.166``: the threshold plus the overshoot),
    give or take ``sqrt(b / 0.25**3)`` (the first-passage time's sd). Every seed within
    five sds of that, the median within two; none before the change."""
    ert = 1e7
    delays = []
    for seed in range(20):
        rng = np.random.default_rng([seed, 8])
        cusum = CUSUM(rng.normal(size=5000), window=1000, stride=100, ert=ert, calibration_seed=seed)
        cusum.update_many(rng.normal(size=1000))
        assert cusum.n_detections == 0
        cusum.update_many(rng.normal(loc=0.5, size=2000))
        assert cusum.n_detections == 1
        delays.append(cusum.last_detection_at - 1000)
    h = cusum.threshold
    b = h + 2 * OVERSHOOT
    mean, sd = b / 0.25, math.sqrt(b / 0.25 ** 3)
    assert max(delays) <= mean + 5 * sd, delays
    assert np.median(delays) <= mean + 2 * sd, delays
    # And not faster than the information allows (Lorden: ln(ARL) / KL, KL = 0.125),
    # give or take the second-order terms (ln 8 + 1 in Siegmund's formula).
    assert np.median(delays) >= (math.log(ert) - math.log(8) - 1) / 0.125 - 2 * sd


@pytest.mark.parametrize("name, draw", [
    ("normal", lambda r, n: r.normal(size=n)),
    ("lognormal", lambda r, n: r.lognormal(0, 1.0, n)),
    ("poisson", lambda r, n: r.poisson(3, n).astype(float)),
    ("bernoulli", lambda r, n: r.binomial(1, 0.1, n).astype(float)),
])
def test_false_alarms_pooled_over_references_are_within_a_factor_2_of_asked(name, draw):
    ert, references = 20_000.0, 30
    n = int(50 * ert / references)  # 50 false alarms asked in all
    alarms = 0
    for seed in range(references):
        rng = np.random.default_rng([seed, 1, len(name)])
        cusum = CUSUM(draw(rng, 1000), window=200, stride=50, ert=ert, calibration_seed=seed)
        for start in range(0, n, 50_000):
            cusum.update_many(draw(rng, min(50_000, n - start)))
        alarms += cusum.n_detections
    ratio = alarms / (references * n / ert)
    assert 0.5 <= ratio <= 2, f"{name}: {alarms} false alarms, observed/asked {ratio:.2f}"


def shifted_stream(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    values = np.concatenate([rng.normal(size=3000), rng.normal(loc=0.6, size=1500), rng.normal(size=2500)])
    values[rng.random(values.size) < 0.05] = np.nan
    return values


def fed(detector, values, batch: int):
    for i in range(0, len(values), batch):
        detector.update_many(values[i:i + batch])
    return detector


@pytest.mark.parametrize("batch", [1, 7, 100, 333, 7000])
def test_decisions_do_not_depend_on_batch_sizes(batch):
    reference = np.random.default_rng(5).normal(size=2000)
    values = shifted_stream(6)
    one = decisions(fed(CUSUM(reference, window=500, stride=50, ert=1e6), values, 7000))
    other = decisions(fed(CUSUM(reference, window=500, stride=50, ert=1e6), values, batch))
    assert other == one
    assert any(drift for _, drift, *_ in one) and not one[-1][1]  # it entered drift, then left


@pytest.mark.parametrize("calibrate_after", [0, 20, 3030, 3333, 7000])
def test_decisions_do_not_depend_on_when_the_thresholds_arrive(calibrate_after):
    reference = np.random.default_rng(5).normal(size=2000)
    values = shifted_stream(7)
    synchronous = fed(CUSUM(reference, window=500, stride=50, ert=1e6), values, 100)
    deferred = CUSUM(reference, window=500, stride=50, ert=1e6, defer_calibration=True)
    assert not deferred.calibrated and deferred.threshold is None
    fed(deferred, values[:calibrate_after], 64)
    assert deferred.pop_decisions() == []  # held
    deferred.set_thresholds(*calibration.calibrate(deferred.null_model(), 1e6))
    fed(deferred, values[calibrate_after:], 64)
    assert decisions(deferred) == decisions(synchronous)
    assert (deferred.n_detections, deferred.last_detection_at) == (synchronous.n_detections, synchronous.last_detection_at)


@pytest.mark.parametrize("defer", [False, True])
def test_pickle_round_trip_mid_stream(defer):
    reference = np.random.default_rng(5).normal(size=2000)
    values = shifted_stream(8)
    cusum = fed(CUSUM(reference, window=500, stride=50, ert=1e6, defer_calibration=defer), values[:3210], 100)
    copy = restore(cusum.snapshot())
    assert isinstance(copy, CUSUM) and copy.value == cusum.value and len(pickle.dumps(cusum)) < 20_000
    for detector in (cusum, copy):
        if defer:
            detector.set_thresholds(*calibration.calibrate(detector.null_model(), 1e6))
        fed(detector, values[3210:], 100)
    assert decisions(copy) == decisions(cusum) and cusum.n_detections >= 1


def test_thresholds_grow_with_the_run_length_and_a_constant_has_no_cusum():
    reference = np.random.default_rng(5).normal(size=2000)
    cusum = CUSUM(reference, window=500, stride=50, threshold=1.0)
    model = cusum.null_model()
    levels = [calibration.calibrate(model, ert)[0] for ert in (1e3, 1e5, 1e7, 1e9)]
    assert levels == sorted(levels) and calibration.calibrate(model, 1e5)[1] < levels[1]
    # Asymptotically h ~ ln(ARL) / t, t = 2k / var = 0.5 (a little less: the reference's
    # uncertainty, pooled over, makes the slope steeper).
    assert (levels[3] - levels[2]) / math.log(100) == pytest.approx(2.0, rel=0.2)
    with pytest.raises(ValueError, match="no spread"):
        CUSUM([3.0] * 100, window=50, stride=10, threshold=1.0)


def test_log_arl_is_the_corrected_diffusion_formula_on_every_branch():
    # Siegmund's log ARL written plainly, every branch on every draw: the calibration's,
    # which computes each branch on the draws it serves, gives the same floats.
    def plain(h, t, mean, sd):
        b = h + 2 * OVERSHOOT * sd
        x = t * b
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            numerator = np.where(np.abs(x) < 1e-4, x * x / 2 * (1 + x / 3), np.expm1(np.minimum(x, 700)) - x)
            log_num = np.where(x > 50, x + np.log1p(-(x + 1) * np.exp(-np.minimum(x, 700))), np.log(numerator))
            out = log_num - np.log(t * -mean)
            out = np.where(~np.isfinite(out) & np.isfinite(t), np.log(b * b / sd ** 2), out)
        return np.where(np.isnan(t), np.inf, out)

    rng = np.random.default_rng(11)
    n = 400
    # Drifts of both signs and sizes (x near 0, moderate, beyond 50), walks that never
    # rise (t NaN) and walks without drift (mean 0).
    t = rng.normal(0.5, 0.5, n) * rng.choice([1e-6, 1.0, 10.0, 100.0], n)
    t[rng.random(n) < 0.05] = np.nan
    mean = -np.sign(t) * rng.uniform(1e-9, 1, n)
    mean[rng.random(n) < 0.05] = 0.0
    sd = rng.uniform(0.01, 3, n)
    log_arl = LogARL(t, mean, sd)
    for h in (0.0, 1e-7, 0.5, 7.3, 64.0, 1e5):
        assert np.array_equal(log_arl(h), plain(h, t, mean, sd), equal_nan=True)


def model_tests(config: ModelConfig) -> DataTests:
    sample = ReferenceSample(size=500, declared={}, max_features=10)
    rng = np.random.default_rng(2)
    for i in range(500):
        sample.add({"amount": float(rng.normal()), "count": int(rng.poisson(4)), "flag": 0, "plan": "ab"[i % 2]},
                   prediction=float(rng.normal()), score=float(rng.random()), task="regression")
    return DataTests(sample, config, Counter())


def test_a_column_s_cusum_shares_its_value_weight_and_can_be_turned_off():
    config = ModelConfig(window=100, stride=10, ert=10_000)
    tests = model_tests(config)
    for column in ("amount", "count", "<prediction>", "<score>"):  # numbers, the prediction, the score
        assert isinstance(tests.columns[column].tests["cusum"], CUSUM)
        assert tests.weights[("cusum", column)] == pytest.approx(1 / 3)
    assert "cusum" not in tests.columns["flag"].tests  # a constant: value_change
    assert isinstance(tests.columns["plan"].tests["cusum"], LevelCUSUM)  # a categorical: its levels' shares
    # Calibrated with the column's other value tests, each its share of the column's rate.
    job = next(j for j in tests.calibration_jobs() if j.column == "amount")
    thresholds = dict(zip(job.tests, thresholds_of(job)))
    assert thresholds["cusum"] == calibration.calibrate(tests.columns["amount"].tests["cusum"].null_model(),
                                                        tests.ert_of("cusum", "amount"))
    off = model_tests(ModelConfig(window=100, stride=10, ert=10_000, numeric_tests=["psi", "ks"]))
    assert [column for test, column in off.weights if test == "cusum"] == ["plan"]  # the level CUSUM stays
    assert off.total_weight == pytest.approx(tests.total_weight)


def test_a_run_length_no_threshold_reaches_is_an_infinite_threshold_not_an_error():
    """30 reference values: among the posterior's streams some drift away from the
    reference mean, so the threshold grows with the run length asked, about linearly, and
    beyond 1e7 the search gives up: inf (a test that never fires), not a ValueError that
    took the column's other tests with it."""
    reference = np.random.default_rng(0).normal(10, 2, 30).round(2)
    cusum = CUSUM(reference, window=1000, stride=100, ert=1e10, defer_calibration=True)
    h, warning = CUSUM.exact_thresholds(cusum.null_model(), [1e-10, 1e-9])
    assert h == math.inf and cusum.max_statistic() < warning < math.inf
    found = CUSUM.exact_thresholds(cusum.null_model(), [1e-8])[0]
    assert cusum.max_statistic() < found < 1e7  # a reachable rate: a number, above what a window reaches
    never = CUSUM(reference, window=1000, stride=100, ert=1e10)  # calibrated in the constructor
    assert never.threshold == math.inf
    never.update_many(np.full(3000, 30.0))  # 10 sd above the reference: it still never fires
    assert never.n_detections == 0 and not any(d.drift for d in never.pop_decisions())
    # In a model: the CUSUM alone is skipped, saying why; the column's other tests are calibrated.
    sample = ReferenceSample(size=30, declared={}, max_features=10)
    for x in reference:
        sample.add({"amount": float(x)}, prediction=1, score=None)
    tests = DataTests(sample, ModelConfig(reference_size=30, ert=1e10, reconstruction="off"), Counter())
    (job,) = [j for j in tests.calibration_jobs() if j.column == "amount"]
    tests.apply(job, thresholds_of(job), None)
    assert sorted(tests.columns["amount"].tests) == ["ks", "missing_rate", "psi"]
    assert tests.skipped[("cusum", "amount")] == (
        "can never fire at this contract: no threshold keeps its false alarms that rare (the largest statistic "
        f"a window can reach is {cusum.max_statistic():.4g}); a larger reference_size or window, or a smaller ert, "
        "would make it testable")
    assert "amount" not in tests.untestable
