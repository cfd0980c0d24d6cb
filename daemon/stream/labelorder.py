"""Each model's labelled events in the order of their label records, whichever of a label
and its prediction was read first.

The two topics are read at their own pace (a poll holds a batch of each, a replica
catching up reads one ahead of the other): joins taken in the order they happen to
complete made the label side's alerts depend on it. A label read before its prediction
:meth:`~LabelOrder.hold`\\ s its place (and the labels after it wait) until the join settles
it: its prediction comes (:meth:`~LabelOrder.place` fills the place), or the prediction
stream passes ``join.label_grace_seconds`` beyond the label's time and the join orphans it
(both a function of the prediction stream alone). Memory is bounded by the reader, not by
giving up the order: once :data:`MAX_HELD_LABELS` labels of a model wait (:meth:`full`),
the daemon stops reading that partition's labels while its predictions topic has records
left to read (replay defers the label rows), so the predictions catch up and the held
labels go in order however far the labels topic had been read ahead. Only a label read
before the predictions topic was known to be read to its end (``overflow_below``: its
prediction was produced after it, or never) stops holding its place with that many
behind it; if it still joins, its labelled event comes after those released. ("Known"
from the broker's end offset, asked after the label was read: a fetch's highwater can be
older than the labels read since, and labels whose predictions were on their way then
lost their places, by timing, while their predictions were still being produced.)

>>> order = LabelOrder()
>>> order.hold("fraud", 0, "p-1")             # label 0 came before its prediction
>>> order.place("fraud", 1, "labelled 1")     # label 1 joined at once: it waits behind
>>> waiting = {("fraud", "p-1", 0)}
>>> list(order.release(lambda *label: label in waiting))
[]
>>> order.place("fraud", 0, "labelled 0")     # the prediction came
>>> list(order.release(lambda *label: False)), order
([('fraud', ['labelled 0', 'labelled 1'])], {})
"""

from __future__ import annotations

import math
from collections import deque
from typing import Callable, Iterator

#: Labels of a model that may wait behind one label waiting for its prediction before
#: the reader stops giving labels (about 1 MB of held labelled events a model, and one
#: poll more at most; features held only for learners and the regression estimate).
MAX_HELD_LABELS = 10_000


class LabelOrder(dict):
    """model -> its labels not yet given to its label side, in label-record order: a
    deque of ``[label offset, id, labelled event]``, the event None while the label waits
    for its prediction (id None: no longer held). Pickled as that dict."""

    def __init__(self, *args):
        super().__init__(*args)
        self.__setstate__({})

    def __getstate__(self) -> dict:
        return {}  # the index below is derived

    def __setstate__(self, state: dict) -> None:
        #: (model, label offset) -> the entry of a label holding its place.
        self._held = {(model, entry[0]): entry for model, queue in self.items() for entry in queue
                      if entry[2] is None and entry[1] is not None}

    def forget(self, model: str) -> None:
        """Drop ``model``'s labels (a model no longer watched)."""
        if self.pop(model, None) is not None:
            self._held = {key: entry for key, entry in self._held.items() if key[0] != model}

    def hold(self, model: str, offset: int, id: str) -> None:
        """Keep the place of the label at ``offset`` (of ``id``), waiting for its prediction."""
        entry = [offset, id, None]
        self.setdefault(model, deque()).append(entry)
        earlier = self._held.get((model, offset))
        if earlier is not None:  # the same offset again (the topic re-created): no longer held
            earlier[1] = None
        self._held[(model, offset)] = entry

    def place(self, model: str, offset: int, labelled) -> None:
        """Put the labelled event of the label at ``offset`` in the place it held, else at
        the end (it joined at once, or was no longer held)."""
        entry = self._held.pop((model, offset), None)
        if entry is not None and entry[1] is not None:
            entry[2] = labelled
        else:
            self.setdefault(model, deque()).append([offset, None, labelled])

    def drop(self, model: str, offset: int) -> None:
        """The label at ``offset`` will never join (its prediction was a dead letter): its
        place is no longer held, and the labels behind it may go."""
        entry = self._held.pop((model, offset), None)
        if entry is not None:
            entry[1] = None

    def release(self, waits: Callable[[str, str, int], bool], flush: bool = False,
                overflow_below: float = -math.inf) -> Iterator[tuple[str, list]]:
        """``(model, labelled events)`` from the head of each model's order up to the first
        label still holding its place: ``waits(model, id, offset)`` says whether it still
        waits for its prediction. ``flush``: hold none (no prediction will come);
        ``overflow_below``: labels at offsets below it were read before the predictions
        topic was read to its end (its prediction was produced after it, or never), so such
        a label with more than :data:`MAX_HELD_LABELS` behind it stops holding its place.
        (A label read later may wait for a prediction produced since: it holds its place,
        else the order would depend on how far each topic had been read.)"""
        for model in list(self):
            queue, items = self[model], []
            while queue:
                offset, id, labelled = queue[0]
                if labelled is None:
                    if id is not None and not flush and not (offset < overflow_below and len(queue) > MAX_HELD_LABELS) \
                            and waits(model, id, offset):
                        break  # its prediction may still come, in order
                    if self._held.get((model, offset)) is queue[0]:
                        del self._held[(model, offset)]  # orphaned, or no longer held
                else:
                    items.append(labelled)
                queue.popleft()
            if not queue:
                del self[model]
            if items:
                yield model, items

    def full(self, overflow_below: float = -math.inf) -> bool:
        """Whether a model has :data:`MAX_HELD_LABELS` or more labels waiting behind one that
        holds its place and may not stop holding it (its offset not below
        ``overflow_below``, see :meth:`release`): the reader then stops giving labels until
        the predictions catch up, or are known to have been read to their end."""
        return any(len(queue) >= MAX_HELD_LABELS and queue[0][2] is None
                   and not (queue[0][1] is not None and queue[0][0] < overflow_below) for queue in self.values())

    def held(self, model: str) -> int:
        """The model's labels not yet given to its label side."""
        return len(self.get(model, ()))
