"""A model version's label-side tests: the error-stream detector and the decay tests.

Fed with the joined (label, prediction) pairs of the current model version, in join
order. The contract: ``label_ert`` labelled events between false alarms of the label side
as a whole, split equally between its tests (Bonferroni). The error-stream detector's
share is reserved, not applied: River's detectors are not calibrated to a run length
(their parameters decide; see :mod:`detectors.river` for their measured false-alarm
rates, ADWIN's far below its share at its defaults). The decay tests calibrate to
their share once their reference period is complete, off the loop like the data tests
(:mod:`daemon.runtime.calibrator`): their tests are held meanwhile and decided in order when the
thresholds come.

Each decision becomes an :class:`~daemon.stream.decisions.Observation` placed at its labelled
event (the prediction's event time, the label record's offset, whichever of the two came
first); an entry into drift is also a *signal* for the learners, at the labelled event's
position. Pairs are fed in join order, that of the later of each prediction and its
label: when labels come after their predictions (the usual case) that is the label
topic's order, the same on any replay. A label read before its prediction joins when the
prediction comes, so a replay that interleaves the two topics otherwise can feed such a
pair at another position.

>>> from daemon.config import ModelConfig
>>> labels = LabelTests(ModelConfig(error_detector="", decay_reference_size=200, decay_window=100,
...                                 label_ert=100_000), version="7")
>>> labels.update_many([1] * 200, [1] * 180 + [0] * 20, [], range(200), range(200))
>>> labels.waiting, [job.column for job in labels.calibration_jobs()]   # reference complete
(True, ['decay/accuracy'])
>>> labels.calibrate_now()
>>> labels.update_many([1] * 100, [0] * 100, [], range(200, 300), range(200, 300))
>>> observations, signals = labels.drain()
>>> observations[0].drift, observations[0].position, signals
(True, 300, {300: {'drift': False, 'decay': True}})
"""

from __future__ import annotations

from detectors import PerformanceDecay, RiverDetector

from daemon.stream.calibration_jobs import CalibrationJob, calibrate_jobs_now
from daemon.config import ModelConfig
from daemon.stream.decisions import Observation, SourceLog, detail_of

#: Feature name of the error-stream detector.
ERROR = "<error>"
#: The decay tests' name (their column: the metric).
DECAY = "decay"


class LabelTests:
    """The label-side detectors of one model version (see the module docs)."""

    def __init__(self, config: ModelConfig, version: str | None):
        self.version = version
        self.detectors: dict[tuple[str, str], object] = {}  # (name, "<error>" or metric) -> detector
        self.skipped: dict[tuple[str, str], str] = {}
        self.sources = SourceLog()
        self._drift: dict[tuple, bool] = {}  # last decision of each detector
        n_tests = bool(config.error_detector) + len(config.decay_metrics)
        self.share = float(config.label_ert * max(1, n_tests))
        if config.error_detector:
            # A regression's absolute errors are unbounded; ADWIN's bound is for values in
            # [0, 1]: scaled by the version's first decay_reference_size errors.
            bounded = config.task == "regression" and config.error_detector == "ADWIN"
            self.detectors[(config.error_detector.lower(), ERROR)] = RiverDetector(
                config.error_detector, scale_after=config.decay_reference_size if bounded else None,
                **config.error_detector_params)
        for metric in config.decay_metrics:
            self.detectors[(DECAY, metric)] = PerformanceDecay(
                metric, window=config.decay_window, reference_size=config.decay_reference_size,
                ert=self.share, positive=config.positive_label, defer_calibration=True)

    @property
    def n_fed(self) -> int:
        return self.sources.next - 1

    def update_many(self, y_true: list, y_pred: list, errors: list, times: list, offsets: list) -> None:
        """Feed a batch of pairs (with their per-event errors, the labels' event times and
        the label records' offsets): a decision's event time is its label's, as the label
        side runs in label order (a prediction's would go back and forth)."""
        self.sources.extend(times, offsets)
        for (name, feature), detector in self.detectors.items():
            if feature == ERROR:
                detector.update_many(errors)
            else:
                detector.update_many(y_true, y_pred)

    def drain(self) -> tuple[list[Observation], dict[int, dict]]:
        """The decisions taken since the last call as observations, and the learners'
        signals: position (1-based among the pairs fed) -> {"drift": ..., "decay": ...}
        where a detector entered drift."""
        found, signals = [], {}
        for key, detector in self.detectors.items():
            name, feature = key
            for d in detector.pop_decisions():
                ts, offset = self.sources.get(d.at)
                found.append(Observation(name, feature, d.drift, ts, offset, "labels", d.at, detail_of(d, self.version)))
                if d.drift and not self._drift.get(key, False):
                    signals.setdefault(d.at, {"drift": False, "decay": False})["decay" if name == "decay" else "drift"] = True
                self._drift[key] = d.drift
        found.sort(key=lambda o: o.position)
        if not self.waiting:
            self.sources.forget()  # no held test refers to them
        return found, signals

    @property
    def waiting(self) -> bool:
        """Whether a test may be holding decisions until its thresholds come (or the error
        detector its values until their scale is known)."""
        return any((not getattr(d, "calibrated", True) and d.null_model() is not None) or getattr(d, "holding", False)
                   for d in self.detectors.values())

    # -- calibration ------------------------------------------------------------------------
    def calibration_jobs(self) -> list[CalibrationJob]:
        """A job per test whose reference is complete and threshold unknown."""
        jobs = []
        for (name, feature), detector in self.detectors.items():
            if getattr(detector, "calibrated", True):
                continue
            null = detector.null_model()
            if null is not None:
                jobs.append(CalibrationJob(f"{name}/{feature}", (name,), (null,), (self.share,)))
        return jobs

    def apply(self, job: CalibrationJob, thresholds, error: str | None) -> None:
        key = tuple(job.column.split("/", 1))
        detector = self.detectors.get(key)
        if detector is None or getattr(detector, "calibrated", True):
            return
        if error is not None:
            del self.detectors[key]
            self.skipped[key] = f"calibration failed: {error}"
        else:
            detector.set_thresholds(*thresholds[0])

    def calibrate_now(self) -> None:
        """Compute the thresholds waited for, in this thread (a new model version came
        while they were computed: its held decisions must still be decided)."""
        calibrate_jobs_now(self.calibration_jobs(), self.apply)
