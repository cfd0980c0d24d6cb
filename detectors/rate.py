"""Rate test: more events (True flags) in the window than the reference's rate allows?

One mechanism for every rare-event signal: a constant feature taking another value, a
feature going missing, a level the reference never had, an unknown extra feature. Feed
one flag per value (True: the event happened); the statistic is the number of events in
the last ``window`` flags, tested every ``stride``, one-sided (only more events than
expected is a change).

The event rate ``p`` is unknown; the reference says ``k`` events in ``n`` flags, and the
test takes ``p`` as uncertain as that makes it: Jeffreys' posterior ``Beta(k + 1/2,
n - k + 1/2)``, which stays sound when the reference had no event at all (its mean is
then ``1 / (2n + 2)``). The threshold for ``ert`` is computed exactly, not simulated: the
rate of up-crossings of each count between consecutive windows (whose counts share
``window - stride`` flags) is a sum over binomial terms, averaged over that posterior;
the threshold is just below the lowest count whose up-crossings come at most once every
``ert`` values. The p-value is the posterior predictive probability of at least that many
events in a window (beta-binomial).

>>> rate = RateTest([False] * 5000, window=1000, stride=100, ert=1_000_000)
>>> rate.threshold             # a window with 4 events or more is a change
3.5
>>> rate.update_many([False] * 1000)
>>> rate.drift
False
>>> rate.update_many([True] * 100)
>>> rate.drift, rate.statistic, rate.p_value < 1e-9
(True, 100.0, True)
"""

from __future__ import annotations

import numpy as np
from scipy import signal, special, stats

from .binning import FlagBins
from .windowed import WindowedTest

#: Quadrature over the posterior: Gauss-Legendre nodes per segment of its quantile range,
#: the segments denser towards the upper tail (where the false alarms come from).
_NODES = 8
_SEGMENTS = np.concatenate([[0.0, 0.5, 0.9], 1 - 10.0 ** -np.arange(2, 13), [1.0]])


class RateTest(WindowedTest):
    """Events among the last ``window`` flags against the reference's rate (see the
    module docs). Give ``threshold`` (on the count) or ``ert`` (values between false
    alarms on a stationary stream; ``defer_calibration``: see :mod:`detectors.windowed`).
    """

    KIND = "rate"
    _DERIVED = ("_reference_ints",)
    _reference_ints = None  # (also for detectors pickled before it existed)

    def __init__(
        self,
        reference_flags,
        window: int = 1000,
        stride: int | None = None,
        threshold: float | None = None,
        ert: float | None = None,
        warning_threshold: float | None = None,
        calibration_seed: int = 0,
        defer_calibration: bool = False,
    ):
        super().__init__(FlagBins(reference_flags), window, stride, threshold, ert, warning_threshold,
                         calibration_seed, defer_calibration)

    def _open_bins(self) -> tuple:
        return (0, 1)

    def max_statistic(self) -> float:
        """A window of events only: ``window`` (events the reference never had are this
        test's business)."""
        return float(self.window)

    @property
    def reference_rate(self) -> float:
        """The posterior mean event rate, ``(k + 1/2) / (n + 1)``."""
        n_false, k = self.binning.reference_counts
        return (k + 0.5) / (n_false + k + 1)

    @staticmethod
    def batch_statistic(reference_counts, counts, params) -> np.ndarray:
        return counts[..., 1].astype(np.float64)

    _measure = WindowedTest._measure_one_of_many

    def _measure_many(self, counts, filled):
        events = counts[:, 1].tolist()
        return [float(e) for e in events], list(zip(events, filled.tolist()))

    def _p_value(self, p_args) -> float:
        events, n = p_args
        reference = self._reference_ints
        if reference is None:  # derived once, not pickled: this runs at every test
            n_false, k = self.binning.reference_counts
            reference = self._reference_ints = (int(k), int(n_false))
        return _posterior_tail(events, n, *reference)

    def _p_values(self, p_args: list) -> list:
        # The tests of a batch mostly have the same counts (no event, on a stationary
        # stream): each distinct (events, window) once.
        p_value = self._p_value
        known = {args: p_value(args) for args in set(p_args)}
        return [known[args] for args in p_args]

    def reset(self) -> None:
        super().reset()
        self._reference_ints = None

    @staticmethod
    def exact_thresholds(null_model, rates) -> list[float]:
        """Thresholds on the count whose up-crossings come at most ``rate`` times per
        value, for each of ``rates``."""
        crossings = _null_rates(null_model)
        out = []
        for rate in rates:
            too_many = np.flatnonzero(crossings > rate)
            out.append((too_many[-1] if too_many.size else 0) + 0.5)
        return out

    @staticmethod
    def exact_rate(null_model, threshold: float) -> float:
        """False alarms per value at ``threshold``: counts are whole, so a threshold for
        a rate usually alarms less often than that."""
        crossings = _null_rates(null_model)
        level = int(np.floor(threshold)) + 1
        return float(crossings[level]) if level < crossings.size else 0.0


_rates: dict = {}


def _null_rates(null_model) -> np.ndarray:
    """Up-crossings per value of each count 0..window (see :func:`_crossing_rates`); the
    last few are kept (a threshold and its rate are asked for one after the other)."""
    key = null_model.key
    rates = _rates.get(key)
    if rates is None:
        n_false, k = null_model.counts
        rates = _crossing_rates(k + 0.5, n_false + 0.5, null_model.window, null_model.stride) / null_model.stride
        if len(_rates) >= 64:
            _rates.clear()
        _rates[key] = rates
    return rates


_tails: dict = {}


def _posterior_tail(events: int, n: int, k: int, n_false: int) -> float:
    """P(at least ``events`` events in ``n`` flags) under the posterior predictive
    (beta-binomial); cached, since counts repeat from test to test."""
    key = (events, n, k, n_false)
    p = _tails.get(key)
    if p is None:
        if len(_tails) >= 100_000:
            _tails.clear()
        p = _tails[key] = float(stats.betabinom.sf(events - 1, n, k + 0.5, n_false + 0.5))
    return p


def _crossing_rates(a: float, b: float, window: int, stride: int) -> np.ndarray:
    """Per test: P(count of the previous window < c <= count of this one), for c = 0, 1,
    ..., window, averaged over p ~ Beta(a, b); c = 0 is never crossed.

    The previous window's count is A + M and this one's M + I, where M ~ Bin(window -
    stride, p) counts the shared flags and A, I ~ Bin(stride, p) those leaving and
    entering, independently. So the crossing probability of c is sum_m P(M = m) G(c - 1 -
    m) with G(x) = P(A <= x) P(I > x): a convolution.
    """
    nodes, weights = np.polynomial.legendre.leggauss(_NODES)
    lo, hi = _SEGMENTS[:-1, None], _SEGMENTS[1:, None]
    u = (lo + (hi - lo) * (nodes + 1) / 2).ravel()
    w = ((hi - lo) * weights / 2).ravel()
    p = special.betaincinv(a, b, u)[:, None]
    entering = _binomial_pmf(stride, p)
    below = np.cumsum(entering, axis=1)
    above = np.cumsum(entering[:, ::-1], axis=1)[:, ::-1][:, 1:]
    g = below[:, :-1] * above  # x = 0 .. stride - 1
    shared = _binomial_pmf(window - stride, p)
    rates = np.zeros(window + 1)
    rates[1:] = w @ np.clip(signal.fftconvolve(shared, g, axes=1), 0.0, None)
    return rates


def _binomial_pmf(n: int, p: np.ndarray) -> np.ndarray:
    """Bin(n, p) probabilities of 0..n, one row per p (a column)."""
    x = np.arange(n + 1)
    log = special.gammaln(n + 1) - special.gammaln(x + 1) - special.gammaln(n - x + 1) \
        + special.xlogy(x, p) + special.xlog1py(n - x, -p)
    return np.exp(log)
