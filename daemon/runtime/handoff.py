"""Partitions moving between replicas: what the daemon does when the group gives it a
partition or takes one away.

On assignment (kafka-python's I/O thread, :meth:`PartitionHandoff._assigned`) the partitions
are paused. The loop then restores each one's state, the newest checkpoint in the state
topic, else the local cache file (:meth:`~PartitionHandoff._restore_assigned`), refuses to
start afresh over checkpoints sealed with another key (``state.refused_state``), resends the
alerts the previous owner had not delivered, seeks to the offsets the state reflects, and
resumes the partitions once fresh metadata says which log each offset points into
(:meth:`~PartitionHandoff._verify_logs`; a log re-created under driftd is read from its
beginning, :meth:`~PartitionHandoff._follow_log`). On revocation the partitions are
checkpointed (not waiting on the network) and dropped.

A mixin of :class:`daemon.runtime.service.Daemon`, whose constructor sets the attributes it
uses (the consumer, the states and their lock, the state topic's reader and writer, the
checkpoints, the alert sender, and the bookkeeping named in ``Daemon.__init__``).
"""

from __future__ import annotations

import logging
import time

from kafka import ConsumerRebalanceListener
from kafka.errors import KafkaError
from kafka.structs import TopicPartition

from daemon.kafka import logid, pausing
from daemon.kafka.statetopic import Epoch, StateTopicError, decode, decode_partition
from daemon.stream.partition import PartitionState

log = logging.getLogger("driftd")


class PartitionHandoff:
    """Assignment, restore, revocation and log identity of the daemon's partitions (see
    the module docs)."""

    def _assigned(self, partitions) -> None:
        """Runs on kafka-python's I/O thread: no waiting here. The partitions stay paused
        until the loop has restored their state (:meth:`_restore_assigned`) and fresh
        metadata has named their logs (:meth:`_verify_logs`)."""
        self._broker_ok = True  # the group coordinator just answered
        generation = getattr(getattr(self._consumer, "_coordinator", None), "_generation", None)
        with self.lock:
            self._generation = getattr(generation, "generation_id", -1)
            self._to_restore |= {tp.partition for tp in partitions} - set(self.states)
            # Whether the saved offsets point into the logs that exist now is known only
            # from metadata fetched after this join (a broker that came back empty has
            # new topic ids): nothing is read from these partitions until it has come.
            if partitions:
                pausing.pause(self._consumer, *partitions)
                self._unverified |= set(partitions)
                self._metadata_wait = logid.metadata(self._consumer).request_update()

    def _restore_assigned(self) -> None:
        """Restore the state of newly assigned partitions: the newest checkpoint in the
        state topic (a local file only where the topic has none), then seek to the offsets
        it reflects. A state topic that cannot be read keeps them paused, retried."""
        if not self._to_restore or time.monotonic() < self._restore_retry_at:
            return
        numbers = sorted(self._to_restore)
        try:
            found = {}
            if self.state_reader is not None:
                found = self.state_reader.restore(numbers, self.config.state.restore_timeout_seconds)
        except (StateTopicError, KafkaError) as e:
            self._broker_failed("state_restore", e)
            return
        with self.lock:
            assigned = self._consumer.assignment()
            for p in numbers:
                if not any(tp.partition == p for tp in assigned):
                    self._to_restore.discard(p)
                    continue  # revoked meanwhile
                restored = found.get(p)
                if self._refused_wait(p, restored):
                    continue
                self._to_restore.discard(p)
                state, logs, source = self._restored_state(p, restored)
                if self.state_writer is not None:
                    self.state_writer.own(p, Epoch((restored.top_epoch if restored else 0) + 1, self._generation),
                                          restored.manifest.seq if restored and restored.manifest else 0,
                                          restored.keys if restored else [])
                self._changelogs.pop(p, None)
                for topic, offset in state.offsets.items():
                    tp = TopicPartition(topic, p)
                    if tp in assigned:
                        self._consumer.seek(tp, offset)
                if source:
                    log.info("partition %d restored at offsets %s from %s", p, state.offsets, source, extra={"partition": p})
                self.states[p] = state
                self._logs[p] = dict(logs)
            self.metrics.assigned_partitions.set(len(self.states))

    def _refused_wait(self, p: int, restored) -> bool:
        """True if partition ``p`` must wait: the state topic holds checkpoints of it, none
        readable with this replica's key (``state.refused_state: wait``). Starting afresh
        would lose the group's state and write checkpoints the others cannot read."""
        if restored is None or restored.manifest is not None or not restored.refused:
            self._refused.pop(p, None)
            return False
        if self.config.state.refused_state != "wait":
            log.error("partition %d: its %d checkpoints in the state topic are refused; starting afresh from the "
                      "committed offsets (state.refused_state: start_fresh)", p, restored.refused, extra={"partition": p})
            return False
        if p not in self._refused:
            log.error("partition %d: its %d checkpoints in the state topic are sealed with another key (or tampered "
                      "with): waiting, not starting afresh. Give this replica the group's DRIFTD_STATE_KEY (state.key_env), "
                      "or set state.refused_state: start_fresh after an intended key rotation", p, restored.refused,
                      extra={"partition": p})
        self._refused[p] = restored.refused
        self.metrics.kafka_errors.labels("state_refused").inc()
        self._restore_retry_at = time.monotonic() + 10.0
        return True

    def _restored_state(self, p: int, restored) -> tuple:
        """(state, logs, where it came from or None) of partition ``p``."""
        if restored is not None and restored.manifest is not None:
            self._resend(restored.sections)
            return decode_partition(restored.sections, self.config), restored.manifest.logs, \
                f"the state topic (checkpoint {restored.manifest.epoch}/{restored.manifest.seq})"
        cached = self.checkpoints.restore_sections(p)
        if cached is None:
            return PartitionState(p, self.config), {}, None
        manifest, sections = cached
        if manifest is None:  # a file written whole by an earlier driftd
            (state, logs) = sections
            state.attach(self.config)
            return state, logs, f"the local file (earlier format) in {self.checkpoints.directory}"
        self._resend(sections)
        return decode_partition(sections, self.config), manifest.logs, f"the local file in {self.checkpoints.directory}"

    def _resend(self, sections: dict) -> None:
        """Send again the alerts a partition's previous owner had not delivered, to the sinks
        it had not delivered them to (a pending id is not sent twice)."""
        if "alerts" in sections and self.alerts is not None:
            delivery = decode(sections["alert_delivery"]) if "alert_delivery" in sections else {}
            self.alerts.hand_over(decode(sections["alerts"]), delivery)


    def _revoked(self, partitions) -> None:
        numbers = {tp.partition for tp in partitions}
        if not numbers:
            return
        self._checkpoint(partitions=numbers, blocking=False)
        with self.lock:
            for p in numbers:
                self.states.pop(p, None)
                self._changelogs.pop(p, None)
                if self.state_writer is not None:
                    self.state_writer.disown(p)
            self._to_restore -= numbers
            for p in numbers:
                self._refused.pop(p, None)
            self._unverified = {tp for tp in self._unverified if tp.partition not in numbers}
            self.metrics.assigned_partitions.set(len(self.states))

    def _verify_logs(self) -> None:
        """Resume partitions held since their assignment once fresh metadata has come,
        reading from the beginning those whose log changed (:meth:`_follow_log`)."""
        with self.lock:
            wait = self._metadata_wait
            if not self._unverified or wait is None or not wait.is_done:
                return
            if wait.failed():  # broker away: ask again, and hold on
                self._metadata_wait = logid.metadata(self._consumer).request_update()
                return
            self._check_layout(logid.metadata(self._consumer))
            assigned = self._consumer.assignment()
            ready = [tp for tp in self._unverified if tp in assigned and tp.partition not in self._to_restore]
            self._unverified = {tp for tp in self._unverified if tp in assigned and tp.partition in self._to_restore}
            for tp in ready:
                state = self.states.get(tp.partition)
                if state is not None:
                    self._follow_log(state, tp)
            if ready:
                pausing.resume(self._consumer, *ready)

    def _check_layout(self, cluster) -> None:
        """The predictions and labels topics must have one partition count (a model's
        labels are joined on the partition number of its predictions): else the labels of
        the extra partitions never join. Said once in the log, and by /readyz while it lasts."""
        kafka = self.config.kafka
        counts = [len(cluster.partitions_for_topic(topic) or ()) for topic in (kafka.predictions_topic, kafka.labels_topic)]
        problem = None
        if all(counts) and counts[0] != counts[1]:
            problem = (f"kafka.predictions_topic {kafka.predictions_topic!r} has {counts[0]} partitions and "
                       f"kafka.labels_topic {kafka.labels_topic!r} {counts[1]}: labels on a partition number the other "
                       f"topic lacks never join (README \"Scaling and topics\")")
            if problem != self._layout_problem:
                log.error("%s", problem)
        self._layout_problem = problem

    def _follow_log(self, state: PartitionState, tp: TopicPartition) -> bool:
        """Compare the identity of ``tp``'s log now with the one ``state``'s offset points
        into (:mod:`daemon.kafka.logid`). If they differ (topic re-created, broker replaced or
        back empty) the offset means nothing in the new log: read it from its beginning.
        True if so. Call with the lock held."""
        logs = self._logs.setdefault(tp.partition, {})
        saved, current = logs.get(tp.topic), logid.identity(logid.metadata(self._consumer), tp.topic)
        changed = not logid.same_log(saved, current)
        if changed:
            offset = state.offsets.get(tp.topic)
            log.warning("%s[%d] is another log now (was %s, now %s): topic re-created or broker replaced; "
                        "reading it from the beginning%s%s", tp.topic, tp.partition, saved, current,
                        f" instead of offset {offset:,}" if offset is not None else "",
                        " (the embedded broker keeps nothing across restarts: expected)"
                        if self.config.kafka.bootstrap_servers == "embedded" else "",
                        extra={"partition": tp.partition})
            self._reread(state, tp)
        if current is not None:
            logs[tp.topic] = current
        return changed

    def _reread(self, state: PartitionState, tp: TopicPartition) -> None:
        """Read ``tp`` from the beginning of its (new) log; counted. Call with the lock held."""
        self._consumer.seek_to_beginning(tp)
        state.offsets[tp.topic] = 0
        state.offset_resets += 1


class Rebalance(ConsumerRebalanceListener):
    """kafka-python's rebalance callbacks, handed to the daemon."""

    def __init__(self, daemon: PartitionHandoff):
        self.daemon = daemon

    def on_partitions_revoked(self, revoked):
        self.daemon._revoked(revoked)

    def on_partitions_assigned(self, assigned):
        self.daemon._assigned(assigned)
