"""Joining late labels to their predictions by (model, id), in event time.

Predictions wait for their label; a label that comes first waits for its prediction. What
happens to each is counted per model: ``joined``, ``prediction_expired``,
``label_orphaned``, ``duplicate_label``, ``duplicate_prediction``.

Waiting is measured in event time, never wall-clock time, so that replaying the same
events after a restart makes the same decisions: a prediction expires once the *label*
stream has moved ``ttl`` past it (a label for it can no longer be on its way, unless more
than ``ttl`` late); a label is orphaned once the *prediction* stream has moved ``grace``
past it (its prediction, always older, would have come by then), or at once when its
prediction came and was a dead letter (:meth:`LabelJoin.refuse_prediction`). A label more
than ``ttl`` after its prediction never joins it, whichever comes first and however many
labels moved the watermark: the prediction counts as expired, the label waits on.

The two topics are read at their own pace (one may run ahead of the other by a poll, or by
hours during a catch-up), so a waiting event keeps its own stream's watermark from when it
came (its *mark*), and a label meeting its prediction is judged from the two events and
their marks alone: it joins unless it came more than ``ttl`` after the prediction, or its
stream was (the prediction had expired), or the prediction stream was ``grace`` past the
label when the prediction came (the label had been orphaned). The same pair is judged the
same whichever was read first, so what joins depends on each topic's order, not on their
interleaving. Copies are spotted likewise: a prediction whose fate is known (joined or
expired) is remembered until its model's prediction stream is ``ttl`` past it, a label
(joined or orphaned) until its model's label stream is, so a copy that comes within ``ttl``
of its original on its own topic is a duplicate, whatever was read of the other topic or
of other models meanwhile; an event that comes more than ``ttl`` behind its model's own
stream (a copy or not) is settled at once, never a duplicate: a prediction counts as
expired (it is still fed to the tests as any prediction), a label as orphaned, whatever
was read of the other topic. A copy whose original still waits for its other half (that
topic read behind) is judged on the same terms, against the id's last event waiting on its
topic: one that comes when its stream is more than ``ttl`` past that event is new (the id
reused, as by a daily counter), as it would be had the waiting one been settled and
forgotten. It waits behind it, and an event meets the waiting ones of its id oldest first
(a label expires those it is more than ``ttl`` after), so each label joins the prediction
it would have met had the topics been read in time. (Reused between ``ttl`` and a quarter
more after a settled event, an id may still be taken for its copy, see the filters below:
there, what is a duplicate can depend on the interleaving.)
If the label stream stops entirely, predictions do not expire by time; ``max_pending``
bounds each buffer of the partition: beyond it the oldest of the model with the most
waiting expire first.

Each stream's *watermark* is kept per model (models of one partition may be stamped by
different clocks, or one replayed from hours ago: another model's events must not orphan
its labels) and is robust to wrong clocks (:mod:`daemon.stream.watermark`): the
``watermark_rank``-th newest of the model's last ``2 * watermark_rank - 1`` event times
(64th of 127 by default), never going back. Events stamped ahead (a wrong clock, within
the skew the partition allows, see ``join.max_future_skew_seconds``) therefore move it
only when they are half the stream: with the newest time, one such event expired every
waiting prediction at once, and with the 3rd newest of all, three made every label
stamped right look late until the time caught up with theirs. Like everything here, it
depends on the events alone (not on their batching or on the other stream).

The settled predictions and labels are remembered, from ``ttl`` past their time up to a
quarter of ``ttl`` more, in two ageing Bloom filters (:mod:`daemon.stream.seen`), aged by
each model's own watermarks: 8 to 10 bytes per id of a busy model where a dict entry took
180 to 230. The price: with probability at most ``false_positive_rate`` (1e-9 by default,
``join.duplicate_false_positive_rate``) an event that a filter is asked about is taken
for a duplicate although it is new: counted as one and not fed. What must be exact stays
exact: the waiting predictions and labels are dicts, consulted before the filters, and a
filter is not asked when the buffers answer (a label whose prediction is waiting and came
within its grace was never settled: it always joins; so does a prediction whose label is
waiting and within ``ttl`` of it).

Checkpoints can be incremental: :meth:`LabelJoin.snapshot` gives the whole state,
:meth:`LabelJoin.changes` what changed since (in size proportional to the events since,
not to what is waiting), and :meth:`LabelJoin.restore` rebuilds the join from the two
(:mod:`daemon.stream.join_changelog`).

>>> join = LabelJoin(ttl=3600, grace=60, max_pending=100)
>>> join.add_prediction("fraud", "p-1", 1000.0, (1, 0.9, "7"))
>>> join.add_label("fraud", "p-1", 1900.0, 0)
('fraud', (1, 0.9, '7'), 0, 900.0)
>>> join.add_label("fraud", "p-1", 1950.0, 0) is None, join.counts[("fraud", "duplicate_label")]
(True, 1)
>>> join.add_label("fraud", "p-2", 9000.0, 1)                     # its label first, 2 hours late
>>> join.add_prediction("fraud", "p-2", 1000.0, (0, 0.2, "7")), join.counts[("fraud", "prediction_expired")]
(None, 1)
"""

from __future__ import annotations

from collections import Counter

from daemon.stream.join_changelog import _GONE, JoinChangelog, _Log, _Queue
from daemon.stream.seen import DUPLICATE_FALSE_POSITIVE_RATE, SeenIds, id_hash
from daemon.stream.watermark import RANK, Watermark

OUTCOMES = ("joined", "prediction_expired", "label_orphaned", "duplicate_label", "duplicate_prediction")


class _Refused:
    """The payload of a prediction that was a dead letter (:meth:`LabelJoin.refuse_prediction`):
    one object, the same after unpickling (pickled by name, a global of this module)."""

    def __reduce__(self):
        return "REFUSED"

    def __repr__(self) -> str:
        return "REFUSED"


#: See :class:`_Refused`.
REFUSED = _Refused()
_NEVER = float("-inf")


def _mark(entry: tuple) -> float:
    """The watermark of its own stream when a buffered event came (entries saved before
    the marks have none: minus infinity, no bound)."""
    return entry[2] if len(entry) > 2 else _NEVER


def _entries(value) -> tuple:
    """The entries of a buffer value (one entry, or a :class:`_Queue`), oldest first."""
    return value if type(value) is _Queue else (value,)


def _first(value):
    """The oldest entry of a buffer value (one entry, a :class:`_Queue`, or None: None)."""
    return value[0] if type(value) is _Queue else value


class LabelJoin(JoinChangelog):
    """One partition's buffer of predictions and labels waiting for each other.

    ``ttl`` and ``grace`` are seconds of event time, ``max_pending`` bounds each buffer
    and the settled ids remembered of each stream, ``watermark_rank`` is the rank of the
    event time that is a stream's watermark, ``false_positive_rate`` the chance, per
    lookup, that a filter of settled ids takes a new id for a duplicate (0 < p < 0.01;
    ValueError else).
    """

    def __init__(self, ttl: float, grace: float, max_pending: int, watermark_rank: int = RANK,
                 false_positive_rate: float = DUPLICATE_FALSE_POSITIVE_RATE):
        self.ttl = ttl
        self.grace = grace
        self.max_pending = max_pending
        self.watermark_rank = watermark_rank
        # model -> {id: (ts, payload or label, mark), or a _Queue of them (see _put)}, each in
        # arrival order (expiry relies on it).
        self._predictions: dict[str, dict] = {}
        self._labels: dict[str, dict] = {}
        self._sizes = {"predictions": 0, "labels": 0, "queued": 0}  # entries waiting (queued: see _put)
        if not 0 < false_positive_rate < 0.01:
            raise ValueError(f"false_positive_rate must be above 0 and below 0.01, not {false_positive_rate!r}")
        # Settled ids, to spot copies, each stream's aged by that stream (a copy comes on
        # its own topic); a lookup consults one of them.
        self._settled_predictions = SeenIds(ttl, max_pending + 1, false_positive_rate)
        self._settled_labels = SeenIds(ttl, max_pending + 1, false_positive_rate)
        # Each stream's watermark: the partition's (filters saved before they were per model
        # age by it), and each model's.
        self._newest_predictions = Watermark(watermark_rank)
        self._newest_labels = Watermark(watermark_rank)
        self._newest_by_model: dict[tuple, Watermark] = {}  # ("predictions" | "labels", model) -> its clock
        self.counts: Counter = Counter()
        self._log: _Log | None = None  # what changed since snapshot()/changes(), once asked

    def _count(self, model: str, outcome: str) -> None:
        self.counts[(model, outcome)] += 1
        if self._log is not None and not self._log.overflowed:
            self._log.counts.add((model, outcome))

    # -- the join -------------------------------------------------------------------------------
    @property
    def prediction_watermark(self) -> float:
        """Event time the prediction stream has reached, in epoch seconds."""
        return self._newest_predictions.value

    @property
    def label_watermark(self) -> float:
        """Event time the label stream has reached, in epoch seconds."""
        return self._newest_labels.value

    def watermark_of(self, which: str, model: str) -> float:
        """Event time model ``model``'s ``which`` stream ("predictions" or "labels") has
        reached (:mod:`daemon.stream.watermark`; minus infinity before ``watermark_rank``
        events of it: never another model's)."""
        clock = self._newest_by_model.get((which, model))
        return _NEVER if clock is None else clock.value

    def _clock(self, which: str, model: str | None) -> Watermark:
        """The watermark of ``model``'s ``which`` stream (made if new), or the partition's (None)."""
        if model is None:
            return self._newest_predictions if which == "predictions" else self._newest_labels
        clock = self._newest_by_model.get((which, model))
        if clock is None:
            clock = self._newest_by_model[(which, model)] = Watermark(self.watermark_rank)
        return clock

    def _expire_model(self, model: str, whole: bool = False) -> None:
        """Drop and count what of ``model`` can no longer be joined, against its own clocks
        (``whole``: in the whole buffers, see :meth:`settle`)."""
        if self._predictions.get(model):
            self._expire(model, "predictions", self.watermark_of("labels", model), self.ttl, whole)
        if self._labels.get(model):
            self._expire(model, "labels", self.watermark_of("predictions", model), self.grace, whole)

    def _expire(self, model: str, which: str, watermark: float, wait: float, whole: bool = False) -> None:
        """Drop (and count) the ``which`` entries of ``model`` older than ``wait`` seconds
        before ``watermark`` (the other stream's)."""
        ids = self._buffer(which).get(model)
        if not ids or watermark == _NEVER:
            return
        if whole:
            for id in list(ids):
                while (value := ids.get(id)) is not None and watermark - _first(value)[0] > wait:
                    self._give_up(which, model, id)
            return
        # A model's buffer is in arrival order, which is close to event-time order: stop
        # at the first entry still in time rather than scanning all of it.
        while ids:
            id, value = next(iter(ids.items()))
            if watermark - (value[0] if type(value) is _Queue else value)[0] <= wait:  # (_first, inlined: every event)
                break
            self._give_up(which, model, id)

    def _give_up(self, which: str, model: str, id) -> None:
        """Drop a waiting event (the id's oldest) whose other half can no longer come: a
        label orphaned, a prediction expired (a refusal was counted as a dead letter)."""
        ts, value = self._take(which, model, id)[:2]
        if which == "labels":
            self._orphaned_now(model, id, ts)
        elif value is not REFUSED:
            self._expired_now(model, id, ts)

    def _orphaned_now(self, model: str, id, ts: float) -> None:
        """Count a label as orphaned, and remember it (see :meth:`_settled`)."""
        self._count(model, "label_orphaned")
        self._settled("labels", model, id, ts)

    def _expired_now(self, model: str, id, ts: float) -> None:
        """Count a prediction as expired, and remember it (see :meth:`_settled`)."""
        self._count(model, "prediction_expired")
        self._settled("predictions", model, id, ts)

    def _settled(self, which: str, model: str, id, ts: float, hashed: int | None = None) -> None:
        """Remember that the ``which`` event of (model, id), stamped ``ts``, was settled: a
        copy of it that comes while the model's ``which`` stream is within ttl of it is a
        duplicate, whatever was read of the other stream or of other models meanwhile."""
        settled = self._settled_predictions if which == "predictions" else self._settled_labels
        settled.add(model, id, ts, self.watermark_of(which, model), hashed)

    def _saw_event(self, which: str, model: str, ts: float) -> None:
        """An event of ``model`` at ``ts`` on stream ``which``: the watermarks move, and
        what can no longer be joined of the model expires."""
        partition = self._clock(which, None)
        partition.see(ts)
        clock = self._clock(which, model)
        moved = clock.see(ts)
        if self._log is not None:
            self._log.clocks[(which, None)] += 1
            self._log.clocks[(which, model)] += 1
        if moved:
            self._age_filter(which, model, clock.value, partition)
        self._expire_model(model)

    def _age_filter(self, which: str, model: str, watermark: float, partition: Watermark) -> None:
        """Forget the settled ``which`` events of ``model`` that the model's ``which`` stream
        (now at ``watermark``) is ttl past: a copy of one comes on its own topic, so only
        that stream's clock (and only the model's) says whether one still may. Generations
        saved before they had a model age by the partition's (its newest times)."""
        settled = self._settled_predictions if which == "predictions" else self._settled_labels
        settled.expire(watermark, model)
        if settled.unowned:
            settled.expire(partition.value, None)

    @property
    def pending(self) -> int:
        return self._sizes["predictions"] + self._sizes["labels"]

    def pending_of(self, model: str) -> int:
        """Predictions and labels of ``model`` waiting now (refusals included)."""
        buffers = [self._predictions.get(model, {}), self._labels.get(model, {})]
        n = sum(map(len, buffers))
        if self._sizes["queued"]:  # several events of an id wait (rare): count those behind the first
            n += sum(len(value) - 1 for ids in buffers for value in ids.values() if type(value) is _Queue)
        return n

    def waiting(self) -> Counter:
        """(model, "prediction" or "label") -> events waiting for their other half now."""
        counts = Counter()
        for model, ids in self._predictions.items():
            counts[(model, "prediction")] = sum(entry[1] is not REFUSED for v in ids.values() for entry in _entries(v))
        for model, ids in self._labels.items():
            counts[(model, "label")] = sum(len(_entries(v)) for v in ids.values())
        return +counts

    def waiting_labels(self, model: str, id: str) -> tuple:
        """The labels of (model, id) waiting for their prediction (the values
        :meth:`add_label` was given), oldest first: one, or several of an id reused."""
        waiting = self._labels.get(model, {}).get(id)
        return () if waiting is None else tuple(entry[1] for entry in _entries(waiting))

    # -- the buffers: every change through these, so that sizes and the record follow ---------
    def _buffer(self, which: str) -> dict:
        return self._predictions if which == "predictions" else self._labels

    def _get(self, which: str, model: str, id):
        """What of (model, id) waits on stream ``which``: an entry, a :class:`_Queue` of
        them (see :meth:`_put`), or None."""
        ids = self._buffer(which).get(model)
        return None if ids is None else ids.get(id)

    def _oldest(self, which: str, model: str, id):
        """The oldest entry of (model, id) waiting on stream ``which``, or None."""
        return _first(self._get(which, model, id))

    def _put(self, which: str, model: str, id, entry) -> None:
        """Make ``entry`` wait, behind any of the id's already waiting (an id reused more
        than the ttl after its last event: each waits for its own other half)."""
        buffer = self._buffer(which)
        ids = buffer.get(model)
        if ids is None:
            ids = buffer[model] = {}  # kept when empty: a model's buffer often is, between joins
        # Popped and put back: a key that changes goes to the end, as restore() replays it.
        value = ids.pop(id, None)
        if value is not None:
            self._sizes["queued"] += 1
        ids[id] = entry if value is None else _Queue((*_entries(value), entry))
        self._sizes[which] += 1
        if self._log is not None:
            self._changed(which, (model, id), ids[id])

    def _take(self, which: str, model: str, id):
        """Remove and return the oldest entry (ts, value, mark) of (model, id), or None."""
        ids = self._buffer(which).get(model)
        if not ids:
            return None
        value = ids.pop(id, None)
        if value is None:
            return None
        self._sizes[which] -= 1
        rest = _GONE
        if type(value) is _Queue:  # the later ones wait on, put back at the end (as in _put)
            value, rest = value[0], (value[1] if len(value) == 2 else _Queue(value[1:]))
            ids[id] = rest
            self._sizes["queued"] -= 1
        if self._log is not None:
            self._changed(which, (model, id), rest)
        return value

    def _bound(self, which: str) -> None:
        """Beyond max_pending: the oldest of the model with the most waiting goes (counted
        as expired or orphaned; a refusal was counted as a dead letter)."""
        while self._sizes[which] > self.max_pending:
            buffer = self._buffer(which)
            model = max(buffer, key=lambda m: (len(buffer[m]), m))  # (ties by name: not by dict order)
            self._give_up(which, model, next(iter(buffer[model])))

    def refuse_prediction(self, model: str, id: str, ts: float | None):
        """A prediction of (model, id) was a dead letter: its label will never join. A label
        waiting for it is orphaned now (counted ``label_orphaned``) and returned (the value
        :meth:`add_label` was given); else None, and a label that comes later is orphaned
        at once instead of waiting ``grace`` (the refusal waits as a prediction would, up
        to ``ttl``; ``ts`` None: the prediction watermark). A later good prediction of the
        id takes the refusal's place. The prediction watermark does not move: a dead
        letter's time is not the stream's."""
        waiting = self._take("labels", model, id)
        if waiting is not None:
            self._orphaned_now(model, id, waiting[0])
            return waiting[1]
        if self._get("predictions", model, id) is not None or self._settled_predictions.has(model, id):
            return None  # a prediction of the id came already: its label joins it, or it joined or expired
        watermark = self.watermark_of("predictions", model)
        self._put("predictions", model, id, (watermark if ts is None else ts, REFUSED, watermark))
        self._bound("predictions")
        return None

    def add_prediction(self, model: str, id: str, ts: float, payload) -> tuple | None | bool:
        """Buffer a prediction; returns a join if its label was waiting, False if it is a
        duplicate (a copy of one pending, joined or expired), else None."""
        watermark = self.watermark_of("predictions", model)
        if watermark - ts > self.ttl:
            return self._stale("predictions", model, ts)
        waiting = self._get("predictions", model, id)
        label = self._get("labels", model, id)  # (as it waits before this prediction moves the clock)
        # Every prediction moves its model's clock, a copy too, as every label does: the
        # clock ages the ids remembered. When a copy did not, ids that come back (a counter
        # that wraps) were taken for copies of remembered ones, which stopped the clock, so
        # every later one was taken for a copy too, for good (how soon depended on when
        # the labels read after a poll's predictions had settled the first ones).
        self._saw_event("predictions", model, ts)
        if waiting is not None:
            newest = _entries(waiting)[-1]
            if newest[1] is REFUSED:
                self._take("predictions", model, id)  # a good prediction of a refused id: the refusal is void
                waiting = None
            elif watermark - newest[0] <= self.ttl:  # a copy: its stream within ttl of the id's last
                self._count(model, "duplicate_prediction")
                return False
            # Else the id was reused: the one waiting would have been settled and forgotten
            # by now had its label been read, so this is new, as it would then be; it waits
            # behind the earlier one for its own label.
        # The filter only for what the buffers cannot answer: a label waiting within ttl of
        # this prediction means no prediction of the id was settled (it would have met it).
        if waiting is None and (label is None or not self._within_ttl(_first(label), ts)) and \
                self._settled_predictions.has(model, id):
            self._count(model, "duplicate_prediction")
            return False
        mark = self.watermark_of("predictions", model)
        # Its label came first (the other topic read ahead): what would have happened had
        # the label come after it, from the two events and their streams' marks (looked up
        # now: seeing the event may have orphaned it). Labels of a reused id, oldest first:
        # one whose grace was over is orphaned, and the next would have met this prediction.
        label = self._oldest("labels", model, id)
        while label is not None:
            if mark - label[0] > self.grace:
                self._take("labels", model, id)  # its grace was over when this came: orphaned
                self._orphaned_now(model, id, label[0])
                label = self._oldest("labels", model, id)
            elif not self._within_ttl(label, ts):
                # Expired by the label's time; the label waits on, as it would.
                self._expired_now(model, id, ts)
                return None
            else:
                self._take("labels", model, id)
                return self._join((model, id), ts, payload, label[0], label[1])
        self._put("predictions", model, id, (ts, payload, mark))
        self._bound("predictions")
        return None

    def add_label(self, model: str, id: str, ts: float, label) -> tuple | None:
        """Join a label to its prediction, or keep it waiting; returns the join, if any, as
        (model, prediction payload, label, delay seconds)."""
        self._saw_event("labels", model, ts)
        mark = self.watermark_of("labels", model)
        if mark - ts > self.ttl:
            return self._stale("labels", model, ts)
        own = self._get("labels", model, id)
        if own is not None and mark - _entries(own)[-1][0] <= self.ttl:  # a copy: its stream within ttl of the last
            self._count(model, "duplicate_label")
            return None
        waiting = self._get("predictions", model, id)
        # The filter only for what the buffers cannot answer: a prediction waiting that came
        # within this label's grace means no label of the id was settled (orphaned before
        # it came, or joined to it). Of a reused id's, the one it meets: the oldest it is
        # not more than ttl after (see below).
        meets = waiting
        if type(waiting) is _Queue:
            meets = next((e for e in waiting if ts - e[0] <= self.ttl and mark - e[0] <= self.ttl), waiting[-1])
            waiting = waiting[0]
        if own is None and (meets is None or _mark(meets) - ts > self.grace) and self._settled_labels.has(model, id):
            self._count(model, "duplicate_label")
            return None
        while waiting is not None:
            if ts - waiting[0] > self.ttl or mark - waiting[0] > self.ttl:
                # More than ttl after its prediction, or the label stream is (the watermark
                # may not have moved: fewer than watermark_rank labels past it, or out of
                # order): expired, so that what joins never depends on the reading order.
                self._take("predictions", model, id)
                if waiting[1] is not REFUSED:  # a refusal was counted as a dead letter
                    self._expired_now(model, id, waiting[0])
                waiting = self._oldest("predictions", model, id)  # a reused id's next may be this label's
            elif _mark(waiting) - ts > self.grace:
                # The prediction stream had passed this label's grace when its prediction
                # came: orphaned, as it would have been had it come first.
                self._orphaned_now(model, id, ts)
                return None
            elif waiting[1] is REFUSED:  # its prediction was a dead letter
                self._take("predictions", model, id)
                self._orphaned_now(model, id, ts)
                return None
            else:
                self._take("predictions", model, id)
                return self._join((model, id), waiting[0], waiting[1], ts, label)
        self._put("labels", model, id, (ts, label, mark))
        self._bound("labels")
        return None

    def _stale(self, which: str, model: str, ts: float) -> None:
        """An event more than ttl behind its model's stream ``which`` when it came: a
        prediction counts as expired at once, a label as orphaned, never as a duplicate.
        Whether its original (if it is a copy) is still remembered could depend on what
        was read of the other topic meanwhile; this depends on its own topic alone."""
        if which == "predictions":
            self._saw_event(which, model, ts)  # (it moves no watermark: older than it)
            self._count(model, "prediction_expired")
        else:
            self._count(model, "label_orphaned")
        return None

    def _within_ttl(self, label: tuple | None, ts: float) -> bool:
        """Whether a waiting ``label`` (entry) came within ttl of a prediction stamped ``ts``,
        by its own time and by its stream's mark (else the prediction counts as expired)."""
        return label is not None and label[0] - ts <= self.ttl and _mark(label) - ts <= self.ttl

    def _join(self, key, prediction_ts, payload, label_ts, label) -> tuple:
        hashed = id_hash(*key)
        self._settled("predictions", key[0], key[1], prediction_ts, hashed)
        self._settled("labels", key[0], key[1], label_ts, hashed)
        if self._log is not None:
            self._log.entries += 2  # the id's hash, in each filter's record
        self._count(key[0], "joined")
        return key[0], payload, label, max(0.0, label_ts - prediction_ts)

    def expire(self, model: str | None = None) -> None:
        """Count and drop what can no longer be joined, of ``model`` (None: of every
        model). Every event calls it for its model when it has moved its stream's
        watermark, before it is matched: what joins is then a function of the events'
        order alone, not of where the consumer's batches happen to end (run only once per
        batch, a label 100 s late joined its prediction despite a 30 s TTL when both came
        in one batch, and not otherwise)."""
        for m in [model] if model is not None else sorted({*self._predictions, *self._labels}):
            self._expire_model(m)

    def settle(self) -> None:
        """Count and drop everything its model's watermarks have passed, in whole buffers.
        Expiry stops at the first entry still in time (a buffer is in arrival order), so
        what still waits depends on how the two topics were interleaved until later events
        move the clocks; after this, what waits is what may still join, the same whatever
        the interleaving. For the end of an input (a replay's files)."""
        for model in sorted({*self._predictions, *self._labels}):
            self._expire_model(model, whole=True)
