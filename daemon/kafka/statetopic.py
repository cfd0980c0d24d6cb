"""The state topic: each partition's state on a compacted Kafka topic, so that it follows
the partition to whichever replica the consumer group hands it (Kafka Streams' changelog
topics do the same for their stores).

A checkpoint of input partition ``p`` is a set of records on state-topic partition
``p % n`` (``n`` = the state topic's partition count), all keyed under
``<scope>/p<p>/<epoch>/``:

- **blobs**, ``.../b/<sha256>/<i>``: the state cut into sections (the partition's counters
  and alert episodes, each model's pipeline, the label join as a snapshot followed by its
  changes), each pickled, zstd-compressed, and split into pieces of at most
  ``state.piece_bytes`` (below the broker's message limit). A blob is named by its
  SHA-256, so a section that did not change since the last checkpoint is not written
  again, and the join, written as a snapshot plus the changes since (a changelog), is
  never rewritten whole every few seconds;
- then the **manifest**, ``.../m``: the input offsets the state reflects, the identity of
  their logs, and the list of sections with their SHA-256, sealed with HMAC-SHA256 like
  the checkpoint files (:mod:`daemon.kafka.checkpoint`). Blobs are checked against the
  hashes of a manifest whose seal is good before anything is unpickled.

Records of one checkpoint are produced in order by one producer with one request in
flight, and the manifest is sent last: a manifest in the log comes after its blobs.
Blobs no longer named by the newest manifest are deleted (tombstones), so compaction
keeps the topic near the size of the live state.

**Fencing.** Every key holds the writer's *epoch* ``<n>.<generation>``: on assignment a
replica takes ``n`` one above the highest it finds for the partition, and the consumer
group's generation. A restore takes the manifest with the highest epoch: a replica that
lost the partition while paused (SIGSTOP, a long GC) and writes on when it wakes up
writes under its old, lower epoch and is ignored, and its deletes touch its own keys
only. Kafka transactions are not used: correctness needs only this ordering and the
offsets stored in the manifest (a restore seeks to them), not read-committed delivery.

**Standby.** With ``state.standby`` a replica tails the whole state topic in the
background (Kafka Streams' standby replicas), so taking over a partition reads only
what was written since, not the topic from its beginning.
"""

from __future__ import annotations

import hashlib
import logging
import pickle
import threading
import time
from dataclasses import dataclass, field

import zstandard
from kafka.structs import TopicPartition

from daemon.kafka.checkpoint import Tampered, seal, unseal

log = logging.getLogger("driftd")

FORMAT = 3


class StateTopicError(RuntimeError):
    """The state topic cannot be read in time (the partition stays paused and is retried)."""


@dataclass(frozen=True, order=True)
class Epoch:
    """Who wrote a checkpoint: ``number`` (one above the highest found at restore) and the
    consumer group ``generation`` of the assignment; ordered as a tuple."""

    number: int
    generation: int

    def __str__(self) -> str:
        return f"{self.number}.{self.generation}"

    @classmethod
    def parse(cls, text: str) -> "Epoch":
        number, generation = text.split(".")
        return cls(int(number), int(generation))


@dataclass
class Manifest:
    """What one checkpoint of ``partition`` holds: ``offsets`` ({topic: next offset}),
    ``logs`` ({topic: log identity}) and ``sections`` ([(name, sha256 hex, bytes)])."""

    scope: str
    partition: int
    epoch: Epoch
    seq: int
    offsets: dict
    logs: dict
    sections: list
    written_at: float = field(default_factory=time.time)

    @property
    def id(self) -> tuple:
        """Orders checkpoints of one partition: newer is greater."""
        return (self.epoch, self.seq)


def pieces(data: bytes, size: int) -> list[bytes]:
    """``data`` cut into pieces of at most ``size`` bytes (one empty piece for no data).

    >>> [len(p) for p in pieces(b"x" * 10, 4)], pieces(b"", 4)
    ([4, 4, 2], [b''])
    """
    return [data[i:i + size] for i in range(0, len(data), size)] or [b""]


class _Prefix:
    """Record keys of one partition's checkpoints."""

    def __init__(self, scope: str, partition: int):
        self.base = f"{scope}/p{partition}/"

    def manifest(self, epoch: Epoch) -> bytes:
        return f"{self.base}{epoch}/m".encode()

    def piece(self, epoch: Epoch, sha: str, i: int) -> bytes:
        return f"{self.base}{epoch}/b/{sha}/{i}".encode()


def parse_key(key: bytes):
    """(scope, partition, epoch, kind, sha, piece) of a state-topic key; None if not one.

    >>> parse_key(b"g-p-l/p3/2.7/b/ab12/0")
    ('g-p-l', 3, Epoch(number=2, generation=7), 'b', 'ab12', 0)
    >>> parse_key(b"g-p-l/p3/2.7/m")
    ('g-p-l', 3, Epoch(number=2, generation=7), 'm', None, None)
    """
    try:
        parts = key.decode().split("/")
        scope, partition, epoch, kind = parts[0], int(parts[1][1:]), Epoch.parse(parts[2]), parts[3]
        if kind == "m" and len(parts) == 4:
            return scope, partition, epoch, kind, None, None
        if kind == "b" and len(parts) == 6:
            return scope, partition, epoch, kind, parts[4], int(parts[5])
    except (ValueError, IndexError, UnicodeDecodeError):
        pass
    return None


class StateWriter:
    """Writes checkpoints of partitions to the state topic; one per daemon.

    ``producer``: a KafkaProducer with ``acks="all"`` and one request in flight per
    connection (ordering). ``state_partitions(topic)`` answers the state topic's
    partition count. ``key`` seals manifests. ``piece_bytes`` bounds a record's value.
    """

    def __init__(self, producer, topic: str, scope: str, key: bytes, piece_bytes: int = 512 * 1024,
                 state_partitions=None):
        self.producer = producer
        self.topic = topic
        self.scope = scope
        self._key = key
        self.piece_bytes = piece_bytes
        self._state_partitions = state_partitions
        self._owned: dict[int, _Owned] = {}
        self._sent: list = []  # checkpoints sent, not yet confirmed
        self.bytes_written = 0

    def own(self, partition: int, epoch: Epoch, seq: int, stale_keys: list) -> None:
        """Start writing ``partition`` under ``epoch`` (after a restore whose manifest had
        sequence ``seq``); ``stale_keys`` (keys of older epochs) are deleted once the first
        manifest of this epoch is in."""
        self._owned[partition] = _Owned(epoch, seq, list(stale_keys))

    def disown(self, partition: int) -> None:
        self._owned.pop(partition, None)

    def epoch(self, partition: int) -> Epoch | None:
        owned = self._owned.get(partition)
        return owned.epoch if owned else None

    def save(self, partition: int, sections: list, offsets: dict, logs: dict, wait: float | None = None) -> Manifest | None:
        """Send a checkpoint: ``sections`` = [(name, object or bytes)] (bytes are already
        blobs, from :func:`encode`). ``wait`` = seconds to wait for the broker's
        acknowledgement (:meth:`confirm`); None sends without waiting (as in a rebalance
        callback, or to confirm several partitions at once). Returns the manifest, or
        None if the partition is not owned (revoked meanwhile)."""
        owned = self._owned.get(partition)
        if owned is None:
            return None
        prefix = _Prefix(self.scope, partition)
        target = self._target(partition)
        listed, futures = [], []
        for name, value in sections:
            data = value if isinstance(value, bytes) else self.encode(value)
            sha = hashlib.sha256(data).hexdigest()
            listed.append((name, sha, len(data)))
            if sha in owned.written:
                continue
            for i, piece in enumerate(pieces(data, self.piece_bytes)):
                futures.append(self._send(prefix.piece(owned.epoch, sha, i), piece, target))
            owned.unacked[sha] = len(data)
        manifest = Manifest(self.scope, partition, owned.epoch, owned.seq + 1, dict(offsets), dict(logs or {}), listed)
        blob = seal(self._key, self._purpose(partition), {"format": FORMAT, "manifest": manifest})
        futures.append(self._send(prefix.manifest(owned.epoch), blob, target))
        owned.seq += 1
        self._sent.append((partition, owned, manifest, futures))
        if wait is not None:
            self.confirm(wait)
        return manifest

    def confirm(self, timeout: float) -> None:
        """Wait up to ``timeout`` seconds for the checkpoints sent so far; raises
        kafka-python's KafkaError (e.g. KafkaTimeoutError) if one is not acknowledged
        (they are written again, whole, at the next checkpoint)."""
        sent, self._sent = self._sent, []
        if not sent:
            return
        self.producer.flush(timeout=timeout)
        try:
            for _, _, _, futures in sent:
                for future in futures:
                    future.get(timeout=0)  # raises the send's error, if any
        except Exception:
            for _, owned, _, _ in sent:
                owned.unacked.clear()
            raise
        for partition, owned, manifest, _ in sent:
            if self._owned.get(partition) is owned:
                self._acknowledged(partition, owned, manifest, self._target(partition))

    @staticmethod
    def encode(obj) -> bytes:
        """``obj`` as blob bytes (:func:`encode`)."""
        return encode(obj)

    def _acknowledged(self, partition: int, owned: "_Owned", manifest: Manifest, target: int) -> None:
        """After a manifest is in: delete the blobs it no longer names, and (once) the keys
        of older epochs."""
        named = {sha for _, sha, _ in manifest.sections}
        owned.written.update(owned.unacked)
        owned.unacked.clear()
        prefix = _Prefix(self.scope, partition)
        for sha in [sha for sha in owned.written if sha not in named]:
            for i in range(max(1, -(-owned.written.pop(sha) // self.piece_bytes))):
                self._send(prefix.piece(owned.epoch, sha, i), None, target)
        for key in owned.stale_keys:
            self._send(key, None, target)
        owned.stale_keys = []

    def _send(self, key: bytes, value: bytes | None, partition: int):
        self.bytes_written += len(key) + (len(value) if value else 0)
        return self.producer.send(self.topic, key=key, value=value, partition=partition)

    def _target(self, partition: int) -> int:
        n = self._state_partitions(self.topic) if self._state_partitions else 1
        return partition % max(1, n or 1)

    def _purpose(self, partition: int) -> str:
        return f"state {self.scope} p{partition}"


@dataclass
class _Owned:
    epoch: Epoch
    seq: int
    stale_keys: list
    written: dict = field(default_factory=dict)  # sha -> bytes, acknowledged under this epoch
    unacked: dict = field(default_factory=dict)


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
        prefix = _Prefix(self.scope, partition)
        keys = [prefix.manifest(e) for e in manifests]
        keys += [prefix.piece(e, sha, i) for (e, sha), piece_set in blobs.items() for i in piece_set]
        top = max((e.number for e in manifests), default=0)
        readable, refused = [], 0
        for epoch, sealed in manifests.items():
            try:
                saved = unseal(self._key, f"state {self.scope} p{partition}", sealed)
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


def encode(obj) -> bytes:
    """``obj`` pickled and zstd-compressed: the bytes of a blob."""
    return zstandard.ZstdCompressor(level=3).compress(pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL))


def decode(data: bytes):
    """The object a blob holds (after its SHA-256 was checked against a sealed manifest)."""
    return pickle.loads(zstandard.ZstdDecompressor().decompress(data))


def decode_partition(sections: dict, config):
    """The ``PartitionState`` that ``sections`` ({name: blob bytes}) hold, bound to ``config``."""
    from daemon.stream.partition import PartitionState  # the daemon's state; this module stays below it

    models = {name[len("model/"):]: decode(data) for name, data in sections.items() if name.startswith("model/")}
    return PartitionState.from_sections(decode(sections["core"]), models, Changelog.parts(sections, "join"), config)


class Changelog:
    """Sections for an object offering ``snapshot()`` and ``changes()`` (the label join):
    a snapshot, then the changes of each checkpoint after it, each its own blob, so only
    the newest changes are written; a new snapshot once the changes outweigh it.

    ``encode`` turns an object into blob bytes (:meth:`StateWriter.encode`).
    """

    def __init__(self, name: str, encode):
        self.name = name
        self._encode = encode
        self._parts: list[tuple[str, bytes]] = []

    def sections(self, obj) -> list[tuple[str, bytes]]:
        """[(name, bytes)]: ``<name>/0`` the snapshot, ``<name>/<k>`` the changes after it."""
        if not hasattr(obj, "changes"):  # an object without a changelog is written whole
            return [(f"{self.name}/0", self._encode(obj))]
        if not self._parts or sum(len(b) for _, b in self._parts[1:]) > len(self._parts[0][1]):
            self._parts = [(f"{self.name}/0", self._encode(obj.snapshot()))]
        else:
            self._parts.append((f"{self.name}/{len(self._parts)}", self._encode(obj.changes())))
        return list(self._parts)

    @staticmethod
    def parts(sections: dict, name: str) -> list:
        """The decoded snapshot and changes of ``name`` in ``sections``, in order."""
        prefix = f"{name}/"
        found = sorted((int(k[len(prefix):]), v) for k, v in sections.items() if k.startswith(prefix))
        return [decode(v) for _, v in found]
