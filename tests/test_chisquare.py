"""Chi-square homogeneity test agrees with scipy on the reference/window table."""

import numpy as np
import pytest
from scipy import stats

from detectors import ChiSquare


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
