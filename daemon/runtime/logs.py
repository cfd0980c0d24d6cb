r"""Logging set-up: one format, and no secret in any record, at any level.

Two layers, because either alone can be bypassed:

- kafka-python's loggers never go below INFO, whatever ``log_level`` says. At DEBUG they
  print every protocol request and the raw bytes sent, and a SASL/PLAIN authenticate
  request carries the password (its admin client also prints its whole configuration).
  Below DEBUG they are at WARNING: their INFO lines (some 90 at a start, every
  connection and group join) would drown driftd's own.
- kafka-python's warning that one of its I/O tasks "ran for" more than 0.1 s ("blocking
  the event loop") is kept for DEBUG: in driftd it measures the time its I/O thread waited
  for the interpreter lock while the loop computed statistics, not a stuck client, and it
  came every few seconds under load.
- kafka-python's ERROR of a metadata refresh its own close cut ("failed Cancelled", at
  nearly every consumer's close) is kept for DEBUG too (:class:`_CancelledByClose`).
- kafka-python logs each failed connection, lost connection and failed metadata refresh,
  every few hundred milliseconds while a broker is away (111 ERROR lines in a 30 s
  outage): a line of each kind is kept per :data:`REPEAT_SECONDS` and logger, the next one
  saying how many like it were left out (:class:`_Repeats`; numbers in the text, such as
  ports and node ids, do not make a line another kind).
- Every log record, from any logger, is redacted when it is made (a log-record factory,
  so also for handlers added later): each configured secret is replaced by ``***`` in the
  message, its arguments and any traceback -- as written, and as ``repr`` or JSON shows it
  inside quoted strings and bytes (``\xNN``, ``\uNNNN``, escaped quotes). A secret shorter
  than :data:`MIN_MASKED` characters is not masked (a warning at start says so).

>>> redact = Redactor(["pa'ssword", "s"])
>>> redact("password='pa\\'ssword' auth_bytes=b'\\x00bob\\x00pa\\'ssword'")
"password='***' auth_bytes=b'\\x00bob\\x00***'"

Lines are text (:data:`FORMAT`) or, with ``log_format: json``, one JSON object a line
(:class:`JsonFormatter`): ``time``, ``level``, ``logger``, ``message``, and ``model`` and
``partition`` where the log call gives them (``extra={"model": ..., "partition": ...}``).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import os
import re
import sys
import threading
import time
import traceback

import msgspec

from daemon.config import Config, Secret

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
#: Loggers that print protocol traffic at DEBUG (kafka-python's, every module under it).
WIRE_LOGGERS = ("kafka",)
MASK = "***"

#: The kafka-python logger that reports I/O tasks slower than 0.1 s (see the module docs).
SLOW_TASK_LOGGER = "kafka.net.selector"
#: The kafka-python logger of a socket's reads and writes (see :class:`_ClosedSocketRace`).
TRANSPORT_LOGGER = "kafka.net.transport"
#: The kafka-python logger of metadata refreshes (see :class:`_CancelledByClose`).
METADATA_LOGGER = "kafka.cluster"
#: kafka-python's loggers that repeat a broker's absence (see :class:`_Repeats`).
CONNECTION_LOGGERS = ("kafka.net.manager", "kafka.net.connection", "kafka.net.transport", "kafka.cluster",
                      "kafka.coordinator", "kafka.conn", "kafka.client_async")
#: Seconds between two lines of one kind from a connection logger.
REPEAT_SECONDS = 60.0

_secrets: list[str] = []  # every secret given to configure(), in this process
_redact = None  # the Redactor the record factory applies, once installed

#: Secrets shorter than this are not masked: replacing every "s" of every line by ``***``
#: mangled the logs and showed the secret all the same (a warning says so at start).
MIN_MASKED = 6


class Redactor:
    """Replaces each of ``secrets`` (strings of :data:`MIN_MASKED` characters or more;
    shorter ones ignored) by :data:`MASK` in text, in plain or escaped form (see the module docs)."""

    def __init__(self, secrets):
        patterns = [_pattern(s) for s in sorted({s for s in secrets if len(s) >= MIN_MASKED}, key=len, reverse=True)]
        self._regex = re.compile("|".join(patterns)) if patterns else None

    def __bool__(self) -> bool:
        return self._regex is not None

    def __call__(self, text: str) -> str:
        return self._regex.sub(MASK, text) if self._regex is not None else text


def _pattern(secret: str) -> str:
    """A regex for ``secret`` where each character may appear as itself or as any escape
    ``repr`` (of str or of its UTF-8 bytes) or JSON would write for it."""
    parts = []
    for ch in secret:
        forms = {ch, "\\" + ch, repr(ch)[1:-1], "".join(f"\\x{b:02x}" for b in ch.encode())}
        code = ord(ch)
        if code < 0x100:
            forms.add(f"\\x{code:02x}")
        forms.add(f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}")
        if code >= 0x10000:  # JSON writes a surrogate pair
            high, low = divmod(code - 0x10000, 0x400)
            forms.add(f"\\u{0xD800 + high:04x}\\u{0xDC00 + low:04x}")
        parts.append("(?:" + "|".join(re.escape(f) for f in sorted(forms, key=len, reverse=True)) + ")")
    return "".join(parts)


def secrets_of(config: Config) -> list[str]:
    """Every secret driftd holds: each :class:`~daemon.config.Secret` in the configuration
    (Kafka client settings, sink secrets, wherever they are) and the keys named by
    ``registry.key_env`` and ``state.key_env``."""
    found = []

    def walk(value):
        if isinstance(value, Secret):
            found.append(value.get())
        elif dataclasses.is_dataclass(value) and not isinstance(value, type):
            for f in dataclasses.fields(value):
                walk(getattr(value, f.name))
        elif isinstance(value, dict):
            for v in value.values():
                walk(v)
        elif isinstance(value, (list, tuple)):
            for v in value:
                walk(v)

    walk(config)
    for env in (config.registry.key_env, config.state.key_env):
        if os.environ.get(env):
            found.append(os.environ[env])
    return found


def configure(level: str | int = "INFO", secrets=(), fmt: str = FORMAT, log_format: str = "text") -> None:
    """Log to stderr at ``level``, as text with ``fmt`` or as JSON lines (``log_format``
    ``"json"``, :class:`JsonFormatter`); kafka-python's loggers at WARNING or above, at INFO
    when ``level`` is DEBUG (:func:`wire_level`); every record redacted of ``secrets``
    (extends, never drops, secrets of an earlier call). Idempotent: a second call changes
    the level and format of the handler the first one installed."""
    global _redact
    root = logging.getLogger()
    handler = next((h for h in root.handlers if getattr(h, "driftd", False)), None)
    if handler is None and not root.handlers:  # as logging.basicConfig: a host's handlers and level stay
        handler = logging.StreamHandler(sys.stderr)
        handler.driftd = True
        root.addHandler(handler)
    if handler is not None:
        root.setLevel(level)
        handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter(fmt))
    # Python's warnings (a library's DeprecationWarning) as log records: in JSON too, and
    # never a bare text line among the JSON ones; likewise an exception no one caught.
    logging.captureWarnings(True)
    if log_format == "json":
        sys.excepthook = _log_uncaught
        threading.excepthook = lambda hook: _log_uncaught(hook.exc_type, hook.exc_value, hook.exc_traceback,
                                                          hook.thread.name if hook.thread else None)
    threshold = wire_level(root.getEffectiveLevel())
    for name in WIRE_LOGGERS:
        logging.getLogger(name).setLevel(threshold)
    for name, kind in ((SLOW_TASK_LOGGER, _SlowTaskFilter), (TRANSPORT_LOGGER, _ClosedSocketRace),
                       (METADATA_LOGGER, _CancelledByClose),
                       *((name, _Repeats) for name in CONNECTION_LOGGERS)):
        logger = logging.getLogger(name)
        if not any(isinstance(f, kind) for f in logger.filters):
            logger.addFilter(kind())
    _secrets.extend(s for s in secrets if s)
    if _redact is None:
        base = logging.getLogRecordFactory()

        def factory(*args, **kwargs):
            record = base(*args, **kwargs)
            if _redact:
                _redact_record(record, _redact)
            return record

        logging.setLogRecordFactory(factory)
    _redact = Redactor(_secrets)
    short = {s for s in _secrets if len(s) < MIN_MASKED}
    if short:
        logging.getLogger("driftd").warning(
            "%d secret(s) shorter than %d characters are not masked in the logs (masking them would mangle every line "
            "and show them all the same): use longer ones (openssl rand -hex 32)", len(short), MIN_MASKED)
    logging.getLogger("driftd").debug(
        "logging at %s; kafka-python's loggers at %s or above; %d secret(s) masked in every line",
        logging.getLevelName(logging.getLogger().getEffectiveLevel()), logging.getLevelName(threshold), len(set(_secrets)))


def _log_uncaught(kind, value, tb, thread: str | None = None) -> None:
    if issubclass(kind, KeyboardInterrupt):
        sys.__excepthook__(kind, value, tb)
        return
    where = f" in thread {thread}" if thread else ""
    logging.getLogger("driftd").critical("uncaught %s%s: %s", kind.__name__, where, value, exc_info=(kind, value, tb))


class _SlowTaskFilter(logging.Filter):
    """Drops kafka-python's slow-task warnings unless driftd logs at DEBUG."""

    def filter(self, record: logging.LogRecord) -> bool:
        if "blocking the event loop" not in str(record.msg):
            return True
        return logging.getLogger(WIRE_LOGGERS[0]).getEffectiveLevel() <= wire_level(logging.DEBUG)


class _ClosedSocketRace(logging.Filter):
    """Drops kafka-python 3.0's traceback of a read or write on a socket that another
    thread closed meanwhile (``AttributeError: 'NoneType' object has no attribute 'recv'``,
    "Error receiving network data closing socket"): its I/O thread meeting a client being
    closed, seen once in a few hundred daemon stops; the connection was being closed anyway,
    and the traceback read as a crash."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        return not (isinstance(error, AttributeError) and "'NoneType' object has no attribute" in str(error)
                    and str(error).endswith(("'recv'", "'send'")))


class _CancelledByClose(logging.Filter):
    """Drops kafka-python 3.0's ERROR "Metadata refresh: failed Cancelled" unless driftd
    logs at DEBUG: a metadata request cut by the client's own close (kafka-python fails the
    requests in flight with ``Cancelled`` only when a connection is closed on purpose; a
    broker lost gives a connection error, which stays). It came at nearly every consumer's
    close (18 of 20 closes measured), so at every stop of driftd, and read as a failure;
    kafka-python's fetcher logs its own ``Cancelled`` at INFO."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not (str(record.msg).startswith("Metadata refresh: failed") and record.args
                and type(record.args[0]).__name__ == "Cancelled" and type(record.args[0]).__module__.startswith("kafka")):
            return True
        return logging.getLogger(WIRE_LOGGERS[0]).getEffectiveLevel() <= wire_level(logging.DEBUG)


class _Repeats(logging.Filter):
    """Keeps one record of a kind (logger and text, its numbers left aside) per
    ``seconds`` (default :data:`REPEAT_SECONDS`); the next one kept says how many like it
    were left out. ``clock``: monotonic seconds (tests).

    >>> repeats, now = _Repeats(60, clock=lambda: now), 0.0
    >>> def line(text):
    ...     record = logging.LogRecord("kafka.cluster", logging.ERROR, "", 0, text, (), None)
    ...     return record.getMessage() if repeats.filter(record) else None
    >>> line("Metadata refresh: failed 111 ECONNREFUSED"), line("Metadata refresh: failed 112 ECONNREFUSED")
    ('Metadata refresh: failed 111 ECONNREFUSED', None)
    >>> now = 61.0
    >>> line("Metadata refresh: failed 111 ECONNREFUSED")
    'Metadata refresh: failed 111 ECONNREFUSED (1 more like it in the last 61 s left out)'
    """

    _MAX_KINDS = 1000

    def __init__(self, seconds: float = REPEAT_SECONDS, clock=time.monotonic):
        super().__init__()
        self.seconds, self._clock = seconds, clock
        self._lock = threading.Lock()
        self._kinds: dict = {}  # kind -> [time of the last line kept, lines left out since]

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        kind = (record.name, re.sub(r"\d+", "#", message)[:200])
        now = self._clock()
        with self._lock:
            seen = self._kinds.get(kind)
            if seen is not None and now - seen[0] < self.seconds:
                seen[1] += 1
                return False
            if len(self._kinds) >= self._MAX_KINDS:
                self._kinds.clear()
            self._kinds[kind] = [now, 0]
        if seen is not None and seen[1]:
            record.msg = f"{message} ({seen[1]} more like it in the last {now - seen[0]:.0f} s left out)"
            record.args = ()
        return True


def wire_level(level: int) -> int:
    """The level of kafka-python's loggers when driftd logs at ``level``: INFO at DEBUG
    (never DEBUG, see the module docs), else WARNING or above.

    >>> [logging.getLevelName(wire_level(n)) for n in (logging.DEBUG, logging.INFO, logging.ERROR)]
    ['INFO', 'WARNING', 'ERROR']
    """
    return logging.INFO if level <= logging.DEBUG else max(level, logging.WARNING)


class TextFormatter(logging.Formatter):
    """``fmt`` lines, one a record: line breaks in the message (a feature name or a value
    from an event, which any producer writes) are shown as ``\\n`` and ``\\r``, so that an
    event cannot split a line or forge one; a traceback still follows on lines of its own.

    >>> record = logging.LogRecord("driftd", logging.WARNING, __file__, 1, "feature %r", ("a\\nb",), None)
    >>> TextFormatter("%(message)s").format(record)
    "feature 'a\\\\nb'"
    >>> record = logging.LogRecord("driftd", logging.WARNING, __file__, 1, "feature %s", ("a\\nINFO forged",), None)
    >>> TextFormatter("%(levelname)s %(message)s").format(record)
    'WARNING feature a\\\\nINFO forged'
    """

    def formatMessage(self, record: logging.LogRecord) -> str:
        return super().formatMessage(record).replace("\r", "\\r").replace("\n", "\\n")


class JsonFormatter(logging.Formatter):
    """One JSON object a line: ``time`` (RFC 3339, UTC, milliseconds), ``level``,
    ``logger``, ``message``, then ``model`` and ``partition`` if the record has them
    (``extra=``), and ``exception`` (the traceback) if any. The message is already redacted
    (the record factory); so is the traceback.

    >>> record = logging.makeLogRecord({"msg": "bad %s", "args": ("event",), "levelname": "WARNING",
    ...                                 "name": "driftd", "created": 0.0, "model": "fraud", "partition": 3})
    >>> JsonFormatter().format(record)
    '{"time": "1970-01-01T00:00:00.000Z", "level": "WARNING", "logger": "driftd", "message": "bad event", "model": "fraud", "partition": 3}'
    """

    FIELDS = ("model", "partition")

    def format(self, record: logging.LogRecord) -> str:
        when = dt.datetime.fromtimestamp(record.created, dt.timezone.utc)
        line = {"time": when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z",
                "level": record.levelname, "logger": record.name, "message": record.getMessage()}
        for name in self.FIELDS:
            value = getattr(record, name, None)
            if value is not None:  # set after the record factory ran: redacted here
                line[name] = value if isinstance(value, (int, float, bool)) else _redacted(str(value))
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line["exception"] = record.exc_text
        if record.stack_info:
            line["stack"] = record.stack_info
        # ensure_ascii: one line whatever the message holds (a newline in a model name, ...).
        return json.dumps(line, default=str)


def _redacted(text: str) -> str:
    return _redact(text) if _redact else text


#: Seconds between two WARNING lines about dead letters of one reason (the others: DEBUG).
DEAD_LETTER_LINE_EVERY = 60.0
_dead_letter_lines: dict[str, tuple[float, int]] = {}  # reason -> (time of the last WARNING, DEBUG ones since)


class _ModelOnly(msgspec.Struct):
    model: str | None = None


_model_only = msgspec.json.Decoder(_ModelOnly)


def dead_letter(record, reason: str, detail: str, log: logging.Logger | None = None) -> None:
    """Log that ``record`` (a Kafka record: topic, partition, offset, value) went to the
    dead-letter topic with ``reason`` and ``detail``: at WARNING for the first of each
    reason and then at most once every :data:`DEAD_LETTER_LINE_EVERY` seconds (saying how
    many were logged at DEBUG meanwhile), else at DEBUG, so that a producer sending only
    bad events does not flood the log (``driftd_dead_letter_total`` counts them all). The
    line carries ``partition`` and, when the event names one, ``model``.
    ``internal_error`` is logged where it is caught, with its traceback: not here."""
    if reason == "internal_error":
        return
    log = log or logging.getLogger("driftd")
    now = time.monotonic()
    last, quiet = _dead_letter_lines.get(reason, (None, 0))
    loud = last is None or now - last >= DEAD_LETTER_LINE_EVERY
    level = logging.WARNING if loud else logging.DEBUG
    _dead_letter_lines[reason] = (now, 0) if loud else (last, quiet + 1)
    if not log.isEnabledFor(level):
        return
    try:  # only the model field: fast, and it fails quietly on what is not an event
        model = _model_only.decode(record.value).model if record.value else None
    except (msgspec.DecodeError, RecursionError):
        model = None
    since = f" ({quiet} more since the last such line, at DEBUG)" if loud and quiet else ""
    log.log(level, "%s[%s]@%s went to the dead-letter topic: %s: %s%s", record.topic, record.partition,
            record.offset, reason, detail, since,
            extra={"model": model, "partition": record.partition})


def _redact_record(record: logging.LogRecord, redact: Redactor) -> None:
    """Render the message now, redacted, so that no handler formats the raw arguments;
    likewise the traceback and stack."""
    try:
        message = record.getMessage()
    except Exception:  # noqa: BLE001 - a bad format string: keep what can be shown
        message = f"{record.msg!r} % {record.args!r}"
    record.msg, record.args = redact(message), None
    if record.exc_info:
        # Rendered here and the exception dropped: no handler can print it unredacted.
        record.exc_text = redact("".join(traceback.format_exception(*record.exc_info)).rstrip("\n"))
        record.exc_info = None
    if record.stack_info:
        record.stack_info = redact(record.stack_info)
