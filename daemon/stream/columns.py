"""A model's data-drift tests: one column per watched feature, the prediction, the score
and the feature set, each with its tests, under the model's false-alarm contract.

Tests of a column (built from the :class:`~daemon.stream.reference.ReferenceSample`):

- a feature, the prediction or the score with two or more distinct reference values: the
  distribution tests of its type (``numeric_tests`` or ``categorical_tests``); a number's
  are by default PSI and KS (windows) and the CUSUM (:mod:`detectors.cusum`, a sequential
  test of its mean, value by value: a small shift is seen earlier), a category's
  chi-square (window) and the level CUSUM (:mod:`detectors.level_cusum`, a sequential test
  of each frequent level's share);
- one with a single distinct value (a constant): ``value_change``, a rate test of values
  different from it (it fires when the value changes); a feature missing in every
  reference event is a constant whose value is "missing": its ``value_change`` flags
  every present value (it fires when values appear);
- every feature: ``missing_rate``, a rate test of missing values (absent or null; the
  feature's PSI and chi-square leave them out: ``missing="ignore"``, so that a number's
  PSI and KS see the same windows and are calibrated on one simulated stream);
- every categorical feature and a categorical prediction (not constant): ``unseen_rate``,
  a rate test of levels the reference never had (the distribution tests leave those
  levels out: ``unseen="ignore"``, one signal, one test);
- the feature set (column ``<features>``): ``unknown_features``, a rate test of events
  carrying a feature the reference never had;
- the features together (column ``<all>``, unless ``reconstruction: off``):
  ``reconstruction``, how well each is reconstructed from the others
  (:mod:`detectors.reconstruction`: a change of their relation that leaves every feature's
  own distribution as it was): the numeric features, then categorical ones as indicators
  of their frequent levels (:func:`daemon.stream.encoding.reconstruction_encoding`). It needs at least two numeric features
  that are not constant; with fewer it is skipped, with the reason (``skipped``). Its
  per-feature contributions are in its detector's state (``/status``).

A feature without a test of its distribution is *untestable*: reported once with the
reason in words (``untestable``: /status, the ``driftd_untestable_features`` gauge),
never tested on noise, never a cause to rebuild the reference. That is one missing in
every reference event (only its values appearing are tested, by ``value_change``), a
categorical one whose reference values are nearly all levels seen once (an identifier:
:data:`MAX_SINGLETON_SHARE`; only its ``missing_rate`` is tested), one no distribution
test can be built for (too few values, say), or one whose tests' thresholds no window can
reach (see :meth:`DataTests.apply`). A test that cannot be
built or calibrated, or can never fire at the contract, is left out alone, with the
reason (``skipped``): the column's other tests are kept.

The contract (a weighted Bonferroni split): ``ert`` is the mean number of predictions
between false alarms of the model's data-drift tests together. Each column's values (its
distribution tests, a constant's ``value_change``, ``<all>``'s reconstruction) weigh 1,
shared equally between them; each rate test of something the reference says is rare
(``missing_rate``, ``unseen_rate``, ``unknown_features``) weighs :data:`RATE_WEIGHT`. A test of weight ``w``
out of a model total ``W`` gets ``ert * W / w``, so the false-alarm rates add up to at most
``1 / ert``. A column's value tests are calibrated jointly
(:func:`detectors.calibration.calibrate_union`, for the union of their alarms) where the
detectors offer it: PSI and KS simulated together; the CUSUM, calibrated exactly, gets its
equal share of the column's rate beside them (Bonferroni). Rate tests weigh less because
what they watch mostly never happens on a stationary stream (a feature that was never
missing): a full share would be budget spent on alarms that do not come, and their counts
need little of it to catch a real change (missing values going from none to some).

>>> from daemon.stream.reference import ReferenceSample
>>> sample = ReferenceSample(size=200, declared={}, max_features=10)
>>> for i in range(200):
...     sample.add({"amount": float(i % 37), "plan": "ab"[i % 2], "flag": 0}, prediction=i % 2, score=None)
>>> tests = DataTests(sample, ModelConfig(window=50, stride=10, ert=10_000), Counter())
>>> {name: sorted(column.tests) for name, column in tests.columns.items()}  # doctest: +NORMALIZE_WHITESPACE
{'amount': ['cusum', 'ks', 'missing_rate', 'psi'], 'plan': ['chisquare', 'cusum', 'missing_rate', 'unseen_rate'],
 'flag': ['missing_rate', 'value_change'], '<prediction>': ['chisquare', 'cusum', 'unseen_rate'],
 '<features>': ['unknown_features']}
>>> tests.calibrated, tests.total_weight   # thresholds come from the calibration worker
(False, 4.6)
>>> tests.skipped   # one numeric feature that is not constant: nothing to reconstruct it from
{('reconstruction', '<all>'): 'needs at least two numeric features that are not constant; the reference has 1 (amount)'}
>>> tests.ert_of("ks", "amount"), tests.ert_of("missing_rate", "amount")
(138000.0, 460000.0)
>>> tests.columns["amount"].tests["psi"].missing, tests.columns["<prediction>"].tests["chisquare"].missing
('ignore', 'count')
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from detectors import CUSUM, KS, PSI, ChiSquare, Detector, RateTest
from detectors.binning import CategoricalBins, KSSlots, QuantileBins, index_together
from detectors.level_cusum import LevelCUSUM
from detectors.reconstruction import Reconstruction

from daemon.config import ModelConfig
from daemon.stream.calibration_jobs import CalibrationJob
from daemon.stream.encoding import encode, encode_events, level_codes, level_counts, reconstruction_encoding
from daemon.stream.reference import PREDICTION, SCORE, ReferenceSample, feature_values, values_of

#: Column of the feature set (the unknown-features rate test).
FEATURES = "<features>"
#: Column of the features together (the reconstruction test).
ALL = "<all>"
#: Tests of how often something rare happens (the others test the values themselves).
RATE_TESTS = {"missing_rate", "unseen_rate", "unknown_features"}
#: A rate test's weight in the model's budget, where a column's values weigh 1.
RATE_WEIGHT = 0.1
#: Unknown feature names kept for /status, per model.
MAX_UNKNOWN_NAMES = 20
#: Unseen levels kept for /status, per categorical column (the first in stream order).
MAX_UNSEEN_LEVELS = 5
#: A categorical column whose reference values are at least this share levels seen once
#: is untestable: by Good-Turing a stationary stream brings levels the reference never
#: had at that rate, so its windows hold mostly values no test of levels can compare (an
#: identifier, or numbers typed categorical by a stray string).
MAX_SINGLETON_SHARE = 0.9
#: Tests whose bins depend on the set of reference values alone, not their order.
SORTED_REFERENCE = frozenset({"psi", "ks"})
#: Binnings of numbers by edges (PSI's, KS's): a batch is binned for all of them at once.
EDGE_BINNINGS = (QuantileBins, KSSlots)


@dataclass
class Column:
    """One watched column after the reference: its type, what the rate tests compare
    against, and its tests by name."""

    name: str
    kind: str
    constant: object = None  # the single reference value of a constant column (NaN: missing in all)
    levels: frozenset | None = None  # reference levels (categorical)
    features: tuple = ()  # column <all>: the columns reconstructed (a feature, or "feature=level") ...
    groups: tuple = ()  # ... the feature of each ...
    encoding: tuple = ()  # ... and how they are made (see daemon.stream.encoding)
    tests: dict[str, Detector] = field(default_factory=dict)


class DataTests:
    """The data-drift tests of one model version (see the module docs).

    ``schema`` is the caller's counter of schema events, ``(what, column) -> events``
    with ``what`` in missing, unseen, unknown: it outlives model versions.
    """

    def __init__(self, sample: ReferenceSample, config: ModelConfig, schema: Counter):
        self.config = config
        self.schema = schema
        self.columns: dict[str, Column] = {}
        self.untestable: dict[str, str] = {}
        self.skipped: dict[tuple[str, str], str] = {}
        self.known_names = frozenset(sample.names) if not sample.too_many_names else None
        self.unknown_names: list[str] = []
        #: Categorical column -> the first levels its reference never had (at most
        #: MAX_UNSEEN_LEVELS, in stream order), for /status: what its unseen_rate counts.
        self.unseen_levels: dict[str, list] = {}
        tests = {}  # column name -> [(test, values for the reference)]
        for ref in sample.columns():
            if ref.name == SCORE and (not config.watch_score or ref.n_present == 0):
                continue  # a model without scores has nothing to watch there
            column, planned = self._plan(ref, sample.n)
            if column is not None:
                self.columns[ref.name] = column
                tests[ref.name] = planned
        if config.reconstruction != "off":
            self._plan_reconstruction(sample, tests)
        if self.known_names is not None:
            self.columns[FEATURES] = Column(FEATURES, "flags")
            tests[FEATURES] = [("unknown_features", np.zeros(sample.n, dtype=bool))]
        else:
            self.untestable[FEATURES] = f"more than {len(sample.names)} distinct feature names in the reference"
        self._build(tests)

    # -- building ---------------------------------------------------------------------------
    def _plan(self, ref, n: int):
        """The column and its (test, reference values) list, or (None, None) if untestable."""
        feature = ref.name not in (PREDICTION, SCORE)
        if ref.n_present == 0:
            # A constant too: its one value is "missing" (NaN, which no value equals), and
            # its value_change test flags every present value, so values appearing are a
            # change. No distribution to test (reported, once) and no missing_rate (what
            # is always missing cannot go missing more often). Typed by its declaration,
            # else categorical: any value may come, a value of any type is fed as a level
            # and its type is not checked (no reference value said it).
            self.untestable[ref.name] = (f"missing in all {n} reference events; values appearing are tested "
                                         f"as a change (value_change)")
            column = Column(ref.name, "numeric" if ref.declared == "numeric" else "categorical", constant=math.nan)
            return column, [("value_change", np.zeros(n, dtype=bool))]
        values = ref.values()
        singletons = None
        if ref.kind == "numeric":
            missing = np.isnan(values)
            present = values[~missing]
            # Only a constant needs its distinct values (its one value); for any other
            # column two different values are enough.
            distinct = present[:2] if present.size and present.min() < present.max() else np.unique(present)
        else:
            # A column of strings (no number among its values) is counted from its codes.
            coded = (np.frombuffer(ref.codes, dtype=ref.codes.typecode), list(ref.levels)) if ref.numbers is None else None
            distinct, missing, singletons = level_counts(values, coded)
        column = Column(ref.name, ref.kind)
        planned = []
        n_present = len(values) - int(np.count_nonzero(missing))
        if singletons is not None and len(distinct) > 1 and singletons.sum() >= MAX_SINGLETON_SHARE * n_present:
            # Its levels are not tested (nor counted as unseen: nearly every value would be);
            # whether it goes missing still is.
            self.untestable[ref.name] = (
                f"{int(singletons.sum()):,} of its {n_present:,} present reference values are levels seen once "
                f"(an identifier, or numbers typed categorical?): a stationary window would hold mostly levels "
                f"the reference never had, so no test of its levels can work; declare it ignore under features: "
                f"to stop watching it, or numeric if its values are numbers")
            return column, [("missing_rate", missing)] if feature else []
        if len(distinct) == 1:
            column.constant = distinct[0].item() if ref.kind == "numeric" else distinct[0]
            planned.append(("value_change", np.zeros(len(values), dtype=bool)))
        else:
            kind_tests = self.config.numeric_tests if ref.kind == "numeric" else self.config.categorical_tests
            ordered = values
            if ref.kind == "numeric" and len(SORTED_REFERENCE & set(kind_tests)) > 1:
                # PSI's and KS's bins depend on the set of reference values alone, and each
                # sorts the present ones unless they come sorted: sorted once here for both.
                # (The CUSUM takes them in stream order: its slot means are sums in that order.)
                ordered = np.concatenate([np.sort(present), values[missing]])
            planned += [(test, ordered if test in SORTED_REFERENCE else values) for test in kind_tests]
        if feature:
            planned.append(("missing_rate", missing))
        if ref.kind == "categorical":
            column.levels = frozenset(distinct)  # unseen levels are counted ...
            if len(distinct) > 1:  # ... and tested (a constant's value_change sees them already)
                planned.append(("unseen_rate", singletons))
        return column, planned

    def _plan_reconstruction(self, sample: ReferenceSample, tests: dict) -> None:
        """Plan column <all>: the numeric features with two or more distinct present
        reference values (those a univariate test watches), then indicators of the
        categorical features' frequent levels (see :func:`reconstruction_encoding`), or say why it is
        skipped."""
        # By name, not by the order the events' keys came in: the regressions, their folds
        # and the simulation must not depend on how a producer ordered its JSON.
        numeric = sorted(name for name, column in self.columns.items()
                         if column.kind == "numeric" and column.constant is None and name not in (PREDICTION, SCORE))
        if len(numeric) < 2:
            self.skipped[("reconstruction", ALL)] = (
                f"needs at least two numeric features that are not constant; the reference has {len(numeric)}"
                + (f" ({', '.join(numeric)})" if numeric else ""))
            return
        categorical = {name: sample.column(name).values() for name, column in sorted(self.columns.items())
                       if column.kind == "categorical" and column.constant is None and name not in (PREDICTION, SCORE)
                       and name not in self.untestable}
        encoding = reconstruction_encoding(numeric, categorical)
        names = tuple(name if levels is None else f"{name}={lv}" for name, levels in encoding for lv in levels or [None])
        groups = tuple(name for name, levels in encoding for _ in levels or [None])
        reference = encode([None] * sample.n, encoding, {name: sample.column(name).values() for name, _ in encoding})
        self.columns[ALL] = Column(ALL, "multivariate", features=names, groups=groups, encoding=encoding)
        tests[ALL] = [("reconstruction", reference)]

    def _build(self, planned: dict) -> None:
        config = self.config
        for name, tests in planned.items():
            column = self.columns[name]
            reasons = []
            # Missing values are the missing_rate test's signal alone (one signal, one test).
            missing = "ignore" if any(test == "missing_rate" for test, _ in tests) else "count"
            for test, values in tests:
                try:
                    # The ERT here is provisional (calibration_jobs has the final one).
                    column.tests[test] = _make(test, values, column.kind, config, config.ert * 100, missing,
                                               column)
                except (ValueError, TypeError) as e:
                    self.skipped[(test, name)] = str(e)
                    reasons.append(f"{test}: {e}")
            ks, cusum = column.tests.get("ks"), column.tests.get("cusum")
            if ks is not None and _same_slots(ks, cusum):
                # One array for both (equal edges): half their memory, in memory and pickled.
                cusum.edges = ks.binning.edges
            if reasons and not set(column.tests) - RATE_TESTS and name != ALL:  # <all> is no feature
                # No test of the values themselves could be built: say why, once. (None
                # configured, as for a model watched for its accuracy only, is no problem.)
                self.untestable[name] = "; ".join(reasons)
            if not column.tests:
                del self.columns[name]
        # Fixed once: a restored model computing its thresholds later gets the same ones.
        self.weights = {(test, column.name): w for column in self.columns.values() for test, w in _weights(column.tests)}
        self.total_weight = float(sum(self.weights.values()))
        self._update_kinds()
        self._update_calibrated()

    def ert_of(self, test: str, column: str) -> float:
        """The ERT (values between false alarms) of one test alone under the contract."""
        return self.config.ert * self.total_weight / self.weights[(test, column)]

    # -- reading ----------------------------------------------------------------------------
    def detectors(self):
        """Every ((test, column), detector)."""
        for column in self.columns.values():
            for test, detector in column.tests.items():
                yield (test, column.name), detector

    def _update_kinds(self) -> None:
        #: Watched columns and their types (prediction and score included).
        self.kinds = {c.name: c.kind for c in self.columns.values() if c.name not in (FEATURES, ALL)}

    # -- feeding ----------------------------------------------------------------------------
    def update_many(self, features: list[dict], predictions: list | None, scores: list | None) -> None:
        """Feed one batch of (checked) predictions: their feature dicts, predictions and
        scores (numbers or None), in order; ``predictions`` and ``scores`` may be None when
        their column is not tested (not in ``columns``)."""
        special = (FEATURES, ALL, PREDICTION, SCORE)
        # feature -> its values in this batch, taken from the dicts once: all at once for
        # the reconstruction, which reads them all; else a column's just before it is fed,
        # so that one list of the batch's length is alive at a time, not one per feature
        # (the cyclic collector's young passes, many in a batch of many decisions, go over
        # every element of each such list).
        raws = feature_values(features, [n for n in self.columns if n not in special]) if ALL in self.columns else None
        for column in self.columns.values():
            name = column.name
            if name == FEATURES:
                column.tests["unknown_features"].update_many(self._unknown(features))
            elif name == ALL:
                column.tests["reconstruction"].update_many(encode_events(features, column.encoding, raws))
            elif name == PREDICTION:
                self._feed_column(column, predictions)
            elif name == SCORE:
                self._feed_column(column, scores)
            else:
                self._feed_column(column, raws[name] if raws is not None else values_of(features, name))

    def _feed_column(self, column: Column, raw: list) -> None:
        codes = levels = None
        if column.kind == "numeric":
            values = np.array(raw, dtype=np.float64)  # None is NaN: missing
            missing = np.isnan(values)
            changed = ~missing & (values != column.constant) if column.constant is not None else None
            unseen = None
        else:
            # Per distinct value, not per value: the batch's levels, each value's among them.
            codes, levels = level_codes(raw)
            missing = np.array([v is None for v in levels], dtype=bool)[codes]
            constant, known = column.constant, column.levels
            changed = None if constant is None else np.array(
                [v is not None and v != constant for v in levels], dtype=bool)[codes]
            unseen = None if known is None else np.array(
                [v is not None and v not in known for v in levels], dtype=bool)[codes]
            values = None  # the levels value by value, made only for a test that bins them itself
        if column.name != PREDICTION and (n_missing := int(np.count_nonzero(missing))):
            self.schema[("missing", column.name)] += n_missing
        if unseen is not None and (n_unseen := int(np.count_nonzero(unseen))):
            self.schema[("unseen", column.name)] += n_unseen
            self._name_unseen(column.name, levels, known)
        slots = None  # the KS test's bins of the values, when the CUSUM can take them
        bins = None  # test -> its bins, for the tests binning numbers by edges (found together)
        for test, detector in column.tests.items():
            if test == "missing_rate":
                detector.update_many(missing)
            elif test == "unseen_rate":
                detector.update_many(unseen)
            elif test == "value_change":
                detector.update_many(changed)
            elif codes is None and isinstance(getattr(detector, "binning", None), EDGE_BINNINGS):
                if bins is None:
                    edged = {t: d.binning for t, d in column.tests.items()
                             if isinstance(getattr(d, "binning", None), EDGE_BINNINGS)}
                    bins = dict(zip(edged, index_together(list(edged.values()), values)))
                if test == "ks" and _same_slots(detector, column.tests.get("cusum")):
                    slots = bins[test]  # the CUSUM's too
                detector.update_bins(bins[test])
            elif test == "cusum" and slots is not None:
                detector.update_slots(slots, missing)
            elif codes is None:
                detector.update_many(values)
            elif isinstance(getattr(detector, "binning", None), CategoricalBins):
                detector.update_bins(detector.binning.index_levels(levels)[codes])  # binned once per level
            else:
                if values is None:
                    values = [levels[c] for c in codes.tolist()]
                detector.update_many(values)

    def _name_unseen(self, column: str, levels: list, known: frozenset) -> None:
        """Keep the batch's first unseen levels (``levels``: its distinct values in order
        of first appearance) while the column has room."""
        named = getattr(self, "unseen_levels", None)
        if named is None:  # a state saved before levels were named
            named = self.unseen_levels = {}
        kept = named.setdefault(column, [])
        for v in levels:
            if len(kept) >= MAX_UNSEEN_LEVELS:
                break
            if v is not None and v not in known and v not in kept:
                kept.append(v)

    def _unknown(self, features: list[dict]) -> np.ndarray:
        known = self.known_names
        if known.issuperset(set().union(*features)):  # the usual batch (all its names at once)
            return np.zeros(len(features), dtype=bool)
        flags = ~np.fromiter(map(known.issuperset, features), dtype=bool, count=len(features))
        n = int(flags.sum())
        if n:
            self.schema[("unknown", FEATURES)] += n
            if len(self.unknown_names) < MAX_UNKNOWN_NAMES:
                for f, flag in zip(features, flags):
                    if flag:
                        for name in f:
                            if name not in known and name not in self.unknown_names and len(self.unknown_names) < MAX_UNKNOWN_NAMES:
                                self.unknown_names.append(name)
        return flags

    # -- calibration ------------------------------------------------------------------------
    def calibration_jobs(self) -> list[CalibrationJob]:
        """A job per column whose tests wait for thresholds."""
        jobs = []
        for column in self.columns.values():
            waiting = [(t, d) for t, d in column.tests.items() if not d.calibrated]
            if waiting:
                values = [t for t in column.tests if t not in RATE_TESTS]
                joint = self.config.ert * self.total_weight if len(values) > 1 else None
                union = tuple(i for i, (t, _) in enumerate(waiting) if t not in RATE_TESTS) if joint else ()
                jobs.append(CalibrationJob(column.name, tuple(t for t, _ in waiting),
                                           tuple(d.null_model() for _, d in waiting),
                                           tuple(self.ert_of(t, column.name) for t, _ in waiting), joint, union))
        return jobs

    def apply(self, job: CalibrationJob, thresholds: list | None, error: str | None) -> None:
        """Set the thresholds computed for ``job`` (held tests are then decided in order).
        ``thresholds``: one entry per test of ``job`` (see :func:`~daemon.stream.calibration_jobs.thresholds_of`), a
        (threshold, warning) pair or a str, that test's calibration error; ``error``: the
        whole job's (``thresholds`` None). A test that failed, or whose threshold no
        window can reach, is dropped alone, with the reason in ``skipped``; a column left
        without a test of its values is *untestable* (the reasons joined), without any
        test it is dropped."""
        column = self.columns.get(job.column)
        if column is None:
            return
        dropped = False
        for i, test in enumerate(job.tests):
            detector = column.tests.get(test)
            if detector is None or detector.calibrated:
                continue
            entry = None if error is not None else thresholds[i]
            if entry is None:
                why = f"calibration failed: {error}"
            elif isinstance(entry, str):
                why = f"calibration failed: {entry}"
            else:
                threshold, warning = entry
                reachable = detector.max_statistic()
                if threshold < reachable:
                    detector.set_thresholds(threshold, warning)
                    continue
                # (An infinite threshold: none keeps the false alarms that rare; CUSUM's
                # exact_thresholds says so of a reference too small for the contract.)
                found = (f"its threshold {threshold:.4g} is above the largest statistic a window can reach "
                         f"({reachable:.4g})" if math.isfinite(threshold) else
                         f"no threshold keeps its false alarms that rare (the largest statistic a window can "
                         f"reach is {reachable:.4g})")
                why = (f"can never fire at this contract: {found}; a larger reference_size or window, or a "
                       f"smaller ert, would make it testable")
            # Its held decisions would all be clean: nothing is lost with it.
            del column.tests[test]
            self.skipped[(test, job.column)] = why
            dropped = True
        if dropped and job.column != ALL and not set(column.tests) - RATE_TESTS:
            # No test of its values is left (as when none could be built): why, once. (<all>
            # is no feature: its test's reason is in skipped.)
            self.untestable[job.column] = "; ".join(f"{t}: {why}" for (t, c), why in self.skipped.items()
                                                    if c == job.column)
        if not column.tests:
            del self.columns[job.column]
            self._update_kinds()
        self._update_calibrated()

    def _update_calibrated(self) -> None:
        #: Whether every test has its thresholds (kept, not computed per read: the loop asks often).
        self.calibrated = all(d.calibrated for _, d in self.detectors())


def _same_slots(ks, cusum) -> bool:
    """Whether the CUSUM of a column can take its KS test's bins as its slots: both made
    :class:`~detectors.binning.KSSlots` of the same present reference values with the
    same ``n_slots`` (the defaults: one column's tests), so the same edges; checked, not
    assumed (a few microseconds a batch). Shared only when KS comes before the CUSUM in
    ``numeric_tests`` (the default order); either way each detector sees the same values."""
    if cusum is None:
        return False
    edges = cusum.edges
    return edges is ks.binning.edges or (edges.shape == ks.binning.edges.shape
                                          and bool(np.array_equal(edges, ks.binning.edges)))


def _weights(tests: dict):
    """(test, weight) of a column's tests (see the module docs)."""
    values = [t for t in tests if t not in RATE_TESTS]
    for test in tests:
        yield test, RATE_WEIGHT if test in RATE_TESTS else 1.0 / len(values)


def _make(test: str, values, kind: str, config: ModelConfig, ert: float, missing: str = "count",
          column: Column | None = None) -> Detector:
    """The detector of ``test``; ``missing`` ("ignore" when the column has a missing_rate
    test) is given to PSI and chi-square, so that a numeric PSI sees KS's windows;
    ``column`` names a reconstruction's columns and their features."""
    common = dict(window=config.window, stride=config.stride, ert=ert, defer_calibration=True)
    if test == "reconstruction":
        return Reconstruction(values, names=column.features, groups=column.groups, **common)
    if test in RATE_TESTS or test == "value_change":
        return RateTest(values, **common)
    if test == "ks":
        return KS(values, **common)
    if test == "cusum":
        return CUSUM(values, **common) if kind == "numeric" else LevelCUSUM(values, **common)
    # Levels the reference never had are the unseen_rate test's signal alone: the
    # distribution tests compare the reference's levels only (one signal, one test). (The
    # level CUSUM counts them as values of no tracked level: a share of all values, or a
    # long tail's unseen ids would raise every tracked share.)
    if test == "psi":
        if kind == "numeric":
            return PSI(values, missing=missing, **common)
        return PSI(values, categorical=True, unseen="ignore", missing=missing, **common)
    if test == "chisquare":
        return ChiSquare(values, unseen="ignore", missing=missing, **common)
    raise ValueError(f"unknown test {test!r}")
