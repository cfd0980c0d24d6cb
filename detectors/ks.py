"""Two-sample Kolmogorov-Smirnov test of a window against a reference.

The statistic is the largest distance between the two empirical distribution functions.
Window counts per :class:`~detectors.binning.RankSlots` slot give both functions exactly at
every point where either can change, so a test costs one cumulative sum over the slots,
whatever the window size; the statistic equals ``scipy.stats.ks_2samp``'s. The p-value is
scipy's own, computed only when read (``method`` as in scipy: "auto", "exact", "asymp").
Missing values (None, NaN) are left out of the test and counted in ``n_missing``.

>>> import numpy as np
>>> rng = np.random.default_rng(7)
>>> ks = KS(rng.normal(size=5000), window=1000, stride=100, threshold=0.1)
>>> ks.update_many(rng.normal(loc=0.5, size=1000))
>>> ks.drift, round(ks.statistic, 3), ks.p_value < 1e-9
(True, 0.229, True)
"""

from __future__ import annotations

import numpy as np
from scipy import stats

from .binning import RankSlots, numeric_array
from .windowed import WindowedTest


class KS(WindowedTest):
    """KS distance of the last ``window`` values to ``reference``, tested every ``stride``.

    Give ``threshold`` (on the distance) or ``ert`` (values between false alarms on a
    stationary stream).
    """

    TAIL_POWER = 2

    def __init__(
        self,
        reference,
        window: int = 1000,
        stride: int | None = None,
        threshold: float | None = None,
        ert: float | None = None,
        method: str = "auto",
        warning_threshold: float | None = None,
        calibration_seed: int = 0,
    ):
        if method not in ("auto", "exact", "asymp"):
            raise ValueError(f"method must be 'auto', 'exact' or 'asymp', got {method!r}")
        self.method = method
        binning = RankSlots(reference)
        self._reference_cdf = np.cumsum(binning.reference_counts) / binning.reference.size
        self.n_missing = 0
        super().__init__(binning, window, stride, threshold, ert, warning_threshold,
                         calibration_seed, keep_values=True)

    def _params(self) -> dict:
        return {"window": self.window, "stride": self.stride, "method": self.method}

    def _reference_sample(self) -> np.ndarray:
        return self.binning.reference

    def reset(self) -> None:
        super().reset()
        self.n_missing = 0

    def _binned_values(self, xs):
        x = numeric_array(xs, "value")
        kept = np.flatnonzero(~np.isnan(x))
        present = x[kept]
        self.n_missing += x.size - present.size
        return present, self.binning.index(present), kept

    def _statistic(self, counts: np.ndarray, n: int) -> float:
        # The window moves on after a test; the p-value (computed only when read) must
        # describe the window that was tested.
        # Order does not matter to the test: copy the ring as it is, no rotation.
        self._tested_values = self._values[: self._filled].copy()
        return float(np.max(np.abs(self._reference_cdf - np.cumsum(counts) / n)))

    @property
    def p_value(self) -> float | None:
        if self._statistic_value is None:
            return None
        if self._p_cache is None:
            result = stats.ks_2samp(self.binning.reference, self._tested_values, method=self.method)
            self._p_cache = float(result.pvalue)
        return self._p_cache
