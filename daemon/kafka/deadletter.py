"""The dead-letter topic: bad events, byte for byte, with why and where they came from.

Each record keeps its original key, value and headers, plus ``driftd-reason`` (one of
:data:`daemon.stream.events.REASONS`), ``driftd-detail``, ``driftd-source-topic``,
``driftd-source-partition`` and ``driftd-source-offset``.

A copy larger than ``max_bytes`` (key, value and headers together; the broker and the
producer refuse records above about 1 MB) is *bounded*: it carries the first bytes of
the value, the key if it is short (else its first 1 KiB), the original headers if they
take at most an eighth of ``max_bytes``, and ``driftd-original-size`` and
``driftd-original-sha256`` (of the whole value), so that the original can be recognised
in its source topic.

What "never lost" means. Sends are asynchronous; :meth:`DeadLetters.confirm` waits for
every acknowledgement and is called before offsets are committed, so an offset never moves
past a dead letter the broker has not taken:

- a *retriable* failure (broker away, leader moving, timeout) is sent again at the next
  confirmation, for as long as it takes; the checkpoint waits meanwhile;
- a copy the broker will *never* take (refused as too large, invalid, not authorised, or
  a producer that raises on it) is replaced by a *stub*: an empty value with the headers
  above (reason, detail, source topic, partition and offset, size and SHA-256);
- a stub refused too (say, no right to write to the dead-letter topic) is *dropped*: its
  reason, source coordinates, size and hash are logged at ERROR and counted
  (``on_failure("dead_letter_dropped")``). The offset then moves on: holding it would stop
  every other event of the partition for good, and the original is still in its source
  topic (until the topic's retention) at the coordinates logged.

No method raises for one bad record: a dead letter can never stop the consumer loop.

>>> class Broker:  # a stand-in producer that takes everything
...     def send(self, topic, key, value, headers):
...         self.last = (key, value, dict(headers))
>>> class Record:
...     topic, partition, offset, key, value, headers = "predictions", 0, 42, b"fraud", b"x" * 5000, []
>>> producer = Broker()
>>> DeadLetters(producer, "dead", max_bytes=2048).send(Record(), "oversize", "5000 bytes")
>>> key, value, headers = producer.last
>>> key, len(value) < 2048, headers["driftd-original-size"], headers["driftd-reason"]
(b'fraud', True, b'5000', b'oversize')
"""

from __future__ import annotations

import hashlib
import logging

from kafka.errors import KafkaError, KafkaTimeoutError

log = logging.getLogger("driftd")

#: Longest key a bounded copy keeps whole.
MAX_KEY_BYTES = 1024


class DeadLetters:
    """Dead-letter sends for one producer and topic.

    ``max_bytes``: most bytes of a copy (key, value and all headers); ``on_failure(kind)``
    is called with ``dead_letter_refused`` (a copy replaced by its stub) or
    ``dead_letter_dropped`` (a stub refused too), e.g. to count them in a metric.
    """

    def __init__(self, producer, topic: str, confirm_timeout: float = 30.0, max_bytes: int = 524_288,
                 on_failure=None):
        self._producer = producer
        self.topic = topic
        self.confirm_timeout = confirm_timeout
        self.max_bytes = max_bytes
        self._on_failure = on_failure or (lambda kind: None)
        self._unconfirmed: list[_Letter] = []

    def send(self, record, reason: str, detail: str) -> None:
        """Send ``record`` (a consumer record) to the dead-letter topic; never raises."""
        try:
            letter = _Letter.of(record, reason, detail, self.max_bytes)
        except Exception as e:  # noqa: BLE001 - a record too odd to even describe
            log.exception("dead letter for %s[%s]@%s could not be built: %s", getattr(record, "topic", "?"),
                          getattr(record, "partition", "?"), getattr(record, "offset", "?"), e)
            self._on_failure("dead_letter_dropped")
            return
        self._send(letter)

    def _send(self, letter: "_Letter") -> None:
        try:
            letter.future = self._producer.send(self.topic, key=letter.key, value=letter.value, headers=letter.headers)
        except KafkaError as e:
            if e.retriable:
                letter.future = None  # e.g. no metadata yet (broker away): confirm() sends it again
            else:
                return self._refused(letter, e)
        except Exception as e:  # noqa: BLE001 - whatever the producer refuses, refused for good
            return self._refused(letter, e)
        self._unconfirmed.append(letter)

    def _refused(self, letter: "_Letter", error: Exception) -> None:
        """The broker or the producer will never take this copy: send its stub, or drop it."""
        if letter.stub:
            log.error("dead letter dropped: the dead-letter topic %s refused even the stub of %s (%s: %s); "
                      "the original stays in its topic", self.topic, letter.describe(), type(error).__name__, error)
            self._on_failure("dead_letter_dropped")
            return
        log.error("dead-letter copy of %s refused (%s: %s); sending a stub without the value",
                  letter.describe(), type(error).__name__, error)
        self._on_failure("dead_letter_refused")
        self._send(letter.as_stub())

    def confirm(self, timeout: float | None = None) -> None:
        """Block until the broker has every dead letter; raise KafkaError if it does not
        yet (retriable failures are sent again). ``timeout`` (seconds, default
        ``confirm_timeout``): 0 checks without waiting."""
        if not self._unconfirmed:
            return
        try:
            self._producer.flush(timeout=self.confirm_timeout if timeout is None else timeout)
        except KafkaError:
            pass  # not all done in time: what is done is settled below, the rest stays
        letters, self._unconfirmed = self._unconfirmed, []
        for letter in letters:
            future = letter.future
            if future is None:
                self._send(letter)
                continue
            if not future.is_done:
                self._unconfirmed.append(letter)  # still in flight: not sent twice
                continue
            if future.succeeded():
                continue
            error = future.exception
            if isinstance(error, KafkaError) and error.retriable:
                self._send(letter)
            else:
                self._refused(letter, error)
        if self._unconfirmed:
            raise KafkaTimeoutError(f"{len(self._unconfirmed)} dead letters not acknowledged yet")

    @property
    def unconfirmed(self) -> int:
        return len(self._unconfirmed)


class _Letter:
    """One dead-letter record on its way, and where it came from."""

    __slots__ = ("key", "value", "headers", "source", "stub", "future")

    def __init__(self, key, value, headers, source, stub=False):
        self.key, self.value, self.headers, self.source, self.stub = key, value, headers, source, stub
        self.future = None

    @classmethod
    def of(cls, record, reason: str, detail: str, max_bytes: int) -> "_Letter":
        key, value = record.key, record.value
        if key is None and value is None:
            value = b""  # a record needs one of them
        ours = [
            ("driftd-reason", reason.encode()),
            ("driftd-detail", detail[:500].encode("utf-8", "replace")),
            ("driftd-source-topic", str(record.topic).encode()),
            ("driftd-source-partition", str(record.partition).encode()),
            ("driftd-source-offset", str(record.offset).encode()),
        ]
        # Kafka allows headers without a value; the producer takes bytes only.
        theirs = [(str(k), v if isinstance(v, bytes) else b"" if v is None else bytes(v)) for k, v in record.headers or []]
        source = (record.topic, record.partition, record.offset, reason)
        if _size(key) + _size(value) + _headers_size(theirs + ours) <= max_bytes:
            return cls(key, value, theirs + ours, source)
        ours += _summary(value)
        if key is not None and len(key) > MAX_KEY_BYTES:
            key = key[:MAX_KEY_BYTES]
        # The original headers too, when they are small (a trace id, a content type): only
        # a copy's value is what made it large, as a rule.
        kept = theirs + ours if _headers_size(theirs) <= max_bytes // 8 else ours
        room = max(0, max_bytes - _size(key) - _headers_size(kept))
        return cls(key, (value or b"")[:room], kept, source)

    def as_stub(self) -> "_Letter":
        headers = [h for h in self.headers if h[0].startswith("driftd-")]
        if not any(name == "driftd-original-size" for name, _ in headers):
            headers += _summary(self.value)
        key = self.key[:MAX_KEY_BYTES] if self.key is not None else None
        return _Letter(key, b"", headers, self.source, stub=True)

    def describe(self) -> str:
        topic, partition, offset, reason = self.source
        size, sha = (dict(self.headers).get(h, b"?").decode() for h in ("driftd-original-size", "driftd-original-sha256"))
        if size == "?":
            size, sha = str(_size(self.value)), hashlib.sha256(self.value or b"").hexdigest()
        return f"{topic}[{partition}]@{offset} (reason {reason}, {size} bytes, sha256 {sha})"


def _summary(value) -> list:
    return [("driftd-original-size", str(_size(value)).encode()),
            ("driftd-original-sha256", hashlib.sha256(value or b"").hexdigest().encode())]


def _size(data) -> int:
    return 0 if data is None else len(data)


def _headers_size(headers) -> int:
    return sum(len(k.encode()) + len(v) for k, v in headers)
