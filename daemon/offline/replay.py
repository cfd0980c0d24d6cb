"""Replay: past events from files through the daemon's own per-model code.

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
  out. A partition whose label order is full
  (:attr:`~daemon.stream.partition.PartitionState.labels_full`) has its label rows deferred,
  in order, until its predictions have caught up, as the daemon pauses its labels. The daemon computes them in the background and applies them later: its held
  decisions are then decided in order, so both reach the same alerts (ids, statuses,
  event times, details) for the same stream, and the same sequence per model, detector
  and feature (tests/test_replay.py checks this against a running daemon).

Alerts made of the same stream by a daemon and by replay have the same ids when the files
hold every record of the topics in their order, and the partition count is the topics'.

What replay records besides the alerts, for the report, is :mod:`daemon.offline.recording`'s;
the ``driftd replay`` command around it is :mod:`daemon.offline.command`. Learners are not
run towards a registry: promotions are not published, but their info alerts come out with
the others (no registry version or path).
"""

from __future__ import annotations

import heapq
import math
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Callable, Iterable

from kafka.partitioner.default import murmur2

from daemon.config import Config
from daemon.offline import inputs
from daemon.offline.recording import Recorder
from daemon.runtime.calibrator import calibrate_now
from daemon.stream.learning import promotion_alert, promotion_event
from daemon.stream.partition import PartitionState
from daemon.stream.watermark import Watermark

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
    """A refused row: its file and line, the daemon's reason and detail, the model its
    key named (None if unreadable), and ``kind`` "prediction" or "label" (its topic)."""

    path: str
    line: int
    reason: str
    detail: str
    model: str | None
    kind: str = "prediction"


@dataclass
class Result:
    """What a replay produced: ``alerts`` (:class:`~daemon.alerting.episodes.Alert`, in the
    order they were made), ``dead_letters`` (every refused row), ``records`` read (of which
    ``predictions`` were predictions), ``seconds`` of wall time, ``states`` (partition -> the final PartitionState) and
    ``recording`` (the series for the report, JSON-able, see :class:`Recorder`)."""

    alerts: list = field(default_factory=list)
    dead_letters: list = field(default_factory=list)
    records: int = 0
    predictions: int = 0
    seconds: float = 0.0
    states: dict = field(default_factory=dict)
    recording: dict = field(default_factory=dict)
    #: kind ("prediction", "label") -> [rows stamped more than join.label_grace_seconds
    #: before the time the rows of that kind and model read earlier had reached (their
    #: watermark, as the join measures it: a few rows stamped ahead do not move it), the
    #: most seconds one was behind]: a file out of time order (sorted by id, say), which
    #: the replay reads in its order.
    behind: dict = field(default_factory=dict)

    @property
    def rate(self) -> float:
        """Records per second of wall time."""
        return self.records / self.seconds if self.seconds > 0 else float("inf")


def partition_for(model: str | None, partitions: int) -> int:
    """The partition of key ``model`` under Kafka's default partitioner (murmur2)."""
    if model is None or partitions <= 1:
        return 0
    return (murmur2(model.encode()) & 0x7FFFFFFF) % partitions


def events(files: Iterable[tuple[str, bool]], blank: dict | None = None) -> Iterable[inputs.Item]:
    """The rows of ``files`` ((path, all labels?) pairs) in replay order (see the module docs);
    ``blank``: a Counter, counts the blank lines skipped, by path (:func:`inputs.read`)."""
    files = list(files)
    if len(files) == 1:
        return inputs.read(*files[0], blank=blank)

    def timed(rank: int, path: str, labels: bool):
        last = -math.inf
        for item in inputs.read(path, labels, blank):
            last = item.ts if item.ts is not None else last
            yield (last, rank), item

    streams = [timed(rank, path, labels) for rank, (path, labels) in enumerate(files)]
    return (item for _, item in heapq.merge(*streams, key=lambda pair: pair[0]))


class Replay:
    """Replays events through PartitionState objects of ``config``.

    ``partitions``: partition count of the topics (default ``kafka.create_topics`` or 1);
    ``batch_size``: records per poll (default :data:`BATCH_SIZE`): the alerts' content does
    not depend on it, their order within a poll may (grouped by partition and detector).
    ValueError if either is below 1. ``on_alert(alert)`` and ``on_dead_letter(dead_letter)`` are called as they come;
    ``record_series``: keep what the report draws (:class:`Recorder`).
    """

    def __init__(self, config: Config, partitions: int | None = None, batch_size: int = BATCH_SIZE,
                 on_alert: Callable | None = None, on_dead_letter: Callable | None = None,
                 record_series: bool = True):
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        if partitions is not None and partitions < 1:  # 0 and -2 ran as 1 partition
            raise ValueError(f"partitions must be at least 1, got {partitions}")
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
        self._newest: dict = {}  # (kind, model) -> the watermark of the rows read (as the join's)
        self._deferred: dict[int, deque] = {}  # partition -> its label rows waiting their turn

    def run(self, items: Iterable[inputs.Item], progress: Callable | None = None) -> Result:
        """Replay ``items`` to the end; ``progress(records)`` is called after each poll."""
        started = time.perf_counter()
        labels = self.config.kafka.labels_topic
        poll: list[tuple[Record, inputs.Item]] = []
        for item in items:
            record = self._record(item)
            self.result.records += 1
            self.result.predictions += item.kind == "prediction"
            if record.topic == labels and (self._deferred.get(record.partition)
                                           or self._state(record.partition).labels_full):
                # As the daemon pauses a partition's labels: they wait their turn, in order.
                self._deferred.setdefault(record.partition, deque()).append((record, item))
            else:
                poll.append((record, item))
            if len(poll) >= self.batch_size:
                self._poll_in_order(poll)
                poll = []
                self._catch_up()
                if progress is not None:
                    progress(self.result.records)
        if poll:
            self._poll_in_order(poll)
        # No prediction comes after the files: the predictions are read to their end (the
        # deferred labels go now, and a label with MAX_HELD_LABELS behind it stops holding
        # its place), then the labels still held in label order go to the label side.
        for state in self.states.values():
            state.predictions_read_below = math.inf
        self._catch_up()
        for state in self.states.values():
            state.release_held_labels(self._reject)
            # What still waits at the end is what may still join, whatever the interleaving.
            state.join.settle()
        self._settle(self.states.values())
        if progress is not None:
            progress(self.result.records)
        if self.recorder is not None:
            self.result.recording = self.recorder.finish(self.states)
        self.result.seconds = time.perf_counter() - started
        return self.result

    def _catch_up(self) -> None:
        """Deferred labels of each partition whose label order has room again, in polls of
        ``batch_size`` (see :attr:`daemon.stream.partition.PartitionState.labels_full`)."""
        for partition, waiting in self._deferred.items():
            state = self.states[partition]
            while waiting and not state.labels_full:
                self._poll_in_order([waiting.popleft() for _ in range(min(self.batch_size, len(waiting)))])

    def _check_order(self, item: inputs.Item) -> None:
        key = (item.kind, item.model)
        clock = self._newest.get(key)
        if clock is None:
            clock = self._newest[key] = Watermark()
        lag = clock.value - item.ts
        if lag > self.config.join.label_grace_seconds:
            behind = self.result.behind.setdefault(item.kind, [0, 0.0])
            behind[0] += 1
            behind[1] = max(behind[1], lag)
        clock.see(item.ts)

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

    def _poll_in_order(self, entries: list[tuple[Record, inputs.Item]]) -> None:
        """:meth:`_poll` of the records, then the time order of the poll's rows that were
        not dead letters and have a readable ts: a row refused for its ts (milliseconds)
        must not count as the newest read."""
        refused_before = len(self.result.dead_letters)
        self._poll([record for record, _ in entries])
        refused = {(d.path, d.line) for d in self.result.dead_letters[refused_before:]}
        for _, item in entries:
            if item.ts is not None and (item.path, item.line) not in refused:
                self._check_order(item)

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
        self._settle(touched.values())

    def _settle(self, states) -> None:
        """The daemon's steps after a poll's batches: each state's alerts, then its
        ``_calibrate`` step's."""
        for state in states:
            self._alerts(state, state.finish_batch)
        for state in states:
            if calibrate_now(state):
                self._alerts(state, state.alerts)

    def _alerts(self, state: PartitionState, alerts) -> None:
        if self.recorder is not None:
            for model, pipeline in state.models.items():
                self.recorder.decisions(model, pipeline.observations)
        for alert in [*alerts(), *self._promotions(state)]:
            self.result.alerts.append(alert)
            if self._on_alert is not None:
                self._on_alert(alert)

    @staticmethod
    def _promotions(state: PartitionState) -> list:
        """The info alerts of the gate's promotions since the last poll, as the daemon sends
        them once published (same ids), with no registry version or path: nothing is published."""
        out = []
        for model, pipeline in state.models.items():
            pending = pipeline.pending_promotions
            out.extend(promotion_alert(model, promotion_event(model, promotion), ts) for promotion, ts in pending)
            pending.clear()
        return out

    def _reject(self, record: Record, reason: str, detail: str) -> None:
        """The dead-letter sender's part: here, a row to report with its file and line."""
        model = record.key.decode() if record.key is not None else None
        kind = "prediction" if record.topic == self._topics["prediction"] else "label"
        dead = DeadLetter(record.path, record.line, reason, detail, model, kind)
        self.result.dead_letters.append(dead)
        if self._on_dead_letter is not None:
            self._on_dead_letter(dead)
