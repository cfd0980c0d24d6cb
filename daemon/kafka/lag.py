"""Consumer lag from the broker's view: how far each owned partition's log runs past what
driftd has processed.

    driftd_consumer_lag_records{topic, partition} = end - processed     (records, never below 0)

``processed`` is the offset the partition's state has processed up to (the next record
to handle: ``PartitionState.offsets``); for a topic nothing was read from yet, the log's
first offset (driftd commits only what its state holds, so the consumer starts there); for
a partition held back until its state is here (:data:`COMMITTED`), the group's committed
offset, which is where that state stopped: its lag shows while it waits, and alert rules
on the lag see a partition that nobody processes.
``end`` is the largest log end known from a fetch response's high watermark: the group
consumer's (``KafkaConsumer.highwater``, read again at every scrape) or a probe's (below).

Why the consumer's high watermark alone read 0 while a daemon was far behind: kafka-python
sends the next fetch for a partition only once ``poll`` has handed out every record of the
previous response. A daemon that is behind gets a large response (up to 8 MiB per
partition) and works through it batch after batch while the log grows; the high watermark
stands still meanwhile, so end - processed fell to 0 at the end of every response however
far behind the daemon was. The gauge was also set only after each batch, never showing the
records of the batch in hand (a throttled daemon spends most of its time in one), and not
at all for a paused partition (assigned, waiting for its state), whose high watermark is
unknown; its series kept the value it last had.

The probe: when the consumer has not renewed a partition's end for ``refresh_seconds``
while driftd is behind on it (or the partition is paused, or its end is unknown), a
background thread reads the end with a consumer of its own, outside the group: ListOffsets
(latest), then a fetch from one record below that answer, whose response carries the high
watermark. Tansu answers ListOffsets with the base offset of the last record batch + 1,
short of the end by the rest of that batch: never used alone; the fetch reads that batch
only. The loop never waits for the probe, and a broker that does not answer leaves the
last known end (``driftd_kafka_errors_total{operation="lag_probe"}`` counts the failures).

So, at a scrape, the gauge is below the true lag by at most the records appended since the
fetch response its end came from; while driftd is behind, that response is at most
``refresh_seconds`` (and one probe) old. Lag is a function of the broker and the wall
clock, read when Prometheus scrapes: nothing the loop concludes depends on it.
"""

from __future__ import annotations

import logging
import threading
import time

from kafka import KafkaConsumer
from kafka.structs import TopicPartition

log = logging.getLogger("driftd")

#: Longest a probe waits for the broker (each of its requests, and its fetch).
PROBE_TIMEOUT_SECONDS = 5.0
#: How often the probe thread looks at the stop event when nothing wakes it.
_IDLE_WAIT_SECONDS = 0.5
#: A processed offset not known here: the partition is held back until its state comes
#: (assigned, paused); the lag counts from the group's committed offset, read by the probe.
COMMITTED = "committed"


class LagTracker:
    """What the lag is computed from, shared by the consumer loop (:meth:`follow`), the
    probe thread and scrapes (:meth:`lags`). Thread-safe.

    ``refresh_seconds``: age of an end (since the consumer or a probe last renewed it)
    past which it is probed again while driftd is behind or the partition is paused;
    ``on_probe_error(exception)``: called for each failed probe; ``clock``: monotonic
    seconds (tests)."""

    def __init__(self, refresh_seconds: float = 5.0, on_probe_error=None, clock=time.monotonic):
        self.refresh_seconds = refresh_seconds
        self._on_probe_error = on_probe_error
        self._clock = clock
        self._lock = threading.Lock()
        self._wake = threading.Event()
        # owned (topic, partition) -> offset; None: not started; COMMITTED: held back
        self._processed: dict[TopicPartition, int | str | None] = {}
        self._starts: dict[TopicPartition, int] = {}  # where the lag counts from, for those without an offset
        self._ends: dict[TopicPartition, int] = {}  # largest end known
        self._seen: dict[TopicPartition, int] = {}  # the consumer's high watermark at the last update
        self._fresh_at: dict[TopicPartition, float] = {}  # when the end was last known current
        self._asked_at: dict[TopicPartition, float] = {}  # last probe of it, answered or not
        self._generation: dict[TopicPartition, int] = {}  # bumped when its log is read again
        self._highwater = None  # the group consumer's highwater(tp), read at scrapes
        self._probe: EndProbe | None = None

    # -- the consumer loop ----------------------------------------------------------------
    def follow(self, consumer, processed: dict, bootstrap: str | None, client_settings, stop: threading.Event,
               group_id: str | None = None) -> None:
        """After each turn of the consumer loop: :meth:`update` from ``consumer`` (the
        group's KafkaConsumer), and the probe thread started on the first call (its own
        consumer on ``bootstrap`` with ``client_settings()``, reading ``group_id``'s
        committed offsets for the partitions held back; it ends when ``stop`` is set)."""
        self.update(processed, consumer.highwater, consumer.paused())
        if self._probe is None and bootstrap:
            self._probe = EndProbe(self, lambda: probe_consumer(bootstrap, client_settings(), group_id), stop)
            self._probe.start()

    def update(self, processed: dict, highwater, paused=frozenset()) -> None:
        """``processed``: every (topic, partition) this replica owns -> the offset its state
        has processed up to, None if nothing was read from it yet, :data:`COMMITTED` while it
        is held back for its state (others are forgotten: their series go);
        ``highwater(tp)``: the group consumer's last fetch high watermark
        (None if none yet; may raise for a partition no longer assigned); ``paused``: the
        partitions the consumer does not fetch."""
        now = self._clock()
        with self._lock:
            self._highwater = highwater
            for tp in [tp for tp in self._processed if tp not in processed]:
                self._forget(tp)
            for tp, offset in processed.items():
                before = self._processed.get(tp)
                if _known(offset) and _known(before) and offset < before:
                    self._reset(tp)  # read again from further back: a new log, the end known is the old one's
                if offset == COMMITTED and before != COMMITTED:
                    self._starts.pop(tp, None)  # (the log's first offset of a partition not started)
                self._processed[tp] = offset
                high = _read(highwater, tp)
                if high is None:
                    continue
                if _known(offset) and high < offset:
                    self._reset(tp)  # the log ends before what was processed: re-created (the loop re-reads it)
                    continue
                # A new high watermark is a new fetch response; a partition whose records are
                # all processed and which is not paused is being fetched again: current.
                if high != self._seen.get(tp) or (_known(offset) and offset >= high and tp not in paused):
                    self._fresh_at[tp] = now
                self._seen[tp] = high
                self._ends[tp] = max(high, self._ends.get(tp, high))
            due = bool(self._due(now))
        if due:
            self._wake.set()

    def _forget(self, tp) -> None:
        for table in (self._processed, self._starts, self._ends, self._seen, self._fresh_at, self._asked_at):
            table.pop(tp, None)

    def _reset(self, tp) -> None:
        for table in (self._starts, self._ends, self._seen, self._fresh_at):
            table.pop(tp, None)
        self._generation[tp] = self._generation.get(tp, 0) + 1

    # -- the probe ------------------------------------------------------------------------
    def _due(self, now: float) -> list:
        wait = self.refresh_seconds
        return [tp for tp, offset in self._processed.items()
                if now - self._asked_at.get(tp, -wait) >= wait
                and ((not _known(offset) and tp not in self._starts) or now - self._fresh_at.get(tp, -wait) >= wait)]

    def due(self) -> tuple[list, dict, dict]:
        """(partitions whose end to probe, {partition: "first" or :data:`COMMITTED`} for
        those of them whose log's first offset or group's committed offset is wanted too,
        their generations to give back to :meth:`probed`); marks them asked."""
        now = self._clock()
        with self._lock:
            due = self._due(now)
            for tp in due:
                self._asked_at[tp] = now
            starts = {tp: COMMITTED if self._processed[tp] == COMMITTED else "first" for tp in due
                      if not _known(self._processed[tp]) and tp not in self._starts}
            return due, starts, {tp: self._generation.get(tp, 0) for tp in due}

    def probed(self, ends: dict, starts: dict, generations: dict) -> None:
        """A probe's answer: log ends, and the offsets the lag counts from (first or
        committed) read from the broker (a partition released or read again since is left
        out)."""
        now = self._clock()
        with self._lock:
            for tp, end in ends.items():
                if tp in self._processed and self._generation.get(tp, 0) == generations.get(tp):
                    self._ends[tp] = max(end, self._ends.get(tp, end))
                    self._fresh_at[tp] = now
            for tp, start in starts.items():
                if tp in self._processed and self._generation.get(tp, 0) == generations.get(tp):
                    self._starts[tp] = start

    def probe_failed(self, error: Exception) -> None:
        if self._on_probe_error is not None:
            self._on_probe_error(error)

    def wait(self, timeout: float) -> None:
        """Until :meth:`update` finds an end due, at most ``timeout`` seconds."""
        self._wake.wait(timeout)
        self._wake.clear()

    # -- scrapes --------------------------------------------------------------------------
    def lags(self) -> dict[TopicPartition, int]:
        """(topic, partition) -> records behind, for every owned partition whose end and
        processed offset are known. The group consumer's high watermark is read now: a
        fetch response that came with the batch in hand counts before that batch is done."""
        with self._lock:
            highwater, processed = self._highwater, dict(self._processed)
            ends, starts = dict(self._ends), dict(self._starts)
        out = {}
        for tp, offset in processed.items():
            end, live = ends.get(tp), _read(highwater, tp)
            if live is not None and (end is None or live > end):
                end = live
            if not _known(offset):
                offset = starts.get(tp)
            if end is not None and offset is not None:
                out[tp] = max(0, end - offset)
        return out


class EndProbe:
    """The background thread that reads from the broker the ends a :class:`LagTracker`
    finds due (see the module's documentation); ``make_consumer()`` builds its consumer
    (again after a failure), and it stops when ``stop`` is set."""

    def __init__(self, tracker: LagTracker, make_consumer, stop: threading.Event,
                 timeout_seconds: float = PROBE_TIMEOUT_SECONDS):
        self._tracker = tracker
        self._make = make_consumer
        self._stop = stop
        self._timeout = timeout_seconds
        self._thread = threading.Thread(target=self._run, name="driftd-lag-probe", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)

    def _run(self) -> None:
        consumer, failing = None, False
        try:
            while not self._stop.is_set():
                self._tracker.wait(_IDLE_WAIT_SECONDS)
                due, starts, generations = self._tracker.due()
                if not due or self._stop.is_set():
                    continue
                try:
                    if consumer is None:
                        consumer = self._make()
                    ends, first = read_ends(consumer, due, starts, self._timeout)
                except Exception as e:  # noqa: BLE001 - the broker, or a client in a bad state: a new one next time
                    if not failing:
                        log.warning("lag probe failed (%s: %s); the lag shows the last known log ends until it answers",
                                    type(e).__name__, e)
                    failing = True
                    self._tracker.probe_failed(e)
                    consumer = _close(consumer)
                    continue
                failing = False
                self._tracker.probed(ends, first, generations)
        finally:
            _close(consumer)


def read_ends(consumer: KafkaConsumer, partitions: list, starts: dict, timeout_seconds: float) -> tuple[dict, dict]:
    """({partition: log end}, {partition: offset} for ``starts``), from ``consumer`` (in no
    group's membership; its assignment becomes ``partitions``, paused on return).
    ``starts``: {partition: "first"} for the log's first offset, or :data:`COMMITTED` for
    the offset committed by the consumer's ``group_id`` (a partition without a commit: the
    first offset, where the group's consumer starts).

    The end is the high watermark of a fetch from one record below ListOffsets(latest):
    exact where ListOffsets is (Kafka), and right where it answers the last batch's base
    offset + 1 (Tansu), for the price of that batch. A partition whose fetch does not
    answer within ``timeout_seconds`` keeps the ListOffsets answer (a lower bound).
    Raises KafkaError (e.g. KafkaTimeoutError) if ListOffsets does not answer."""
    timeout_ms = int(timeout_seconds * 1000)
    latest = consumer.end_offsets(partitions, timeout_ms=timeout_ms)
    first = {}
    for tp in [tp for tp, kind in starts.items() if kind == COMMITTED]:
        committed = consumer.committed(tp, timeout_ms=timeout_ms)
        if committed is not None:
            first[tp] = committed
    beginning = [tp for tp in starts if tp not in first]
    if beginning:
        first.update(consumer.beginning_offsets(beginning, timeout_ms=timeout_ms))
    consumer.assign(partitions)  # kept states for partitions assigned before
    consumer.resume(*partitions)
    ends = {tp: latest[tp] for tp in partitions if tp in latest}
    waiting = set()
    for tp, offset in ends.items():
        if offset > 0:
            consumer.seek(tp, offset - 1)
            waiting.add(tp)
    deadline = time.monotonic() + timeout_seconds
    while waiting and time.monotonic() < deadline:
        for tp, records in consumer.poll(timeout_ms=50).items():
            # Records of a partition come with the response they were parsed from: its
            # high watermark is this fetch's.
            if records and tp in waiting:
                waiting.discard(tp)
                high = consumer.highwater(tp)
                if high is not None:
                    ends[tp] = max(ends[tp], high)
    consumer.pause(*partitions)  # no fetches between probes
    return ends, first


def probe_consumer(bootstrap: str, client: dict, group_id: str | None = None) -> KafkaConsumer:
    """The probe's consumer: never a member of a group (it assigns its partitions itself,
    and commits nothing), ``group_id`` only to read that group's committed offsets; small
    fetches that the broker answers at once (not 0 ms: Tansu then answers nothing),
    ``client`` as for driftd's other clients (security settings). Its reset policy is the
    group's (``earliest``) though it seeks every partition it fetches from: the one policy of
    a consumer with the group's id, which the KEDA example's ``offsetResetPolicy`` names."""
    own = dict(bootstrap_servers=bootstrap, group_id=group_id, enable_auto_commit=False, auto_offset_reset="earliest",
               fetch_max_wait_ms=10, max_partition_fetch_bytes=64 * 1024, fetch_max_bytes=1024 * 1024,
               request_timeout_ms=int(PROBE_TIMEOUT_SECONDS * 1000) + 1000)
    return KafkaConsumer(**{**client, **own})  # the client's security settings, the probe's own fetches


def _known(offset) -> bool:
    """An offset processed (not None, not :data:`COMMITTED`)."""
    return offset is not None and offset != COMMITTED


def _read(highwater, tp) -> int | None:
    if highwater is None:
        return None
    try:
        return highwater(tp)
    except Exception:  # noqa: BLE001 - no longer assigned (a rebalance between update and scrape)
        return None


def _close(consumer) -> None:
    if consumer is not None:
        try:
            consumer.close()
        except Exception:  # noqa: BLE001 - closing a client that already failed
            pass
    return None
