"""A model's reference sample, collected column by column, and the types of its columns.

The first ``reference_size`` predictions of a model version are its reference. They are
kept as columns, not as events: a numeric value costs 8 bytes (``array('d')``, NaN for
missing), a categorical one 4 (``array('i')`` of codes into the column's level table).
Columns are the watched features (those declared in ``features:`` first, then the others
in order of appearance, ``max_features`` in all), the prediction (``<prediction>``) and
the score (``<score>``), unless declared ``ignore``. Names of the other features are
counted, not kept as columns; names in angle brackets are reserved (never a column).

Types: a feature declared ``numeric`` or ``categorical`` has that type from the first
event (:func:`check` refuses a value that contradicts it, so the reference never does);
an undeclared one is numeric if every present reference value is a number, else
categorical. Categorical values become canonical levels (:func:`level`): ``1``, ``1.0``
and ``"1"`` are one level, ``true`` is ``"true"``, and integers are kept exact at any
size, so 9007199254740993 and 9007199254740992 stay two levels. A number cannot hold an
integer beyond +/-2**53 exactly: such a value is refused in a feature that is not
declared categorical (:func:`check` names the feature), never merged with its neighbour.

>>> sample = ReferenceSample(size=3, declared={"code": "categorical"}, max_features=10)
>>> for amount, code in [(1.5, 16), (2.5, 23), (None, 16)]:
...     sample.add({"amount": amount, "code": code}, prediction=1, score=0.9)
>>> sample.complete, [(c.name, c.kind) for c in sample.columns()]
(True, [('code', 'categorical'), ('amount', 'numeric'), ('<prediction>', 'categorical'), ('<score>', 'numeric')])
>>> sample.column("code").values(), sample.column("amount").values().tolist()
(['16', '23', '16'], [1.5, 2.5, nan])
"""

from __future__ import annotations

import math
from array import array

import numpy as np

#: Column names of the prediction and its score, watched like features.
PREDICTION = "<prediction>"
SCORE = "<score>"
#: Largest integer a float64 holds exactly (and every integer below it).
EXACT_INT = 2**53
#: Distinct feature names remembered from the reference (to tell unknown extras later).
MAX_NAMES = 1000

KINDS = ("numeric", "categorical", "ignore")


def is_number(value) -> bool:
    """An int or float from JSON (not a boolean)."""
    return type(value) is float or type(value) is int


def level(value) -> str | None:
    """The categorical level of a JSON value (None: missing); exact for integers."""
    kind = type(value)
    if kind is str:
        return value
    if value is None:
        return None
    if kind is bool:
        return "true" if value else "false"
    if kind is int:
        return str(value)
    if kind is float:
        if value != value:
            return None
        return str(int(value)) if value.is_integer() else repr(value)  # as detectors.binning
    raise TypeError(f"expected a string, number, boolean or null, got {kind.__name__}")


def check(name: str, value, kind: str | None) -> str | None:
    """Why ``value`` cannot be a value of feature ``name`` of type ``kind`` (None:
    undeclared so far), or None if it can."""
    if value is None or kind == "categorical" or kind == "ignore":
        return None
    if type(value) is int and not -EXACT_INT <= value <= EXACT_INT:
        return (f"feature {name!r}: integer {value} is beyond +/-2**53 and cannot be a number "
                "exactly; declare the feature categorical to keep such values as levels")
    if kind == "numeric" and not is_number(value):
        return f"feature {name!r} is numeric; got {type(value).__name__} {str(value)[:40]!r}"
    return None


class Column:
    """One column of the reference: numbers (NaN: missing or not a number) and, once a
    non-number appears, level codes (-1: missing or a number)."""

    __slots__ = ("name", "declared", "numbers", "codes", "levels", "n_missing")

    def __init__(self, name: str, declared: str | None, backfill: int):
        self.name = name
        self.declared = declared
        self.numbers = None if declared == "categorical" else array("d", [math.nan]) * backfill
        self.codes = array("i", [-1]) * backfill if declared == "categorical" else None
        self.levels: dict[str, int] = {}
        self.n_missing = backfill

    def add(self, value) -> None:
        if value is None or (type(value) is float and value != value):
            self.n_missing += 1
            if self.numbers is not None:
                self.numbers.append(math.nan)
            if self.codes is not None:
                self.codes.append(-1)
            return
        if self.numbers is not None and (type(value) is float or type(value) is int):
            self.numbers.append(value)
            if self.codes is not None:
                self.codes.append(-1)
            return
        if self.codes is None:  # the first non-number: codes from here, -1 before
            self.codes = array("i", [-1]) * len(self.numbers)
        if self.numbers is not None:
            self.numbers.append(math.nan)
        key = level(value)
        code = self.levels.get(key)
        if code is None:
            code = self.levels[key] = len(self.levels)
        self.codes.append(code)

    def __len__(self) -> int:
        return len(self.numbers) if self.numbers is not None else len(self.codes)

    @property
    def kind(self) -> str:
        """numeric or categorical (see the module docs)."""
        if self.declared in ("numeric", "categorical"):
            return self.declared
        return "categorical" if self.codes is not None else "numeric"

    def values(self):
        """The column as the tests take it: float64 with NaN (numeric), or levels with
        None for missing (categorical)."""
        if self.kind == "numeric":
            return np.frombuffer(self.numbers, dtype=np.float64).copy()
        names = list(self.levels)
        out = []
        numbers = self.numbers
        for i, code in enumerate(self.codes):
            if code >= 0:
                out.append(names[code])
            elif numbers is not None and numbers[i] == numbers[i]:
                out.append(level(numbers[i]))
            else:
                out.append(None)
        return out

    @property
    def n_present(self) -> int:
        return len(self) - self.n_missing


class ReferenceSample:
    """The reference of one model version, as columns (see the module docs)."""

    def __init__(self, size: int, declared: dict[str, str], max_features: int):
        self.size = size
        self.n = 0
        self.declared = declared
        watched = [name for name, kind in declared.items() if kind != "ignore" and name not in (PREDICTION, SCORE)]
        self._room = max(0, max_features - len(watched))
        self._features: dict[str, Column] = {name: Column(name, declared[name], 0) for name in watched}
        self._extra: dict[str, Column] = {}
        # Every feature name of the reference and the declared ones (up to MAX_NAMES).
        self.names: set[str] = set(list(declared)[:MAX_NAMES])
        self.n_unwatched = 0  # names beyond max_features
        self.too_many_names = False

    @property
    def complete(self) -> bool:
        return self.n >= self.size

    def add(self, features: dict, prediction, score, task: str = "classification") -> None:
        """One (checked) prediction event; ``score`` already reduced to a number or None."""
        n = self.n
        columns = self._features
        for name, value in features.items():
            column = columns.get(name)
            if column is None:
                column = self._new_column(name, n)
                if column is None:
                    continue
            column.add(value)
        for column in columns.values():
            if len(column) <= n:
                column.add(None)  # absent from this event
        extra = self._extra
        if n == 0:
            if self.declared.get(PREDICTION) != "ignore":
                extra[PREDICTION] = Column(PREDICTION, "numeric" if task == "regression" else "categorical", 0)
            if self.declared.get(SCORE) != "ignore":
                extra[SCORE] = Column(SCORE, "numeric", 0)
        if PREDICTION in extra:
            extra[PREDICTION].add(prediction)
        if SCORE in extra:
            extra[SCORE].add(score)
        self.n = n + 1

    def _new_column(self, name: str, backfill: int) -> Column | None:
        if name in self.names:
            return None  # ignored, or beyond max_features
        if len(self.names) >= MAX_NAMES:
            self.too_many_names = True
            return None
        self.names.add(name)
        if name.startswith("<") and name.endswith(">"):
            return None  # reserved for the prediction, the score, ...: not a feature column
        if self._room == 0:
            self.n_unwatched += 1
            return None
        self._room -= 1
        column = self._features[name] = Column(name, self.declared.get(name), backfill)
        return column

    def columns(self) -> list[Column]:
        """Watched features in order (declared first), then prediction and score."""
        return [*self._features.values(), *self._extra.values()]

    def column(self, name: str) -> Column:
        return self._features.get(name) or self._extra[name]
