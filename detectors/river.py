"""River's change detectors behind driftd's interface: wrapped, not rewritten.

River decides; the wrapper only validates input, remembers detections that happen inside a
batch, writes decisions to the outbox and reads out a statistic and threshold in the
common vocabulary:

- ``statistic``: ADWIN's estimate of the mean of its adaptive window; for the others the
  mean of the values seen since the last detection.
- ``threshold``: the parameter that decides drift (ADWIN ``delta``, Page-Hinkley
  ``threshold``, KSWIN ``alpha`` on its p-value, DDM ``drift_threshold``, EDDM ``beta``,
  HDDM ``drift_confidence``).
- ``drift``: the last decision's, from a detection until the next clean decision
  ``decision_every`` values later: a function of the values fed, not of how they were
  batched (a flag of "a detection in the last call" made a replica's state depend on where
  its consumer's batches ended). ``warning``: River's warning state after the last value.
- decisions (:meth:`~detectors.base.Detector.pop_decisions`): one with ``drift=True`` at
  each detection, and a clean one every ``decision_every`` values (default 100) since the
  last decision, so that a caller can tell when the stream has been quiet for a while.

Input: the binary detectors (DDM, EDDM, HDDM_A, HDDM_W) take 0 (correct) or 1 (error);
the others take numbers within +/-:data:`MAX_MAGNITUDE`. Anything else (NaN, infinity,
such as the absolute error of a prediction of -1e308 against a label of 1e308, a string)
raises ValueError naming the value and its position in the batch, and nothing of the
batch is fed: River's own arithmetic does not refuse such values but degrades silently
(measured on River 0.26: a single value of 1e160 or more makes ADWIN's variance infinite,
after which it never detects again, where one of 1e150 only causes a cut; a swing from
-1e308 to 1e308 leaves NaN in Page-Hinkley's sums, after which it never detects again).
:meth:`RiverDetector.check` tests one value without feeding it. Two limits stay River's: Page-Hinkley's ``threshold`` and ``delta`` are in
the values' units, and ADWIN reads sums rounded to float64, so a stream of nearly
constant values beyond about 1e18 makes it detect changes that are rounding errors.

False alarms and ``label_ert``: River's detectors are not calibrated to a run length.
Their false-alarm rate depends on their parameters and on the error stream itself. On
stationary Bernoulli error streams (River 0.26, default parameters; error rate 0.1 / 0.3)
the detections per million values were: ADWIN 0 / 0 (none in 10 million either), DDM 2 /
0, HDDM_A 0 / 2, EDDM 20 / 40, PageHinkley 29 / 95, HDDM_W 0 / 390, KSWIN 0 / 80. The
share of the daemon's label-side contract given to the error-stream detector is therefore
informational, not applied. ADWIN's ``delta`` bounds the probability of a false cut at
each value (Bifet and Gavalda, "Learning from time-changing data with adaptive
windowing", 2007, Theorem 3.1), so ``delta <= 1 / ert`` would guarantee the share, but it
is no calibration: River's ADWIN (which checks every 32 values) alarmed about 10,000
times less often than that bound allows (``delta`` = 0.1 and 0.5: 7 and 110 detections in
a million values at error rate 0.1), and a smaller ``delta`` delays detection. ADWIN,
DDM and HDDM_A at their defaults stay within a production contract (a false alarm per
ten million labelled events); the others need stricter parameters. Those rates are of 0/1
values: ADWIN's bound assumes values within [0, 1], and unbounded ones (a regression's
absolute errors) need ``scale_after`` (see :class:`RiverDetector`).

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
>>> [(d.at, d.drift) for d in adwin.pop_decisions()]
[(100, False), (200, False), (300, False), (400, False), (500, False), (600, False), (700, False), (800, False), (900, False), (1000, False), (1024, True)]
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from river import drift as river_drift
from river.drift import binary as river_binary

from .base import Decision, Detector

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
#: Quantile of the first ``scale_after`` values that scales the values (see RiverDetector):
#: about 1% of a stationary stream's values are capped.
SCALE_QUANTILE = 0.99


def _scale_of(values: list) -> float:
    """The :data:`SCALE_QUANTILE` of ``values``; their largest if that is 0, 1.0 if every
    one is 0 (then any value above 0 counts in full)."""
    array = np.asarray(values, dtype=np.float64)
    for scale in (float(np.quantile(array, SCALE_QUANTILE)), float(array.max())):
        if scale > 0:
            return scale
    return 1.0
#: Largest magnitude of a value taken: squares and sums of many such values stay finite
#: in float64.
MAX_MAGNITUDE = 1e100


class RiverDetector(Detector):
    """One of River's detectors, named by ``kind`` (see ``RIVER_DETECTORS``).

    ``params`` go to River's constructor unchanged; an unknown name or parameter raises
    ``ValueError``. ``decision_every`` (at least 1, default 100) is how many values
    without a detection make a clean decision. See the module docs for the values taken.

    ``scale_after`` (default None: values as they come): ADWIN's bound on a false cut
    holds for values within [0, 1] (Bifet and Gavalda, 2007), and unbounded values such as
    a regression's absolute errors broke it (on stationary log-normal errors, 14 false
    alarms in 500,000 values). With ``scale_after = n``, the first ``n`` values are held
    (``holding``), then every value is fed divided by :data:`SCALE_QUANTILE` of those
    ``n`` (``scale``) and capped to [0, 1], the held ones first, so decisions keep their
    positions (``at``); the statistic is then in those units.
    """

    #: Values held before the scale is known (see ``scale_after``), and the scale.
    scale_after: int | None = None
    scale: float | None = None

    def __init__(self, kind: str, decision_every: int = 100, scale_after: int | None = None, **params):
        if kind not in _CLASSES:
            raise ValueError(f"unknown River detector {kind!r}; choose one of {', '.join(_CLASSES)}")
        if isinstance(decision_every, bool) or not isinstance(decision_every, int) or decision_every < 1:
            raise ValueError(f"decision_every must be a whole number of values, at least 1, got {decision_every!r}")
        if scale_after is not None and (isinstance(scale_after, bool) or not isinstance(scale_after, int)
                                        or scale_after < 1):
            raise ValueError(f"scale_after must be a whole number of values, at least 1, got {scale_after!r}")
        self.scale_after = scale_after
        self._held: list = []
        cls, self._threshold_param, self._binary = _CLASSES[kind]
        try:
            self._river = cls(**params)
        except TypeError as e:
            raise ValueError(f"bad parameter for River {kind}: {e}") from None
        self.kind = kind
        self.params = dict(params)
        self.decision_every = decision_every
        self.reset()

    def reset(self) -> None:
        """Forget every value seen (the decisions in the outbox stay)."""
        self._river = self._river.clone()
        self.n_seen = 0
        self.n_detections = 0
        self.last_detection_at = None
        self.drift = False
        self.warning = False
        self._sum = 0.0
        self._count = 0
        self._last_decision = 0

    def _check(self, x, position: int = 0) -> float:
        kind = type(x)
        if kind is not float and kind is not int:  # the common cases first: this is per value
            if isinstance(x, (bool, np.bool_)):
                x, kind = int(x), int
            elif isinstance(x, numbers.Real):
                try:
                    x, kind = float(x), float
                except OverflowError:
                    raise ValueError(f"{self.kind}: value {position} of the batch is beyond +/-{MAX_MAGNITUDE:g}; "
                                     f"it takes finite numbers within +/-{MAX_MAGNITUDE:g}") from None
            else:
                raise ValueError(f"{self.kind}: value {position} of the batch is a {kind.__name__}; it takes numbers")
        if self._binary:
            if x != 0 and x != 1:
                raise ValueError(f"{self.kind}: value {position} of the batch is {x!r}; it takes 0 (correct) or 1 (error)")
        elif not -MAX_MAGNITUDE <= x <= MAX_MAGNITUDE:  # NaN fails too
            what = "non-finite" if kind is float and not math.isfinite(x) else f"beyond +/-{MAX_MAGNITUDE:g}"
            shown = repr(x) if kind is float else f"an integer of {x.bit_length()} bits"
            raise ValueError(f"{self.kind}: value {position} of the batch is {shown}, {what}; it takes finite "
                             f"numbers within +/-{MAX_MAGNITUDE:g}")
        return x

    def _check_many(self, xs: list) -> list:
        """``xs`` as fed, or ValueError for the first value refused (vectorised when the
        batch holds plain floats and ints only: this is per value)."""
        if set(map(type, xs)) <= {float, int}:
            try:
                values = np.array(xs, dtype=np.float64)
            except OverflowError:  # an int beyond float range: the message says which
                values = None
            if values is not None:
                refused = (values != 0) & (values != 1) if self._binary else ~(np.abs(values) <= MAX_MAGNITUDE)
                if not refused.any():
                    return xs
        return [self._check(x, i) for i, x in enumerate(xs)]

    def check(self, x) -> None:
        """Raise ValueError if :meth:`update` would refuse ``x``; change nothing."""
        self._check(x)

    def _feed(self, xs: list) -> bool:
        """Feed checked values; True if River detected a change among them."""
        river, update, every = self._river, self._river.update, self.decision_every
        n, total, count = self.n_seen, self._sum, self._count
        next_clean = self._last_decision + every
        detected = False
        for x in xs:  # per value: locals, not attributes
            update(x)
            n += 1
            if river.drift_detected:
                detected = True
                total, count = 0.0, 0
                self.n_detections += 1
                self.last_detection_at = n
            else:
                total += x
                count += 1
                if n < next_clean:
                    continue
            self.n_seen, self._sum, self._count = n, total, count
            self._decide_now(river.drift_detected)
            next_clean = n + every
        self.n_seen, self._sum, self._count = n, total, count
        return detected

    def _decide_now(self, drift: bool) -> None:
        self._last_decision = self.n_seen
        self.drift = bool(drift)
        self._decide(Decision(at=self.n_seen, drift=self.drift,
                              warning=bool(getattr(self._river, "warning_detected", False)),
                              statistic=self.statistic, threshold=self.threshold, p_value=self.p_value))

    def update(self, x) -> None:
        if self.scale_after is not None:
            self.update_many([x])
            return
        self._feed([self._check(x)])
        self.warning = bool(getattr(self._river, "warning_detected", False))

    def update_many(self, xs) -> None:
        """Feed a batch, in order, once every value of it has passed the checks."""
        checked = self._check_many(xs if isinstance(xs, list) else list(xs))
        if checked and self.scale_after is not None:
            checked = self._scaled(checked)
        if checked:
            self._feed(checked)
            self.warning = bool(getattr(self._river, "warning_detected", False))

    @property
    def holding(self) -> bool:
        """Whether values are held until the scale is known (see ``scale_after``)."""
        return bool(self.scale_after is not None and self.scale is None and self._held)

    def _scaled(self, xs: list) -> list:
        """``xs`` in the scale's units, capped to [0, 1]; the held values first once the
        scale is known, nothing while it is not."""
        if self.scale is None:
            self._held.extend(xs)
            if len(self._held) < self.scale_after:
                return []
            xs, self._held = self._held, []
            self.scale = _scale_of(xs[:self.scale_after])
        values = np.clip(np.asarray(xs, dtype=np.float64) / self.scale, 0.0, 1.0)
        return values.tolist()

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
