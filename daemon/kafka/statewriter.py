"""Writing partitions' checkpoints to the state topic (its format: :mod:`daemon.kafka.statetopic`).

One :class:`StateWriter` per daemon: for each input partition it owns (under an epoch
taken on assignment), it sends a checkpoint's changed blobs, then its sealed manifest,
in order, on one producer, and once a manifest is acknowledged deletes (tombstones) the
blobs no newer manifest names and the keys of older epochs.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from daemon.kafka.checkpoint import seal
from daemon.kafka.statetopic import FORMAT, Epoch, Manifest, Prefix, encode, pieces


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
        prefix = Prefix(self.scope, partition)
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
        blob = seal(self._key, prefix.purpose, {"format": FORMAT, "manifest": manifest})
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
        prefix = Prefix(self.scope, partition)
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


@dataclass
class _Owned:
    epoch: Epoch
    seq: int
    stale_keys: list
    written: dict = field(default_factory=dict)  # sha -> bytes, acknowledged under this epoch
    unacked: dict = field(default_factory=dict)
