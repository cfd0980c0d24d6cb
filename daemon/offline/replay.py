"""``driftd replay``: past events from files through the daemon's own per-model code.

Replay builds the daemon's :class:`~daemon.stream.partition.PartitionState` objects and
hands them synthetic Kafka records, so decoding, checks, dead letters, the label join,
the detectors, their thresholds and the alert episodes are the daemon's, not a copy:

- **Records.** Each event is a record of the predictions or the labels topic of the
  configuration (by its kind, see :mod:`daemon.offline.inputs`), key the model name, in
  the partition Kafka's default partitioner gives that key (murmur2, as kafka-python and
  the Java client do) over ``partitions`` partitions (default: ``kafka.create_topics`` of
  the configuration, else 1), at the next offset of that topic partition. A row whose
  model cannot be read goes to partition 0. The record's Kafka timestamp is absent, so the
  future bound on event times is measured from the wall clock (as the daemon does for a
  record without one).
- **Order.** One file: its order. Several files: merged by event time (each file is
  expected in event-time order; ties keep the order of the files on the command line, a
  row without a readable time stays after its predecessor).
- **Polls and thresholds.** Every ``batch_size`` records in replay order are one poll of
  the daemon: a batch per topic partition, each in its order, handled as the daemon's
  loop does (``handle_predictions`` or ``handle_labels``, ``advance``, then the batches'
  alerts); after each poll every threshold the partitions wait for is computed at once in
  this thread
  (:func:`daemon.runtime.calibrator.calibrate_now`) and the decisions it releases come
  out. The daemon computes them in the background and applies them later: its held
  decisions are then decided in order, so both reach the same alerts (ids, statuses,
  event times, details) for the same stream, and the same sequence per model, detector
  and feature (tests/test_replay.py checks this against a running daemon).

Alerts made of the same stream by a daemon and by replay have the same ids when the files
hold every record of the topics in their order, and the partition count is the topics'.

What replay records besides the alerts (for the report, :mod:`daemon.web.report`): every
decision of every detector (event time, statistic, threshold, drift), each model's
decay metric after each batch against its baseline, the reference and window
distributions of the data tests at the end and after the batch of each column's first
firing alert, and the final counters (processed, join outcomes, label delays, dead
letters). Learners are not run towards a registry: promotions are not published.
"""

from __future__ import annotations

import heapq
import logging
import math
import os
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable, Iterable

import numpy as np
from kafka.partitioner.default import murmur2

from daemon.config import Config
from daemon.offline import inputs
from daemon.runtime.calibrator import calibrate_now
from daemon.stream.join import OUTCOMES
from daemon.stream.partition import PartitionState

log = logging.getLogger("driftd")

#: Records per poll, at most (the daemon's ``kafka.poll_max_records`` plays this part).
BATCH_SIZE = 500


@dataclass(slots=True)
class Record:
    """A Kafka record as the daemon's partition code reads it (kafka-python's
    ``ConsumerRecord`` fields), plus where it came from."""

    topic: str
    partition: int
    offset: int
    value: bytes
    key: bytes | None
    timestamp: int | None = None
    path: str = ""
    line: int = 0


@dataclass
class DeadLetter:
    path: str
    line: int
    reason: str
    detail: str
    model: str | None


@dataclass
class Result:
    """What a replay produced: ``alerts`` (:class:`~daemon.alerting.episodes.Alert`, in the
    order they were made), ``dead_letters`` (every refused row), ``records`` read,
    ``seconds`` of wall time, ``states`` (partition -> the final PartitionState) and
    ``recording`` (the series for the report, JSON-able, see :class:`Recorder`)."""

    alerts: list = field(default_factory=list)
    dead_letters: list = field(default_factory=list)
    records: int = 0
    seconds: float = 0.0
    states: dict = field(default_factory=dict)
    recording: dict = field(default_factory=dict)

    @property
    def rate(self) -> float:
        """Records per second of wall time."""
        return self.records / self.seconds if self.seconds > 0 else float("inf")


def partition_for(model: str | None, partitions: int) -> int:
    """The partition of key ``model`` under Kafka's default partitioner (murmur2)."""
    if model is None or partitions <= 1:
        return 0
    return (murmur2(model.encode()) & 0x7FFFFFFF) % partitions


def events(files: Iterable[tuple[str, bool]]) -> Iterable[inputs.Item]:
    """The rows of ``files`` ((path, all labels?) pairs) in replay order (see the module docs)."""
    files = list(files)
    if len(files) == 1:
        return inputs.read(*files[0])

    def timed(rank: int, path: str, labels: bool):
        last = -math.inf
        for item in inputs.read(path, labels):
            last = item.ts if item.ts is not None else last
            yield (last, rank), item

    streams = [timed(rank, path, labels) for rank, (path, labels) in enumerate(files)]
    return (item for _, item in heapq.merge(*streams, key=lambda pair: pair[0]))


class Replay:
    """Replays events through PartitionState objects of ``config``.

    ``partitions``: partition count of the topics (default ``kafka.create_topics`` or 1).
    ``on_alert(alert)`` and ``on_dead_letter(dead_letter)`` are called as they come;
    ``record_series``: keep what the report draws (:class:`Recorder`).
    """

    def __init__(self, config: Config, partitions: int | None = None, batch_size: int = BATCH_SIZE,
                 on_alert: Callable | None = None, on_dead_letter: Callable | None = None,
                 record_series: bool = True):
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self.config = config
        self.partitions = partitions or max(1, config.kafka.create_topics or 1)
        self.batch_size = batch_size
        self.states: dict[int, PartitionState] = {}
        self.offsets: Counter = Counter()  # (topic, partition) -> next offset
        self.result = Result(states=self.states)
        self.recorder = Recorder() if record_series else None
        self._on_alert = on_alert
        self._on_dead_letter = on_dead_letter
        self._topics = {"prediction": config.kafka.predictions_topic, "label": config.kafka.labels_topic}

    def run(self, items: Iterable[inputs.Item], progress: Callable | None = None) -> Result:
        """Replay ``items`` to the end; ``progress(records)`` is called after each poll."""
        started = time.perf_counter()
        poll: list[Record] = []
        for item in items:
            poll.append(self._record(item))
            self.result.records += 1
            if self.recorder is not None and item.model is not None and item.ts is not None:
                self.recorder.saw(item.model, item.ts)
            if len(poll) >= self.batch_size:
                self._poll(poll)
                poll = []
                if progress is not None:
                    progress(self.result.records)
        if poll:
            self._poll(poll)
        if progress is not None:
            progress(self.result.records)
        if self.recorder is not None:
            self.result.recording = self.recorder.finish(self.states)
        self.result.seconds = time.perf_counter() - started
        return self.result

    def _record(self, item: inputs.Item) -> Record:
        topic = self._topics[item.kind]
        partition = partition_for(item.model, self.partitions)
        offset = self.offsets[(topic, partition)]
        self.offsets[(topic, partition)] = offset + 1
        key = item.model.encode() if item.model is not None else None
        return Record(topic, partition, offset, item.value, key, None, item.path, item.line)

    def _state(self, partition: int) -> PartitionState:
        state = self.states.get(partition)
        if state is None:
            state = self.states[partition] = PartitionState(partition, self.config)
        return state

    def _poll(self, records: list[Record]) -> None:
        """``records`` as one poll of the daemon: a batch per topic partition (each in its
        order) through the daemon's ``_process`` steps, then its ``_calibrate`` step."""
        batches: dict[tuple, list] = {}
        for record in records:
            batches.setdefault((record.topic, record.partition), []).append(record)
        touched: dict[int, PartitionState] = {}
        for (topic, partition), batch in batches.items():
            state = touched[partition] = self._state(partition)
            if topic == self.config.kafka.predictions_topic:
                state.handle_predictions(batch, self._reject)
            else:
                state.handle_labels(batch, self._reject)
            state.advance(topic, batch[0].offset, batch[-1].offset)
        for state in touched.values():
            self._alerts(state, state.finish_batch)
        for state in touched.values():
            if calibrate_now(state):
                self._alerts(state, state.alerts)
            if self.recorder is not None:
                self.recorder.after_batch(state)

    def _alerts(self, state: PartitionState, alerts) -> None:
        if self.recorder is not None:
            for model, pipeline in state.models.items():
                self.recorder.decisions(model, pipeline.observations)
        for alert in alerts():
            self.result.alerts.append(alert)
            if self.recorder is not None:
                self.recorder.alert(state, alert)
            if self._on_alert is not None:
                self._on_alert(alert)

    def _reject(self, record: Record, reason: str, detail: str) -> None:
        """The dead-letter sender's part: here, a row to report with its file and line."""
        model = record.key.decode() if record.key is not None else None
        dead = DeadLetter(record.path, record.line, reason, detail, model)
        self.result.dead_letters.append(dead)
        if self._on_dead_letter is not None:
            self._on_dead_letter(dead)


class Recorder:
    """What the report draws, kept as replay goes (plain lists, JSON-able at the end).

    ``series[model]["detector/feature"]``: lists ``t`` (event time, s), ``statistic``,
    ``threshold``, ``drift`` of every decision; ``performance[model][metric]``: ``t``,
    ``value`` (the decay test's metric over its window after each batch) and ``baseline``;
    ``distributions[model][feature]``: bin labels, reference counts, window counts at the
    end (``current``) and after the batch of the column's first firing alert (``at_alert``).
    """

    def __init__(self):
        self.series: dict = {}
        self.performance: dict = {}
        self.at_alert: dict = {}  # model -> feature -> distribution
        self.latest: dict = {}  # model -> latest event time seen

    def saw(self, model: str, ts: float) -> None:
        if ts > self.latest.get(model, -math.inf):
            self.latest[model] = ts

    def decisions(self, model: str, observations: list) -> None:
        series = self.series.setdefault(model, {})
        for o in observations:
            s = series.get(f"{o.detector}/{o.feature}")
            if s is None:
                s = series[f"{o.detector}/{o.feature}"] = {"t": [], "statistic": [], "threshold": [], "drift": []}
            s["t"].append(o.event_time)
            s["statistic"].append(_finite(o.detail.get("statistic")))
            s["threshold"].append(_finite(o.detail.get("threshold")))
            s["drift"].append(bool(o.drift))
            if len(s["t"]) > MAX_SERIES:
                _halve(s)

    def alert(self, state: PartitionState, alert) -> None:
        if alert.status != "firing":
            return
        seen = self.at_alert.setdefault(alert.model, {})
        if alert.feature in seen:
            return
        pipeline = state.models.get(alert.model)
        if pipeline is None:
            return
        found = _distribution(pipeline, alert.feature)
        if found is not None:
            found["alert_time"] = alert.event_time
            found["alert_detector"] = alert.detector
            seen[alert.feature] = found

    def after_batch(self, state: PartitionState) -> None:
        for model, pipeline in state.models.items():
            for (name, metric), detector in pipeline.label_detectors.items():
                if name != "decay":
                    continue
                value = getattr(detector, "current", None)
                if value is None:
                    continue
                perf = self.performance.setdefault(model, {}).setdefault(
                    metric, {"t": [], "value": [], "baseline": None})
                perf["baseline"] = _finite(getattr(detector, "baseline", None))
                t = self.latest.get(model)
                if perf["value"] and perf["value"][-1] == value and perf["t"][-1] == t:
                    continue
                perf["t"].append(t)
                perf["value"].append(_finite(value))

    def finish(self, states: dict) -> dict:
        """The recording, with the final distributions and counters: see :func:`summary`."""
        return summary(states, self)


#: Decisions kept per series: beyond, every other one is dropped (drift decisions are kept),
#: so that a long replay's recording stays small (a test that decides at every labelled
#: event, as ADWIN does, would otherwise keep millions).
MAX_SERIES = 20_000


def _halve(s: dict) -> None:
    keep = [i for i in range(len(s["t"])) if i % 2 == 0 or s["drift"][i] or i == len(s["t"]) - 1]
    for k in s:
        s[k] = [s[k][i] for i in keep]


def summary(states: dict, recorder: Recorder | None = None) -> dict:
    """A JSON-able account of ``states`` (partition -> PartitionState) and what
    ``recorder`` kept: ``{"models": {name: {...}}, "dead_letters": {reason: n}}``, the
    input of :mod:`daemon.web.report`."""
    models: dict = {}
    dead = Counter()
    for state in states.values():
        dead.update(state.dead_letters)
        for name, status in state.status().items():
            pipeline = state.models[name]
            delay = state.label_delay.get(name)
            models[name] = {
                "partition": state.partition,
                "status": _plain(status),
                "join": {o: state.join.counts[(name, o)] for o in OUTCOMES},
                "label_delay": None if delay is None else {
                    "buckets": [b if math.isfinite(b) else None for b in state.delay_buckets],
                    "counts": [int(c) for c in delay[0]], "sum_seconds": float(delay[1])},
                "distributions": {f: d for f in pipeline.features if (d := _distribution(pipeline, f)) is not None},
            }
    if recorder is not None:
        for name, model in models.items():
            model["series"] = recorder.series.get(name, {})
            model["performance"] = recorder.performance.get(name, {})
            for feature, dist in recorder.at_alert.get(name, {}).items():
                if feature in model["distributions"]:
                    model["distributions"][feature]["at_alert"] = dist["current"]
                    model["distributions"][feature]["alert_time"] = dist["alert_time"]
    return {"models": models, "dead_letters": dict(dead)}


# Which test's bins show a column's distribution, in order of preference.
_BINNED = ("psi", "chisquare", "ks", "value_change")


def _distribution(pipeline, feature: str) -> dict | None:
    """Reference and window counts of ``feature`` from one of its binned data tests."""
    detectors = pipeline.data_detectors
    for test in _BINNED:
        detector = detectors.get((test, feature))
        binning = getattr(detector, "binning", None)
        counts = getattr(detector, "counts", None)
        if binning is None or counts is None:
            continue
        labels = _bin_labels(binning)
        if labels is None or len(labels) != len(counts):
            continue
        return {"test": test, "bins": labels, "reference": [int(c) for c in binning.reference_counts],
                "current": [int(c) for c in counts]}
    return None


def _bin_labels(binning) -> list[str] | None:
    edges = getattr(binning, "edges", None)
    if edges is not None:
        e = [f"{x:.4g}" for x in np.asarray(edges, dtype=float)]
        labels = [f"< {e[0]}"] + [f"[{a}, {b})" for a, b in zip(e, e[1:])] + [f">= {e[-1]}"] if e else ["all"]
        return labels + ["missing"]
    levels = getattr(binning, "levels", None)
    if levels is not None:
        return [str(level) for level in levels] + ["other", "missing"]
    if getattr(binning, "n_bins", None) == 2:
        return ["false", "true"]
    return None


def _finite(x):
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def _plain(value):
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return _finite(value)
    return value


class Progress:
    """A one-line counter on stderr (events so far, rate), redrawn at most twice a second
    while stderr is a terminal; ``done()`` prints the last line (always)."""

    def __init__(self, stream=None):
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.started = time.perf_counter()
        self._last = 0.0

    def __call__(self, records: int) -> None:
        now = time.perf_counter()
        if not self.tty or now - self._last < 0.5:
            return
        self._last = now
        rate = records / max(now - self.started, 1e-9)
        self.stream.write(f"\rdriftd replay: {records:,} events, {rate:,.0f}/s")
        self.stream.flush()

    def done(self, result: Result) -> None:
        if self.tty:
            self.stream.write("\r\033[K")
        self.stream.write(f"driftd replay: {result.records:,} events in {result.seconds:.1f} s "
                          f"({result.rate:,.0f}/s); {len(result.alerts)} alerts; "
                          f"{len(result.dead_letters)} dead letters\n")
        self.stream.flush()


# -- the command ---------------------------------------------------------------------------------

def incomplete_references(result: Result) -> list[str]:
    """A line per model whose reference the files did not fill: none of its data-drift
    tests ran, which a summary of '0 alerts' alone would hide."""
    lines = []
    for state in result.states.values():
        for name, pipeline in state.models.items():
            if not pipeline.reference_complete:
                lines.append(f"model {name}: reference incomplete ({pipeline.reference.n:,} of "
                             f"{pipeline.reference.size:,} predictions): no data-drift test ran; give more events "
                             f"or a smaller model_defaults.reference_size")
    return lines


#: Kinds of dead letter (reason and detail) printed on stderr, the first row of each; the
#: rest are counted in the last line.
SHOWN_DEAD_LETTERS = 20


def command(args) -> int:
    """``driftd replay`` (see ``driftd replay --help``): exit 0 when every file was read
    (bad rows are dead letters, not failures), 1 if a file cannot be read or not one of its
    rows could be replayed (no rows, or every row a dead letter: a wrong format or layout,
    not data to monitor), 2 for an invalid configuration. The summary and report are
    written either way."""
    import json

    from daemon import config as config_module
    from daemon.runtime import logs

    try:
        defaults_only = args.auto_register and args.config == "config.yaml" and not os.path.exists(args.config)
        if defaults_only:
            config = config_module.from_dict({})  # no file: the defaults, every model the files name
        else:
            config = config_module.load(args.config)
    except config_module.ConfigError as e:
        print(f"driftd: invalid configuration {args.config}: {e}", file=sys.stderr)
        return 2
    if args.auto_register:
        config.auto_register_models = True
    logs.configure(config.log_level if config.log_level != "INFO" else "WARNING", logs.secrets_of(config),
                   log_format=config.log_format)
    # Replay reports each dead letter with its file and line itself (below).
    logging.getLogger("driftd").addFilter(_NoDeadLetterLines())
    if defaults_only:
        d = config.model_defaults
        print(f"driftd replay: no config.yaml: every model the files name, with the default settings (reference "
              f"{d.reference_size:,} predictions, window {d.window:,}, ert {d.ert:,.0f} predictions between false "
              f"alarms); --config FILE to choose them", file=sys.stderr)
    files = [(path, False) for path in args.files] + [(path, True) for path in args.labels or ()]
    if not files:
        print("driftd replay: give at least one file", file=sys.stderr)
        return 2
    try:
        for path, _ in files:
            inputs.format_of(path)
            if not inputs.size_of(path) and not _exists(path):
                raise inputs.InputError(f"{path}: no such file")
    except inputs.InputError as e:
        print(f"driftd replay: {e}", file=sys.stderr)
        return 1
    shown: dict = {}  # (reason, detail) -> dead letters of that kind

    def dead(d: DeadLetter) -> None:
        # The first of each kind: a file whose every row fails alike (a wrong header) is one
        # line, not twenty of the same.
        kind = (d.reason, d.detail)
        if kind not in shown and len(shown) < SHOWN_DEAD_LETTERS:
            print(f"driftd replay: {d.path}:{d.line}: dead letter ({d.reason}): {d.detail}", file=sys.stderr)
            shown[kind] = 0
        if kind in shown:
            shown[kind] += 1

    out = open(args.out, "w", encoding="utf-8") if args.out and args.out != "-" else sys.stdout

    def alert(a) -> None:
        out.write(json.dumps(a.to_dict(), sort_keys=True) + "\n")

    progress = Progress() if not args.quiet else None
    replay = Replay(config, partitions=args.partitions, batch_size=args.batch_size, on_alert=alert, on_dead_letter=dead,
                    record_series=bool(args.report or args.summary))
    try:
        result = replay.run(events(files), progress)
    except inputs.InputError as e:
        print(f"driftd replay: {e}", file=sys.stderr)
        return 1
    finally:
        if out is not sys.stdout:
            out.close()
        else:
            out.flush()
    alike, other = sum(shown.values()) - len(shown), len(result.dead_letters) - sum(shown.values())
    if alike or other:
        reasons = Counter(d.reason for d in result.dead_letters)
        parts = [f"{alike} more like those shown"] * bool(alike) + [f"{other} of other kinds not shown"] * bool(other)
        print(f"driftd replay: dead letters: {', '.join(parts)} (all: "
              f"{', '.join(f'{r} {n}' for r, n in reasons.most_common())})", file=sys.stderr)
    if progress is not None:
        progress.done(result)
    for line in incomplete_references(result):
        print(f"driftd replay: {line}", file=sys.stderr)
    document = replay_document(result, config, [p for p, _ in files])
    if args.summary:
        with open(args.summary, "w", encoding="utf-8") as f:
            json.dump(document, f)
    if args.report:
        try:
            from daemon.web import report
            report.write(document, args.report)
        except report.ReportError as e:
            print(f"driftd replay: {e}", file=sys.stderr)
            return 1
        print(f"driftd replay: report written to {args.report}", file=sys.stderr)
    return _nothing_replayed(result)


def _nothing_replayed(result: Result) -> int:
    """1 with the reason on stderr when no row of the files was replayed, else 0."""
    if result.records == 0:
        print("driftd replay: the files hold no rows; nothing was replayed", file=sys.stderr)
        return 1
    if len(result.dead_letters) >= result.records:
        reason, n = Counter(d.reason for d in result.dead_letters).most_common(1)[0]
        hint = ("the models are not under `models:` in the configuration: --auto-register watches them"
                if reason == "unknown_model" else "check the files' layout against the README's event format")
        print(f"driftd replay: every row ({result.records}) was a dead letter, most often {reason} ({n}); "
              f"nothing was replayed: {hint}", file=sys.stderr)
        return 1
    return 0


def replay_document(result: Result, config: Config, files: list[str]) -> dict:
    """The JSON document of a replay (``--summary``): the :func:`summary` of its states with
    its alerts and dead letters; the input of :mod:`daemon.web.report`."""
    document = dict(result.recording) if result.recording else summary(result.states)
    document["source"] = {"kind": "replay", "files": files, "events": result.records,
                          "seconds": round(result.seconds, 3)}
    document["alerts"] = [a.to_dict() for a in result.alerts]
    document["dead_letter_rows"] = [vars(d) for d in result.dead_letters[:1000]]
    for name in document.get("models", {}):
        settings = config.model(name)
        document["models"][name]["task"] = settings.task if settings is not None else None
    return document


def _exists(path: str) -> bool:
    import os

    return os.path.exists(path)


class _NoDeadLetterLines(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "went to the dead-letter topic" not in str(record.msg)
