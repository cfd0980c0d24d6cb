"""Masked-feature reconstruction drift (issue 12), the detector alone
(:mod:`detectors.reconstruction`): its errors, batch independence, deferred calibration,
per-feature contributions, and its own false-alarm rate on stationary streams against the
``ert`` it was calibrated for (pooled over references, within a factor 2, and outside the
band for thresholds calibrated for another ert: the measure can fail).

The model-level part (a correlation flip under a full model whose univariate tests stay
silent, the model's contract, the config switch, /status and metrics) is in
``tests/test_reconstruction_model.py``.
"""

from __future__ import annotations

import math
import pickle

import numpy as np
import pytest

from detectors import calibration, reconstruction_null, restore
from detectors.reconstruction import Reconstruction, ReconstructionState


def correlated(rng, n: int, rho: float, extra: int = 0) -> np.ndarray:
    """Rows of two standard normals with correlation ``rho`` (identical marginals whatever
    ``rho``), then ``extra`` independent standard normals."""
    a, b = rng.normal(size=(2, n))
    pair = np.column_stack([a, rho * a + np.sqrt(1 - rho ** 2) * b])
    return np.column_stack([pair, rng.normal(size=(n, extra))]) if extra else pair


# -- errors -------------------------------------------------------------------------------
@pytest.mark.parametrize("reference, why", [
    (np.zeros((100, 1)), "at least 2 features"),
    (np.column_stack([np.arange(100.0), np.ones(100)]), "fewer than 2 distinct"),
    (np.column_stack([np.arange(10.0), np.arange(10.0)]), "at least 20 reference rows"),
    (np.full((100, 2), np.nan), "at least 20 reference rows"),
])
def test_a_reference_it_cannot_learn_from_is_refused_with_the_reason(reference, why):
    with pytest.raises(ValueError, match=why):
        Reconstruction(reference, window=50, threshold=2.0)


def test_settings_are_checked():
    x = correlated(np.random.default_rng(0), 200, 0.5)
    for kwargs, why in [(dict(window=1, threshold=1.0), "window"), (dict(window=50, stride=60, threshold=1.0), "stride"),
                        (dict(window=50), "exactly one"), (dict(window=50, threshold=1.0, ert=1e4), "exactly one"),
                        (dict(window=50, stride=10, ert=5), "ert must be at least stride"),
                        (dict(window=50, threshold=1.0, names=("a",)), "names"), (dict(window=50, threshold=1.0, groups=("a",)), "groups")]:
        with pytest.raises(ValueError, match=why):
            Reconstruction(x, **kwargs)


# -- the statistic ------------------------------------------------------------------------
def test_the_reference_error_is_one_and_a_stationary_window_stays_near_it():
    rng = np.random.default_rng(1)
    test = Reconstruction(correlated(rng, 5000, 0.8, extra=2), window=2000, threshold=10.0)
    assert test.null_model().errors.mean() == pytest.approx(1.0)
    test.update_many(correlated(rng, 2000, 0.8, extra=2))
    assert 0.9 < test.statistic < 1.1


def test_missing_values_leave_their_own_error_out_and_empty_rows_are_skipped():
    rng = np.random.default_rng(2)
    reference = correlated(rng, 2000, 0.8, extra=1)
    reference[rng.random(reference.shape) < 0.1] = np.nan
    test = Reconstruction(reference, window=100, threshold=10.0)
    rows = correlated(rng, 100, 0.8, extra=1)
    rows[:5] = np.nan  # nothing present: left out
    rows[5:, 0][::3] = np.nan
    errors, parts = test.errors(rows)
    assert np.isnan(errors[:5]).all() and np.isfinite(errors[5:]).all()
    assert (parts[5:, 0][::3] == 0).all()
    np.testing.assert_allclose(parts[5:].sum(axis=1), errors[5:])
    test.update_many(rows.tolist())  # lists with None work too
    test.update_many([[None, 1.0, 0.5]] * 5)
    assert test.n_skipped == 5 and test.n_seen == 105 and test.n_tests == 1


def test_batches_of_any_size_give_the_same_decisions():
    rng = np.random.default_rng(3)
    reference = correlated(rng, 1000, 0.7)
    stream = np.concatenate([correlated(rng, 700, 0.7), correlated(rng, 700, -0.7)])
    stream[rng.random(len(stream)) < 0.05] = np.nan  # skipped rows shift nothing
    one, batched = (Reconstruction(reference, window=200, stride=30, threshold=1.5) for _ in range(2))
    for row in stream:
        one.update(row)
    for start in range(0, len(stream), 97):
        batched.update_many(stream[start:start + 97])
    assert one.pop_decisions() == batched.pop_decisions()
    assert one.n_detections == batched.n_detections == 1
    assert 700 < one.last_detection_at < 800


def test_a_deferred_calibration_decides_the_held_tests_as_if_calibrated_from_the_start():
    rng = np.random.default_rng(4)
    reference = correlated(rng, 1000, 0.6, extra=1)
    stream = np.concatenate([correlated(rng, 600, 0.6, extra=1), correlated(rng, 400, -0.6, extra=1)])
    now = Reconstruction(reference, window=200, stride=50, ert=50_000)
    later = Reconstruction(reference, window=200, stride=50, ert=50_000, defer_calibration=True)
    now.update_many(stream)
    later.update_many(stream)
    assert not later.calibrated and later.pop_decisions() == [] and later.n_tests == 0
    later.set_thresholds(*calibration.calibrate(later.null_model(), 50_000))
    assert later.pop_decisions() == now.pop_decisions()
    assert later.drift and later.state() == now.state()


def test_snapshot_and_pickle_give_an_equal_detector():
    rng = np.random.default_rng(5)
    test = Reconstruction(correlated(rng, 500, 0.6), window=100, stride=20, threshold=1.5)
    test.update_many(correlated(rng, 150, 0.6))
    back = restore(test.snapshot())
    tail = correlated(rng, 300, -0.6)
    test.update_many(tail)
    back.update_many(tail)
    assert back.pop_decisions() == test.pop_decisions() and back.state() == test.state()
    assert pickle.loads(pickle.dumps(test.null_model())).key == test.null_model().key


def test_contributions_name_the_features_whose_relation_changed():
    rng = np.random.default_rng(6)
    test = Reconstruction(correlated(rng, 3000, 0.8, extra=3), names=("a", "b", "c", "d", "e"),
                          window=500, stride=100, threshold=1.5)
    assert test.state().contributions is None
    test.update_many(correlated(rng, 500, 0.8, extra=3))
    shares = test.contributions
    assert sum(shares.values()) == pytest.approx(1.0) and all(0.1 < s < 0.3 for s in shares.values())
    test.update_many(correlated(rng, 500, -0.8, extra=3))
    state = test.state()
    assert isinstance(state, ReconstructionState) and state.drift
    top = sorted(state.contributions, key=state.contributions.get, reverse=True)
    assert set(top[:2]) == {"a", "b"} and state.contributions["a"] + state.contributions["b"] > 0.8
    assert vars(state)["contributions"] == state.contributions  # what /status lists


def test_no_window_goes_beyond_max_statistic():
    rng = np.random.default_rng(7)
    test = Reconstruction(correlated(rng, 1000, 0.9), window=20, stride=5, threshold=1e9)
    wild = np.column_stack([rng.normal(0, 50, 400), -rng.normal(0, 50, 400)])  # far out, relation reversed
    test.update_many(wild)
    statistics = [d.statistic for d in test.pop_decisions()]
    assert max(statistics) <= test.max_statistic() and max(statistics) > 10


def test_the_simulation_is_deterministic_and_cached_by_its_null():
    rng = np.random.default_rng(8)
    test = Reconstruction(correlated(rng, 800, 0.5), window=100, stride=25, threshold=1.0)
    null = test.null_model()
    levels = calibration.calibrate(null, 20_000)
    calibration._cache.clear()
    assert calibration.calibrate(null, 20_000) == levels and levels[1] < levels[0]
    other = Reconstruction(correlated(rng, 800, 0.5), window=100, stride=25, threshold=1.0)
    assert other.null_model().key != null.key


# -- the false-alarm rate -----------------------------------------------------------------
WINDOW, STRIDE, ERT = 200, 50, 20_000.0
# Many short runs: a test's false-alarm rate depends mostly on its reference's luck (how
# far the stream's mean error falls from the reference's), which only more references average.
REFERENCES, EVENTS = 80, 20_000  # 80 false alarms asked
#: Simulated tests per calibration here (the default, 100,000, for a rate of a few per
#: 100,000 tests: 1 in 400 here is seen 50 times in 20,000 tests, no extrapolation).
SIMULATED_TESTS = 20_000


def _false_alarms(seed: int, factor: float = 1.0) -> int:
    """Entries into drift of a test calibrated for ``ERT * factor`` on a stationary stream
    of ``EVENTS`` rows of a random 4-feature model (correlated normals, one of them made
    lognormal, one made a count: the scores make them alike), its reference drawn fresh."""
    rng = np.random.default_rng([seed, 12])
    d = 4
    root = rng.normal(size=(d, d))
    cov = root @ root.T + np.eye(d)
    scale = np.sqrt(np.diag(cov))
    cov /= np.outer(scale, scale)

    def draw(n):
        x = rng.multivariate_normal(np.zeros(d), cov, size=n)
        x[:, 1] = np.exp(x[:, 1])
        x[:, 2] = np.round(3 * x[:, 2])
        return x

    test = Reconstruction(draw(1000), window=WINDOW, stride=STRIDE, ert=ERT, defer_calibration=True)
    test.set_thresholds(*calibration.calibrate(test.null_model(), ERT * factor))
    test.update_many(draw(EVENTS))
    return test.n_detections


@pytest.mark.parametrize("factor, inside", [(1.0, lambda r: 0.5 <= r <= 2), (10.0, lambda r: r < 0.5),
                                            (0.1, lambda r: r > 2)])
def test_false_alarms_on_stationary_streams_match_the_ert(factor, inside, monkeypatch):
    """Pooled over references, observed / asked within a factor 2 at the ert calibrated
    for; thresholds for 10 times the ert (or a tenth) leave the band on the same streams."""
    monkeypatch.setattr(reconstruction_null, "N_TESTS", SIMULATED_TESTS)  # part of the null's key: no stale cache
    references = REFERENCES if factor == 1.0 else 10
    alarms = [_false_alarms(seed, factor) for seed in range(references)]
    asked = references * EVENTS / ERT
    ratio = sum(alarms) / asked
    assert inside(ratio), f"ert x {factor}: {sum(alarms)} false alarms for {asked:.0f} asked (ratio {ratio:.2f}); {alarms}"


def test_a_feature_that_copies_another_is_fine_until_the_copy_breaks():
    """Collinear features (one the exact copy of another) give finite errors; a stream that
    keeps the copy stays at the reference's error, one that breaks it fires at once."""
    rng = np.random.default_rng(9)

    def rows(n, broken=False):
        a, b = rng.normal(size=(2, n))
        return np.column_stack([a, rng.normal(size=n) if broken else a, b])
    test = Reconstruction(rows(1000), window=100, stride=50, ert=100_000)
    test.update_many(rows(1000))
    assert test.n_detections == 0 and np.isfinite(test.statistic)
    test.update_many(rows(100, broken=True))
    assert test.drift and test.statistic > 100 * test.threshold


# -- memory: what the test keeps (issue 8) ------------------------------------------------------
def test_contributions_are_the_shares_of_the_window_parts():
    """The parts are kept summed by blocks of gcd(window, stride) rows: the shares are
    those of the last window's rows, whatever the batches."""
    rng = np.random.default_rng(9)
    names = ("a", "b", "c")
    stream = correlated(rng, 1300, 0.7, extra=1)
    stream[rng.random(len(stream)) < 0.03] = np.nan  # skipped rows
    for window, stride in [(200, 50), (200, 30), (150, 150)]:
        one, batched = (Reconstruction(correlated(np.random.default_rng(10), 800, 0.7, extra=1), names=names,
                                       window=window, stride=stride, threshold=1.5) for _ in range(2))
        for row in stream:
            one.update(row)
        for start in range(0, len(stream), 83):
            batched.update_many(stream[start:start + 83])
        errors, parts = one.errors(stream)
        kept = parts[~np.isnan(errors)]
        tested = kept[:(len(kept) - window) // stride * stride + window][-window:]  # the last tested window
        want = tested.sum(axis=0) / tested.sum()
        assert one.contributions == batched.contributions
        np.testing.assert_allclose([one.contributions[n] for n in names], want, rtol=1e-9)
        assert one._blocks.shape == (window // math.gcd(window, stride), 3)


def test_a_state_saved_with_every_rows_parts_restores():
    """A checkpoint from before the blocks (a ring of every row's parts, float32) goes on
    with the same decisions and about the same contributions."""
    rng = np.random.default_rng(11)
    names = ("a", "b", "c")
    test = Reconstruction(correlated(rng, 800, 0.7, extra=1), names=names, window=200, stride=50, threshold=1.5)
    head = correlated(rng, 437, 0.7, extra=1)
    test.update_many(head)
    # The old state: the last `window` rows' parts in a ring ending at _head.
    _, parts = test.errors(head)
    old = dict(vars(test))
    for key in ("_block", "_blocks", "_open", "_in_open", "_blocks_head"):
        del old[key]
    ring = np.zeros((200, 3), dtype=np.float32)
    ring[(test._head - 200 + np.arange(200)) % 200] = parts[-200:]
    old["_parts"] = ring
    back = Reconstruction.__new__(Reconstruction)
    back.__setstate__(old)
    tail = correlated(rng, 300, -0.7, extra=1)
    test.update_many(tail)
    back.update_many(tail)
    assert back.pop_decisions() == test.pop_decisions()
    assert back.contributions.keys() == test.contributions.keys()
    np.testing.assert_allclose(list(back.contributions.values()), list(test.contributions.values()), rtol=1e-6)


def test_the_null_is_released_once_calibrated():
    rng = np.random.default_rng(12)
    test = Reconstruction(correlated(rng, 1000, 0.6), window=100, stride=25, ert=20_000, defer_calibration=True)
    size = len(pickle.dumps(test))
    test.set_thresholds(*calibration.calibrate(test.null_model(), 20_000))
    with pytest.raises(ValueError, match="released"):
        test.null_model()
    assert len(pickle.dumps(test)) < size - 1000 * 8
    assert Reconstruction(correlated(rng, 1000, 0.6), window=100, stride=25, ert=20_000)._null_errors is None


def test_features_without_ties_share_their_score_table():
    rng = np.random.default_rng(13)
    a = Reconstruction(correlated(rng, 1000, 0.6, extra=2), window=100, threshold=2.0)
    b = pickle.loads(pickle.dumps(Reconstruction(correlated(rng, 1000, -0.3, extra=2), window=100, threshold=2.0)))
    assert all(s is a._tables[0][1] for _, s in [*a._tables, *b._tables])  # the same mid-ranks, one array
    tied = Reconstruction(np.round(correlated(rng, 1000, 0.6), 1), window=100, threshold=2.0)
    assert tied._tables[0][1] is not a._tables[0][1]


# -- the simulation: faster, the same numbers ------------------------------------------------------
@pytest.mark.parametrize("seed, rows, window, stride, expected", [
    # Computed by the Polya-urn simulation (SIMULATION_VERSION 2) working through runs a
    # few at a time; one run at a time (CACHE_ELEMENTS 1) gives the same numbers.
    (0, 3000, 200, 50, (9793, 9791.70828560531, 10073.15346454904, 980000, 1.2387353756328365)),
    (4, 1000, 100, 30, (9791, 9379.111492480888, 9798.245706913916, 588000, 1.293279136065264)),
])
@pytest.mark.parametrize("cache_elements", [reconstruction_null.CACHE_ELEMENTS, 1])
def test_the_simulation_gives_the_numbers_it_always_gave(seed, rows, window, stride, expected, cache_elements,
                                                         monkeypatch):
    monkeypatch.setattr(reconstruction_null, "CACHE_ELEMENTS", cache_elements)
    errors = np.random.default_rng(seed).gamma(2.0, 0.5, rows)
    starts, ends, n_values, top = reconstruction_null.simulate(
        reconstruction_null.ReconstructionNull(errors, window, stride, seed), reconstruction_null.N_TESTS)
    assert (len(starts), float(starts.sum()), float(ends.sum()), n_values, top) == expected


def test_the_urn_draws_runs_as_the_bayesian_bootstrap_does():
    """Rows drawn with flat Dirichlet weights: each row 1/n; two draws the same row
    ``E[sum w_i^2] = 2 / (n + 1)``, three ``E[sum w_i^3] = 6 / ((n + 1)(n + 2))``,
    whatever the draws' places in the run. The urn, on 200,000 runs of 4 draws of 4 rows."""
    n, runs = 4, 200_000
    rows = reconstruction_null.urn_rows(np.random.default_rng(14).random((runs, 4)), n)
    assert rows.min() == 0 and rows.max() == n - 1
    se = lambda p: 4 * np.sqrt(p * (1 - p) / runs)  # noqa: E731 - four standard errors
    for k in range(4):
        assert abs(np.mean(rows[:, k] == 2) - 1 / n) < se(1 / n)
    for i, j in [(0, 1), (0, 3), (2, 3)]:
        assert abs(np.mean(rows[:, i] == rows[:, j]) - 2 / (n + 1)) < se(2 / (n + 1))
    three = 6 / ((n + 1) * (n + 2))
    assert abs(np.mean((rows[:, 0] == rows[:, 1]) & (rows[:, 1] == rows[:, 3])) - three) < se(three)


def test_the_statistics_are_the_same_to_the_last_bit_whatever_the_batch_size():
    """Twenty features (where a BLAS product's summation order depends on the batch's
    rows): the same stream in batches of 1, 7 and 500 gives bit-identical decisions."""
    rng = np.random.default_rng(11)
    mix = rng.normal(size=(20, 20))
    reference = rng.normal(size=(3000, 20)) @ mix
    stream = rng.normal(size=(2000, 20)) @ mix
    decisions = []
    for size in (1, 7, 500):
        detector = Reconstruction(reference, window=300, stride=50, threshold=5.0)
        for start in range(0, len(stream), size):
            detector.update_many(stream[start:start + size])
        decisions.append([(d.at, d.statistic) for d in detector.pop_decisions()])
    assert len(decisions[0]) > 30
    assert decisions[0] == decisions[1] == decisions[2]


def test_a_feature_of_many_columns_has_an_equal_share_on_a_stationary_stream():
    """A new user's finding: the contributions summed a feature's columns, so a categorical
    feature (its frequent levels' indicators) took 0.37 and 0.27 of a stationary stream's
    error against about 0.09 for each numeric one; "about equal", the README said. A
    feature's error is the mean of its columns' now."""
    rng = np.random.default_rng(4)

    def rows(n):
        a, b, c = rng.normal(size=(3, n))
        level = rng.integers(0, 5, n)  # a categorical of 5 levels, as 4 indicators, tied to a
        level = np.where(rng.random(n) < 0.5, (a > 0).astype(int) * 2, level)
        return np.column_stack([a, b, c] + [(level == k).astype(float) for k in range(1, 5)])

    names = ("a", "b", "c", "plan=1", "plan=2", "plan=3", "plan=4")
    groups = ("a", "b", "c", "plan", "plan", "plan", "plan")
    test = Reconstruction(rows(4000), names=names, groups=groups, window=1000, stride=1000, threshold=5.0)
    test.update_many(rows(1000))
    shares = test.contributions
    assert set(shares) == {"a", "b", "c", "plan"}
    assert all(0.18 < s < 0.32 for s in shares.values()), shares
