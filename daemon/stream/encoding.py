"""Categorical values by level, and the rows of the reconstruction test's column ``<all>``.

- :func:`level_codes`: a batch of categorical values as codes into its distinct levels (the
  live path: a column is binned, and its indicators made, per distinct value, not per value);
- :func:`level_counts`: a categorical reference column's distinct levels, missing values
  and singletons (the unseen-level rate test's null);
- :func:`reconstruction_encoding`, :func:`encode`, :func:`encode_events`: how column
  ``<all>`` is made of the model's features, numeric ones as they are and categorical ones
  as indicators of their frequent levels, from the reference's columns or from events.
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from daemon.stream.reference import level


def level_codes(raw: list) -> tuple[np.ndarray, list]:
    """``(codes, levels)`` of a batch of categorical values: ``levels``, the level
    (:func:`~daemon.stream.reference.level`, None for missing) of each distinct value in
    order of first appearance, and ``codes``, intp of shape (values,), each value's index
    into them. Distinct by type and value (``True`` and ``1`` are two levels); two
    distinct values may have one level (``1`` and ``1.0``). TypeError as ``level``.

    >>> codes, levels = level_codes(["DE", 1, None, "DE", 1.0, True])
    >>> codes.tolist(), levels
    ([0, 1, 2, 0, 3, 4], ['DE', '1', None, '1', 'true'])
    """
    try:
        distinct = dict.fromkeys(raw)
    except TypeError:  # an unhashable value: say what level() says of it
        levels = [level(v) for v in raw]
        return np.arange(len(levels), dtype=np.intp), levels
    # Strings and None only (the types of the distinct values tell: no other value equals
    # a string or None): no two of these are equal unless of one type, the values are the
    # keys. Otherwise keyed by type too.
    keys = raw
    if not set(map(type, distinct)) <= _STR_OR_NONE:
        keys = list(zip(map(type, raw), raw))
        distinct = dict.fromkeys(keys)
    for i, key in enumerate(distinct):
        distinct[key] = i
    codes = np.fromiter(map(distinct.__getitem__, keys), dtype=np.intp, count=len(keys))
    if keys is raw:
        return codes, list(distinct)  # a string is its own level
    return codes, [level(v) for _, v in distinct]


_STR_OR_NONE = frozenset({str, type(None)})


def level_counts(values: list, coded: tuple | None = None) -> tuple[list, np.ndarray, np.ndarray]:
    """``(distinct, missing, singletons)`` of a categorical reference column (``values``:
    its levels, None for missing): the distinct present levels, sorted; per value, bool
    arrays of shape (values,): is it missing, and is it a singleton, its level there
    exactly once, so unseen by the rest of the reference. A stationary stream keeps
    bringing levels the reference never had at about that rate, the Good-Turing estimate
    of the unseen mass (singletons / n), so the unseen-rate test's null is that, not zero:
    with all-False flags it alarmed 13 times its share on long-tailed categoricals. Made
    per distinct level, not per value (a dict of first appearances, then numpy): the
    build's cost was Python passes over every reference value. ``coded``: the values as
    ``(codes, levels)`` when the caller has them so (a reference column of strings: code
    -1 for missing, else an index into ``levels``, distinct strings), counted from the
    codes without a pass over the values; the same result.

    >>> distinct, missing, singletons = level_counts(["b", None, "a", "b", "c", None])
    >>> distinct, missing.tolist(), singletons.tolist()
    (['a', 'b', 'c'], [False, True, False, False, False, True], [False, False, True, False, True, False])
    >>> coded = (np.array([0, -1, 1, 0, 2, -1]), ["b", "a", "c"])
    >>> [np.asarray(x).tolist() for x in level_counts(None, coded)] == [distinct, missing.tolist(), singletons.tolist()]
    True
    """
    if coded is None:
        index = dict.fromkeys(values)
        for i, key in enumerate(index):
            index[key] = i
        codes = np.fromiter(map(index.__getitem__, values), dtype=np.intp, count=len(values))
        levels = list(index)
    else:
        codes, levels = coded
        levels = [*levels, None]  # missing (-1) last
        codes = np.asarray(codes, dtype=np.intp)
        codes = np.where(codes < 0, len(levels) - 1, codes)
    counts = np.bincount(codes, minlength=len(levels))
    single = counts == 1
    if None in levels:
        single[levels.index(None)] = False  # missing is no level
        missing = codes == levels.index(None)
    else:
        missing = np.zeros(len(codes), dtype=bool)
    return sorted(key for key, n in zip(levels, counts.tolist()) if key is not None and n), missing, single[codes]


#: Columns of the reconstruction test at most: numeric features first, then indicators.
MAX_RECONSTRUCTED = 64
#: Indicator columns of one categorical feature at most ...
MAX_INDICATORS = 5
#: ... each of a level the reference has at least this many times.
MIN_LEVEL_COUNT = 20


def reconstruction_encoding(numeric: list, categorical: dict) -> tuple:
    """How column <all> is made: ``(feature, None)`` for a numeric feature, ``(feature,
    levels)`` for a categorical one, one-hot: an indicator per level of ``levels``, its
    ``MAX_INDICATORS`` most frequent levels after the first (the first is the baseline: all
    indicators 0, as for rarer or unseen levels; a full one-hot would make each indicator
    the exact sum of the others), each seen ``MIN_LEVEL_COUNT`` times. At most
    ``MAX_RECONSTRUCTED`` columns in all, numeric features first. ``categorical``: feature
    -> its reference values (levels, None for missing)."""
    out, room = [], MAX_RECONSTRUCTED
    for name in numeric[:room]:
        out.append((name, None))
    room -= len(out)
    for name, values in categorical.items():
        if room <= 0:
            break
        ranked = [lv for lv, n in Counter(v for v in values if v is not None).most_common() if n >= MIN_LEVEL_COUNT]
        levels = tuple(ranked[1:MAX_INDICATORS + 1][:room])
        if levels:
            out.append((name, levels))
            room -= len(levels)
    return tuple(out)


def encode(features: list, encoding: tuple, columns: dict | None = None) -> np.ndarray:
    """Rows of column <all> (shape (events, columns)) from events' feature dicts
    (:func:`encode_events`), or from ``columns`` (feature -> values, as the reference keeps
    them: numbers with NaN for missing, levels with None). NaN where a feature is missing
    or, for a numeric one, not a number (its missing_rate test has that signal)."""
    if columns is None:
        return encode_events(features, encoding)
    n = len(features)
    width = sum(1 if levels is None else len(levels) for _, levels in encoding)
    out = np.empty((n, width), dtype=np.float64)
    k = 0
    for name, levels in encoding:
        found = columns[name]
        if levels is None:
            out[:, k] = found
            k += 1
            continue
        k = _indicators(out, k, found, levels)
    return out


_NUMBER_OR_NONE = frozenset({float, int, type(None)})


def encode_events(features: list, encoding: tuple, raws: dict | None = None) -> np.ndarray:
    """:func:`encode` of events' feature dicts (the live path, once per batch): the same
    rows, with a numeric feature converted in one step when its values are all numbers or
    None, and a categorical one's indicators made per distinct value (:func:`level_codes`).
    ``raws``: feature -> its values in ``features`` (``[f.get(name) for f in features]``),
    where the caller has them already.

    >>> rows = encode_events([{"x": 1, "c": "a"}, {"x": None, "c": "b"}, {"x": True, "c": None}],
    ...                       (("x", None), ("c", ("a",))))
    >>> rows.tolist()
    [[1.0, 1.0], [nan, 0.0], [nan, nan]]
    """
    n = len(features)
    width = sum(1 if levels is None else len(levels) for _, levels in encoding)
    out = np.empty((n, width), dtype=np.float64)
    nan, k = float("nan"), 0
    for name, levels in encoding:
        raw = raws.get(name) if raws else None
        if raw is None:
            raw = [f.get(name) for f in features]
        if levels is None:
            if set(map(type, raw)) <= _NUMBER_OR_NONE:
                out[:, k] = np.array(raw, dtype=np.float64)  # None is NaN
            else:  # a boolean or a string is not a number here: NaN
                out[:, k] = [v if type(v) is float or type(v) is int else nan for v in raw]
            k += 1
            continue
        k = _indicators(out, k, raw, levels)
    return out


def _indicators(out: np.ndarray, k: int, raw, levels: tuple) -> int:
    """Write a categorical feature's indicator columns, one per level of ``levels``, into
    ``out[:, k:]`` from its values ``raw`` (NaN where missing), compared per distinct
    value (:func:`level_codes`), not per value; the next free column."""
    codes, found = level_codes(raw)
    missing = np.array([v is None for v in found], dtype=bool)[codes]
    for lv in levels:
        out[:, k] = np.array([v == lv for v in found], dtype=np.float64)[codes]
        out[missing, k] = np.nan
        k += 1
    return k
