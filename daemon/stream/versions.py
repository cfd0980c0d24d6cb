"""Which era of a model's versions a prediction was made in.

A model's versions are remembered in the order their predictions came, as eras
``(epoch, version, since)``: ``epoch`` counts the versions started, ``since`` is the event
time of the era's first prediction. A name can have several eras (a rollback ``a -> b ->
a``): a labelled event goes to the era its prediction was made in, told by its version's
name and its event time. The label side (:class:`~daemon.stream.pipeline.ModelPipeline`)
and the estimated performance (:class:`~daemon.stream.estimates.Estimates`) both ask
:func:`epoch_of`, so that they never disagree on where a label belongs.

>>> eras = [(1, "a", float("-inf")), (2, "b", 100.0), (3, "a", 200.0)]
>>> epoch_of(eras, "a", 150.0), epoch_of(eras, "a", 250.0), epoch_of(eras, "b", 90.0), epoch_of(eras, "c", 1.0)
(1, 3, 2, None)
"""

from __future__ import annotations


def epoch_of(eras: list, version: str, ts: float) -> int | None:
    """The epoch of a prediction of model version ``version`` stamped ``ts`` (seconds).

    ``eras``: ``(epoch, version, since)`` in the order they came. Of the eras of that
    name, the last one started at or before ``ts`` (a version seen again takes only the
    predictions made since it came back); a prediction stamped before every era of its
    name (produced out of time order) is the first era's. None: no era of that name is
    remembered (older than the eras kept)."""
    first = None
    for epoch, name, since in reversed(eras):
        if name == version:
            if ts >= since:
                return epoch
            first = epoch
    return first
