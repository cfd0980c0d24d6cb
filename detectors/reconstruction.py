"""Masked-feature reconstruction drift: has the relation between features changed?

A change can leave every feature's own distribution as it was and still break the model:
two features whose correlation flips sign, a ratio that no longer holds. Univariate tests
(PSI, KS, chi-square) cannot see it. This test learns, on the reference, to reconstruct
each feature from the others, and tests whether windows of the stream are reconstructed
as well as the reference was.

**Model.** Each feature is first mapped to normal scores through the reference's own
distribution (``z = Phi^-1(F(x))``, ``F`` the reference's mid-rank distribution function,
kept at :data:`MAX_KNOTS` points and interpolated): heavy tails and outliers do not
dominate, ties are fine, and any value maps to a bounded score (within the reference's
extreme scores), so one wild value cannot trip the test alone. Then, per feature ``j``,
a least-squares regression (numpy's linear algebra, a negligible ridge for collinear
features) of ``z_j`` on every other feature's score and an intercept: the *masked*
reconstruction of ``j`` (the feature is hidden and predicted from the rest; for Gaussian
scores, the conditional mean ``E[z_j | z_-j]``). A
missing value enters the other features' reconstructions at the median (score 0) and
leaves its own out. The error of a row is the mean, over its present features, of the
squared residual divided by that feature's mean squared residual on held-out reference
rows: about 1 on a stationary stream. Columns are numbers: the caller encodes a
categorical feature (the daemon: indicators of its frequent levels, ``groups`` naming the
feature they come from).

Why masked regressions rather than PCA with ``k`` components (NannyML's data
reconstruction drift): there is no ``k`` to choose (a relation that lives in the
discarded components is invisible to PCA), every feature is reconstructed from all the
others, and a row's error splits into per-feature errors that name the features whose
relation changed (:attr:`Reconstruction.contributions`). The cost is ``d`` regressions
of ``d - 1`` features on the reference, then one ``(rows, d) @ (d, d)`` product per batch.

**Statistic.** The mean row error over the last ``window`` rows (rows with no present
feature are left out and counted in ``n_skipped``), tested every ``stride`` rows, as the
windowed tests of :mod:`detectors.windowed` are (the same positions whatever the batch
sizes; a decision's ``at`` is the number of the row, among all fed, that completed it).
``statistic > threshold`` is drift; a detection is an entry into drift.

**Calibration** (``ert=``: rows between false alarms on a stationary stream). The
reference is split in :data:`FOLDS` folds; each fold's rows are scored and reconstructed
by a model (score tables and regressions) fitted on the other folds (cross-fitting), so
their errors are out-of-sample errors, as the stream's will be (the live model is fitted on
the whole reference, which makes it slightly better: a large error comes a little more
rarely than simulated, not more often). :meth:`Reconstruction.null_model` carries those
row errors (at most :data:`MAX_NULL_ROWS` of them; no raw value);
:func:`detectors.calibration.calibrate` simulates stationary streams from them by the
Bayesian bootstrap (Rubin, 1981: each simulated run draws weights on the held-out rows
from a flat Dirichlet, then its rows from those weights, so the reference's own luck is
in the simulation; drawn as the Polya urn that is the same distribution of runs without
the weights, :func:`~detectors.reconstruction_null.urn_rows`), computes every window's mean as the live test does, and
takes the lowest level crossed upwards no more often than once every ``ert`` rows
(:func:`~detectors.calibration.level_for_rate`; beyond what the simulation sees, the
crossing rate's tail is extrapolated as exponential, which is conservative for a window
mean of bounded errors, whose tail is lighter). As with the other tests, calibration can
be deferred (``defer_calibration=True``): tests run and hold their decisions until
:meth:`Reconstruction.set_thresholds`, which decides them in order.

Sources: NannyML's "data reconstruction drift" (PCA reconstruction error of chunks against
the reference's, nannyml.DataReconstructionDriftCalculator); masked and denoising
reconstruction as self-supervision (Vincent et al., "Extracting and composing robust
features with denoising autoencoders", ICML 2008; Devlin et al., BERT, 2019); regression
of each variable on the others as the conditional structure of a Gaussian (Dempster,
"Covariance selection", Biometrics 1972); the Bayesian bootstrap (Rubin, Annals of
Statistics 1981); its Polya urn (D. Blackwell and J. B. MacQueen, "Ferguson distributions
via Polya urn schemes", Annals of Statistics 1973).

>>> import numpy as np
>>> rng = np.random.default_rng(3)
>>> def pairs(n, rho):   # two standard normals with correlation rho
...     a, b = rng.normal(size=(2, n))
...     return np.column_stack([a, rho * a + np.sqrt(1 - rho ** 2) * b])
>>> test = Reconstruction(pairs(5000, 0.8), names=("x", "y"), window=500, stride=100, ert=1_000_000)
>>> test.update_many(pairs(1000, 0.8))
>>> test.drift, test.n_tests
(False, 6)
>>> test.update_many(pairs(500, -0.8))      # same marginals, the relation flipped
>>> test.drift, test.statistic > 5 * test.threshold
(True, True)
>>> sorted(test.contributions) == ["x", "y"], round(sum(test.contributions.values()), 6)
(True, 1.0)
"""

from __future__ import annotations

import hashlib
import math
import weakref
from dataclasses import dataclass

import numpy as np
from scipy import special

from . import calibration, reconstruction_null
from .base import Decision, DeferredThresholds, DetectorState
from .reconstruction_null import ReconstructionNull

#: Folds of the cross-fitting that gives the reference's out-of-sample errors.
FOLDS = 5
#: Points of a feature's reference distribution function kept (unique values beyond are thinned).
MAX_KNOTS = 256
#: Ridge of the regressions, relative to the normal equations' mean diagonal.
RIDGE = 1e-9
#: Reference rows whose errors the null keeps at most (a seeded random subset beyond): the
#: simulation's cost grows with them, and a subset only makes it a little more cautious.
MAX_NULL_ROWS = 20_000
#: Floor of a feature's held-out mean squared residual (a feature that is an exact
#: function of the others): its errors stay finite.
MIN_ERROR = 1e-12
#: Bumped when the statistic changes (cached calibrations are not reused). It seeds the
#: cross-fitting's folds too: bumping it changes every test's error scale.
VERSION = 1


@dataclass(frozen=True)
class ReconstructionState(DetectorState):
    """:class:`~detectors.base.DetectorState` plus ``contributions``: feature name -> its
    share (0..1, summing to 1) of the last tested window's error, or None before a test.
    A feature's error is the mean over its columns (a categorical feature's indicators) of
    their errors relative to the reference's: about equal shares on a stationary stream."""

    contributions: dict | None = None


class Reconstruction(DeferredThresholds):
    """Masked-feature reconstruction drift of rows of ``d >= 2`` numeric features (see the
    module docs).

    ``reference``: shape ``(rows, d)``, NaN for a missing value. ``names``: the ``d``
    column names (default ``"0"``, ``"1"``...). ``groups``: for each column, the feature
    it encodes (default: its name; one-hot columns of a categorical feature share its
    name), the keys of :attr:`contributions`, which averages a feature's columns.
    ``window`` and ``stride`` in rows (stride defaults to window: tumbling). Give
    ``threshold`` (on the mean row error, about 1 on a stationary stream) or ``ert`` (rows
    between false alarms); ``warning_threshold`` defaults to the threshold for an
    ``ert`` :data:`~detectors.calibration.WARNING_FACTOR` times shorter.

    ValueError: fewer than 2 features, a feature with fewer than 2 distinct present
    reference values, fewer than ``max(20, 2 * (d + 1))`` reference rows with a present
    value, a bad window or stride, or not exactly one of ``threshold`` and ``ert``.
    """

    KIND = "reconstruction"
    #: The crossing rate's tail, extrapolated as ``log rate ~ -level`` (see the module docs).
    TAIL_POWER = 1

    def __init__(
        self,
        reference,
        window: int = 1000,
        stride: int | None = None,
        threshold: float | None = None,
        ert: float | None = None,
        names=None,
        warning_threshold: float | None = None,
        calibration_seed: int = 0,
        defer_calibration: bool = False,
        groups=None,
    ):
        x = np.asarray(reference, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] < 2:
            raise ValueError(f"reconstruction needs rows of at least 2 features, got shape {x.shape}")
        d = x.shape[1]
        self.names = tuple(str(i) for i in range(d)) if names is None else tuple(str(n) for n in names)
        self.groups = self.names if groups is None else tuple(str(g) for g in groups)
        if len(self.names) != d or len(self.groups) != d:
            raise ValueError(f"{len(self.names)} names and {len(self.groups)} groups for {d} columns")
        self.window, self.stride = self._checked_settings(window, stride, threshold, ert)
        self.ert = ert
        self.calibration_seed = int(calibration_seed)
        rows = x[~np.all(np.isnan(x), axis=1)]
        least = max(20, 2 * (d + 1))
        if rows.shape[0] < least:
            raise ValueError(f"reconstruction of {d} features needs at least {least} reference rows "
                             f"with a present value, got {rows.shape[0]}")
        # Each feature's present values sorted once: the whole reference's table and every
        # fold's (a fold's sorted values are the sorted values of its rows) come from them.
        columns = np.ascontiguousarray(rows.T)
        orders = [_present_order(values) for values in columns]
        ordered = [values[order] for values, order in zip(columns, orders)]
        self._tables = [_shared(_sorted_table(values)) for values in ordered]
        for (knots, _), name in zip(self._tables, self.names):
            if knots.size < 2:
                raise ValueError(f"feature {name!r} has fewer than 2 distinct present reference values")
        self._null_errors = self._fit(rows, orders, ordered)
        self._init_thresholds(threshold, warning_threshold, ert, defer_calibration)
        self.reset()

    # -- the model --------------------------------------------------------------------------
    def _scores(self, x: np.ndarray, tables=None) -> tuple[np.ndarray, np.ndarray]:
        """Normal scores (shape of ``x``; 0 where missing) through ``tables`` (default:
        the whole reference's) and the presence mask."""
        present = ~np.isnan(x)
        z = np.empty_like(x)
        for j, (knots, scores) in enumerate(self._tables if tables is None else tables):
            z[:, j] = np.interp(x[:, j], knots, scores)
        z[~present] = 0.0
        return z, present

    def _fit(self, x: np.ndarray, orders: list, ordered: list) -> np.ndarray:
        """Fit the live model (score tables and regressions) on every reference row; the
        per-feature error scales and the row errors (the null) on cross-fitted folds, each
        fold's rows scored and reconstructed by a model (tables too: the live rows are
        not in the reference's distribution function either) fitted on the other folds.
        ``orders``: each column's present rows in increasing order (:func:`_present_order`);
        ``ordered``: its present values in that order."""
        n, d = x.shape
        folds = np.random.default_rng([self.calibration_seed, VERSION]).permutation(n) % FOLDS
        present = ~np.isnan(x)
        residuals = np.zeros_like(x)
        for k in range(FOLDS):
            held = folds == k
            tables = [_sorted_table(values[folds[order] != k]) for values, order in zip(ordered, orders)]
            tables = [t if t[0].size else (np.zeros(1), np.zeros(1)) for t in tables]  # a fold without the feature
            # Every row scored once through the fold's tables, then split.
            z = _ordered_scores(tables, orders, ordered, n)
            coef, intercept = _regressions(z[~held], present[~held])
            z = z[held]
            residuals[held] = z - (z @ coef + intercept)
        residuals[~present] = 0.0
        scale = (residuals ** 2).sum(axis=0) / np.maximum(present.sum(axis=0), 1)
        self._scale = np.maximum(scale, MIN_ERROR)
        self._coef, self._intercept = _regressions(_ordered_scores(self._tables, orders, ordered, n), present)
        errors = self._row_errors(residuals ** 2 / self._scale, present)[0]
        if errors.size > MAX_NULL_ROWS:
            rng = np.random.default_rng([self.calibration_seed, VERSION, 1])
            errors = errors[np.sort(rng.choice(errors.size, MAX_NULL_ROWS, replace=False))]
        return errors

    @staticmethod
    def _row_errors(normalized: np.ndarray, present: np.ndarray):
        """Per row: the mean normalized squared residual over present features, and each
        feature's part of it (shape (rows, d), summing to the row's error)."""
        counts = present.sum(axis=1, keepdims=True).astype(np.float64)
        parts = np.where(present, normalized, 0.0) / counts
        return parts.sum(axis=1), parts

    def errors(self, rows) -> tuple[np.ndarray, np.ndarray]:
        """Row errors (shape ``(m,)``; NaN for a row with no present feature) and their
        per-feature parts (shape ``(m, d)``) of ``rows`` (shape ``(m, d)``, NaN: missing)."""
        x = np.asarray(rows, dtype=np.float64).reshape(-1, len(self.names))
        z, present = self._scores(x)
        # Not ``z @ coef``: BLAS sums a row's products in an order that depends on how many
        # rows the batch has, and the last bit of a statistic must not depend on batching.
        residuals = z - (np.einsum("ij,jk->ik", z, self._coef, optimize=False) + self._intercept)
        with np.errstate(invalid="ignore", divide="ignore"):
            return self._row_errors(residuals ** 2 / self._scale, present)

    # -- calibration ------------------------------------------------------------------------
    def null_model(self) -> ReconstructionNull:
        """What the test's null depends on: give it to :func:`detectors.calibration.calibrate`.
        Kept until the test is calibrated (``ert=`` in the constructor, or
        :meth:`set_thresholds`), then released (its row errors are the largest part of the
        test's state): ValueError after that. A test given ``threshold=`` keeps it."""
        if self._null_errors is None:
            raise ValueError("the test is calibrated: its null was released")
        return ReconstructionNull(self._null_errors, self.window, self.stride, self.calibration_seed, VERSION)

    @classmethod
    def exact_thresholds(cls, null: ReconstructionNull, rates) -> list[float]:
        """The levels whose up-crossings come at most at each of ``rates`` (per row), by
        simulation (see the module docs); :func:`detectors.calibration.calibrate` calls
        this for every kind that has it. ValueError if too few crossings were seen to
        extrapolate."""
        # (N_TESTS read here, not imported: it is part of the null's key.)
        starts, ends, n_values, top = reconstruction_null.simulate(null, reconstruction_null.N_TESTS)
        if ends.size == 0:
            return [top for _ in rates]  # the statistic never moves: any change is a change
        return [calibration.level_for_rate(starts, ends, n_values, rate, cls.TAIL_POWER) for rate in rates]

    def max_statistic(self) -> float:
        """An upper bound of any window's statistic (scores are bounded by the reference's
        extreme ones): a threshold above it is a test that can never fire."""
        bound = np.array([np.max(np.abs(scores)) for _, scores in self._tables])
        # |residual_j| <= |intercept_j| + sum_k |A_kj| * bound_k, with A = I - coef.
        a = np.abs(np.eye(len(bound)) - self._coef)
        worst = (np.abs(self._intercept) + bound @ a) ** 2 / self._scale
        return float(worst.max())

    def _thresholds_set(self) -> None:
        self._null_errors = None  # calibrated: the null is not needed any more

    # -- state ------------------------------------------------------------------------------
    def reset(self) -> None:
        d = len(self.names)
        self._ring = np.zeros(self.window, dtype=np.float64)  # row errors
        # The per-feature parts, summed by blocks of ``block`` rows (every tested window is
        # made of whole blocks: it starts and ends at multiples of gcd(window, stride) rows),
        # the last ``window / block`` blocks in a ring, the current one in ``_open``.
        self._block = math.gcd(self.window, self.stride)
        self._blocks = np.zeros((self.window // self._block, d))
        self._open = np.zeros(d)
        self._in_open = 0
        self._blocks_head = 0
        self._head = 0
        self._filled = 0
        self._until_test = self.window
        self._contributions = None
        self._reset_decisions()

    @property
    def statistic(self) -> float | None:
        """The last tested window's mean row error (about 1 on a stationary stream)."""
        return self._statistic_value

    @property
    def contributions(self) -> dict | None:
        """Feature (group) -> its share of the last tested window's error (see
        :class:`ReconstructionState`)."""
        return self._contributions

    def state(self) -> ReconstructionState:
        return ReconstructionState(**vars(super().state()), contributions=self._contributions)

    # -- feeding ----------------------------------------------------------------------------
    def update(self, x) -> None:
        """Feed one row (``d`` numbers, NaN or None for a missing value)."""
        self.update_many([x])

    def update_many(self, xs) -> None:
        """Feed rows, shape ``(m, d)`` (NaN or None: missing), in order."""
        rows = np.array(xs, dtype=np.float64).reshape(-1, len(self.names))
        errors, parts = self.errors(rows)
        kept = np.flatnonzero(~np.isnan(errors))
        self.n_skipped += rows.shape[0] - kept.size
        seen_before = self.n_seen
        self.n_seen += rows.shape[0]
        start = 0
        while start < kept.size:
            end = min(kept.size, start + self._until_test)
            self._push(errors[kept[start:end]], parts[kept[start:end]])
            self._until_test -= end - start
            start = end
            if self._until_test == 0:
                self._run_test(seen_before + 1 + int(kept[end - 1]))
                self._until_test = self.stride

    def _push(self, errors: np.ndarray, parts: np.ndarray) -> None:
        slots = (self._head + np.arange(errors.size)) % self.window
        self._ring[slots] = errors
        self._head = (self._head + errors.size) % self.window
        self._filled = min(self.window, self._filled + errors.size)
        self._add_parts(parts)

    def _add_parts(self, parts: np.ndarray) -> None:
        start = 0
        while start < len(parts):
            end = min(len(parts), start + self._block - self._in_open)
            # A running sum row after row (cumsum is sequential): the same block sums
            # whatever the batches.
            self._open = np.cumsum(np.vstack([self._open, parts[start:end]]), axis=0)[-1]
            self._in_open += end - start
            start = end
            if self._in_open == self._block:
                self._blocks[self._blocks_head] = self._open
                self._blocks_head = (self._blocks_head + 1) % len(self._blocks)
                self._open = np.zeros(len(self.names))
                self._in_open = 0

    def __setstate__(self, state: dict) -> None:
        parts = state.pop("_parts", None)
        state["_tables"] = [_shared(table) for table in state["_tables"]]
        self.__dict__.update(state)
        if parts is not None:  # saved with a ring of every row's parts: summed into blocks
            self._parts_to_blocks(parts.astype(np.float64))

    def _parts_to_blocks(self, parts: np.ndarray) -> None:
        d, kept = len(self.names), self.n_seen - self.n_skipped
        rows = np.roll(parts, -self._head, axis=0)[self.window - self._filled:]  # oldest first
        self._block = math.gcd(self.window, self.stride)
        self._blocks = np.zeros((self.window // self._block, d))
        self._open, self._in_open, self._blocks_head = np.zeros(d), 0, 0
        skip = (kept - rows.shape[0]) % self._block  # rows before the ring, in its first block
        if skip:
            rows = rows[self._block - skip:]
        self._add_parts(rows)

    def _run_test(self, at: int) -> None:
        stat = float(self._ring.mean())  # the ring is full at every test
        # A feature's error is the mean of its columns' (each about 1 on a stationary
        # stream), not their sum: a categorical feature's several indicators would
        # otherwise outweigh a numeric feature's one column.
        totals, widths = dict.fromkeys(self.groups, 0.0), dict.fromkeys(self.groups, 0)
        for group, total in zip(self.groups, self._blocks.sum(axis=0).tolist()):
            totals[group] += total
            widths[group] += 1
        means = {group: totals[group] / widths[group] for group in totals}
        whole = sum(means.values())
        parts = {group: (mean / whole if whole > 0 else 1.0 / len(means)) for group, mean in means.items()}
        self._statistic_value, self._contributions = stat, parts
        self._judge_or_hold(at, stat, parts)

    def _judge(self, at: int, stat: float, parts: dict) -> None:
        self.n_tests += 1
        was = self.drift
        self.drift = bool(stat > self._threshold)
        if self.drift and not was:
            self.n_detections += 1
            self.last_detection_at = at
        self.warning = bool(not self.drift and self.warning_threshold is not None and stat > self.warning_threshold)
        self._decide(Decision(at=at, drift=self.drift, warning=self.warning, statistic=stat,
                              threshold=self._threshold, p_value=None))


calibration.KINDS[Reconstruction.KIND] = Reconstruction


def _present_order(values: np.ndarray) -> np.ndarray:
    """Positions of the present (not NaN) ``values`` in increasing order of value (equal
    values in any order: they get equal scores, and a fold's sorted values are the same
    whichever of them it holds)."""
    order = np.argsort(values)
    return order[: int(np.count_nonzero(~np.isnan(values)))]  # NaN sorts last


def _ordered_scores(tables, orders: list, ordered: list, n: int) -> np.ndarray:
    """Normal scores of ``n`` reference rows through ``tables`` (shape (n, columns), C
    order; 0 where missing), as :meth:`Reconstruction._scores` gives them, from each
    column's present values in increasing order (``ordered``, at rows ``orders``): looked
    up in that order, the same numbers several times faster (``np.interp`` searches each
    value's knot from the previous one's)."""
    z = np.zeros((len(tables), n))
    for row, (knots, scores), order, values in zip(z, tables, orders, ordered):
        row[order] = np.interp(values, knots, scores)
    return np.ascontiguousarray(z.T)


def _sorted_table(present: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(knots, normal scores) of a feature's present reference values, given sorted: its
    distinct values (thinned to :data:`MAX_KNOTS`, first and last kept) and ``Phi^-1`` of
    their mid-rank distribution function, ``(below + equal / 2) / n``. The distinct
    values and their counts as ``np.unique`` finds them, without sorting again."""
    if present.size == 0:
        return present, present
    first = np.empty(present.size, dtype=bool)
    first[0] = True
    np.not_equal(present[1:], present[:-1], out=first[1:])
    starts = np.flatnonzero(first)
    knots = present[starts]
    counts = np.diff(np.r_[starts, present.size])
    below = np.cumsum(counts) - counts
    u = (below + counts / 2.0) / present.size
    if knots.size > MAX_KNOTS:
        keep = np.unique(np.round(np.linspace(0, knots.size - 1, MAX_KNOTS)).astype(np.intp))
        knots, u = knots[keep], u[keep]
    return knots, special.ndtri(u)


#: Score arrays of the live tables, by content: features without ties in references of one
#: size have the same scores (``Phi^-1`` of the same mid-ranks), whatever their values, so
#: the features of every model share one array (weakly held: gone with the last user).
_scores_by_content: weakref.WeakValueDictionary = weakref.WeakValueDictionary()


def _shared(table: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """``table`` (knots, scores) with its scores replaced by an equal array already in use,
    if any (read-only: shared). Memory only: the values are the same."""
    knots, scores = table
    data = np.ascontiguousarray(scores, dtype=np.float64).tobytes()
    key = hashlib.blake2b(data, digest_size=16).digest()
    found = _scores_by_content.get(key)
    if found is not None and found.tobytes() == data:
        return knots, found
    scores = np.array(scores, dtype=np.float64)
    scores.flags.writeable = False
    _scores_by_content[key] = scores
    return knots, scores


def _regressions(z: np.ndarray, present: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Masked reconstructions of every feature: ``coef`` (d, d; column j the weights of
    the other features' scores, 0 on the diagonal) and ``intercept`` (d,), fitted by least
    squares on the rows where feature j is present, with a ridge of :data:`RIDGE` times the
    mean diagonal of the normal equations (so that collinear features, one the copy of
    another, still give one answer). For the features present in every row, one inverse
    of the normal equations gives every regression at once (``beta_j = -P[others, j] /
    P[j, j]``, ``P`` that inverse: the regression of j on the others, by the inverse of a
    partitioned matrix); the others each solve their own."""
    n, d = z.shape
    design = np.column_stack([z, np.ones(n)])
    gram_all = design.T @ design
    ridge = RIDGE * max(float(np.trace(gram_all)) / (d + 1), 1.0)
    coef = np.zeros((d, d))
    intercept = np.zeros(d)
    inverse = None
    # The normal equations of the rows where a feature is present were most of the fit's
    # cost: made once per presence pattern (the indicators of one categorical feature are
    # missing together), as the whole reference's less those of the rows where it is
    # missing when they are fewer (a missing value is rare), and as ``subset.T @ subset``
    # of one array, which numpy gives BLAS as a symmetric product (several times cheaper
    # than a general one of two copies). Equal to the plain sum but in the last bits.
    grams: dict = {}
    for j in range(d):
        rows = present[:, j]
        if not rows.any():
            continue
        others = [k for k in range(d + 1) if k != j]
        if rows.all():
            if inverse is None:
                inverse = np.linalg.inv(gram_all + ridge * np.eye(d + 1))
            solution = -inverse[others, j] / inverse[j, j]
        else:
            pattern = rows.tobytes()
            gram = grams.get(pattern)
            if gram is None:
                absent = ~rows
                if 2 * int(np.count_nonzero(absent)) < n:
                    subset = design[absent]
                    gram = gram_all - subset.T @ subset
                else:
                    subset = design[rows]
                    gram = subset.T @ subset
                gram = grams[pattern] = gram + ridge * np.eye(d + 1)
            solution = np.linalg.solve(gram[np.ix_(others, others)], gram[others, j])
        coef[others[:-1], j] = solution[:-1]
        intercept[j] = solution[-1]
    return coef, intercept
