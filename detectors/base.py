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
        outbox = self.__dict__.get("_outbox")
        if outbox is None:
            outbox = self._outbox = collections.deque(maxlen=self.MAX_DECISIONS)
        if len(outbox) == outbox.maxlen:
            self.decisions_dropped += 1
        outbox.append(decision)

    def pop_decisions(self) -> list[Decision]:
        """The decisions taken since the last call, in stream order; the outbox is then
        empty. :meth:`reset` does not empty it (decisions taken stay facts)."""
        outbox = self.__dict__.get("_outbox")
        if not outbox:
            return []
        out = list(outbox)
        del self._outbox  # not cleared: an empty deque keeps a block, in each of a model's many detectors
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


def restore(snapshot: bytes) -> Detector:
    """Rebuild a detector from :meth:`Detector.snapshot` (trusted bytes only: it unpickles)."""
    detector = pickle.loads(snapshot)
    if not isinstance(detector, Detector):
        raise ValueError(f"snapshot holds a {type(detector).__name__}, not a Detector")
    return detector
