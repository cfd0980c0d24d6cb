"""A model version's estimated performance: its metrics before the labels come.

Composes :mod:`detectors.estimation` (CBPE: :mod:`detectors.cbpe`; DLE:
:mod:`detectors.dle`) for one model version. The first ``decay_reference_size`` labelled
events of the version (those the decay tests take as their baseline) fit the estimator: a
classifier's scores are calibrated on them (CBPE), a regressor's loss models trained on them
(DLE). The estimated stream is every prediction of the version whose event time is after the
newest label of that reference, in the order of the prediction stream: a function of the
events alone, however the two topics were interleaved when read (predictions read before the
fit wait for it, at most :data:`MAX_WAITING` of them, a classifier's only if their score is
usable; beyond, the oldest are dropped). Each one's expected correctness (classification) or
predicted absolute error (regression) goes into the estimate's window of ``decay_window``
predictions and into the estimate's decay test (:class:`detectors.estimation.EstimateDecay`,
detector ``estimated_decay``, feature ``accuracy`` or ``mae``). That test has a contract of
its own: ``label_ert`` *predictions* between false alarms on a stationary stream, calibrated
off the loop like the label tests (held meanwhile, decided in order). Labelled events after
the reference measure the estimate's error against the realised metrics.

``estimation: auto`` (the default) estimates a classifier whose labelled reference events
carry scores (most of them: at least half) and every regressor; ``off`` never.

Decisions become :class:`~daemon.stream.decisions.Observation` s of side ``data`` (they
come from prediction records): the event time and offset of the prediction that
completed the test.

>>> from types import SimpleNamespace as Event
>>> from daemon.config import ModelConfig
>>> est = ModelEstimation(ModelConfig(decay_reference_size=100, decay_window=50, label_ert=10_000), None)
>>> pairs = [((i % 2, 0.9 if i % 2 else 0.1, None, 1.7e9 + i, {}), (i + (i % 10 == 0)) % 2)  # 90% right
...          for i in range(100)]
>>> est.observe_labels(pairs)
>>> est.fitted, est.waiting, [job.column for job in est.calibration_jobs()]
(True, True, ['estimated_decay/accuracy'])
>>> est.calibrate_now()
>>> events = [Event(prediction=1, score=0.9, features={}, ts=1.7e9 + 100 + i) for i in range(100)]
>>> est.observe_predictions(events, list(range(100, 200)))
>>> est.metrics()["accuracy"], [o.drift for o in est.drain()][:2]
(1.0, [False, False])
"""

from __future__ import annotations

import math
from array import array
from collections import deque

from detectors.cbpe import ClassificationEstimate
from detectors.dle import RegressionEstimate
from detectors.estimation import TESTED, EstimateDecay

from daemon.config import ModelConfig
from daemon.stream.calibration_jobs import CalibrationJob, calibrate_jobs_now
from daemon.stream.decisions import Observation, SourceLog, detail_of

#: Detector name of the estimate's decay test.
NAME = "estimated_decay"
#: Most predictions that wait for the estimate's fit (those newer than every reference
#: label so far); the start of the estimated stream is exact while fewer wait.
MAX_WAITING = 50_000


class Waiting:
    """Predictions waiting for the fit, oldest first, at most ``maxlen`` (beyond, the
    oldest are dropped): ``(features, prediction, score, ts, offset)`` rows kept as columns,
    about 32 bytes a prediction with a numeric score and no features (a classifier's)
    instead of a tuple of objects (~150): event times and offsets in arrays, numeric scores
    in an array until a mapping comes, predictions shared by value (a few classes).

    >>> w = Waiting(maxlen=3)
    >>> w.extend([(None, "a", 0.5, 1.0, 10), (None, "b", 0.7, 2.0, 11)])
    >>> w.extend([(None, "a", {"a": 0.9}, 3.0, 12), (None, "b", 0.1, 4.0, 13)])
    >>> len(w), w.first_ts(), list(w)[0]
    (3, 2.0, (None, 'b', 0.7, 2.0, 11))
    >>> w.drop_through(3.0); [row[3] for row in w]
    [4.0]
    """

    #: Distinct predictions shared at most (class labels; beyond, each is kept as it came).
    MAX_SHARED = 1000

    def __init__(self, maxlen: int):
        self.maxlen = maxlen
        self._start = 0  # rows before it are dropped (compacted away from time to time)
        self._features: list | None = None  # only once a row brings features (a regressor's)
        self._predictions: list = []
        self._scores = array("d")  # numbers (NaN: None) until a mapping comes; then a list
        self._ts = array("d")
        self._offsets = array("q")
        self._shared: dict = {}

    def __len__(self) -> int:
        return len(self._ts) - self._start

    def extend(self, rows) -> None:
        shared = self._shared
        for features, prediction, score, ts, offset in rows:
            if features is not None and self._features is None:
                self._features = [None] * len(self._ts)
            if self._features is not None:
                self._features.append(features)
            if _hashable(prediction):  # by type and value: 1, 1.0 and True stay apart
                key = (type(prediction), prediction)
                if len(shared) < self.MAX_SHARED:
                    prediction = shared.setdefault(key, prediction)
                else:
                    prediction = shared.get(key, prediction)
            self._predictions.append(prediction)
            scores = self._scores
            if type(scores) is array:
                if score is None:
                    scores.append(math.nan)
                elif (type(score) is float or type(score) is int) and not math.isnan(score):
                    scores.append(score)
                else:  # a mapping (or a NaN kept as it came): objects from here
                    self._scores = [None if s != s else s for s in scores]
                    self._scores.append(score)
            else:
                scores.append(score)
            self._ts.append(ts)
            self._offsets.append(offset)
        if len(self) > self.maxlen:
            self._start = len(self._ts) - self.maxlen
        if self._start > max(1024, len(self._ts) // 2):
            self._compact()

    def _compact(self) -> None:
        s, self._start = self._start, 0
        if self._features is not None:
            del self._features[:s]
        del self._predictions[:s], self._scores[:s], self._ts[:s], self._offsets[:s]

    def first_ts(self) -> float:
        return self._ts[self._start]

    def drop_through(self, ts: float) -> None:
        """Drop the oldest rows while their event time is at most ``ts``."""
        times, start = self._ts, self._start
        while start < len(times) and times[start] <= ts:
            start += 1
        self._start = start

    def __iter__(self):
        features = self._features
        scores = self._scores
        numeric = type(scores) is array
        for i in range(self._start, len(self._ts)):
            score = scores[i]
            if numeric and score != score:
                score = None
            yield (None if features is None else features[i], self._predictions[i], score, self._ts[i],
                   self._offsets[i])


def _hashable(value) -> bool:
    return value is None or type(value) in (int, str, bool, float)


class ModelEstimation:
    """Estimated performance of one model version (see the module docs)."""

    def __init__(self, config: ModelConfig, version: str | None):
        self.version = version
        self.task = config.task
        self.enabled = getattr(config, "estimation", "auto") != "off"
        self.reference_size = config.decay_reference_size
        self.ert = float(config.label_ert)
        self.window = config.decay_window
        self.metric = TESTED[self.task]
        if self.task == "regression":
            self.estimate = RegressionEstimate(window=config.decay_window)
        else:
            self.estimate = ClassificationEstimate(window=config.decay_window, positive=config.positive_label)
        self._collected: list[tuple] = []  # labelled reference events: (score or features, prediction, label)
        # Predictions read before the fit that may still be estimated, (features, prediction,
        # score, ts, offset): those newer than the newest reference label so far.
        self._waiting = Waiting(MAX_WAITING)
        self._newest_label = -math.inf  # event time of the newest label of the reference so far
        self._start = -math.inf  # once fitted: predictions after this event time are estimated
        self.test: EstimateDecay | None = None
        self.skipped: str | None = None if self.enabled else "estimation: off"
        self.sources = SourceLog()
        #: Predictions left out because their score is of the other form than the reference's
        #: (a number where it had mappings, or the reverse): they cannot be calibrated.
        self.unlike = 0
        self.unlike_said = False

    @property
    def fitted(self) -> bool:
        return self.estimate.fitted

    @property
    def detectors(self) -> dict:
        """(``estimated_decay``, metric) -> the estimate's decay test, once it exists."""
        return {(NAME, self.metric): self.test} if self.test is not None else {}

    @property
    def needs_features(self) -> bool:
        """Whether joined labels must bring their prediction's features: the regression
        estimate learns its error model from them."""
        return self.enabled and not self.skipped and self.task == "regression"

    # -- feeding ----------------------------------------------------------------------------
    def unlike_note(self) -> str | None:
        """Once, when predictions were first left out for a score of the other form than
        the reference's: the words of a warning; else None."""
        if not self.unlike or self.unlike_said:
            return None
        self.unlike_said = True
        form = "class -> probability mappings" if self.estimate.classes is not None else "numbers"
        of = f" of version {self.version}" if self.version is not None else ""
        return (f"the estimated performance{of} is calibrated on scores that are {form}; predictions whose score "
                "is not are left out of it (counted in /status as scores_left_out): send one form of score per "
                "model version")

    def __setstate__(self, state: dict) -> None:
        state.setdefault("unlike", 0)  # saved before scores of the other form were left out
        state.setdefault("unlike_said", False)
        state.setdefault("_newest_label", -math.inf)  # saved before the start was exact
        state.setdefault("_start", -math.inf)
        waiting = state.get("_waiting")
        if isinstance(waiting, deque):  # saved when the waiting predictions were tuples
            state["_waiting"] = Waiting(MAX_WAITING)
            state["_waiting"].extend(waiting)
        self.__dict__.update(state)

    def observe_labels(self, pairs: list, label_times: list | None = None) -> None:
        """Joined ``((prediction, score, version, ts, features, index), label)`` pairs of this
        version, in join order, with their labels' event times (default: the predictions'):
        the reference until it is complete, then the estimate's error."""
        if not self.enabled or self.skipped or not pairs:
            return
        if label_times is None:
            label_times = [p[3] for p, _ in pairs]
        if self.task == "regression":
            rows = [(p[4], p[0], label) for p, label in pairs]
        else:
            rows = [(p[1], p[0], label) for p, label in pairs]
        if not self.fitted:
            room = self.reference_size - len(self._collected)
            self._collected += rows[:room]
            self._newest_label = max([self._newest_label, *label_times[:room]])
            self._waiting.drop_through(self._newest_label)  # never estimated: not after the reference's labels
            rows = rows[room:]
            if len(self._collected) == self.reference_size:
                self.completed_at = label_times[min(room, len(label_times)) - 1]
                self._fit()
        if rows and self.fitted and not self.skipped:
            first, y_pred, y_true = zip(*rows)
            self.estimate.observe_labelled(list(first), list(y_pred), list(y_true))

    def _fit(self) -> None:
        collected, self._collected = self._collected, []
        waiting, self._waiting = list(self._waiting), Waiting(0)
        first, y_pred, y_true = (list(c) for c in zip(*collected))
        if self.task == "classification":
            with_score = sum(ClassificationEstimate.usable(s) for s in first)
            if 2 * with_score < len(first):  # auto: scores present for most predictions
                self.skipped = f"only {with_score} of the {len(first)} labelled reference events have a score"
                return
        try:
            if self.task == "classification":
                self.estimate.fit(first, y_true, y_pred)
            else:
                self.estimate.fit(first, y_pred, y_true)
        except ValueError as e:
            self.skipped = f"cannot fit the estimate: {e}"
            return
        losses = self.estimate.reference_losses
        if losses.size and float(losses.max()) == float(losses.min()):
            # No spread to measure a change against: any later loss that differs would be
            # "significant" (a model right on every reference event raised alerts at 0.999).
            self.skipped = (f"the estimated losses of the labelled reference are all {float(losses[0]):g} (a model "
                            "right on every reference event, or scores all alike): no change from it can be tested "
                            "under label_ert")
            return
        try:
            self.test = EstimateDecay(self.metric, self.estimate.reference_losses, window=self.window,
                                      ert=self.ert, defer_calibration=True)
        except ValueError as e:  # settings the test cannot meet (e.g. a label_ert below its stride)
            self.skipped = f"cannot build the estimate's test: {e}"
            return
        self._start = self._newest_label
        waiting = [w for w in waiting if w[3] > self._start]
        if waiting:
            self._estimate(*(list(c) for c in zip(*waiting)))

    def observe_predictions(self, events: list, offsets: list) -> None:
        """Feed predictions of this version (objects with ``features``, ``prediction``,
        ``score``, ``ts``) with their source offsets. Those after the reference's newest
        label are estimated (and tested); before the fit they wait for it."""
        if not self.enabled or self.skipped or not events:
            return
        if not self.fitted:
            if self.task == "regression":
                self._waiting.extend((e.features, e.prediction, e.score, e.ts, o)
                                     for e, o in zip(events, offsets) if e.ts > self._newest_label)
            else:  # a prediction without a usable score is never estimated: it need not wait
                usable = ClassificationEstimate.usable
                self._waiting.extend((None, e.prediction, e.score, e.ts, o) for e, o in zip(events, offsets)
                                     if e.score is not None and e.ts > self._newest_label and usable(e.score))
            return
        if self.test is None:
            return
        if any(e.ts <= self._start for e in events):  # older than the reference's labels: not estimated
            kept = [(e, o) for e, o in zip(events, offsets) if e.ts > self._start]
            events, offsets = [e for e, _ in kept], [o for _, o in kept]
            if not events:
                return
        self._estimate([e.features for e in events], [e.prediction for e in events], [e.score for e in events],
                       [e.ts for e in events], offsets)

    def _estimate(self, features: list, predictions: list, scores: list, times: list, offsets: list) -> None:
        if self.task == "classification":
            takes = self.estimate.takes
            keep = [i for i, s in enumerate(scores) if takes(s)]
            unlike = sum(map(ClassificationEstimate.usable, scores)) - len(keep)
            if unlike:
                self.unlike += unlike
            losses = self.estimate.update_many([scores[i] for i in keep], [predictions[i] for i in keep])
        else:
            keep = range(len(predictions))
            losses = self.estimate.update_many(features, predictions)
        self.sources.extend([times[i] for i in keep], [offsets[i] for i in keep])
        self.test.update_losses(losses)

    def drain(self) -> list[Observation]:
        """The estimate test's decisions since the last call, as observations."""
        if self.test is None:
            return []
        found = []
        for d in self.test.pop_decisions():
            ts, offset = self.sources.get(d.at)
            found.append(Observation(NAME, self.metric, d.drift, ts, offset, "data", d.at, detail_of(d, self.version)))
        if not self.waiting:
            self.sources.forget()
        return found

    # -- reading ----------------------------------------------------------------------------
    def metrics(self) -> dict:
        """Estimated metric -> value over the last ``decay_window`` predictions ({} when
        the estimate is skipped)."""
        if self.skipped:
            return {}
        return {m: v for m, v in self.estimate.metrics().items() if v is not None}

    def errors(self) -> dict:
        """Metric -> estimated minus realised over the last ``decay_window`` labelled
        predictions ({} when the estimate is skipped: a trial read an error of 0.0, a perfect
        estimate, beside no estimate at all)."""
        if self.skipped:
            return {}
        return {m: v for m, v in self.estimate.error().items() if v is not None}

    # -- calibration ------------------------------------------------------------------------
    @property
    def waiting(self) -> bool:
        return self.test is not None and not self.test.calibrated

    #: Event time of the label that completed the labelled reference (None before).
    completed_at: float | None = None

    @property
    def started(self) -> bool:
        """The labelled reference is complete (the estimate fitted, or skipped then), or
        estimation is off."""
        return self.fitted or self.skipped is not None

    @property
    def settled(self) -> bool:
        """Nothing more to decide unless more predictions come: off, skipped, or fitted
        with thresholds (the predictions that waited for the fit are estimated then)."""
        return not self.enabled or self.skipped is not None or (self.fitted and not self.waiting)

    def calibration_jobs(self) -> list[CalibrationJob]:
        if not self.waiting:
            return []
        return [CalibrationJob(f"{NAME}/{self.metric}", (NAME,), (self.test.null_model(),), (self.ert,))]

    def apply(self, job: CalibrationJob, thresholds, error: str | None) -> None:
        if not self.waiting or job.column != f"{NAME}/{self.metric}":
            return
        if error is not None:
            self.test, self.skipped = None, f"calibration failed: {error}"
        else:
            self.test.set_thresholds(*thresholds[0])

    def calibrate_now(self) -> None:
        """Compute the thresholds waited for, in this thread."""
        calibrate_jobs_now(self.calibration_jobs(), self.apply)
