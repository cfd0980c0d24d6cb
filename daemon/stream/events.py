"""Decoding and validating prediction and label events (the hot path).

msgspec decodes and type-checks an event in one pass in C, several times faster than
``json.loads`` followed by checks in Python (measured: bench/daemon.py prints the decode
rate). Anything that is not a valid event raises :class:`BadEvent` with a reason from a
small fixed set, which becomes the dead-letter ``reason`` header and metric label, and a
detail that names the offending field as msgspec writes a path (`` - at
`$.features['age']` ``), also where msgspec cannot: the key in a mapping, the field of a
NaN or Infinity, the field that nests too deep (found by scanning the bad event again).

Numbers are bounded: a magnitude beyond :data:`MAX_MAGNITUDE` (float32's range, about
3.4e38) is refused as ``non_finite``. No model's input or output is that large, and the
error statistics of such numbers (differences, squares, their variances) overflow to
infinity: a regression prediction of -1e308 with a label of 1e308 has an infinite error.
Nesting deeper than the decoder's recursion limit (about 1,000 levels, in fields driftd
does not even read) is refused as ``too_deep``.

>>> p = decode_prediction(b'{"model": "fraud", "id": "p-1", "ts": "2025-11-23T10:00:00Z",'
...                       b' "features": {"amount": 12.5, "country": "DE"}, "prediction": 1}')
>>> p.model, p.id, p.ts, p.features["amount"]
('fraud', 'p-1', 1763892000.0, 12.5)
>>> decode_label(b'{"model": "fraud", "id": "p-1", "ts": 1763892000.5}')
Traceback (most recent call last):
...
daemon.stream.events.BadEvent: missing_field: Object missing required field `label`
"""

from __future__ import annotations

import datetime as dt
import math
import re
import time
from typing import Annotated

import msgspec

#: Every reason an event can be refused for (bounded: these are metric label values).
#: ``internal_error``: handling the event raised an unexpected exception (a bug, logged
#: with its traceback); the event is contained, the loop goes on.
REASONS = (
    "not_json", "not_object", "missing_field", "wrong_type", "non_finite", "too_deep",
    "bad_timestamp", "oversize", "unknown_model", "internal_error",
)

#: Reasons of events the decoder refused whose ``model`` may still be read (:func:`model_of`):
#: a ``ts`` text that is no time (or has no time zone) too, as a number out of bounds is
#: refused with its model known.
DECODE_REASONS = ("missing_field", "wrong_type", "non_finite", "too_deep", "bad_timestamp")

#: Largest magnitude of a number in an event (float32's largest value).
MAX_MAGNITUDE = 3.4028234663852886e38


class BadEvent(Exception):
    """An event that cannot be used; ``reason`` is one of :data:`REASONS`."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


# Checked by msgspec in C while decoding. Integers are checked after decoding
# (_check_int): msgspec bounds only integers that fit in 64 bits.
Number = Annotated[float, msgspec.Meta(ge=-MAX_MAGNITUDE, le=MAX_MAGNITUDE)]
Value = int | Number | str | bool | None  # int first: integers stay exact (daemon.stream.reference)
#: Longest model name, model version and feature name, in characters: each labels metric
#: series (a name of 300 kB in 15 events grew /metrics from 9 kB to 28 MB).
MAX_NAME_LENGTH = 255
#: A model's name: not empty (it is the ``model`` label of every metric of the model).
ModelName = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_NAME_LENGTH)]
Name = Annotated[str, msgspec.Meta(max_length=MAX_NAME_LENGTH)]
#: An event's id: not empty (every event without one would join every other).
EventId = Annotated[str, msgspec.Meta(min_length=1)] | int


class Prediction(msgspec.Struct, gc=False):
    model: ModelName
    id: EventId
    ts: float | str
    features: dict[Name, Value]
    prediction: int | Number | str | bool
    score: Number | dict[str, Number] | None = None
    model_version: Name | int | None = None


class Label(msgspec.Struct, gc=False):
    model: ModelName
    id: EventId
    ts: float | str
    label: int | Number | str | bool


_decoders = {cls: msgspec.json.Decoder(cls) for cls in (Prediction, Label)}


def _decode(cls, raw: bytes | None):
    if not raw:
        raise BadEvent("not_json", "empty message")
    try:
        event = _decoders[cls].decode(raw)
    except msgspec.ValidationError as e:
        # The schema is checked as the object is read: a message that is no JSON at all
        # (an object, then something else) fails the schema first. Not JSON comes first.
        try:
            msgspec.json.decode(raw, type=msgspec.Raw)  # the structure alone
        except msgspec.DecodeError as not_json:
            if "trailing characters" in str(not_json):
                raise BadEvent("not_json", str(not_json)) from None
        except (UnicodeDecodeError, RecursionError):
            pass  # said below, by the reasons of the usual path
        text = _name_the_key(str(e), raw)
        if text.startswith("Object missing required field"):
            raise BadEvent("missing_field", text) from None
        if text.startswith("Number out of range") or re.match(r"Expected `float` [<>]=", text):
            raise BadEvent("non_finite", text) from None
        if text.startswith("Expected `object`") and "- at `$" not in text:
            raise BadEvent("not_object", text) from None
        raise BadEvent("wrong_type", text) from None
    except msgspec.DecodeError as e:
        # Python's json module writes NaN and Infinity, which are not JSON: name them
        # when the parser stopped right at one.
        where = re.search(r"\(byte (\d+)\)", str(e))
        if where and raw[int(where.group(1)):].startswith(_NON_FINITE):
            raise BadEvent("non_finite", "NaN or Infinity where a number is required"
                           + _at(_non_finite_path(raw, int(where.group(1))))) from None
        if str(e) == "Input data was truncated" and (lone := _LONE_SURROGATE.search(raw)):
            # (msgspec reads on for the low half of the pair and meets the end)
            raise BadEvent("not_json", f"a lone UTF-16 surrogate escape {lone.group().decode()!s} (without its "
                                       f"pair) at byte {lone.start()}") from None
        raise BadEvent("not_json", str(e)) from None
    except UnicodeDecodeError as e:
        raise BadEvent("not_json", f"invalid UTF-8 at byte {e.start}") from None
    except RecursionError:
        raise BadEvent("too_deep", "nested deeper than the decoder's recursion limit" + _at(_deepest_field(raw))) from None
    if type(event.id) is int:
        event.id = str(event.id)
    if type(event.ts) is str:
        event.ts = _parse_time(event.ts)
    return event


def _name_the_key(text: str, raw: bytes) -> str:
    """msgspec's path says ``$.features[...]`` for a bad value in a mapping: name the key,
    the first whose value alone does not decode as the event's type would decode it (a
    scan of the event once more: only bad events pay for it)."""
    for field, value_decoder in (("features", _FEATURE_VALUE), ("score", _SCORE_VALUE)):
        marker = f"`$.{field}[...]`"
        if marker not in text:
            continue
        span = next(((a, b) for key, a, b in _members(raw) if key == field), None)
        if span is None:
            continue
        bad = next((key for key, a, b in _members(raw, span[0]) if not _decodes(raw[a:b], value_decoder)), None)
        if bad is not None:
            return text.replace(marker, f"`$.{field}[{bad!r}]`")
    return text


# A value of a mapping field decoded alone, as the event's type decodes it.
_FEATURE_VALUE = msgspec.json.Decoder(Value)
_SCORE_VALUE = msgspec.json.Decoder(Number)
#: How Python's json module writes non-finite numbers (not JSON).
_NON_FINITE = (b"NaN", b"-NaN", b"Infinity", b"-Infinity")
#: What the scans below look at: strings (escapes included), brackets, colons and commas.
_TOKEN = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[\]{}:,]')
_BLANK = re.compile(rb"[ \t\r\n]*")


def _decodes(raw: bytes, decoder) -> bool:
    try:
        decoder.decode(raw)
    except (msgspec.DecodeError, RecursionError):
        return False
    return True


def _members(raw: bytes, start: int = 0):
    """``(key, value start, value end)`` for each member of the JSON object that begins
    at the first non-blank byte from ``start`` (nothing if that is no ``{``). A scan of
    strings and brackets, no decoder: it goes through what the decoder refuses (NaN,
    nesting beyond its limit, numbers beyond its range) and stops at the object's end."""
    start = _BLANK.match(raw, start).end()
    if not raw.startswith(b"{", start):
        return
    depth, pending, key, value_start = 0, None, None, None
    for match in _TOKEN.finditer(raw, start):
        token = match.group()
        if token[0] == 0x22:  # a string
            if depth == 1 and value_start is None:
                pending = token
        elif token in (b"{", b"["):
            depth += 1
        elif token in (b"}", b"]"):
            depth -= 1
            if depth == 0:
                if key is not None:
                    yield key, value_start, match.start()
                return
        elif depth == 1 and token == b":":
            try:
                key = msgspec.json.decode(pending) if pending is not None else None
            except msgspec.DecodeError:
                key = None
            value_start = match.end()
        elif depth == 1 and token == b",":
            if key is not None:
                yield key, value_start, match.start()
            pending, key, value_start = None, None, None
    if key is not None:  # the input ended inside the object
        yield key, value_start, len(raw)


def model_of(raw: bytes | None) -> str | None:
    """The ``model`` string of an event the decoder refused (missing or mistyped fields,
    NaN, nesting too deep), or None: a scan, no decoding of the rest, so that a watched
    model's bad events can be counted as its own.

    >>> model_of(b'{"model": "fraud", "id": 7, "prediction": NaN}'), model_of(b'{"model": 3}'), model_of(b"[1]")
    ('fraud', None, None)
    """
    model = _top_fields(raw, ("model",)).get("model")
    return model if type(model) is str else None


def identity_of(raw: bytes | None) -> tuple[str, str, float | None] | None:
    """``(model, id, ts)`` of an event the decoder refused, as a good event of it would
    have them (an integer id as its string; ts None when not a number or RFC 3339 time),
    or None when the model or the id cannot be read: a scan, as :func:`model_of`, so that
    a refused prediction's label need not wait for it.

    >>> identity_of(b'{"model": "fraud", "id": 7, "ts": 1763000000.5, "prediction": [1]}')
    ('fraud', '7', 1763000000.5)
    >>> identity_of(b'{"model": "fraud", "id": "p-1", "ts": "2025-11-20T10:00:00Z", "features": NaN}')
    ('fraud', 'p-1', 1763632800.0)
    >>> identity_of(b'{"model": "fraud", "id": [7]}') is None, identity_of(b'{"model": "m", "id": 1, "ts": 1' + b'0' * 400 + b'}')
    (True, ('m', '1', None))
    """
    fields = _top_fields(raw, ("model", "id", "ts"))
    model, id, ts = fields.get("model"), fields.get("id"), fields.get("ts")
    if type(model) is not str or not model or type(id) not in (str, int):
        return None
    if type(ts) is str:
        try:
            ts = _parse_time(ts)
        except BadEvent:
            ts = None
    elif type(ts) is int and abs(ts) <= MAX_MAGNITUDE:
        ts = float(ts)
    elif type(ts) is not float or not math.isfinite(ts):
        ts = None  # (an integer of 400 digits has no float)
    return model, str(id), ts


def _top_fields(raw: bytes | None, names: tuple) -> dict:
    """``name -> value`` of those of ``names`` that are top-level members of the JSON
    object ``raw`` with a value that decodes (a scan, see :func:`_members`)."""
    found = {}
    if not raw:
        return found
    for key, start, end in _members(raw):
        if key in names and key not in found:
            try:
                found[key] = msgspec.json.decode(raw[start:end])
            except (msgspec.DecodeError, RecursionError):
                continue
            if len(found) == len(names):
                break
    return found


def _at(path: str | None) -> str:
    """The suffix naming the field, as msgspec writes it (`` - at `$.features['age']` ``)."""
    return f" - at `{path}`" if path else ""


def _non_finite_path(raw: bytes, offset: int) -> str | None:
    """The field (and key, in ``features`` or ``score``) holding the byte at ``offset``."""
    for key, a, b in _members(raw):
        if a <= offset < b:
            inner = next((k for k, c, d in _members(raw, a) if c <= offset < d), None)
            return f"$.{key}[{inner!r}]" if inner is not None else f"$.{key}"
    return None


def _deepest_field(raw: bytes, limit: int = 900) -> str | None:
    """The top-level field whose value nests deepest: the first to reach ``limit`` levels
    (the decoder's recursion limit is about 1,000; the scan stops there), else the deepest."""
    depth, key, deepest, name = 0, None, 0, None
    for match in _TOKEN.finditer(raw):
        token = match.group()
        if token[0] == 0x22:  # at depth 1 the last string before a nested value is its key
            if depth == 1:
                key = token
        elif token in (b"{", b"["):
            depth += 1
            if depth > deepest:
                deepest, name = depth, key
                if depth >= limit:
                    break
        elif token in (b"}", b"]"):
            depth -= 1
    if deepest < 2:
        return None
    if name is None:
        return "$"
    try:
        return f"$.{msgspec.json.decode(name)}"
    except msgspec.DecodeError:
        return None


def decode_prediction(raw: bytes) -> Prediction:
    event = _decode(Prediction, raw)
    _check_int(event.prediction, "prediction")
    if event.model_version is not None:
        event.model_version = str(event.model_version)
    return event


def decode_label(raw: bytes) -> Label:
    event = _decode(Label, raw)
    _check_int(event.label, "label")
    return event


def _check_int(value, what: str) -> None:
    # JSON integers have no size limit; one beyond MAX_MAGNITUDE would break every
    # computation downstream (float() of a 400-digit integer raises OverflowError).
    if type(value) is int and not -MAX_MAGNITUDE <= value <= MAX_MAGNITUDE:
        raise BadEvent("non_finite", f"{what} is an integer beyond ±{MAX_MAGNITUDE:.3g}")


#: A high surrogate's escape not followed by another escape (its low half).
_LONE_SURROGATE = re.compile(rb"\\u[dD][89abAB][0-9a-fA-F]{2}(?!\\u)")


#: The seconds of an RFC 3339 time, when they are a leap second's 60.
_LEAP_SECOND = re.compile(r"([T ]\d\d:\d\d:)60")


def _parse_time(text: str) -> float:
    """Epoch seconds of an RFC 3339 time (and the other ISO 8601 forms of
    ``datetime.fromisoformat``). RFC 3339 allows ``t`` and ``z`` in lower case, and a leap
    second (``23:59:60``), which Python's datetime has not: read as the second after :59,
    the next minute's first, as POSIX time counts it."""
    try:
        if not text.isprintable():  # (fromisoformat ignored a trailing NUL)
            raise ValueError
        upper = text.upper()
        leap = _LEAP_SECOND.search(upper)
        if leap:
            upper = f"{upper[:leap.start()]}{leap.group(1)}59{upper[leap.end():]}"
        when = dt.datetime.fromisoformat(upper)
    except ValueError:
        raise BadEvent("bad_timestamp", f"ts {text!r} is neither epoch seconds nor RFC 3339") from None
    if when.tzinfo is None:
        raise BadEvent("bad_timestamp", f"ts {text!r} has no time zone")
    return when.timestamp() + (1 if leap else 0)


class TimeBounds:
    """Bounds of an event's time (``join.earliest_event_time``,
    ``join.max_future_skew_seconds`` of ``join``, a :class:`~daemon.config.JoinConfig`), for
    one batch: :meth:`check` raises :class:`BadEvent` (``bad_timestamp``) for a time out of them.

    The future bound is measured from the record's Kafka timestamp (when it was produced,
    or appended) when it has one and that is not later than the wall clock, else from the
    wall clock: replaying old records later makes the same decisions, and no producer
    clock ahead of ours loosens the bound."""

    def __init__(self, join):
        self.earliest = join.earliest_event_time
        self.skew = join.max_future_skew_seconds
        self.now = time.time()
        self.latest = self.now + self.skew

    def check(self, ts: float, record) -> None:
        if ts < self.earliest:
            raise BadEvent("bad_timestamp", f"ts {ts!r} is before {_iso(self.earliest)} (join.earliest_event_time)")
        produced = record.timestamp  # milliseconds; -1 or None: none
        if ts > self.latest or (produced is not None and produced > 0 and ts > produced / 1000 + self.skew):
            # The record's time when it has one (the same at every reading); not the wall
            # clock's, which would make the detail of a replayed file differ at every run.
            when = (f"was produced or read ({_iso(min(self.now, produced / 1000))})" if produced is not None and produced > 0
                    else "was read (the wall clock)")
            raise BadEvent("bad_timestamp", (
                f"ts {ts!r} is more than join.max_future_skew_seconds ({self.skew:g}) ahead of when the record {when}"
                + ("; milliseconds instead of seconds?" if ts > 1e11 else "; a producer clock ahead?")))


def _iso(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")
