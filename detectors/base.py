"""The one interface every detector speaks.

A detector is fed values, one at a time with :meth:`Detector.update` or as a batch with
:meth:`Detector.update_many`, and then read: :attr:`drift`, :attr:`warning`,
:attr:`statistic`, :attr:`threshold`, :attr:`p_value` and :attr:`n_seen`.
:attr:`n_detections` counts how many times the detector has entered drift, so that a
caller reading only after a batch still sees a detection that happened inside it.

Detectors are plain Python objects: they pickle, :meth:`snapshot` is a pickle of the
whole state, and :meth:`reset` (explicit, never implicit) forgets what was seen but keeps
the configuration and any reference.
"""

from __future__ import annotations

import abc
import pickle
from dataclasses import dataclass


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
    """Base class: subclasses implement ``update`` and the state properties."""

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

    @abc.abstractmethod
    def update(self, x) -> None:
        """Feed one value."""

    def update_many(self, xs) -> None:
        """Feed a batch of values, in order; an empty batch is a no-op."""
        for x in xs:
            self.update(x)

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
