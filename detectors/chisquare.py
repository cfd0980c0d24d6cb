"""Chi-square test of homogeneity of a categorical window against a reference.

Levels are binned as for categorical PSI (reference levels, "other", missing). The
statistic is Pearson's on the 2 x k table of reference and window counts, without bins
empty in both (as ``scipy.stats.chi2_contingency`` without continuity correction); the
p-value is the chi-square tail with k - 1 degrees of freedom.

>>> ref = ["DE"] * 500 + ["FR"] * 300 + ["IT"] * 200
>>> chi = ChiSquare(ref, window=200, threshold=20.0)
>>> chi.update_many(["DE"] * 100 + ["FR"] * 60 + ["IT"] * 40)
>>> chi.drift, chi.statistic
(False, 0.0)
>>> chi.update_many(["IT"] * 150 + ["ES"] * 50)
>>> chi.drift, chi.p_value < 1e-9
(True, True)
"""

from __future__ import annotations

import numpy as np
from scipy import stats

from .binning import CategoricalBins
from .windowed import WindowedTest


class ChiSquare(WindowedTest):
    """Chi-square statistic of the last ``window`` levels against ``reference``.

    Give ``threshold`` (on the statistic) or ``ert`` (values between false alarms on a
    stationary stream).
    """

    def __init__(
        self,
        reference,
        window: int = 1000,
        stride: int | None = None,
        threshold: float | None = None,
        ert: float | None = None,
        warning_threshold: float | None = None,
        calibration_seed: int = 0,
    ):
        self._reference = np.asarray(list(reference), dtype=object)
        binning = CategoricalBins(self._reference)
        super().__init__(binning, window, stride, threshold, ert, warning_threshold, calibration_seed)

    def _params(self) -> dict:
        return {"window": self.window, "stride": self.stride}

    def _reference_sample(self) -> np.ndarray:
        return self._reference

    def _statistic(self, counts: np.ndarray, n: int) -> float:
        # Pearson's statistic of the 2 x k table, written out because scipy's
        # chi2_contingency costs more per call than the whole test needs; the two agree
        # (tests/test_chisquare.py).
        table = np.vstack([self.binning.reference_counts, counts])
        table = table[:, table.sum(axis=0) > 0]
        self._dof = table.shape[1] - 1
        expected = np.outer(table.sum(axis=1), table.sum(axis=0)) / table.sum()
        return float(np.sum((table - expected) ** 2 / expected))

    @property
    def p_value(self) -> float | None:
        if self._statistic_value is None:
            return None
        return float(stats.chi2.sf(self._statistic_value, self._dof)) if self._dof else 1.0
