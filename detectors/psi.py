"""Population Stability Index of a window against a reference.

``PSI = sum_i (w_i - r_i) * ln(w_i / r_i)`` over the bins of :mod:`detectors.binning`
(quantile bins for numbers, levels plus "other" for categories, a missing bin for both),
with ``smoothing`` added to every count first, so that an empty bin never gives an
infinity. PSI has no p-value; the threshold is given or calibrated to an expected run
length (``ert``). The classic rule of thumb reads PSI above 0.1 as a moderate shift and
above 0.25 as a major one.

>>> import numpy as np
>>> rng = np.random.default_rng(7)
>>> psi = PSI(rng.normal(size=5000), window=1000, threshold=0.1)
>>> psi.update_many(rng.normal(size=1000))
>>> psi.drift
False
>>> psi.update_many(rng.normal(loc=1.0, size=1000))
>>> psi.drift, round(psi.statistic, 2)
(True, 0.94)
"""

from __future__ import annotations

import numpy as np

from .binning import CategoricalBins, QuantileBins
from .windowed import WindowedTest


def psi_from_counts(reference_counts, window_counts, smoothing: float = 0.5) -> float:
    """PSI of two count vectors over the same bins (the formula, for anyone's counts)."""
    r = np.asarray(reference_counts, dtype=np.float64) + smoothing
    w = np.asarray(window_counts, dtype=np.float64) + smoothing
    r /= r.sum()
    w /= w.sum()
    return float(np.sum((w - r) * np.log(w / r)))


class PSI(WindowedTest):
    """PSI of the last ``window`` values against ``reference``, tested every ``stride``.

    ``categorical=True`` bins by level instead of by quantile. Give ``threshold`` or
    ``ert`` (values between false alarms on a stationary stream).
    """

    def __init__(
        self,
        reference,
        window: int = 1000,
        stride: int | None = None,
        threshold: float | None = None,
        ert: float | None = None,
        n_bins: int = 10,
        categorical: bool = False,
        smoothing: float = 0.5,
        warning_threshold: float | None = None,
        calibration_seed: int = 0,
    ):
        if smoothing <= 0:
            raise ValueError(f"smoothing must be positive, got {smoothing}")
        self.n_bins = n_bins
        self.categorical = categorical
        self.smoothing = smoothing
        self._reference = np.asarray(list(reference), dtype=object) if categorical else np.asarray(reference)
        binning = CategoricalBins(self._reference) if categorical else QuantileBins(self._reference, n_bins)
        self._reference_counts = binning.reference_counts.astype(np.float64) + smoothing
        self._reference_p = self._reference_counts / self._reference_counts.sum()
        self._log_reference_p = np.log(self._reference_p)
        super().__init__(binning, window, stride, threshold, ert, warning_threshold, calibration_seed)

    def _params(self) -> dict:
        return {
            "window": self.window, "stride": self.stride, "n_bins": self.n_bins,
            "categorical": self.categorical, "smoothing": self.smoothing,
        }

    def _reference_sample(self) -> np.ndarray:
        return self._reference

    def _statistic(self, counts: np.ndarray, n: int) -> float:
        w = (counts + self.smoothing) / (n + self.smoothing * counts.size)
        return float(np.dot(w - self._reference_p, np.log(w) - self._log_reference_p))
