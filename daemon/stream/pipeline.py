"""One model's detectors, fed with its predictions and joined labels.

Data side: the first ``reference_size`` predictions of the model (of each
``model_version`` when ``reference_per_version``) are collected as columns
(:mod:`daemon.stream.reference`); when the reference is complete the model's columns and their
tests are built (:mod:`daemon.stream.columns`), with thresholds left to the calibration worker
(:mod:`daemon.runtime.calibrator`): the tests run meanwhile and hold their decisions, decided in
order once the thresholds are set. Label side: joined labels feed the error-stream
detector (concept drift) and the performance-decay tests, whose baseline is the first
``decay_reference_size`` labelled events of the version. Those events also fit the
version's estimated performance (:mod:`daemon.stream.estimation`), which then estimates
every later prediction before its label comes (an earlier version's estimate goes on
while its labelled reference may still complete: :mod:`daemon.stream.estimates`).

Every decision a detector takes becomes an :class:`~daemon.stream.decisions.Observation`: the
event time and source offset of the value that completed the test, in stream order
(:meth:`ModelPipeline.pop_observations`). Alerts are made from those, so they are a
function of the input stream alone.

>>> from types import SimpleNamespace as Event
>>> from daemon.runtime.calibrator import calibrate_now
>>> pipeline = ModelPipeline("fraud", ModelConfig(reference_size=200, window=50, stride=10, ert=10_000))
>>> events = [Event(features={"amount": float(i % 37)}, prediction=i % 2, score=None,
...                 model_version=None, ts=1.7e9 + i) for i in range(300)]
>>> pipeline.observe_predictions(events)      # the reference, then 100 values: tests held
>>> pipeline.features, pipeline.uncalibrated == len(pipeline.data_detectors), pipeline.pop_observations()
({'amount': 'numeric', '<prediction>': 'categorical'}, True, [])
>>> calibrate_now(pipeline)                   # the daemon's worker does this off the loop
3
>>> held = pipeline.pop_observations()        # the held tests, decided in order
>>> first = next(o for o in held if o.detector == "psi")
>>> first.detector, first.drift, first.position, first.offset, first.event_time
('psi', False, 50, 249, 1700000249.0)
"""

from __future__ import annotations

import bisect
import json
import logging
import math
import operator
from collections import Counter
from dataclasses import dataclass

from daemon.runtime import allocator
from daemon.stream import reference as ref
from daemon.stream.calibration_jobs import CalibrationJob, calibrate_jobs_now
from daemon.stream.columns import DataTests
from daemon.config import ModelConfig
from daemon.stream.decisions import (LazyDetail, Observation, SourceLog, add_counts, data_observations, observation,
                                     renewed)
from daemon.stream.estimates import Estimates
from daemon.stream.estimation import ModelEstimation
from daemon.stream.eventchecks import check_label, check_prediction
from daemon.stream.labelchecks import LabelChecks
from daemon.stream.labels import ERROR, LabelTests
from daemon.stream.learning import Learning, build_lifecycle
from daemon.stream.pipeline_state import PipelineState
from daemon.stream.scores import score_values
from daemon.stream.versions import MAX_ERAS, epoch_of_payload
from detectors.base import DecisionRun

log = logging.getLogger("driftd.stream.pipeline")

#: Column names of the prediction and its score (watched like features).
PREDICTION, SCORE = ref.PREDICTION, ref.SCORE
# LazyDetail: saved states (an observation's deferred detail) name it here.
__all__ = ["ERROR", "LazyDetail", "PREDICTION", "SCORE", "ModelPipeline"]


@dataclass
class _Watch:
    """One model version's data tests and the sources of the values fed to them."""

    build: int
    version: str | None
    tests: DataTests
    sources: SourceLog


class ModelPipeline(PipelineState):
    """Detectors of one model (in one partition)."""

    def __init__(self, name: str, config: ModelConfig):
        self.name = name
        self.config = config
        self.version: str | None = None
        self.version_changes = 0
        self.version_returns = 0  # versions back before the next completed its reference
        self.builds = 0  # data-test builds so far: names a build in calibration jobs
        self.epoch = 0  # model versions started so far
        self.predictions_seen = 0  # of every version: a prediction's index in the model's stream
        # Counted over the model's life, not per version (they are exported counters).
        self.schema: Counter = Counter()  # ("missing" | "unseen" | "unknown", column) -> events
        self.n_unwatched = 0  # feature names beyond max_features in the last reference
        self.observations: list[Observation] = []
        self.watch: _Watch | None = None
        self.retired: list[_Watch] = []  # of earlier versions, still waiting for thresholds
        #: (test, column) -> [detections, tests] of the model's detectors of earlier versions,
        #: gone: the exported counters go on from them (:meth:`counts_before`).
        self.ended_counts: dict[tuple, list] = {}
        self._asked: set = set()  # builds whose calibration jobs were handed out
        # Learners outlive model versions: they learn the world, not the deployed model.
        declared = {feature: kind == "numeric" for feature, kind in config.features.items() if kind != "ignore"}
        self.learning = Learning(build_lifecycle(config, f"models.{name}.learners"), model=name,
                                 kinds=declared) if config.learners else None
        self.label_checks = LabelChecks()
        self._start_version(None)

    @property
    def _positive_key(self) -> str | None:
        """positive_label as a score mapping's key (JSON object keys are strings: 1 is "1",
        true "true"), or None where the reference of this version was collected with the
        highest probability of every mapping (a state saved before: until its next version)."""
        if not self.__dict__.get("binary_scores_by_positive", True):
            return None
        positive = self.config.positive_label
        return positive if isinstance(positive, str) else json.dumps(positive)

    def _start_version(self, version: str | None, since: float = -math.inf) -> None:
        if self.watch is not None:
            # The tests this version had end their alert episodes at the next version's
            # build (:meth:`_end_earlier_episodes`).
            self._earlier_tests = {key for key, _ in self.watch.tests.detectors()}
            self._earlier_version = self.watch.version
            if not self.watch.tests.calibrated:
                self.retired.append(self.watch)  # its held tests are still decided, in order
            else:
                self._count_ended(self.watch.tests.detectors())
        self.version = version
        self.binary_scores_by_positive = True  # (a new reference: see _positive_key)
        self.epoch += 1  # names this version's label tests in calibration jobs
        self.n_predictions = 0  # of this version
        self.reference = ref.ReferenceSample(self.config.reference_size, self.config.features, self.config.max_features)
        self.watch = None
        #: (epoch, version, event time of its first prediction, its index in the model's
        #: stream) of the versions in the order their predictions came, those a label may
        #: still need (the label side follows them: daemon.stream.versions).
        self.versions = self.__dict__.get("versions") or []
        self._forget_eras()
        self.versions.append((self.epoch, version, since, self.__dict__.get("predictions_seen", 0)))
        if "labels" not in self.__dict__:
            self._start_labels(self.epoch, version)  # later ones start with their labels (observe_labels)
        estimates = self.__dict__.get("estimates")
        if estimates is None:
            self.estimates = Estimates(self.config, version, self.epoch)
        else:
            estimates.start(self.epoch, version)  # the earlier estimate is kept while it may say something
            self.observations.extend(estimates.drain())

    def _forget_eras(self) -> None:
        """Forget the eras no late label can go to any more: those before the label side's
        and the earliest kept estimate's (a label of an era before both goes to no test,
        known or not), so that which are known is told by the labels alone; but the last
        RECENT_ERAS are kept (a prediction saved without its index is placed by time among
        them). At most MAX_ERAS - 1 are kept, beyond which the reading order decides
        (warned once). Eras are in epoch order: a cut of the list's head, not a pass over it
        (a canary starts a version with nearly every prediction)."""
        eras = self.versions
        if not eras:
            return
        earlier = self.estimates.earlier  # (in epoch order: kept as they started)
        oldest = min(self.labels_epoch, next(iter(earlier), self.labels_epoch))
        cut = min(bisect.bisect_left(eras, oldest, key=_EPOCH), max(0, len(eras) - RECENT_ERAS))
        if len(eras) - cut >= MAX_ERAS:
            cut = len(eras) - MAX_ERAS + 1
            if not self.__dict__.get("eras_overflowed"):
                self.eras_overflowed = True
                log.warning("model %s: more than %d model versions started before their labels came: the oldest "
                            "are forgotten, and which of their late labels still count depends on how far the "
                            "predictions were read. Two versions' predictions interleaved? Give a canary its own "
                            "model name", self.name, MAX_ERAS, extra={"model": self.name})
        del eras[:cut]

    @property
    def lifecycle(self):
        """The model's learners (:class:`~learners.lifecycle.ChampionChallenger`), or None."""
        return self.learning.lifecycle if self.learning is not None else None

    @property
    def pending_promotions(self) -> list[tuple]:
        """(promotion, event time) the daemon is to publish."""
        return self.learning.promotions if self.learning is not None else []

    @property
    def learning_errors(self) -> int:
        """Labelled events a learner could not take."""
        return self.learning.errors if self.learning is not None else 0

    @property
    def estimation(self) -> ModelEstimation:
        """The current version's estimated performance."""
        return self.estimates.current

    def _start_labels(self, epoch: int, version: str | None, ts: float = 0.0, offset: int = 0) -> None:
        """The label side moves to ``version``: at the first labelled event of it (its
        label's event time ``ts`` and ``offset``), in label order, not when its first
        prediction comes (labels of the version before, still coming, count for it until
        then, whichever topic was read ahead). The earlier version's label tests end
        their alert episodes there, as the data tests do at a new reference."""
        labels = self.__dict__.get("labels")
        if labels is not None and labels.waiting:
            # Rare (a new version within a calibration's time): decide the held label
            # tests now, so that their alerts and the learners' signals do not depend on
            # how long calibration takes.
            labels.calibrate_now()
            self._drain_labels()
        self.labels = LabelTests(self.config, version)
        self.labels_epoch = epoch
        if labels is not None:
            self._count_ended(labels.detectors.items())
            kept = set(self.labels.detectors)
            self.observations.extend(observation(name, feature, None, ts, offset, "labels", 0, renewed(
                (name, feature) in kept, version, "label tests start, against its own labelled reference,",
                labels.version))
                for name, feature in sorted(labels.detectors))

    # -- reading ----------------------------------------------------------------------------
    @property
    def reference_complete(self) -> bool:
        return self.watch is not None

    @property
    def label_detectors(self) -> dict:
        """(name, "<error>" or metric) -> detector of the current version: the label
        tests, and the estimated performance's decay test (``estimated_decay``)."""
        return {**self.labels.detectors, **self.estimation.detectors}

    @property
    def data_detectors(self) -> dict:
        """(test, column) -> detector of the current version."""
        return dict(self.watch.tests.detectors()) if self.watch else {}

    @property
    def features(self) -> dict[str, str]:
        """Watched columns and their types (once the reference is complete)."""
        return self.watch.tests.kinds if self.watch else {}

    @property
    def untestable(self) -> dict[str, str]:
        """Columns no test watches, with the reason in words."""
        return dict(self.watch.tests.untestable) if self.watch else {}

    @property
    def skipped(self) -> dict[tuple[str, str], str]:
        """Tests that could not be built, with the reason."""
        skipped = {**(self.watch.tests.skipped if self.watch else {}), **self.labels.skipped}
        if self.estimation.enabled and self.estimation.skipped:
            skipped[("estimated_decay", self.estimation.metric)] = self.estimation.skipped
        return skipped

    @property
    def unknown_features(self) -> list[str]:
        """Names of features the reference did not have (the first few seen)."""
        return list(self.watch.tests.unknown_names) if self.watch else []

    @property
    def unseen_levels(self) -> dict[str, list]:
        """Categorical column -> the first levels its reference did not have (a few each)."""
        return {c: list(v) for c, v in getattr(self.watch.tests, "unseen_levels", {}).items()} if self.watch else {}

    def detectors(self):
        """Every (detector name, feature, detector) of the model."""
        for (name, feature), detector in (self.watch.tests.detectors() if self.watch else ()):
            yield name, feature, detector
        for (name, feature), detector in self.label_detectors.items():
            yield name, feature, detector  # the estimate's test among them

    def counts_before(self) -> dict[tuple, tuple[int, int]]:
        """(test, column) -> (detections, tests) of the model's detectors of earlier
        versions (gone, or still deciding held tests): a new version's detectors count
        from 0, the exported counters go on from these (a counter must never go back: an
        ``increase()`` over a version change saw none of the new detections)."""
        out = {key: list(counts) for key, counts in self.ended_counts.items()}
        for watch in self.retired:
            add_counts(out, watch.tests.detectors())
        for key, (d, t) in self.estimates.counts().items():
            total = out.setdefault(key, [0, 0])
            total[0] += d
            total[1] += t
        return {key: (d, t) for key, (d, t) in out.items()}

    def _count_ended(self, detectors) -> None:
        """Add ``(key, detector)`` pairs gone for good to :attr:`ended_counts`."""
        add_counts(self.ended_counts, detectors)

    def pop_observations(self) -> list[Observation]:
        """The decisions taken since the last call, placed in the stream (see
        :class:`~daemon.stream.decisions.Observation`); each detector's in its stream order."""
        out, self.observations = self.observations, []
        return out

    # -- checking ---------------------------------------------------------------------------
    def check(self, event) -> None:
        """Raise :class:`~daemon.stream.events.BadEvent` (``wrong_type``, with the feature and the
        reason) if this prediction cannot be used (:func:`~daemon.stream.eventchecks.check_prediction`);
        checked before anything is updated."""
        # The first value of a new version's reference: its types are undecided.
        kinds = self.watch.tests.kinds if self.watch and not self._starts_version(event.model_version) else None
        check_prediction(event, self.config.task, kinds, self.config.features)

    def changed_by(self, n: int, last) -> bool:
        """Whether ``n`` predictions not fed yet, the last of them ``last``, change what
        :meth:`check` says of the next one: they complete the reference (its columns get
        their types) or ``last`` starts a new model version (a reference collected again).
        The caller feeds them before checking the next, so that a batch is checked as its
        predictions one at a time would be."""
        if self.watch is None and self.reference.n + n >= self.reference.size:
            return True
        return self._starts_version(last.model_version)

    def _starts_version(self, version) -> bool:
        """Whether a prediction of model version ``version`` starts a new reference."""
        return version is not None and version != self.version and self.config.reference_per_version

    def check_label(self, label) -> None:
        """Raise :class:`~daemon.stream.events.BadEvent` (``wrong_type``, with the reason) if
        this label cannot be used (:func:`~daemon.stream.eventchecks.check_label`)."""
        check_label(label, self.config.task)

    # -- predictions ------------------------------------------------------------------------
    def observe_predictions(self, events: list, offsets: list | None = None) -> None:
        """Feed a batch of (checked) predictions of this model, in order, with their
        source offsets (default: their position in the model's stream)."""
        if offsets is None:
            offsets = list(range(self.n_predictions, self.n_predictions + len(events)))
        start = 0
        for i, event in enumerate(events):
            # No version said is no change: one event without it must not reset the model
            # (its reference, its tests, its open alerts) to version None and back.
            if event.model_version is None or event.model_version == self.version:
                continue
            if self.config.reference_per_version and (self.n_predictions or i > start):
                self._feed(events[start:i], offsets[start:i])
                start = i
                self.version_changes += 1
                self._returned_early(event.model_version)
                self._start_version(event.model_version, event.ts)
            else:
                self.version = event.model_version
                self.versions[-1] = (self.epoch, self.version, -math.inf, *self.versions[-1][3:])
                if self.labels.version is None and not self.labels.n_fed:
                    self.labels.version = self.version  # the first version said: its labels' too
                if self.estimation.version is None:
                    self.estimation.version = self.version
        if start:
            events, offsets = events[start:], offsets[start:]
        self._feed(events, offsets)  # (the usual batch, one version, not copied)

    def _returned_early(self, version: str) -> None:
        """Count a version coming back before the one after it completed its reference
        (two versions' predictions interleaved: a rolling deployment, a canary); warn once
        a model at the third, since each change starts a version anew."""
        if self.watch is not None or len(self.versions) < 2 or self.versions[-2][1] != version:
            return
        self.version_returns += 1
        if self.version_returns == RETURNS_WARNED:
            log.warning("model %s: model_version went back to %.80r before version %.80r's reference was complete, "
                        "%d times: two versions' predictions are interleaved (a rolling deployment, a canary?). Each "
                        "change starts a new version (a new reference, the label tests anew), so neither is tested "
                        "until one stays; give a canary its own model name, or send model_version once the rollout "
                        "is complete", self.name, version, self.version, self.version_returns,
                        extra={"model": self.name})

    def _feed(self, events: list, offsets: list) -> None:
        if not events:
            return
        self.n_predictions += len(events)
        self.predictions_seen += len(events)
        self.estimates.observe_predictions(events, offsets)  # estimated performance
        self._estimated()
        if self.watch is None:
            sample = self.reference
            room = sample.size - sample.n
            head = events[:room]  # the batch may complete the reference: the rest goes to the tests
            sample.add_many([e.features for e in head], [e.prediction for e in head],
                            score_values(head, self._positive_key), self.config.task)
            completing = (head[-1].ts, offsets[len(head) - 1]) if head else None
            events, offsets = events[room:], offsets[room:]
            if sample.complete:
                self._build()
                self._end_earlier_episodes(*completing)
        if not events or self.watch is None:
            return
        watch = self.watch
        watch.sources.extend([e.ts for e in events], offsets)
        watched = watch.tests.columns  # the prediction and the score only if they are tested
        watch.tests.update_many([e.features for e in events],
                                [e.prediction for e in events] if PREDICTION in watched else None,
                                score_values(events, self._positive_key) if SCORE in watched else None)
        self._drain(watch)

    def _estimated(self) -> None:
        """After the estimates were fed: their decisions, and what they have to say."""
        self.observations.extend(self.estimates.drain())
        note = self.estimation.unlike_note()
        if note:
            log.warning("model %s: %s", self.name, note, extra={"model": self.name})

    def _build(self) -> None:
        sample = self.reference
        self.builds += 1
        tests = DataTests(sample, self.config, self.schema)
        self.n_unwatched = sample.n_unwatched
        # A numeric feature with a few stray strings ("n/a") is typed categorical by them.
        stray = {}
        for column in sample.columns():
            found = column.mostly_numbers()
            if found is not None:
                numbers, present, strings = found
                stray[column.name] = (f"{numbers:,} of its {present:,} present reference values are numbers, the others "
                                      f"strings ({', '.join(repr(v) for v in strings)}); declare it numeric under "
                                      "features: to test its numbers (a string is then a wrong_type dead letter)")
        # Each version's reference says it again: the version named, it is not a repetition.
        of = f" version {self.version}" if self.version is not None else ""
        for column, why in tests.untestable.items():
            hint = f"; {stray.pop(column)}" if column in stray else ""
            log.warning("model %s%s: the distribution of %s is not tested: %s%s", self.name, of, column, why, hint,
                        extra={"model": self.name})
        for column, hint in stray.items():
            log.warning("model %s%s: feature %s is tested as categorical: %s, or categorical to keep this", self.name,
                        of, column, hint, extra={"model": self.name})
        self.watch = _Watch(self.builds, self.version, tests, SourceLog())
        nbytes = sum(column.nbytes for column in sample.columns())
        self.reference = sample = None  # the columns live on as the tests' reference counts
        allocator.released(nbytes)  # their pages back to the system (glibc: daemon/runtime/allocator.py)

    def _end_earlier_episodes(self, ts: float, offset: int) -> None:
        """The tests of an earlier version end their alert episodes at the event that
        completed this version's reference: an observation with ``drift=None`` each,
        ``reason`` ``test_gone`` (this version has no such test: a feature it dropped, or
        no longer testable) or ``new_reference`` (drift is measured against this version's
        reference from here: an episode it continued was resolved by a reference that
        took the drifted data in, read as "the drift went away"). After every held
        decision of the earlier versions (decided now if still waiting for thresholds,
        rare: a version change within a calibration's time; so that no decision of theirs
        comes after the end, whatever calibration's speed)."""
        earlier = sorted(self.__dict__.pop("_earlier_tests", None) or ())
        previous = self.__dict__.pop("_earlier_version", None)
        if not earlier:
            return
        for watch in list(self.retired):
            owner = ("data", watch.build)
            calibrate_jobs_now(watch.tests.calibration_jobs(),
                               lambda job, thresholds, error: self.apply_calibration(owner, job, thresholds, error))
        kept = {key for key, _ in self.watch.tests.detectors()}
        self.observations.extend(observation(test, column, None, ts, offset, "data", 0, renewed(
            (test, column) in kept, self.version, "reference is complete: drift is measured against it", previous))
            for test, column in earlier)

    def _drain(self, watch: _Watch) -> None:
        found, taken, ats = [], [], []
        for (test, column), detector in watch.tests.detectors():
            decisions = detector.pop_decision_runs()
            if decisions:
                taken.append((test, column, decisions))
                for d in decisions:
                    if type(d) is DecisionRun:
                        ats += d.at
                    else:
                        ats.append(d.at)
        version, sources = watch.version, watch.sources
        # One look-up per batch, not per detector or decision.
        places = zip(*sources.get_many(ats)) if ats else iter(())
        for test, column, decisions in taken:
            found += data_observations(test, column, decisions, places, version)
        found.sort(key=_POSITION)  # stable: each detector's own order is kept
        self.observations.extend(found)
        if watch.tests.calibrated:
            watch.sources.forget()  # every decision so far is out: no one refers to them

    # -- calibration ------------------------------------------------------------------------
    def calibration_jobs(self, new_only: bool = False) -> list[tuple[tuple, CalibrationJob]]:
        """(owner, job) for every column and label test waiting for thresholds; owner is
        ("data", build), ("labels", epoch) or ("estimate", epoch) (the estimated
        performance's test). ``new_only``: those not returned before by this object (a
        restored pipeline asks again)."""
        jobs = []
        for watch in [*self.retired, self.watch]:
            owner = ("data", watch.build) if watch is not None else None
            if watch is None or watch.tests.calibrated or (new_only and owner in self._asked):
                continue
            if new_only:
                self._asked.add(owner)  # a build's jobs are all known when it is built
            jobs += [(owner, job) for job in watch.tests.calibration_jobs()]
        for job in self.labels.calibration_jobs():
            owner = ("labels", self.labels_epoch)
            if new_only:
                if (owner, job.column) in self._asked:
                    continue
                self._asked.add((owner, job.column))
            jobs.append((owner, job))
        for epoch, job in self.estimates.calibration_jobs():
            owner = ("estimate", epoch)
            if new_only:
                if (owner, job.column) in self._asked:
                    continue
                self._asked.add((owner, job.column))
            jobs.append((owner, job))
        return jobs

    def apply_calibration(self, owner: tuple, job: CalibrationJob, thresholds, error: str | None = None) -> None:
        """Set a job's thresholds (at a batch boundary): held tests are decided in order
        and their decisions join the observations. A stale job (its build or version
        gone) is ignored."""
        side, number = owner
        if side == "estimate":
            self.estimates.apply(number, job, thresholds, error)
            self.observations.extend(self.estimates.drain())
            return
        if side == "labels":
            if number == self.labels_epoch:
                self.labels.apply(job, thresholds, error)
                self._drain_labels()
            return
        for watch in [*self.retired, self.watch]:
            if watch is not None and watch.build == number:
                watch.tests.apply(job, thresholds, error)
                self._drain(watch)
                if watch is not self.watch and watch.tests.calibrated:
                    self.retired.remove(watch)
                    self._count_ended(watch.tests.detectors())
                return

    @property
    def uncalibrated(self) -> int:
        """Tests waiting for their thresholds."""
        data = sum(not d.calibrated for w in [*self.retired, self.watch] if w is not None and not w.tests.calibrated
                   for _, d in w.tests.detectors())  # (calibrated: kept by the tests, checked first)
        return data + len(self.labels.calibration_jobs()) + len(self.estimates.calibration_jobs())

    # -- labels -----------------------------------------------------------------------------
    def observe_labels(self, pairs: list[tuple], offsets: list | None = None, label_times: list | None = None) -> int:
        """Feed (prediction payload, label) pairs in label order, with the offsets of their
        label records (default: their position among the model's labelled events) and the
        labels' event times (default: the predictions'). The label side is of one model
        version: the first pair of a later version (in the order the versions' predictions
        came) moves it there; pairs of an earlier one are then left out of the detectors
        (their baseline is gone), not out of the learners. Returns how many the detectors
        used."""
        if offsets is None:
            offsets = list(range(self.labels.n_fed, self.labels.n_fed + len(pairs)))
        if label_times is None:
            label_times = [p[3] for p, _ in pairs]
        used, start = 0, 0
        for i, (payload, _) in enumerate(pairs):
            epoch = self._epoch_of(payload)
            if epoch is not None and epoch > self.labels_epoch:
                used += self._observe_labels(pairs[start:i], offsets[start:i], label_times[start:i])
                start = i
                self._start_labels(epoch, payload[2], label_times[i], offsets[i])
        return used + self._observe_labels(pairs[start:], offsets[start:], label_times[start:])

    def _epoch_of(self, payload: tuple) -> int | None:
        """The version epoch of a prediction (its join payload): see
        :func:`~daemon.stream.versions.epoch_of`; the label side's own epoch for a
        prediction that names no version, or when versions share a reference."""
        if payload[2] is None or not self.config.reference_per_version:
            return self.labels_epoch
        return epoch_of_payload(self.versions, payload)

    def _observe_labels(self, pairs: list, offsets: list, label_times: list) -> int:
        if not pairs:
            return 0
        labels = self.labels
        current = [self._epoch_of(p) == self.labels_epoch for p, _ in pairs]
        used = [(pair, offset, t) for pair, offset, t, ok in zip(pairs, offsets, label_times, current) if ok]
        before = labels.n_fed
        if used:
            y_pred = [p[0] for (p, _), _, _ in used]
            y_true = [t for (_, t), _, _ in used]
            if self.config.task == "regression":
                errors = [abs(float(t) - float(p)) for p, t in zip(y_pred, y_true)]
            else:
                errors = [int(t != p) for p, t in zip(y_pred, y_true)]
                self.label_checks.check(self.name, self.config.positive_label, y_true, y_pred, errors)
            labels.update_many(y_true, y_pred, errors, [t for _, _, t in used], [o for _, o, _ in used])
            self._drain_labels()
        # The estimate is of the predictions' version: its labelled reference is that version's.
        self.estimates.observe_labels(pairs, label_times, self.version, self.versions)
        self._estimated()
        if self.learning is not None:
            self.learning.observe(pairs, current, labels, before)
        return len(used)

    def _drain_labels(self) -> None:
        found, signals = self.labels.drain()
        self.observations.extend(found)
        if self.learning is not None:
            for position, signal in signals.items():
                self.learning.signal(self.labels, position, signal)
            self.learning.release(self.labels)


#: Eras kept whether or not a label may need them: a prediction saved without its index
#: in the model's stream (an older state) is placed among them by its version's name and time.
RECENT_ERAS = 100
#: A version coming back before the one after it completed its reference, this many times,
#: is warned about (once a model).
RETURNS_WARNED = 3
_POSITION = operator.attrgetter("position")
_EPOCH = operator.itemgetter(0)
