"""Thresholds from an expected run length: on stationary streams the false alarms come
about as rarely as asked (within a factor 2, pooled over several reference samples), for
continuous, tied-integer and categorical features; deferred calibration gives exactly the
decisions of a synchronous one; null models are small and shared where they may be."""

import threading

import numpy as np
import pytest

from detectors import KS, PSI, ChiSquare, RateTest, calibration

LEVELS = np.array([f"level{i}" for i in range(50)], dtype=object)


def _draw(kind, rng):
    """A stationary source of one kind: a function n -> n values."""
    if kind == "continuous":
        loc = rng.normal()
        return lambda n: rng.normal(loc, size=n)
    if kind == "tied":
        lam = rng.uniform(2, 30)
        return lambda n: rng.poisson(lam, size=n).astype(float)
    k = int(rng.integers(5, 51))
    p = rng.dirichlet(np.ones(k))
    return lambda n: LEVELS[rng.choice(k, size=n, p=p)]


@pytest.mark.parametrize("kind, make", [
    ("continuous", lambda ref, **kw: PSI(ref, **kw)),
    ("continuous", lambda ref, **kw: KS(ref, **kw)),
    ("tied", lambda ref, **kw: PSI(ref, **kw)),
    ("tied", lambda ref, **kw: KS(ref, **kw)),
    ("categorical", lambda ref, **kw: ChiSquare(ref, **kw)),
    ("categorical", lambda ref, **kw: PSI(ref, categorical=True, **kw)),
], ids=["continuous-psi", "continuous-ks", "tied-psi", "tied-ks", "categorical-chisquare", "categorical-psi"])
def test_false_alarm_rate_is_within_a_factor_two_of_the_asked(kind, make):
    ert, n_refs, n_values = 10_000, 6, 200_000
    rng = np.random.default_rng(2026)
    alarms = 0
    for _ in range(n_refs):
        draw = _draw(kind, rng)
        detector = make(draw(5000), window=1000, stride=100, ert=ert)
        for _ in range(n_values // 50_000):
            detector.update_many(draw(50_000))
        alarms += detector.n_detections
    ratio = alarms / (n_refs * n_values / ert)
    assert 0.5 <= ratio <= 2.0, f"observed/asked false-alarm rate {ratio:.2f}"


def _feed(detector, stream, sizes):
    i = 0
    for size in sizes:
        detector.update_many(stream[i:i + size])
        i += size
    detector.update_many(stream[i:])


@pytest.mark.parametrize("make, source", [
    (lambda ref, **kw: PSI(ref, **kw), "numbers"),
    (lambda ref, **kw: KS(ref, **kw), "numbers"),
    (lambda ref, **kw: ChiSquare(ref, **kw), "levels"),
    (lambda ref, **kw: RateTest(ref, **kw), "flags"),
], ids=["psi", "ks", "chisquare", "rate"])
def test_deferred_calibration_decides_exactly_as_a_synchronous_one(make, source):
    rng = np.random.default_rng(3)
    if source == "numbers":
        ref, stream = rng.normal(size=3000), np.r_[rng.normal(size=4000), rng.normal(0.4, size=2000)]
        stream = stream.astype(object)
        stream[::17] = None
        stream = list(stream)
    elif source == "levels":
        ref = list(rng.choice(LEVELS[:6], 3000))
        stream = list(rng.choice(LEVELS[:6], 4000)) + list(rng.choice(LEVELS[:8], 2000))
    else:
        ref, stream = rng.random(3000) < 0.01, np.r_[rng.random(4000) < 0.01, rng.random(2000) < 0.05]
    sync = make(ref, window=500, stride=50, ert=20_000)
    deferred = make(ref, window=500, stride=50, ert=20_000, defer_calibration=True)
    assert sync.calibrated and not deferred.calibrated and deferred.threshold is None
    sizes = rng.integers(1, 400, size=40)
    _feed(sync, stream, sizes)
    half = int(sizes[:20].sum())
    _feed(deferred, stream[:half], sizes[:20])  # the calibration is slow: values keep coming
    assert deferred.pop_decisions() == [] and deferred.n_tests == 0 and not deferred.drift
    deferred.set_thresholds(*calibration.calibrate(deferred.null_model(), 20_000))
    _feed(deferred, stream[half:], sizes[20:])
    assert deferred.state() == sync.state()
    decisions = sync.pop_decisions()
    assert deferred.pop_decisions() == decisions and len(decisions) == sync.n_tests > 50
    assert any(d.drift for d in decisions) and [d.at for d in decisions] == sorted(d.at for d in decisions)


def test_null_models_hold_counts_only_and_are_shared_by_continuous_features():
    rng = np.random.default_rng(4)
    a = KS(rng.normal(size=5000), window=1000, stride=100, threshold=1.0).null_model()
    b = KS(rng.exponential(size=5000) * 1e6, window=1000, stride=100, threshold=1.0).null_model()
    tied = KS(rng.poisson(5, size=5000), window=1000, stride=100, threshold=1.0).null_model()
    assert a.key == b.key != tied.key
    assert len(a.counts) <= 2 * 128 + 1 and sum(a.counts) == 5000
    assert PSI(rng.normal(size=5000), threshold=1.0).null_model().key == \
        PSI(rng.uniform(size=5000), threshold=1.0).null_model().key


def test_calibration_is_deterministic_across_threads():
    model = ChiSquare(list(np.random.default_rng(5).choice(LEVELS[:20], 4000)), window=500, stride=50,
                      threshold=1.0).null_model()
    calibration._cache.clear()
    calibration._simulations.clear()
    results = []
    threads = [threading.Thread(target=lambda: results.append(calibration.calibrate(model, 50_000))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    calibration._cache.clear()
    calibration._simulations.clear()
    assert len(set(results)) == 1 and results[0] == calibration.calibrate(model, 50_000)


def test_calibrated_threshold_still_detects_a_real_shift():
    rng = np.random.default_rng(5)
    ks = KS(rng.normal(size=5000), window=1000, stride=100, ert=50_000)
    ks.update_many(rng.normal(size=5000))
    assert ks.n_detections == 0
    ks.update_many(rng.normal(0.3, size=1000))
    assert ks.drift and ks.warning_threshold < ks.threshold


def test_longer_run_lengths_give_higher_thresholds():
    ref = np.random.default_rng(6).normal(size=3000)
    thresholds = [PSI(ref, window=500, stride=100, ert=ert).threshold for ert in (2_000, 20_000, 500_000)]
    assert thresholds == sorted(thresholds) and len(set(thresholds)) == 3


def test_ert_shorter_than_a_test_is_refused():
    with pytest.raises(ValueError, match="ert must be at least stride"):
        PSI(np.arange(100.0), window=50, stride=50, ert=10)
    with pytest.raises(ValueError, match="ert must be at least stride"):
        calibration.calibrate(PSI(np.arange(100.0), window=50, threshold=1.0).null_model(), 10)


def test_level_for_rate_reads_the_observed_rate_and_extrapolates_the_tail():
    # Crossings of exponential statistics: pairs (0, e) with e ~ Exp(1); the level with
    # rate r per pair is -log(r), observed or extrapolated.
    rng = np.random.default_rng(7)
    ends = rng.exponential(size=200_000)
    starts = np.zeros_like(ends)
    observed = calibration.level_for_rate(starts, ends, ends.size, 1e-3, 1)
    extrapolated = calibration.level_for_rate(starts, ends, ends.size, 1e-7, 1)
    assert observed == pytest.approx(-np.log(1e-3), rel=0.05)
    assert extrapolated == pytest.approx(-np.log(1e-7), rel=0.05)
    with pytest.raises(ValueError, match="never varied"):
        calibration.level_for_rate([], [], 100, 0.01, 1)


def test_crossing_curve_counts_the_pairs_across_each_level():
    # Tied statistics, as windows' counts give them: each distinct end is a level, crossed
    # by the pairs with start <= level < end; the curve is its tail from the busiest level.
    rng = np.random.default_rng(9)
    starts = np.round(rng.exponential(size=3000), 1)
    ends = starts + np.round(rng.exponential(size=3000), 1) + 0.1
    levels, counts = calibration.crossing_curve(starts, ends)
    distinct = np.unique(ends)
    plain = np.array([np.count_nonzero((starts <= level) & (level < ends)) for level in distinct])
    peak = int(np.argmax(plain))
    assert np.array_equal(levels, distinct[peak:]) and np.array_equal(counts, plain[peak:])


def test_union_of_a_columns_tests_spends_the_budget_rate_tests_leave():
    rng = np.random.default_rng(8)
    ref = rng.normal(size=5000)
    psi, ks = PSI(ref, threshold=1.0).null_model(), KS(ref, threshold=1.0).null_model()
    missing = RateTest(np.zeros(5000, dtype=bool), threshold=1.0).null_model()
    ert = 2_000_000
    union = calibration.calibrate_union([psi, ks, missing], ert)
    equal = [calibration.calibrate(m, 3 * ert) for m in (psi, ks, missing)]
    assert union[2] == equal[2]
    spent = RateTest.exact_rate(missing, union[2][0])
    assert spent < 1 / (3 * ert)
    # PSI and KS share what the rate test left, their union alarming at 1/ert - spent.
    alone = calibration.calibrate_union([psi, ks], 1 / (1 / ert - spent))
    for i in range(2):
        assert union[i][0] == pytest.approx(alone[i][0], rel=1e-9)
        assert union[i][0] < equal[i][0]


def _union_rate(models, levels, seed: int) -> float:
    """Union entries per value at ``levels`` on a simulation of its own (another seed)."""
    from detectors import joint

    fresh = [calibration.NullModel(m.kind, m.counts, m.window, m.stride, m.params, seed) for m in models]
    stats, n_values = joint.joint_simulation(fresh, 4 * calibration.N_TESTS)
    return joint._entries(stats, levels) / n_values


@pytest.mark.parametrize("kind", ["continuous", "tied"])
def test_psi_and_ks_of_a_column_are_calibrated_for_the_union_of_their_alarms(kind):
    from detectors import joint

    ref = _draw(kind, np.random.default_rng(11))(1000)
    common = dict(window=200, stride=50, threshold=1.0)
    models = [PSI(ref, **common).null_model(), KS(ref, **common).null_model()]
    assert joint.sharing_groups(models) == [[0, 1]]
    # The union's rate seen in the simulation, then (continuous: the statistics' tails are
    # smooth enough for one reference to tell) extrapolated beyond it.
    for ert in (4_000, 100_000) if kind == "continuous" else (4_000,):
        levels = calibration.calibrate_union(models, ert)
        observed = _union_rate(models, [t for t, _ in levels], seed=5) * ert
        assert 0.6 < observed < 1.6, (ert, observed)


def test_tests_that_do_not_see_the_same_windows_keep_the_equal_split():
    from detectors import joint

    rng = np.random.default_rng(12)
    ref = rng.normal(size=2000)
    ref[rng.random(2000) < 0.1] = np.nan  # KS leaves missing values out, PSI counts them
    psi, ks = PSI(ref, window=200, stride=50, threshold=1.0), KS(ref, window=200, stride=50, threshold=1.0)
    models = [psi.null_model(), ks.null_model()]
    assert joint.sharing_groups(models) == [[0], [1]]
    assert calibration.calibrate_union(models, 50_000) == [calibration.calibrate(m, 100_000) for m in models]
    levels = ["a"] * 500 + ["b"] * 300 + ["c"] * 200
    categorical = [ChiSquare(levels, window=200, stride=50, threshold=1.0, unseen="ignore").null_model(),
                   PSI(levels, categorical=True, unseen="ignore", window=200, stride=50, threshold=1.0).null_model()]
    assert joint.sharing_groups(categorical + models[:1]) == [[0, 1], [2]]


def test_joint_calibration_is_the_same_in_any_thread():
    ref = _draw("tied", np.random.default_rng(13))(1000)
    models = [PSI(ref, window=200, stride=50, threshold=1.0).null_model(),
              KS(ref, window=200, stride=50, threshold=1.0).null_model()]
    calibration._cache.clear()
    calibration._simulations.clear()
    here = calibration.calibrate_union(models, 30_000)
    calibration._cache.clear()
    calibration._simulations.clear()
    there = []
    thread = threading.Thread(target=lambda: there.append(calibration.calibrate_union(models, 30_000)))
    thread.start()
    thread.join()
    assert there == [here]


@pytest.mark.parametrize("kept", [True, False])
@pytest.mark.parametrize("table", [True, False])
@pytest.mark.parametrize("dtype", [np.int16, np.int64])
def test_joint_statistics_are_the_kinds_own_floats(kept, table, dtype, monkeypatch):
    """The joint simulation's KS from running counts (with its table of gaps or without),
    and the counts per bin it gives PSI (laid out bins outermost, kept for one call or
    not), yield exactly the floats of the kinds' batch_statistic on the bins' counts, from
    windows of the narrow integer type the streams give or of int64: the thresholds do
    not depend on the fast path."""
    from detectors import joint

    if not kept:
        monkeypatch.setattr(calibration, "_KEPT_CELLS", 0)
    if not table:
        monkeypatch.setattr(joint, "_TABLE_CELLS", 0)

    rng = np.random.default_rng(8)
    ref = np.round(rng.normal(size=3000), 2)
    common = dict(window=200, stride=50, threshold=1.0)
    models = [PSI(ref, **common).null_model(), KS(ref, **common).null_model()]
    atoms = joint.joint_atoms(models)
    bounds = np.cumsum(atoms)
    windows = rng.multinomial(200, atoms / atoms.sum(), size=(3, calibration.RUN_TESTS))
    narrow = windows.astype(dtype)
    cum = np.concatenate([np.zeros(windows.shape[:-1] + (1,), dtype=np.int64), np.cumsum(windows, axis=-1)], axis=-1)
    for model in models:
        kind = calibration.KINDS[model.kind]
        end = joint._bin_ends(model, bounds)
        # As the joint simulation always laid out a model's counts (fancy indexing).
        counts = cum[..., end[1:]] - cum[..., end[:-1]]
        reference = np.asarray(model.counts, dtype=np.int64)
        expected = kind.batch_statistic(reference, counts, dict(model.params))
        statistic = joint._statistic(kind, reference, end, atoms.size, dict(model.params), model.window, 3)
        statistic.add(narrow[:2])  # given in parts, as stream_windows gives them
        statistic.add(narrow[2:])
        assert np.array_equal(statistic.result(), expected), model.kind


def test_a_level_without_crossings_between_two_seen_ones_is_left_out_of_the_tail_fit():
    """A new user's finding: check-config of a window far larger than the reference printed
    numpy's "divide by zero encountered in log": a level of the fitted span had no crossing."""
    import warnings

    from detectors.calibration import MIN_CROSSINGS, level_on_curve

    levels = np.linspace(0.1, 1.0, 10)
    counts = np.array([400, 300, 200, 0, 120, 80, 50, 30, MIN_CROSSINGS, 1], dtype=float)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        level = level_on_curve(levels, counts, n_values=10_000_000, rate=1e-9, tail_power=1)
    assert level > 1.0
