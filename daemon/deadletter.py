"""The dead-letter topic: bad events, byte for byte, with why and where they came from.

Each record keeps its original key, value and headers, plus ``driftd-reason`` (one of
:data:`daemon.events.REASONS`), ``driftd-detail``, ``driftd-source-topic``,
``driftd-source-partition`` and ``driftd-source-offset``. Sends are asynchronous;
:meth:`DeadLetters.confirm` waits for every acknowledgement (re-sending failures) and is
called before offsets are committed, so an offset never moves past a dead letter that
the broker has not taken.
"""

from __future__ import annotations

from kafka.errors import KafkaError, KafkaTimeoutError


class DeadLetters:
    def __init__(self, producer, topic: str, confirm_timeout: float = 30.0):
        self._producer = producer
        self.topic = topic
        self.confirm_timeout = confirm_timeout
        self._unconfirmed: list[tuple] = []  # (future or None, key, value, headers)

    def send(self, record, reason: str, detail: str) -> None:
        headers = list(record.headers or []) + [
            ("driftd-reason", reason.encode()),
            ("driftd-detail", detail[:500].encode("utf-8", "replace")),
            ("driftd-source-topic", record.topic.encode()),
            ("driftd-source-partition", str(record.partition).encode()),
            ("driftd-source-offset", str(record.offset).encode()),
        ]
        self._unconfirmed.append(self._send(record.key, record.value, headers))

    def _send(self, key, value, headers) -> tuple:
        try:
            future = self._producer.send(self.topic, key=key, value=value, headers=headers)
        except KafkaTimeoutError:
            future = None  # no metadata yet (broker away): confirm() sends it again
        return future, key, value, headers

    def confirm(self, timeout: float | None = None) -> None:
        """Block until the broker has every dead letter; raise KafkaError if it will not.
        ``timeout`` (seconds, default ``confirm_timeout``): 0 checks without waiting."""
        if not self._unconfirmed:
            return
        self._producer.flush(timeout=self.confirm_timeout if timeout is None else timeout)
        failed = []
        for future, key, value, headers in self._unconfirmed:
            try:
                if future is None:
                    raise KafkaTimeoutError("not sent")
                future.get(timeout=0)
            except KafkaError:
                failed.append(self._send(key, value, headers))
        self._unconfirmed = failed
        if failed:
            raise KafkaTimeoutError(f"{len(failed)} dead letters not acknowledged yet")

    @property
    def unconfirmed(self) -> int:
        return len(self._unconfirmed)
