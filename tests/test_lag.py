"""Consumer lag and event age from the broker's view, on the real broker.

- The issue's case: a ``driftd run`` process is stopped (SIGSTOP) while a producer writes;
  the true lag is measured with clients of the test's own (the group's committed offset,
  and the log end from a fetch high watermark); after SIGCONT the lag gauge scraped from
  /metrics reaches at least that lag. Before the fix it never did: the gauge was set after
  each batch from a high watermark that stood still, so it showed the batch in hand as
  done and read 0 as the daemon worked through a fetch.
- The probe reads the log end exactly although Tansu's ListOffsets answers short of it.
- Each model's event age (now minus the newest event time processed) per stream.
"""

from __future__ import annotations

import json
import random
import signal
import threading
import time

from kafka import KafkaConsumer, KafkaProducer
from kafka.structs import TopicPartition
from prometheus_client.parser import text_string_to_metric_families

from daemon.kafka.lag import probe_consumer, read_ends

from .daemon_harness import daemon_config, get, running_daemon, status, wait_until
from .test_daemon_process import MODEL, daemons, write_config  # noqa: F401 - fixture

FEATURES = 20


def events(start: int, n: int, model: str = MODEL, t0: float | None = None) -> list[bytes]:
    """Predictions with FEATURES numeric features (a batch of them takes a while to process)."""
    rng = random.Random(start)
    t0 = time.time() - 600 if t0 is None else t0
    return [json.dumps({"model": model, "id": f"p-{i}", "ts": round(t0 + i * 0.001, 3),
                        "features": {f"f{j}": round(rng.gauss(0, 1), 4) for j in range(FEATURES)},
                        "prediction": rng.randint(0, 1), "score": round(rng.random(), 4)}).encode()
            for i in range(start, start + n)]


def send(bootstrap: str, topic: str, values: list[bytes], key: bytes = MODEL.encode()) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=20, batch_size=512 * 1024)
    for value in values:
        producer.send(topic, key=key, value=value)
    producer.flush()
    producer.close()


def committed(bootstrap: str, group: str, tp: TopicPartition) -> int | None:
    """The group's committed offset of ``tp`` (an OffsetFetch: the consumer does not join)."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    try:
        return consumer.committed(tp, timeout_ms=10_000)
    finally:
        consumer.close(autocommit=False)


def log_end(bootstrap: str, tp: TopicPartition, below: int) -> int:
    """The log end from a fetch response's high watermark: fetch from ``below`` (an offset
    that exists) until records come; their response carries it."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False, fetch_max_wait_ms=100)
    try:
        consumer.assign([tp])
        consumer.seek(tp, below)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if consumer.poll(timeout_ms=500).get(tp):
                return consumer.highwater(tp)
        raise AssertionError(f"no records of {tp} from offset {below} within 30 s")
    finally:
        consumer.close()


def lag_samples(text: str) -> dict:
    return {(s.labels["topic"], s.labels["partition"]): s.value
            for f in text_string_to_metric_families(text) if f.name == "driftd_consumer_lag_records" for s in f.samples}


def test_lag_gauge_reaches_the_true_lag_after_sigstop(kafka_bootstrap, unique_name, tmp_path, daemons):  # noqa: F811
    # One batch takes in whatever a fetch brings (at most 100,000 records).
    path, config = write_config(tmp_path, kafka_bootstrap, unique_name, kafka={"poll_max_records": 100_000})
    kafka = config["kafka"]
    predictions = TopicPartition(kafka["predictions_topic"], 0)
    daemon = daemons(path).start()
    warm = 1_500
    send(kafka_bootstrap, predictions.topic, events(0, warm))
    wait_until(lambda: daemon.counts()["prediction"] == warm, timeout=60, what=f"{warm} predictions processed")
    # Idle and checkpointed: what it has processed is what the group has committed.
    wait_until(lambda: committed(kafka_bootstrap, kafka["group_id"], predictions) == warm, timeout=30,
               what="the offsets committed")
    assert daemon.status()["partitions"]["0"] == {predictions.topic: warm}
    assert lag_samples(daemon.get("/metrics")[1].decode()).get((predictions.topic, "0")) == 0

    daemon.signal(signal.SIGSTOP)
    try:
        # Ordering, not timing: the fetch the consumer had in flight is answered (empty)
        # within fetch_max_wait_ms (100 ms) before anything is written.
        time.sleep(1.0)
        n = 40_000
        send(kafka_bootstrap, predictions.topic, events(warm, n))
        done = committed(kafka_bootstrap, kafka["group_id"], predictions)
        end = log_end(kafka_bootstrap, predictions, below=done)
        true_lag = end - done
        assert true_lag == n, (end, done)
    finally:
        daemon.signal(signal.SIGCONT)

    # Scrape from a few threads at once: a scrape waits up to 0.5 s for the loop's lock.
    seen, stop = [], threading.Event()

    def scrape():
        while not stop.is_set():
            try:
                lag = lag_samples(daemon.get("/metrics", timeout=10)[1].decode()).get((predictions.topic, "0"))
            except OSError:
                continue
            if lag is not None:
                seen.append(lag)

    threads = [threading.Thread(target=scrape, daemon=True) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        wait_until(lambda: daemon.counts()["prediction"] == warm + n, timeout=120, what="the backlog processed")
    finally:
        stop.set()
        for t in threads:
            t.join(15)
    assert seen and max(seen) >= true_lag, f"largest lag scraped {max(seen, default=None)}, true lag {true_lag}"
    # Caught up, the gauge says so; the labels topic (nothing read from it) has its series too.
    lags = wait_until(lambda: (s := lag_samples(daemon.get("/metrics")[1].decode())).get((predictions.topic, "0")) == 0 and s,
                      timeout=30, what="the lag back to 0")
    assert lags.get((kafka["labels_topic"], "0")) == 0, lags
    assert daemon.alive()


def test_the_probe_reads_the_log_end_exactly(kafka_bootstrap, unique_name):
    """Tansu answers ListOffsets(latest) with the last batch's base offset + 1; the probe's
    fetch from just below it gets the end from the response's high watermark."""
    topic = unique_name("probe")
    full, empty = TopicPartition(topic, 0), TopicPartition(unique_name("empty"), 0)
    from daemon.kafka.embedded_broker import create_topics

    create_topics(kafka_bootstrap, {topic: 1, empty.topic: 1})
    values = [b"x" * 100] * 3_000
    send(kafka_bootstrap, topic, values)  # large batches: ListOffsets may land well short of the end
    consumer = probe_consumer(kafka_bootstrap, {})
    try:
        ends, starts = read_ends(consumer, [full, empty], {empty: "first"}, 5.0)
        assert ends == {full: 3_000, empty: 0} and starts == {empty: 0}
        send(kafka_bootstrap, topic, values[:123])
        assert read_ends(consumer, [full], {}, 5.0) == ({full: 3_123}, {})
    finally:
        consumer.close()


def test_the_probe_reads_the_groups_committed_offset_of_a_held_partition(kafka_bootstrap, unique_name):
    """A partition held back for its state counts from the group's committed offset; one
    the group never committed, from the log's first offset (where its consumer starts)."""
    from kafka import KafkaConsumer
    from kafka.structs import OffsetAndMetadata

    from daemon.kafka.embedded_broker import create_topics
    from daemon.kafka.lag import COMMITTED

    topic, group = unique_name("held"), unique_name("group")
    committed, never = TopicPartition(topic, 0), TopicPartition(topic, 1)
    create_topics(kafka_bootstrap, {topic: 2})
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    for _ in range(50):
        producer.send(topic, value=b"x", partition=0)
    producer.flush()
    producer.close()
    member = KafkaConsumer(bootstrap_servers=kafka_bootstrap, group_id=group, enable_auto_commit=False)
    try:
        member.assign([committed])
        member.commit({committed: OffsetAndMetadata(20, "", -1)})
    finally:
        member.close()
    probe = probe_consumer(kafka_bootstrap, {}, group_id=group)
    try:
        ends, starts = read_ends(probe, [committed, never], {committed: COMMITTED, never: COMMITTED}, 5.0)
        assert ends == {committed: 50, never: 0} and starts == {committed: 20, never: 0}
    finally:
        probe.close()


def test_event_age_per_model_and_stream(kafka_bootstrap, unique_name, tmp_path):
    """Now minus the newest event time processed, per model and stream, from the state at
    scrape time (the loop itself never looks at the wall clock for it)."""
    config = daemon_config(kafka_bootstrap, unique_name, tmp_path)
    kafka = config["kafka"]
    t0 = time.time() - 3_600
    predictions = events(0, 300, t0=t0)
    newest_prediction = max(json.loads(v)["ts"] for v in predictions)
    labels = [json.dumps({"model": MODEL, "id": f"p-{i}", "ts": t0 + 100 + i, "label": i % 2}).encode() for i in range(50)]
    newest_label = t0 + 100 + 49
    with running_daemon(config) as daemon:
        send(kafka_bootstrap, kafka["predictions_topic"], predictions)
        send(kafka_bootstrap, kafka["labels_topic"], labels)
        wait_until(lambda: (status(daemon).get("models", {}).get(MODEL) or {}).get("processed") == {"prediction": 300, "label": 50},
                   timeout=60, what="all events processed")
        before = time.time()
        text = get(daemon, "/metrics")[1].decode()
        after = time.time()
    samples = [s for f in text_string_to_metric_families(text) if f.name == "driftd_event_age_seconds"
               for s in f.samples if s.labels["model"] == MODEL]
    ages = {s.labels["stream"]: s.value for s in samples}
    assert set(ages) == {"prediction", "label"}, ages
    # The model's input partition, as driftd_consumer_lag_records names it (DriftdEventsDelayed joins on it).
    lagged = {s.labels["partition"] for f in text_string_to_metric_families(text)
              if f.name == "driftd_consumer_lag_records" for s in f.samples}
    assert len({s.labels["partition"] for s in samples}) == 1 and {s.labels["partition"] for s in samples} <= lagged, samples
    assert before - newest_prediction <= ages["prediction"] <= after - newest_prediction
    assert before - newest_label <= ages["label"] <= after - newest_label
