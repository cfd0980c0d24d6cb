"""Chi-square test of homogeneity of a categorical window against a reference.

Levels are binned as for categorical PSI (reference levels, "other", missing). The
statistic is Pearson's on the 2 x k table of reference and window counts, without bins
empty in both (as ``scipy.stats.chi2_contingency`` without continuity correction); the
p-value is the chi-square tail with k - 1 degrees of freedom.

Levels the reference never had: with ``unseen="count"`` (the default) they fall in the
"other" bin, which the reference left empty, so each weighs heavily as change (about 5
on the statistic per value at reference 1,000, window 200). Yet a stationary stream with
many rare levels keeps bringing new ones, at about the Good-Turing rate (reference
singletons / reference size), and the calibration's null (:mod:`detectors.calibration`)
keeps "other" empty: on such streams a calibrated test alarms more often than asked.
With ``unseen="ignore"`` they are left out of the window (counted in ``n_skipped``), and
the test compares the distribution over the reference's levels (and missing) only, as
the calibration's null does: use it when the rate of unseen levels has a test of its own
(the daemon pairs it with a :class:`~detectors.rate.RateTest` of unseen levels, one
signal, one test).

Missing values (None, NaN) likewise fill the missing bin (``missing="count"``, the
default) or, with ``missing="ignore"``, are left out of the window and of the reference
(counted in ``n_skipped``), for when the missing rate has a test of its own (the daemon's
``missing_rate``).

>>> ref = ["DE"] * 500 + ["FR"] * 300 + ["IT"] * 200
>>> chi = ChiSquare(ref, window=200, threshold=20.0)
>>> chi.update_many(["DE"] * 100 + ["FR"] * 60 + ["IT"] * 40)
>>> chi.drift, chi.statistic
(False, 0.0)
>>> chi.update_many(["IT"] * 150 + ["ES"] * 50)
>>> chi.drift, chi.p_value < 1e-9
(True, True)
>>> known = ChiSquare(ref, window=200, threshold=20.0, unseen="ignore")
>>> known.update_many(["DE"] * 100 + ["FR"] * 60 + ["IT"] * 40 + ["ES"] * 50)
>>> known.drift, known.statistic, known.n_skipped
(False, 0.0, 50)
>>> present = ChiSquare(ref + [None] * 100, window=200, threshold=20.0, missing="ignore")
>>> present.update_many(["DE"] * 100 + [None] * 80 + ["FR"] * 60 + ["IT"] * 40)
>>> present.drift, present.statistic, present.n_skipped
(False, 0.0, 80)
"""

from __future__ import annotations

import numpy as np
from scipy import special

from .binning import CategoricalBins, missing_bins
from .psi import _chi_square_log_power
from .windowed import WindowedTest


class ChiSquare(WindowedTest):
    """Chi-square statistic of the last ``window`` levels against ``reference``.

    Give ``threshold`` (on the statistic) or ``ert`` (values between false alarms on a
    stationary stream; ``defer_calibration``: see :mod:`detectors.windowed`).
    ``unseen``: "count" (default) or "ignore" levels the reference never had, and
    ``missing``: "count" (default) or "ignore" missing values (see the module docs);
    ValueError otherwise.
    """

    KIND = "chisquare"
    IGNORES_EMPTY_BINS = True
    _DERIVED = ("_reference_side",)
    _reference_side = None  # (also for detectors pickled before it existed)
    #: Detectors pickled before the option counted missing values.
    missing = "count"

    def __init__(
        self,
        reference,
        window: int = 1000,
        stride: int | None = None,
        threshold: float | None = None,
        ert: float | None = None,
        warning_threshold: float | None = None,
        calibration_seed: int = 0,
        defer_calibration: bool = False,
        unseen: str = "count",
        missing: str = "count",
    ):
        binning = CategoricalBins(reference)
        self.unseen = unseen
        self.missing = missing
        skip = binning.unseen_bins(unseen) + missing_bins(binning, missing)
        super().__init__(binning, window, stride, threshold, ert, warning_threshold,
                         calibration_seed, defer_calibration, skip_bins=skip)

    def _settings(self) -> dict:
        return {"unseen": self.unseen, "missing": self.missing}

    @classmethod
    def tail_log_power(cls, null_model) -> float:
        return _chi_square_log_power(null_model)

    @staticmethod
    def batch_statistic(reference_counts, counts, params) -> np.ndarray:
        # Pearson's statistic of each 2 x k table, written out because scipy's
        # chi2_contingency costs more per call than the whole test needs; the two agree
        # (tests/test_chisquare.py). For two rows it is n_r n_w sum_j (r_j / n_r -
        # w_j / n_w)**2 / (r_j + w_j); bins empty in both rows add nothing.
        n_reference = reference_counts.sum()
        n_window = counts.sum(axis=-1, keepdims=True)
        columns = reference_counts + counts
        with np.errstate(invalid="ignore", divide="ignore"):
            terms = (reference_counts / n_reference - counts / n_window) ** 2 / columns
        return n_reference * n_window[..., 0] * np.sum(np.where(columns > 0, terms, 0.0), axis=-1)

    def _reference(self) -> tuple:
        """(reference counts, their shares, their total), computed once, not pickled:
        every test reads them."""
        side = self._reference_side
        if side is None:
            reference = self._null_counts()
            n_reference = reference.sum()
            side = self._reference_side = (reference, reference / n_reference, n_reference)
        return side

    def _measure_many(self, counts, filled):
        # batch_statistic's arithmetic, the same floats, with the reference's side computed
        # once (not pickled), on every window at once; each window's terms are summed alone
        # (bins empty in both rows add nothing).
        reference, shares, n_reference = self._reference()
        n_window = counts.sum(axis=1)
        columns = reference + counts
        terms = np.zeros(columns.shape)
        np.divide((shares - counts / n_window[:, None]) ** 2, columns, out=terms, where=columns > 0)
        dof = (np.count_nonzero(columns, axis=1) - 1).tolist()
        # (A row's sum along the last axis is the row's own sum: the same floats.)
        stats = (n_reference * n_window * terms.sum(axis=1)).tolist()
        return stats, list(zip(stats, dof))

    _measure = WindowedTest._measure_one_of_many

    def reset(self) -> None:
        super().reset()
        self._reference_side = None

    def _p_value(self, p_args) -> float:
        stat, dof = p_args
        # The chi-square survival function (what scipy.stats.chi2.sf computes), without the
        # distribution object's overhead: this runs at every test.
        return float(special.chdtrc(dof, stat)) if dof else 1.0

    def _p_values(self, p_args: list) -> list:
        # _p_value of every test of the batch in one call of the same function (the same
        # floats, element by element).
        if not p_args:
            return []
        stats, dofs = zip(*p_args)
        dofs = np.array(dofs)
        return np.where(dofs != 0, special.chdtrc(dofs, np.array(stats)), 1.0).tolist()
