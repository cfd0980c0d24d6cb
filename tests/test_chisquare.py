"""Chi-square homogeneity test agrees with scipy on the reference/window table; levels the
reference never had are counted or left out (``unseen``, categorical PSI's too)."""

import numpy as np
import pytest
from scipy import stats

from detectors import PSI, ChiSquare


@pytest.mark.parametrize("seed", range(4))
def test_matches_scipy_contingency(seed):
    rng = np.random.default_rng(seed)
    levels = ["a", "b", "c", "d"]
    reference = list(rng.choice(levels, size=400, p=[0.4, 0.3, 0.2, 0.1]))
    window = list(rng.choice(levels + ["new"], size=150, p=[0.3, 0.3, 0.2, 0.1, 0.1]))
    chi = ChiSquare(reference, window=150, threshold=10.0)
    chi.update_many(window)
    ref_counts = [reference.count(v) for v in levels] + [0]
    win_counts = [window.count(v) for v in levels] + [window.count("new")]
    expected = stats.chi2_contingency([ref_counts, win_counts], correction=False)
    assert chi.statistic == pytest.approx(expected.statistic, rel=1e-12)
    assert chi.p_value == pytest.approx(expected.pvalue, rel=1e-9)
    assert chi.drift == (expected.statistic > 10.0)


def test_no_p_value_before_the_first_test():
    chi = ChiSquare(["x", "y"] * 20, window=10, threshold=5.0)
    chi.update_many(["x"] * 5)
    assert chi.statistic is None and chi.p_value is None


@pytest.mark.parametrize("make", [
    lambda ref: ChiSquare(ref, window=150, stride=50, threshold=10.0, unseen="ignore"),
    lambda ref: PSI(ref, window=150, stride=50, threshold=0.1, categorical=True, unseen="ignore"),
])
def test_unseen_ignore_tests_the_reference_levels_only(make):
    """Levels the reference never had are left out of the window: the statistics are those
    of the stream without them, and a decision's ``at`` still numbers every value fed."""
    rng = np.random.default_rng(3)
    levels = ["a", "b", "c", "d"]
    reference = list(rng.choice(levels, size=400, p=[0.4, 0.3, 0.2, 0.1]))
    stream = list(rng.choice(levels + ["new1", "new2"], size=600, p=[0.3, 0.3, 0.2, 0.1, 0.05, 0.05]))
    known = [v for v in stream if v in levels]
    ignoring, plain = make(reference), make(reference)
    ignoring.update_many(stream)
    plain.update_many(known)
    mine, theirs = ignoring.pop_decisions(), plain.pop_decisions()
    assert [d.statistic for d in mine] == [d.statistic for d in theirs] and len(mine) >= 5
    positions = [i + 1 for i, v in enumerate(stream) if v in levels]
    assert [d.at for d in mine] == [positions[d.at - 1] for d in theirs]
    assert ignoring.n_skipped == len(stream) - len(known)


def test_unseen_ignore_p_value_has_the_reference_levels_degrees_of_freedom():
    reference = ["a"] * 200 + ["b"] * 120 + ["c"] * 80
    window = ["a"] * 60 + ["b"] * 50 + ["c"] * 40
    chi = ChiSquare(reference, window=150, threshold=10.0, unseen="ignore")
    chi.update_many(window[:75] + ["new"] * 30 + window[75:])
    expected = stats.chi2_contingency([[200, 120, 80], [60, 50, 40]], correction=False)
    assert chi.statistic == pytest.approx(expected.statistic, rel=1e-12)
    assert chi.p_value == pytest.approx(expected.pvalue, rel=1e-9)


def test_unseen_count_weighs_new_levels_as_change():
    reference = ["a"] * 200 + ["b"] * 200
    counting = ChiSquare(reference, window=100, threshold=10.0)
    counting.update_many(["a"] * 45 + ["b"] * 45 + ["new"] * 10)
    assert counting.drift and counting.n_skipped == 0


@pytest.mark.parametrize("build, message", [
    (lambda ref: ChiSquare(ref, window=10, threshold=1.0, unseen="drop"), "unseen must be one of"),
    (lambda ref: PSI(ref, window=10, threshold=1.0, categorical=True, unseen="drop"), "unseen must be one of"),
    (lambda ref: PSI([float(i) for i in range(40)], window=10, threshold=1.0, unseen="ignore"), "needs categorical"),
])
def test_bad_unseen_setting_raises(build, message):
    with pytest.raises(ValueError, match=message):
        build(["x", "y"] * 20)
