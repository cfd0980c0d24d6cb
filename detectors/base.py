"""The one interface every detector speaks.

A detector is fed values, one at a time with :meth:`Detector.update` or as a batch with
:meth:`Detector.update_many`, and then read: :attr:`drift`, :attr:`warning`,
:attr:`statistic`, :attr:`threshold`, :attr:`p_value` and :attr:`n_seen`.
:attr:`n_detections` counts how many times the detector has entered drift, so that a
caller reading only after a batch still sees a detection that happened inside it.

Every decision a detector takes is also written to its outbox as a :class:`Decision`,
in stream order, until :meth:`Detector.pop_decisions` drains it: a caller that reads
only after a batch still sees every test inside it, each placed at the value that
completed it (``Decision.at``), so that what follows from the decisions depends on the
stream alone, not on how it was batched.

Detectors are plain Python objects: they pickle (the outbox included), :meth:`snapshot`
is a pickle of the whole state, and :meth:`reset` (explicit, never implicit) forgets
what was seen but keeps the configuration and any reference.

>>> class Sign(Detector):
...     statistic = threshold = None
...     def update(self, x):
...         self.n_seen += 1
...         self.drift = x < 0
...         self._decide(Decision(at=self.n_seen, drift=self.drift, warning=False,
...                               statistic=float(x), threshold=0.0, p_value=None))
...     def reset(self):
...         self.n_seen = 0
>>> d = Sign()
>>> d.update_many([3, -1])
>>> [(x.at, x.drift) for x in d.pop_decisions()], d.pop_decisions()
([(1, False), (2, True)], [])
"""

from __future__ import annotations

import abc
import collections
import pickle
from dataclasses import dataclass


@dataclass(frozen=True)
class Decision:
    """One decision of a detector (one test of a windowed test, one detection...).

    ``at`` is the ``n_seen`` of the value that completed the test (1-based: the
    ``at``-th value fed tipped it); ``drift`` and ``warning`` are the detector's state
    after the decision; ``statistic``, ``threshold`` and ``p_value`` as the detector's
    properties at that moment (None where the method has none; a detector whose p-value
    is dear, such as KS, may give it only with decisions that drift or warn).
    """

    at: int
    drift: bool
    warning: bool
    statistic: float | None
    threshold: float | None
    p_value: float | None


_new = object.__new__


def new_decision(at, drift, warning, statistic, threshold, p_value) -> Decision:
    """``Decision(at, drift, warning, statistic, threshold, p_value)``, made without the
    frozen dataclass's ``__init__`` (one ``object.__setattr__`` per field): the same object
    (fields, equality, hash, pickle), for a cost that counts at one per test of every
    detector."""
    d = _new(Decision)
    # Item by item, in the fields' order: a third cheaper than update() with keywords,
    # which builds a dict of them first.
    fields = d.__dict__
    fields["at"] = at
    fields["drift"] = drift
    fields["warning"] = warning
    fields["statistic"] = statistic
    fields["threshold"] = threshold
    fields["p_value"] = p_value
    return d


class DecisionRun:
    """Consecutive decisions of one detector held by column instead of one
    :class:`Decision` each: a detector taking many at once (a windowed test's batch, a
    CUSUM's blocks) saves an object per decision, and a reader taking them in bulk
    (:meth:`Detector.pop_decision_runs`: the daemon's pipeline) reads the columns.

    ``at`` (ints), ``drift`` and ``warning`` (bools) and ``statistic`` (floats or None):
    lists of one item per decision, in order; ``threshold``: the one threshold of them
    all; ``p_value``: a list of floats or None, one per decision, or None for none.
    :meth:`decisions` gives the equal :class:`Decision` objects.

    >>> run = DecisionRun([5, 10], [False, True], [True, False], [0.4, 0.9], 0.5, None)
    >>> len(run), run.decisions()[1] == Decision(10, True, False, 0.9, 0.5, None)
    (2, True)
    """

    __slots__ = ("at", "drift", "warning", "statistic", "threshold", "p_value")

    def __init__(self, at: list, drift: list, warning: list, statistic: list, threshold, p_value: list | None):
        self.at, self.drift, self.warning, self.statistic = at, drift, warning, statistic
        self.threshold, self.p_value = threshold, p_value

    def __len__(self) -> int:
        return len(self.at)

    def decisions(self) -> list[Decision]:
        """One :class:`Decision` per decision, in order."""
        threshold = self.threshold
        p_values = self.p_value if self.p_value is not None else [None] * len(self.at)
        return [new_decision(at, drift, warning, statistic, threshold, p) for at, drift, warning, statistic, p
                in zip(self.at, self.drift, self.warning, self.statistic, p_values)]


class _Outbox(collections.deque):
    """A detector's outbox: :class:`Decision` objects, or one :class:`DecisionRun` alone
    (see :meth:`Detector._decide_run`). Pickles (and copies) as the plain deque of
    Decisions it stands for, so that a detector's pickle does not depend on how its
    decisions were taken."""

    def __reduce__(self):
        return collections.deque(_expanded(self), self.maxlen).__reduce__()


def _expanded(outbox) -> list[Decision]:
    """The decisions of an outbox, a run expanded."""
    if outbox and type(outbox[0]) is DecisionRun:
        return outbox[0].decisions()
    return list(outbox)


class DescribedDecision(Decision):
    """A :class:`Decision` with ``detail``: what its statistic alone does not say (a dict of
    str -> JSON value; the level CUSUM's entries name the level that moved and which way),
    for an alert's detail. Compares and hashes as a Decision of its class (the fields
    only); pickles with its detail.

    >>> d = DescribedDecision.of(Decision(9, True, False, 25.0, 21.5, None), {"level": "web"})
    >>> d.detail, d.at, d == Decision(9, True, False, 25.0, 21.5, None)
    ({'level': 'web'}, 9, False)
    """

    @classmethod
    def of(cls, decision: Decision, detail: dict) -> "DescribedDecision":
        d = _new(cls)
        d.__dict__.update(decision.__dict__, detail=detail)
        return d


@dataclass(frozen=True)
class DetectorState:
    """What a detector says at one moment, in one immutable record."""

    drift: bool
    warning: bool
    statistic: float | None
    threshold: float | None
    p_value: float | None
    n_seen: int
    n_detections: int
    n_tests: int
    last_detection_at: int | None


class Detector(abc.ABC):
    """Base class: subclasses implement ``update`` and the state properties, and call
    :meth:`_decide` with each decision they take."""

    #: True when the detector has confirmed a change (for windowed tests: at the last test).
    drift: bool = False
    #: True when the detector suspects a change but has not confirmed it.
    warning: bool = False
    #: Values fed since creation or the last :meth:`reset`.
    n_seen: int = 0
    #: Number of entries into drift since creation or the last :meth:`reset`.
    n_detections: int = 0
    #: Number of decisions taken (tests run) since creation or the last :meth:`reset`.
    n_tests: int = 0
    #: ``n_seen`` when the detector last entered drift (so the value that tipped it is the
    #: ``last_detection_at``-th one fed), or None.
    last_detection_at: int | None = None
    #: Undrained decisions kept at most: beyond, the oldest are dropped and counted in
    #: ``decisions_dropped`` (a caller that never drains must not grow without bound).
    MAX_DECISIONS = 100_000
    #: Decisions dropped from a full outbox since creation.
    decisions_dropped: int = 0

    @abc.abstractmethod
    def update(self, x) -> None:
        """Feed one value."""

    def update_many(self, xs) -> None:
        """Feed a batch of values, in order; an empty batch is a no-op."""
        for x in xs:
            self.update(x)

    # -- the outbox -------------------------------------------------------------------------
    def _decide(self, decision: Decision) -> None:
        """Put ``decision`` in the outbox (the caller keeps ``drift``, ``n_tests``... up to
        date itself)."""
        outbox = self._open_outbox()
        if len(outbox) == outbox.maxlen:
            self.decisions_dropped += 1
        outbox.append(decision)

    def _decide_many(self, decisions: list) -> None:
        """:meth:`_decide` of each of ``decisions`` (in order), in one step."""
        outbox = self._open_outbox()
        dropped = len(outbox) + len(decisions) - outbox.maxlen
        if dropped > 0:
            self.decisions_dropped += dropped
        outbox.extend(decisions)

    def _decide_run(self, run: DecisionRun) -> None:
        """:meth:`_decide_many` of ``run``'s decisions, kept as the run itself when the
        outbox is empty (the usual case: a reader drains it every batch) and the run fits
        in it; else as objects (so that a run only ever sits alone in the outbox, and the
        outbox's length counts decisions)."""
        outbox = self.__dict__.get("_outbox")
        if outbox or len(run) > self.MAX_DECISIONS:
            self._decide_many(run.decisions())
        elif run.at:
            self._outbox = _Outbox([run], maxlen=self.MAX_DECISIONS)

    def _open_outbox(self) -> collections.deque:
        """The outbox, made if there is none, a run in it expanded (objects follow it)."""
        outbox = self.__dict__.get("_outbox")
        if outbox is None:
            outbox = self._outbox = _Outbox(maxlen=self.MAX_DECISIONS)
        elif outbox and type(outbox[0]) is DecisionRun:
            outbox.extend(outbox.popleft().decisions())
        return outbox

    def pop_decisions(self) -> list[Decision]:
        """The decisions taken since the last call, in stream order; the outbox is then
        empty. :meth:`reset` does not empty it (decisions taken stay facts)."""
        outbox = self.__dict__.get("_outbox")
        if not outbox:
            return []
        out = _expanded(outbox)
        del self._outbox  # not cleared: an empty deque keeps a block, in each of a model's many detectors
        return out

    def pop_decision_runs(self) -> list:
        """:meth:`pop_decisions` for a reader taking them in bulk: the same decisions, in
        order, as :class:`Decision` objects and :class:`DecisionRun` items (a run holds
        several consecutive ones by column)."""
        outbox = self.__dict__.get("_outbox")
        if not outbox:
            return []
        out = list(outbox)
        del self._outbox
        return out

    # -- reading ----------------------------------------------------------------------------
    @property
    @abc.abstractmethod
    def statistic(self) -> float | None:
        """The detector's current statistic (None before it has one)."""

    @property
    @abc.abstractmethod
    def threshold(self) -> float | None:
        """The value the decision compares against (see each detector's docs)."""

    @property
    def p_value(self) -> float | None:
        """The p-value of the last test, or None where the method has none."""
        return None

    def p_value_reader(self):
        """The p-value of the last test as a function of no argument, for a reader that
        must not hold the detector while it computes (a metrics scrape): what it needs
        is taken now; the computation, if any, happens when the function is called, in
        any thread, without touching the detector, which may have gone on meanwhile.
        Default: the p-value read now."""
        value = self.p_value
        return lambda: value

    @abc.abstractmethod
    def reset(self) -> None:
        """Forget every value seen; keep the configuration and the reference."""

    def state(self) -> DetectorState:
        return DetectorState(
            drift=self.drift,
            warning=self.warning,
            statistic=self.statistic,
            threshold=self.threshold,
            p_value=self.p_value,
            n_seen=self.n_seen,
            n_detections=self.n_detections,
            n_tests=self.n_tests,
            last_detection_at=self.last_detection_at,
        )

    def snapshot(self) -> bytes:
        """The whole state as bytes; :func:`restore` gives an equal detector back."""
        return pickle.dumps(self, protocol=pickle.HIGHEST_PROTOCOL)



class DeferredThresholds(Detector):
    """A detector whose thresholds may come after it starts testing (calibration off the
    loop): a test run before them is *held*, and :meth:`set_thresholds` decides the held
    tests in order, as if the thresholds had been there from the start, so that no decision
    depends on when the calibration finished.

    A subclass keeps ``_threshold`` (None while pending) and ``_given_warning`` (a warning
    threshold given to its constructor, which the calibrated one does not replace), runs
    each test's outcome through :meth:`_judge_or_hold` and implements ``_judge(at,
    *outcome)``; :meth:`_thresholds_set` and :meth:`_decide_held` are its hooks.
    """

    _threshold: float | None = None
    _given_warning = None
    warning_threshold: float | None = None

    @staticmethod
    def _checked_settings(window: int, stride: int | None, threshold, ert) -> tuple[int, int]:
        """``(window, stride)`` as ints (stride None: the window, tumbling); ValueError for a
        window below 2, a stride outside 1..window, not exactly one of ``threshold`` and
        ``ert``, or an ``ert`` below the stride."""
        if window < 2:
            raise ValueError(f"window must be at least 2, got {window}")
        stride = window if stride is None else stride
        if not 1 <= stride <= window:
            raise ValueError(f"stride must be between 1 and window ({window}), got {stride}")
        if (threshold is None) == (ert is None):
            raise ValueError("give exactly one of threshold= or ert=")
        if ert is not None and not ert >= stride:
            raise ValueError(f"ert must be at least stride ({stride}) values, got {ert}")
        return int(window), int(stride)

    def _init_thresholds(self, threshold, warning_threshold, ert, defer_calibration: bool) -> None:
        """The constructor's part: a given threshold, or one calibrated to ``ert`` now (from
        :meth:`null_model`, see :func:`detectors.calibration.calibrate`), or none yet
        (``defer_calibration``: a worker calls :meth:`set_thresholds` later)."""
        self._threshold = None if threshold is None else float(threshold)
        self._given_warning = warning_threshold is not None
        self.warning_threshold = warning_threshold
        if ert is not None and not defer_calibration:
            from . import calibration  # the interface module stays free of the simulation's imports

            self._threshold, warning = calibration.calibrate(self.null_model(), ert)
            if not self._given_warning:
                self.warning_threshold = warning
            self._thresholds_set()

    def set_thresholds(self, threshold: float, warning_threshold: float | None = None) -> None:
        """Set the threshold (and the warning threshold, unless one was given to the
        constructor), then decide the tests held meanwhile, in order."""
        self._threshold = float(threshold)
        if not self._warning_given():
            self.warning_threshold = None if warning_threshold is None else float(warning_threshold)
        self._thresholds_set()
        held, self._held = self._held, []
        for outcome in held:
            self._decide_held(*outcome)

    @property
    def calibrated(self) -> bool:
        """True once the threshold is known (given, calibrated, or set)."""
        return self._threshold is not None

    @property
    def statistic(self) -> float | None:
        """The statistic of the last test (None before the first)."""
        return self._statistic_value

    @property
    def threshold(self) -> float | None:
        """The decision threshold; None while a deferred calibration is pending."""
        return self._threshold

    def _warning_given(self) -> bool:
        return bool(self._given_warning)

    def _thresholds_set(self) -> None:
        """Hook: after the thresholds are set, before the held tests are decided."""

    def _decide_held(self, at: int, *outcome) -> None:
        self._judge(at, *outcome)

    def _judge_or_hold(self, at: int, *outcome) -> None:
        """Decide a test's outcome now, or hold it until :meth:`set_thresholds`."""
        if self._threshold is None:
            self._held.append((at, *outcome))
        else:
            self._judge(at, *outcome)

    def _reset_decisions(self) -> None:
        """Forget the tests' outcomes and counts (a part of :meth:`reset`)."""
        self._held = []
        self._statistic_value = None
        self.n_seen = self.n_skipped = self.n_tests = self.n_detections = 0
        self.last_detection_at = None
        self.drift = self.warning = False


def restore(snapshot: bytes) -> Detector:
    """Rebuild a detector from :meth:`Detector.snapshot` (trusted bytes only: it unpickles)."""
    detector = pickle.loads(snapshot)
    if not isinstance(detector, Detector):
        raise ValueError(f"snapshot holds a {type(detector).__name__}, not a Detector")
    return detector
