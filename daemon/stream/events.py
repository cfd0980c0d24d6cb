"""Decoding and validating prediction and label events (the hot path).

msgspec decodes and type-checks an event in one pass in C, several times faster than
``json.loads`` followed by checks in Python (measured: bench/daemon.py prints the decode
rate). Anything that is not a valid event raises :class:`BadEvent` with a reason from a
small fixed set, which becomes the dead-letter ``reason`` header and metric label.

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
import re
from typing import Annotated

import msgspec

#: Every reason an event can be refused for (bounded: these are metric label values).
#: ``internal_error``: handling the event raised an unexpected exception (a bug, logged
#: with its traceback); the event is contained, the loop goes on.
REASONS = (
    "not_json", "not_object", "missing_field", "wrong_type", "non_finite", "too_deep",
    "bad_timestamp", "oversize", "unknown_model", "internal_error",
)

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


class Prediction(msgspec.Struct, gc=False):
    model: str
    id: str | int
    ts: float | str
    features: dict[str, Value]
    prediction: int | Number | str | bool
    score: Number | dict[str, Number] | None = None
    model_version: str | int | None = None


class Label(msgspec.Struct, gc=False):
    model: str
    id: str | int
    ts: float | str
    label: int | Number | str | bool


_decoders = {cls: msgspec.json.Decoder(cls) for cls in (Prediction, Label)}


def _decode(cls, raw: bytes | None):
    if not raw:
        raise BadEvent("not_json", "empty message")
    try:
        event = _decoders[cls].decode(raw)
    except msgspec.ValidationError as e:
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
        if where and raw[int(where.group(1)):].startswith((b"NaN", b"-NaN", b"Infinity", b"-Infinity")):
            raise BadEvent("non_finite", "NaN or Infinity where a number is required") from None
        raise BadEvent("not_json", str(e)) from None
    except UnicodeDecodeError as e:
        raise BadEvent("not_json", f"invalid UTF-8 at byte {e.start}") from None
    except RecursionError:
        raise BadEvent("too_deep", "nested deeper than the decoder's recursion limit") from None
    if type(event.id) is int:
        event.id = str(event.id)
    if type(event.ts) is str:
        event.ts = _parse_time(event.ts)
    return event


def _name_the_key(text: str, raw: bytes) -> str:
    """msgspec's path says ``$.features[...]`` for a bad value in a mapping: name the key
    (decoding the event once more, untyped: only bad events pay for it)."""
    for field in ("features", "score"):
        marker = f"`$.{field}[...]`"
        if marker not in text:
            continue
        try:
            mapping = msgspec.json.decode(raw).get(field)
        except (msgspec.DecodeError, RecursionError, AttributeError):
            return text
        if isinstance(mapping, dict):
            bad = next((k for k, v in mapping.items() if not _plain_value(v, field)), None)
            if bad is not None:
                return text.replace(marker, f"`$.{field}[{bad!r}]`")
    return text


def _plain_value(value, field: str) -> bool:
    if isinstance(value, float):
        return -MAX_MAGNITUDE <= value <= MAX_MAGNITUDE
    if field == "score":
        return isinstance(value, int) and not isinstance(value, bool)
    return value is None or isinstance(value, (bool, int, str))


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


def _parse_time(text: str) -> float:
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError:
        raise BadEvent("bad_timestamp", f"ts {text!r} is neither epoch seconds nor RFC 3339") from None
    if when.tzinfo is None:
        raise BadEvent("bad_timestamp", f"ts {text!r} has no time zone")
    return when.timestamp()
