"""Two-sample Kolmogorov-Smirnov test of a window against a reference.

The statistic is the largest distance between the two empirical distribution functions,
compared at the slots' ends of :class:`~detectors.binning.KSSlots`: a test costs one
cumulative sum over at most ``2 * n_slots + 1`` slots, whatever the window size, and
neither the reference nor the window is kept as values. When the reference has at most
``n_slots`` distinct values the statistic equals ``scipy.stats.ks_2samp``'s; otherwise it
is an approximation from below (see :class:`~detectors.binning.KSSlots`), which the
calibration (``ert``) simulates as it is. The p-value is scipy's, computed from the
distance and the two sample sizes alone (as scipy does: ``method`` "auto", "exact" or
"asymp"), when read; a decision carries it only when it drifts or warns (see
``P_VALUE_ON_ALARMS_ONLY``). Missing values (None, NaN) are left out of the test and counted in
``n_missing``.

>>> import numpy as np
>>> rng = np.random.default_rng(7)
>>> ks = KS(rng.normal(size=5000), window=1000, stride=100, threshold=0.1)
>>> ks.update_many(rng.normal(loc=0.5, size=1000))
>>> ks.drift, round(ks.statistic, 3), ks.p_value < 1e-9
(True, 0.228, True)
>>> ks.exact     # 5000 distinct reference values: compared at 128 quantiles
False
"""

from __future__ import annotations

import functools
import math
import warnings

import numpy as np
from scipy import stats

from .binning import KSSlots
from .windowed import WindowedTest

_p_values: dict = {}
_MAX_P_VALUES = 100_000


def ks_p_value(below_reference: int, n_reference: int, below_window: int, n_window: int,
               method: str = "auto") -> float:
    """scipy's two-sided ``ks_2samp`` p-value for the distance
    ``|below_reference / n_reference - below_window / n_window|`` (the empirical functions
    at the point of largest distance), from the counts alone."""
    g = math.gcd(n_reference, n_window)
    key = (abs(below_reference * n_window - below_window * n_reference) // g, n_reference, n_window, method)
    p = _p_values.get(key)
    if p is None:
        # scipy's p-value depends on the distance and the sizes only: two samples with
        # those sizes and one jump each, at the same place, have the same distance.
        a = np.zeros(n_reference)
        a[below_reference:] = 1.0
        b = np.zeros(n_window)
        b[below_window:] = 1.0
        with warnings.catch_warnings():
            # "Exact calculation unsuccessful. Switching to method=asymp.": scipy's "auto"
            # falling back as documented; as a warning it reached a replay's output.
            warnings.filterwarnings("ignore", "ks_2samp: Exact calculation unsuccessful", RuntimeWarning)
            p = float(stats.ks_2samp(a, b, method=method).pvalue)
        if len(_p_values) >= _MAX_P_VALUES:
            _p_values.clear()
        _p_values[key] = p
    return p


class KS(WindowedTest):
    """KS distance of the last ``window`` present values to ``reference``, tested every
    ``stride`` present values.

    Give ``threshold`` (on the distance) or ``ert`` (values between false alarms on a
    stationary stream; ``defer_calibration``: see :mod:`detectors.windowed`). ``n_slots``
    bounds the points of comparison (and the memory: about 16 bytes per slot).
    """

    KIND = "ks"
    TAIL_POWER = 2
    IGNORES_EMPTY_BINS = True
    # scipy's exact distribution costs about 2 ms per new distance: decisions carry the
    # p-value when they drift or warn (the alerts), the property at any time.
    P_VALUE_ON_ALARMS_ONLY = True
    _DERIVED = ("_reference_cdf",)

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
        defer_calibration: bool = False,
        n_slots: int = 128,
    ):
        if method not in ("auto", "exact", "asymp"):
            raise ValueError(f"method must be 'auto', 'exact' or 'asymp', got {method!r}")
        self.method = method
        self.n_slots = n_slots
        slots = KSSlots(reference, n_slots)
        super().__init__(slots, window, stride, threshold, ert, warning_threshold,
                         calibration_seed, defer_calibration, skip_bins=(slots.missing_bin,))

    @property
    def n_missing(self) -> int:
        """Missing values fed so far (left out of the test)."""
        return self.n_skipped

    @property
    def exact(self) -> bool:
        """True when the statistic is scipy's exactly (few enough distinct reference values)."""
        return self.binning.exact

    def _settings(self) -> dict:
        return {"method": self.method, "n_slots": self.n_slots}

    def _null_counts(self) -> np.ndarray:
        return self.binning.reference_counts[:-1]

    @classmethod
    def tail_log_power(cls, null_model) -> float:
        return 1.0

    @staticmethod
    def batch_statistic(reference_counts, counts, params) -> np.ndarray:
        reference_cdf = np.cumsum(reference_counts) / reference_counts.sum()
        window_cdf = np.cumsum(counts, axis=-1) / counts.sum(axis=-1, keepdims=True)
        return np.max(np.abs(reference_cdf - window_cdf), axis=-1)

    def reset(self) -> None:
        super().reset()
        self._reference_cdf = None

    def _reference(self) -> tuple:
        """(reference CDF at the slots' ends, float64 of shape (slots,); reference size):
        computed once, not pickled (every test reads them)."""
        if self._reference_cdf is None:
            n_reference = int(self.binning.reference_counts[:-1].sum())
            cdf = np.cumsum(self.binning.reference_counts[:-1]) / n_reference
            self._reference_cdf = (cdf, n_reference)
        return self._reference_cdf

    _measure = WindowedTest._measure_one_of_many

    def _measure_many(self, counts, filled):
        # Each window's largest gap between the distribution functions, every window at once.
        reference_cdf, n_reference = self._reference()
        window = np.cumsum(counts[:, :-1], axis=1)
        n_window = window[:, -1]
        gaps = np.abs(reference_cdf - window / n_window[:, None])
        at = gaps.argmax(axis=1)
        rows = np.arange(at.size)
        # The reference values below each window's point of largest gap, for its p-value
        # (found from the CDF where needed: an array of them per test is memory in every model).
        below = np.rint(reference_cdf[at] * n_reference).astype(np.int64).tolist()
        p_args = [(b, n_reference, w, n) for b, w, n in zip(below, window[rows, at].tolist(), n_window.tolist())]
        return gaps[rows, at].tolist(), p_args

    def _p_value(self, p_args) -> float:
        return ks_p_value(*p_args, method=self.method)

    def _p_function(self):
        return functools.partial(ks_p_value, method=self.method)
