"""Joining late labels to their predictions by (model, id), in event time.

Predictions wait for their label; a label that comes first waits for its prediction. What
happens to each is counted per model: ``joined``, ``prediction_expired``,
``label_orphaned``, ``duplicate_label``, ``duplicate_prediction``.

Waiting is measured in event time, never wall-clock time, so that replaying the same
events after a restart makes the same decisions: a prediction expires once the *label*
stream has moved ``ttl`` past it (a label for it can no longer be on its way, unless more
than ``ttl`` late); a label is orphaned once the *prediction* stream has moved ``grace``
past it (its prediction, always older, would have come by then), or at once when its
prediction came and was a dead letter (:meth:`LabelJoin.refuse_prediction`). If the label stream
stops entirely, predictions do not expire by time; ``max_pending`` bounds the buffer and
the oldest expire first.

Each stream's *watermark* is robust to outliers: it is the ``watermark_rank``-th newest
event time seen (3 by default; minus infinity until that many have come), not the newest.
One event stamped far ahead (a wrong clock, within the skew the partition allows, see
``join.max_future_skew_seconds``) therefore does not move the clock for the others: with
the newest, it expired every waiting prediction at once. It takes ``watermark_rank`` events at or past a time to get
there. The watermark never goes back, and, like everything here, depends on the events
alone (not on their batching or arrival order within the rank).

Duplicates are spotted by remembering which (model, id) pairs joined, from ``ttl`` past
their prediction's time up to a quarter of ``ttl`` more, in an ageing Bloom filter
(:mod:`daemon.stream.seen`): 8 to 10 bytes per joined id where a dict entry took 180 to 230.
The price: with probability at most ``false_positive_rate`` (1e-9 by default,
``join.duplicate_false_positive_rate``) an event that the filter is asked about is taken
for a duplicate although it is new: counted as one and not fed. What must be exact stays
exact: the waiting predictions and labels are dicts, consulted before the filter, so a
label whose prediction is waiting always joins, and so does a prediction whose label is.

Checkpoints can be incremental: :meth:`LabelJoin.snapshot` gives the whole state,
:meth:`LabelJoin.changes` what changed since (in size proportional to the events since,
not to what is waiting), and :meth:`LabelJoin.restore` rebuilds the join from the two.

>>> join = LabelJoin(ttl=3600, grace=60, max_pending=100)
>>> join.add_prediction("fraud", "p-1", 1000.0, (1, 0.9, "7"))
>>> join.add_label("fraud", "p-1", 1900.0, 0)
('fraud', (1, 0.9, '7'), 0, 900.0)
>>> join.add_label("fraud", "p-1", 1950.0, 0) is None, join.counts[("fraud", "duplicate_label")]
(True, 1)
"""

from __future__ import annotations

import bisect
from collections import Counter

from daemon.stream.seen import SeenIds

OUTCOMES = ("joined", "prediction_expired", "label_orphaned", "duplicate_label", "duplicate_prediction")

#: Default chance that a new prediction or label is taken for a duplicate (per lookup).
DUPLICATE_FALSE_POSITIVE_RATE = 1e-9

# A tombstone in a change record: the key left the buffer (buffer values are never None).
_GONE = None


class _Refused:
    """The payload of a prediction that was a dead letter (:meth:`LabelJoin.refuse_prediction`):
    one object, the same after unpickling (pickled by name)."""

    def __reduce__(self):
        return "REFUSED"

    def __repr__(self) -> str:
        return "REFUSED"


#: See :class:`_Refused`.
REFUSED = _Refused()


class LabelJoin:
    """One partition's buffer of predictions and labels waiting for each other.

    ``ttl`` and ``grace`` are seconds of event time, ``max_pending`` bounds each buffer
    and the joined ids remembered, ``watermark_rank`` is the rank of the event time that
    is a stream's watermark, ``false_positive_rate`` the chance, per lookup, that the
    filter of joined ids takes a new id for a duplicate (0 < p < 0.01; ValueError else).
    """

    def __init__(self, ttl: float, grace: float, max_pending: int, watermark_rank: int = 3,
                 false_positive_rate: float = DUPLICATE_FALSE_POSITIVE_RATE):
        self.ttl = ttl
        self.grace = grace
        self.max_pending = max_pending
        self.watermark_rank = watermark_rank
        self._predictions: dict[tuple, tuple] = {}  # (model, id) -> (ts, payload)
        self._labels: dict[tuple, tuple] = {}  # (model, id) -> (ts, label)
        # Joined ids, to spot duplicates; one more than max_pending may be held at a lookup
        # (add_prediction looks up before it expires).
        self._seen = SeenIds(ttl, max_pending + 1, false_positive_rate)
        # The newest event times of each stream, ascending, at most watermark_rank of them.
        self._newest_predictions: list[float] = []
        self._newest_labels: list[float] = []
        self.counts: Counter = Counter()
        self._log: _Log | None = None  # what changed since snapshot()/changes(), once asked

    # -- state: whole (pickle, snapshot) and incremental (changes) ---------------------------
    def __getstate__(self) -> dict:
        state = {k: v for k, v in self.__dict__.items() if k != "_log"}
        state["_seen"] = self._seen.__getstate__()
        return state

    def __setstate__(self, state: dict) -> None:
        state = dict(state)
        # Checkpoints written before the robust watermark kept the newest time only.
        for stream in ("prediction", "label"):
            newest = state.pop(f"{stream}_watermark", None)
            if f"_newest_{stream}s" not in state:
                state[f"_newest_{stream}s"] = [] if newest in (None, float("-inf")) else [newest] * 3
        state.setdefault("watermark_rank", 3)
        # Checkpoints written before the Bloom filter kept the joined ids in a dict.
        joined = state.pop("_joined", None)
        seen = state.get("_seen")
        if seen is None:
            seen = SeenIds(state["ttl"], state["max_pending"] + 1, DUPLICATE_FALSE_POSITIVE_RATE)
            for (model, id), ts in (joined or {}).items():
                seen.add(model, id, ts)
        elif not isinstance(seen, SeenIds):
            seen = SeenIds.__new__(SeenIds)
            seen.__setstate__(state["_seen"])
        state["_seen"] = seen
        self.__dict__.update(state)
        self._log = None

    def snapshot(self) -> dict:
        """The whole state, as a picklable dict of copies (the filter's generations as
        bytes), for :meth:`restore`; :meth:`changes` then records what changes after it."""
        state = self.__getstate__()
        for name in ("_predictions", "_labels", "_newest_predictions", "_newest_labels", "counts"):
            state[name] = type(state[name])(state[name])
        self._track()
        return state

    def changes(self) -> dict:
        """What changed since the last :meth:`snapshot` or :meth:`changes` (or, before
        either, since construction or unpickling: then the whole state), as a picklable
        dict for :meth:`restore`:

        - ``predictions``, ``labels``: {(model, id): (ts, payload or label), or None if it
          left the buffer}, in the order of each key's last change (replayed in order, the
          buffers come back in the same order, which expiry relies on);
        - ``counts``: {(model, outcome): count} for the counts that moved;
        - ``newest``: the two watermark lists, whole (at most ``watermark_rank`` times each);
        - ``seen``: the filter's record (see :meth:`SeenIds.changes`: the hashes of ids
          joined, 16 bytes each, and generations made or dropped);
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
                  "newest": (list(self._newest_predictions), list(self._newest_labels)),
                  "seen": self._seen.changes()}
        self._track()
        return change

    @classmethod
    def restore(cls, snapshot: dict, changes: list) -> "LabelJoin":
        """The join as it was when the last of ``changes`` was taken: ``snapshot`` from
        :meth:`snapshot` and ``changes`` the :meth:`changes` records taken after it, in
        order (a ``{"snapshot": ...}`` record from :meth:`changes` serves as ``snapshot``
        too). The result equals the original join (and its next :meth:`changes` gives
        what changed after the restore)."""
        join = cls.__new__(cls)
        join.__setstate__(snapshot.get("snapshot", snapshot))
        for change in changes:
            if "snapshot" in change:
                join.__setstate__(change["snapshot"])
                continue
            for buffer, record in ((join._predictions, change["predictions"]), (join._labels, change["labels"])):
                for key, value in record.items():
                    buffer.pop(key, None)
                    if value is not _GONE:
                        buffer[key] = value
            for key, n in change["counts"].items():
                join.counts[key] = n
            join._newest_predictions, join._newest_labels = (list(x) for x in change["newest"])
            join._seen.apply(change["seen"])
        join._track()
        return join

    def _track(self) -> None:
        self._log = _Log()
        self._seen.track()

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
        if log.entries > 4096 and log.entries > 2 * (len(self._predictions) + len(self._labels) + self._seen.count):
            log.overflowed = True
            log.predictions, log.labels, log.counts = {}, {}, set()
            self._seen.untrack()

    def _count(self, model: str, outcome: str) -> None:
        self.counts[(model, outcome)] += 1
        if self._log is not None and not self._log.overflowed:
            self._log.counts.add((model, outcome))

    # -- the join -------------------------------------------------------------------------------
    @property
    def prediction_watermark(self) -> float:
        """Event time the prediction stream has reached, in epoch seconds."""
        return self._watermark(self._newest_predictions)

    @property
    def label_watermark(self) -> float:
        """Event time the label stream has reached, in epoch seconds."""
        return self._watermark(self._newest_labels)

    def _watermark(self, newest: list) -> float:
        return newest[0] if len(newest) >= self.watermark_rank else float("-inf")

    def _saw(self, newest: list, ts: float) -> None:
        if len(newest) < self.watermark_rank:
            bisect.insort(newest, ts)
        elif ts > newest[0]:
            del newest[0]
            bisect.insort(newest, ts)

    @property
    def pending(self) -> int:
        return len(self._predictions) + len(self._labels)

    def waiting(self) -> Counter:
        """(model, "prediction" or "label") -> events waiting for their other half now."""
        counts = Counter((model, "prediction") for (model, _), (_, payload) in self._predictions.items()
                         if payload is not REFUSED)
        counts.update((model, "label") for model, _ in self._labels)
        return counts

    def waiting_label(self, model: str, id: str):
        """The label of (model, id) waiting for its prediction (the value
        :meth:`add_label` was given), or None."""
        waiting = self._labels.get((model, id))
        return None if waiting is None else waiting[1]

    def refuse_prediction(self, model: str, id: str, ts: float | None):
        """A prediction of (model, id) was a dead letter: its label will never join. A label
        waiting for it is orphaned now (counted ``label_orphaned``) and returned (the value
        :meth:`add_label` was given); else None, and a label that comes later is orphaned
        at once instead of waiting ``grace`` (the refusal waits as a prediction would, up
        to ``ttl``; ``ts`` None: the prediction watermark). A later good prediction of the
        id takes the refusal's place. The prediction watermark does not move: a dead
        letter's time is not the stream's."""
        key = (model, id)
        waiting = self._labels.pop(key, None)
        if waiting is not None:
            self._changed("labels", key, _GONE)
            self._seen.add(model, id, waiting[0], self.label_watermark)
            self._count(model, "label_orphaned")
            return waiting[1]
        if key in self._predictions or self._seen.has(model, id):
            return None  # a prediction of the id came already: its label joins it
        ts = self.prediction_watermark if ts is None else ts
        self._predictions[key] = (ts, REFUSED)
        self._changed("predictions", key, (ts, REFUSED))
        if len(self._predictions) > self.max_pending:
            self._expire_oldest()
        return None

    def add_prediction(self, model: str, id: str, ts: float, payload) -> tuple | None | bool:
        """Buffer a prediction; returns a join if its label was waiting, False if it is a
        duplicate (already pending or joined), else None."""
        key = (model, id)
        waiting = self._predictions.get(key)
        if waiting is not None and waiting[1] is REFUSED:
            del self._predictions[key]  # a good prediction of a refused id: the refusal is void
            waiting = None
        # The filter only for what the exact buffers cannot answer: a waiting label means
        # this prediction never joined.
        if waiting is not None or (key not in self._labels and self._seen.has(model, id)):
            self._count(model, "duplicate_prediction")
            return False
        self._saw(self._newest_predictions, ts)
        self.expire()
        waiting = self._labels.pop(key, None)
        if waiting is not None:
            self._changed("labels", key, _GONE)
            return self._join(key, ts, payload, *waiting)
        self._predictions[key] = (ts, payload)
        self._changed("predictions", key, (ts, payload))
        if len(self._predictions) > self.max_pending:
            self._expire_oldest()
        return None

    def add_label(self, model: str, id: str, ts: float, label) -> tuple | None:
        """Join a label to its prediction, or keep it waiting; returns the join, if any, as
        (model, prediction payload, label, delay seconds)."""
        key = (model, id)
        self._saw(self._newest_labels, ts)
        self.expire()
        if key in self._labels:
            self._count(model, "duplicate_label")
            return None
        waiting = self._predictions.pop(key, None)
        if waiting is not None:
            self._changed("predictions", key, _GONE)
            if waiting[1] is REFUSED:  # its prediction was a dead letter
                self._seen.add(model, id, waiting[0], self.label_watermark)
                self._count(model, "label_orphaned")
                return None
            return self._join(key, waiting[0], waiting[1], ts, label)
        if self._seen.has(model, id):  # after the buffers: a waiting prediction always joins
            self._count(model, "duplicate_label")
            return None
        self._labels[key] = (ts, label)
        self._changed("labels", key, (ts, label))
        if len(self._labels) > self.max_pending:
            oldest = next(iter(self._labels))
            del self._labels[oldest]
            self._changed("labels", oldest, _GONE)
            self._count(oldest[0], "label_orphaned")
        return None

    def _join(self, key, prediction_ts, payload, label_ts, label) -> tuple:
        self._seen.add(key[0], key[1], prediction_ts, self.label_watermark)
        if self._log is not None:
            self._log.entries += 1  # the id's hash, in the filter's record
        self._count(key[0], "joined")
        return key[0], payload, label, max(0.0, label_ts - prediction_ts)

    def _expire_oldest(self) -> None:
        key = next(iter(self._predictions))
        refused = self._predictions.pop(key)[1] is REFUSED
        self._changed("predictions", key, _GONE)
        if not refused:  # a refusal was counted as a dead letter
            self._count(key[0], "prediction_expired")

    def expire(self) -> None:
        """Count and drop what can no longer be joined. Every event calls it when it has
        moved its stream's watermark, before it is matched: what joins is then a function
        of the events' order alone, not of where the consumer's batches happen to end (run
        only once per batch, a label 100 s late joined its prediction despite a 30 s TTL
        when both came in one batch, and not otherwise)."""
        # Buffers are in arrival order, which is close to event-time order: stop at the
        # first entry still in time rather than scanning everything every batch.
        for buffer, which, watermark, wait, outcome in (
            (self._predictions, "predictions", self.label_watermark, self.ttl, "prediction_expired"),
            (self._labels, "labels", self.prediction_watermark, self.grace, "label_orphaned"),
        ):
            while buffer:
                key, (ts, value) = next(iter(buffer.items()))
                if watermark - ts <= wait:
                    break
                del buffer[key]
                self._changed(which, key, _GONE)
                if value is not REFUSED:  # a refusal was counted as a dead letter
                    self._count(key[0], outcome)
        # Joined ids are remembered as long as a duplicate label could still arrive.
        self._seen.expire(self.label_watermark)


class _Log:
    """What changed since the last snapshot() or changes(), for the next changes()."""

    def __init__(self):
        self.predictions: dict = {}  # key -> value or _GONE, in the order of last change
        self.labels: dict = {}
        self.counts: set = set()
        self.entries = 0
        self.overflowed = False
