r"""Logging set-up: one format, and no secret in any record, at any level.

Two layers, because either alone can be bypassed:

- kafka-python's loggers never go below INFO, whatever ``log_level`` says. At DEBUG they
  print every protocol request and the raw bytes sent, and a SASL/PLAIN authenticate
  request carries the password (its admin client also prints its whole configuration).
- Every log record, from any logger, is redacted when it is made (a log-record factory,
  so also for handlers added later): each configured secret is replaced by ``***`` in the
  message, its arguments and any traceback -- as written, and as ``repr`` or JSON shows it
  inside quoted strings and bytes (``\xNN``, ``\uNNNN``, escaped quotes).

>>> redact = Redactor(["pa'ss"])
>>> redact("password='pa\\'ss' auth_bytes=b'\\x00bob\\x00pa\\'ss'")
"password='***' auth_bytes=b'\\x00bob\\x00***'"
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import traceback

from daemon.config import Config, Secret

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
#: Loggers that print protocol traffic at DEBUG (kafka-python's, every module under it).
WIRE_LOGGERS = ("kafka",)
MASK = "***"

_secrets: list[str] = []  # every secret given to configure(), in this process
_redact = None  # the Redactor the record factory applies, once installed

class Redactor:
    """Replaces each of ``secrets`` (strings; empty ones ignored) by :data:`MASK` in text,
    in plain or escaped form (see the module docs)."""

    def __init__(self, secrets):
        patterns = [_pattern(s) for s in sorted({s for s in secrets if s}, key=len, reverse=True)]
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


def configure(level: str | int = "INFO", secrets=(), fmt: str = FORMAT) -> None:
    """Log to stderr at ``level`` with ``fmt``; kafka-python's loggers at INFO or above;
    every record redacted of ``secrets`` (extends, never drops, secrets of an earlier
    call). Idempotent."""
    global _redact
    logging.basicConfig(level=level, format=fmt)
    threshold = max(logging.getLogger().getEffectiveLevel(), logging.INFO)
    for name in WIRE_LOGGERS:
        logging.getLogger(name).setLevel(threshold)
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
    logging.getLogger("driftd").debug(
        "logging at %s; kafka-python's loggers at %s or above; %d secret(s) masked in every line",
        logging.getLevelName(logging.getLogger().getEffectiveLevel()), logging.getLevelName(threshold), len(set(_secrets)))


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
