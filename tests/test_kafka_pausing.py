"""Pausing a partition and resuming it reads every record once, in order
(daemon/kafka/pausing.py), on the test broker over the wire.

kafka-python 3.0 parks the records it had fetched for a partition when it is paused and
fetched nothing more for it after its resume whenever another partition had been read
meanwhile: the daemon's labels, paused while their predictions caught up, stopped for
good. ``pausing.resume`` drops what is parked; the partition is fetched again from its
position.
"""

from __future__ import annotations

import time

from kafka import KafkaConsumer, KafkaProducer
from kafka.structs import TopicPartition

from daemon.kafka import pausing
from daemon.kafka.embedded_broker import create_topics

N = 600


def test_a_partition_paused_with_records_fetched_is_read_to_its_end_after_resume(kafka_bootstrap, unique_name):
    a, b = unique_name("a"), unique_name("b")
    create_topics(kafka_bootstrap, {a: 1, b: 1})
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    for i in range(N):
        producer.send(a, value=str(i).encode())
        producer.send(b, value=str(i).encode())
    producer.flush()
    producer.close()
    tp_a, tp_b = TopicPartition(a, 0), TopicPartition(b, 0)
    consumer = KafkaConsumer(bootstrap_servers=kafka_bootstrap, auto_offset_reset="earliest", enable_auto_commit=False)
    consumer.assign([tp_a, tp_b])
    read = {tp_a: [], tp_b: []}

    def poll():
        for tp, records in consumer.poll(timeout_ms=200, max_records=50).items():
            read[tp] += [int(r.value) for r in records]

    try:
        deadline = time.monotonic() + 30
        while not read[tp_a] and time.monotonic() < deadline:
            poll()
        assert read[tp_a], "nothing read of the first partition"
        pausing.pause(consumer, tp_a)  # its next records are fetched already, most likely
        while len(read[tp_b]) < N and time.monotonic() < deadline:
            poll()
        before = len(read[tp_a])
        assert before < N  # paused: nothing more came
        pausing.resume(consumer, tp_a)
        while len(read[tp_a]) < N and time.monotonic() < deadline:
            poll()
    finally:
        consumer.close()
    assert read[tp_a] == list(range(N)) and read[tp_b] == list(range(N))
