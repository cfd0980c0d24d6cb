"""River's change detectors behind driftd's interface: wrapped, not rewritten.

River decides; the wrapper only validates input, remembers detections that happen inside a
batch, and reads out a statistic and threshold in the common vocabulary:

- ``statistic``: ADWIN's estimate of the mean of its adaptive window; for the others the
  mean of the values seen since the last detection.
- ``threshold``: the parameter that decides drift (ADWIN ``delta``, Page-Hinkley
  ``threshold``, KSWIN ``alpha`` on its p-value, DDM ``drift_threshold``, EDDM ``beta``,
  HDDM ``drift_confidence``).
- ``drift``: River detected a change during the last ``update``/``update_many`` call.

>>> import random
>>> rng = random.Random(12345)
>>> stream = rng.choices([0, 1], k=1000) + rng.choices(range(4, 8), k=1000)
>>> adwin = RiverDetector("ADWIN")
>>> for i, x in enumerate(stream):
...     adwin.update(x)
...     if adwin.drift:
...         print(f"drift at {i}")
...         break
drift at 1023
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from river import drift as river_drift
from river.drift import binary as river_binary

from .base import Detector

# name -> (River class, the parameter reported as threshold, takes only 0/1 input)
_CLASSES = {
    "ADWIN": (river_drift.ADWIN, "delta", False),
    "PageHinkley": (river_drift.PageHinkley, "threshold", False),
    "KSWIN": (river_drift.KSWIN, "alpha", False),
    "DDM": (river_binary.DDM, "drift_threshold", True),
    "EDDM": (river_binary.EDDM, "beta", True),
    "HDDM_A": (river_binary.HDDMA, "drift_confidence", True),
    "HDDM_W": (river_binary.HDDMW, "drift_confidence", True),
}

RIVER_DETECTORS = tuple(_CLASSES)


class RiverDetector(Detector):
    """One of River's detectors, named by ``kind`` (see ``RIVER_DETECTORS``).

    ``params`` go to River's constructor unchanged; an unknown name or parameter raises
    ``ValueError``. The binary detectors (DDM, EDDM, HDDM_A, HDDM_W) take 0 (correct) or
    1 (error); anything else raises ``ValueError`` rather than bending River's statistic.
    """

    def __init__(self, kind: str, **params):
        if kind not in _CLASSES:
            raise ValueError(f"unknown River detector {kind!r}; choose one of {', '.join(_CLASSES)}")
        cls, self._threshold_param, self._binary = _CLASSES[kind]
        try:
            self._river = cls(**params)
        except TypeError as e:
            raise ValueError(f"bad parameter for River {kind}: {e}") from None
        self.kind = kind
        self.params = dict(params)
        self.reset()

    def reset(self) -> None:
        self._river = self._river.clone()
        self.n_seen = 0
        self.n_detections = 0
        self.last_detection_at = None
        self.drift = False
        self.warning = False
        self._sum = 0.0
        self._count = 0

    def _check(self, x) -> float:
        kind = type(x)
        if kind is not float and kind is not int:  # the common cases first: this is per value
            if isinstance(x, (bool, np.bool_)):
                x = int(x)
            elif isinstance(x, numbers.Real):
                x = float(x)
            else:
                raise ValueError(f"{self.kind} takes numbers, got {kind.__name__}")
        if self._binary and x != 0 and x != 1:
            raise ValueError(f"{self.kind} takes 0 (correct) or 1 (error), got {x!r}")
        if not math.isfinite(x):
            raise ValueError(f"{self.kind} got a non-finite value {x!r}")
        return x

    def _feed(self, x) -> bool:
        x = self._check(x)
        river = self._river
        river.update(x)
        self.n_seen += 1
        if river.drift_detected:
            self.n_detections += 1
            self.last_detection_at = self.n_seen
            self._sum, self._count = 0.0, 0
            return True
        self._sum += x
        self._count += 1
        return False

    def update(self, x) -> None:
        self.drift = self._feed(x)
        self.warning = bool(getattr(self._river, "warning_detected", False))

    def update_many(self, xs) -> None:
        xs = list(xs)
        if not xs:
            return
        detected = False
        for x in xs:
            detected |= self._feed(x)
        self.drift = detected
        self.warning = bool(getattr(self._river, "warning_detected", False))

    @property
    def n_tests(self) -> int:
        """River tests on every value."""
        return self.n_seen

    @property
    def statistic(self) -> float | None:
        if self.kind == "ADWIN":
            return float(self._river.estimation) if self._river.width else None
        return self._sum / self._count if self._count else None

    @property
    def threshold(self) -> float:
        return float(getattr(self._river, self._threshold_param))

    @property
    def p_value(self) -> float | None:
        p = getattr(self._river, "p_value", None) if self.kind == "KSWIN" else None
        return None if p is None else float(p)
