"""Reading partitions' checkpoints back from the state topic (its format:
:mod:`daemon.kafka.statetopic`).

:class:`StateReader` reads the state-topic partitions of the input partitions a replica
takes over up to their high watermark (or, with ``state.standby``, tails them all in the
background), and :meth:`StateReader.restore` gives each one's newest checkpoint whose
manifest unseals and whose blobs match their SHA-256 (:class:`Restored`); an older one
when the newest is incomplete or refused.
"""

from __future__ import annotations

import hashlib
import logging
import pickle
import threading
import time
from dataclasses import dataclass

from kafka.structs import TopicPartition

from daemon.kafka.checkpoint import Tampered, unseal
from daemon.kafka.statetopic import FORMAT, Manifest, Prefix, StateTopicError, parse_key

log = logging.getLogger("driftd")


@dataclass
class Restored:
    """The newest readable checkpoint of a partition: its manifest and sections
    ({name: compressed pickle}), the highest epoch number seen, and the keys of
    every epoch (to delete once a newer epoch has written)."""

    manifest: Manifest | None
    sections: dict
    top_epoch: int
    keys: list
    refused: int = 0  # checkpoints whose seal did not match (another DRIFTD_STATE_KEY, or tampered)


class StateReader:
    """Reads the state topic into memory: per partition, the manifests and blobs found.

    ``make_consumer()`` returns a KafkaConsumer without a group. ``catch_up`` reads the
    given input partitions' state-topic partitions up to their high watermark (the fetch
    response's: some brokers answer ListOffsets(latest) too small). With
    :meth:`start_standby`, a thread tails every state partition meanwhile.
    """

    def __init__(self, make_consumer, topic: str, scope: str, key: bytes, state_partitions):
        self._make_consumer = make_consumer
        self.topic = topic
        self.scope = scope
        self._key = key
        self._state_partitions = state_partitions
        self._consumer = None
        self._assigned: set = set()
        self._lock = threading.Lock()
        self._manifests: dict[int, dict] = {}  # partition -> {epoch: sealed manifest}
        self._blobs: dict[int, dict] = {}  # partition -> {(epoch, sha): {i: piece}}
        self._standby: threading.Thread | None = None
        self._stop = threading.Event()
        self.bytes_read = 0

    def start_standby(self) -> None:
        """Tail all state partitions in a background thread (``state.standby``)."""
        self._standby = threading.Thread(target=self._tail, name="driftd-standby", daemon=True)
        self._standby.start()

    def _tail(self) -> None:
        while not self._stop.is_set():
            try:
                with self._lock:
                    self._assign(range(self._count()))
                    self._poll(100)
            except Exception as e:  # noqa: BLE001 - a standby is an optimisation: retried
                log.warning("standby reader of %s: %s; retrying", self.topic, e)
                self._stop.wait(1.0)
            self._stop.wait(0.05)

    def close(self) -> None:
        self._stop.set()
        if self._standby is not None:
            self._standby.join(timeout=5)
        with self._lock:
            if self._consumer is not None:
                self._consumer.close()
                self._consumer = None

    def restore(self, partitions, timeout: float) -> dict[int, Restored]:
        """{partition: :class:`Restored`} for ``partitions`` as the topic holds them now.
        Raises :class:`StateTopicError` if the topic cannot be read within ``timeout``."""
        with self._lock:
            n = self._count()
            wanted = {p % n for p in partitions}
            self._assign(wanted)
            deadline = time.monotonic() + timeout
            while not self._at_end(wanted):
                if time.monotonic() > deadline:
                    raise StateTopicError(f"state topic {self.topic} not read to its end within {timeout:.0f} s")
                self._poll(200)
            out = {p: self._newest(p) for p in partitions}
            if self._standby is None:  # no standby: keep nothing, the next restore reads again
                self._manifests.clear()
                self._blobs.clear()
                self._consumer.close()
                self._consumer, self._assigned = None, set()
            return out

    def _count(self) -> int:
        return max(1, self._state_partitions(self.topic) or 1)

    def _assign(self, state_partitions) -> None:
        wanted = set(state_partitions)
        if self._consumer is None:
            self._consumer = self._make_consumer()
        if not wanted <= self._assigned:
            new = [TopicPartition(self.topic, sp) for sp in sorted(wanted - self._assigned)]
            self._assigned |= wanted
            self._consumer.assign([TopicPartition(self.topic, sp) for sp in sorted(self._assigned)])
            self._consumer.seek_to_beginning(*new)  # the others keep their position

    def _at_end(self, state_partitions) -> bool:
        for sp in state_partitions:
            tp = TopicPartition(self.topic, sp)
            high = self._consumer.highwater(tp)
            if high is None or self._consumer.position(tp) < high:
                return False
        return True

    def _poll(self, timeout_ms: int) -> None:
        for records in self._consumer.poll(timeout_ms=timeout_ms).values():
            for record in records:
                self._take(record)

    def _take(self, record) -> None:
        parsed = parse_key(record.key or b"")
        if parsed is None or parsed[0] != self.scope:
            return
        _, partition, epoch, kind, sha, i = parsed
        self.bytes_read += len(record.value or b"")
        if kind == "m":
            manifests = self._manifests.setdefault(partition, {})
            if record.value is None:
                manifests.pop(epoch, None)
            else:
                manifests[epoch] = record.value
            return
        blobs = self._blobs.setdefault(partition, {})
        if record.value is None:
            piece_set = blobs.get((epoch, sha))
            if piece_set is not None:
                piece_set.pop(i, None)
                if not piece_set:
                    del blobs[(epoch, sha)]
        else:
            blobs.setdefault((epoch, sha), {})[i] = record.value

    def _newest(self, partition: int) -> Restored:
        manifests = self._manifests.get(partition, {})
        blobs = self._blobs.get(partition, {})
        prefix = Prefix(self.scope, partition)
        keys = [prefix.manifest(e) for e in manifests]
        keys += [prefix.piece(e, sha, i) for (e, sha), piece_set in blobs.items() for i in piece_set]
        top = max((e.number for e in manifests), default=0)
        readable, refused = [], 0
        for epoch, sealed in manifests.items():
            try:
                saved = unseal(self._key, prefix.purpose, sealed)
                manifest = saved["manifest"]
                if saved.get("format") != FORMAT or manifest.partition != partition or manifest.epoch != epoch:
                    raise ValueError("written by another version, or under another key name")
                readable.append(manifest)
            except (Tampered, ValueError, KeyError, pickle.UnpicklingError) as e:
                refused += 1
                log.error("state topic %s: checkpoint of partition %d epoch %s refused (%s)", self.topic, partition, epoch, e)
        for manifest in sorted(readable, key=lambda m: m.id, reverse=True):
            sections = {}
            for name, sha, size in manifest.sections:
                piece_set = blobs.get((manifest.epoch, sha), {})
                data = b"".join(piece_set[i] for i in sorted(piece_set))
                if len(data) != size or hashlib.sha256(data).hexdigest() != sha:
                    log.error("state topic %s: checkpoint %s of partition %d lacks section %s (incomplete write); "
                              "trying an older one", self.topic, manifest.id, partition, name)
                    break
                sections[name] = data
            else:
                return Restored(manifest, sections, top, keys, refused)
        return Restored(None, {}, top, keys, refused)
