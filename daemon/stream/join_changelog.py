"""The state of a :class:`~daemon.stream.join.LabelJoin`, whole and as a changelog.

:class:`JoinChangelog` is the join's persistence, kept apart from its logic: pickling
(``__getstate__``/``__setstate__``, which also reads every older checkpoint layout),
:meth:`~JoinChangelog.snapshot` (the whole state), :meth:`~JoinChangelog.changes` (what
changed since, in size proportional to the events since, not to what is waiting: the
incremental checkpoints and the state topic's records) and
:meth:`~JoinChangelog.restore` (the join rebuilt from a snapshot and the changes after
it). The join reports each change through :meth:`~JoinChangelog._changed` (a buffer
entry) and its counts and watermarks through the record ``_log``.

>>> from daemon.stream.join import LabelJoin
>>> join = LabelJoin(ttl=3600, grace=60, max_pending=100)
>>> snapshot = join.snapshot()
>>> join.add_prediction("fraud", "p-1", 1000.0, (1, 0.9, "7"))
>>> again = LabelJoin.restore(snapshot, [join.changes()])
>>> again.add_label("fraud", "p-1", 1900.0, 0)
('fraud', (1, 0.9, '7'), 0, 900.0)
"""

from __future__ import annotations

import copy
from collections import Counter

from daemon.stream.seen import DUPLICATE_FALSE_POSITIVE_RATE, SeenIds
from daemon.stream.watermark import RANK, Watermark

# A tombstone in a change record: the key left the buffer (buffer values are never None).
_GONE = None


class _Queue(tuple):
    """Several events of one (model, id) waiting on one stream, oldest first: the id was
    reused more than the ttl after the event before (see :mod:`daemon.stream.join`). A
    buffer value is one event's entry, or this when there are several: the usual value
    stays a plain entry, and a tuple (immutable) can be shared with a snapshot or a record."""

    __slots__ = ()


def _count_waiting(predictions: dict, labels: dict) -> dict:
    """The join's ``_sizes``: entries waiting on each stream, and ``queued``, those behind
    the oldest of their (model, id) in both (an id's events but the first)."""
    sizes = {"queued": 0}
    for which, buffer in (("predictions", predictions), ("labels", labels)):
        sizes[which] = sum(map(len, buffer.values()))
        for ids in buffer.values():
            for value in ids.values():
                if type(value) is _Queue:
                    sizes[which] += len(value) - 1
                    sizes["queued"] += len(value) - 1
    return sizes


_BUFFERS = ("_predictions", "_labels")
#: The filters of ids whose fate is known: predictions joined or expired, labels joined or orphaned.
_FILTERS = ("_settled_predictions", "_settled_labels")
#: The filters of checkpoints saved before they were per model and per stream: joined ids,
#: expired predictions, orphaned labels (merged into _FILTERS on loading).
_OLD_FILTERS = ("_seen", "_settled", "_orphaned")


class JoinChangelog:
    """The persistence of :class:`~daemon.stream.join.LabelJoin` (its base class): see the
    module docs. It relies on the join's attributes (the buffers ``_predictions`` and
    ``_labels``, the filters, the watermark lists, ``counts``)."""

    def __getstate__(self) -> dict:
        state = {k: v for k, v in self.__dict__.items() if k not in ("_log", "_sizes", "_old_filters")}
        for name in _BUFFERS:  # the models with something waiting
            state[name] = {model: ids for model, ids in state[name].items() if ids}
        for name in _FILTERS:
            state[name] = getattr(self, name).__getstate__()
        return state

    def __setstate__(self, state: dict) -> None:
        self._load(state)
        self._old_filters = None

    def _load(self, state: dict) -> None:
        """Load a state (of any version); the filters of a checkpoint saved before they were
        per model and per stream are kept in ``_old_filters`` too, for :meth:`restore`."""
        state = dict(state)
        # Checkpoints written before the robust watermark kept the newest time only.
        for stream in ("prediction", "label"):
            newest = state.pop(f"{stream}_watermark", None)
            if f"_newest_{stream}s" not in state:
                state[f"_newest_{stream}s"] = [] if newest in (None, float("-inf")) else [newest] * 3
        state.setdefault("watermark_rank", 3)
        saved_rank = state["watermark_rank"]
        if type(state["_newest_predictions"]) is list:
            state["watermark_rank"] = RANK  # saved with the rank among all times: the windowed one from now
        for name in ("_newest_predictions", "_newest_labels"):
            state[name] = _clock(state[name], state["watermark_rank"], saved_rank)
        if "_settled_predictions" in state:
            for name in _FILTERS:
                state[name] = _filter(state[name])
            state["_old_filters"] = None
        else:
            state["_old_filters"] = _old_filters(state)
        for which in ("predictions", "labels"):
            buffer = state[f"_{which}"]
            if buffer and isinstance(next(iter(buffer)), tuple):  # saved flat, keyed (model, id)
                nested: dict = {}
                for (model, id), value in buffer.items():
                    nested.setdefault(model, {})[id] = value
                state[f"_{which}"] = nested
        if "_newest_by_model" not in state:
            # Saved before the watermarks were per model: each model with events waiting
            # starts from the partition's (what they were measured against until then).
            state["_newest_by_model"] = {
                (which, model): state[f"_newest_{which}"]
                for model in {*state["_predictions"], *state["_labels"]} for which in ("predictions", "labels")}
        state["_newest_by_model"] = {key: _clock(times, state["watermark_rank"], saved_rank)
                                     for key, times in state["_newest_by_model"].items()}
        state["_sizes"] = _count_waiting(state["_predictions"], state["_labels"])
        self.__dict__.update(state)
        self._log = None
        if self._old_filters is not None:
            self._merge_old_filters()

    def _merge_old_filters(self) -> None:
        """The filters of a checkpoint saved before they were per model and per stream,
        merged into this join's two: kept whole (consulted for every model, aged by the
        partition's watermarks) until they age out. Joined ids go to both."""
        seen, expired, orphaned = self._old_filters
        rate = seen.rate
        self._settled_predictions = SeenIds(self.ttl, self.max_pending + 1, rate)
        self._settled_labels = SeenIds(self.ttl, self.max_pending + 1, rate)
        for old in (seen, expired):
            self._settled_predictions.adopt(old)
        for old in (seen, orphaned):
            self._settled_labels.adopt(old)

    def snapshot(self) -> dict:
        """The whole state, as a picklable dict of copies (the filter's generations as
        bytes), for :meth:`restore`; :meth:`changes` then records what changes after it."""
        state = self.__getstate__()
        for name in _BUFFERS:
            state[name] = {model: dict(ids) for model, ids in state[name].items()}
        for name in ("_newest_predictions", "_newest_labels", "counts"):
            state[name] = copy.copy(state[name])
        state["_newest_by_model"] = {key: copy.copy(clock) for key, clock in self._newest_by_model.items()}
        state.pop("_sizes", None)
        self._track()
        return state

    def changes(self) -> dict:
        """What changed since the last :meth:`snapshot` or :meth:`changes` (or, before
        either, since construction or unpickling: then the whole state), as a picklable
        dict for :meth:`restore`:

        - ``predictions``, ``labels``: {(model, id): (ts, payload or label, mark), a
          ``_Queue`` of them when several wait, or None if it left the buffer}, in the order
          of each key's last change (replayed in order, the buffers come back in the same
          order, which expiry relies on);
        - ``counts``: {(model, outcome): count} for the counts that moved;
        - ``clocks``: the watermarks that saw events, (("predictions" | "labels", model, or
          None for the partition's) -> (value, the times seen since, at most a window:
          :meth:`~daemon.stream.watermark.Watermark.last`);
        - ``settled_predictions``, ``settled_labels``: the filters' records (see
          :meth:`SeenIds.changes`: the hashes of ids settled, 16 bytes each, and
          generations made or dropped);
        - or ``{"snapshot": <snapshot>}`` when there is no record to give (first call) or
          when the record would have been larger than the state itself.

        A key added and removed in between appears once. The size is proportional to the
        events since the last call (pickled, tens of bytes an event besides its payload),
        never to the number waiting."""
        log = self._log
        if log is None or log.overflowed:
            return {"snapshot": self.snapshot()}
        change = {"predictions": log.predictions, "labels": log.labels,
                  "counts": {key: self.counts[key] for key in log.counts},
                  "clocks": {key: self._clock(*key).last(n) for key, n in log.clocks.items()},
                  **{name[1:]: getattr(self, name).changes() for name in _FILTERS}}
        self._track()
        return change

    @classmethod
    def restore(cls, snapshot: dict, changes: list) -> "JoinChangelog":
        """The join as it was when the last of ``changes`` was taken: ``snapshot`` from
        :meth:`snapshot` and ``changes`` the :meth:`changes` records taken after it, in
        order (a ``{"snapshot": ...}`` record from :meth:`changes` serves as ``snapshot``
        too). The result equals the original join (and its next :meth:`changes` gives
        what changed after the restore)."""
        join = cls.__new__(cls)
        join._load(snapshot.get("snapshot", snapshot))
        for change in changes:
            if "snapshot" in change:
                join._load(change["snapshot"])
                continue
            for which in ("predictions", "labels"):
                buffer = getattr(join, f"_{which}")
                for (model, id), value in change[which].items():
                    ids = buffer.setdefault(model, {})
                    ids.pop(id, None)
                    if value is not _GONE:
                        ids[id] = value
            for key, n in change["counts"].items():
                join.counts[key] = n
            if "newest" in change:  # a record saved before the watermarks were windowed: whole lists
                join._newest_predictions, join._newest_labels = (_clock(x, join.watermark_rank) for x in change["newest"])
                for key, times in change.get("newest_models", {}).items():
                    join._newest_by_model[key] = _clock(times, join.watermark_rank)
            for (which, model), (value, times) in change.get("clocks", {}).items():
                join._clock(which, model).advance(value, times)
            for name in _FILTERS:
                if name[1:] in change:
                    getattr(join, name).apply(change[name[1:]])
            old = [(f, name[1:]) for f, name in zip(join._old_filters or (), _OLD_FILTERS) if name[1:] in change]
            if old:  # a record saved before the filters were per model: to the old ones, merged anew
                for f, key in old:
                    f.apply(change[key])
                join._merge_old_filters()
        join._sizes = _count_waiting(join._predictions, join._labels)
        join._old_filters = None
        join._track()
        return join

    def _track(self) -> None:
        self._log = _Log()
        for name in _FILTERS:
            getattr(self, name).track()

    def _changed(self, which: str, key, value) -> None:
        log = self._log
        if log is None or log.overflowed:
            return
        record = getattr(log, which)
        record.pop(key, None)
        record[key] = value
        log.entries += 1
        # Never let a record nobody collects grow past the state it describes: the next
        # changes() then gives the state instead.
        if log.entries > 4096 and log.entries > 2 * (self.pending + sum(getattr(self, n).count for n in _FILTERS)):
            log.overflowed = True
            log.predictions, log.labels, log.counts, log.clocks = {}, {}, set(), Counter()
            for name in _FILTERS:
                getattr(self, name).untrack()


def _old_filters(state: dict) -> tuple:
    """The joined ids, expired predictions and orphaned labels of a checkpoint saved before
    the filters were per model and per stream (joined ids in a dict, before the Bloom
    filters; expired and orphaned ones not kept, before they were remembered)."""
    ttl, limit = state["ttl"], state["max_pending"] + 1
    joined = state.pop("_joined", None)
    seen = state.pop("_seen", None)
    if seen is None:
        seen = SeenIds(ttl, limit, DUPLICATE_FALSE_POSITIVE_RATE)
        for (model, id), ts in (joined or {}).items():
            seen.add(model, id, ts)
    else:
        seen = _filter(seen)
    kept = [state.pop(name, None) for name in _OLD_FILTERS[1:]]
    return (seen, *(SeenIds(ttl, limit, seen.rate) if k is None else _filter(k) for k in kept))


def _clock(saved, rank: int, saved_rank: int = 3) -> Watermark:
    """A model stream's :class:`Watermark` from its saved form: itself (copied), or the
    newest times (at most ``saved_rank``, ascending) that checkpoints kept before the
    watermark was windowed, whose value it keeps (it never goes back)."""
    if isinstance(saved, Watermark):
        return copy.copy(saved)
    return Watermark(rank, times=saved, value=saved[0] if len(saved) >= saved_rank else float("-inf"))


def _filter(state) -> SeenIds:
    """A :class:`SeenIds` from its pickled state (or itself)."""
    if isinstance(state, SeenIds):
        return state
    seen = SeenIds.__new__(SeenIds)
    seen.__setstate__(state)
    return seen


class _Log:
    """What changed since the last snapshot() or changes(), for the next changes()."""

    def __init__(self):
        self.predictions: dict = {}  # key -> value or _GONE, in the order of last change
        self.labels: dict = {}
        self.counts: set = set()
        self.clocks: Counter = Counter()  # ("predictions" | "labels", model or None) -> events seen
        self.entries = 0
        self.overflowed = False
