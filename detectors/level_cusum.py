"""CUSUM of a categorical column's levels: a sequential test of one level's share, value by value.

Chi-square compares the last ``window`` levels with the reference every ``stride``
values: one level's share moving from 20% to 40% is seen only once a good part of the
window has moved (about 500 values at the defaults). This test watches each frequent
level's share with Page's CUSUM (as :mod:`detectors.cusum` watches a number's mean) and
sees such a change as the evidence comes.

**Statistic.** For each *tracked* level with reference share ``p`` (the
:data:`MAX_LEVELS` most frequent levels having at least :data:`MIN_COUNT` reference
values; of a column of two levels only the first, the other's share being its
complement), two one-sided CUSUMs of the log-likelihood ratio of the level's indicator:
its odds multiplied by ``odds_ratio`` (share ``q_up = R p / (1 - p + R p)``) against
unchanged, and divided by it (``q_down``). A value adds ``ln(q / p)`` to an arm if it is
the arm's level, ``ln((1 - q) / (1 - p))`` otherwise; each arm's sum is kept at or above
0, and the statistic is the largest arm, in nats (natural log units of likelihood ratio).
An odds ratio rather than a shift of the share: the increments are bounded by ``ln R``
whatever the level's share (a rare level's one occurrence is no jump of many standard
deviations), and every arm's run length between false alarms is about ``e^h`` for the
same threshold ``h`` (Wald), so one threshold serves them all (Steiner et al., 2000, use
``R = 2`` for the same reason). Levels not tracked, and levels the reference never had,
count as "not the level" for every arm: a level's share is of all present values, in the
stream as in the reference (left out, the unseen values of a long-tailed column, say 60%
of its values from thousands of rare ids, would raise every frequent level's share on a
stationary stream). Missing values are left out (the column's ``missing_rate`` has them). Sums in fixed point as the numeric
CUSUM's (exact whatever the batch sizes); every ``stride`` values a block is decided, the
sums capped at ``window`` times each arm's null drift (``KL(p || q)`` per value) so that an
old drift is forgotten in about ``window`` values; an entry into drift is decided at the
value that passed ``h``.

**Calibration** (``ert``: values between false alarms on a stationary stream, pooled over
references; exact, no simulation): the stream's level shares are drawn from their
posterior given the reference counts (Dirichlet, Jeffreys' prior, :data:`N_DRAWS` draws,
seeded; the levels not tracked pooled as one, so that a long tail's many levels lend no
prior weight that thins the tracked shares), each arm's run length to an alarm from Siegmund's corrected diffusion
approximation for its two-point walk (as :meth:`detectors.cusum.CUSUM.exact_thresholds`),
and ``h`` is the level where the arms' false-alarm rates, added up and averaged over the
draws, are ``1 / ert``. Cost: a few ms of CPU per tracked level.

**Choices.** A fixed alternative per level (odds doubled or halved) rather than a GLR over
unknown shares: two numbers per arm, a closed-form run length. The price: a change of a
level's odds by much less than ``R`` is left to chi-square; a change spread thinly over
many levels too (chi-square sees it). The delay for a level at ``p`` whose odds move by
``R``: about ``ln(ert') / KL(q || p)`` values (``ert'``: this test's share of the model's
contract, per arm); 20% to 40% at the defaults, some 250 values where chi-square's window
needs about 500.

Errors: ValueError for a bad ``window``, ``stride``, ``ert`` or ``odds_ratio``, a reference
with fewer than 20 present values, or no level with :data:`MIN_COUNT` values (left to
chi-square). Sources: E. S. Page, "Continuous inspection schemes", Biometrika 41 (1954);
S. H. Steiner, R. J. Cook, V. T. Farewell, T. Treasure, "Monitoring surgical performance
using risk-adjusted cumulative sum charts", Biostatistics 1 (2000); D. Siegmund,
*Sequential Analysis*, Springer (1985), ch. X.

>>> import numpy as np
>>> rng = np.random.default_rng(3)
>>> levels = np.array(["a", "b", "c", "d"])
>>> reference = rng.choice(levels, p=[0.2, 0.3, 0.3, 0.2], size=5000).tolist()
>>> cusum = LevelCUSUM(reference, window=1000, stride=100, ert=1e8)
>>> cusum.tracked, round(cusum.threshold, 1)
(('c', 'b', 'a', 'd'), 18.3)
>>> cusum.update_many(rng.choice(levels, p=[0.2, 0.3, 0.3, 0.2], size=3000))
>>> cusum.drift, cusum.n_detections
(False, 0)
>>> cusum.update_many(rng.choice(levels, p=[0.4, 0.2, 0.2, 0.2], size=1000))  # "a": 20% -> 40%
>>> cusum.drift, 3000 < cusum.last_detection_at < 3400
(True, True)
"""

from __future__ import annotations

import bisect
import math
from array import array

import numpy as np

from . import calibration
from .binning import CategoricalBins
from .base import DescribedDecision, new_decision
from .arl import LogARL, threshold_search, walk_root
from .cusum import CUSUM, SCALE

#: Default odds ratio of the change each arm is tuned to (doubled up, halved down).
ODDS_RATIO = 2.0
#: Levels tracked at most (the most frequent).
MAX_LEVELS = 10
#: Reference values a level needs to be tracked: its share's posterior is then narrow
#: enough (about 10% relative) that a stationary stream does not look like a change.
MIN_COUNT = 100
#: Posterior draws of the level shares per calibration (fewer than the numeric CUSUM's:
#: each arm's walk has two points, and the arms' rates are averaged together).
N_DRAWS = 250
#: Least cap of an arm's sum, in nats: above the threshold of any contract (ln 1e20 is 46).
CAP_FLOOR = 48.0
#: Part of the threshold a block's statistic must fall to for the test to leave drift.
EXIT = 0.5
#: Part of the null model's key: bumped when the statistic or its calibration changes.
VERSION = 2


class LevelCUSUM(CUSUM):
    """Two CUSUMs (odds up, odds down) per frequent level of a categorical column (see the
    module docs). Give ``threshold`` (in nats) or ``ert``; ``defer_calibration`` as
    :class:`~detectors.cusum.CUSUM`. ``tracked``: the levels watched, most frequent first."""

    KIND = "level_cusum"

    def __init__(
        self,
        reference,
        window: int = 1000,
        stride: int | None = None,
        threshold: float | None = None,
        ert: float | None = None,
        odds_ratio: float = ODDS_RATIO,
        warning_threshold: float | None = None,
        calibration_seed: int = 0,
        defer_calibration: bool = False,
    ):
        window, stride = self._checked_settings(window, stride, threshold, ert)
        if not (isinstance(odds_ratio, (int, float)) and 1 < odds_ratio < 1000):
            raise ValueError(f"odds_ratio must be a number above 1, got {odds_ratio!r}")
        self.window, self.stride, self.ert = int(window), int(stride), ert
        self.odds_ratio = float(odds_ratio)
        self.calibration_seed = int(calibration_seed)
        self.binning = CategoricalBins(reference)
        counts = self.binning.reference_counts[:self.binning.other_bin]
        self.reference_counts = counts.astype(np.int32)
        level, hit, miss, cap = _arms(counts, self.odds_ratio, self.window)
        if level.size == 0:
            raise ValueError(f"level_cusum: no level has {MIN_COUNT} reference values (chi-square tests the column)")
        self._level, self._hit, self._miss, self._cap = level, hit, miss, cap
        names = list(self.binning.levels)
        self.tracked = tuple(names[i] for i in level[::2].tolist())
        self._init_thresholds(threshold, warning_threshold, ert, defer_calibration)
        self.reset()

    # -- calibration ------------------------------------------------------------------------
    def null_model(self) -> calibration.NullModel:
        """What the statistic's null depends on: the reference's level counts (most
        frequent first), the odds ratio, window and stride."""
        return calibration.NullModel(
            self.KIND, tuple(int(c) for c in self.reference_counts), self.window, self.stride,
            (("odds_ratio", self.odds_ratio), ("version", VERSION)), self.calibration_seed)

    def max_statistic(self) -> float:
        """The largest statistic reachable: an arm's cap plus a block of its level."""
        top = np.maximum(self._hit, self._miss).clip(min=0)
        return float(np.max(self._cap + self.stride * top)) / SCALE

    @staticmethod
    def exact_thresholds(null_model, rates) -> list[float]:
        """The threshold ``h`` (nats) whose false alarms come ``rate`` times per value, for
        each of ``rates`` (see the module docs); ``inf`` where none up to ``max(1e7, the
        largest reachable statistic)`` does."""
        params = dict(null_model.params)
        counts = np.asarray(null_model.counts, dtype=np.float64)
        level, hit, miss, cap = _arms(counts, params["odds_ratio"], null_model.window)
        tracked = int(level.max()) + 1  # the tracked levels are the most frequent: a prefix
        if counts.size > tracked:
            counts = np.append(counts[:tracked], counts[tracked:].sum())
        rng = np.random.default_rng([int(null_model.seed), VERSION, 11])
        p = rng.standard_gamma(counts + calibration.PRIOR, size=(N_DRAWS, counts.size))
        p /= p.sum(axis=1, keepdims=True)
        # Each arm's two-point walk (a value not of its level, of its level), every arm's
        # draws solved together: rows arm by arm, draw by draw.
        share = p[:, level].T.reshape(-1)
        steps = np.repeat(np.column_stack([miss, hit]) / SCALE, N_DRAWS, axis=0)
        t, mean, sd = walk_root(np.column_stack([1 - share, share]), steps)
        arms = LogARL(*(x.reshape(level.size, N_DRAWS) for x in (t, mean, sd)))
        search_limit = max(1e7, float(np.max(cap + null_model.stride * np.maximum(hit, miss).clip(min=0))) / SCALE)
        return threshold_search(lambda h: np.exp(-arms(h)).sum(axis=0), rates, search_limit)

    # -- state ------------------------------------------------------------------------------
    def reset(self) -> None:
        super().reset()
        self._sums = np.zeros(self._level.size, dtype=np.int64)
        self._walks = None  # the current batch's arms (update_slots only)
        self._entry_arm = 0  # the highest arm where the batch enters drift
        # Candidate entries held (uncalibrated): their positions, increasing, and highest
        # arms (9 bytes each: a long calibration wait holds one per rise of a block's maximum).
        self._held_at, self._held_arm = array("q"), array("b")

    def set_thresholds(self, threshold: float, warning_threshold: float | None = None) -> None:
        super().set_thresholds(threshold, warning_threshold)
        self._held_at, self._held_arm = array("q"), array("b")  # every held entry is decided

    def _position(self, i: int, kept, first: int) -> int:
        position = super()._position(i, kept, first)
        arm = int(np.argmax(self._walks[:, i]))  # the first of equal arms
        if self._threshold is None:
            self._held_at.append(position)
            self._held_arm.append(arm)
        else:
            self._entry_arm = arm
        return position

    def _entry(self, at: int, stat: int):
        """An entry into drift names the level whose arm is highest there: ``level``,
        ``direction`` (``up``: its share grew) and ``reference_share``."""
        i = bisect.bisect_left(self._held_at, at)
        arm = self._held_arm[i] if i < len(self._held_at) and self._held_at[i] == at else self._entry_arm
        level = int(self._level[arm])
        share = float(self.reference_counts[level]) / float(self.reference_counts.sum())
        detail = {"level": self.tracked[arm // 2], "direction": "up" if arm % 2 == 0 else "down",
                  "reference_share": round(share, 4)}
        return DescribedDecision.of(super()._entry(at, stat), detail)

    @property
    def value(self) -> float:
        """The statistic now, the largest arm's sum, in nats."""
        return int(self._sums.max()) / SCALE

    def _judge(self, at: int, top: int) -> None:
        """Decide a block: drift while its largest statistic is above the threshold, or,
        once in drift, above :data:`EXIT` times it (an arm's null drift is slow: without
        the margin a sum near the threshold leaves drift and enters again, several false
        alarms for one excursion, where the calibration counts one)."""
        if self.drift:
            self.n_tests += 1
            self.drift = bool(top > self._threshold * EXIT * SCALE)
            self.warning = False
            self._statistic_value = top / SCALE
            self._decide(new_decision(at, self.drift, False, top / SCALE, self._threshold, None))
            return
        super()._judge(at, top)

    # -- feeding ----------------------------------------------------------------------------
    def update_many(self, xs) -> None:
        self.update_bins(self.binning.index(xs))

    def update_bins(self, bins: np.ndarray) -> None:
        """Feed values already binned by ``self.binning`` (intp of shape (values,)):
        missing values are left out; "other" (a level the reference never had) is a value
        of no tracked level."""
        bins = np.asarray(bins)
        try:
            self.update_slots(bins, bins == self.binning.missing_bin)
        finally:
            self._walks = None  # a batch's, not state

    def _path(self, bins: np.ndarray, ends: list) -> np.ndarray:
        """The statistic after each value (of bins ``bins``), the sums capped at the block
        ends ``ends``; the sums left as after the last value (as :meth:`CUSUM._path`, one
        row per arm)."""
        walks = self._walk(bins, self._sums)
        if ends and bool((walks[:, [e - 1 for e in ends]] > self._cap[:, None]).any()):
            at = [e for e in ends if bool((walks[:, e - 1] > self._cap).any())][0]
            sums = np.minimum(walks[:, at - 1], self._cap)
            rest = [e for e in ends if e > at]
            for start, end in zip([at] + rest, rest + [bins.size]):
                if start >= end:
                    continue
                walks[:, start:end] = self._walk(bins[start:end], sums)
                sums = walks[:, end - 1]
                if end in ends:
                    sums = np.minimum(sums, self._cap)
            self._sums = sums.copy()
        else:
            self._sums = walks[:, -1].copy()
        self._walks = walks  # for _position: which arm is highest where the statistic rises
        return walks.max(axis=0)

    def _walk(self, bins: np.ndarray, sums0: np.ndarray) -> np.ndarray:
        """Each arm's sum after each value of ``bins`` from ``sums0``, without caps:
        Lindley's recursion in closed form, in int64 (arms x values)."""
        walks = np.where(bins[None, :] == self._level[:, None], self._hit[:, None], self._miss[:, None])
        np.cumsum(walks, axis=1, out=walks)
        low = np.minimum.accumulate(walks, axis=1)
        np.minimum(low, -sums0[:, None], out=low)
        walks -= low
        return walks


calibration.KINDS[LevelCUSUM.KIND] = LevelCUSUM


def _arms(counts: np.ndarray, odds_ratio: float, window: int):
    """The arms of reference level counts ``counts`` (most frequent first): per arm its
    level (index), the increments of a value of its level and of another (``hit``,
    ``miss``) and its cap, in units of 1 / SCALE (int64 arrays, up then down per level)."""
    n = float(np.sum(counts))
    eligible = [i for i in range(min(len(counts), MAX_LEVELS)) if counts[i] >= MIN_COUNT]
    if len(counts) == 2:
        eligible = eligible[:1]  # the other's share is the complement: the same arms
    level, hit, miss, cap = [], [], [], []
    for i in eligible:
        p = float(counts[i]) / n
        for ratio in (odds_ratio, 1.0 / odds_ratio):
            q = ratio * p / (1.0 - p + ratio * p)
            up, down = math.log(q / p), math.log((1.0 - q) / (1.0 - p))
            level.append(i)
            hit.append(round(up * SCALE))
            miss.append(round(down * SCALE))
            # The arm's drift per value on a stationary stream, KL(p || q), times window;
            # at least CAP_FLOOR, far above any threshold (the run length between false
            # alarms assumes sums that are not capped below it).
            cap.append(round(max(-(p * up + (1.0 - p) * down) * window, CAP_FLOOR) * SCALE))
    as_ints = (np.array(x, dtype=np.int64) for x in (level, hit, miss, cap))
    return tuple(as_ints)
