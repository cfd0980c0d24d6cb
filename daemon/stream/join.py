"""Joining late labels to their predictions by (model, id), in event time.

Predictions wait for their label; a label that comes first waits for its prediction. What
happens to each is counted per model: ``joined``, ``prediction_expired``,
``label_orphaned``, ``duplicate_label``, ``duplicate_prediction``.

Waiting is measured in event time, never wall-clock time, so that replaying the same
events after a restart makes the same decisions: a prediction expires once the *label*
stream has moved ``ttl`` past it (a label for it can no longer be on its way, unless more
than ``ttl`` late); a label is orphaned once the *prediction* stream has moved ``grace``
past it (its prediction, always older, would have come by then). If the label stream
stops entirely, predictions do not expire by time; ``max_pending`` bounds the buffer and
the oldest expire first.

Each stream's *watermark* is robust to outliers: it is the ``watermark_rank``-th newest
event time seen (3 by default; minus infinity until that many have come), not the newest.
One event stamped far ahead (a wrong clock, within the skew the partition allows, see
``join.max_future_skew_seconds``) therefore does not move the clock for the others: with
the newest, it expired every waiting prediction at once. It takes ``watermark_rank`` events at or past a time to get
there. The watermark never goes back, and, like everything here, depends on the events
alone (not on their batching or arrival order within the rank).

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

OUTCOMES = ("joined", "prediction_expired", "label_orphaned", "duplicate_label", "duplicate_prediction")


class LabelJoin:
    """One partition's buffer of predictions and labels waiting for each other."""

    def __init__(self, ttl: float, grace: float, max_pending: int, watermark_rank: int = 3):
        self.ttl = ttl
        self.grace = grace
        self.max_pending = max_pending
        self.watermark_rank = watermark_rank
        self._predictions: dict[tuple, tuple] = {}  # (model, id) -> (ts, payload)
        self._labels: dict[tuple, tuple] = {}  # (model, id) -> (ts, label)
        self._joined: dict[tuple, float] = {}  # (model, id) -> prediction ts, to spot duplicates
        # The newest event times of each stream, ascending, at most watermark_rank of them.
        self._newest_predictions: list[float] = []
        self._newest_labels: list[float] = []
        self.counts: Counter = Counter()

    def __setstate__(self, state: dict) -> None:
        # Checkpoints written before the robust watermark kept the newest time only.
        for stream in ("prediction", "label"):
            newest = state.pop(f"{stream}_watermark", None)
            if f"_newest_{stream}s" not in state:
                state[f"_newest_{stream}s"] = [] if newest in (None, float("-inf")) else [newest] * 3
        state.setdefault("watermark_rank", 3)
        self.__dict__.update(state)

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

    def add_prediction(self, model: str, id: str, ts: float, payload) -> tuple | None | bool:
        """Buffer a prediction; returns a join if its label was waiting, False if it is a
        duplicate (already pending or joined), else None."""
        key = (model, id)
        if key in self._predictions or key in self._joined:
            self.counts[(model, "duplicate_prediction")] += 1
            return False
        self._saw(self._newest_predictions, ts)
        self.expire()
        waiting = self._labels.pop(key, None)
        if waiting is not None:
            return self._join(key, ts, payload, *waiting)
        self._predictions[key] = (ts, payload)
        if len(self._predictions) > self.max_pending:
            self._expire_oldest()
        return None

    def add_label(self, model: str, id: str, ts: float, label) -> tuple | None:
        """Join a label to its prediction, or keep it waiting; returns the join, if any, as
        (model, prediction payload, label, delay seconds)."""
        key = (model, id)
        self._saw(self._newest_labels, ts)
        self.expire()
        if key in self._joined or key in self._labels:
            self.counts[(model, "duplicate_label")] += 1
            return None
        waiting = self._predictions.pop(key, None)
        if waiting is not None:
            return self._join(key, waiting[0], waiting[1], ts, label)
        self._labels[key] = (ts, label)
        if len(self._labels) > self.max_pending:
            oldest = next(iter(self._labels))
            del self._labels[oldest]
            self.counts[(oldest[0], "label_orphaned")] += 1
        return None

    def _join(self, key, prediction_ts, payload, label_ts, label) -> tuple:
        self._joined[key] = prediction_ts
        self.counts[(key[0], "joined")] += 1
        return key[0], payload, label, max(0.0, label_ts - prediction_ts)

    def _expire_oldest(self) -> None:
        key = next(iter(self._predictions))
        del self._predictions[key]
        self.counts[(key[0], "prediction_expired")] += 1

    def expire(self) -> None:
        """Count and drop what can no longer be joined. Every event calls it when it has
        moved its stream's watermark, before it is matched: what joins is then a function
        of the events' order alone, not of where the consumer's batches happen to end (run
        only once per batch, a label 100 s late joined its prediction despite a 30 s TTL
        when both came in one batch, and not otherwise)."""
        # Buffers are in arrival order, which is close to event-time order: stop at the
        # first entry still in time rather than scanning everything every batch.
        for buffer, watermark, wait, outcome in (
            (self._predictions, self.label_watermark, self.ttl, "prediction_expired"),
            (self._labels, self.prediction_watermark, self.grace, "label_orphaned"),
        ):
            while buffer:
                key, (ts, _) = next(iter(buffer.items()))
                if watermark - ts <= wait:
                    break
                del buffer[key]
                self.counts[(key[0], outcome)] += 1
        # Joined ids are remembered as long as a duplicate label could still arrive.
        while self._joined:
            key, ts = next(iter(self._joined.items()))
            if self.label_watermark - ts <= self.ttl and len(self._joined) <= self.max_pending:
                break
            del self._joined[key]
