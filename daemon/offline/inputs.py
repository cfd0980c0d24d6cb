"""Reading prediction and label events from files: JSON Lines, CSV and Parquet.

Every row becomes the bytes of one event as it would travel on Kafka (the JSON object of
the README's event format), so that replay decodes and checks it with the daemon's own
code (:mod:`daemon.stream.events`): a bad row is refused for the same reason, with the
same detail, as the daemon would refuse it.

Formats (by the file's extension: ``.jsonl``/``.ndjson``/``.json``, ``.csv``, ``.parquet``/``.pq``):

- **JSON Lines**: one event object a line, exactly as on the topics. Blank lines are skipped
  (counted: ``driftd replay`` says how many).
- **CSV** (stdlib :mod:`csv`, a header row): columns ``model``, ``id``, ``ts``, then
  ``prediction`` (with ``score`` and ``model_version`` if any) or ``label``. Features
  either as one column per feature named ``feature.<name>`` or as one ``features``
  column holding a JSON object (both may be given; the ``feature.`` columns win). A
  ``score`` cell is a number or a JSON object of per-class scores. Cells are read as
  JSON scalars where they parse as one (``12.5``, ``3``, ``true``, ``null``), else as
  strings; an empty cell is a missing value (the field is left out; a ``feature.`` column's
  is ``null``), and so is a NaN as writers spell it (``nan``, ``NaN``). To keep a code like ``007`` a string, quote it in the ``features`` JSON.
  An infinity as writers spell it (``inf``, ``-inf``, ``Infinity``, any case) or a number
  beyond float's range (``1e400``) is a non-finite number, not a string: the row is refused
  as ``non_finite`` naming the field, as the same event in JSON Lines (:data:`INF_CELLS`).
  Inside the ``features`` or ``score`` JSON, NaN and infinities are refused the same way.
- **Parquet** (needs the ``parquet`` extra, pyarrow): the same columns as
  CSV, with native types; ``features`` may also be a struct or map column, ``ts`` a
  timestamp column (a naive one is read as UTC). A float NaN is a missing value (in a
  ``features`` struct or map too), an infinity a ``non_finite`` dead letter.

Kind: a row is a label if it has a ``label`` field and no ``prediction`` field, and a
prediction if it has ``prediction`` and no ``label``. A row with both (an evaluation
table: each prediction with its outcome) is read as the prediction followed by its label
(``model``, ``id``, ``ts`` and ``label`` of the row). Rows of files given with
``--labels`` are labels whatever their fields.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import logging
import math
import os
from dataclasses import dataclass
from typing import Any, Iterator

import msgspec

PARQUET_EXTRA = "pip install -e '.[parquet]' in driftd's checkout"
EVENT_COLUMNS = ("model", "id", "ts", "prediction", "score", "model_version", "label")

log = logging.getLogger("driftd.offline.inputs")


class InputError(Exception):
    """A file that cannot be read at all (unknown format, missing reader, unreadable)."""


@dataclass(slots=True)
class Item:
    """One row of an input file: where it is, what it is, and its event bytes.

    ``line``: 1-based line (JSONL, CSV: the row's first physical line) or row number
    (Parquet). ``kind``: "prediction" or "label". ``model``: the model name if the row
    names one as a string, else None. ``ts``: event time in epoch seconds if readable,
    else None (used only to merge several files in event-time order).
    """

    path: str
    line: int
    kind: str
    model: str | None
    ts: float | None
    value: bytes


class _Route(msgspec.Struct):
    """The fields replay routes an event by (the rest is decoded by the daemon's code)."""

    model: Any = None
    ts: Any = None
    label: Any = msgspec.UNSET
    prediction: Any = msgspec.UNSET


_route = msgspec.json.Decoder(_Route)
_encode = msgspec.json.Encoder().encode


def _number(text: str):
    """A JSON float; one beyond float's range (``1e400``) kept as its text: msgspec would
    encode the infinity as ``null`` (a missing value), the daemon's decoder refuses the text
    as ``non_finite``, naming the field, as it refuses it in a JSON Lines event."""
    value = float(text)
    return value if math.isfinite(value) else msgspec.Raw(text.encode())


def _constant(name: str) -> msgspec.Raw:
    """``NaN``, ``Infinity``, ``-Infinity`` (Python's json writes them) kept as they are, for
    the daemon's decoder to refuse as ``non_finite``."""
    return msgspec.Raw(name.encode())


def _integer(text: str):
    """A JSON integer; one too long for Python to read (thousands of digits) kept as its
    text, for the daemon's decoder to refuse as ``wrong_type``, naming the field."""
    try:
        return int(text)
    except ValueError:
        return msgspec.Raw(text.encode())


def _json(text):
    """``json.loads`` keeping non-finite numbers and integers too long to read as their
    text (:func:`_number`, :func:`_integer`)."""
    return json.loads(text, parse_float=_number, parse_constant=_constant, parse_int=_integer)


_object_decoder = msgspec.json.Decoder(float_hook=_number)


def _object(raw: bytes) -> dict | None:
    """The event object of ``raw``, its non-finite numbers kept as their text (also NaN and
    Infinity, which are not JSON); None if it is not a JSON object."""
    try:
        row = _object_decoder.decode(raw)
    except msgspec.DecodeError:
        try:
            row = _json(raw)
        except (ValueError, RecursionError):
            return None
    except RecursionError:
        return None
    return row if isinstance(row, dict) else None


def format_of(path: str) -> str:
    """"jsonl", "csv" or "parquet" from the file name; :class:`InputError` otherwise."""
    name = path.lower()
    for suffix in (".gz",):
        if name.endswith(suffix):
            raise InputError(f"{path}: compressed input is not read; decompress it first")
    if os.path.isdir(path):
        raise InputError(f"{path}: is a directory: give the files in it (e.g. {path.rstrip('/')}/*.jsonl)")
    ext = os.path.splitext(name)[1]
    if ext in (".jsonl", ".ndjson", ".json"):
        return "jsonl"
    if ext == ".csv":
        return "csv"
    if ext in (".parquet", ".pq"):
        return "parquet"
    raise InputError(f"{path}: unknown format {ext or '(no extension)'!r}: use .jsonl, .csv or .parquet")


def read(path: str, labels: bool = False, blank: dict | None = None) -> Iterator[Item]:
    """The rows of ``path`` as :class:`Item`, in file order; ``labels``: every row is a label.
    ``blank``: a Counter, counts the blank lines of a JSON Lines file skipped, by path."""
    fmt = format_of(path)
    if fmt == "jsonl":
        return _jsonl(path, labels, blank)
    reader = {"csv": _csv, "parquet": _parquet}[fmt]
    return reader(path, labels)


def size_of(path: str) -> int:
    """Bytes of ``path`` (for progress), 0 if unknown."""
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def _items(path: str, line: int, raw: bytes, labels: bool) -> list[Item]:
    try:
        r = _route.decode(raw)
    except (msgspec.DecodeError, RecursionError):
        # NaN or Infinity (not JSON), a number beyond float's range, an integer of thousands
        # of digits: still routed by its model and kind, the daemon's decoder then refuses
        # it, naming the field (non_finite, wrong_type).
        row = _object(raw)
        if row is None:
            return [Item(path, line, "label" if labels else "prediction", None, None, raw)]
        r = _Route(**{k: row[k] for k in ("model", "ts", "label", "prediction") if k in row})
    model, ts = (r.model if isinstance(r.model, str) else None), _seconds(r.ts)
    if not labels and r.label is not msgspec.UNSET and r.prediction is not msgspec.UNSET:
        row = _object(raw)  # an object (_Route decoded it); a 1e400 stays 1e400, not null
        label = {k: row[k] for k in ("model", "id", "ts", "label") if k in row}
        del row["label"]
        return [Item(path, line, "prediction", model, ts, _encode(row)), Item(path, line, "label", model, ts, _encode(label))]
    is_label = labels or r.label is not msgspec.UNSET
    return [Item(path, line, "label" if is_label else "prediction", model, ts, raw)]


def _jsonl(path: str, labels: bool, blank: dict | None = None) -> Iterator[Item]:
    with open(path, "rb") as f:
        for number, line in enumerate(f, 1):
            raw = line.rstrip(b"\r\n")
            if not raw.strip():
                if blank is not None:
                    blank[path] += 1
                continue
            yield from _items(path, number, raw, labels)


#: The longest CSV cell read, in characters (the largest the csv module takes everywhere).
_CSV_FIELD_LIMIT = 2**31 - 1


def _csv(path: str, labels: bool) -> Iterator[Item]:
    # Bytes that are not UTF-8 are kept as they are (surrogate escapes): such a row is a
    # dead letter (not_json, as the daemon says of such an event), not the end of the file.
    # A cell longer than the csv module's default limit (128 kB) is a row like any other:
    # the daemon's decoder refuses it as oversize past its own limit, as from a JSONL line.
    if csv.field_size_limit() < _CSV_FIELD_LIMIT:
        csv.field_size_limit(_CSV_FIELD_LIMIT)
    with open(path, newline="", encoding="utf-8-sig", errors="surrogateescape") as f:
        reader = csv.DictReader(f)
        try:
            if reader.fieldnames is None:
                return
            features = _feature_columns(path, reader.fieldnames)
            line = reader.line_num + 1
            for row in reader:
                yield from _items(path, line, _encoded_row(row, features, _cell), labels)
                line = reader.line_num + 1
        except csv.Error as e:  # a NUL byte, an unterminated quote: the rest cannot be split into rows
            raise InputError(f"{path}:{reader.line_num}: not readable as CSV: {e}") from None


def _feature_columns(path: str, columns: list) -> list:
    """The ``feature.<name>`` columns of a CSV or Parquet header; a warning names the
    columns that are neither those nor event fields, which would otherwise be dropped
    without a word (a feature column without its prefix is the usual mistake)."""
    unused = [c for c in columns if c not in EVENT_COLUMNS and c != "features" and not c.startswith("feature.")]
    if unused:
        log.warning("%s: columns %s are not event fields and are ignored; a feature is a column named "
                    "feature.<name> (or a 'features' column of JSON objects)", path, ", ".join(unused))
    return [c for c in columns if c.startswith("feature.")]


def _encoded_row(row: dict, features: list, convert) -> bytes:
    """:func:`_row_event`, or the row's text where it cannot be encoded (bytes that were
    not UTF-8): not JSON, so the daemon's decoder refuses it."""
    try:
        return _row_event(row, features, convert)
    except (UnicodeEncodeError, TypeError, ValueError, OverflowError):
        text = ",".join(str(v) for v in row.values())
        return text.encode("utf-8", "surrogateescape")


def _parquet(path: str, labels: bool) -> Iterator[Item]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise InputError(f"{path}: reading Parquet needs pyarrow: {PARQUET_EXTRA}") from None
    try:
        table = pq.ParquetFile(path)
    except Exception as e:  # noqa: BLE001 - pyarrow raises several kinds for a bad file
        raise InputError(f"{path}: not a readable Parquet file: {e}") from None
    features = _feature_columns(path, table.schema_arrow.names)
    number = 0
    for batch in table.iter_batches(batch_size=8192):
        for row in batch.to_pylist():
            number += 1
            yield from _items(path, number, _encoded_row(row, features, _native), labels)


def _row_event(row: dict, feature_columns: list, convert) -> bytes:
    """The event bytes of one CSV or Parquet row. A ``features`` or ``score`` cell that is
    not valid JSON is put in as it is, so that the daemon's decoder refuses the event with
    its own reason (``not_json``) and detail."""
    event: dict = {}
    raw_parts: dict = {}
    for name in EVENT_COLUMNS:
        if name not in row:
            continue
        value = row[name]
        if name == "score" and isinstance(value, str) and value.strip().startswith("{"):
            try:
                event[name] = _json(value)
            except ValueError:
                raw_parts[name] = value
            continue
        value = convert(value, keep_string=name in ("model", "id", "model_version"))
        if value is not _ABSENT:
            event[name] = _time(value) if name == "ts" else value
    features: Any = {}
    if "features" in row and row["features"] not in (None, ""):
        cell = row["features"]
        if isinstance(cell, str):
            try:
                features = _json(cell)
            except ValueError:
                raw_parts["features"] = cell
        else:
            features = dict(cell) if isinstance(cell, list) else cell  # a map column reads as pairs
            if isinstance(features, dict):  # a struct or map column: its floats as a float column's
                features = {k: _float_cell(v) for k, v in features.items()}
    for column in feature_columns:
        value = convert(row[column], keep_string=False)
        if isinstance(features, dict):
            features[column[len("feature."):]] = None if value is _ABSENT else value
    if "features" not in raw_parts:
        event["features"] = features
    if "label" in event and "prediction" in row and "prediction" not in event and \
            (raw_parts.get("features") or (isinstance(features, dict) and any(v is not None for v in features.values()))):
        # An evaluation table's row whose prediction cell is empty: its features say it is
        # one, so its prediction is missing (a dead letter with the reason), not a label
        # row's absent field (its features then silently dropped).
        event["prediction"] = None
    if not raw_parts:
        return _encode(event)
    text = _encode(event)[:-1].decode()
    extra = ", ".join(f"{json.dumps(k)}: {v}" for k, v in raw_parts.items())
    return f"{text}{', ' if len(text) > 1 else ''}{extra}}}".encode()


_ABSENT = object()


#: How CSV writers spell a float NaN (Python's str(), numpy, C's printf): a missing value,
#: as Parquet's NaN is, not the string "nan" (which would make the feature categorical).
NAN_CELLS = frozenset({"nan", "NaN", "NAN", "-nan", "-NaN"})

#: How writers spell an infinity (pandas and Python's str(): ``inf``; JavaScript and
#: Python's json: ``Infinity``), lower-cased after an optional sign: a non-finite number,
#: refused as ``non_finite`` (not the string "inf", which would make a feature categorical).
INF_CELLS = frozenset({"inf", "infinity"})


def _cell(text: str | None, keep_string: bool):
    """A CSV cell: absent if empty, missing (None) if a NaN (:data:`NAN_CELLS`), else a
    JSON scalar where it parses as one, else the text."""
    if text is None or text == "":
        return _ABSENT
    if keep_string:
        return text
    if text in NAN_CELLS:
        return None
    if text.lstrip("+-").lower() in INF_CELLS and text.count("-") + text.count("+") <= 1:
        return _constant("-Infinity" if text.startswith("-") else "Infinity")
    if text in ("true", "false", "null") or text[0] in "-0123456789":
        try:
            value = _json(text)
        except ValueError:
            return text
        if isinstance(value, (int, float, bool, msgspec.Raw)) or value is None:
            return value
    return text


def _native(value, keep_string: bool):
    """A Parquet cell: absent if null; NaN a missing value, an infinity refused as
    ``non_finite`` (:func:`_float_cell`); datetimes to epoch seconds."""
    if value is None:
        return _ABSENT
    if isinstance(value, dt.datetime):
        return _time(value)
    return _float_cell(value)


def _float_cell(value):
    """A native value; a float NaN is a missing value (None), an infinity its JSON Lines
    spelling (``Infinity``), for the daemon's decoder to refuse as ``non_finite``."""
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else _constant("Infinity" if value > 0 else "-Infinity")
    return value


def _time(value):
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.timezone.utc)
        return value.timestamp()
    return value


def _seconds(ts) -> float | None:
    """Epoch seconds of an event's ``ts`` field (number or RFC 3339), None if unreadable."""
    if isinstance(ts, bool):
        return None
    if isinstance(ts, (int, float)):
        try:
            seconds = float(ts)
        except OverflowError:  # an integer of 400 digits has no float: unreadable, as NaN
            return None
        return seconds if math.isfinite(seconds) else None
    if isinstance(ts, str):
        try:
            parsed = dt.datetime.fromisoformat(ts.replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError:
            return None
        if parsed.tzinfo is None:
            return None
        return parsed.timestamp()
    return None
