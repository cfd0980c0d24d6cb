"""Two-sided CUSUM: a sequential test of a shift of a numeric column's mean, value by value.

The windowed tests (PSI, KS) compare the last ``window`` values with the reference every
``stride`` values: a small shift of the mean is seen only once a good part of the window
has moved. Page's CUSUM (Page, 1954) accumulates the evidence of each value as it comes
and is, for a shift of the size it is tuned to, the fastest detector for its false-alarm
rate (Lorden, 1971: no procedure with the same mean run length between false alarms
``ARL`` has a shorter worst-case mean delay, ``ln(ARL) / KL`` asymptotically, ``KL =
shift**2 / 2`` in reference standard deviations). It complements them: PSI and KS see a
change of shape, the CUSUM a small change of the mean early.

**Values.** The reference's present values are grouped into the slots of
:class:`~detectors.binning.KSSlots` (those of the KS test: every distinct value when
there are at most ``n_slots``, else ``n_slots`` quantile slots), and each slot is
represented by the mean of the reference values in it; a slot the reference left empty
(between two reference values, or beyond its extremes) by the middle of its neighbours'
(the nearest one's beyond the extremes). A value counts as its slot's representative,
standardised by the reference: ``z = (r - mean) / sd``, mean and (plain) standard
deviation of the reference's representatives. So a value far beyond the reference counts
as the reference's extreme slot (heavy tails cannot make one value an alarm), and the
statistic is a function of slot counts only: its null is computed exactly in that space.
Missing values (None, NaN) are left out (the column's missing-rate test has them).

**Statistic.** With ``k = shift / 2`` (``shift`` in reference standard deviations,
default :data:`SHIFT`): ``S+ = max(0, S+ + z - k)`` and ``S- = max(0, S- - z - k)``,
``statistic = max(S+, S-)`` (two one-sided CUSUMs). Sums are kept in fixed point
(``z`` in units of ``1 / SCALE``, int64), so the path is exact: the same values give the
same statistics whatever the batch sizes. Every ``stride`` present values (a *block*)
the sums are capped at ``k * window`` (after a long drift the statistic comes back down
within about ``window`` values, as a windowed test forgets) and the block is decided:
drift if the statistic passed the threshold ``h`` in it. An entry into drift is decided
at the value that passed ``h`` (``Decision.at``: no waiting for the block's end); each
block's end gives a decision too (still in drift or not; the warning). A drift that
stays is one detection. Memory: the slot edges, representatives and reference counts
(about 3 KB at 128 slots; 3.8 KB pickled), two sums and a few counters; not mergeable (the sums depend on the order of the
values, so two partitions' CUSUMs do not make the whole stream's).

**Calibration** (``ert``: values between false alarms on a stationary stream, pooled over
references; ``exact_thresholds``, no simulation of the path). As the windowed tests do
(:mod:`detectors.calibration`), the stream's slot probabilities are drawn from their
posterior given the reference counts, Dirichlet with Jeffreys' prior on the slots the
reference filled (:data:`N_DRAWS` draws, seeded): the reference's own luck (its mean is
off by about ``sd / sqrt(n)``, and the CUSUM is sensitive to that) is most of the false
alarms. For each draw and each side, the run length to an alarm from 0 is Siegmund's
(1985) corrected diffusion approximation for a random walk with increments ``y``
(:mod:`detectors.arl`)::

    ARL(h) = (exp(t b) - t b - 1) / (t |E y|),   b = h + 2 * 0.583 * sd(y)

where ``t != 0`` solves ``log E exp(t y) = 0`` exactly for the drawn distribution of
``y`` (``0.583 sd``: the Gaussian walk's mean overshoot). False alarms come once per run
(after one the statistic returns to 0 before it can enter again), so the rate is ``1 /
ARL+ + 1 / ARL-``, averaged over the draws; ``h`` is the level where that average is
``1 / ert`` (the warning: ``WARNING_FACTOR / ert``). tests/test_cusum.py checks it
against simulated streams (observed/asked, pooled over references: about 1 for normal
values; 0.5 to 0.9 for skewed or integer values, whose jumps overshoot ``h`` by more than
a Gaussian walk's, so the approximation errs towards fewer false alarms; about 0.2 for a
value the reference saw only a few times, one occurrence a jump of some 20 sd). Cost: 0.003
to 0.007 s of CPU per column (500 draws, a few Newton steps each); the null depends on
the representatives, so columns share a calibration only when identical.

**Choices.** Per value rather than per block of ``stride`` values: the path costs a few
vectorised passes per batch either way, and a block's CUSUM would place every detection
at a block's end (+50 values on average at stride 100). A CUSUM tuned to one shift
rather than a GLR or mixture CUSUM over unknown shifts: it keeps two numbers instead of
a window of values, and its run length has a closed form. The price: near the optimum
for :data:`SHIFT` and larger shifts (a delay of about ``h / (shift' - k)``: 1 sigma, ~50
values at the default contract), about 1.7 times it at half :data:`SHIFT`, and shifts
below ``k`` are left to KS and PSI, which see them once their window has moved. The reference's plain
standard deviation of the slot representatives (not a robust one): it is the scale the
calibration uses, and the representatives already bound the tails.

Errors: ValueError for a bad ``window``, ``stride``, ``shift`` or ``ert``, a reference
with fewer than 20 present values or without spread (one slot), infinite or non-numeric
values. Sources: E. S. Page, "Continuous inspection schemes", Biometrika 41 (1954); G.
Lorden, "Procedures for reacting to a change in distribution", Ann. Math. Statist. 42
(1971); D. Siegmund, *Sequential Analysis: Tests and Confidence Intervals*, Springer
(1985), ch. X (the corrected diffusion approximation, ``0.583``); D. B. Rubin, "The
Bayesian bootstrap", Ann. Statist. 9 (1981).

The column's value tests share its weight in the model's contract
(:mod:`daemon.stream.columns`): the CUSUM gets its share, Bonferroni with the union of
PSI and KS (it is calibrated exactly, they are simulated together).

>>> import numpy as np
>>> rng = np.random.default_rng(3)
>>> cusum = CUSUM(rng.normal(size=5000), window=1000, stride=100, ert=1e8)
>>> round(cusum.threshold, 1)
33.6
>>> cusum.update_many(rng.normal(size=3000))
>>> cusum.drift, cusum.n_detections
(False, 0)
>>> cusum.update_many(rng.normal(loc=0.5, size=500))   # the mean moves half a sd
>>> cusum.drift, 3000 < cusum.last_detection_at < 3300
(True, True)
>>> [(d.at, d.drift) for d in cusum.pop_decisions() if 3000 < d.at <= 3300]   # an entry, blocks' ends
[(3100, False), (3129, True), (3200, True), (3300, True)]
"""

from __future__ import annotations

import math

import numpy as np

from . import arl, calibration
from .base import DecisionRun, DeferredThresholds, new_decision
from .binning import KSSlots, index_together, numeric_array

#: Default shift to detect, in reference standard deviations (the reference value ``k``
#: is half of it).
SHIFT = 0.5
#: Fixed point of the sums: ``z`` in units of 1 / SCALE.
SCALE = 2 ** 20
#: Posterior draws of the stream's slot probabilities per calibration.
N_DRAWS = 500
#: Part of the null model's key: bumped when the statistic or its calibration changes.
VERSION = 1


class CUSUM(DeferredThresholds):
    """Two-sided CUSUM of the standardised values of a numeric column (see the module
    docs). Give ``threshold`` (on the statistic, in reference standard deviations) or
    ``ert`` (values between false alarms; ``defer_calibration``: see
    :mod:`detectors.windowed`, which this follows: decisions held until
    :meth:`set_thresholds`, then decided in order). ``window`` bounds how long a past
    drift is remembered, ``stride`` is the block between two decisions. ValueError on a
    bad setting or a reference without spread. An ``ert`` no threshold reaches (a small
    reference, see :meth:`exact_thresholds`) gives ``threshold`` inf, a test that never
    fires; a threshold at or above :meth:`max_statistic` can never fire either.
    """

    KIND = "cusum"

    def __init__(
        self,
        reference,
        window: int = 1000,
        stride: int | None = None,
        threshold: float | None = None,
        ert: float | None = None,
        shift: float = SHIFT,
        warning_threshold: float | None = None,
        calibration_seed: int = 0,
        defer_calibration: bool = False,
        n_slots: int = 128,
    ):
        window, stride = self._checked_settings(window, stride, threshold, ert)
        if not (isinstance(shift, (int, float)) and 0 < shift < 100):
            raise ValueError(f"shift must be a number of standard deviations above 0, got {shift!r}")
        self.window, self.stride, self.ert = int(window), int(stride), ert
        self.shift = float(shift)
        self.calibration_seed = int(calibration_seed)
        self.n_slots = n_slots
        ref = numeric_array(reference, "reference")
        present = ref[~np.isnan(ref)]
        slots = KSSlots(present, n_slots)
        self.edges = np.asarray(slots.edges, dtype=np.float64)
        n_slots_used = self.edges.size + 1
        # Each value's slot (searchsorted(self.edges, present, side="right")), found over
        # the sorted values: a search in stream order mispredicts its branches, ~3x slower.
        idx = index_together([slots], present)[0]
        counts = np.bincount(idx, minlength=n_slots_used)
        reps = _representatives(np.bincount(idx, weights=present, minlength=n_slots_used), counts)
        n = counts.sum()
        mean = float(counts @ reps) / n
        sd = math.sqrt(float(counts @ (reps - mean) ** 2) / n)
        if not sd > 0 or not math.isfinite(sd):
            raise ValueError("cusum: the reference values have no spread (a constant column has value_change)")
        self.mean, self.sd = mean, sd
        #: Each slot's standardised representative, in units of 1 / SCALE.
        self.z = np.round((reps - mean) / sd * SCALE).astype(np.int64)
        self.reference_counts = counts.astype(np.int32)
        self._k = int(round(self.shift / 2 * SCALE))
        self._cap = self._k * self.window
        self._init_thresholds(threshold, warning_threshold, ert, defer_calibration)
        self.reset()

    # -- calibration ------------------------------------------------------------------------
    def null_model(self) -> calibration.NullModel:
        """What the statistic's null depends on: slot counts and representatives, the
        shift, window and stride (give it to :func:`detectors.calibration.calibrate`)."""
        return calibration.NullModel(
            self.KIND, tuple(int(c) for c in self.reference_counts), self.window, self.stride,
            (("shift", self.shift), ("version", VERSION), ("z", tuple(int(v) for v in self.z))),
            self.calibration_seed)

    def max_statistic(self) -> float:
        """The largest statistic reachable: the cap plus a block of the most extreme
        values (a threshold above it is a test that can never fire)."""
        return _max_statistic(self.z, self._k, self.window, self.stride)

    @staticmethod
    def exact_thresholds(null_model, rates) -> list[float]:
        """The threshold ``h`` (in reference standard deviations) whose false alarms come
        ``rate`` times per value, for each of ``rates`` (per value, each above 0; see the
        module docs): a list of floats, one per rate, in order.

        A rate no threshold up to ``max(1e7, largest reachable statistic)`` brings the
        false alarms down to gives ``inf``: a test that can never fire (a small
        reference whose posterior draws include streams drifting away from its mean
        needs ``h`` of the order of ``ert`` times that drift). The threshold is then far
        above :meth:`max_statistic` in any case, so a caller comparing the two (as
        :mod:`daemon.stream.columns` does) skips the test alone, with that reason, instead
        of losing the calibration of the column's other tests to an error."""
        params = dict(null_model.params)
        counts = np.asarray(null_model.counts, dtype=np.float64)
        filled = counts > 0
        z = np.asarray(params["z"], dtype=np.float64)[filled] / SCALE
        k = round(params["shift"] / 2 * SCALE) / SCALE
        rng = np.random.default_rng([int(null_model.seed), VERSION, 7])
        p = rng.standard_gamma(counts[filled] + calibration.PRIOR, out=arl.scratch("p", (N_DRAWS, int(filled.sum()))))
        p /= p.sum(axis=1, keepdims=True)
        sides = [arl.LogARL(*arl.walk_root(p, z - k)), arl.LogARL(*arl.walk_root(p, -z - k))]
        # Past this the threshold is above any statistic the capped sums can reach: the
        # search stops there (1e7: where it always stopped; the reachable maximum only
        # matters for a window or stride so large that it exceeds that).
        search_limit = max(1e7, _max_statistic(np.asarray(params["z"], dtype=np.int64), round(params["shift"] / 2 * SCALE),
                                               null_model.window, null_model.stride))
        return arl.threshold_search(lambda h: sum(np.exp(-side(h)) for side in sides), rates, search_limit)

    def set_thresholds(self, threshold: float, warning_threshold: float | None = None) -> None:
        """Set the threshold (and the warning threshold, unless one was given), then decide
        the blocks held meanwhile, in order, and the current block's values so far."""
        super().set_thresholds(threshold, warning_threshold)
        if self._rec_pos:
            self._enter_at_first(self._block_max, np.concatenate(self._rec_pos), np.concatenate(self._rec_val))
        self._rec_pos, self._rec_val = [], []

    def _decide_held(self, at: int, top: int, positions: np.ndarray, values: np.ndarray) -> None:
        self._enter_at_first(top, positions, values)
        self._judge(at, top)

    # -- state ------------------------------------------------------------------------------
    def reset(self) -> None:
        self._up = 0
        self._down = 0
        self._in_block = 0
        self._block_max = -1
        self._rec_pos: list = []  # while uncalibrated: where the block's running maximum rose ...
        self._rec_val: list = []  # ... and to what
        self._reset_decisions()

    @property
    def statistic(self) -> float | None:
        """The statistic of the last decision (the block's largest, or the value that
        entered drift), in reference standard deviations."""
        return self._statistic_value

    @property
    def value(self) -> float:
        """The statistic now, ``max(S+, S-)``, in reference standard deviations."""
        return max(self._up, self._down) / SCALE

    @property
    def n_missing(self) -> int:
        return self.n_skipped

    # -- feeding ----------------------------------------------------------------------------
    def update(self, x) -> None:
        self.update_many([x])

    def update_many(self, xs) -> None:
        x = numeric_array(xs, "value")  # None as NaN; ValueError for infinities, non-numbers
        slots = np.searchsorted(self.edges, x, side="right")
        self.update_slots(slots, np.isnan(x))

    def update_slots(self, slots: np.ndarray, missing: np.ndarray) -> None:
        """Feed values already put in their slots: ``slots``, an integer array of shape
        (values,), each ``np.searchsorted(self.edges, x, side="right")`` of its value
        (anything where missing), and ``missing``, bool of the same shape, True for a
        missing value. ``update_many(xs)`` is exactly that; a caller that has the slots
        already (the KS test of the same column: :class:`~detectors.binning.KSSlots` of
        the same reference, the same edges) saves finding them again. Unchecked."""
        n = slots.size
        if n == 0:
            return
        kept = None
        if missing.any():
            kept = np.flatnonzero(~missing)
            self.n_skipped += n - kept.size
            slots = slots[kept]
        first = self.n_seen + 1
        self.n_seen += n
        if slots.size == 0:
            return
        # Pieces of blocks: up to each block's end within the batch, then what is left.
        m = slots.size
        ends = list(range(self.stride - self._in_block, m + 1, self.stride))
        stat = self._path(slots, ends)
        starts = [0] + [e for e in ends if e < m]
        bounds = starts[1:] + [m]
        if len(starts) <= 3:
            tops = [int(stat[a:b].max()) for a, b in zip(starts, bounds)]
        else:
            tops = np.maximum.reduceat(stat, starts).tolist()
        if self._threshold is not None and not self.drift and max(tops) <= self._threshold * SCALE:
            self._close_quiet_blocks(ends, tops, bounds[-1] - starts[-1], kept, first)
            return
        for start, end, top in zip(starts, bounds, tops):
            self._piece(stat, start, end, top, kept, first)
            self._in_block += end - start
            if self._in_block == self.stride:
                self._close_block(first + (end - 1 if kept is None else int(kept[end - 1])))

    def _close_quiet_blocks(self, ends: list, tops: list, last_piece: int, kept, first: int) -> None:
        """What the pieces of a batch say when none enters drift and the detector is not in
        drift (the usual batch, calibrated): the blocks ending at ``ends`` (indices just past
        their last value) decided without drift, as one run of decisions (no call nor
        object per block); the last piece (``last_piece`` values, largest statistic
        ``tops[-1]``) left open if it does not end a block. ``tops``: each piece's largest
        statistic, the first piece continuing the open block."""
        n = len(ends)
        if n:
            block_tops = tops[:n]
            block_tops[0] = max(block_tops[0], self._block_max)
            if kept is None:
                ats = [first + end - 1 for end in ends]
            else:
                ats = (kept[[end - 1 for end in ends]] + first).tolist()
            warning = self.warning_threshold
            if warning is None:
                warnings = [False] * n
            else:
                limit = warning * SCALE
                warnings = [top > limit for top in block_tops]
            statistics = [top / SCALE for top in block_tops]
            self.n_tests += n
            self.warning = warnings[-1]
            self._statistic_value = statistics[-1]
            self._decide_run(DecisionRun(ats, [False] * n, warnings, statistics, self._threshold, None))
            self._in_block, self._block_max = 0, -1
        if n < len(tops):  # a piece left open: its values count in the next block
            self._in_block += last_piece
            self._block_max = max(self._block_max, tops[-1])

    def _path(self, slots: np.ndarray, ends: list) -> np.ndarray:
        """The statistic after each value (of slots ``slots``), the sums capped at the block ends
        ``ends`` (indices just past a block's last value); the sums are left as after the
        last value. Lindley's recursion in closed form, ``S_i = C_i - min(-S_0, min_{j <=
        i} C_j)``, exactly, in int64: over the whole batch at once while no cap binds (a
        stationary stream), block by block from the first that does (a drift)."""
        z = self.z[slots]
        cap = self._cap
        up, down = self._walk(z, self._up, self._down)
        stat = np.maximum(up, down)
        binding = []
        if ends and int(stat.max()) > cap:
            binding = [i for i, e in enumerate(ends) if up[e - 1] > cap or down[e - 1] > cap]
        if not binding:
            self._up, self._down = int(up[-1]), int(down[-1])
            return stat
        first = ends[binding[0]]
        s_up, s_down = min(int(up[first - 1]), cap), min(int(down[first - 1]), cap)
        rest = ends[binding[0] + 1:]
        for start, end in zip([first] + rest, rest + [z.size]):
            if start >= end:
                continue
            up, down = self._walk(z[start:end], s_up, s_down)
            stat[start:end] = np.maximum(up, down)
            s_up, s_down = int(up[-1]), int(down[-1])
            if end in ends:  # a block's end: capped
                s_up, s_down = min(s_up, cap), min(s_down, cap)
        self._up, self._down = s_up, s_down
        return stat

    def _walk(self, z: np.ndarray, up0: int, down0: int):
        """S+ and S- after each value of ``z`` from ``up0`` and ``down0``, without caps."""
        walks = np.empty((2, z.size), dtype=np.int64)
        np.subtract(z, self._k, out=walks[0])
        np.subtract(-self._k, z, out=walks[1])
        np.cumsum(walks, axis=1, out=walks)
        low = np.minimum.accumulate(walks, axis=1)
        np.minimum(low, np.array([[-up0], [-down0]], dtype=np.int64), out=low)
        walks -= low
        return walks[0], walks[1]

    def _piece(self, stat: np.ndarray, start: int, end: int, top: int, kept, first: int) -> None:
        """Decide what values ``start:end`` of the batch (one piece of a block, its
        largest statistic ``top``) say: an entry into drift, or, while uncalibrated, where
        the block's running maximum rose (given any threshold later, the first of those
        points above it is where the block entered drift)."""
        if self._threshold is not None:
            if not self.drift and top > self._threshold * SCALE:
                i = start + int(np.argmax(stat[start:end] > self._threshold * SCALE))
                self._enter(self._position(i, kept, first), int(stat[i]))
        elif top > self._block_max:
            piece = stat[start:end]
            running = np.maximum.accumulate(piece)
            rose = np.flatnonzero(piece > np.concatenate([[self._block_max], running[:-1]]))
            self._rec_pos.append(np.array([self._position(start + int(i), kept, first) for i in rose], dtype=np.int64))
            self._rec_val.append(piece[rose])
        self._block_max = max(self._block_max, top)

    def _position(self, i: int, kept, first: int) -> int:
        """The stream position of the batch's ``i``-th present value (called for each
        candidate entry into drift: a hook for the level CUSUM, which notes there which
        level moved)."""
        return first + (i if kept is None else int(kept[i]))

    def _close_block(self, at: int) -> None:
        top = self._block_max
        self._in_block, self._block_max = 0, -1
        if self._threshold is None:
            positions = np.concatenate(self._rec_pos) if self._rec_pos else np.zeros(0, dtype=np.int64)
            values = np.concatenate(self._rec_val) if self._rec_val else np.zeros(0, dtype=np.int64)
            self._held.append((at, top, positions, values))
            self._rec_pos, self._rec_val = [], []
        else:
            self._judge(at, top)

    def _enter_at_first(self, top: int, positions: np.ndarray, values: np.ndarray) -> None:
        if not self.drift and top > self._threshold * SCALE:
            i = int(np.argmax(values > self._threshold * SCALE))
            self._enter(int(positions[i]), int(values[i]))

    def _enter(self, at: int, stat: int) -> None:
        self.drift, self.warning = True, False
        self.n_tests += 1
        self.n_detections += 1
        self.last_detection_at = at
        self._statistic_value = stat / SCALE
        self._decide(self._entry(at, stat))

    def _entry(self, at: int, stat: int):
        """The decision of an entry into drift at position ``at``, statistic ``stat``."""
        return new_decision(at, True, False, stat / SCALE, self._threshold, None)

    def _judge(self, at: int, top: int) -> None:
        """Decide a block (value ``at`` completed it; ``top`` its largest statistic)."""
        self.n_tests += 1
        self.drift = bool(top > self._threshold * SCALE)
        self.warning = bool(not self.drift and self.warning_threshold is not None
                            and top > self.warning_threshold * SCALE)
        self._statistic_value = top / SCALE
        self._decide(new_decision(at, self.drift, self.warning, top / SCALE, self._threshold, None))


calibration.KINDS[CUSUM.KIND] = CUSUM


def _max_statistic(z: np.ndarray, k: int, window: int, stride: int) -> float:
    """The largest statistic a CUSUM of standardised representatives ``z`` (int64, in
    units of 1 / SCALE), reference value ``k`` (same units), ``window`` and ``stride``
    can reach, in standard deviations: the cap ``k * window`` plus a block of the most
    extreme values."""
    top = int(np.max(np.abs(z))) + int(k)
    return (int(k) * int(window) + int(stride) * top) / SCALE


def _representatives(sums: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Each slot's mean reference value; an empty slot the middle of its nearest filled
    neighbours' (the one neighbour's beyond the extremes)."""
    filled = np.flatnonzero(counts > 0)
    reps = np.zeros(counts.size)
    reps[filled] = sums[filled] / counts[filled]
    slots = np.arange(counts.size)
    after = np.searchsorted(filled, slots)  # first filled slot at or after each
    right = filled[np.minimum(after, filled.size - 1)]
    left = filled[np.maximum(np.searchsorted(filled, slots, side="right") - 1, 0)]
    empty = counts == 0
    reps[empty] = (reps[left[empty]] + reps[right[empty]]) / 2
    return reps
