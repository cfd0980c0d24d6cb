"""Population Stability Index of a window against a reference.

``PSI = sum_i (w_i - r_i) * ln(w_i / r_i)`` over the bins of :mod:`detectors.binning`
(quantile bins for numbers, a point mass in a bin of its own; levels plus "other" for
categories; a missing bin for both), with ``smoothing`` added to every count first, so
that an empty bin never gives an infinity. PSI has no p-value; the threshold is given or
calibrated to an expected run length (``ert``). The classic rule of thumb reads PSI above
0.1 as a moderate shift and above 0.25 as a major one. Categorical PSI counts levels the
reference never had in "other" (``unseen="count"``, the default) or leaves them out of
the window (``unseen="ignore"``), as :mod:`detectors.chisquare` explains. Missing values
(None, NaN) fill the missing bin (``missing="count"``, the default) or, with
``missing="ignore"``, are left out of the window and of the reference (counted in
``n_skipped``): use it when the missing rate has a test of its own. A numeric PSI then sees
the same windows as :class:`~detectors.ks.KS`, which always leaves missing values out, and
the two can share one calibration (:mod:`detectors.joint`).

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

from .binning import CategoricalBins, QuantileBins, missing_bins
from .windowed import WindowedTest


def _chi_square_log_power(null_model) -> float:
    """(k - 1) / 2 for the k = bins - 1 degrees of freedom of the bins that can fill."""
    return max(0.0, (int(np.count_nonzero(null_model.prior_counts())) - 2) / 2)


def psi_from_counts(reference_counts, window_counts, smoothing: float = 0.5) -> float:
    """PSI of two count vectors over the same bins (the formula, for anyone's counts)."""
    return float(_psi(np.asarray(reference_counts), np.asarray(window_counts), smoothing))


def _psi(reference: np.ndarray, counts: np.ndarray, smoothing: float) -> np.ndarray:
    r = (reference + smoothing) / (reference.sum() + smoothing * reference.size)
    w = (counts + smoothing) / (counts.sum(axis=-1, keepdims=True) + smoothing * counts.shape[-1])
    return np.sum((w - r) * (np.log(w) - np.log(r)), axis=-1)


class PSI(WindowedTest):
    """PSI of the last ``window`` values against ``reference``, tested every ``stride``.

    ``categorical=True`` bins by level instead of by quantile (``n_bins`` quantile bins,
    see :class:`~detectors.binning.QuantileBins`). Give ``threshold`` or ``ert`` (values
    between false alarms on a stationary stream; ``defer_calibration``: see
    :mod:`detectors.windowed`). ``unseen`` ("count" or "ignore", categorical only): what
    to do with levels the reference never had (see :mod:`detectors.chisquare`);
    ValueError for another value, or "ignore" on numbers. ``missing`` ("count", default,
    or "ignore"): whether missing values fill the missing bin or are left out (see the
    module docs); ValueError for another value.
    """

    KIND = "psi"
    _DERIVED = ("_reference_side",)
    #: Detectors pickled before the option counted missing values.
    missing = "count"

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
        defer_calibration: bool = False,
        unseen: str = "count",
        missing: str = "count",
    ):
        if smoothing <= 0:
            raise ValueError(f"smoothing must be positive, got {smoothing}")
        if not categorical and unseen != "count":
            raise ValueError(f"unseen={unseen!r} needs categorical=True (numbers have no unseen levels)")
        self.n_bins = n_bins
        self.categorical = categorical
        self.smoothing = float(smoothing)
        self.unseen = unseen
        self.missing = missing
        binning = CategoricalBins(reference) if categorical else QuantileBins(reference, n_bins)
        skip = (binning.unseen_bins(unseen) if categorical else ()) + missing_bins(binning, missing)
        super().__init__(binning, window, stride, threshold, ert, warning_threshold, calibration_seed,
                         defer_calibration, skip_bins=skip)

    def _settings(self) -> dict:
        return {"n_bins": self.n_bins, "categorical": self.categorical, "smoothing": self.smoothing,
                "unseen": self.unseen, "missing": self.missing}

    def _null_params(self) -> tuple:
        return (("smoothing", self.smoothing),)

    @classmethod
    def tail_log_power(cls, null_model) -> float:
        # n * PSI is about chi-square with (bins - 1) degrees of freedom.
        return _chi_square_log_power(null_model)

    @staticmethod
    def batch_statistic(reference_counts, counts, params) -> np.ndarray:
        return _psi(reference_counts, counts, params["smoothing"])

    def _reference(self) -> tuple:
        """The reference's smoothed shares and their logs (float64 of shape (bins,)),
        computed once, not pickled: every test reads them."""
        if self._reference_side is None:
            r = self._null_counts() + self.smoothing
            r = r / r.sum()
            self._reference_side = (r, np.log(r))
        return self._reference_side

    _measure = WindowedTest._measure_one_of_many

    def _measure_many(self, counts, filled):
        # The same sum as batch_statistic, with the reference's side computed once, on every
        # window at once; the dot stays one per window, as
        # a product summed by numpy adds in another order than np.dot (other last bits).
        r, log_r = self._reference()
        w = (counts + self.smoothing) / (filled + self.smoothing * counts.shape[1])[:, None]
        gaps, logs = w - r, np.log(w) - log_r
        dot = np.dot
        return [float(dot(g, x)) for g, x in zip(gaps, logs)], [None] * len(gaps)

    def reset(self) -> None:
        super().reset()
        self._reference_side = None
