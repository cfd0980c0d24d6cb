"""A model's estimated performance across its versions.

Each model version has its own estimate (:class:`~daemon.stream.estimation.ModelEstimation`),
fitted on that version's first ``decay_reference_size`` labelled events. When the
predictions topic is read ahead of the labels (a catch-up poll, or a daemon whose labels
lag), the next version's first predictions come before the earlier version's labelled
reference is complete: the earlier estimate goes on until it completes, so that what it
concludes does not depend on how far ahead the predictions were read. :class:`Estimates`
keeps the current version's estimate and the earlier ones that may still say something,
gives each labelled event to its version's estimate in label order, and ends the earlier
estimates' alert episode where the current one starts. An earlier estimate is given up by
the labels alone, so that whether it is does not depend on how far ahead the predictions
were read: once a later version's labelled reference is complete, or labels of
:data:`GIVE_UP_AFTER` later versions came (in label order); and, to bound memory, once
:data:`MAX_EARLIER` later versions' predictions came (then a late label's version can no
longer be told either: the one rule the reading order decides, for a model whose labels
lag 10,000 versions).

Decisions come out as observations (:meth:`Estimates.drain`); the detections and tests of
the estimates dropped are kept (:meth:`Estimates.counts`), so exported counters go on.

>>> from daemon.config import ModelConfig
>>> estimates = Estimates(ModelConfig(), version="1", epoch=1)
>>> estimates.start(2, "2")     # version 2's first prediction: version 1's labels may still come
>>> estimates.current.version, sorted(estimates.earlier), estimates.drain()
('2', [1], [])
>>> versions = [(1, "1", 0.0), (2, "2", 500.0)]      # (epoch, version, its first prediction's time)
>>> estimates.of((1, 0.9, "1", 499.0, {}), versions) is estimates.earlier[1]   # a late label of 1
True
"""

from __future__ import annotations

from daemon.config import ModelConfig
from daemon.stream.decisions import Observation, add_counts, observation, renewed
from daemon.stream.estimation import NAME, ModelEstimation
from daemon.stream.versions import MAX_ERAS, epoch_of_payload

#: An earlier version's estimate still waiting for its labelled reference (or thresholds)
#: is given up (its held decisions decided first) once labels of this many later versions came.
GIVE_UP_AFTER = 3
#: Earlier versions' estimates kept at most (the oldest is given up beyond): fewer than the
#: eras a model's pipeline remembers (``versions.MAX_ERAS``), by which a late label's
#: version is told.
MAX_EARLIER = MAX_ERAS - 1


class Estimates:
    """The current model version's estimate (``current``, of version epoch ``epoch``) and
    the earlier versions' still kept (``earlier``: epoch -> estimate); pickled with the
    model's pipeline."""

    #: The model version before the current one (its estimate's episode ends at this one's start).
    previous_version: str | None = None
    #: The latest epoch whose estimate was fitted or skipped (those before it still
    #: collecting are given up).
    latest_fitted: int = -1

    def __init__(self, config: ModelConfig, version: str | None = None, epoch: int = 1,
                 current: ModelEstimation | None = None, earlier: dict | None = None):
        self.config = config
        self.current = current if current is not None else ModelEstimation(config, version)
        self.epoch = epoch
        self.earlier: dict[int, ModelEstimation] = earlier if earlier is not None else {}
        #: earlier epoch -> the later epochs whose labels came since it started, in label order.
        self.later_labels: dict[int, set] = {}
        self.observations: list[Observation] = []
        #: (test, column) -> [detections, tests] of the estimates dropped.
        self.ended: dict[tuple, list] = {}

    def __setstate__(self, state: dict) -> None:
        # (saved before the labels gave earlier estimates up: none counted yet)
        self.__dict__.update({"later_labels": {}, **state})

    # -- versions ---------------------------------------------------------------------------
    def start(self, epoch: int, version: str | None) -> None:
        """Model version ``version`` (epoch ``epoch``) starts: its estimate is the current
        one; the one before is kept while it may still say something (its labelled
        reference still to come, or its test waiting for thresholds)."""
        if not self.current.settled:
            self.earlier[self.epoch] = self.current
        else:
            add_counts(self.ended, self.current.detectors.items())
        while len(self.earlier) > MAX_EARLIER:
            self._retire(self.earlier.pop(min(self.earlier)))
        self._forget_later_labels()
        self.previous_version = self.current.version
        self.current = ModelEstimation(self.config, version)
        self.epoch = epoch

    def of(self, payload: tuple, versions: list) -> ModelEstimation | None:
        """The estimate a labelled event belongs to: its prediction's era's (see
        :func:`~daemon.stream.versions.epoch_of`), or None (an earlier version's estimate
        no longer kept). ``payload``: the join's (prediction, score, version, ts,
        features, index in the model's stream); ``versions``: the model's eras in the order
        they came (:mod:`daemon.stream.versions`)."""
        epoch = self._epoch_of(payload, versions)
        return self.current if epoch == self.epoch else self.earlier.get(epoch)

    def _epoch_of(self, payload: tuple, versions: list) -> int | None:
        if payload[2] is None or not self.config.reference_per_version:
            return self.epoch
        return epoch_of_payload(versions, payload)

    # -- feeding ----------------------------------------------------------------------------
    def observe_predictions(self, events: list, offsets: list) -> None:
        """The current version's predictions (see :meth:`ModelEstimation.observe_predictions`)."""
        self.current.observe_predictions(events, offsets)
        self.observations.extend(self.current.drain())

    def observe_labels(self, pairs: list, label_times: list, version: str | None, versions: list) -> None:
        """Labelled events (join pairs) in label order, each to its version's estimate (see
        :meth:`of`), in runs of consecutive pairs of one estimate: an estimate starting
        gives up the earlier ones still collecting, and what comes after must see that."""
        run, run_pairs, run_times = None, [], []
        for pair, t in zip(pairs, label_times):
            epoch = self._epoch_of(pair[0], versions)
            if epoch != run:
                self._observe(run, run_pairs, run_times, version)
                run, run_pairs, run_times = epoch, [], []
            run_pairs.append(pair)
            run_times.append(t)
        self._observe(run, run_pairs, run_times, version)

    def _observe(self, epoch: int | None, pairs: list, label_times: list, version) -> None:
        """Labelled events of the estimate of ``epoch`` (None, or one not kept: nothing):
        its reference until complete (then it estimates the predictions that waited), then
        its error. The earlier estimates that labels of GIVE_UP_AFTER later versions have
        passed are given up first."""
        if not pairs:
            return
        self._labels_came(epoch)
        estimation = self.current if epoch == self.epoch else self.earlier.get(epoch)
        if estimation is None:
            return
        started = estimation.started
        estimation.observe_labels(pairs, label_times)
        if estimation is self.current and not started and estimation.started:
            self._end_earlier(estimation.completed_at, version)
        self.observations.extend(estimation.drain())
        self._forget_settled(epoch)

    def _labels_came(self, epoch: int | None) -> None:
        """Labels of version ``epoch`` came: the earlier estimates that labels of
        GIVE_UP_AFTER later versions have passed, in label order, are given up."""
        if epoch is None or not self.earlier:
            return
        for earlier in list(self.earlier):  # (in epoch order: they are kept as they started)
            if earlier >= epoch:
                break
            later = self.later_labels.setdefault(earlier, set())
            later.add(epoch)
            if len(later) >= GIVE_UP_AFTER:
                self._retire(self.earlier.pop(earlier))
        self._forget_later_labels()

    def _forget_later_labels(self) -> None:
        for epoch in [e for e in self.later_labels if e not in self.earlier]:
            del self.later_labels[epoch]

    def _end_earlier(self, ts: float, version) -> None:
        """The current version's estimate starts (its labelled reference complete, at the
        label of event time ``ts``): the earlier versions' estimates say what they have
        left (held decisions decided now, rare: their thresholds still to come), those
        still collecting are given up, and the estimate test's open alert episode ends,
        ``reason: new_reference``, so that this version's drift opens an episode (and an
        alert) of its own."""
        previous = self.earlier[max(self.earlier)].version if self.earlier else self.previous_version
        for estimation in self.earlier.values():
            self._retire(estimation)
        self.earlier.clear()
        if self.epoch > 1:
            self.observations.append(observation(NAME, self.current.metric, None, ts, 0, "labels", 0, renewed(
                True, version, "labelled reference is complete: the estimate is measured against it", previous)))

    def _retire(self, estimation: ModelEstimation) -> None:
        """An earlier version's estimate is dropped: its held decisions decided now (rare:
        its thresholds still to come), its counts kept for the exported counters."""
        if estimation.waiting:
            estimation.calibrate_now()
            self.observations.extend(estimation.drain())
        add_counts(self.ended, estimation.detectors.items())

    def _forget_settled(self, epoch: int) -> None:
        """The estimate of ``epoch`` was just fed (the others were not): forget the earlier
        versions' estimates with nothing more to say: this one if fitted and decided (its
        predictions are all in), or skipped; and, once it is fitted or skipped, those
        before it still collecting their labelled reference (in label order: so that the
        decisions of one version's estimate never come among a later one's, they share an
        alert episode). Only the estimate fed can have changed, so that a canary's thousands
        of earlier estimates are not all looked at for each label."""
        estimation = self.current if epoch == self.epoch else self.earlier.get(epoch)
        if estimation is None:
            return
        if epoch > self.latest_fitted and (estimation.fitted or estimation.skipped):
            self.latest_fitted = epoch
            for earlier in [e for e, kept in self.earlier.items() if e < epoch and not kept.fitted]:
                add_counts(self.ended, self.earlier.pop(earlier).detectors.items())
        if epoch in self.earlier and estimation.settled:
            add_counts(self.ended, self.earlier.pop(epoch).detectors.items())

    def drain(self) -> list[Observation]:
        """The estimates' decisions (and episode ends) since the last call, in order."""
        out, self.observations = self.observations, []
        return out

    # -- calibration ------------------------------------------------------------------------
    def calibration_jobs(self) -> list[tuple[int, object]]:
        """(epoch, job) for each estimate's test waiting for thresholds."""
        return [(epoch, job) for epoch, estimation in [*self.earlier.items(), (self.epoch, self.current)]
                for job in estimation.calibration_jobs()]

    def apply(self, epoch: int, job, thresholds, error: str | None = None) -> None:
        """Set the thresholds of the estimate of ``epoch`` (ignored if it is no longer kept)."""
        estimation = self.current if epoch == self.epoch else self.earlier.get(epoch)
        if estimation is not None:
            estimation.apply(job, thresholds, error)
            self.observations.extend(estimation.drain())
            self._forget_settled(epoch)

    # -- reading ----------------------------------------------------------------------------
    def counts(self) -> dict[tuple, list]:
        """(test, column) -> [detections, tests] of the earlier versions' estimates: dropped,
        or still kept."""
        out = {key: list(counts) for key, counts in self.ended.items()}
        for estimation in self.earlier.values():
            add_counts(out, estimation.detectors.items())
        return out
