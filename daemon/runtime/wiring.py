"""The daemon's parts, built from configuration: the broker address (or the embedded
broker), the topics to create, the alert sinks, the Kafka client settings, and the checks
that must pass before anything starts."""

from __future__ import annotations

import logging
import re

from daemon.alerting.sinks import AlertLinks, KafkaSink, WebhookSink, secret_warning
from daemon.config import Config, Secret
from daemon.kafka.netclient import NetClient

log = logging.getLogger("driftd")


def check_codecs() -> None:
    """Compressed batches from librdkafka or Java producers are unreadable without these;
    kafka-python would then spin on the same fetch for ever."""
    from kafka import codec

    missing = [name for name, present in (("snappy", codec.has_snappy()), ("lz4", codec.has_lz4()), ("zstd", codec.has_zstd())) if not present]
    if missing:
        raise RuntimeError(f"cannot decompress {', '.join(missing)}: reinstall driftd with its dependencies (python-snappy, lz4, zstandard)")


def topics(config: Config) -> dict[str, int]:
    """Every topic driftd reads or writes, with the partitions it would create it with."""
    kafka = config.kafka
    partitions = max(1, kafka.create_topics)
    wanted = {kafka.predictions_topic: partitions, kafka.labels_topic: partitions, kafka.dead_letter_topic: 1}
    wanted.update({s.topic: 1 for s in config.alerts.sinks if s.type == "kafka"})
    if config.has_learners and config.registry.model_updated_topic:
        wanted[config.registry.model_updated_topic] = 1
    if config.state.topic:
        wanted[config.state.topic] = partitions
    return wanted


def topic_configs(config: Config) -> dict:
    """Settings of the topics driftd creates: the state topic is compacted (only the newest
    record of each key is kept), with records up to a piece and its key."""
    if not config.state.topic:
        return {}
    return {config.state.topic: {"cleanup.policy": "compact", "max.message.bytes": str(config.state.piece_bytes + 65536)}}


def bootstrap(config: Config):
    """(bootstrap servers, the embedded broker or None); creates topics where asked."""
    kafka = config.kafka
    if kafka.bootstrap_servers == "embedded":
        from daemon.kafka.embedded_broker import EmbeddedBroker

        broker = EmbeddedBroker(topics=topics(config)).start()
        log.warning("embedded broker (in memory, for development) at %s", broker.bootstrap)
        return broker.bootstrap, broker
    if kafka.create_topics:
        from daemon.kafka.embedded_broker import create_topics

        create_topics(kafka.bootstrap_servers, topics(config), configs=topic_configs(config), **client_settings(kafka))
    return kafka.bootstrap_servers, None


def alert_sinks(config: Config, producer) -> list:
    links = AlertLinks(config.alerts.runbook_base_url, config.alerts.dashboard_url)
    sinks = []
    for i, sink in enumerate(config.alerts.sinks):
        secret = sink.secret_value
        name = f"{sink.type}-{i}"
        if sink.type == "kafka":
            sinks.append(KafkaSink(producer, sink.topic, timeout=sink.timeout_seconds, name=name, links=links))
        else:
            fmt = "slack" if sink.type == "slack" else "standard"
            if (weak := secret_warning(sink.type, secret)) is not None:
                log.warning("alerts.sinks[%d].secret: %s", i, weak)
            sinks.append(WebhookSink(sink.url, secret, format=fmt, timeout=sink.timeout_seconds, name=name, links=links))
    return sinks


def client_settings(kafka) -> dict:
    """kafka-python settings for every client driftd makes (``kafka`` is the ``kafka``
    section): ``kafka.client`` with secrets resolved, the reconnect backoff, and the network
    client class that closes cleanly (:class:`daemon.kafka.netclient.NetClient`).

    The backoff goes to every client, not only the group consumer: kafka-python's own
    default is 30 s (with up to 20 % jitter), and the producers and the state reader,
    left at it, reconnected up to ~36 s after a broker came back; each checkpoint until
    then failed on them and /readyz said "broker not answering" meanwhile (README "Probes")."""
    settings = {k: v.get() if isinstance(v, Secret) else v for k, v in kafka.client.items()}
    settings["reconnect_backoff_max_ms"] = max(1, int(kafka.reconnect_backoff_max_seconds * 1000))
    # Closed only once its I/O thread stopped: a consumer closed while a response came in
    # logged an ERROR traceback (daemon.kafka.netclient).
    settings["kafka_client"] = NetClient
    return settings


def checkpoint_scope(kafka) -> str:
    """Group and topics, as a file-name prefix: checkpoints of other set-ups stay apart."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", f"{kafka.group_id}-{kafka.predictions_topic}-{kafka.labels_topic}")
