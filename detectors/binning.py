"""Turning raw feature values into bin numbers, the common currency of the windowed tests.

A binning is built from a reference sample and maps any batch of values to small integers
in ``range(n_bins)``; ``reference_counts`` says how the reference itself fell. Nothing else
of the reference is kept. Four kinds:

- :class:`QuantileBins` (numeric PSI): edges at the reference's quantiles; a *point
  mass*, a value seen more than once and holding at least half a bin's share of the
  reference (``1 / (2 n_bins)`` of its present values), gets a bin of its own, so that it
  cannot hide in a neighbour's.
- :class:`CategoricalBins` (categorical PSI, chi-square): one bin per level seen in the
  reference, then an "other" bin for unseen levels (counted, or left out of the test:
  :meth:`CategoricalBins.unseen_bins`).
- :class:`KSSlots` (KS): the points where the two empirical distribution functions are
  compared: every distinct reference value when there are at most ``n_slots`` of them
  (then the KS distance is exact), else ``n_slots`` reference quantiles (an approximation).
- :class:`FlagBins` (rate tests): False and True.

Missing values (None and NaN) go to their own last bin, ``missing_bin`` (None for
:class:`FlagBins`, which takes no missing value). Infinite numbers and values of the wrong
type raise ``ValueError``. So do integers beyond +/-2**53 where a number is expected:
float64 cannot hold them exactly (2**53 + 1 would silently become 2**53), so such a
feature must be categorical, where every integer is its own level, exactly.

>>> bins = QuantileBins([float(v) for v in range(1, 41)], n_bins=4)
>>> bins.index([0.5, 12.5, 40.0, None]).tolist()
[0, 1, 3, 4]
>>> bins.reference_counts.tolist()
[10, 10, 10, 10, 0]
>>> mass = QuantileBins([0.0] * 850 + [float(v % 10 + 1) for v in range(150)])
>>> mass.edges.tolist(), mass.index([0.0, 0.5, 7.0]).tolist()   # 0 is a point mass
([0.0, 5e-324, 4.0], [1, 2, 3])
"""

from __future__ import annotations

import collections

import numpy as np

MIN_REFERENCE = 20
#: What a categorical test does with levels the reference never had (see
#: :meth:`CategoricalBins.unseen_bins`).
UNSEEN = ("count", "ignore")
#: What a PSI or chi-square test does with missing values (see :func:`missing_bins`).
MISSING = ("count", "ignore")
#: Integers of larger magnitude are not exact as float64.
EXACT_INTEGER = 2**53


def numeric_array(values, what: str) -> np.ndarray:
    """Values as float64 with None as NaN; ValueError for infinities, non-numbers and
    integers beyond +/-2**53."""
    arr = np.asarray(values)
    if arr.dtype == object:
        arr = np.array([_number(v, what) for v in arr.ravel()], dtype=np.float64)
    elif arr.dtype.kind in "iu":
        if arr.size and (arr.max() > EXACT_INTEGER or (arr.dtype.kind == "i" and arr.min() < -EXACT_INTEGER)):
            big = arr[(arr > EXACT_INTEGER) | (arr < -EXACT_INTEGER)][0] if arr.dtype.kind == "i" else arr.max()
            raise ValueError(_too_big(what, big))
    elif arr.dtype.kind not in "bf":
        raise ValueError(f"{what}: expected numbers, got an array of {arr.dtype}")
    arr = np.asarray(arr, dtype=np.float64).ravel()
    if np.isinf(arr).any():
        raise ValueError(f"{what}: infinite value {arr[np.isinf(arr)][0]!r} (NaN and None count as missing; infinity is an error)")
    return arr


def _number(v, what: str) -> float:
    if v is None:
        return np.nan
    if isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_)) and abs(int(v)) > EXACT_INTEGER:
        raise ValueError(_too_big(what, v))
    if isinstance(v, (bool, int, float, np.number)):
        return float(v)
    raise ValueError(f"{what}: expected a number, got {type(v).__name__} {v!r}")


def _too_big(what: str, v) -> str:
    return (f"{what}: integer {int(v)} is beyond +/-2**53, where float64 merges neighbouring integers; "
            "declare the feature categorical to keep every value exact")


def _check_reference_size(n: int, minimum: int) -> None:
    if n < minimum:
        raise ValueError(f"reference sample too small: {n} usable values, need at least {minimum}")


def _above(x: np.ndarray) -> np.ndarray:
    """The next float above each value: the edge that closes a bin right after it."""
    return np.nextafter(x, np.inf)


class _EdgeBins:
    """Bins ``[edges[i-1], edges[i])`` of the numbers, then the missing bin."""

    def _set_edges(self, edges: np.ndarray, present: np.ndarray) -> None:
        """Set the edges and the reference's counts; ``present``: its values, sorted, without NaN."""
        self.edges = edges
        self.missing_bin = edges.size + 1
        self.n_bins = edges.size + 2
        self.reference_counts = np.append(_sorted_counts(edges, present), 0)  # nothing missing among them

    def index(self, values) -> np.ndarray:
        x = numeric_array(values, "value")
        idx = np.searchsorted(self.edges, x, side="right")
        idx[np.isnan(x)] = self.missing_bin
        return idx

    def key(self) -> tuple:
        return (type(self).__name__, self.edges.tobytes(), self.reference_counts.tobytes())


def index_together(binnings: list, values) -> list[np.ndarray]:
    """``[b.index(values) for b in binnings]`` for binnings by edges (:class:`QuantileBins`,
    :class:`KSSlots`) of one batch of numbers: the same bins for less, the values sorted
    once and each binning searched with them in order (a binary search over values in
    stream order mispredicts most of its branches, several times slower). ValueError as
    :meth:`~_EdgeBins.index`.

    >>> a, b = QuantileBins(np.arange(40.0), n_bins=4), KSSlots(np.arange(40.0), n_slots=8)
    >>> x = [3.5, None, 39.0, -1.0, 17.0]
    >>> [i.tolist() for i in index_together([a, b], x)] == [a.index(x).tolist(), b.index(x).tolist()]
    True
    """
    x = numeric_array(values, "value")
    order = np.argsort(x)
    ordered, missing = x[order], np.isnan(x)
    out = []
    for binning in binnings:
        idx = np.empty(x.size, dtype=np.intp)
        idx[order] = np.searchsorted(binning.edges, ordered, side="right")
        idx[missing] = binning.missing_bin
        out.append(idx)
    return out


def missing_bins(bins, missing: str) -> tuple:
    """The bins a test leaves out for its ``missing`` setting: none for "count" (missing
    values fill the missing bin and weigh as change), the missing bin for "ignore" (they
    are left to a test of their own rate). ValueError for another setting."""
    if missing not in MISSING:
        raise ValueError(f"missing must be one of {MISSING}, got {missing!r}")
    return (bins.missing_bin,) if missing == "ignore" else ()


def _unique_sorted(present: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``np.unique(present, return_counts=True)`` of an already sorted array without NaN
    (the same arrays, by numpy's own method, without sorting again).

    >>> [a.tolist() for a in _unique_sorted(np.array([1.0, 1.0, 2.0, 5.0, 5.0, 5.0]))]
    [[1.0, 2.0, 5.0], [2, 1, 3]]
    """
    first = np.empty(present.size, dtype=bool)
    first[:1] = True
    np.not_equal(present[1:], present[:-1], out=first[1:])
    starts = np.flatnonzero(first)
    return present[first], np.diff(starts, append=present.size)


def _present(reference, minimum: int) -> tuple[np.ndarray, int]:
    ref = numeric_array(reference, "reference")
    missing = np.isnan(ref)
    present = ref[~missing]
    if present.size > 1 and not (present[1:] >= present[:-1]).all():
        # (A caller building several binnings of one reference may sort it once for all.)
        present = np.sort(present)
    _check_reference_size(present.size, minimum)
    return present, int(missing.sum())


class QuantileBins(_EdgeBins):
    """``n_bins`` bins with edges at the reference's quantiles (numpy's linear ones), plus
    a bin ``{v}`` for every point mass ``v`` (see the module docs), plus a missing bin.

    Quantile edges that would leave a bin without reference values are dropped (so a
    reference with few distinct values has fewer bins than asked); only the open intervals
    next to a point mass can be empty.
    """

    def __init__(self, reference, n_bins: int = 10):
        if n_bins < 2:
            raise ValueError(f"n_bins must be at least 2, got {n_bins}")
        present, n_missing = _present(reference, max(MIN_REFERENCE, 2 * n_bins))
        inner = np.quantile(present, np.linspace(0, 1, n_bins + 1)[1:-1])
        values, counts = _unique_sorted(present)
        # A point mass is a value seen more than once: a value seen once holds 1/n of the
        # reference by itself, and in a small reference (20 values, 10 bins) every such
        # value would pass the share rule, each then a bin continuous data never lands on.
        heavy = values[(counts >= 2) & (counts * 2 * n_bins >= present.size)]
        own = np.concatenate([heavy, _above(heavy)])
        edges = np.unique(np.concatenate([inner, own]))
        self._set_edges(_drop_empty(edges, np.isin(edges, own), present), present)
        self.reference_counts[self.missing_bin] = n_missing


def _sorted_counts(edges: np.ndarray, present: np.ndarray) -> np.ndarray:
    """How many of ``present`` (sorted, without NaN) fall in each bin ``[edges[i-1],
    edges[i])`` (``edges`` sorted), shape ``(edges.size + 1,)``: the integers of
    ``np.bincount(np.searchsorted(edges, present, side="right"), minlength=edges.size + 1)``,
    found by searching the few edges among the many values (a search per edge, not per
    value: the reference holds tens of thousands of values, a binning a few hundred edges).

    >>> present, edges = np.array([0.0, 1.0, 1.0, 2.0, 5.0]), np.array([1.0, 2.0, 3.0])
    >>> _sorted_counts(edges, present).tolist()
    [1, 2, 1, 1]
    >>> np.bincount(np.searchsorted(edges, present, side="right"), minlength=4).tolist()
    [1, 2, 1, 1]
    """
    # Bin i holds the values below edges[i] but not below edges[i - 1].
    return np.diff(np.searchsorted(present, edges, side="left"), prepend=0, append=present.size)


def _drop_empty(edges: np.ndarray, fixed: np.ndarray, present: np.ndarray) -> np.ndarray:
    """Drop edges (not ``fixed`` ones) that bound a bin holding no reference value
    (``present``: sorted, without NaN)."""
    while True:
        counts = _sorted_counts(edges, present)
        for i in np.flatnonzero(counts == 0):
            drop = next((j for j in (i - 1, i) if 0 <= j < edges.size and not fixed[j]), None)
            if drop is not None:
                edges, fixed = np.delete(edges, drop), np.delete(fixed, drop)
                break
        else:
            return edges


class KSSlots(_EdgeBins):
    """Slots for the KS test: for each *cut value* ``c`` the slot ``{c}`` and the slot of
    the values between it and the previous cut value, then the values above the last.

    When the reference has at most ``n_slots`` distinct values every one is a cut value,
    and the two empirical distribution functions are compared at every point where either
    can change: the KS distance is exact. Otherwise the cut values are ``n_slots``
    reference quantiles, the functions are compared at those points (and just below the
    tied ones) only, and the distance is a lower bound of the exact one, short of it by at
    most about ``1 / n_slots``.
    """

    def __init__(self, reference, n_slots: int = 128):
        if n_slots < 2:
            raise ValueError(f"n_slots must be at least 2, got {n_slots}")
        present, _ = _present(reference, MIN_REFERENCE)
        values, counts = _unique_sorted(present)
        self.exact = values.size <= n_slots
        if self.exact:
            edges = np.column_stack([values, _above(values)]).ravel()
        else:
            ranks = np.ceil(np.arange(1, n_slots + 1) * present.size / n_slots).astype(np.int64) - 1
            cuts = np.unique(present[ranks])
            tied = cuts[counts[np.searchsorted(values, cuts)] > 1]
            edges = np.unique(np.concatenate([_above(cuts), tied]))
        self._set_edges(edges, present)


class CategoricalBins:
    """One bin per reference level (most frequent first), then "other", then missing."""

    def __init__(self, reference):
        levels: dict = {}
        n_missing = 0
        for v, count in _tally(reference):  # each distinct value once, not each value
            if _is_missing(v):
                n_missing += count
            else:
                key = _level(v)
                levels[key] = levels.get(key, 0) + count
        _check_reference_size(sum(levels.values()), MIN_REFERENCE)
        ordered = sorted(levels, key=lambda k: (-levels[k], str(k)))
        self.levels = {level: i for i, level in enumerate(ordered)}
        self.other_bin = len(ordered)
        self.missing_bin = self.other_bin + 1
        self.n_bins = self.missing_bin + 1
        self.reference_counts = np.zeros(self.n_bins, dtype=np.int64)
        for level, count in levels.items():
            self.reference_counts[self.levels[level]] = count
        self.reference_counts[self.missing_bin] = n_missing

    def unseen_bins(self, unseen: str) -> tuple:
        """The bins a test leaves out for its ``unseen`` setting: none for "count" (levels
        the reference never had fall in "other" and weigh as change), the "other" bin for
        "ignore" (they are left to a test of their own rate). ValueError otherwise."""
        if unseen not in UNSEEN:
            raise ValueError(f"unseen must be one of {UNSEEN}, got {unseen!r}")
        return (self.other_bin,) if unseen == "ignore" else ()

    def index_levels(self, levels) -> np.ndarray:
        """:meth:`index` of values that are levels already: strings (a string is its own
        level) or None (missing); intp of shape (values,). Without :meth:`index`'s typed
        keys and level of each distinct value: a caller that has its batch's distinct
        levels (the daemon's columns) bins those.

        >>> bins = CategoricalBins(["a"] * 30 + ["b"] * 20)
        >>> bins.index_levels(["b", None, "zz", "a"]).tolist() == bins.index(["b", None, "zz", "a"]).tolist()
        True
        """
        get, other, missing = self.levels.get, self.other_bin, self.missing_bin
        return np.array([missing if v is None else get(v, other) for v in levels], dtype=np.intp)

    def index(self, values) -> np.ndarray:
        get, other, missing = self.levels.get, self.other_bin, self.missing_bin
        values = _sequence(values)
        try:
            keys, distinct = _distinct(values)
        except TypeError:  # an unhashable value: the per-value path says what is wrong
            keys, distinct = None, None
        if keys is None:
            return np.fromiter(
                (missing if _is_missing(v) else get(_level(v), other) for v in values),
                dtype=np.intp,
            )
        # Each distinct value is binned once; the values by lookup.
        for key in distinct:
            v = key[1]
            distinct[key] = missing if _is_missing(v) else get(_level(v), other)
        return np.fromiter(map(distinct.__getitem__, keys), dtype=np.intp, count=len(keys))

    def key(self) -> tuple:
        return (type(self).__name__, tuple(self.levels), self.reference_counts.tobytes())


class FlagBins:
    """Bin 0 for False, 1 for True (also 0 and 1); anything else raises ``ValueError``."""

    missing_bin = None
    n_bins = 2

    def __init__(self, reference):
        flags = self.index(reference)
        _check_reference_size(flags.size, MIN_REFERENCE)
        self.reference_counts = np.bincount(flags, minlength=2)

    def index(self, values) -> np.ndarray:
        arr = np.asarray(values)
        if arr.dtype == object:
            if any(not isinstance(v, (bool, np.bool_, int, np.integer)) for v in arr.ravel()):
                raise ValueError("flags must be True or False (or 1 and 0)")
            arr = arr.astype(np.int64)
        if arr.dtype.kind not in "biu" or (arr.dtype.kind != "b" and arr.size and not np.isin(arr, (0, 1)).all()):
            raise ValueError("flags must be True or False (or 1 and 0)")
        return arr.astype(np.intp).ravel()

    def key(self) -> tuple:
        return (type(self).__name__, self.reference_counts.tobytes())


def _distinct(values) -> tuple[list, dict]:
    """``(keys, distinct)``: a key per value, ``(type, value)``, and a dict whose keys are
    the distinct keys in order of first appearance (values None). Keyed by type too, so
    that values equal in Python but of different levels (``True``, ``1``; ``1`` and
    ``1.0`` are one level anyway) stay apart. TypeError for an unhashable value.

    >>> keys, distinct = _distinct(["a", True, 1, "a", None])
    >>> len(keys), [v for _, v in distinct]
    (5, ['a', True, 1, None])
    """
    values = _sequence(values)
    keys = list(zip(map(type, values), values))
    return keys, dict.fromkeys(keys)


def _sequence(values):
    """``values`` as something that can be iterated more than once."""
    return values if isinstance(values, (list, tuple, np.ndarray)) else list(values)


class Tallied(list):
    """Reference values (a list) with their tally: ``tally``, a list of ``(value, count)``
    for every distinct value, as :func:`_tally` counts them (in any order), for a caller
    that has them counted already (the daemon, from a column's level codes):
    :class:`CategoricalBins` takes the tally instead of counting the values again, a pass
    over them for each test built from them (~2 ms per 50,000 levels). The caller vouches
    for the tally; the bins are the same.

    >>> values = ["b", None, "a", "b"] * 10
    >>> CategoricalBins(Tallied(values, [("a", 10), ("b", 20), (None, 10)])).key() == CategoricalBins(values).key()
    True
    """

    def __init__(self, values, tally: list):
        super().__init__(values)
        self.tally = tally


def _tally(values) -> list[tuple[object, int]]:
    """(value, count) for every distinct value (by type and value, see :func:`_distinct`),
    in order of first appearance (a :class:`Tallied` list: its own tally, in its order);
    for an unhashable value, each value with count 1."""
    if type(values) is Tallied:
        return values.tally
    values = _sequence(values)
    if set(map(type, values)) <= {str, type(None)}:  # the daemon's levels: no two types to keep apart
        return list(collections.Counter(values).items())
    try:
        counted = collections.Counter(_distinct(values)[0])
    except TypeError:
        return [(v, 1) for v in values]
    return [(v, count) for (_, v), count in counted.items()]


def _is_missing(v) -> bool:
    return v is None or (isinstance(v, (float, np.floating)) and v != v)


def _level(v):
    # JSON gives 1 and 1.0 and True for what a producer meant as one level; key them alike
    # so that a level is not split by how it was serialised. Integers stay exact at any
    # size (never through a float): 2**53 and 2**53 + 1 are two levels.
    if isinstance(v, (bool, np.bool_)):
        return str(bool(v)).lower()
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        f = float(v)
        if not np.isfinite(f):
            raise ValueError(f"categorical value: infinite number {v!r}")
        return str(int(f)) if f.is_integer() else repr(f)
    if isinstance(v, str):
        return v
    raise ValueError(f"categorical value: expected a string, number or boolean, got {type(v).__name__}")
