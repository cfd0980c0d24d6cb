"""From detector decisions to episode observations: which event each decision belongs to.

A detector says at which value a test was completed (``Decision.at``, the n-th value it
was fed); an alert must say which *event* that was: its event time and its source offset.
:class:`SourceLog` keeps that mapping for the values fed to a model version's detectors,
in compact arrays, for as long as a decision may still refer to them: the current batch
once the detectors are calibrated, everything since they were built while their thresholds
are being computed (their tests are held, then decided in order, see
:mod:`daemon.runtime.calibrator`).

>>> log = SourceLog()
>>> log.extend([10.0, 11.0, 12.0], [100, 101, 102])   # values 1, 2, 3
>>> log.extend([13.0], [103])                          # value 4
>>> log.get(2), log.get(4)
((11.0, 101), (13.0, 103))
>>> log.forget()
>>> log.extend([14.0], [104])
>>> log.get(5)
(14.0, 104)
"""

from __future__ import annotations

import bisect
from itertools import repeat
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from detectors.base import Decision, DecisionRun


@dataclass(frozen=True)
class Observation:
    """One decision of one detector, placed in the input stream.

    ``side`` is "data" (the value came from a prediction record) or "labels" (from a
    labelled event: ``offset`` is the label record's). ``position`` orders a detector's
    decisions; ``detail`` goes into the alert. ``drift`` None: not a decision but the end of
    the test (a new model version has no such test; its open episode ends here).
    """

    detector: str
    feature: str
    drift: bool | None
    event_time: float
    offset: int
    side: str
    position: int
    detail: dict


_new = object.__new__


def observation(detector, feature, drift, event_time, offset, side, position, detail) -> Observation:
    """``Observation(...)`` of these fields, made without the frozen dataclass's
    ``__init__`` (one ``object.__setattr__`` per field): the same object (fields, equality,
    hash, pickle), for a cost that counts at one per test of every detector."""
    o = _new(Observation)
    # Item by item, in the fields' order (as detectors.base.new_decision: cheaper than
    # update() with keywords).
    fields = o.__dict__
    fields["detector"] = detector
    fields["feature"] = feature
    fields["drift"] = drift
    fields["event_time"] = event_time
    fields["offset"] = offset
    fields["side"] = side
    fields["position"] = position
    fields["detail"] = detail
    return o


def data_observations(test: str, column: str, decisions: list, places, version) -> list[Observation]:
    """The observations of one detector's ``decisions`` (of a data test ``test`` of
    ``column``; :class:`~detectors.base.Decision` objects and
    :class:`~detectors.base.DecisionRun` items, as ``pop_decision_runs`` gives them), each
    placed at its ``(event time, offset)`` taken in turn from ``places`` (an iterator,
    advanced by one per decision), with :func:`detail_of`'s detail: ``observation(test,
    column, d.drift, ts, offset, "data", d.at, detail_of(d, version))`` for each decision
    ``d``, the same objects, made in one loop (this runs once per test of every detector:
    ~1,850 a batch of 5,000 events on ``bench/peer.py``'s model).

    >>> from detectors.base import DecisionRun, new_decision
    >>> [o] = data_observations("psi", "x", [new_decision(3, True, False, 0.4, 0.2, None)], iter([(9.5, 12)]), "v1")
    >>> o == observation("psi", "x", True, 9.5, 12, "data", 3,
    ...                  {"statistic": 0.4, "threshold": 0.2, "p_value": None, "model_version": "v1"})
    True
    >>> run = DecisionRun([3, 6], [True, False], [False, True], [0.4, 0.3], 0.2, [0.01, 0.1])
    >>> data_observations("psi", "x", [run], iter([(9.5, 12), (9.8, 15)]), "v1") == \\
    ...     data_observations("psi", "x", run.decisions(), iter([(9.5, 12), (9.8, 15)]), "v1")
    True
    """
    out = []
    for item in decisions:
        if type(item) is DecisionRun:
            _run_observations(out, test, column, item, places, version)
            continue
        d, (ts, offset) = item, next(places)
        fields = d.__dict__
        if type(d) is Decision:  # (no p-value to defer, no detail of its own)
            detail = {"statistic": fields["statistic"], "threshold": fields["threshold"],
                      "p_value": fields["p_value"], "model_version": version}
        else:
            detail = detail_of(d, version)
        out.append(observation(test, column, fields["drift"], ts, offset, "data", fields["at"], detail))
    return out


def _run_observations(out: list, test: str, column: str, run: DecisionRun, places, version) -> None:
    """Append the observations of ``run``'s decisions to ``out`` (see :func:`data_observations`),
    read from its columns in one loop."""
    threshold = run.threshold
    p_values = run.p_value if run.p_value is not None else repeat(None)
    append = out.append
    for at, drift, statistic, p_value, (ts, offset) in zip(run.at, run.drift, run.statistic, p_values, places):
        append(observation(test, column, drift, ts, offset, "data", at,
                           {"statistic": statistic, "threshold": threshold, "p_value": p_value, "model_version": version}))


def detail_of(decision, version) -> Mapping:
    """An observation's detail: statistic, threshold, p_value and model_version, and what
    a :class:`detectors.base.DescribedDecision` adds (the level CUSUM: the level that moved,
    which way). A decision whose p-value is still to compute
    (:class:`detectors.windowed.DeferredDecision`: KS's alarms) gives a :class:`LazyDetail`,
    which computes it when read (an alert is made), so that the many alarms no alert reads
    cost nothing; other decisions a dict. (:meth:`daemon.stream.pipeline.ModelPipeline._drain` has it inlined
    for a plain Decision.)"""
    if getattr(decision, "p_pending", False):
        return LazyDetail(decision, version)
    return {"statistic": decision.statistic, "threshold": decision.threshold,
            "p_value": decision.p_value, "model_version": version, **getattr(decision, "detail", {})}


def renewed(kept: bool, version, what: str, previous=None) -> dict:
    """The detail of an alert episode's end at a new model version: ``test_gone`` (the
    version has no such test) or ``new_reference`` (``what`` of the version happens here:
    drift is measured against its own reference from then on). ``model_version`` is the
    new version, ``previous_version`` the one whose test the episode was.

    >>> renewed(True, "2", "reference is complete", "1")["previous_version"]
    '1'
    """
    if not kept:
        return {"reason": "test_gone", "model_version": version, "previous_version": previous,
                "why": f"model version {version} has no such test (feature absent or untestable)"}
    return {"reason": "new_reference", "model_version": version, "previous_version": previous,
            "why": f"model version {version}'s {what} from here"}


def add_counts(counts: dict, detectors) -> None:
    """Add each ``(key, detector)``'s detections and tests to ``counts[key]`` (a list
    ``[detections, tests]``): what the exported counters go on from when the detector is gone."""
    for key, det in detectors:
        total = counts.setdefault(key, [0, 0])
        total[0] += det.n_detections
        total[1] += det.n_tests


class LazyDetail(Mapping):
    """The detail of a decision whose p-value is computed when first read: a read-only
    mapping with the keys and values of :func:`detail_of`'s dict (``dict(detail)``, ``.get``,
    ``==`` with a dict as for one). Pickles with its decision.

    >>> import operator
    >>> from detectors.windowed import DeferredDecision
    >>> detail = detail_of(DeferredDecision(7, True, False, 0.3, 0.2, operator.truediv, (1, 4)), "v2")
    >>> type(detail).__name__, detail == {"statistic": 0.3, "threshold": 0.2, "p_value": 0.25, "model_version": "v2"}
    ('LazyDetail', True)
    """

    _KEYS = ("statistic", "threshold", "p_value", "model_version")

    def __init__(self, decision, version):
        self.decision = decision
        self.version = version

    def __getitem__(self, key):
        if key == "model_version":
            return self.version
        if key in self._KEYS:
            return getattr(self.decision, key)
        raise KeyError(key)

    def __iter__(self):
        return iter(self._KEYS)

    def __len__(self) -> int:
        return len(self._KEYS)

    def __repr__(self) -> str:
        return repr(dict(self))


class SourceLog:
    """(event time, offset) of the values fed, by position (1-based, as ``Decision.at``)."""

    def __init__(self):
        self._firsts: list[int] = []  # first position of each chunk
        self._chunks: list[tuple[np.ndarray, np.ndarray]] = []
        self.next = 1  # position of the next value

    def extend(self, times, offsets) -> None:
        """Record the next values' event times (seconds) and source offsets."""
        times = np.asarray(times, dtype=np.float64)
        if times.size == 0:
            return
        self._firsts.append(self.next)
        self._chunks.append((times, np.asarray(offsets, dtype=np.int64)))
        self.next += times.size

    def get(self, at: int) -> tuple[float, int]:
        """Event time and offset of value ``at``; ``KeyError`` if forgotten or not fed."""
        i = bisect.bisect_right(self._firsts, at) - 1
        if i < 0 or at >= self.next:
            raise KeyError(at)
        times, offsets = self._chunks[i]
        j = at - self._firsts[i]
        if j >= times.size:
            raise KeyError(at)
        return float(times[j]), int(offsets[j])

    def get_many(self, ats: list[int]) -> tuple[list[float], list[int]]:
        """Event times and offsets of values ``ats`` (positions, any order): two lists,
        each item what :meth:`get` gives for it (the same floats and ints); ``KeyError``
        as there.

        >>> log = SourceLog()
        >>> log.extend([10.0, 11.0], [100, 101]); log.extend([12.0], [102])
        >>> log.get_many([3, 1, 2])
        ([12.0, 10.0, 11.0], [102, 100, 101])
        """
        if len(self._chunks) == 1 and ats:  # the usual case: the batch just fed
            times, offsets = self._chunks[0]
            first = self._firsts[0]
            index = np.asarray(ats, dtype=np.int64) - first
            if index.min() >= 0 and index.max() < times.size:
                return times[index].tolist(), offsets[index].tolist()
        pairs = [self.get(at) for at in ats]
        return [t for t, _ in pairs], [o for _, o in pairs]

    def forget(self) -> None:
        """Drop every recorded value (no decision refers to them any more)."""
        self._firsts.clear()
        self._chunks.clear()

    def __len__(self) -> int:
        return sum(t.size for t, _ in self._chunks)
