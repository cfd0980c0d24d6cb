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

This module holds the format (keys, epochs, manifests, blobs, the changelog of
sections); :mod:`daemon.kafka.statewriter` writes it, :mod:`daemon.kafka.statereader`
reads it back.
"""

from __future__ import annotations

import pickle
import time
from dataclasses import dataclass, field

import zstandard

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


class Prefix:
    """Record keys of one partition's checkpoints, and the purpose its manifests are sealed
    for (a manifest of another scope or partition does not unseal as this one's)."""

    def __init__(self, scope: str, partition: int):
        self.base = f"{scope}/p{partition}/"
        self.purpose = f"state {scope} p{partition}"

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

    ``encode`` turns an object into blob bytes (:func:`encode`).
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
