"""Turning raw feature values into bin numbers, the common currency of the windowed tests.

A binning is built from a reference sample and maps any batch of values to small integers
in ``range(n_bins)``; ``reference_counts`` says how the reference itself fell. Three kinds:

- :class:`QuantileBins` (numeric PSI): edges at the reference's quantiles.
- :class:`CategoricalBins` (categorical PSI, chi-square): one bin per level seen in the
  reference, then an "other" bin for unseen levels.
- :class:`RankSlots` (KS): each distinct reference value is a bin, and so is every gap
  between two of them, so that window counts per slot give the exact two-sample
  empirical distribution functions at every point where they can change.

Missing values (None and NaN) go to their own last bin where a binning keeps one
(``missing_bin``); :class:`RankSlots` has none, and the KS test leaves them out.
Infinite numbers and values of the wrong type raise ``ValueError``.

>>> bins = QuantileBins([float(v) for v in range(1, 41)], n_bins=4)
>>> bins.index([0.5, 12.5, 40.0, None]).tolist()
[0, 1, 3, 4]
>>> bins.reference_counts.tolist()
[10, 10, 10, 10, 0]
"""

from __future__ import annotations

import numpy as np

MIN_REFERENCE = 20


def numeric_array(values, what: str) -> np.ndarray:
    """Values as float64 with None as NaN; ValueError for infinities or non-numbers."""
    arr = np.asarray(values)
    if arr.dtype == object:
        arr = np.array([_number(v, what) for v in arr.ravel()], dtype=np.float64)
    elif arr.dtype.kind not in "biuf":
        raise ValueError(f"{what}: expected numbers, got an array of {arr.dtype}")
    arr = np.asarray(arr, dtype=np.float64).ravel()
    if np.isinf(arr).any():
        raise ValueError(f"{what}: infinite value {arr[np.isinf(arr)][0]!r} (NaN and None count as missing; infinity is an error)")
    return arr


def _number(v, what: str) -> float:
    if v is None:
        return np.nan
    if isinstance(v, (bool, int, float, np.number)):
        return float(v)
    raise ValueError(f"{what}: expected a number, got {type(v).__name__} {v!r}")


def _check_reference_size(n: int, minimum: int) -> None:
    if n < minimum:
        raise ValueError(f"reference sample too small: {n} usable values, need at least {minimum}")


class QuantileBins:
    """``n_bins`` bins with edges at the reference's quantiles, plus a missing bin.

    Repeated quantiles (a reference with few distinct values) merge, so there may be
    fewer bins than asked; every bin holds reference mass.
    """

    def __init__(self, reference, n_bins: int = 10):
        if n_bins < 2:
            raise ValueError(f"n_bins must be at least 2, got {n_bins}")
        ref = numeric_array(reference, "reference")
        present = ref[~np.isnan(ref)]
        _check_reference_size(present.size, max(MIN_REFERENCE, 2 * n_bins))
        inner = np.quantile(present, np.linspace(0, 1, n_bins + 1)[1:-1])
        self.edges = np.unique(inner)
        self.missing_bin = self.edges.size + 1
        self.n_bins = self.missing_bin + 1
        self.reference_counts = np.bincount(self.index(ref), minlength=self.n_bins)

    def index(self, values) -> np.ndarray:
        x = numeric_array(values, "value")
        idx = np.searchsorted(self.edges, x, side="right")
        idx[np.isnan(x)] = self.missing_bin
        return idx


class CategoricalBins:
    """One bin per reference level (most frequent first), then "other", then missing."""

    def __init__(self, reference):
        levels: dict = {}
        n_missing = 0
        for v in reference:
            if _is_missing(v):
                n_missing += 1
            else:
                levels[_level(v)] = levels.get(_level(v), 0) + 1
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

    def index(self, values) -> np.ndarray:
        get, other, missing = self.levels.get, self.other_bin, self.missing_bin
        return np.fromiter(
            (missing if _is_missing(v) else get(_level(v), other) for v in values),
            dtype=np.intp,
        )


def _is_missing(v) -> bool:
    return v is None or (isinstance(v, float) and v != v)


def _level(v):
    # JSON gives 1 and 1.0 and True for what a producer meant as one level; key them alike
    # so that a level is not split by how it was serialised.
    if isinstance(v, (bool, np.bool_)):
        return str(bool(v)).lower()
    if isinstance(v, (int, float, np.integer, np.floating)):
        f = float(v)
        if not np.isfinite(f):
            raise ValueError(f"categorical value: infinite number {v!r}")
        return repr(int(f)) if f.is_integer() else repr(f)
    if isinstance(v, str):
        return v
    raise ValueError(f"categorical value: expected a string, number or boolean, got {type(v).__name__}")


class RankSlots:
    """Slots 2i (values strictly between the (i-1)-th and i-th distinct reference values)
    and 2i+1 (values equal to the i-th), for ``2m+1`` slots over ``m`` distinct values.

    Reference values must be present (no missing); see the module docs.
    """

    def __init__(self, reference):
        ref = numeric_array(reference, "reference")
        ref = ref[~np.isnan(ref)]
        _check_reference_size(ref.size, MIN_REFERENCE)
        self.reference = np.sort(ref)
        self.values, counts = np.unique(self.reference, return_counts=True)
        self.n_bins = 2 * self.values.size + 1
        self.missing_bin = None
        self.reference_counts = np.zeros(self.n_bins, dtype=np.int64)
        self.reference_counts[1::2] = counts

    def index(self, values) -> np.ndarray:
        """Slots of the present values (missing ones are dropped)."""
        x = numeric_array(values, "value")
        x = x[~np.isnan(x)]
        i = np.searchsorted(self.values, x, side="left")
        exact = self.values[np.minimum(i, self.values.size - 1)] == x
        return 2 * i + exact
