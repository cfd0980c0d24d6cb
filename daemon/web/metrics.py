"""Prometheus metrics: read from the partition states at scrape time, plus the process's own.

What the state holds (counts, detector internals) is not copied into metric objects: a
custom collector reads it when Prometheus scrapes, under the loop's lock (the detectors'
numbers as plain readings, turned into metric families after the lock is released), so the
numbers exported are the checkpointed ones and survive restarts with the state. What belongs to
the process (alert deliveries, batch times) lives in ordinary metric objects. The consumer
lag is computed when scraped too, from what :mod:`daemon.kafka.lag` tracks, and so is each
model's event age (wall clock now minus the newest event time processed). All of it sits in
one registry of the daemon's own: a test can build as many as it likes.

Label cardinality is bounded by configuration: model, detector and feature (at most
``max_features`` per model), never event ids. ``metrics.per_feature`` bounds it further
(:class:`daemon.config.MetricsConfig`): per-feature series for every feature, only for
those in warning or drift (now or within ``per_feature_hold_seconds``), or none; the
model's own tests and the per-model summaries of its features' tests are always exported.
README "Metric cardinality" gives the series count of each setting.
"""

from __future__ import annotations

import threading
import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.utils import floatToGoString

from daemon.config import MetricsConfig
from daemon.kafka.lag import LagTracker
from daemon.stream.estimation import NAME as ESTIMATED_DECAY
from daemon.stream.events import REASONS
from daemon.stream.join import OUTCOMES
from daemon.stream.labels import DECAY
from daemon.stream.partition_state import LEGACY_DELAY_BUCKETS, rebin

DETECTOR_LABELS = ["model", "detector", "feature"]
#: How long a scrape waits for the consumer loop before serving the previous reading.
LOCK_WAIT_SECONDS = 0.5
#: Dead-letter reasons an event of a watched model can have (its other reasons come before
#: the model is known): exported at 0 for every model from the start, so rate() sees the first.
MODEL_REASONS = ("missing_field", "wrong_type", "non_finite", "too_deep", "bad_timestamp", "internal_error")


class Metrics:
    """The daemon's registry. ``states``: partition number -> PartitionState, read under
    ``lock`` when scraped; ``settings``: the ``metrics:`` section (None: every feature's
    series, ``per_feature: all``, as a library user or test building one expects);
    ``clock``: wall-clock seconds, for event ages and ``per_feature_hold_seconds``."""

    def __init__(self, states: dict, lock: threading.Lock, settings: MetricsConfig | None = None, clock=time.time):
        settings = settings if settings is not None else MetricsConfig(per_feature="all")
        self.registry = CollectorRegistry(auto_describe=True)
        #: Consumer lag (daemon.kafka.lag): fed by the consumer loop, read at scrapes.
        self.lag = LagTracker(settings.lag_refresh_seconds, on_probe_error=lambda e: self.kafka_errors.labels("lag_probe").inc())
        # Lag first: read before the state collector waits for the loop's lock.
        self.registry.register(_LagCollector(self.lag))
        self.registry.register(_StateCollector(states, lock, settings, clock))
        #: The alert sender (daemon.alerting.sender), set once it exists: its backlog is read at scrapes.
        self.alert_sender = None
        self.registry.register(_AlertBacklogCollector(lambda: self.alert_sender, clock))
        r = self.registry
        self.alerts_sent = Counter("driftd_alerts_sent", "Alert deliveries by sink and outcome.", ["sink", "outcome"], registry=r)
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
        # Federated learning (daemon/federation): set by Federation.step; bounded by federated learners.
        self.federation_rounds = Counter(
            "driftd_federation_rounds", "Federation rounds whose global parameters this participant merged.",
            ["model", "learner"], registry=r)
        self.federation_participants = Gauge(
            "driftd_federation_round_participants", "Participants whose updates went into the last round.",
            ["model", "learner"], registry=r)
        self.federation_rejected = Counter(
            "driftd_federation_rejected_updates", "Federation messages refused, by reason (signature, malformed, "
            "unknown_participant, norm, global_norm, stale, no_events).", ["reason"], registry=r)
        self.federation_score = Gauge(
            "driftd_federation_score", "Progressive score (accuracy or MAE, recent window) of the federated learner "
            "here: the last global model and what it learnt locally since.", ["model", "learner"], registry=r)
        self.federation_aggregator = Gauge(
            "driftd_federation_aggregator", "1 while this participant is the elected aggregator.", ["federation"], registry=r)


class _LagCollector:
    """``driftd_consumer_lag_records`` from a :class:`~daemon.kafka.lag.LagTracker`, when scraped."""

    def __init__(self, tracker: LagTracker):
        self._tracker = tracker

    def describe(self):
        return []

    def collect(self):
        family = GaugeMetricFamily(
            "driftd_consumer_lag_records",
            "Records of each owned partition's log past the offset driftd has processed up to (log end from the "
            "latest fetch high watermark).", labels=["topic", "partition"])
        for tp, lag in sorted(self._tracker.lags().items()):
            family.add_metric([tp.topic, str(tp.partition)], lag)
        yield family


class _AlertBacklogCollector:
    """``driftd_alerts_pending`` and ``driftd_alerts_oldest_pending_age_seconds`` by sink,
    from the alert sender's backlog when scraped: an outage shorter than the give-up time
    shows here, where ``driftd_alerts_sent_total`` has no gave_up yet."""

    def __init__(self, sender, clock=time.time):
        self._sender = sender
        self._clock = clock

    def describe(self):
        return []

    def collect(self):
        pending = GaugeMetricFamily("driftd_alerts_pending", "Alerts a sink has not finished with (being tried or "
                                    "retried, or waiting behind an earlier alert of their episode).", labels=["sink"])
        oldest = GaugeMetricFamily("driftd_alerts_oldest_pending_age_seconds", "Seconds since the oldest alert "
                                   "pending for a sink was first due (0 when none is).", labels=["sink"])
        sender = self._sender()
        if sender is not None:
            now = self._clock()
            for sink, (count, first_due) in sorted(sender.backlog().items()):
                pending.add_metric([sink], count)
                oldest.add_metric([sink], 0.0 if first_due is None else max(0.0, now - first_due))
        yield pending
        yield oldest


class _StateCollector:
    """Reads every partition's state when scraped."""

    def __init__(self, states: dict, lock: threading.Lock, settings: MetricsConfig, clock=time.time):
        self._states = states
        self._lock = lock
        self._settings = settings
        self._clock = clock
        self._last: list = []
        # per_feature=alerting: (model, feature) -> wall time last seen in warning or drift,
        # and the feature's drift entries at the last scrape (an episode between two scrapes counts).
        self._alerting_at: dict[tuple, float] = {}
        self._entries: dict[tuple, int] = {}

    def describe(self):
        return []  # families depend on the state; nothing to promise at registration

    def collect(self):
        # A long batch can hold the lock; a scrape then gets the previous reading rather
        # than timing out.
        if not self._lock.acquire(timeout=LOCK_WAIT_SECONDS):
            return self._last
        try:
            states = list(self._states.values())
            now = self._clock()
            models = [(model, pipeline, _feature_tests(pipeline)) for model, pipeline in _models(states)]
            shown = self._features_shown(models, now)
            families = list(self._collect(states, shown, now))
            readings = _read_detectors(models, shown)
        finally:
            self._lock.release()
        # The per-detector families are built from plain readings after the lock is
        # released: with 1,000 models that is most of a scrape's work (seconds with
        # per_feature: all), and the loop need not wait for it.
        self._last = families + list(_detector_families(readings))
        return self._last

    def _collect(self, states: list, shown: dict | None, now: float):
        """The families built whole under the lock: per model or smaller."""
        processed = CounterMetricFamily("driftd_events_processed", "Valid events processed.", labels=["model", "kind"])
        dead = CounterMetricFamily(
            "driftd_dead_letter", "Invalid events sent to the dead-letter topic, by reason and watched model (\"\": "
            "not known, e.g. not JSON, or not watched).", labels=["reason", "model"])
        joins = CounterMetricFamily("driftd_label_join", "Label-join outcomes.", labels=["model", "outcome"])
        resets = CounterMetricFamily("driftd_offset_resets", "Times a partition's offsets went backwards (topic re-created).", labels=["partition"])
        pending = GaugeMetricFamily(
            "driftd_label_join_pending", "Predictions and labels waiting to be joined, per partition and model.",
            labels=["partition", "model"])
        models = {m for s in states for m in s.models}
        for (model, kind), n in _per_model((s.processed for s in states), models, ("prediction", "label")):
            processed.add_metric([model, kind], n)
        dead_totals = _sum(s.dead_letters for s in states)
        by_model = _per_model((getattr(s, "model_dead_letters", {}) for s in states), models, MODEL_REASONS)
        for reason in REASONS:  # every reason from the start, so rate() sees the first one
            known = sum(n for (_, r), n in by_model if r == reason)
            dead.add_metric([reason, ""], dead_totals.get(reason, 0) - known)
        for (model, reason), n in by_model:
            dead.add_metric([reason, model], n)
        for (model, outcome), n in _per_model((s.join.counts for s in states), models, OUTCOMES):
            joins.add_metric([model, outcome], n)
        for s in states:
            resets.add_metric([str(s.partition)], s.offset_resets)
            for model, n in sorted(_pending_by_model(s).items()):
                pending.add_metric([str(s.partition), model], n)
        yield from (processed, dead, joins, resets, pending)
        yield self._label_delay(states)
        yield from _schema_families(states, shown)
        yield from _learning_families(states)
        yield _event_age(states, now)

    def _features_shown(self, models: list, now: float) -> dict | None:
        """model -> the features whose series are exported (``metrics.per_feature``); None
        for every feature (``all``). ``models``: [(name, pipeline, its feature tests)]."""
        mode, hold = self._settings.per_feature, self._settings.per_feature_hold_seconds
        if mode == "all":
            return None
        shown, alerting_at, entries = {}, {}, {}
        for model, _, features in models:
            shown[model] = set()
            if mode == "none":
                continue
            for feature, tests in features.items():
                key = (model, feature)
                count = sum(d.n_detections for _, d in tests)
                entries[key] = count
                if any(d.drift or d.warning for _, d in tests) or count > self._entries.get(key, count):
                    alerting_at[key] = now
                elif key in self._alerting_at and now - self._alerting_at[key] <= hold:
                    alerting_at[key] = self._alerting_at[key]
                if key in alerting_at:
                    shown[model].add(feature)
        # Features gone (a new model version, a partition moved away) are forgotten.
        self._alerting_at, self._entries = alerting_at, entries
        return shown

    def _label_delay(self, states):
        family = HistogramMetricFamily("driftd_label_delay_seconds", "Label time minus prediction time of joined events.", labels=["model"])
        merged: dict[str, list] = {}
        # Every state of one daemon has the configured buckets (PartitionState.attach re-bins
        # a restored one); a state that has not been attached is re-binned here.
        bounds = tuple(getattr(states[0], "delay_buckets", LEGACY_DELAY_BUCKETS)) if states else ()
        for s in states:
            own = tuple(getattr(s, "delay_buckets", LEGACY_DELAY_BUCKETS))
            for model, (counts, total) in s.label_delay.items():
                if own != bounds:
                    counts = rebin(counts, own, bounds)
                if model in merged:
                    merged[model] = [merged[model][0] + counts, merged[model][1] + total]
                else:
                    merged[model] = [counts.copy(), total]
        for model, (counts, total) in sorted(merged.items()):
            cumulative = counts.cumsum()
            buckets = [(floatToGoString(b), int(c)) for b, c in zip(bounds, cumulative)]
            family.add_metric([model], buckets, total)
        return family

def _read_detectors(models: list, shown: dict | None) -> list:
    """Plain readings of the models' detectors, taken under the lock: [(model, the
    pipeline's own numbers, the exported detectors' numbers, per-test summaries of its
    features)]. ``models``: [(name, pipeline, its feature tests)]; ``shown``: see
    :meth:`_StateCollector._features_shown`."""
    readings = []
    for model, pipeline, features in models:
        estimation = getattr(pipeline, "estimation", None)  # estimated performance (README "Before the labels come")
        own = (pipeline.version or "", int(pipeline.reference_complete), pipeline.n_unwatched, len(pipeline.untestable),
               pipeline.uncalibrated, sorted(estimation.metrics().items()) if estimation is not None else [],
               sorted(estimation.errors().items()) if estimation is not None else [])
        # The counters go on from the earlier versions' detectors of the same test and column.
        before = pipeline.counts_before() if hasattr(pipeline, "counts_before") else {}
        detectors = []
        for name, feature, det in pipeline.detectors():
            if shown is not None and feature in features and feature not in shown[model]:
                continue
            performance = (det.baseline, det.current) if name == "decay" else None
            earlier = before.get((name, feature), (0, 0))
            # A p-value computed since its test (KS: ~50 us a test) is computed after the lock.
            detectors.append((name, feature, det.statistic, det.threshold, det.p_value_reader(), int(det.drift),
                              int(det.warning), det.n_detections + earlier[0], det.n_tests + earlier[1], performance))
        by_test: dict[str, list] = {}
        for feature, feature_tests in features.items():
            for name, det in feature_tests:
                by_test.setdefault(name, []).append((det.drift, det.warning, det.n_detections + before.get(
                    (name, feature), (0, 0))[0], det.statistic, det.threshold))
        # A feature test gone with an earlier version still counts in its test's sum (a
        # counter that went back would read as a reset, and increase() as new detections).
        current = {(name, feature) for feature, feature_tests in features.items() for name, _ in feature_tests}
        for (name, feature), (n_detections, _) in sorted(before.items()):
            if (name, feature) not in current and _of_a_feature(name, feature):
                by_test.setdefault(name, []).append((0, 0, n_detections, None, None))
        readings.append((model, own, detectors, sorted(by_test.items())))
    return readings


def _detector_families(readings: list):
    """The per-detector and per-test families of :meth:`_StateCollector._read_detectors`'s readings."""
    statistic = GaugeMetricFamily("driftd_drift_statistic", "Detector statistic at its last test.", labels=DETECTOR_LABELS)
    threshold = GaugeMetricFamily("driftd_drift_threshold", "Value the statistic is compared with (its calibrated threshold; River detectors: their parameter).", labels=DETECTOR_LABELS)
    p_value = GaugeMetricFamily("driftd_drift_p_value", "p-value of the last test, where the method has one.", labels=DETECTOR_LABELS)
    active = GaugeMetricFamily("driftd_drift_active", "1 while the detector is in drift.", labels=DETECTOR_LABELS)
    warning = GaugeMetricFamily("driftd_drift_warning", "1 while the detector is in warning.", labels=DETECTOR_LABELS)
    detections = CounterMetricFamily("driftd_drift_detections", "Entries into drift.", labels=DETECTOR_LABELS)
    tests = CounterMetricFamily("driftd_drift_tests", "Tests run (decisions taken).", labels=DETECTOR_LABELS)
    performance = GaugeMetricFamily(
        "driftd_model_performance", "Model metric over the reference period and the current window of labelled events, "
        "and estimated without labels over the last decay_window predictions (window=\"estimated\").",
        labels=["model", "metric", "window"])
    estimate_error = GaugeMetricFamily(
        "driftd_estimate_error", "Estimated minus realised metric over the last decay_window labelled predictions "
        "after the estimate's reference (how far the label-free estimate can be trusted).", labels=["model", "metric"])
    version = GaugeMetricFamily("driftd_model_version_info", "Model version seen in the latest events.", labels=["model", "version"])
    reference = GaugeMetricFamily("driftd_reference_complete", "1 once the model's reference is complete and data-drift tests run.", labels=["model"])
    unwatched = GaugeMetricFamily("driftd_unwatched_features", "Features beyond max_features: counted, not tested or exported.", labels=["model"])
    untestable = GaugeMetricFamily(
        "driftd_untestable_features",
        "Watched columns whose distribution no test describes (reason on /status): always missing in the reference "
        "(only values appearing are tested), too few values, no reachable threshold...", labels=["model"])
    uncalibrated = GaugeMetricFamily(
        "driftd_tests_uncalibrated", "Data-drift tests waiting for their thresholds (their decisions are held meanwhile).", labels=["model"])
    # Per model and test, over the model's features (every per_feature setting).
    in_drift = GaugeMetricFamily("driftd_features_in_drift", "Features of the model whose test is in drift.", labels=["model", "detector"])
    in_warning = GaugeMetricFamily("driftd_features_in_warning", "Features of the model whose test is in warning.", labels=["model", "detector"])
    ratio = GaugeMetricFamily(
        "driftd_drift_ratio_max", "Largest statistic/threshold over the model's features, per test (1 and above: drift).",
        labels=["model", "detector"])
    entries = CounterMetricFamily("driftd_feature_drift_detections", "Entries into drift of the model's features, per test.", labels=["model", "detector"])
    for model, own, detector_readings, by_test in readings:
        model_version, complete, n_unwatched, n_untestable, n_uncalibrated, estimated, errors = own
        version.add_metric([model, model_version], 1)
        reference.add_metric([model], complete)
        unwatched.add_metric([model], n_unwatched)
        untestable.add_metric([model], n_untestable)
        uncalibrated.add_metric([model], n_uncalibrated)
        for name, feature, stat, thresh, read_p, drift, warn, n_detections, n_tests, measured in detector_readings:
            labels = [model, name, feature]
            p = read_p()
            if stat is not None:
                statistic.add_metric(labels, stat)
            if thresh is not None:  # None while its calibration is pending
                threshold.add_metric(labels, thresh)
            if p is not None:
                p_value.add_metric(labels, p)
            active.add_metric(labels, drift)
            warning.add_metric(labels, warn)
            detections.add_metric(labels, n_detections)
            tests.add_metric(labels, n_tests)
            if measured is not None:
                for window, value in zip(("reference", "current"), measured):
                    if value is not None:
                        performance.add_metric([model, feature, window], value)
        for metric, value in estimated:
            performance.add_metric([model, metric, "estimated"], value)
        for metric, value in errors:
            estimate_error.add_metric([model, metric], value)
        for name, dets in by_test:
            labels = [model, name]
            in_drift.add_metric(labels, sum(d[0] for d in dets))
            in_warning.add_metric(labels, sum(d[1] for d in dets))
            entries.add_metric(labels, sum(d[2] for d in dets))
            ratios = [stat / thresh for _, _, _, stat, thresh in dets if stat is not None and thresh is not None and thresh > 0]
            if ratios:
                ratio.add_metric(labels, max(ratios))
    return (statistic, threshold, p_value, active, warning, detections, tests, performance, estimate_error, version, reference,
            unwatched, untestable, uncalibrated, in_drift, in_warning, ratio, entries)


def _pending_by_model(state) -> dict[str, int]:
    """model -> predictions and labels waiting in the partition's join buffer, for every
    model of the partition (0 included)."""
    join, models = state.join, list(state.models)
    if len(models) <= 1:  # only a watched model's events are buffered: all of it is that model's
        return {models[0]: join.pending} if models else {}
    return {model: join.pending_of(model) for model in models}


def _models(states):
    """(name, pipeline) of every model, once: a model whose events are not keyed by its
    name lands on several partitions; one of them is exported rather than duplicate series."""
    seen = set()
    for s in states:
        for model, pipeline in s.models.items():
            if model not in seen:
                seen.add(model)
                yield model, pipeline


def _feature_tests(pipeline) -> dict[str, list]:
    """feature -> [(test, detector)] of the model's input features: the tests of its
    prediction, score and feature set (names in angle brackets) and of its labels are the
    model's own, not a feature's."""
    label_tests = set(pipeline.label_detectors)
    features: dict[str, list] = {}
    for name, feature, det in pipeline.detectors():
        if (name, feature) not in label_tests and _of_a_feature(name, feature):
            features.setdefault(feature, []).append((name, det))
    return features


#: Tests of the model's metrics (their column: the metric), not of a feature.
LABEL_TEST_NAMES = frozenset({DECAY, ESTIMATED_DECAY})


def _of_a_feature(test: str, column: str) -> bool:
    """Whether a test of any version watches an input feature: not a column in angle
    brackets (the prediction, the score, the feature set, the error stream) and not a
    decay test of a metric."""
    return test not in LABEL_TEST_NAMES and not (column.startswith("<") and column.endswith(">"))


def _event_age(states, now: float):
    """Wall clock now minus the newest event time processed, per model, stream and
    partition (``PartitionState.newest_ts``: (model, "prediction" | "label") -> ts). The
    partition is that of the consumer lag, so that a rule can tell a model that is late
    because its own partition waits from one whose producers are quiet beside a busy one."""
    family = GaugeMetricFamily(
        "driftd_event_age_seconds",
        "Now minus the event time (ts) of the newest event processed, per model, stream (prediction, label) and input "
        "partition: how old driftd's view is (negative: producer clocks ahead of driftd's).",
        labels=["model", "stream", "partition"])
    for s in sorted(states, key=lambda s: s.partition):
        for (model, stream), ts in sorted((getattr(s, "newest_ts", None) or {}).items()):
            family.add_metric([model, stream, str(s.partition)], now - ts)
    return family


def _schema_families(states, shown: dict | None):
    """Schema drift per model and column, summed over partitions (counted since each
    model version's reference was complete); a feature's own series only where ``shown``
    (model -> features) has it, the score's always."""
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
            if shown is not None and not column.startswith("<") and column not in shown.get(model, ()):
                continue
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
    errors = CounterMetricFamily("driftd_learner_errors", "Labelled events a learner could not take, and retrains that failed.", labels=["model"])
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


def _per_model(counters, models, keys) -> list[tuple[tuple, int]]:
    """``counters`` ((model, key) -> n) summed, with every key of ``keys`` of every model
    of ``models`` at 0 until counted, sorted: a watched model's series exist from its
    first event (a series born at 5 is a start that increase() cannot see, and a runbook's
    query of a count still 0 read "no data")."""
    total = _sum(counters)
    for model in models:
        for key in keys:
            total.setdefault((model, key), 0)
    return sorted(total.items())


def _sum(counters):
    total: dict = {}
    for counter in counters:
        for key, value in counter.items():
            total[key] = total.get(key, 0) + value
    return total
