"""Everything driftd knows about one partition number of the co-partitioned topics.

Predictions and labels of a model share a partition number (the message key is the model
name), so a partition's state is self-contained: the models whose events land there, the
join buffer, the counters, the alert episodes, and the offsets up to which all of it
reflects the input. It is the unit of checkpoints and moves with the partition when the
consumer group rebalances.

A model's labelled events reach its label side in label-record order
(:mod:`daemon.stream.labelorder`), whichever of a label and its prediction was read first.
"""

from __future__ import annotations

import bisect
import contextlib
import logging
import math
from collections import Counter

import numpy as np

from daemon.runtime import logs
from daemon.stream import events
from daemon.config import Config
from daemon.alerting.episodes import Episodes
from daemon.alerting.sinks import alert_severity
from daemon.stream.join import LabelJoin
from daemon.stream.labelorder import LabelOrder
from daemon.stream.partition_state import PartitionPersistence, delay_buckets
from daemon.stream.pipeline import ModelPipeline

log = logging.getLogger("driftd")

class PartitionState(PartitionPersistence):
    def __init__(self, partition: int, config: Config):
        self.partition = partition
        self.offsets: dict[str, int] = {}  # topic -> next offset to read
        self.models: dict[str, ModelPipeline] = {}
        self.join = LabelJoin(config.join.prediction_ttl_seconds, config.join.label_grace_seconds, config.join.max_pending,
                              false_positive_rate=config.join.duplicate_false_positive_rate)
        self.processed: Counter = Counter()  # (model, "prediction"/"label") -> events
        # (model, "prediction"/"label") -> newest event time processed, epoch seconds: the
        # metrics' event age (now - ts), computed when scraped.
        self.newest_ts: dict[tuple[str, str], float] = {}
        self.dead_letters: Counter = Counter()  # reason -> events
        self.label_delay: dict[str, list] = {}  # model -> [bucket counts over delay_buckets, sum]
        self.delay_buckets = delay_buckets(config.join)
        # (model, reason) -> dead letters of a configured model (a subset of dead_letters).
        self.model_dead_letters: Counter = Counter()
        self.episodes = Episodes(clear_after=config.alerts.clear_after, cooldown_seconds=config.alerts.cooldown_seconds)
        self.offset_resets = 0
        self.label_order = LabelOrder()  # labelled events not yet given to the label side
        self._config = config

    #: Labels at offsets below this were read before a moment when this partition's
    #: predictions topic was read to its end: a prediction such a label still waits for was
    #: produced after its label, or never, so it may stop holding its place (see
    #: :meth:`LabelOrder.release`). Set by the reader: the daemon's loop against the
    #: broker's end offset (:meth:`daemon.runtime.service.Daemon._pace_labels`), a replay
    #: at the end of its files (inf); -inf: none yet.
    predictions_read_below = -math.inf

    @property
    def labels_full(self) -> bool:
        """Whether the reader should stop giving this partition's labels: a model's label
        order holds :data:`~daemon.stream.labelorder.MAX_HELD_LABELS` labels behind one
        waiting for its prediction that may still come (read before the predictions topic
        was known to be read to its end): the predictions are read first, so that what the
        label side gets does not depend on how far the labels topic was read ahead."""
        return self.label_order.full(self.predictions_read_below)

    def pipeline(self, model: str) -> ModelPipeline | None:
        """Model ``model``'s pipeline, made at its first event; None if it is not watched
        (not configured, or auto-registered models at ``max_auto_registered_models``)."""
        pipeline = self.models.get(model)
        if pipeline is None:
            if not self.may_watch(model):
                return None
            pipeline = self.models[model] = ModelPipeline(model, self._config.model(model))
        return pipeline

    def may_watch(self, model: str) -> bool:
        """Whether ``model`` is watched here, or would be at its first event."""
        config = self._config
        if model in self.models or model in config.models:
            return True
        if not config.auto_register_models:
            return False
        registered = len(self.models) - len(self.models.keys() & config.models.keys())
        if registered < config.max_auto_registered_models:
            return True
        if not self.__dict__.get("_said_full"):
            self._said_full = True  # once a partition (and a process): each new name would say it again
            log.warning("partition %d: %d models auto-registered, max_auto_registered_models: events of other models "
                        "not listed under models: are dead letters (unknown_model) from %r on; list the models, or "
                        "keep ids out of the model name", self.partition, registered, model,
                        extra={"partition": self.partition})
        return False

    def forget(self, model: str, why: str) -> None:
        """Stop watching ``model`` here (``why``: in words): its pipeline, counters and held
        labels go, and its open alert episodes end, resolved at its newest event time with
        ``reason: model_removed`` and ``why`` (given out by the next :meth:`alerts`), lest
        a receiver keep a drift firing for a model no one watches. Its events are then
        those of a model not watched (``unknown_model``), or start it afresh where it may
        be watched again. (Its predictions and labels waiting in the join stay, in the
        join's bound, until newer ones push them out.)"""
        pipeline = self.models.pop(model, None)
        ended = self.__dict__.setdefault("ended_alerts", [])
        if pipeline is not None and pipeline.observations:
            ended += self._alerts_of(model, pipeline)  # its decisions so far, as any model's
        newest = max((ts for (name, _), ts in self.newest_ts.items() if name == model), default=0.0)
        for key in [key for key in self.episodes.active_keys() if key[0] == model]:
            alert = self.episodes.end(key, newest, {"reason": "model_removed", "why": why})
            if alert is not None:
                ended.append(alert)
        for counter in (self.processed, self.model_dead_letters):
            for key in [key for key in counter if key[0] == model]:
                del counter[key]
        self.newest_ts = {key: ts for key, ts in self.newest_ts.items() if key[0] != model}
        self.label_delay.pop(model, None)
        self.label_order.forget(model)

    def advance(self, topic: str, first: int, last: int) -> None:
        """Record that offsets ``first`` to ``last`` of ``topic`` have been handled."""
        expected = self.offsets.get(topic)
        if expected is not None and first < expected:
            # The topic was re-created or truncated under us: count it and go on from here.
            self.offset_resets += 1
        self.offsets[topic] = last + 1

    # -- one batch ------------------------------------------------------------------------
    # No record can stop the loop: a record is either processed or sent to the dead-letter
    # topic with a reason, whatever happens while handling it (processed + dead-lettered ==
    # consumed). An unexpected exception is contained to its record (``internal_error``),
    # and one model's batch failing in its pipeline to that model's records of the batch.

    def handle_predictions(self, batch: list, reject) -> None:
        """Decode, check, join and feed a batch of prediction records; ``reject(record,
        reason, detail)`` sends a bad one to the dead-letter topic (and must not raise)."""
        by_model: dict[str, list] = {}  # model -> [(record, event)] not fed yet
        joined_by: dict = {}  # (model, label offset) -> the record that completed its join
        failed: set = set()  # offsets of this batch's records already dead-lettered
        clock = events.TimeBounds(self._config.join)

        def feed(model: str) -> None:
            items = by_model.pop(model, None)
            if not items:
                return
            try:
                self.models[model].observe_predictions([event for _, event in items], [record.offset for record, _ in items])
            except Exception as e:  # noqa: BLE001 - the last resort: see _model_failed
                self._model_failed(model, "prediction", [record for record, _ in items], e, reject, failed)

        named: dict[str, str] = {}  # model -> the last version this batch's predictions named

        def before_check(model: str):
            """The model version in force for the next prediction of ``model`` and that
            prediction's index in the model's stream. A prediction is checked against the
            model as the ones before it left it: when those not fed yet complete its
            reference (its columns get their types) or start a new model version, they are
            fed first, as one at a time would be."""
            items = by_model.get(model)
            if items and self.models[model].changed_by(len(items), items[-1][1]):
                feed(model)
                items = None
            pipeline = self.models[model]
            return named.get(model, pipeline.version), pipeline.predictions_seen + len(items or ())

        for record, (event, joined) in self._each(batch, reject, lambda r: self._add_prediction(r, clock, before_check),
                                                  self._refused_prediction):
            if joined is False:
                continue  # a re-delivered duplicate: counted by the join, not fed twice
            self.processed[(event.model, "prediction")] += 1
            self._saw(event.model, "prediction", event.ts)
            by_model.setdefault(event.model, []).append((record, event))
            if event.model_version is not None:
                named[event.model] = event.model_version
            if joined:
                self._sequence(record, joined, joined_by)
        for model in list(by_model):
            feed(model)
        self._release("prediction", reject, failed, joined_by)

    def handle_labels(self, batch: list, reject) -> None:
        """Decode, check and join a batch of label records and feed the joins; as
        :meth:`handle_predictions`."""
        joined_by: dict = {}
        clock = events.TimeBounds(self._config.join)
        for record, (event, joined) in self._each(batch, reject, lambda r: self._add_label(r, clock)):
            self.processed[(event.model, "label")] += 1
            self._saw(event.model, "label", event.ts)
            if joined:
                self._sequence(record, joined, joined_by)
            elif (event.label, record.offset) in self.join.waiting_labels(event.model, event.id):
                self.label_order.hold(event.model, record.offset, event.id)
        self._release("label", reject, set(), joined_by)

    def _saw(self, model: str, stream: str, ts: float) -> None:
        if ts > self.newest_ts.get((model, stream), float("-inf")):
            self.newest_ts[(model, stream)] = ts

    def _each(self, batch: list, reject, handle, refused=None):
        """``(record, handle(record))`` for every record ``handle`` takes: one that raises
        :class:`~daemon.stream.events.BadEvent` is a dead letter with its reason (then
        ``refused(record, error)``), any other exception is contained to its record
        (``internal_error``)."""
        contained: list = []  # offsets of records whose handling raised
        for record in batch:
            try:
                result = handle(record)
            except events.BadEvent as e:
                self._reject(record, e.reason, e.detail, reject, getattr(e, "model", "") or self._watched_model_of(e, record))
                if refused is not None:
                    try:
                        refused(record, e)
                    except Exception as error:  # noqa: BLE001 - the record is a dead letter already
                        log.error("partition %d: %s[%s]@%s: after its dead letter, %s: %s", self.partition, record.topic,
                                  record.partition, record.offset, type(error).__name__, error, exc_info=error,
                                  extra={"partition": self.partition})
                continue
            except Exception as e:  # noqa: BLE001 - contained to this record
                self._contain(record, e, reject, contained)
                continue
            yield record, result
        self._report(contained)

    def _watched_model_of(self, error: "events.BadEvent", record) -> str:
        """The model a record the decoder refused names, if it is watched: under
        ``models:``, or auto-registered by a good event already (a name from bad events
        alone never makes series), else ""."""
        if error.reason not in events.DECODE_REASONS:
            return ""
        model = events.model_of(record.value)
        return model if model in self.models or model in self._config.models else ""

    def _add_prediction(self, record, clock: "events.TimeBounds", before_check) -> tuple:
        """The decoded prediction and what the join made of it; ``before_check(model)``
        runs before it is checked against its model, and gives the model version in force
        (what a prediction that names none is of) and the prediction's index in its model's
        stream (which tells its version's era when its label comes: daemon.stream.versions)."""
        event = events.decode_prediction(self._checked_size(record.value))
        try:
            with self._about(event.model):
                clock.check(event.ts, record)
                pipeline = self._pipeline_for(event.model)
                in_force, index = before_check(event.model)
                reason = pipeline.check(event)
                if reason:
                    raise events.BadEvent(reason, "prediction does not match the model's schema or task")
        except events.BadEvent as e:
            e.identity = (event.model, event.id, None if e.reason == "bad_timestamp" else event.ts)
            raise
        # The features wait with the prediction only when learners or the regression
        # estimate will need them.
        keep = pipeline.lifecycle is not None or pipeline.estimation.needs_features
        features = event.features if keep else None
        # A prediction naming no version is of the one in force when it came (in its topic's
        # order), not of the one in force when its label comes.
        version = event.model_version if event.model_version is not None else in_force
        payload = (event.prediction, event.score, version, event.ts, features, index)
        return event, self.join.add_prediction(event.model, event.id, event.ts, payload)

    def _refused_prediction(self, record, error: "events.BadEvent") -> None:
        """A prediction of a watched model was a dead letter: its label, waiting or to
        come, is orphaned at once (:meth:`LabelJoin.refuse_prediction`) instead of holding
        its model's label side for ``join.label_grace_seconds``. Its model and id are the
        decoded event's, or read from the raw event the decoder refused; neither known
        (not JSON, oversize): its label waits as before."""
        identity = getattr(error, "identity", None)
        if identity is None and error.reason in events.DECODE_REASONS:
            identity = events.identity_of(record.value)
        if identity is None or (identity[0] not in self.models and identity[0] not in self._config.models):
            return  # not a watched model's (an unknown one's labels are dead letters too)
        label = self.join.refuse_prediction(*identity)
        if type(label) is tuple:  # (label, its offset): it held its place in the label order
            self.label_order.drop(identity[0], label[1])

    def _add_label(self, record, clock: "events.TimeBounds") -> tuple:
        """The decoded label and the join it completed, if any."""
        event = events.decode_label(self._checked_size(record.value))
        with self._about(event.model):
            clock.check(event.ts, record)
            reason = self._pipeline_for(event.model).check_label(event.label)
            if reason:
                raise events.BadEvent(reason, "label does not match the model's task")
        return event, self.join.add_label(event.model, event.id, event.ts, (event.label, record.offset))

    @contextlib.contextmanager
    def _about(self, model: str):
        """A BadEvent raised inside names ``model`` (``.model``) when it is watched, for
        ``driftd_dead_letter_total{model}``; "" otherwise (no label from unwatched names)."""
        try:
            yield
        except events.BadEvent as e:
            e.model = model if self.may_watch(model) else ""
            raise

    def _checked_size(self, raw: bytes | None) -> bytes:
        limit = self._config.kafka.max_event_bytes
        if raw is not None and len(raw) > limit:
            raise events.BadEvent("oversize", f"{len(raw)} bytes, more than max_event_bytes ({limit})")
        return raw

    def _pipeline_for(self, model: str) -> ModelPipeline:
        pipeline = self.pipeline(model)
        if pipeline is None:
            if self._config.auto_register_models:
                raise events.BadEvent("unknown_model", f"model {model!r} is not listed under models: and this partition "
                                                       f"auto-registered max_auto_registered_models "
                                                       f"({self._config.max_auto_registered_models}) already")
            raise events.BadEvent("unknown_model", f"model {model!r} is not configured")
        return pipeline

    def _reject(self, record, reason: str, detail: str, reject, model: str = "") -> None:
        self.dead_letters[reason] += 1
        if model:
            self.model_dead_letters[(model, reason)] += 1
        reject(record, reason, detail)
        logs.dead_letter(record, reason, detail)  # rate-limited, with model and partition

    def _contain(self, record, error: Exception, reject, contained: list) -> None:
        """An unexpected exception while handling one record: a bug. The record is a dead
        letter, the loop goes on; the batch's first such record is logged with its
        traceback, the others are summed up by :meth:`_report`."""
        if not contained:
            log.error("partition %d: %s[%s]@%s raised %s; sent to the dead-letter topic as internal_error",
                      self.partition, record.topic, record.partition, record.offset, type(error).__name__,
                      exc_info=error, extra={"partition": self.partition})
        contained.append(record.offset)
        self._reject(record, "internal_error", f"{type(error).__name__}: {error}", reject)

    def _report(self, contained: list) -> None:
        if len(contained) > 1:
            log.error("partition %d: %d records of the batch were sent to the dead-letter topic as internal_error "
                      "(offsets %s to %s; the first is logged above)", self.partition, len(contained), contained[0], contained[-1],
                      extra={"partition": self.partition})

    def _model_failed(self, model: str, kind: str, records: list, error: Exception, reject, failed: set) -> None:
        """One model's batch failed inside its pipeline (the last resort: its detectors may
        have taken part of the batch). Its records of the batch, counted as processed, are
        dead letters instead (``internal_error``); the other models and the loop go on."""
        log.error("partition %d: model %s failed on a batch of %d %s records (%s: %s); they go to the "
                  "dead-letter topic as internal_error", self.partition, model, len(records), kind,
                  type(error).__name__, error, exc_info=error, extra={"model": model, "partition": self.partition})
        detail = f"model {model}: {type(error).__name__}: {error}"
        for record in records:
            if record.offset in failed:
                continue
            failed.add(record.offset)
            self.processed[(model, kind)] -= 1
            self._reject(record, "internal_error", detail, reject, model)

    def _sequence(self, record, join: tuple, joined_by: dict) -> None:
        """Put a completed join in its place in its model's label order; ``record``
        completed it (noted in ``joined_by``)."""
        model, payload, label, delay = join
        # A labelled event's source is its label record, whichever of the two came first:
        # the same on any replay, however the two topics were interleaved. (A label waiting
        # in a checkpoint of an earlier version has no offset.)
        label, label_offset = label if type(label) is tuple else (label, record.offset)
        # The label's event time: the prediction's plus the delay (never before it).
        self.label_order.place(model, label_offset, ((payload, label), label_offset, payload[3] + delay))
        joined_by[(model, label_offset)] = record
        counts = self.label_delay.setdefault(model, [np.zeros(len(self.delay_buckets), dtype=np.int64), 0.0])
        counts[0][bisect.bisect_left(self.delay_buckets, delay)] += 1
        counts[1] += delay

    def _release(self, kind: str, reject, failed: set, joined_by: dict, flush: bool = False) -> None:
        """Give each model's label side what its label order releases; ``kind`` is the kind
        of this batch's records, dead letters (those in ``joined_by``) if the model fails
        on them. ``flush``: hold none (the end of a replay)."""
        def waits(model, id, offset):
            return any(waiting[1] == offset for waiting in self.join.waiting_labels(model, id))

        for model, items in self.label_order.release(waits, flush, overflow_below=self.predictions_read_below):
            try:
                self.models[model].observe_labels([i[0] for i in items], [i[1] for i in items], [i[2] for i in items])
            except Exception as e:  # noqa: BLE001 - the last resort: see _model_failed
                records = [r for i in items if (r := joined_by.get((model, i[1]))) is not None]
                self._model_failed(model, kind, records, e, reject, failed)

    def release_overflowed(self, reject) -> None:
        """Give the label side what the label order releases now that more labels may stop
        holding their places (:attr:`predictions_read_below` rose), outside a batch."""
        self._release("label", reject, set(), {})

    def release_held_labels(self, reject) -> None:
        """Give every model's label side the labelled events held behind labels still
        waiting for their predictions (the end of a replay: no prediction will come)."""
        self._release("label", reject, set(), {}, flush=True)

    def finish_batch(self):
        """After a batch: yield the alerts of the decisions the batch led to (the join
        buffer expires event by event, see :meth:`LabelJoin.expire`)."""
        yield from self.alerts()

    def alerts(self):
        """Alerts of the decisions taken since the last call: each decision is one
        observation of its episode, at the event time and source of the value that
        completed the test (never a batch's), so the alerts are a function of the input
        stream alone."""
        yield from self.__dict__.pop("ended_alerts", ())  # of models no longer watched (forget)
        for model, pipeline in self.models.items():
            if pipeline.observations:
                yield from self._alerts_of(model, pipeline)

    def _alerts_of(self, model: str, pipeline: ModelPipeline):
        """The alerts of ``model``'s observations since the last call (see :meth:`alerts`)."""
        kafka = self._config.kafka
        topics = {"data": kafka.predictions_topic, "labels": kafka.labels_topic}
        for o in pipeline.pop_observations():
            origin = (topics[o.side], self.partition, o.offset, o.event_time)
            if o.drift is None:  # the test is gone (a new model version without it)
                alert = self.episodes.end((model, o.detector, o.feature), o.event_time, o.detail)
                if alert is not None:
                    yield alert
                continue
            # Decay is critical, as the shipped DriftdPerformanceDecay rule (README "Alert rules").
            alert = self.episodes.observe((model, o.detector, o.feature), o.drift, o.event_time, o.detail, origin=origin,
                                          severity=alert_severity(o.detector))
            if alert is not None:
                yield alert

    # -- calibration (see daemon.runtime.calibrator) ----------------------------------------------
    def calibration_jobs(self, new_only: bool = False) -> list[tuple]:
        """``((model, owner), job)`` for every column and label test of every model waiting
        for thresholds (see :meth:`ModelPipeline.calibration_jobs`)."""
        jobs = []
        for model, pipeline in self.models.items():
            try:
                jobs += [((model, owner), job) for owner, job in pipeline.calibration_jobs(new_only)]
            except Exception as e:  # noqa: BLE001 - a bug in one model must not stop the loop
                log.error("partition %d: model %s: listing its calibrations failed: %s", self.partition, model, e,
                          exc_info=e, extra={"model": model, "partition": self.partition})
        return jobs

    def apply_calibration(self, owner: tuple, job, thresholds, error: str | None = None) -> None:
        """Hand a calibration result to its model (at a batch boundary); the decisions it
        releases come out of :meth:`alerts`. A result the model cannot take leaves the
        job's tests out, with the reason (contained: the loop goes on)."""
        model, build = owner
        pipeline = self.models.get(model)
        if pipeline is None:
            return
        try:
            pipeline.apply_calibration(build, job, thresholds, error)
        except Exception as e:  # noqa: BLE001 - contained to the job's tests
            log.error("partition %d: model %s: applying the thresholds of %s failed: %s", self.partition, model,
                      job.column, e, exc_info=e, extra={"model": model, "partition": self.partition})
            if error is None:
                self.apply_calibration(owner, job, None, f"{type(e).__name__}: {e}")
