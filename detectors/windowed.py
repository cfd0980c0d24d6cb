"""The mechanism shared by PSI, KS and chi-square: a window of binned values tested
against a reference every ``stride`` values.

The window holds the last ``window`` values (as bin numbers, in a ring buffer) and their
counts per bin. The first test runs when the window is full, then one every ``stride``
values; ``stride == window`` gives tumbling windows, a smaller stride sliding ones. Tests
fall at the same positions whatever the batch sizes, so a stream gives the same states fed
one value at a time or in batches of any size.

The decision is ``statistic > threshold``. The threshold is given directly
(``threshold=``) or derived from an expected run length between false alarms on a
stationary stream (``ert=``, see :mod:`detectors.calibration`). A detection is an entry
into drift: a window that stays drifted is one detection, not one per test.
"""

from __future__ import annotations

import numpy as np

from . import calibration
from .base import Detector


class WindowedTest(Detector):
    """Base class; subclasses set ``self.binning`` and implement ``_statistic(counts, n)``.

    ``warning_threshold`` defaults to the threshold for a ten times shorter run length when
    ``ert`` is given, else to no warning.
    """

    #: The statistic's tail, used to extrapolate a calibration: log P(stat > c) ~ -c**TAIL_POWER.
    TAIL_POWER = 1

    def __init__(
        self,
        binning,
        window: int,
        stride: int | None,
        threshold: float | None,
        ert: float | None,
        warning_threshold: float | None,
        calibration_seed: int,
        keep_values: bool = False,
    ):
        if window < 2:
            raise ValueError(f"window must be at least 2, got {window}")
        stride = window if stride is None else stride
        if not 1 <= stride <= window:
            raise ValueError(f"stride must be between 1 and window ({window}), got {stride}")
        if (threshold is None) == (ert is None):
            raise ValueError("give exactly one of threshold= or ert=")
        if ert is not None and ert < stride:
            raise ValueError(f"ert must be at least stride ({stride}) values, got {ert}")
        self.binning = binning
        self.window = int(window)
        self.stride = int(stride)
        self.ert = ert
        self.calibration_seed = calibration_seed
        self._keep_values = keep_values
        if ert is not None:
            threshold, calibrated_warning = calibration.calibrate(self, ert)
            if warning_threshold is None:
                warning_threshold = calibrated_warning
        self._threshold = float(threshold)
        self.warning_threshold = warning_threshold
        self.reset()

    # -- configuration shared with the calibration's null copies -------------------------
    def _params(self) -> dict:
        """Constructor arguments (other than the reference) that reproduce this detector."""
        raise NotImplementedError

    def _reference_sample(self) -> np.ndarray:
        """The reference sample, for bootstrap resampling."""
        raise NotImplementedError

    # -- state ------------------------------------------------------------------------------
    def reset(self) -> None:
        self._bins = np.zeros(self.window, dtype=np.intp)
        self._values = np.zeros(self.window) if self._keep_values else None
        self._head = 0
        self._filled = 0
        self.counts = np.zeros(self.binning.n_bins, dtype=np.int64)
        self._until_test = self.window
        self._statistic_value = None
        self._p_cache = None
        self.n_seen = 0
        self.n_tests = 0
        self.n_detections = 0
        self.last_detection_at = None
        self.drift = False
        self.warning = False

    @property
    def statistic(self) -> float | None:
        return self._statistic_value

    @property
    def threshold(self) -> float:
        return self._threshold

    def update(self, x) -> None:
        self.update_many([x])

    def update_many(self, xs) -> None:
        values = kept = None
        if self._keep_values:
            values, bins, kept = self._binned_values(xs)
        else:
            bins = self.binning.index(xs)
        seen_before = self.n_seen
        self.n_seen += len(xs)
        start = 0
        while start < bins.size:
            end = min(bins.size, start + self._until_test)
            self._push(bins[start:end], None if values is None else values[start:end])
            self._until_test -= end - start
            start = end
            if self._until_test == 0:
                if self._test():
                    self.last_detection_at = seen_before + 1 + (end - 1 if kept is None else int(kept[end - 1]))
                self._until_test = self.stride

    def _binned_values(self, xs):
        raise NotImplementedError

    def _push(self, bins: np.ndarray, values) -> None:
        n = bins.size
        slots = (self._head + np.arange(n)) % self.window
        free = self.window - self._filled
        # Unbuffered add/subtract at the chunk's bins: cost by chunk size, not by bin count
        # (KS has thousands of bins).
        if n > free:
            np.subtract.at(self.counts, self._bins[slots[free:]], 1)
        np.add.at(self.counts, bins, 1)
        self._bins[slots] = bins
        if values is not None:
            self._values[slots] = values
        self._head = (self._head + n) % self.window
        self._filled = min(self.window, self._filled + n)

    def _test(self) -> bool:
        """Run the test on the window; True if it enters drift."""
        stat = float(self._statistic(self.counts, self._filled))
        self._statistic_value = stat
        self._p_cache = None
        self.n_tests += 1
        was = self.drift
        self.drift = bool(stat > self._threshold)
        self.n_detections += self.drift and not was
        self.warning = bool(
            not self.drift and self.warning_threshold is not None and stat > self.warning_threshold
        )
        return self.drift and not was

    def _statistic(self, counts: np.ndarray, n: int) -> float:
        raise NotImplementedError

    def window_values(self) -> np.ndarray:
        """The raw values in the window, oldest first (detectors that keep them)."""
        if not self._keep_values:
            raise AttributeError(f"{type(self).__name__} keeps bin numbers, not values")
        start = (self._head - self._filled) % self.window
        return np.roll(self._values, -start)[: self._filled]

    # -- combining ------------------------------------------------------------------------
    def merge(self, other: "WindowedTest") -> "WindowedTest":
        """A detector whose window is this one's and ``other``'s together: for combining
        detectors that watched disjoint parts of one stream (say, two partitions).

        Both must have been built from the same reference and configuration.
        """
        if type(other) is not type(self) or _settings(other) != _settings(self):
            raise ValueError("can only merge detectors of the same kind and configuration")
        if not np.array_equal(other._reference_sample(), self._reference_sample()):
            raise ValueError("can only merge detectors built from the same reference")
        merged = self._copy_empty(window=self.window + other.window)
        merged.counts = self.counts + other.counts
        merged._filled = self._filled + other._filled
        merged._bins[: merged._filled] = np.concatenate([self._window_bins(), other._window_bins()])
        if self._keep_values:
            merged._values[: merged._filled] = np.concatenate([self.window_values(), other.window_values()])
        merged._head = merged._filled % merged.window
        merged.n_seen = self.n_seen + other.n_seen
        if merged._filled:
            merged._test()
        return merged

    def _window_bins(self) -> np.ndarray:
        start = (self._head - self._filled) % self.window
        return np.roll(self._bins, -start)[: self._filled]

    def _copy_empty(self, window: int) -> "WindowedTest":
        clone = object.__new__(type(self))
        clone.__dict__.update(self.__dict__)
        clone.window = window
        clone.stride = min(self.stride, window)
        clone.reset()
        return clone


def _settings(detector: WindowedTest) -> dict:
    """What must agree for two detectors' counts to be comparable: all but the window."""
    return {k: v for k, v in detector._params().items() if k not in ("window", "stride")}
