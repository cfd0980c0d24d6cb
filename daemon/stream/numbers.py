"""A column of numbers kept exactly in few bytes: the reference's store for numeric values
(:class:`Numbers`, used by :mod:`daemon.stream.reference`)."""

from __future__ import annotations

import math
from array import array

import numpy as np


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
        i, at_once = 0, True
        while i < x.size:
            room = self.CHUNK - len(self._buffer)  # >= 1: append flushes on reaching CHUNK
            if room == self.CHUNK and at_once:
                # Whole chunks from here: at once when they leave the form as it is (the
                # usual batch), else one by one below (not tried again: a batch whose
                # chunks change the form one after the other would be tried at each).
                whole = (x.size - i) // self.CHUNK * self.CHUNK
                if whole and self._store_whole(x[i:i + whole]):
                    i += whole
                    continue
                at_once = False
            self._buffer.frombytes(x[i:i + room].tobytes())
            i += room
            if len(self._buffer) >= self.CHUNK:
                self.flush()

    def _store_whole(self, x: np.ndarray) -> bool:
        """Store whole chunks ``x`` (float64, a multiple of :data:`CHUNK` values; the
        buffer empty) in one step if they leave the form as it is (and in the "int" form
        its decimals and integer type), which is then what flushing them chunk by chunk
        leaves: each chunk takes the narrowest form that it and what is kept fit, and a
        form once taken stays, so if all the chunks fit the current one, each did. Else
        store nothing and return False. (The "int" form's checks a chunk at a time cost
        ~20 us each: 4 ms of 50,000 integer values.)"""
        if self.form == "float64":
            self.data.frombytes(x.tobytes())
            return True
        if self.form == "float32":
            with np.errstate(over="ignore"):
                narrow = x.astype(np.float32)
            if not np.array_equal(narrow.astype(np.float64), x, equal_nan=True):
                return False
            self.data.frombytes(narrow.tobytes())
            return True
        split = _split(x)
        if split is None:
            return False
        numbers, negative_zero, v = split
        scale = 10.0 ** self.decimals
        with np.errstate(over="ignore", invalid="ignore"):
            m = np.rint(v * scale)
            if not np.array_equal(m / scale, v):
                return False  # more decimals (or a float form) needed
        wide = max(float(np.abs(m).max()) if m.size else 0.0, self._wide)
        # The current type is the narrowest for what is kept (_append_ints): it stays if
        # the new values fit it too.
        typecode, low, high = next(t for t in self.INTS if t[0] == self.data.typecode)
        if not wide < high:
            return False
        self.data.frombytes(_codes(x.size, numbers, negative_zero, m, low, typecode))
        self._wide = wide
        return True

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
        split = _split(x)
        if split is None:
            return False
        numbers, negative_zero, v = split
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
        self.data.frombytes(_codes(x.size, numbers, negative_zero, m, low, typecode))
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


def _split(x: np.ndarray):
    """(the numbers' mask, the negative zeros' mask, the numbers) of ``x`` (float64; NaN:
    missing), or None if a number is not finite (no integer code holds it)."""
    negative_zero = (x == 0) & np.signbit(x)
    numbers = ~np.isnan(x) & ~negative_zero
    v = x[numbers]
    return (numbers, negative_zero, v) if np.isfinite(v).all() else None


def _codes(size: int, numbers, negative_zero, m: np.ndarray, low: int, typecode: str) -> bytes:
    """The "int" form's codes of ``size`` values, as bytes of ``typecode``: ``m`` (the
    scaled numbers) where ``numbers``, ``low + 1`` for a negative zero, ``low`` (missing)
    elsewhere."""
    codes = np.full(size, low, dtype=np.int64)
    codes[negative_zero] = low + 1
    codes[numbers] = m.astype(np.int64)
    return codes.astype(typecode).tobytes()
