"""One model's detectors, fed with its predictions and joined labels.

The reference: the first ``reference_size`` predictions of the model (of each
``model_version`` when ``reference_per_version``) are collected as they come; when the
reference is complete the watched features are fixed (the first ``max_features`` names in
order of appearance), each is typed (numeric if every present reference value is a
number, else categorical), and the detectors are built from the reference values. From
then on each batch of predictions is fed to them column by column. Joined labels feed
the error-stream detector (concept drift) and the performance-decay tests, whose own
baseline is the first ``decay_reference_size`` labelled events of the version.
"""

from __future__ import annotations

import logging
import math

import numpy as np

from detectors import KS, PSI, ChiSquare, Detector, PerformanceDecay, RiverDetector

from .config import ModelConfig
from .learning import build_lifecycle

log = logging.getLogger(__name__)

#: Feature label used for the prediction score.
SCORE = "<score>"


class ModelPipeline:
    """Detectors of one model (in one partition)."""

    def __init__(self, name: str, config: ModelConfig):
        self.name = name
        self.config = config
        self.version: str | None = None
        self.version_changes = 0
        self.unwatched_features: set[str] = set()
        self.skipped: dict[tuple[str, str], str] = {}
        # Learners outlive model versions: they learn the world, not the deployed model.
        self.lifecycle = build_lifecycle(config, f"models.{name}.learners") if config.learners else None
        self.pending_promotions: list[tuple] = []  # (promotion, event time), published by the daemon
        self.learning_errors = 0
        self._start_version(None)

    def _start_version(self, version: str | None) -> None:
        self.version = version
        self.n_predictions = 0  # of this version
        self._reference: list[tuple[dict, object]] = []
        self.features: dict[str, str] = {}  # name -> "numeric" | "categorical"
        self.data_detectors: dict[tuple[str, str], Detector] = {}  # (test, feature) -> detector
        self.n_tested = 0  # predictions fed to the data detectors (after the reference)
        self.n_labelled = 0  # joined labels fed to the label detectors
        # For each kind of detector (data: True, labels: False), the count fed before the
        # last batch and the event times of that batch: tells when a detection happened.
        self._fed: dict[bool, tuple[int, list]] = {}
        self.label_detectors: dict[tuple[str, str], Detector] = {}  # (name, "<error>"/metric) -> detector
        self._build_label_detectors()

    @property
    def reference_complete(self) -> bool:
        return bool(self.data_detectors) or len(self._reference) >= self.config.reference_size

    def detectors(self):
        """Every (detector name, feature, detector) of the model."""
        for (name, feature), detector in self.data_detectors.items():
            yield name, feature, detector
        for (name, feature), detector in self.label_detectors.items():
            yield name, feature, detector

    # -- predictions ------------------------------------------------------------------------
    def check(self, event) -> str | None:
        """Why this prediction cannot be used, or None; checked before anything is updated."""
        if self.config.task == "regression" and not _is_number(event.prediction):
            return "wrong_type"
        if self.config.task == "classification" and isinstance(event.prediction, float) and not event.prediction.is_integer():
            return "wrong_type"
        for name, kind in self.features.items():
            value = event.features.get(name)
            if kind == "numeric" and value is not None and not _is_number(value):
                return "wrong_type"
        return None

    def observe_predictions(self, events: list) -> None:
        """Feed a batch of (checked) predictions of this model, in order."""
        start = 0
        for i, event in enumerate(events):
            if event.model_version == self.version:
                continue
            if self.config.reference_per_version and (self.n_predictions or i > start):
                self._feed(events[start:i])
                start = i
                self.version_changes += 1
                self._start_version(event.model_version)
            else:
                self.version = event.model_version
        self._feed(events[start:])

    def _feed(self, events: list) -> None:
        if not events:
            return
        self.n_predictions += len(events)
        if not self.reference_complete:
            room = self.config.reference_size - len(self._reference)
            self._reference.extend((e.features, e.score) for e in events[:room])
            events = events[room:]
            if len(self._reference) >= self.config.reference_size:
                self._build_data_detectors()
        if not events or not self.data_detectors:
            return
        # Numeric columns become float arrays once here, not once per detector that reads
        # them (check() has made sure they hold numbers or None).
        columns = {
            name: _floats(e.features.get(name) for e in events) if kind == "numeric" else [e.features.get(name) for e in events]
            for name, kind in self.features.items()
        }
        columns[SCORE] = _floats(_score_value(e.score) for e in events)
        self._fed[True] = (self.n_tested, [e.ts for e in events])
        self.n_tested += len(events)
        for (_, feature), detector in self.data_detectors.items():
            detector.update_many(columns[feature])

    def _build_data_detectors(self) -> None:
        config = self.config
        names: dict[str, None] = {}
        for features, _ in self._reference:
            for name in features:
                names.setdefault(name)
        watched = list(names)[: config.max_features]
        self.unwatched_features.update(list(names)[config.max_features:])
        columns = {name: [f.get(name) for f, _ in self._reference] for name in watched}
        scores = [_score_value(s) for _, s in self._reference]
        if config.watch_score and any(v is not None for v in scores):
            columns[SCORE] = scores
        common = dict(window=config.window, stride=config.stride, ert=config.ert)
        for name, values in columns.items():
            numeric = all(v is None or _is_number(v) for v in values)
            kind = "numeric" if numeric else "categorical"
            if name != SCORE:
                self.features[name] = kind
            tests = config.numeric_tests if numeric else config.categorical_tests
            for test in tests:
                try:
                    if test == "ks":
                        detector = KS(values, **common)
                    elif test == "psi":
                        detector = PSI(values, categorical=not numeric, **common)
                    else:
                        detector = ChiSquare(values, **common)
                except ValueError as e:
                    # A feature the reference cannot describe (say, always missing) is
                    # reported on /status, not tested on noise.
                    self.skipped[(test, name)] = str(e)
                    log.warning("model %s: no %s test on %s: %s", self.name, test, name, e)
                    continue
                self.data_detectors[(test, name)] = detector
        self._reference = []

    # -- labels -----------------------------------------------------------------------------
    def _build_label_detectors(self) -> None:
        config = self.config
        if config.error_detector:
            self.label_detectors[(config.error_detector.lower(), "<error>")] = RiverDetector(
                config.error_detector, **config.error_detector_params)
        for metric in config.decay_metrics:
            self.label_detectors[("decay", metric)] = PerformanceDecay(
                metric, window=config.decay_window, reference_size=config.decay_reference_size,
                alpha=config.decay_alpha, positive=config.positive_label)

    def detection_time(self, feature_kind_is_data: bool, detector: Detector) -> float | None:
        """Event time of the prediction whose value (or label) made ``detector`` enter
        drift, if that happened in the last batch."""
        fed = self._fed.get(feature_kind_is_data)
        if fed is None or detector.last_detection_at is None:
            return None
        before, times = fed
        i = detector.last_detection_at - before - 1
        return times[i] if 0 <= i < len(times) else None

    def check_label(self, label) -> str | None:
        if self.config.task == "regression":
            return None if _is_number(label) else "wrong_type"
        return "wrong_type" if isinstance(label, float) and not label.is_integer() else None

    def observe_labels(self, pairs: list[tuple]) -> int:
        """Feed (prediction payload, label) pairs; pairs of another model version than the
        current one are left out of the detectors (their baseline is gone), not out of the
        learners. Returns how many the detectors used."""
        current = [p[2] == self.version or not self.config.reference_per_version for p, _ in pairs]
        used = [pair for pair, ok in zip(pairs, current) if ok]
        if not used:
            if self.lifecycle is not None:
                self._learn(pairs, current, {})  # the learners learn every label (see _learn)
            return 0
        self._fed[False] = (self.n_labelled, [p[3] for p, _ in used])
        self.n_labelled += len(used)
        used = [(p[0], label) for p, label in used]
        y_pred = [p for p, _ in used]
        y_true = [t for _, t in used]
        if self.config.task == "regression":
            errors = [abs(float(t) - float(p)) for p, t in used]
        else:
            errors = [int(t != p) for p, t in used]
        # Batch-independent learning: a detector's signal reaches the lifecycle at the
        # event that tipped the detector, and the gate is asked after every event (it
        # decides every check_every events). Signalling and asking once per polled batch
        # made retrains, promotions and their idempotency keys depend on how the consumer
        # happened to batch the input: a replay after a crash (large catch-up batches)
        # promoted at another event, under another id, than the live run had.
        signals: dict[int, dict] = {}  # index in the batch -> {"drift": ..., "decay": ...}
        for (name, feature), detector in self.label_detectors.items():
            before, seen_before = detector.n_detections, detector.n_seen
            if feature == "<error>":
                detector.update_many(errors)
            else:
                detector.update_many(y_true, y_pred)
            if detector.n_detections > before:
                at = (detector.last_detection_at or 0) - seen_before - 1
                at = min(max(at, 0), len(used) - 1)
                signals.setdefault(at, {"drift": False, "decay": False})["decay" if name == "decay" else "drift"] = True
        if self.lifecycle is not None:
            self._learn(pairs, current, signals)
        return len(used)

    def _learn(self, pairs: list, current: list, signals: dict) -> None:
        """Progressive validation of the learners on each joined (prediction, label); the
        detectors' signals at the events where they fired; then the promotion gate.

        Learners learn the world, not the deployed model: they take every label, also the
        late ones of a model version no longer current (``current`` False), which the
        detectors leave out; those are not paired with the current champion."""
        i = -1  # index among the current version's pairs, which the signals refer to
        for ((prediction, _, version, ts, features), label), paired in zip(pairs, current):
            i += paired
            try:
                self.lifecycle.update(features, label, prediction, now=ts, champion_version=version, paired=paired)
            except ValueError:
                self.learning_errors += 1  # features a learner cannot take; counted, not fatal
            if paired and i in signals:
                self.lifecycle.on_signal(**signals[i])
            promotion = self.lifecycle.maybe_promote(ts)
            if promotion is not None:
                self.pending_promotions.append((promotion, ts))


def _floats(values) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in values], dtype=np.float64)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _score_value(score):
    """A numeric score as is; for a class -> probability mapping, the top probability."""
    if score is None or isinstance(score, float):
        return score
    if isinstance(score, dict):
        return max(score.values()) if score else None
    return float(score) if _is_number(score) and math.isfinite(score) else None

