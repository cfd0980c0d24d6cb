"""The ``<score>`` column's values: a model's score, a number or a class -> probability
mapping, as one number."""

from __future__ import annotations

import math

from daemon.stream import reference as ref


def score_values(events: list, positive: str | None = None) -> list:
    """:func:`score_value` of each event's score; the scores as they are when every one is
    a float or None (the usual batch: no call per event)."""
    scores = [e.score for e in events]
    if set(map(type, scores)) <= _FLOAT_OR_NONE:
        return scores
    return [score_value(score, positive) for score in scores]


_FLOAT_OR_NONE = frozenset({float, type(None)})


def score_value(score, positive: str | None = None):
    """The ``<score>`` column's value of a score: a number as is; a class -> probability
    mapping of two classes, one of them ``positive`` (the positive class as a JSON object
    key), that class's probability, the number a binary model's score is (so that the
    column does not move when a model sends one form for the other); any other mapping,
    its highest probability (a multiclass model's confidence).

    >>> score_value({"0": 0.3, "1": 0.7}, "1"), score_value({"0": 0.8, "1": 0.2}, "1"), score_value({"0": 0.8, "1": 0.2})
    (0.7, 0.2, 0.8)
    >>> score_value({"a": 0.2, "b": 0.5, "c": 0.3}, "1"), score_value(0.25, "1")
    (0.5, 0.25)
    """
    if score is None or type(score) is float:
        return score
    if isinstance(score, dict):
        if len(score) == 2 and positive in score:
            return score[positive]
        return max(score.values()) if score else None
    return float(score) if ref.is_number(score) and math.isfinite(score) else None
