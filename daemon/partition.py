"""Everything driftd knows about one partition number of the co-partitioned topics.

Predictions and labels of a model share a partition number (the message key is the model
name), so a partition's state is self-contained: the models whose events land there, the
join buffer, the counters, the alert episodes, and the offsets up to which all of it
reflects the input. It is the unit of checkpoints and moves with the partition when the
consumer group rebalances.
"""

from __future__ import annotations

import bisect
from collections import Counter

import numpy as np

from . import events
from .config import Config
from .episodes import Episodes
from .join import OUTCOMES, LabelJoin
from .pipeline import ModelPipeline

#: Upper bounds of the label-delay histogram buckets, in seconds (event time).
DELAY_BUCKETS = (1, 10, 60, 300, 900, 3600, 4 * 3600, 12 * 3600, 86400, 3 * 86400, 7 * 86400, float("inf"))


class PartitionState:
    def __init__(self, partition: int, config: Config):
        self.partition = partition
        self.offsets: dict[str, int] = {}  # topic -> next offset to read
        self.models: dict[str, ModelPipeline] = {}
        self.join = LabelJoin(config.join.prediction_ttl_seconds, config.join.label_grace_seconds, config.join.max_pending)
        self.processed: Counter = Counter()  # (model, "prediction"/"label") -> events
        self.dead_letters: Counter = Counter()  # reason -> events
        self.label_delay: dict[str, list] = {}  # model -> [bucket counts, sum]
        self.episodes = Episodes(clear_after=config.alerts.clear_after, cooldown_seconds=config.alerts.cooldown_seconds)
        self.offset_resets = 0
        self._decisions: dict[tuple, int] = {}  # detector key -> n_tests last observed
        self._config = config

    def __getstate__(self):
        state = dict(self.__dict__)
        del state["_config"]  # configuration comes from the file, not the checkpoint
        return state

    def attach(self, config: Config) -> None:
        """Bind a restored state to the running configuration."""
        self._config = config

    def pipeline(self, model: str) -> ModelPipeline | None:
        pipeline = self.models.get(model)
        if pipeline is None:
            settings = self._config.model(model)
            if settings is None:
                return None
            pipeline = self.models[model] = ModelPipeline(model, settings)
        return pipeline

    def advance(self, topic: str, first: int, last: int) -> None:
        """Record that offsets ``first`` to ``last`` of ``topic`` have been handled."""
        expected = self.offsets.get(topic)
        if expected is not None and first < expected:
            # The topic was re-created or truncated under us: count it and go on from here.
            self.offset_resets += 1
        self.offsets[topic] = last + 1

    # -- one batch ------------------------------------------------------------------------
    def handle_predictions(self, batch: list, reject) -> None:
        """Decode, check, join and feed a batch of prediction records; ``reject(record,
        reason, detail)`` sends a bad one to the dead-letter topic."""
        by_model: dict[str, list] = {}
        joins = []
        for record in batch:
            try:
                event = events.decode_prediction(self._checked_size(record.value))
                pipeline = self._pipeline_for(event.model)
                reason = pipeline.check(event)
                if reason:
                    raise events.BadEvent(reason, "prediction does not match the model's schema or task")
            except events.BadEvent as e:
                self._reject(record, e, reject)
                continue
            # The features wait with the prediction only when learners will need them.
            features = event.features if pipeline.lifecycle is not None else None
            payload = (event.prediction, event.score, event.model_version, event.ts, features)
            joined = self.join.add_prediction(event.model, event.id, event.ts, payload)
            if joined is False:
                continue  # a re-delivered duplicate: counted by the join, not fed twice
            self.processed[(event.model, "prediction")] += 1
            by_model.setdefault(event.model, []).append(event)
            if joined:
                joins.append(joined)
        for model, model_events in by_model.items():
            self.models[model].observe_predictions(model_events)
        self._feed_joins(joins)

    def handle_labels(self, batch: list, reject) -> None:
        joins = []
        for record in batch:
            try:
                event = events.decode_label(self._checked_size(record.value))
                reason = self._pipeline_for(event.model).check_label(event.label)
                if reason:
                    raise events.BadEvent(reason, "label does not match the model's task")
            except events.BadEvent as e:
                self._reject(record, e, reject)
                continue
            self.processed[(event.model, "label")] += 1
            joined = self.join.add_label(event.model, event.id, event.ts, event.label)
            if joined:
                joins.append(joined)
        self._feed_joins(joins)

    def _checked_size(self, raw: bytes | None) -> bytes:
        limit = self._config.kafka.max_event_bytes
        if raw is not None and len(raw) > limit:
            raise events.BadEvent("oversize", f"{len(raw)} bytes, more than max_event_bytes ({limit})")
        return raw

    def _pipeline_for(self, model: str) -> ModelPipeline:
        pipeline = self.pipeline(model)
        if pipeline is None:
            raise events.BadEvent("unknown_model", f"model {model!r} is not configured")
        return pipeline

    def _reject(self, record, error: events.BadEvent, reject) -> None:
        self.dead_letters[error.reason] += 1
        reject(record, error.reason, error.detail)

    def _feed_joins(self, joins: list) -> None:
        by_model: dict[str, list] = {}
        for model, payload, label, delay in joins:
            by_model.setdefault(model, []).append((payload, label))
            counts = self.label_delay.setdefault(model, [np.zeros(len(DELAY_BUCKETS), dtype=np.int64), 0.0])
            counts[0][bisect.bisect_left(DELAY_BUCKETS, delay)] += 1
            counts[1] += delay
        for model, pairs in by_model.items():
            self.models[model].observe_labels(pairs)

    def finish_batch(self):
        """After a batch: expire the join buffer, then yield the alerts of detectors that
        took a new decision."""
        self.join.expire()
        # Alerts carry the time of the newest prediction seen: "when" in the model's
        # traffic, the same on every replay.
        now = self.join.prediction_watermark
        if now == float("-inf"):
            now = self.join.label_watermark
        if now == float("-inf"):
            return
        for model, pipeline in self.models.items():
            for name, feature, detector in pipeline.detectors():
                key = (model, name, feature)
                if self._decisions.get(key) == detector.n_tests:
                    continue  # no new test since the last batch: nothing new to say
                self._decisions[key] = detector.n_tests
                at = pipeline.detection_time((name, feature) in pipeline.data_detectors, detector) if detector.drift else None
                alert = self.episodes.observe(key, detector.drift, now if at is None else at, lambda d=detector, p=pipeline: {
                    "statistic": d.statistic, "threshold": d.threshold, "p_value": d.p_value, "model_version": p.version,
                })
                if alert is not None:
                    yield alert

    def status(self) -> dict:
        """Per model: what /status shows."""
        return {
            name: {
                "partition": self.partition,
                "version": pipeline.version,
                "reference_complete": pipeline.reference_complete,
                "features": pipeline.features,
                "unwatched_features": sorted(pipeline.unwatched_features),
                "skipped_tests": {f"{test}/{feature}": why for (test, feature), why in pipeline.skipped.items()},
                "detectors": {f"{n}/{f}": vars(d.state()) for n, f, d in pipeline.detectors()},
                "processed": {kind: self.processed[(name, kind)] for kind in ("prediction", "label")},
                "join": {outcome: self.join.counts[(name, outcome)] for outcome in OUTCOMES},
            }
            for name, pipeline in self.models.items()
        }
