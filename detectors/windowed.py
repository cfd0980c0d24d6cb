"""The mechanism shared by PSI, KS, chi-square and the rate tests: a window of binned
values tested against a reference every ``stride`` values.

The window holds the last ``window`` values as bin numbers (uint8 or uint16, in a ring
buffer) and their counts per bin; of the reference only its counts per bin are kept. The
first test runs when the window is full, then one every ``stride`` values; ``stride ==
window`` gives tumbling windows, a smaller stride sliding ones. Tests fall at the same
positions whatever the batch sizes, so a stream gives the same states and decisions fed
one value at a time or in batches of any size. The tests falling in one batch are run
together (their windows' counts from one cumulative sum, their statistics from one
vectorised ``_measure_many`` with ``_measure``'s arithmetic, then judged in order): a
model runs a test of every detector every ``stride`` values, and per-test calls were a
large part of its cost.

Values falling in a test's ``skip_bins`` (KS: missing values; PSI and chi-square with
``missing="ignore"``: missing values; chi-square and categorical PSI with
``unseen="ignore"``: levels the reference never had) are left out: they neither enter the
window nor count towards the next test, and ``n_skipped`` counts them. The reference's
values in those bins are left out too, of the statistic and of the calibration's null
(which then never draws them). A decision's ``at`` is still the number of the value,
among all those fed, that completed it.

The decision is ``statistic > threshold``; each test puts a
:class:`~detectors.base.Decision` in the outbox. The threshold is given directly
(``threshold=``) or derived from an expected run length between false alarms on a
stationary stream (``ert=``, see :mod:`detectors.calibration`). A detection is an entry
into drift: a window that stays drifted is one detection, not one per test.

Calibration can be left to the caller (``defer_calibration=True``): the detector is then
not :attr:`~WindowedTest.calibrated`, its tests run at the usual positions but their
decisions are held; the caller computes ``calibration.calibrate(detector.null_model(),
ert)`` wherever it likes and hands the result to :meth:`~WindowedTest.set_thresholds`,
which decides the held tests in order. The states and decisions are then exactly those of
a detector calibrated in its constructor.

>>> import numpy as np
>>> from detectors import PSI, calibration
>>> rng = np.random.default_rng(1)
>>> psi = PSI(rng.normal(size=2000), window=500, stride=100, ert=20_000, defer_calibration=True)
>>> psi.update_many(rng.normal(size=1000))
>>> psi.calibrated, psi.threshold, psi.pop_decisions()
(False, None, [])
>>> psi.set_thresholds(*calibration.calibrate(psi.null_model(), 20_000))
>>> [d.at for d in psi.pop_decisions()]
[500, 600, 700, 800, 900, 1000]
"""

from __future__ import annotations

import functools

import numpy as np

from . import calibration
from .base import Decision, DecisionRun, DeferredThresholds, new_decision


class DeferredDecision(Decision):
    """A :class:`~detectors.base.Decision` whose ``p_value`` is computed when first read,
    as ``function(*p_args)``, then kept: the same float as an eager decision's, without its
    cost for the many alarm decisions that no one reads (an alert reads the first of an
    episode's). ``p_pending`` says whether it is still to compute. It compares, hashes
    and pickles as a Decision of the same class (the function must pickle: module-level,
    or a ``functools.partial`` of one).

    >>> import operator
    >>> d = DeferredDecision(5, True, False, 0.3, 0.2, operator.truediv, (1, 8))
    >>> d.p_pending, d.p_value, d.p_pending, d.at
    (True, 0.125, False, 5)
    """

    def __init__(self, at: int, drift: bool, warning: bool, statistic: float, threshold: float,
                 function, p_args: tuple):
        super().__init__(at, drift, warning, statistic, threshold, None)
        self.__dict__["_pending"] = (function, p_args)

    @property
    def p_pending(self) -> bool:
        return self.__dict__.get("_pending") is not None

    @property
    def p_value(self) -> float | None:
        state = self.__dict__
        pending = state.get("_pending")
        if pending is not None:
            function, p_args = pending
            state["_p_value"], state["_pending"] = function(*p_args), None
        return state.get("_p_value")

    @p_value.setter
    def p_value(self, value) -> None:  # the dataclass's __init__ only
        self.__dict__["_p_value"] = value


#: Window counts per piece of a batch at most, tests times bins (see ``update_bins``).
_TESTS_PER_PIECE = 1 << 16
_keys: dict = {}


def _block_keys(m: int, first: int, stride: int, n_bins: int) -> np.ndarray:
    """``block * n_bins`` for each of ``m`` values, int64 of shape (m,): ``block``, the
    number of tests before the value comes in when the first test falls after ``first``
    values and the others every ``stride`` (0 up to the first test's values, ...). Kept
    for pieces of up to 2,048 values (a model's tests see the same batch shapes again and
    again; 64 shapes at most, about 1 MB)."""
    key = (m, first, stride, n_bins)
    keys = _keys.get(key)
    if keys is None:
        keys = np.maximum((np.arange(m) - first) // stride + 1, 0) * n_bins
        if m <= 2048:
            if len(_keys) >= 64:
                _keys.clear()
            _keys[key] = keys
    return keys


class WindowedTest(DeferredThresholds):
    """Base class. Subclasses set ``KIND`` and ``TAIL_POWER``, build ``binning``, and
    implement ``batch_statistic`` (the statistic of many windows at once, used both by the
    live test and by the calibration's simulation) and, if they have one, ``_p_value``.

    ``warning_threshold`` defaults to the threshold for a ``WARNING_FACTOR`` times shorter
    run length when ``ert`` is given, else to no warning.
    """

    #: Name of the test in :data:`detectors.calibration.KINDS`.
    KIND: str = ""
    #: The statistic's tail, used to extrapolate a calibration: log P(stat > c) ~ -c**TAIL_POWER
    #: (see :func:`detectors.calibration.level_for_rate`).
    TAIL_POWER = 1
    #: True when bins empty in both the reference and the window change nothing.
    IGNORES_EMPTY_BINS = False
    #: True when the p-value is too dear to compute at every test: decisions that neither
    #: drift nor warn then carry none (``p_value`` still gives the last test's).
    P_VALUE_ON_ALARMS_ONLY = False
    #: Attributes derived from the reference for speed: not pickled, rebuilt when needed.
    _DERIVED: tuple = ()
    #: ``(at, counts)``: the window's counts per bin (a list of ints) at the test of the
    #: first detection, or None before it (see :meth:`first_detection_window`).
    first_detection: tuple | None = None
    # Windows that may be the first detection's, by ``at``, while it has not come: those of
    # tests whose statistic beat every earlier one (the first to cross a threshold does),
    # so that tests held for their threshold keep a few windows, not all of them.
    _candidates: dict | None = None
    _candidate_top = -np.inf

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        for name in self._DERIVED:
            state[name] = None
        return state

    @classmethod
    def tail_log_power(cls, null_model) -> float:
        """The power of the level in the crossing rate's tail (``tail_log_power`` of
        :func:`detectors.calibration.level_for_rate`)."""
        return 0.0

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if cls.KIND:
            calibration.KINDS[cls.KIND] = cls

    def __init__(
        self,
        binning,
        window: int,
        stride: int | None,
        threshold: float | None,
        ert: float | None,
        warning_threshold: float | None,
        calibration_seed: int,
        defer_calibration: bool = False,
        skip_bins: tuple = (),
    ):
        self.window, self.stride = self._checked_settings(window, stride, threshold, ert)
        self.binning = binning
        self.ert = ert
        self.calibration_seed = calibration_seed
        self._skip_bins = tuple(int(b) for b in skip_bins)
        self._ring_dtype = np.uint8 if binning.n_bins <= 256 else np.uint16 if binning.n_bins <= 65536 else np.intp
        self._init_thresholds(threshold, warning_threshold, ert, defer_calibration)
        self.reset()

    # -- calibration ------------------------------------------------------------------------
    def _settings(self) -> dict:
        """Settings other than window and stride that the detector was built with."""
        return {}

    def _null_params(self) -> tuple:
        """Settings the statistic depends on, as sorted (name, value) pairs."""
        return ()

    def _null_counts(self) -> np.ndarray:
        """Reference counts over the bins the stream is drawn from: the skipped bins' are 0."""
        if not self._skip_bins:
            return self.binning.reference_counts
        counts = self.binning.reference_counts.copy()
        counts[list(self._skip_bins)] = 0
        return counts

    def _open_bins(self) -> tuple:
        """Bins the stream may fill though the reference did not (see ``NullModel.open_bins``)."""
        return ()

    def null_model(self) -> calibration.NullModel:
        """What the test's null distribution depends on (no raw reference value): give it to
        :func:`detectors.calibration.calibrate`."""
        return calibration.NullModel(
            self.KIND, tuple(int(c) for c in self._null_counts()), self.window, self.stride,
            self._null_params(), int(self.calibration_seed), tuple(self._open_bins()))

    def max_statistic(self) -> float:
        """The largest statistic a window of values the reference knows can reach (values
        in bins the reference left empty, missing or unseen ones, are other tests'
        business). PSI, chi-square and KS are convex in the window's bin shares, so the
        largest is that of a window whose values all fall in one bin. A threshold at or
        above it means a test that can never see a change of the known values' shares: a
        reference too small for the asked run length."""
        counts = np.asarray(self._null_counts(), dtype=np.float64)
        bins = [b for b in range(counts.size) if counts[b] > 0 and b not in self._skip_bins]
        windows = np.zeros((len(bins), counts.size))
        windows[np.arange(len(bins)), bins] = self.window
        return float(np.max(self.batch_statistic(counts, windows, self._stat_params())))

    # -- state ------------------------------------------------------------------------------
    def reset(self) -> None:
        self._bins = np.zeros(self.window, dtype=self._ring_dtype)
        self._head = 0
        self._filled = 0
        self.counts = np.zeros(self.binning.n_bins, dtype=np.int32)
        self._until_test = self.window
        self._p_args = None
        self._p_cache = None
        self.first_detection, self._candidates, self._candidate_top = None, None, -np.inf
        self._reset_decisions()

    @property
    def p_value(self) -> float | None:
        """The p-value of the last test (None before the first, or for PSI)."""
        if self._p_args is None:
            return None
        if self._p_cache is None:
            self._p_cache = self._p_value(self._p_args)
        return self._p_cache

    def p_value_reader(self):
        """See :meth:`detectors.base.Detector.p_value_reader`: the last test's p-value,
        computed when called from the arguments taken now (not kept in the detector's
        cache: the detector may have tested again by then).

        >>> import numpy as np
        >>> from detectors import KS
        >>> ks = KS(np.arange(100.0), window=20, stride=20, threshold=0.5)
        >>> ks.update_many(np.arange(50.0, 70.0))
        >>> read = ks.p_value_reader()
        >>> ks.update_many(np.arange(20.0))    # the detector goes on
        >>> fresh = KS(np.arange(100.0), window=20, stride=20, threshold=0.5)
        >>> fresh.update_many(np.arange(50.0, 70.0))
        >>> read() == fresh.p_value != ks.p_value
        True
        """
        args, cached = self._p_args, self._p_cache
        if args is None or cached is not None:
            return lambda: cached
        return functools.partial(self._p_value, args)

    def _p_value(self, p_args) -> float | None:
        return None

    def _p_values(self, p_args: list) -> list:
        """``_p_value`` of each of ``p_args`` (the tests of one batch), in order: a
        subclass may compute them together, the same floats."""
        p_value = self._p_value
        return [p_value(args) for args in p_args]

    def _p_function(self):
        """A picklable function (module-level, or a partial of one) giving the p-value from
        the ``p_args`` of a test: a :class:`DeferredDecision` keeps it instead of the
        p-value (``P_VALUE_ON_ALARMS_ONLY`` tests)."""
        raise NotImplementedError

    # -- feeding ----------------------------------------------------------------------------
    def update(self, x) -> None:
        self.update_many([x])

    def update_many(self, xs) -> None:
        self.update_bins(self.binning.index(xs))

    def update_bins(self, bins: np.ndarray) -> None:
        """Feed values already binned: ``bins``, an integer array of shape (values,), each
        what ``self.binning.index`` gives for its value (the caller's responsibility, unchecked:
        a caller feeding several tests of one column bins once). ``update_many(xs)`` is
        ``update_bins(self.binning.index(xs))``; the same states and decisions whatever the
        batch sizes."""
        n, kept = len(bins), None
        if self._skip_bins:
            skip = self._skip_bins
            keep = bins != skip[0]
            for b in skip[1:]:
                keep &= bins != b
            if not keep.all():  # (most batches skip nothing: no copy then)
                kept = np.flatnonzero(keep)
                self.n_skipped += bins.size - kept.size
                bins = bins[kept]
        seen_before = self.n_seen
        self.n_seen += n
        m = bins.size
        # A piece holds at most _TESTS_PER_PIECE // n_bins tests: their window counts are
        # a (tests, bins) matrix (a stride of 1 and a large batch would make it huge).
        room = self.stride * max(1, _TESTS_PER_PIECE // self.counts.size)
        start = 0
        while start < m:
            end = min(m, start + self._until_test + room)
            self._feed_piece(bins[start:end], seen_before + 1, start, kept)
            start = end

    def _feed_piece(self, bins: np.ndarray, first_at: int, offset: int, kept) -> None:
        """Feed ``bins`` (kept values ``offset`` onwards of the batch; ``kept``: their
        indices among the batch's values, None when none was skipped; ``first_at``: the
        ``at`` of the batch's first value) and run the tests falling in them, all at once:
        their window counts from one cumulative sum, their statistics from one
        ``_measure_many``, then judged in order."""
        m = bins.size
        window, filled, counts, stride = self.window, self._filled, self.counts, self.stride
        first = self._until_test
        ends = range(first, m + 1, stride)  # values of the piece in at each test
        n_tests = len(ends)
        # The usual batch of a rate test (no event in the window nor in the batch) has
        # every value in one bin, whose count is then the window's size.
        only = int(bins[0])
        uniform = counts[only] == filled and bool((bins == only).all())
        if n_tests:  # (Python lists of a few items: cheaper than numpy's calls here)
            filled_at = np.array([min(window, filled + e) for e in ends], dtype=np.int64)
        if uniform:
            if n_tests:
                at_tests = np.zeros((n_tests, counts.size), dtype=np.int64)
                at_tests[:, only] = filled_at
            counts[only] = min(window, filled + m)
        else:
            n_leaving = max(filled + m - window, 0)
            if n_leaving:  # the ring's oldest values, then this piece's own first ones
                leaving = self._ring_oldest(min(filled, n_leaving))
                if n_leaving > leaving.size:
                    leaving = np.concatenate([leaving, bins[:n_leaving - leaving.size]])
            if not n_tests:
                counts += np.bincount(bins, minlength=counts.size)  # in place: stays int32
                if n_leaving:
                    counts -= np.bincount(leaving, minlength=counts.size)
            else:
                # Each value counted in the block of the first test it is in (the last
                # block: after the last test); a value leaving goes with the value whose
                # arrival pushes it out, the piece's (m - n_leaving)-th onwards.
                keys = _block_keys(m, first, stride, counts.size)
                size = (n_tests + 1) * counts.size
                moved = np.bincount(keys + bins, minlength=size)
                if n_leaving:
                    moved -= np.bincount(keys[m - n_leaving:] + leaving, minlength=size)
                moved = moved.reshape(n_tests + 1, counts.size)
                at_tests = np.cumsum(moved[:n_tests], axis=0)
                at_tests += counts
                counts[:] = at_tests[-1] + moved[n_tests]
        if n_tests:
            last = offset - 1  # + ends: the kept value completing each test
            if kept is None:
                ats = [first_at + last + e for e in ends]
            else:
                ats = (first_at + kept[[last + e for e in ends]]).tolist()
            self._test_many(ats, at_tests, filled_at)
            self._until_test = stride - (m - ends[-1])
        else:
            self._until_test = first - m
        if uniform and filled == window:  # every slot holds `only` already: nothing to write
            self._head = (self._head + m) % window
        else:
            self._write_ring(bins)
        self._filled = min(window, filled + m)

    def _ring_oldest(self, n: int) -> np.ndarray:
        """The ``n`` oldest values of the window, oldest first."""
        start = (self._head - self._filled) % self.window
        first = self._bins[start:start + n]
        return first if first.size == n else np.concatenate([first, self._bins[:n - first.size]])

    def _write_ring(self, bins: np.ndarray) -> None:
        """Put ``bins`` (the newest values) in the ring, after its head."""
        window = self.window
        tail = bins[-window:]
        at = (self._head + bins.size - tail.size) % window
        first = min(tail.size, window - at)
        self._bins[at:at + first] = tail[:first]
        self._bins[:tail.size - first] = tail[first:]
        self._head = (self._head + bins.size) % window

    # -- testing ----------------------------------------------------------------------------
    def _measure(self) -> tuple[float, object]:
        """The statistic of the window, and what its p-value will be computed from."""
        return float(self.batch_statistic(self._null_counts(), self.counts, self._stat_params())), None

    def _stat_params(self) -> dict:
        return dict(self._null_params())

    @staticmethod
    def batch_statistic(reference_counts: np.ndarray, counts: np.ndarray, params: dict) -> np.ndarray:
        """The statistic of windows with ``counts`` (shape ``(..., bins)``) against the
        reference's counts (shape ``(bins,)``): shape ``(...)``."""
        raise NotImplementedError

    def _measure_many(self, counts: np.ndarray, filled: np.ndarray) -> tuple[list, list]:
        """``_measure`` of many windows: ``counts`` of shape (tests, bins), ``filled`` of
        shape (tests,) (values in each window); a list of statistics (floats) and one of
        p-value arguments, each item what ``_measure`` gives for that window (the same
        floats: subclasses vectorise it with the same arithmetic). This default sets each
        window in turn and calls ``_measure``."""
        saved = self.counts, self._filled
        stats, p_args = [], []
        try:
            for row, n in zip(counts, filled.tolist()):
                self.counts, self._filled = row, n
                stat, args = self._measure()
                stats.append(stat)
                p_args.append(args)
        finally:
            self.counts, self._filled = saved
        return stats, p_args

    def _measure_one_of_many(self) -> tuple[float, object]:
        """``_measure`` as the first of :meth:`_measure_many` on the current window: for a
        test whose vectorised arithmetic is its only one (``_measure = WindowedTest.
        _measure_one_of_many``), so that one window and many give the same floats."""
        stats, p_args = self._measure_many(self.counts[None, :], np.array([self._filled]))
        return stats[0], p_args[0]

    def _run_test(self, at: int) -> None:
        stat, p_args = self._measure()
        self._statistic_value, self._p_args, self._p_cache = stat, p_args, None
        self._keep_candidates([at], [stat], self.counts[None, :])
        self._judge_or_hold(at, stat, p_args)
        self._drop_candidates()

    def _test_many(self, ats: list, counts: np.ndarray, filled: np.ndarray) -> None:
        """Run the tests completed at values ``ats`` (ints, in order), whose windows have
        ``counts`` (shape (tests, bins)) and ``filled`` values (shape (tests,))."""
        stats, p_args = self._measure_many(counts, filled)
        if self._threshold is not None and type(self)._judge is WindowedTest._judge:
            self._judge_many(ats, stats, p_args, counts)
            return
        self._keep_candidates(ats, stats, counts)
        judge = self._judge_or_hold
        for at, stat, args in zip(ats, stats, p_args):
            self._statistic_value, self._p_args, self._p_cache = stat, args, None
            judge(at, stat, args)
        self._drop_candidates()

    # -- the window at the first detection ------------------------------------------------
    def first_detection_window(self) -> tuple[int, list] | None:
        """``(at, counts)``: the number of the value that completed the test of the first
        detection and the window's counts per bin then (``binning``'s bins), or None before
        it. A function of the values alone, like the decisions (not of the batch sizes, nor
        of when the thresholds came): a report draws the window that fired beside the
        reference.

        >>> import numpy as np
        >>> from detectors import PSI
        >>> psi = PSI(np.arange(1000.0) % 10, window=100, stride=50, threshold=0.5)
        >>> psi.update_many(np.r_[np.arange(150.0) % 10, np.full(100, 3.0)])
        >>> at, counts = psi.first_detection_window()
        >>> at, int(counts[psi.binning.index([3.0])[0]])
        (200, 55)
        """
        return self.first_detection

    def set_thresholds(self, threshold: float, warning_threshold: float | None = None) -> None:
        super().set_thresholds(threshold, warning_threshold)
        self._drop_candidates()  # the held tests are decided

    def _keep_candidates(self, ats: list, stats: list, counts: np.ndarray) -> None:
        """Keep the windows of tests that may be the first detection, for ``_judge`` (see
        ``_candidates``; ``_judge_many`` takes the window from its ``counts``)."""
        if self.first_detection is not None:
            return
        threshold = self._threshold
        candidates = self._candidates
        if candidates is None:
            candidates = self._candidates = {}
        top = self._candidate_top
        for i, (at, stat) in enumerate(zip(ats, stats)):
            if stat > top if threshold is None else stat > threshold:
                candidates[at] = counts[i].tolist()
                if threshold is not None:
                    return  # decided now: the first crossing is this one
                top = self._candidate_top = stat

    def _drop_candidates(self) -> None:
        """Forget the candidates once the tests they were kept for are decided."""
        if self._threshold is not None:
            self._candidates, self._candidate_top = None, -np.inf

    def _detected(self, at: int) -> None:
        """The test completed at ``at`` entered drift: the first detection's window kept."""
        if self.first_detection is None:
            counts = (self._candidates or {}).get(at)
            if counts is not None:  # (None: a state saved before windows were kept)
                self.first_detection = (at, counts)
            self._candidates, self._candidate_top = None, -np.inf

    def _judge_many(self, ats: list, stats: list, p_args: list, counts: np.ndarray) -> None:
        """:meth:`_judge` of each test in turn (their windows' ``counts``), the same decisions
        and state, in one step: the decisions go out as one :class:`~detectors.base.DecisionRun`
        (calls and objects per test counted at a model's many tests of every stride), but
        for the alarms of a test whose p-value is deferred (:class:`DeferredDecision` each)."""
        threshold, warning_threshold = self._threshold, self.warning_threshold
        drifts = [stat > threshold for stat in stats]
        if warning_threshold is None:
            warnings = [False] * len(stats)
        else:
            warnings = [not drift and stat > warning_threshold for drift, stat in zip(drifts, stats)]
        if True in drifts:  # entries into drift: counted, the first one's window kept
            was = self.drift
            for i, drift in enumerate(drifts):
                if drift and not was:
                    self.n_detections += 1
                    self.last_detection_at = ats[i]
                    if self.first_detection is None:
                        self.first_detection = (ats[i], counts[i].tolist())
                was = drift
        self.n_tests += len(ats)
        self.drift, self.warning = drifts[-1], warnings[-1]
        if not self.P_VALUE_ON_ALARMS_ONLY:
            p_values = self._p_values(p_args)
            self._decide_run(DecisionRun(ats, drifts, warnings, stats, threshold, p_values))
            p = p_values[-1]
        elif True in drifts or True in warnings:  # the p-value computed when read (an alert), as in _judge
            function = self._p_function()
            self._decide_many([
                DeferredDecision(at, drift, warning, stat, threshold, function, args) if drift or warning
                else new_decision(at, drift, warning, stat, threshold, None)
                for at, drift, warning, stat, args in zip(ats, drifts, warnings, stats, p_args)])
            p = None
        else:
            self._decide_run(DecisionRun(ats, drifts, warnings, stats, threshold, None))
            p = None
        # The last test's, as _run_test and the p_value property leave them.
        self._statistic_value, self._p_args, self._p_cache = stats[-1], p_args[-1], p

    def _judge(self, at: int, stat: float, p_args) -> None:
        """Decide one test (value number ``at`` completed it) and put it in the outbox."""
        self.n_tests += 1
        was = self.drift
        self.drift = bool(stat > self._threshold)
        if self.drift and not was:
            self.n_detections += 1
            self.last_detection_at = at
            if self.first_detection is None:
                self._detected(at)
        self.warning = bool(
            not self.drift and self.warning_threshold is not None and stat > self.warning_threshold
        )
        if self.P_VALUE_ON_ALARMS_ONLY:
            if not (self.drift or self.warning):
                self._decide(new_decision(at, self.drift, self.warning, stat, self._threshold, None))
                return
            if p_args is self._p_args and self._p_cache is not None:
                p = self._p_cache  # already read: the property's
            else:  # computed when read (an alert): most alarm decisions never are
                self._decide(DeferredDecision(at, self.drift, self.warning, stat, self._threshold,
                                              self._p_function(), p_args))
                return
        elif p_args is self._p_args:  # the last test: its p-value is also the property's
            p = self.p_value
        else:
            p = self._p_value(p_args)
        self._decide(new_decision(at, self.drift, self.warning, stat, self._threshold, p))

    # -- combining ------------------------------------------------------------------------
    def merge(self, other: "WindowedTest") -> "WindowedTest":
        """A detector whose window is this one's and ``other``'s together: for combining
        detectors that watched disjoint parts of one stream (say, two partitions).

        Both must have been built from the same reference and configuration.
        """
        if type(other) is not type(self) or other._settings() != self._settings():
            raise ValueError("can only merge detectors of the same kind and configuration")
        if other.binning.key() != self.binning.key():
            raise ValueError("can only merge detectors built from the same reference")
        merged = self._copy_empty(window=self.window + other.window)
        merged.counts = self.counts + other.counts
        merged._filled = self._filled + other._filled
        merged._bins[: merged._filled] = np.concatenate([self._window_bins(), other._window_bins()])
        merged._head = merged._filled % merged.window
        merged.n_seen = self.n_seen + other.n_seen
        if merged._filled:
            merged._run_test(merged.n_seen)
        return merged

    def _window_bins(self) -> np.ndarray:
        start = (self._head - self._filled) % self.window
        return np.roll(self._bins, -start)[: self._filled]

    def _copy_empty(self, window: int) -> "WindowedTest":
        clone = object.__new__(type(self))
        clone.__dict__.update(self.__dict__)
        clone.__dict__.pop("_outbox", None)
        clone.window = window
        clone.stride = min(self.stride, window)
        clone.reset()
        return clone
