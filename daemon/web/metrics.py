"""Prometheus metrics: read from the partition states at scrape time, plus the process's own.

What the state holds (counts, detector internals) is not copied into metric objects: a
custom collector reads it when Prometheus scrapes, under the loop's lock, so the numbers
exported are the checkpointed ones and survive restarts with the state. What belongs to
the process (alert deliveries, lag, batch times) lives in ordinary metric objects. All of
it sits in one registry of the daemon's own: a test can build as many as it likes.

Label cardinality is bounded by configuration: model, detector and feature (at most
``max_features`` per model), never event ids.
"""

from __future__ import annotations

import threading

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.utils import floatToGoString

from daemon.stream.events import REASONS
from daemon.stream.join import OUTCOMES
from daemon.stream.partition import DELAY_BUCKETS

DETECTOR_LABELS = ["model", "detector", "feature"]
#: How long a scrape waits for the consumer loop before serving the previous reading.
LOCK_WAIT_SECONDS = 0.5


class Metrics:
    def __init__(self, states: dict, lock: threading.Lock):
        self.registry = CollectorRegistry(auto_describe=True)
        self.registry.register(_StateCollector(states, lock))
        r = self.registry
        self.alerts_sent = Counter("driftd_alerts_sent", "Alert deliveries by sink and outcome.", ["sink", "outcome"], registry=r)
        self.consumer_lag = Gauge("driftd_consumer_lag_records", "Records behind the end of each partition.", ["topic", "partition"], registry=r)
        self.last_checkpoint = Gauge("driftd_last_checkpoint_timestamp_seconds", "When the last checkpoint was written.", registry=r)
        self.batch_seconds = Histogram(
            "driftd_batch_processing_seconds", "Time to process one polled batch.",
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10), registry=r)
        self.batch_records = Counter("driftd_records_polled", "Records handed to driftd by the consumer.", ["topic"], registry=r)
        self.ready = Gauge("driftd_ready", "1 when partitions are assigned, state restored and the broker answers.", registry=r)
        self.assigned_partitions = Gauge("driftd_assigned_partitions", "Partitions this daemon owns.", registry=r)
        self.kafka_errors = Counter("driftd_kafka_errors", "Failed broker operations by operation.", ["operation"], registry=r)
        self.calibration_pending = Gauge(
            "driftd_calibration_jobs_pending", "Threshold calibrations queued or running in the background worker.", registry=r)


class _StateCollector:
    """Reads every partition's state when scraped."""

    def __init__(self, states: dict, lock: threading.Lock):
        self._states = states
        self._lock = lock
        self._last: list = []

    def describe(self):
        return []  # families depend on the state; nothing to promise at registration

    def collect(self):
        # A long batch can hold the lock; a scrape then gets the previous reading rather
        # than timing out.
        if not self._lock.acquire(timeout=LOCK_WAIT_SECONDS):
            return self._last
        try:
            self._last = list(self._collect())
        finally:
            self._lock.release()
        return self._last

    def _collect(self):
        states = list(self._states.values())
        processed = CounterMetricFamily("driftd_events_processed", "Valid events processed.", labels=["model", "kind"])
        dead = CounterMetricFamily("driftd_dead_letter", "Invalid events sent to the dead-letter topic, by reason.", labels=["reason"])
        joins = CounterMetricFamily("driftd_label_join", "Label-join outcomes.", labels=["model", "outcome"])
        resets = CounterMetricFamily("driftd_offset_resets", "Times a partition's offsets went backwards (topic re-created).", labels=["partition"])
        pending = GaugeMetricFamily("driftd_label_join_pending", "Predictions and labels waiting to be joined.", labels=["partition"])
        for key, value in sorted(_sum(s.processed for s in states).items()):
            processed.add_metric(list(key), value)
        dead_totals = _sum(s.dead_letters for s in states)
        for reason in REASONS:  # every reason from the start, so rate() sees the first one
            dead.add_metric([reason], dead_totals.get(reason, 0))
        join_totals = _sum(s.join.counts for s in states)
        for model in sorted({m for m, _ in join_totals}):
            for outcome in OUTCOMES:
                joins.add_metric([model, outcome], join_totals.get((model, outcome), 0))
        for s in states:
            resets.add_metric([str(s.partition)], s.offset_resets)
            pending.add_metric([str(s.partition)], s.join.pending)
        yield from (processed, dead, joins, resets, pending)
        yield self._label_delay(states)
        yield from self._detectors(states)
        yield from _schema_families(states)
        yield from _learning_families(states)

    def _label_delay(self, states):
        family = HistogramMetricFamily("driftd_label_delay_seconds", "Label time minus prediction time of joined events.", labels=["model"])
        merged: dict[str, list] = {}
        for s in states:
            for model, (counts, total) in s.label_delay.items():
                if model in merged:
                    merged[model] = [merged[model][0] + counts, merged[model][1] + total]
                else:
                    merged[model] = [counts.copy(), total]
        for model, (counts, total) in sorted(merged.items()):
            cumulative = counts.cumsum()
            buckets = [(floatToGoString(b), int(c)) for b, c in zip(DELAY_BUCKETS, cumulative)]
            family.add_metric([model], buckets, total)
        return family

    def _detectors(self, states):
        statistic = GaugeMetricFamily("driftd_drift_statistic", "Detector statistic at its last test.", labels=DETECTOR_LABELS)
        threshold = GaugeMetricFamily("driftd_drift_threshold", "Value the statistic is compared with (its calibrated threshold; River detectors: their parameter).", labels=DETECTOR_LABELS)
        p_value = GaugeMetricFamily("driftd_drift_p_value", "p-value of the last test, where the method has one.", labels=DETECTOR_LABELS)
        active = GaugeMetricFamily("driftd_drift_active", "1 while the detector is in drift.", labels=DETECTOR_LABELS)
        warning = GaugeMetricFamily("driftd_drift_warning", "1 while the detector is in warning.", labels=DETECTOR_LABELS)
        detections = CounterMetricFamily("driftd_drift_detections", "Entries into drift.", labels=DETECTOR_LABELS)
        tests = CounterMetricFamily("driftd_drift_tests", "Tests run (decisions taken).", labels=DETECTOR_LABELS)
        performance = GaugeMetricFamily("driftd_model_performance", "Model metric over the reference period and the current window.", labels=["model", "metric", "window"])
        version = GaugeMetricFamily("driftd_model_version_info", "Model version seen in the latest events.", labels=["model", "version"])
        reference = GaugeMetricFamily("driftd_reference_complete", "1 once the model's reference is complete and data-drift tests run.", labels=["model"])
        unwatched = GaugeMetricFamily("driftd_unwatched_features", "Features beyond max_features: counted, not tested or exported.", labels=["model"])
        untestable = GaugeMetricFamily(
            "driftd_untestable_features", "Watched columns no test can watch (reason on /status): always missing, too few values...", labels=["model"])
        uncalibrated = GaugeMetricFamily(
            "driftd_tests_uncalibrated", "Data-drift tests waiting for their thresholds (their decisions are held meanwhile).", labels=["model"])
        exported = set()
        for s in states:
            for model, pipeline in s.models.items():
                # A model whose events are not keyed by its name lands on several
                # partitions; export one of them rather than duplicate series.
                if model in exported:
                    continue
                exported.add(model)
                version.add_metric([model, pipeline.version or ""], 1)
                reference.add_metric([model], int(pipeline.reference_complete))
                unwatched.add_metric([model], pipeline.n_unwatched)
                untestable.add_metric([model], len(pipeline.untestable))
                uncalibrated.add_metric([model], pipeline.uncalibrated)
                for name, feature, det in pipeline.detectors():
                    labels = [model, name, feature]
                    if det.statistic is not None:
                        statistic.add_metric(labels, det.statistic)
                    if det.threshold is not None:  # None while its calibration is pending
                        threshold.add_metric(labels, det.threshold)
                    if det.p_value is not None:
                        p_value.add_metric(labels, det.p_value)
                    active.add_metric(labels, int(det.drift))
                    warning.add_metric(labels, int(det.warning))
                    detections.add_metric(labels, det.n_detections)
                    tests.add_metric(labels, det.n_tests)
                    if name == "decay":
                        for window, value in (("reference", det.baseline), ("current", det.current)):
                            if value is not None:
                                performance.add_metric([model, feature, window], value)
        return (statistic, threshold, p_value, active, warning, detections, tests, performance, version, reference,
                unwatched, untestable, uncalibrated)


def _schema_families(states):
    """Schema drift per model and column, summed over partitions (counted since each
    model version's reference was complete)."""
    missing = CounterMetricFamily("driftd_feature_missing", "Predictions without a value for a watched feature (absent or null).", labels=["model", "feature"])
    unseen = CounterMetricFamily("driftd_feature_unseen_levels", "Categorical values the feature's reference did not have.", labels=["model", "feature"])
    unknown = CounterMetricFamily("driftd_unknown_features", "Predictions carrying a feature the reference did not have.", labels=["model"])
    totals: dict = {}
    for s in states:
        for model, pipeline in s.models.items():
            totals.setdefault(model, {})
            for key, n in pipeline.schema.items():
                totals[model][key] = totals[model].get(key, 0) + n
    for model, counts in sorted(totals.items()):
        unknown.add_metric([model], counts.get(("unknown", "<features>"), 0))
        for (what, column), n in sorted(counts.items()):
            if what == "missing":
                missing.add_metric([model, column], n)
            elif what == "unseen":
                unseen.add_metric([model, column], n)
    return missing, unseen, unknown


def _learning_families(states):
    score = GaugeMetricFamily("driftd_learner_score", "Each learner's and the champion's score on their recent paired labelled events.", labels=["model", "learner"])
    progressive = GaugeMetricFamily("driftd_learner_progressive_score", "Each learner's running score in progressive validation.", labels=["model", "learner"])
    retrains = CounterMetricFamily("driftd_retrains", "Challengers retrained, by reason.", labels=["model", "reason"])
    promotions = CounterMetricFamily("driftd_promotions", "Promotion gate decisions: promoted, or rejected by the gate.", labels=["model", "outcome"])
    errors = CounterMetricFamily("driftd_learner_errors", "Labelled events a learner could not take.", labels=["model"])
    exported = set()
    for s in states:
        for model, pipeline in s.models.items():
            cc = pipeline.lifecycle
            if cc is None or model in exported:
                continue
            exported.add(model)
            for learner, value in sorted(cc.scores().items()):
                if value is not None:
                    score.add_metric([model, learner], value)
            for name, learner in sorted(cc.learners.items()):
                progressive.add_metric([model, name], learner.metric.get())
            for reason in sorted({"drift", "decay", "schedule", *cc.retrains}):
                retrains.add_metric([model, reason], cc.retrains.get(reason, 0))
            decided = cc.decisions
            promotions.add_metric([model, "promoted"], decided.get("promoted", 0))
            promotions.add_metric([model, "rejected"], sum(decided.get(r, 0) for r in ("not_significant", "below_margin", "rate_limited")))
            errors.add_metric([model], pipeline.learning_errors + sum(cc.errors.values()))
    return score, progressive, retrains, promotions, errors


def _sum(counters):
    total: dict = {}
    for counter in counters:
        for key, value in counter.items():
            total[key] = total.get(key, 0) + value
    return total
