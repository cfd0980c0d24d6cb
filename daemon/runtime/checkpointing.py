"""Checkpoints: the daemon's state and offsets saved together, then committed.

Every ``checkpoint_interval_seconds`` (and on revocation, and at the end) the loop cuts each
partition's state under the lock, as sections (:mod:`daemon.kafka.statetopic`: the join
buffer as a changelog, the rest whole), and writes them with the offsets they reflect to
the state topic (when there is one) and to the local cache file
(:mod:`daemon.kafka.checkpoint`); only then are the offsets committed to Kafka. The dead
letters sent before are confirmed first, so an offset is never committed before its
record's dead letter is stored. A batch that did not finish is never checkpointed.

A mixin of :class:`daemon.runtime.service.Daemon`, whose constructor sets the attributes it
uses (the consumer, the states and their lock, the dead letters, the checkpoints, the alert
sender, the state topic's writer and reader, the metrics).
"""

from __future__ import annotations

import logging
import time

from kafka import KafkaConsumer, KafkaProducer
from kafka.errors import KafkaError
from kafka.structs import OffsetAndMetadata, TopicPartition

from daemon.kafka.checkpoint import state_key
from daemon.kafka.statereader import StateReader
from daemon.kafka.statetopic import Changelog, Epoch, Manifest, StateTopicError, encode as _encode
from daemon.kafka.statewriter import StateWriter
from daemon.runtime import wiring
from daemon.stream.partition import PartitionState

log = logging.getLogger("driftd")

#: Longest wait of one checkpoint for the broker (dead-letter acknowledgements, the offset
#: commit, the liveness probe). kafka-python's defaults are 30 s (commit, flush) or
#: forever (``topics()``): with the broker away the loop stood still that long, /readyz
#: kept saying 200 meanwhile and /livez (30 s) could fail. Well under the /livez limit.
BROKER_WAIT_SECONDS = 5.0


class Checkpointing:
    """Saving the partitions' state with their offsets, then committing (see the module docs)."""

    def _set_up_state_topic(self, scope: str) -> None:
        """The state topic's writer (its own producer: one request in flight keeps a
        checkpoint's records in order) and reader (a consumer outside the group)."""
        state, topic = self.config.state, self.config.state.topic
        client = wiring.client_settings(self.config.kafka)
        key, _ = state_key(state.dir, state.key_env)
        self._state_producer = KafkaProducer(
            bootstrap_servers=self.bootstrap, acks="all", linger_ms=5, max_block_ms=5000, enable_idempotence=False,
            retries=5, max_in_flight_requests_per_connection=1, **client)
        count = _PartitionCount(self._state_producer)
        self.state_writer = StateWriter(self._state_producer, topic, scope, key, state.piece_bytes, count)
        self.state_reader = StateReader(lambda: KafkaConsumer(
            bootstrap_servers=self.bootstrap, group_id=None, enable_auto_commit=False, fetch_max_bytes=64 * 1024 * 1024,
            max_partition_fetch_bytes=8 * 1024 * 1024, fetch_max_wait_ms=100, **client), topic, scope, key, count)
        if state.standby:
            self.state_reader.start_standby()

    def _checkpoint(self, partitions=None, blocking: bool = True) -> bool:
        """Confirm dead letters, save state, then commit its offsets. False if the broker
        did not answer (state is kept; the next checkpoint tries again).

        ``blocking=False`` is for the rebalance listener, which runs on kafka-python's I/O
        thread and must not wait on the network: the commit is sent asynchronously.

        After a batch that did not finish, never: the state holds part of it, and saved
        with the offsets before it, a restart would skip or count twice what it holds. The
        periodic, rebalance (also on close) and final checkpoints all come here."""
        if self._batch_failed:
            log.error("no checkpoint: the last batch did not finish")
            return False
        try:
            # Not blocking: no waiting at all. The rebalance listener runs on the consumer's
            # I/O thread, and a flush there stalled heartbeats and fetches for up to
            # confirm_timeout whenever dead letters were still on their way.
            self.dead_letters.confirm(timeout=None if blocking else 0)
        except KafkaError as e:
            if blocking:  # in flight is no broker failure
                self._broker_failed("dead_letter", e)
            return False
        with self.lock:
            states = [s for p, s in self.states.items() if partitions is None or p in partitions]
            # Cut and encoded under the lock (a consistent state), written after it.
            cut = [(s.partition, self._encode(s), dict(s.offsets), dict(self._logs.get(s.partition) or {})) for s in states]
            self._save_pending_alerts()
            offsets = {
                TopicPartition(topic, s.partition): OffsetAndMetadata(offset, "", -1)
                for s in states for topic, offset in s.offsets.items()
            }
        try:
            manifests = [self._send_state(partition, sections, state_offsets, logs) for partition, sections, state_offsets, logs in cut]
            if self.state_writer is not None and blocking:
                self.state_writer.confirm(BROKER_WAIT_SECONDS)
            for manifest, (_, sections, _, _) in zip(manifests, cut):
                if manifest is not None:
                    self.checkpoints.save_sections(manifest, dict(sections))
        except (KafkaError, StateTopicError) as e:
            self._broker_failed("state_topic", e)
            return False
        self.metrics.last_checkpoint.set(time.time())
        try:
            if not blocking:
                if offsets:
                    self._consumer.commit_async(offsets)
                return True
            wait_ms = int(BROKER_WAIT_SECONDS * 1000)
            if offsets:
                self._consumer.commit(offsets, timeout_ms=wait_ms)
            elif self.states:
                # Nothing to commit: ask the group coordinator something cheap to know the
                # broker is there. Not topics(): it waits for ever when the broker is away,
                # and its all-topics metadata refreshes kept a re-joining consumer
                # rebalancing for seconds after a broker restart.
                self._consumer.committed(TopicPartition(self.config.kafka.predictions_topic, 0), timeout_ms=wait_ms)
        except KafkaError as e:
            self._broker_failed("commit", e)
            return False
        self._broker_answered()
        return True

    def _encode(self, state: PartitionState) -> list:
        """[(name, blob bytes)]: the state cut into sections (:mod:`daemon.kafka.statetopic`)."""
        changelog = self._changelogs.get(state.partition)
        if changelog is None:
            changelog = self._changelogs[state.partition] = Changelog("join", _encode)
        # Alerts of the partition still being retried go with it: the replica that restores
        # it sends them (same ids), as its alert episodes have already fired; only to the
        # sinks not done with them (alert_delivery: a section of its own, which an earlier
        # driftd, reading "alerts" alone, passes over).
        alerts, delivery = self.alerts.pending_records()
        pending = [a.to_dict() for a in alerts if len(a.origin) > 1 and a.origin[1] == state.partition]
        records = {a["id"]: delivery[a["id"]] for a in pending}
        sections = [*state.sections(changelog.sections), ("alerts", pending), ("alert_delivery", records)]
        return [(name, v if isinstance(v, bytes) else _encode(v)) for name, v in sections]

    def _send_state(self, partition: int, sections: list, offsets: dict, logs: dict):
        """The checkpoint's manifest, sent to the state topic when there is one (None if
        the partition is no longer ours); the local file, a cache of the topic or the state
        itself, is written once the topic has it."""
        if self.state_writer is not None:
            return self.state_writer.save(partition, sections, offsets, logs)
        return Manifest(self.checkpoints.scope, partition, Epoch(0, 0), 0, offsets, logs,
                        [(name, "", len(data)) for name, data in sections])

    def _save_pending_alerts(self) -> None:
        alerts, delivery = self.alerts.pending_records()
        self.checkpoints.save_alerts([a.to_dict() for a in alerts], delivery)


class _PartitionCount:
    """The state topic's partition count, asked once (it must not change)."""

    def __init__(self, producer):
        self._producer = producer
        self._count: int | None = None

    def __call__(self, topic: str) -> int:
        if self._count is None:
            try:
                self._count = len(self._producer.partitions_for(topic))
            except KafkaError as e:
                raise StateTopicError(f"state topic {topic!r} not found ({e}): create it (cleanup.policy=compact, as many "
                                      f"partitions as the input topics) or set kafka.create_topics") from None
        return self._count
