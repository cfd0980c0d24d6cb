"""Which era of a model's versions a prediction was made in.

A model's versions are remembered in the order their predictions came, as eras
``(epoch, version, since, first)``: ``epoch`` counts the versions started, ``since`` is the
event time of the era's first prediction and ``first`` its index in the model's prediction
stream (0 for the model's first prediction). A name can have several eras (a rollback
``a -> b -> a``, a canary's versions interleaved): a labelled event goes to the era its
prediction was made in. A prediction carries its index in the stream (the join keeps it
with the prediction), and its era is the last one started at or before that index: where
it stood in its topic, not its event time nor how much of the topic has been read when
its label comes, so the answer is the same whatever the batches. The label side
(:class:`~daemon.stream.pipeline.ModelPipeline`) and the estimated performance
(:class:`~daemon.stream.estimates.Estimates`) both ask :func:`epoch_of`, so that they
never disagree on where a label belongs.

>>> eras = [(1, "a", float("-inf"), 0), (2, "b", 100.0, 40), (3, "a", 200.0, 90)]
>>> epoch_of(eras, "a", 150.0, 39), epoch_of(eras, "b", 250.0, 89), epoch_of(eras, "a", 95.0, 90)
(1, 2, 3)
>>> epoch_of(eras[1:], "a", 250.0, 39) is None   # its era forgotten: not the later era of its name
True

A model's pipeline keeps the eras a label may still need: from the label side's (the
earliest one it has not passed) and the earliest still estimated on, so that a late
label's era is known or not by the labels alone, whatever was read of the predictions.
:data:`MAX_ERAS` bounds them (memory: a model whose labels never come), beyond which the
oldest is forgotten: the one case the reading order decides, warned about.

Predictions saved before they carried an index, and eras saved before they had a
``first``, are placed by their version's name and event time instead:

>>> epoch_of(eras, "a", 150.0), epoch_of(eras, "a", 250.0), epoch_of(eras, "b", 90.0), epoch_of(eras, "c", 1.0)
(1, 3, 2, None)
"""

from __future__ import annotations

import bisect
import operator

#: Eras a model's pipeline remembers at most (about 150 bytes each, with an estimate of
#: about 2 kB): 10,000 is two full polls of versions alternating with every prediction.
MAX_ERAS = 10_000


def epoch_of(eras: list, version: str, ts: float, index: int | None = None) -> int | None:
    """The epoch of a prediction of model version ``version`` stamped ``ts`` (seconds),
    the ``index``-th of its model's stream (None: not known).

    ``eras``: ``(epoch, version, since, first)`` in the order they came (``first`` missing
    in eras saved before it was kept). By index: the last era whose ``first`` is at or
    before ``index``, if it is of that version. Otherwise by time: of the eras of that
    name, the last one started at or before ``ts`` (a version seen again takes only the
    predictions made since it came back); a prediction stamped before every era of its
    name (produced out of time order) is the first era's. None: no era of that name is
    remembered (older than the eras kept)."""
    if index is not None:
        indexed = 0  # where the eras with a first index start (those saved without come before)
        if eras and len(eras[0]) < 4:
            indexed = max(i for i, era in enumerate(eras) if len(era) < 4) + 1
        at = bisect.bisect_right(eras, index, lo=indexed, key=_FIRST) - 1  # (thousands of eras: a canary)
        if at >= indexed:
            epoch, name, *_ = eras[at]
            if name == version:
                return epoch
        elif not indexed:
            return None  # before every era remembered: its own is forgotten, not a later one of its name
    first = None
    for epoch, name, since, *_ in reversed(eras):
        if name == version:
            if ts >= since:
                return epoch
            first = epoch
    return first


_FIRST = operator.itemgetter(3)


def epoch_of_payload(eras: list, payload: tuple) -> int | None:
    """:func:`epoch_of` the prediction of a join payload ``(prediction, score, version, ts,
    features[, index])`` (payloads saved before the index have none)."""
    return epoch_of(eras, payload[2], payload[3], payload[5] if len(payload) > 5 else None)
