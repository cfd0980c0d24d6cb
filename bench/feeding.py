"""Feeding driftd's model pipelines directly, without a broker: shared by the benches.

A bench that measures what a model's pipeline concludes (detection delays, false alarms
per model) or what it costs (memory, time to ready, per-event cost) drives
``daemon.stream.pipeline.ModelPipeline`` the way the daemon's partition loop does: decoded
prediction events (``daemon.stream.events.decode_prediction``, so the objects are the daemon's
own), fed in order and in batches, with the pending calibrations computed in the same
thread as soon as the reference is complete (results do not depend on when the
thresholds arrive, so the benches may calibrate at once).

:class:`Fed` wraps one pipeline and reports its data-drift detections as
``(event index, test, column)``, the index counting every prediction fed to it from 0.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import msgspec
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
# First, even when PYTHONPATH has it already: the script's own directory (sys.path[0])
# holds bench/daemon.py, which would shadow the daemon package.
if sys.path[:1] != [str(ROOT)]:
    sys.path.insert(0, str(ROOT))

from daemon.runtime.calibrator import calibrate_now  # noqa: E402
from daemon.config import ModelConfig  # noqa: E402
from daemon.stream.events import decode_prediction  # noqa: E402
from daemon.stream.pipeline import ModelPipeline  # noqa: E402

START_TS = 1_763_900_000.0


def predictions(model: str, columns: dict, prediction, score=None, start: int = 0, version: str = "1") -> list:
    """Decoded prediction events from column arrays (one row per event).

    ``columns``: feature name -> sequence (numbers, strings or None); ``prediction`` and
    ``score``: sequences of the same length (``score`` may be None). Events are encoded to
    JSON and decoded by the daemon's own decoder.
    """
    names = list(columns)
    rows = zip(*(_plain(columns[name]) for name in names))
    scores = _plain(score) if score is not None else None
    encode = msgspec.json.Encoder().encode
    out = []
    for i, (row, p) in enumerate(zip(rows, _plain(prediction))):
        event = {"model": model, "model_version": version, "id": f"p-{start + i}",
                 "ts": START_TS + (start + i) * 0.01, "features": dict(zip(names, row)), "prediction": p}
        if scores is not None:
            event["score"] = scores[i]
        out.append(decode_prediction(encode(event)))
    return out


def _plain(values) -> list:
    return values.tolist() if isinstance(values, np.ndarray) else list(values)


@dataclass(frozen=True)
class Detection:
    at: int  # index of the prediction that tipped the test, counting from 0
    test: str
    column: str


class Fed:
    """One model's pipeline fed directly; its data-drift detections in stream order.

    A detection is an entry into drift of one test (a decision with drift after one
    without), placed at the prediction that completed the test.
    """

    def __init__(self, name: str, config: ModelConfig):
        self.pipeline = ModelPipeline(name, config)
        self.n_fed = 0
        #: CPU seconds of this thread by phase: collecting the reference, building the tests
        #: from it, calibrating them, and feeding the tests afterwards (a batch that
        #: completes the reference counts as collecting, but for the build itself), and
        #: feeding labels (:meth:`feed_labels`).
        self.cpu = {"reference": 0.0, "build": 0.0, "calibration": 0.0, "tests": 0.0, "labels": 0.0}
        self._drifting: set[tuple[str, str]] = set()  # (test, column) in drift now

    @property
    def calibration_seconds(self) -> float:
        return self.cpu["calibration"]

    @property
    def ready(self) -> bool:
        """Reference complete and every data test calibrated."""
        return self.pipeline.reference_complete and not self.pipeline.uncalibrated

    def feed(self, events: list) -> list[Detection]:
        """Feed a batch of predictions; the detections it caused, in stream order."""
        p = self.pipeline
        collecting = not p.reference_complete
        if collecting:
            # Times the build apart; an instance attribute only while collecting, so that
            # the pipeline still pickles.
            p._build = self._timed_build
        t = time.thread_time()
        try:
            p.observe_predictions(events, list(range(self.n_fed, self.n_fed + len(events))))
        finally:
            if collecting:
                del p._build
        self.cpu["reference" if collecting else "tests"] += time.thread_time() - t
        self.n_fed += len(events)
        if p.reference_complete and p.uncalibrated:
            self.calibrate()
        found, drifting = [], self._drifting
        for o in p.pop_observations():  # (one per test of every detector: the cheap checks first)
            if o.drift:
                if o.side == "data" and (o.detector, o.feature) not in drifting:
                    found.append(Detection(o.offset, o.detector, o.feature))
                    drifting.add((o.detector, o.feature))
            elif drifting and o.side == "data":
                drifting.discard((o.detector, o.feature))
        return sorted(found, key=lambda d: d.at)

    def feed_labels(self, events: list, labels: list, delay: float = 1.0) -> list[Detection]:
        """Feed the labels of ``events``, the ``len(events)`` predictions fed last (with
        :meth:`feed`), each ``delay`` seconds after its prediction, in their order, as the
        label join gives them to the pipeline; then compute the pending calibrations (the label tests', the
        estimate's). Returns the entries into drift they caused, of any test (the label
        side's, the estimate's), in stream order."""
        start = self.n_fed - len(events)
        pairs = [((e.prediction, e.score, e.model_version, e.ts, None, start + i), label)
                 for i, (e, label) in enumerate(zip(events, labels))]
        p = self.pipeline
        t = time.thread_time()
        p.observe_labels(pairs, label_times=[e.ts + delay for e in events])
        self.cpu["labels"] += time.thread_time() - t
        if p.reference_complete and p.uncalibrated:
            self.calibrate()
        found, drifting = [], self._drifting
        for o in p.pop_observations():
            if o.drift:
                if (o.detector, o.feature) not in drifting:
                    found.append(Detection(o.offset, o.detector, o.feature))
                    drifting.add((o.detector, o.feature))
            elif drifting:
                drifting.discard((o.detector, o.feature))
        return sorted(found, key=lambda d: d.at)

    def _timed_build(self) -> None:
        t = time.thread_time()
        type(self.pipeline)._build(self.pipeline)
        spent = time.thread_time() - t
        self.cpu["build"] += spent
        self.cpu["reference"] -= spent

    def calibrate(self) -> None:
        """Compute and set the pending thresholds now, in this thread."""
        t = time.thread_time()
        calibrate_now(self.pipeline)
        self.cpu["calibration"] += time.thread_time() - t

    def tests(self) -> list[tuple[str, str]]:
        """(test, column) of every data test of the model."""
        return sorted(self.pipeline.data_detectors)


def rss_bytes() -> int:
    """This process's resident set size (VmRSS), in bytes."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def machine_line() -> str:
    try:
        load = " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        load = "unknown"
    return f"Python {sys.version.split()[0]}, numpy {np.__version__}, {os.cpu_count()} CPUs, load average {load}"
