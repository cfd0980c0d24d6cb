"""A model's reference sample, collected column by column, and the types of its columns.

The first ``reference_size`` predictions of a model version are its reference. They are
kept as columns, not as events, exactly and compactly: a numeric value costs 1, 2 or 4
bytes when every value of its column so far has few decimals (decimal-scaled integers) or
is a float32, else 8 (:class:`Numbers`); a categorical one 1 to 4 (codes into the column's
level table).
Columns are the watched features (those declared in ``features:`` first, then the others
in order of appearance, ``max_features`` in all), the prediction (``<prediction>``) and
the score (``<score>``), unless declared ``ignore``. Names of the other features are
counted, not kept as columns; names in angle brackets are reserved, and the empty name
is none (never a column).

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
import operator
from array import array

import numpy as np

from daemon.stream.numbers import Numbers
from detectors.binning import Tallied

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


def feature_values(features: list[dict], names: list) -> dict:
    """``name -> its value in each of features`` (a list of the events' length, None
    where an event lacks it) for each of ``names``. The usual batch, every event with
    every name, is read a name at a time in C (``map`` of an ``itemgetter``): measured on
    batches of 5,000 events of 3 to 100 features, faster than one ``itemgetter`` of all
    the names per event and a transpose (``zip(*rows)``, a step of 5,000 iterators a value).

    >>> feature_values([{"a": 1, "b": "x"}, {"a": 2, "b": None}], ["a", "b"])
    {'a': [1, 2], 'b': ['x', None]}
    >>> feature_values([{"a": 1}, {"a": 2, "b": "y"}], ["a", "b"])
    {'a': [1, 2], 'b': [None, 'y']}
    """
    return {name: values_of(features, name) for name in names}


def values_of(features: list[dict], name: str) -> list:
    """Feature ``name``'s value in each of ``features`` (None where an event lacks it), in
    C (``map`` of an ``itemgetter``) when every event has it.

    >>> values_of([{"a": 1}, {"b": 2}], "a")
    [1, None]
    """
    try:
        return list(map(operator.itemgetter(name), features))
    except KeyError:  # an event without it: looked up with a default
        return [f.get(name) for f in features]


#: Types of values :meth:`Column.add_many` takes by numpy: into numbers, into level codes.
_NUMBERS = frozenset({int, float, type(None)})
_LEVELS = frozenset({str, int, float, type(None)})
_MISSING = frozenset({type(None)})


class Column:
    """One column of the reference: numbers (:class:`Numbers`; NaN: missing or not a
    number) and, once a non-number appears, level codes (-1: missing or a number; int8,
    widened to int16 or int32 as levels come)."""

    __slots__ = ("name", "declared", "numbers", "codes", "levels", "n_missing")

    def __init__(self, name: str, declared: str | None, backfill: int):
        self.name = name
        self.declared = declared
        self.numbers = None if declared == "categorical" else Numbers(backfill)
        self.codes = array("b", [-1]) * backfill if declared == "categorical" else None
        self.levels: dict[str, int] = {}
        self.n_missing = backfill

    def __setstate__(self, state) -> None:
        slots = state[1] if isinstance(state, tuple) else state
        for name, value in slots.items():
            setattr(self, name, value)
        if isinstance(self.numbers, array):  # saved before Numbers: float64 values
            numbers = Numbers()
            numbers.form, numbers.data = "float64", self.numbers
            self.numbers = numbers

    def add(self, value) -> None:
        if value is None or (type(value) is float and value != value):
            self.n_missing += 1
            if self.numbers is not None:
                self.numbers.append_missing()
            if self.codes is not None:
                self.codes.append(-1)
            return
        if self.numbers is not None and (type(value) is float or type(value) is int):
            self.numbers.append(value)
            if self.codes is not None:
                self.codes.append(-1)
            return
        if self.codes is None:  # the first non-number: codes from here, -1 before
            self.codes = array("b", [-1]) * len(self.numbers)
        if self.numbers is not None:
            self.numbers.append_missing()
        key = level(value)
        code = self.levels.get(key)
        if code is None:
            code = self.levels[key] = len(self.levels)
            if code == 2 ** (8 * self.codes.itemsize - 1) - 1:  # the next would not fit
                self.codes = array("h" if self.codes.itemsize == 1 else "i", self.codes)
        self.codes.append(code)

    def add_many(self, values: list) -> None:
        """:meth:`add` for each of ``values`` (any length), in order, leaving the same state
        (values, forms, typecodes, levels and their order, ``n_missing``).

        Two cases go by numpy, the others value by value: a column of numbers only (no
        codes) given only ints, floats and None; a declared categorical one given only
        strings, ints, floats and None (not booleans: ``True == 1`` as a dict key, but they
        are two levels). Errors: those of :meth:`add` (TypeError: a value that is no level;
        OverflowError: an int too large for a float); the column may then be partly updated."""
        kinds = set(map(type, values))
        if self.codes is None and kinds <= _NUMBERS:
            # None -> NaN; ints rounded as float() does. (Nones alone, a model without
            # scores: numpy converts them one by one, several times slower than this.)
            x = np.full(len(values), math.nan) if kinds == _MISSING else np.array(values, dtype=np.float64)
            missing = np.isnan(x)
            n_missing = int(np.count_nonzero(missing))
            if n_missing:
                x[missing] = math.nan  # add keeps every missing value as this NaN (not its payload)
                self.n_missing += n_missing
            self.numbers.extend(x)
            return
        if self.numbers is None and kinds <= _LEVELS:
            # One level look-up per distinct value. Values equal as dict keys (1 and 1.0, 0
            # and -0.0) have one level, so sharing a key is harmless; each NaN object is a
            # key of its own (found by identity), missing.
            index = dict.fromkeys(values)
            levels = self.levels
            for value in index:
                key = level(value)
                if key is None:
                    index[value] = -1
                    continue
                code = levels.get(key)
                if code is None:
                    code = levels[key] = len(levels)
                index[value] = code
            # add widens the codes when a level's code reaches the type's maximum.
            typecode = self.codes.typecode
            top = len(levels) - 1
            if typecode == "b" and top >= 2**7 - 1:
                typecode = "h"
            if typecode == "h" and top >= 2**15 - 1:
                typecode = "i"
            if typecode != self.codes.typecode:
                self.codes = array(typecode, self.codes)
            codes = np.fromiter(map(index.__getitem__, values), dtype=typecode, count=len(values))
            self.n_missing += int(np.count_nonzero(codes == -1))
            self.codes.frombytes(codes.tobytes())
            return
        for value in values:
            self.add(value)

    def __len__(self) -> int:
        return len(self.numbers) if self.numbers is not None else len(self.codes)

    @property
    def kind(self) -> str:
        """numeric or categorical (see the module docs)."""
        if self.declared in ("numeric", "categorical"):
            return self.declared
        return "categorical" if self.codes is not None else "numeric"

    def mostly_numbers(self) -> tuple[int, int, list] | None:
        """For a column typed categorical by its values (not declared) whose present
        values are mostly numbers: (how many are numbers, how many are present, up to 3 of
        its other levels), the case of a numeric feature with a few stray strings ("n/a"),
        which types it categorical; else None."""
        if self.declared is not None or self.codes is None or self.numbers is None:
            return None
        codes = np.frombuffer(self.codes, dtype=self.codes.typecode)
        strings = int(np.count_nonzero(codes != -1))
        numbers = len(codes) - self.n_missing - strings
        if numbers <= strings:
            return None
        return numbers, numbers + strings, list(self.levels)[:3]

    @property
    def nbytes(self) -> int:
        """Bytes of the kept values (numbers and codes)."""
        return (0 if self.numbers is None else self.numbers.nbytes) + \
            (0 if self.codes is None else len(self.codes) * self.codes.itemsize)

    def values(self):
        """The column as the tests take it: float64 with NaN (numeric), or levels with
        None for missing (categorical: a list; of a column of strings only, a
        :class:`~detectors.binning.Tallied` list, its tally counted from the codes)."""
        if self.kind == "numeric":
            return self.numbers.values()
        # By numpy from the codes (the last entry, None, is code -1's) ...
        codes = np.frombuffer(self.codes, dtype=self.codes.typecode)
        by_code = np.array([*self.levels, None], dtype=object)[codes]
        if self.numbers is None:
            # Strings only: their tally too, from the codes, for the tests' bins (each
            # categorical test counts the values otherwise, a pass over them each).
            return Tallied(by_code, _code_tally(codes, list(self.levels)))
        out = by_code.tolist()
        if self.numbers is not None:  # ... then the numbers' levels where they have no code
            numbers = self.numbers.values()
            for i in np.flatnonzero((codes < 0) & ~np.isnan(numbers)).tolist():
                out[i] = level(float(numbers[i]))
        return out

    @property
    def n_present(self) -> int:
        return len(self) - self.n_missing


def _code_tally(codes: np.ndarray, levels: list) -> list[tuple]:
    """``(level, count)`` of every level present in a column of strings, then ``(None,
    count)`` of its missing values if any: ``codes``, the column's codes (-1: missing,
    else an index into ``levels``, distinct strings)."""
    counts = np.bincount(codes.astype(np.intp) + 1, minlength=len(levels) + 1).tolist()
    tally = [(name, n) for name, n in zip(levels, counts[1:]) if n]
    return tally + [(None, counts[0])] if counts[0] else tally


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

    def add_many(self, features: list[dict], predictions: list, scores: list, task: str = "classification") -> None:
        """:meth:`add` for each event of a batch, in order, mostly a column at a time: the
        sample is then exactly what the calls one by one leave (pickled, the same bytes).

        ``features``: one dict per event; ``predictions`` and ``scores``: one value per
        event (scores already reduced to a number or None), all three of the same length
        (shape ``(n,)``, ``n`` >= 0; an empty batch changes nothing). ``task`` as for
        :meth:`add`. As :meth:`add`, the size is not checked: to complete the sample and no
        more, pass at most ``size - n`` events. Errors: those of :meth:`add`; the sample is
        then partly updated (as by :meth:`add`), not usable.

        >>> one, many = (ReferenceSample(5, {"code": "categorical"}, 10) for _ in range(2))
        >>> batch = [{"code": 16, "amount": 1.5}, {"code": "16"}, {"amount": None, "new": "x"},
        ...          {"code": None, "new": 2}, {"amount": -0.0}]
        >>> for f in batch:
        ...     one.add(f, prediction=1, score=None)
        >>> many.add_many(batch, [1] * 5, [None] * 5)
        >>> import pickle
        >>> pickle.dumps(one) == pickle.dumps(many), many.complete, many.column("new").values()
        (True, True, [None, None, 'x', '2', None])
        """
        if not features:
            return
        # An event bringing a name not seen yet goes through add: the name's bookkeeping,
        # a new column backfilled with the events before it. So does the first event of
        # the sample (it makes the prediction and score columns). After the last of those
        # events every name of the batch is known, and the rest goes a column at a time.
        known = self._features.keys() | self.names
        head = 1 if self.n == 0 else 0  # events to add one by one
        if not set().union(*features) <= known:
            last = next(i for i in reversed(range(len(features))) if not features[i].keys() <= known)
            head = max(head, last + 1)
        for i in range(head):
            self.add(features[i], predictions[i], scores[i], task)
        if head == len(features):
            return
        rest = features[head:] if head else features
        columns = self._features
        for name, values in feature_values(rest, list(columns)).items():
            columns[name].add_many(values)  # absent: None, as add does
        extra = self._extra
        if PREDICTION in extra:
            extra[PREDICTION].add_many(list(predictions[head:]))
        if SCORE in extra:
            extra[SCORE].add_many(list(scores[head:]))
        self.n += len(rest)

    def _new_column(self, name: str, backfill: int) -> Column | None:
        if name in self.names:
            return None  # ignored, or beyond max_features
        if len(self.names) >= MAX_NAMES:
            self.too_many_names = True
            return None
        self.names.add(name)
        if not name or (name.startswith("<") and name.endswith(">")):
            # Reserved for the prediction, the score, ...; and "" is no name (an empty
            # Prometheus label is the same as none): not a feature column.
            return None
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
