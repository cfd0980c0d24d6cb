"""Events written by standard Kafka producers other than driftd's own client are read.

Model servers and business systems write with librdkafka (confluent-kafka, the Go, .NET,
Node and Rust clients) or the Java client, with their usual settings: compression (gzip,
snappy, lz4, zstd), idempotence, batching (linger), record headers, null keys, and their
own default partitioners. Here a real librdkafka (the ``confluent-kafka`` wheel bundles
it) writes prediction and label events with each of those settings, kafka-python's
producer stands in for the Java client (same record format v2, murmur2 partitioner,
idempotent by default), and one real driftd daemon on the test broker has to process every
event, send none to the dead-letter topic and join every label to its prediction.

Decompression happens in kafka-python, which needs ``python-snappy``, ``lz4`` and
``zstandard`` for those codecs (gzip is in the standard library); without them a poll
raises ``UnsupportedCodecError``.

All cases share one daemon (one consumer-group join, about a second): each case writes
the events of a model of its own, and the counts are read per model from ``/metrics``,
which sums a model over partitions.
"""

from __future__ import annotations

import json
import uuid

import pytest
from kafka import KafkaProducer
from kafka import codec as kafka_codec
from prometheus_client.parser import text_string_to_metric_families

from daemon.demo.simulate import Simulation

from .daemon_harness import daemon_config, get, running_daemon, wait_until

import confluent_kafka  # noqa: E402 - the test extra installs it; a missing one must fail, not skip

CODECS = ("gzip", "snappy", "lz4", "zstd")
PARTITIONS = 4
N_EVENTS = 300

# What instrumented services typically attach: trace context, content type, a null value.
LIBRDKAFKA_HEADERS = [("traceparent", b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
                      ("content-type", b"application/json"), ("tenant", None)]
JAVA_HEADERS = [("traceparent", b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
                ("content-type", b"application/json"), ("empty", b"")]

# librdkafka settings per case, on top of its defaults (acks=all, linger.ms=5,
# partitioner=consistent_random, no compression, no idempotence).
LIBRDKAFKA_CASES = {
    "defaults": {},
    **{codec: {"compression.type": codec} for codec in CODECS},
    "idempotent-batched": {"enable.idempotence": True, "linger.ms": 100, "batch.num.messages": 10_000,
                           "compression.type": "zstd"},
    "java-partitioner": {"partitioner": "murmur2_random", "compression.type": "lz4"},
}
JAVA_CASES = ("none", *CODECS)


def _model(family: str, case: str) -> str:
    return f"{family}-{case}"


MODELS = [_model("rdkafka", c) for c in LIBRDKAFKA_CASES] + [_model("rdkafka", "null-keys")] + \
         [_model("java", c) for c in JAVA_CASES] + ["mixed-default", "mixed-murmur2"]


@pytest.fixture(scope="module")
def shared_daemon(kafka_broker, tmp_path_factory):
    """One daemon for every case of this module, on topics with several partitions so that
    partitioners matter."""
    if not kafka_broker.running():
        kafka_broker.start()
    suffix = uuid.uuid4().hex[:8]
    config = daemon_config(
        kafka_broker.bootstrap, lambda prefix: f"{prefix}-foreign-{suffix}", tmp_path_factory.mktemp("foreign"),
        models={m: {} for m in MODELS}, kafka={"create_topics": PARTITIONS},
        # References larger than a case's events: no detector is built, nothing heavy runs (the
        # first calibration of a data-drift test costs seconds); decoding, validation and the
        # label join, which is what producers can break, all run.
        model_defaults={"reference_size": 10 * N_EVENTS, "decay_reference_size": 10 * N_EVENTS})
    with running_daemon(config) as daemon:
        yield daemon, config


def _sim(config: dict, model: str, seed: int = 7) -> Simulation:
    return Simulation(n_events=N_EVENTS, model=model, data_drift_at=None, concept_drift_at=None, label_delay=10,
                      seed=seed, predictions_topic=config["kafka"]["predictions_topic"],
                      labels_topic=config["kafka"]["labels_topic"])


def _expected(sim: Simulation, records: list) -> dict:
    labels = [json.loads(v)["id"] for t, _, v in records if t == sim.labels_topic]
    return {"prediction": sum(t == sim.predictions_topic for t, _, _ in records), "label": len(labels),
            "joined": len(set(labels)), "duplicate_label": len(labels) - len(set(labels))}


def _observed(daemon, model: str) -> dict:
    """This model's counts from /metrics (summed over partitions), and the dead letters."""
    seen = {"prediction": 0, "label": 0, "joined": 0, "duplicate_label": 0, "dead_letters": {}}
    for family in text_string_to_metric_families(get(daemon, "/metrics")[1].decode()):
        for sample in family.samples:
            if sample.name == "driftd_events_processed_total" and sample.labels["model"] == model:
                seen[sample.labels["kind"]] = int(sample.value)
            elif sample.name == "driftd_label_join_total" and sample.labels["model"] == model \
                    and sample.labels["outcome"] in seen:
                seen[sample.labels["outcome"]] = int(sample.value)
            elif sample.name == "driftd_dead_letter_total" and sample.value:
                seen["dead_letters"][sample.labels["reason"]] = seen["dead_letters"].get(sample.labels["reason"], 0) + int(sample.value)
    return seen


def _metric(daemon, name: str, **labels) -> float:
    for family in text_string_to_metric_families(get(daemon, "/metrics")[1].decode()):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
    raise AssertionError(f"no sample {name}{labels}")


def _wait_processed(daemon, model: str, expected: dict) -> dict:
    """Wait until the model's predictions and labels are all processed; its counts then."""
    counts = (expected["prediction"], expected["label"])
    last = {}

    def done():
        last.update(_observed(daemon, model))
        return (last["prediction"], last["label"]) == counts

    try:
        wait_until(done, timeout=20, what=f"{model}: {counts} predictions/labels processed")
    except AssertionError as e:
        raise AssertionError(f"{e}; counts were {last}") from None
    return dict(last)


def produce_librdkafka(bootstrap: str, records, settings: dict, headers=LIBRDKAFKA_HEADERS) -> dict:
    """Write (topic, key, value) records with librdkafka; returns partitions used per topic."""
    producer = confluent_kafka.Producer({"bootstrap.servers": bootstrap, **settings})
    errors, partitions = [], {}

    def delivered(error, message):
        if error is not None:
            errors.append(error)
        else:
            partitions.setdefault(message.topic(), set()).add(message.partition())

    for topic, key, value in records:
        while True:
            try:
                producer.produce(topic, value=value, key=key, headers=headers, on_delivery=delivered)
                break
            except BufferError:  # local queue full: let deliveries drain
                producer.poll(0.1)
        producer.poll(0)
    assert producer.flush(20) == 0, "librdkafka did not deliver everything"
    assert not errors, errors[:3]
    return partitions


def produce_java_style(bootstrap: str, records, compression: str) -> dict:
    """kafka-python's producer, configured like the Java client's defaults (idempotent, acks=all,
    murmur2 partitioner, record format v2) plus compression and headers; returns partitions
    used per topic."""
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, linger_ms=5,
                             compression_type=None if compression == "none" else compression)
    futures = [producer.send(topic, key=key, value=value, headers=JAVA_HEADERS) for topic, key, value in records]
    producer.flush(20)
    producer.close()
    partitions: dict = {}
    for future in futures:
        metadata = future.get(0)
        partitions.setdefault(metadata.topic, set()).add(metadata.partition)
    return partitions


def test_kafka_python_can_decompress_every_codec():
    missing = {name: package for name, package, present in (
        ("snappy", "python-snappy", kafka_codec.has_snappy()),
        ("lz4", "lz4", kafka_codec.has_lz4()),
        ("zstd", "zstandard", kafka_codec.has_zstd()),
    ) if not present}
    assert not missing, f"kafka-python cannot decompress {sorted(missing)}: install {sorted(missing.values())}"
    payload = b'{"model": "fraud", "id": "p-1"}' * 20
    for encode, decode in ((kafka_codec.snappy_encode, kafka_codec.snappy_decode),
                           (kafka_codec.lz4_encode, kafka_codec.lz4_decode),
                           (kafka_codec.zstd_encode, kafka_codec.zstd_decode)):
        assert decode(encode(payload)) == payload


@pytest.mark.parametrize("case", list(LIBRDKAFKA_CASES))
def test_events_from_librdkafka_are_processed(shared_daemon, case):
    daemon, config = shared_daemon
    model = _model("rdkafka", case)
    sim = _sim(config, model)
    records = list(sim.records())
    partitions = produce_librdkafka(daemon.bootstrap, records, LIBRDKAFKA_CASES[case])
    # Keyed by the model name, one producer puts both topics' events in one partition number.
    assert partitions[sim.predictions_topic] == partitions[sim.labels_topic] and len(partitions[sim.labels_topic]) == 1
    expected = _expected(sim, records)
    seen = _wait_processed(daemon, model, expected)
    assert seen == {**expected, "dead_letters": {}}


def test_events_with_null_keys_from_librdkafka_are_processed(shared_daemon):
    """No key: librdkafka spreads the events over the partitions, so they are read, but a
    label may land in another partition than its prediction (the design's co-partitioning
    needs the model name as key) and is not joined; only reading is checked here."""
    daemon, config = shared_daemon
    model = _model("rdkafka", "null-keys")
    sim = _sim(config, model)
    records = [(topic, None, value) for topic, _, value in sim.records()]
    produce_librdkafka(daemon.bootstrap, records, {"compression.type": "snappy", "linger.ms": 0})
    expected = _expected(sim, records)
    seen = _wait_processed(daemon, model, expected)
    assert (seen["prediction"], seen["label"], seen["dead_letters"]) == (expected["prediction"], expected["label"], {})


@pytest.mark.parametrize("compression", JAVA_CASES)
def test_events_from_a_java_style_producer_are_processed(shared_daemon, compression):
    daemon, config = shared_daemon
    model = _model("java", compression)
    sim = _sim(config, model)
    records = list(sim.records())
    produce_java_style(daemon.bootstrap, records, compression)
    expected = _expected(sim, records)
    seen = _wait_processed(daemon, model, expected)
    assert seen == {**expected, "dead_letters": {}}


def _produce_mixed(shared_daemon, model: str, partitioner: str):
    """Predictions from librdkafka with ``partitioner``, labels from a Java-style producer;
    returns the simulation, its records and the partitions each producer used."""
    daemon, config = shared_daemon
    sim = _sim(config, model)
    records = list(sim.records())
    prediction_partitions = produce_librdkafka(
        daemon.bootstrap, [r for r in records if r[0] == sim.predictions_topic],
        {"partitioner": partitioner, "compression.type": "zstd"})
    label_partitions = produce_java_style(daemon.bootstrap, [r for r in records if r[0] == sim.labels_topic], "gzip")
    return sim, records, prediction_partitions, label_partitions


def test_predictions_from_librdkafka_join_labels_from_a_java_producer(shared_daemon):
    """The model server uses librdkafka, the business system writing labels the Java client.
    With librdkafka's Java-compatible partitioner (murmur2_random, as the README asks) both
    put a model's events in the same partition number and every label joins."""
    daemon = shared_daemon[0]
    sim, records, prediction_partitions, label_partitions = _produce_mixed(shared_daemon, "mixed-murmur2", "murmur2_random")
    assert prediction_partitions[sim.predictions_topic] == label_partitions[sim.labels_topic]
    expected = _expected(sim, records)
    assert _wait_processed(daemon, "mixed-murmur2", expected) == {**expected, "dead_letters": {}}


def test_mixed_partitioners_break_co_partitioning_visibly_not_silently(shared_daemon):
    """librdkafka's default partitioner (consistent_random, CRC32 of the key) and the Java
    client's (murmur2) put key "mixed-default" in different partitions: the labels cannot
    meet their predictions. Nothing is lost and the failure shows: every event is
    processed, no label joins, and the labels wait in driftd_label_join_pending."""
    daemon = shared_daemon[0]
    sim, records, prediction_partitions, label_partitions = _produce_mixed(shared_daemon, "mixed-default", "consistent_random")
    assert prediction_partitions[sim.predictions_topic] != label_partitions[sim.labels_topic]
    expected = {**_expected(sim, records), "joined": 0}
    assert _wait_processed(daemon, "mixed-default", expected) == {**expected, "dead_letters": {}}
    (label_partition,) = label_partitions[sim.labels_topic]
    pending = _metric(daemon, "driftd_label_join_pending", partition=str(label_partition), model="mixed-default")
    assert pending >= expected["label"] - expected["duplicate_label"] - 1
