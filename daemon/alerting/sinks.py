"""Where alerts go: a signed webhook (Standard Webhooks, or Slack-compatible) and a Kafka topic.

A sink is a small object with a ``name`` (a bounded metric label) and
``deliver(alert)``, which returns on success and raises :class:`RetryableError`
(try again later, maybe at ``retry_after``) or :class:`PermanentError` (no
retry can help). Retrying, backoff and threads are
:class:`daemon.alerting.sender.AlertSender`'s business, not the sinks'.

Links: with :class:`AlertLinks` (``alerts.runbook_base_url``, ``alerts.dashboard_url``)
the payload's ``data`` carries ``runbook_url`` (the README runbook of the alert, as the
shipped Prometheus rules link it) and ``dashboard_url`` (the Grafana dashboard at the
alert's model); each is absent when its option is unset. Severity: :func:`alert_severity`,
the same as the shipped rules give (README "Alert rules").
"""

from __future__ import annotations

import base64
import email.utils
import http.client
import json
import math
import time
import urllib.parse
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Protocol

from daemon.alerting import transport
from daemon.alerting.episodes import FIRING, INFO, Alert

__all__ = ["AlertLinks", "KafkaSink", "PermanentError", "RetryableError", "Sink", "WebhookSink",
           "alert_severity", "parse_retry_after", "runbook_anchor", "secret_warning", "slack_text"]

#: Detectors whose alerts are ``critical`` (someone looks now); every other one's are
#: ``warning``. Performance decay is the model doing worse on labelled events, the harm
#: itself; data and concept drift say it may come. The shipped rules agree
#: (DriftdPerformanceDecay critical, DriftdFeatureDrift and DriftdConceptDrift warning).
CRITICAL_DETECTORS = frozenset({"decay"})


def alert_severity(detector: str) -> str:
    """``critical`` or ``warning``, for a drift episode of ``detector`` (see :data:`CRITICAL_DETECTORS`)."""
    return "critical" if detector in CRITICAL_DETECTORS else "warning"


def runbook_anchor(alert: Alert) -> str:
    """The README heading anchor of the runbook for ``alert``: the shipped rule's that
    watches the same thing (decay, estimated decay, the error stream, data and schema tests), and the
    learning section for informational alerts (promotions)."""
    if alert.status == INFO:
        return "learning-retraining-and-promotion"
    if alert.detector == "decay":
        return "driftdperformancedecay"
    if alert.detector == "estimated_decay":
        return "driftdestimatedperformancedecay"
    if alert.feature == "<error>":
        return "driftdconceptdrift"
    return "driftdfeaturedrift"


@dataclass(frozen=True)
class AlertLinks:
    """Where an alert's reader goes next. ``runbook_base_url``: the URL of README.md (any
    fragment is replaced by the runbook's anchor); ``dashboard_url``: the Grafana
    dashboard's URL (``var-model=<model>`` is added to its query). None: no such link."""

    runbook_base_url: str | None = None
    dashboard_url: str | None = None

    def of(self, alert: Alert) -> dict:
        """``{"runbook_url": ..., "dashboard_url": ...}``, only the configured ones."""
        links = {}
        if self.runbook_base_url:
            base = urllib.parse.urldefrag(self.runbook_base_url)[0]
            links["runbook_url"] = f"{base}#{runbook_anchor(alert)}"
        if self.dashboard_url:
            parts = urllib.parse.urlsplit(self.dashboard_url)
            query = [(k, v) for k, v in urllib.parse.parse_qsl(parts.query, keep_blank_values=True) if k != "var-model"]
            query.append(("var-model", alert.model))
            links["dashboard_url"] = urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(query)))
        return links


class RetryableError(Exception):
    """Delivery failed but may work later; ``retry_after`` (seconds) is the server's wish."""

    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


class PermanentError(Exception):
    """Delivery can never work for this alert (e.g. HTTP 400): do not retry."""


class Sink(Protocol):
    name: str

    def deliver(self, alert: Alert) -> None: ...


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from an HTTP ``Retry-After`` (delay-seconds or HTTP-date); None if unusable."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:  # HTTP-dates are GMT
            when = when.replace(tzinfo=timezone.utc)
        seconds = when.timestamp() - (time.time() if now is None else now)
    return max(0.0, seconds) if math.isfinite(seconds) else None


def slack_text(alert: Alert, links: AlertLinks | None = None) -> str:
    """One readable line, e.g. ``:rotating_light: [FIRING] fraud: KS drift on feature amount (...)``,
    ending with ``runbook`` and ``dashboard`` links when ``links`` has them."""
    return _slack_escape(_slack_line(alert)) + _slack_links(alert, links)


def _slack_links(alert: Alert, links: AlertLinks | None) -> str:
    found = links.of(alert) if links is not None else {}
    # Slack's link markup <url|text>; the URL's own &, <, > escaped as in any text.
    shown = [f"<{_slack_escape(url)}|{name.split('_')[0]}>" for name, url in found.items()]
    return f" ({', '.join(shown)})" if shown else ""


def _slack_line(alert: Alert) -> str:
    d = alert.detail
    if alert.status == INFO:
        extra = ", ".join(f"{k}={v}" for k, v in d.items())
        text = f":information_source: [INFO] {alert.model}: {alert.kind.replace('_', ' ')}"
        return text + (f" ({extra})" if extra else "")
    firing = alert.status == FIRING
    icon = ":rotating_light:" if firing else ":white_check_mark:"
    where = f" on feature {alert.feature}" if alert.feature else ""
    text = f"{icon} [{alert.status.upper()}] {alert.model}: {alert.detector} drift{where}"
    if not firing:
        text += " ended"
    numbers = []
    stat, thr = d.get("statistic"), d.get("threshold")
    if isinstance(stat, (int, float)) and isinstance(thr, (int, float)):
        numbers.append(f"statistic {stat:.3g} {'>' if stat > thr else '<='} threshold {thr:.3g}")
    elif isinstance(stat, (int, float)):
        numbers.append(f"statistic {stat:.3g}")
    if isinstance(d.get("p_value"), (int, float)):
        numbers.append(f"p-value {d['p_value']:.3g}")
    if numbers:
        text += f" ({', '.join(numbers)})"
    return text


def _slack_escape(text: str) -> str:
    # Slack treats &, < and > as markup; model and feature names come from user input.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _data(alert: Alert, links: AlertLinks | None) -> dict:
    """The alert's fields, and its links when configured (absent otherwise)."""
    data = alert.to_dict()
    if links is not None:
        data.update(links.of(alert))
    return data


def envelope(alert: Alert, links: AlertLinks | None = None) -> dict:
    """What the webhook (``format: json``) and the Kafka sink send: ``{"type": the event
    type, "timestamp": the alert's event time (RFC 3339, UTC), "data": the alert's fields
    and its links}``, as Standard Webhooks' payloads are."""
    when = datetime.fromtimestamp(alert.event_time, tz=timezone.utc)
    return {"type": alert.event_type, "timestamp": when.isoformat().replace("+00:00", "Z"), "data": _data(alert, links)}


def _encode(render, alert: Alert) -> str:
    """``render(alert)``, where a value JSON cannot carry (NaN, an object) is permanent."""
    try:
        return render(alert)
    except (TypeError, ValueError) as exc:
        raise PermanentError(f"alert {alert.id} is not JSON-serializable: {exc}") from None


#: Answers retried (with 5xx): request timeout, too many requests. Other 4xx, and a 3xx not
#: followed (:mod:`daemon.alerting.transport`), are rejected; 2xx is sent.
RETRIED = (408, 429)

#: The shortest key the Standard Webhooks spec allows (bytes); a shorter one signs, with a warning.
MIN_KEY_BYTES = 24


def signer(secret: str | None):
    """The Standard Webhooks signer of a sink's ``secret`` (see :class:`WebhookSink`), or
    None for none. ValueError, not naming the secret, for a ``whsec_`` secret whose key is
    not base64 (the signer would fail at the first alert: checked at start instead)."""
    from standardwebhooks import Webhook

    secret = _spec_form(secret)
    return Webhook(secret) if _key(secret) else None


def short_key(secret: str | None) -> str | None:
    """Why a sink's ``secret`` is weaker than the spec asks (its key under
    :data:`MIN_KEY_BYTES`), in words that do not show it; None if it is not (or there is none)."""
    key = _key(_spec_form(secret))
    if key is None or len(key) >= MIN_KEY_BYTES:
        return None
    return (f"its key is {len(key)} bytes; the Standard Webhooks spec asks {MIN_KEY_BYTES} to 64 random bytes "
            f"(e.g. whsec_ followed by the output of `openssl rand -base64 32`), since a short key can be guessed "
            f"from signed alerts")


def secret_warning(kind: str, secret: str | None) -> str | None:
    """What is wrong with a sink's ``secret`` for a sink of type ``kind`` (``webhook``,
    ``slack``), in words that do not show it: a key too short (:func:`short_key`), or none
    for a ``webhook`` (a Slack incoming webhook checks no signature); None if nothing."""
    if kind == "webhook" and not (secret or "").strip():
        return ("not set: this sink's alerts go unsigned, so its receiver cannot tell them from anyone's requests; "
                "set a key (e.g. whsec_ followed by the output of `openssl rand -base64 32`) and verify the "
                "webhook-signature header")
    return short_key(secret)


def _spec_form(secret: str | None) -> str:
    """``whsec_<base64 key>`` (a raw key taken as its UTF-8 bytes), or "" for none."""
    secret = (secret or "").strip()  # a secret read from a file often ends in a newline
    if secret and not secret.startswith("whsec_"):
        secret = "whsec_" + base64.b64encode(secret.encode()).decode()
    return secret


def _key(secret: str) -> bytes | None:
    if not secret:
        return None
    # Strictly: the library drops what is not base64 and pads the rest, so that a receiver
    # decoding strictly would reject every signature.
    try:
        key = base64.b64decode(secret[len("whsec_"):], validate=True)
    except ValueError:  # binascii.Error: one reason, the secret unnamed
        key = b""
    if not key:
        raise ValueError("starts with whsec_ but what follows is not the base64 of a key: a secret in the Standard "
                         "Webhooks form is whsec_ then the base64 of the key; any other string (without whsec_) is "
                         "taken as the key itself") from None
    return key


class WebhookSink:
    """POSTs alerts as JSON, signed per the Standard Webhooks spec.

    ``secret``: a spec secret ``"whsec_<base64 key>"``, or any other string,
    taken as the raw key (its UTF-8 bytes), i.e. the same as
    ``"whsec_" + base64(raw)``; receivers verify with that ``whsec_`` form (the Standard
    Webhooks libraries base64-decode whatever they are given). Surrounding
    whitespace is stripped. None (or empty) sends unsigned (``webhook-id`` and
    ``webhook-timestamp`` are still set).
    ``format="slack"`` sends ``{"text": ...}`` for Slack-compatible incoming
    webhooks, signed the same way when a secret is set. The URL is not shown
    in repr or logs beyond scheme and host: Slack URLs carry a token.
    ``links``: ``runbook_url`` and ``dashboard_url`` added to ``data`` (standard)
    or to the text (slack); None, none.
    """

    def __init__(self, url: str, secret: str | None = None, format: str = "standard",
                 timeout: float = 10.0, name: str = "webhook", links: AlertLinks | None = None):
        if format not in ("standard", "slack"):
            raise ValueError(f"format must be 'standard' or 'slack', got {format!r}")
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("webhook url must be an http(s) URL")
        self.name, self.format, self.timeout = name, format, float(timeout)
        self.links = links
        self._url = url
        self._where = f"{parts.scheme}://{parts.hostname}"
        self._signer = signer(secret)

    def body(self, alert: Alert) -> str:
        """The JSON body: identical on every attempt (only the timestamp header changes)."""
        if self.format == "slack":
            payload = {"text": slack_text(alert, self.links)}
        else:
            payload = envelope(alert, self.links)
        return json.dumps(payload, separators=(",", ":"), allow_nan=False)

    def deliver(self, alert: Alert) -> None:
        body = _encode(self.body, alert)
        now = datetime.now(timezone.utc)
        headers = {"Content-Type": "application/json", "User-Agent": "driftd",
                   "webhook-id": alert.id, "webhook-timestamp": str(math.floor(now.timestamp()))}
        if self._signer is not None:
            headers["webhook-signature"] = self._signer.sign(alert.id, now, body)
        try:
            status, answer = transport.post(self._url, body.encode(), headers, self.timeout)
        except transport.TimedOut as exc:
            raise RetryableError(f"timed out: {exc} (timeout_seconds)") from None
        except (OSError, http.client.HTTPException) as exc:  # URLError, resets, refused connections
            raise RetryableError(f"{type(exc).__name__}: {getattr(exc, 'reason', exc)}") from None
        if 200 <= status < 300:
            return
        if status in RETRIED or status >= 500:
            raise RetryableError(f"HTTP {status}", parse_retry_after(answer.get("Retry-After")))
        if 300 <= status < 400:
            raise PermanentError(f"HTTP {status} redirect not followed (a 303, to http from https, or more than "
                                 f"{transport.MAX_REDIRECTS}): set the sink's url to where the alerts should go")
        raise PermanentError(f"HTTP {status}")

    def __repr__(self) -> str:
        return (f"WebhookSink(name={self.name!r}, url={self._where!r}/..., format={self.format!r},"
                f" signed={self._signer is not None})")


class KafkaSink:
    """Produces alerts as JSON to a topic; key = model, header ``alert-id`` = the stable id.

    The producer is shared with the caller (KafkaProducer is thread-safe) and
    must take bytes (no serializers); use ``acks="all"``. On the embedded
    broker an idempotent producer must be re-created after a broker restart --
    that is the producer owner's job, the sink only retries.
    """

    def __init__(self, producer, topic: str, timeout: float = 10.0, name: str = "kafka",
                 links: AlertLinks | None = None):
        config = getattr(producer, "config", {}) or {}
        if config.get("key_serializer") or config.get("value_serializer"):
            raise ValueError("KafkaSink needs a producer without key/value serializers")
        self.producer, self.topic, self.timeout, self.name = producer, topic, float(timeout), name
        self.links = links  # runbook_url, dashboard_url in data, as the webhook's

    def deliver(self, alert: Alert) -> None:
        from kafka.errors import KafkaError

        value = _encode(lambda a: json.dumps(envelope(a, self.links), separators=(",", ":"), allow_nan=False),
                        alert).encode()
        headers = [("alert-id", alert.id.encode()), ("alert-type", alert.event_type.encode())]
        try:
            future = self.producer.send(self.topic, key=alert.model.encode(), value=value,
                                        headers=headers)
            future.get(timeout=self.timeout)
        except _record_errors() as exc:  # about this record: no retry can help
            raise PermanentError(f"{type(exc).__name__}: {exc}") from None
        except KafkaError as exc:
            # Includes errors Kafka calls non-retriable but that heal once the owner acts,
            # e.g. UnknownProducerId after a broker restart or a closed producer
            # (the owner may swap in a new one: ``sink.producer = ...``).
            raise RetryableError(f"{type(exc).__name__}: {exc}") from None

    def __repr__(self) -> str:
        return f"KafkaSink(name={self.name!r}, topic={self.topic!r})"


def _record_errors() -> tuple[type[Exception], ...]:
    import kafka.errors as e

    return (e.MessageSizeTooLargeError, e.RecordListTooLargeError, e.InvalidTopicError,
            e.InvalidRecordError)
