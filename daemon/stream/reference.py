"""A model's reference sample, collected column by column, and the types of its columns.

The first ``reference_size`` predictions of a model version are its reference. They are
kept as columns, not as events, exactly and compactly: a numeric value costs 1, 2 or 4
bytes when every value of its column so far has few decimals (decimal-scaled integers) or
is a float32, else 8 (:class:`Numbers`); a categorical one 1 to 4 (codes into the column's
level table).
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


class Numbers:
    """A column of numbers (NaN: missing), kept exactly in few bytes.

    The values of a JSON stream usually have few decimals (``12.5``, ``0.0731``) or fit a
    float32 (a model's own float32 features): each such column costs 1, 2 or 4 bytes a value
    instead of 8. Forms, from the most compact, chosen so far by every value seen:

    - ``"int"``: decimal-scaled integers ``m`` of ``decimals`` digits (``x == m / 10**decimals``
      exactly, for a float64 ``x``: the division is correctly rounded, so a value read from
      ``"12.5"`` comes back bit for bit), as int8, int16 or int32 (``typecode``), the
      type's least value for a missing one, the next for ``-0.0`` (``round(-0.004, 2)``);
    - ``"float32"``: every value is a float32 exactly;
    - ``"float64"``: any other value (full-precision floats).

    Values are appended to a small float64 buffer (:data:`CHUNK` values) and moved into the
    store a chunk at a time, checked with numpy (a few tens of ns a value). A chunk the
    current form cannot hold exactly moves the column to the next form that can (more
    decimals or a wider integer first, then float32, then float64), converting what is
    kept; never back. :meth:`values` is therefore always exactly the float64 values fed
    (the sign of a zero included), and what is built from them does not depend on the form.

    >>> for fed in ([0.5, 0.25, None, -1], [1.5, 2.25, 300], [0.5, 0.10000000149011612], [0.1 + 0.2]):
    ...     numbers = Numbers()
    ...     for x in fed:
    ...         numbers.append(x)
    ...     numbers.flush()
    ...     print(numbers.form, numbers.typecode, numbers.decimals, numbers.nbytes, numbers.values().tolist())
    int b 2 4 [0.5, 0.25, nan, -1.0]
    int h 2 6 [1.5, 2.25, 300.0]
    float32 f 0 8 [0.5, 0.10000000149011612]
    float64 d 0 8 [0.30000000000000004]
    """

    __slots__ = ("data", "form", "decimals", "_low", "_buffer", "_wide")

    #: Most decimals of the "int" form (10**9 is a float64 exactly; more would not fit int32).
    MAX_DECIMALS = 9
    #: Integer typecodes by width, with their ranges (the least value is "missing", the
    #: next ``-0.0``).
    INTS = (("b", -2**7, 2**7 - 1), ("h", -2**15, 2**15 - 1), ("i", -2**31, 2**31 - 1))
    #: Values buffered before they are moved into the store.
    CHUNK = 256

    def __init__(self, missing: int = 0):
        self.form = "int"
        self.decimals = 0
        self.data = array("b", [-128]) * missing
        self._low = -128
        self._wide = 0.0  # the largest |m| stored
        self._buffer = array("d")

    @property
    def typecode(self) -> str:
        return self.data.typecode

    @property
    def nbytes(self) -> int:
        return len(self.data) * self.data.itemsize + len(self._buffer) * 8

    def __len__(self) -> int:
        return len(self.data) + len(self._buffer)

    def append(self, x) -> None:
        """Append a number (int or float; None or NaN: missing)."""
        buffer = self._buffer
        try:
            buffer.append(x)
        except TypeError:
            if x is not None:
                raise
            buffer.append(math.nan)
        if len(buffer) >= self.CHUNK:
            self.flush()

    def append_missing(self) -> None:
        buffer = self._buffer
        buffer.append(math.nan)
        if len(buffer) >= self.CHUNK:
            self.flush()

    def extend(self, x: np.ndarray) -> None:
        """:meth:`append` for each value of ``x`` (a float64 array, shape ``(n,)``; NaN:
        missing), in order, at numpy's speed: the same buffer, flushed at the same points.
        Where a chunk ends matters: the form is chosen a chunk at a time."""
        i = 0
        while i < x.size:
            room = self.CHUNK - len(self._buffer)  # >= 1: append flushes on reaching CHUNK
            self._buffer.frombytes(x[i:i + room].tobytes())
            i += room
            if len(self._buffer) >= self.CHUNK:
                self.flush()

    def flush(self) -> None:
        """Move the buffered values into the store."""
        if not self._buffer:
            return
        x = np.array(self._buffer, dtype=np.float64)
        self._buffer = array("d")
        if self.form == "int":
            if self._append_ints(x):
                return
            self._to_float(x)
        elif self.form == "float32":
            with np.errstate(over="ignore"):
                narrow = x.astype(np.float32)
            if np.array_equal(narrow.astype(np.float64), x, equal_nan=True):
                self.data.frombytes(narrow.tobytes())
            else:
                self.data = array("d", self._stored().tobytes())
                self.form = "float64"
                self.data.frombytes(x.tobytes())
        else:
            self.data.frombytes(x.tobytes())

    def _append_ints(self, x: np.ndarray) -> bool:
        """Append ``x`` as decimal-scaled integers (more decimals or a wider type if it
        needs them), or return False if it cannot be."""
        present = ~np.isnan(x)
        negative_zero = (x == 0) & np.signbit(x)
        numbers = present & ~negative_zero
        v = x[numbers]
        if not np.isfinite(v).all():
            return False
        with np.errstate(over="ignore", invalid="ignore"):
            for decimals in range(self.decimals, self.MAX_DECIMALS + 1):
                scale = 10.0 ** decimals
                m = np.rint(v * scale)
                if np.array_equal(m / scale, v):
                    break
            else:
                return False
        shift = 10 ** (decimals - self.decimals)
        wide = max(float(np.abs(m).max()) if m.size else 0.0, self._wide * shift)
        for typecode, low, high in self.INTS:
            if wide < high:
                break
        else:
            return False  # more decimals would only make it wider
        if typecode != self.data.typecode or shift != 1:
            kept = np.frombuffer(self.data, dtype=self.data.typecode).astype(np.int64)
            old = np.where(kept == self._low, low, np.where(kept == self._low + 1, low + 1, kept * shift))
            self.data = array(typecode, old.astype(typecode).tobytes())
        codes = np.full(x.size, low, dtype=np.int64)
        codes[negative_zero] = low + 1
        codes[numbers] = m.astype(np.int64)
        self.data.frombytes(codes.astype(typecode).tobytes())
        self.decimals, self._low, self._wide = decimals, low, wide
        return True

    def _to_float(self, x: np.ndarray) -> None:
        """Leave the "int" form: float32 if what is kept and ``x`` all are, else float64."""
        values = np.concatenate([self._stored(), x])
        with np.errstate(over="ignore"):
            narrow = values.astype(np.float32)
        self.decimals = 0
        if np.array_equal(narrow.astype(np.float64), values, equal_nan=True):
            self.form, self.data = "float32", array("f", narrow.tobytes())
        else:
            self.form, self.data = "float64", array("d", values.tobytes())

    def _stored(self) -> np.ndarray:
        """The values moved into the store, as float64."""
        raw = np.frombuffer(self.data, dtype=self.data.typecode)
        if self.form != "int":
            return raw.astype(np.float64)
        out = raw.astype(np.float64)
        if self.decimals:
            out /= 10.0 ** self.decimals
        out[raw == self._low] = np.nan
        out[raw == self._low + 1] = -0.0
        return out

    def values(self) -> np.ndarray:
        """The values as float64, NaN where missing (a new array)."""
        stored = self._stored()
        if not self._buffer:
            return stored
        return np.concatenate([stored, np.array(self._buffer, dtype=np.float64)])


#: Types of values :meth:`Column.add_many` takes by numpy: into numbers, into level codes.
_NUMBERS = frozenset({int, float, type(None)})
_LEVELS = frozenset({str, int, float, type(None)})


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
            x = np.array(values, dtype=np.float64)  # None -> NaN; ints rounded as float() does
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

    @property
    def nbytes(self) -> int:
        """Bytes of the kept values (numbers and codes)."""
        return (0 if self.numbers is None else self.numbers.nbytes) + \
            (0 if self.codes is None else len(self.codes) * self.codes.itemsize)

    def values(self):
        """The column as the tests take it: float64 with NaN (numeric), or levels with
        None for missing (categorical)."""
        if self.kind == "numeric":
            return self.numbers.values()
        names = list(self.levels)
        out = []
        numbers = None if self.numbers is None else self.numbers.values().tolist()
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
        for name, column in self._features.items():
            column.add_many([f.get(name) for f in rest])  # absent: None, as add does
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
