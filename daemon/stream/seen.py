"""Which (model, id) pairs were settled lately: an ageing Bloom filter, for spotting duplicates.

A Bloom filter (Bloom 1970) answers "seen before?" in a few bits per id instead of a dict
entry of 180 to 230 bytes, at the price of an occasional false "yes"; it never forgets an
id it holds, but it cannot delete one either. So ids are kept in *generations* (the
ageing Bloom filter of Yoon, "Aging Bloom Filter with Two Active Buffers for Dynamic
Sets", IEEE TKDE 22(1), 2010, with more than two buffers), and forgotten a whole
generation at a time:

- An id goes into a generation of its model and *bucket*, the ``span``-long window of
  event time (``ttl / 4``) its time falls in; a bucket's generation that is full
  (``capacity`` ids) is closed and a new one opened.
- A model's generation is dropped once all its ids are more than ``ttl`` behind the
  model's watermark (the newest time in it is), so an id is remembered at least as long as
  ``ttl`` past its time and at most ``ttl + span``, whatever the clocks of other models
  (each model's events may be stamped by its own clock, or replayed from hours ago); and
  the oldest generations made go first while more than ``max_ids - 1`` ids are held (the
  join's ``max_pending``).

The false-positive bound. A generation of capacity ``C`` is sized for the rate
``p * C / max_ids``; holding ``n <= C`` ids it answers a false yes with probability
``(1 - exp(-k n / m))^k`` (the standard estimate; m bits, k hash functions, k at least 6
here as p < 0.01), which grows faster than ``n`` (for any k >= 2), so it is at most
``p * n / max_ids``. A lookup consults every generation, and all of them together hold at
most ``max_ids`` ids when one is made, so by the union bound a lookup of an id not held
is a false yes with probability at most ``p``, however the ids are spread over
generations (plus ``max_ids / 2^128`` for a collision of the 128-bit hashes). A lookup
consults only its model's generations (and those saved before generations had a model).

Memory: ``-ln(p * C / max_ids) / ln(2)^2`` bits per id a generation can hold (46 bits,
5.75 bytes, for the largest at p = 1e-9), allocated a generation at a time, so nothing
while nothing has joined. A model's bucket's first generation holds 32 ids (about 240
bytes); its next ones three times what it holds, up to ``max_ids / 4``; but the first
generation of the bucket the model's stream is in or about to enter holds what its fullest
other bucket holds, so that a steady stream fills one or two generations a bucket.
Counting the generations not yet full, 8 to 10 bytes per id held of a busy model (a dict of
the same ids took 180 to 230), at least about 240 bytes a bucket of a quiet one. Each
generation of the model costs its lookups about 0.1-0.2 us, hence few and large ones.

Everything here is a function of the ids and times inserted: the hash is BLAKE2b of
``model + "\\0" + id`` (Python's ``hash()`` of a string is salted per process), so two
processes fed the same events hold the same bits, and a restored filter answers as the
original did.

>>> seen = SeenIds(ttl=3600.0, max_ids=1001, false_positive_rate=1e-9)
>>> seen.add("fraud", "p-1", 1000.0)
>>> seen.has("fraud", "p-1"), seen.has("fraud", "p-2"), seen.count
(True, False, 1)
>>> seen.expire(1000.0 + 3600.0, "fraud")  # the model's watermark: exactly ttl after it, still held
>>> seen.has("fraud", "p-1")
True
>>> seen.expire(1e9, "other")  # another model's clock ages only that model's ids
>>> seen.has("fraud", "p-1")
True
>>> seen.expire(1000.0 + 3600.5, "fraud")
>>> seen.has("fraud", "p-1"), seen.count
(False, 0)
"""

from __future__ import annotations

import bisect
import hashlib
import math
import operator

from rbloom import Bloom

#: Buckets per ttl: an id may be remembered up to ttl / SPANS_PER_TTL longer than ttl.
SPANS_PER_TTL = 4
#: Default chance that a lookup of an id never added answers yes (the join's duplicate
#: false positives, ``join.duplicate_false_positive_rate``).
DUPLICATE_FALSE_POSITIVE_RATE = 1e-9
#: Ids of a model's bucket's first generation (about 240 bytes at the default rate: a model
#: whose ids span the ttl, in five buckets of each of the join's two filters, holds 2.4 KB).
MIN_CAPACITY = 32
#: A bucket's next generation holds GROWTH times what the bucket holds.
GROWTH = 3
#: The largest generation holds max_ids / GENERATIONS_PER_LIMIT ids: dropping the oldest
#: one for the count limit forgets at most that share. Every generation costs each lookup
#: about 0.2 us, so they are few and large.
GENERATIONS_PER_LIMIT = 4
# The filters are given id_hash's value, and rbloom calls this on it: the int itself (a
# builtin: a Python function here doubled the cost of a lookup).
_HASH_FUNC = operator.index


def id_hash(model: str, id) -> int:
    """The (model, id) pair as a signed 128-bit int (what rbloom takes), the same in every
    process. Lone surrogates (JSON can carry them) are kept, not refused."""
    data = f"{model}\0{id}".encode("utf-8", "surrogatepass")
    return int.from_bytes(hashlib.blake2b(data, digest_size=16).digest(), "little", signed=True)


class _Generation:
    __slots__ = ("gid", "model", "bucket", "capacity", "count", "newest", "bloom")

    def __init__(self, gid: int, model: str | None, bucket: int, capacity: int, bloom: Bloom, count: int = 0,
                 newest: float = float("-inf")):
        self.gid, self.model, self.bucket, self.capacity, self.bloom = gid, model, bucket, capacity, bloom
        self.count, self.newest = count, newest  # ids added; their newest time

    def state(self) -> tuple:
        return self.gid, self.bucket, self.capacity, self.count, self.newest, self.bloom.save_bytes(), self.model


class SeenIds:
    """The ageing Bloom filter of one partition's settled ids, aged per model.

    ``ttl`` (seconds of event time) and ``max_ids`` (the most ids held when a lookup is
    made: the join's ``max_pending + 1``) size it; ``false_positive_rate`` (0 < p < 0.01)
    bounds the chance that a lookup of an id never added answers yes.
    """

    def __init__(self, ttl: float, max_ids: int, false_positive_rate: float):
        if not 0 < false_positive_rate < 0.01:
            raise ValueError(f"false_positive_rate must be above 0 and below 0.01, not {false_positive_rate!r}")
        self.span = ttl / SPANS_PER_TTL
        self.ttl = ttl
        self.max_ids = max_ids
        self.rate = false_positive_rate
        self.count = 0  # ids held, over all generations
        self._next_gid = 0
        self._generations: list[_Generation] = []  # all of them, the oldest made first
        # model -> its generations by (bucket, gid), the oldest first; None: those saved
        # before generations had a model (consulted for every model, aged by expire(wm, None)).
        self._by_model: dict[str | None, list[_Generation]] = {}
        self._open: dict[tuple, _Generation] = {}  # (model, bucket) -> its newest generation
        self._log: dict | None = None  # what changed since changes(), when tracked

    # -- lookups and inserts ---------------------------------------------------------------
    def has(self, model: str, id) -> bool:
        """Whether (model, id) was added and not yet forgotten (or, with probability at most
        ``false_positive_rate``, a false yes)."""
        mine, legacy = self._by_model.get(model), self._by_model.get(None)
        if not mine and not legacy:
            return False
        h = id_hash(model, id)
        for generations in (mine, legacy):
            for g in reversed(generations or ()):  # a plain loop: twice as fast as any() here
                if h in g.bloom:
                    return True
        return False

    def add(self, model: str, id, ts: float, watermark: float = float("-inf"), hashed: int | None = None) -> None:
        """Remember (model, id), stamped ``ts``; the model's watermark (both epoch seconds)
        only helps size a new generation; ``hashed``: ``id_hash(model, id)`` if the caller
        has it. The oldest generations made go while ``max_ids`` or more ids are held."""
        bucket = int(ts // self.span)
        g = self._open.get((model, bucket))
        if g is None or g.count >= g.capacity:
            g = self._new_generation(model, bucket, watermark)
        h = id_hash(model, id) if hashed is None else hashed
        g.bloom.add(h)
        g.count += 1
        g.newest = max(g.newest, ts)
        self.count += 1
        if self._log is not None:
            self._log["added"].setdefault(g.gid, []).append(h)
        while self.count >= self.max_ids:
            self._drop(self._generations[0])

    def _new_generation(self, model: str, bucket: int, watermark: float) -> _Generation:
        capacity = self._capacity(model, bucket, watermark)
        g = self._make(self._next_gid, model, bucket, capacity)
        self._next_gid += 1
        if self._log is not None:
            self._log["created"].append((g.gid, bucket, capacity, model))
        return g

    def _capacity(self, model: str, bucket: int, watermark: float) -> int:
        held: dict[int, int] = {}
        for g in self._by_model.get(model, ()):
            held[g.bucket] = held.get(g.bucket, 0) + g.count
        mine = held.pop(bucket, 0)
        wanted = max(MIN_CAPACITY, GROWTH * mine)
        # A bucket the model's stream is in, or about to enter, will hold about what its
        # fullest other one does (a steady stream's do alike); not one of stragglers or of
        # a stray time far ahead.
        current = watermark == float("-inf") or 0 <= bucket - watermark // self.span <= 1
        if mine == 0 and current:
            wanted = max(wanted, max(held.values(), default=0))
        return min(wanted, math.ceil(self.max_ids / GENERATIONS_PER_LIMIT))

    def _make(self, gid: int, model: str | None, bucket: int, capacity: int, data: bytes | None = None,
              count: int = 0, newest: float = float("-inf")) -> _Generation:
        if data is None:
            bloom = Bloom(capacity, self.rate * capacity / self.max_ids, _HASH_FUNC)
        else:
            bloom = Bloom.load_bytes(data, _HASH_FUNC)
        g = _Generation(gid, model, bucket, capacity, bloom, count, newest)
        bisect.insort(self._generations, g, key=_by_gid)
        mine = self._by_model.setdefault(model, [])
        bisect.insort(mine, g, key=_by_bucket)
        if model is not None:
            self._open[(model, bucket)] = max(g, self._open.get((model, bucket), g), key=_by_gid)
        return g

    # -- forgetting ---------------------------------------------------------------------------
    def expire(self, watermark: float, model: str | None = None) -> None:
        """Drop ``model``'s oldest generations while all their ids are more than ``ttl``
        behind ``watermark`` (the model's, epoch seconds; ``model`` None: the generations
        saved before generations had a model, against the partition's). Oldest means of
        the earliest bucket; a bucket's later generations wait for its earlier ones (at
        most ``span`` longer)."""
        generations = self._by_model.get(model)
        while generations and watermark - generations[0].newest > self.ttl:
            self._drop(generations[0])

    @property
    def unowned(self) -> bool:
        """Whether it holds generations saved before generations had a model."""
        return None in self._by_model

    def _drop(self, g: _Generation) -> None:
        self._generations.remove(g)
        mine = self._by_model[g.model]
        mine.remove(g)
        if not mine:
            del self._by_model[g.model]
        if self._open.get((g.model, g.bucket)) is g:
            del self._open[(g.model, g.bucket)]
        self.count -= g.count
        if self._log is not None:
            self._log["dropped"].append(g.gid)

    def nbytes(self) -> int:
        """Bytes of filter bits held (the generations' bit arrays)."""
        return sum(g.bloom.size_in_bits for g in self._generations) // 8

    # -- state and changes ----------------------------------------------------------------------
    def __getstate__(self) -> dict:
        return {"ttl": self.ttl, "max_ids": self.max_ids, "rate": self.rate, "next_gid": self._next_gid,
                "generations": [g.state() for g in self._generations]}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["ttl"], state["max_ids"], state["rate"])
        self._next_gid = state["next_gid"]
        for gid, bucket, capacity, count, newest, data, *model in state["generations"]:
            self._make(gid, model[0] if model else None, bucket, capacity, data, count, newest)
            self.count += count

    def adopt(self, other: "SeenIds") -> None:
        """Take in ``other``'s generations (of a filter saved before generations had a model,
        merged into this one on loading: numbered anew, consulted for every model)."""
        for g in other._generations:
            self._make(self._next_gid, None, g.bucket, g.capacity, g.bloom.save_bytes(), g.count, g.newest)
            self._next_gid += 1
            self.count += g.count

    def track(self) -> None:
        """Start (or restart) recording what :meth:`changes` returns."""
        self._log = {"created": [], "added": {}, "dropped": []}

    def untrack(self) -> None:
        """Stop recording (the owner will take the whole state instead)."""
        self._log = None

    def changes(self) -> dict:
        """What changed since :meth:`track`, and track anew: ``{"next_gid": int,
        "created": [(gid, bucket, capacity, model)], "added": {gid: (newest, [hash])},
        "dropped": [gid]}``, the hashes in insertion order; a generation made and dropped in
        between is left out, and so are the ids added to a generation dropped since. Its
        size grows with the ids added, not with the ids held."""
        log = self._log or {"created": [], "added": {}, "dropped": []}
        dropped = set(log["dropped"])
        born = {c[0] for c in log["created"]}
        newest = {g.gid: g.newest for g in self._generations}
        self.track()
        return {"next_gid": self._next_gid,
                "created": [c for c in log["created"] if c[0] not in dropped],
                "added": {gid: (newest[gid], hs) for gid, hs in log["added"].items() if gid not in dropped},
                "dropped": [gid for gid in log["dropped"] if gid not in born]}

    def apply(self, change: dict) -> None:
        """Replay a :meth:`changes` record taken from a filter in this one's state."""
        for gid, bucket, capacity, *model in change["created"]:
            self._make(gid, model[0] if model else None, bucket, capacity)
        by_gid = {g.gid: g for g in self._generations}
        for gid, (newest, hashes) in change["added"].items():
            g = by_gid[gid]
            for h in hashes:
                g.bloom.add(h)
            g.count += len(hashes)
            g.newest = newest
            self.count += len(hashes)
        for gid in change["dropped"]:
            self._drop(by_gid[gid])
        self._next_gid = change["next_gid"]


def _by_gid(g: _Generation) -> int:
    return g.gid


def _by_bucket(g: _Generation) -> tuple:
    return g.bucket, g.gid
